// The Alto bundler (from npm) against a local chain, bound to loopback by a preload.
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";

import { type Address, type Hex, parseEther, toHex } from "viem";

import type { AnvilChain } from "./anvil.ts";
import { devAccount } from "./anvil.ts";
import { freePort } from "./redis.ts";

const root = path.resolve(import.meta.dirname, "../..");

/** The private key of anvil's dev account `index`. */
function devKey(index: number): Hex {
  return toHex(devAccount(index).getHdKey().privateKey!);
}

export type AltoBundler = Awaited<ReturnType<typeof startAlto>>;

/** Starts Alto on a free loopback port; safe mode is off because its tracer fails on anvil (TOOLCHAIN.md). */
export async function startAlto(anvil: AnvilChain, entryPoints: Address[]) {
  const port = await freePort();
  // The package's `exports` hide its CLI, so run the file its `bin` field names.
  const entry = path.join(root, "node_modules/@pimlico/alto/esm/cli/alto.js");
  // Executor and utility accounts differ from the deployer's (dev account 0), so nonces never collide.
  for (const index of [8, 9]) await anvil.testClient.setBalance({ address: devAccount(index).address, value: parseEther("100") });
  const child: ChildProcess = spawn(
    process.execPath,
    [
      "--require", path.join(root, "scripts/toolchain/loopback-preload.cjs"), entry,
      "--rpc-url", anvil.url,
      "--entrypoints", entryPoints.join(","),
      "--executor-private-keys", devKey(8),
      "--utility-private-key", devKey(9),
      "--port", String(port),
      "--safe-mode", "false",
      "--log-level", "warn",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr?.on("data", (chunk) => (stderr += chunk));
  const url = `http://127.0.0.1:${port}`;
  for (let attempt = 0; ; attempt++) {
    try {
      const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_supportedEntryPoints", params: [] }) });
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null || attempt > 300) throw new Error(`Alto did not start on port ${port}: ${stderr.slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    },
  };
}
