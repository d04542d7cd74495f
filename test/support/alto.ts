// The Alto bundler (from npm) against a local chain, bound to loopback by a preload.
import { type ChildProcess, spawn } from "node:child_process";

import { type Address, parseEther } from "viem";

import { altoAddresses, altoArgs, bundlerAnswers } from "../../scripts/stack/alto.ts";
import { freePort } from "../../scripts/stack/ports.ts";
import type { AnvilChain } from "./anvil.ts";

export type AltoBundler = Awaited<ReturnType<typeof startAlto>>;

/** Starts Alto on a free loopback port; safe mode is off because its tracer fails on anvil (TOOLCHAIN.md). */
export async function startAlto(anvil: AnvilChain, entryPoints: Address[]) {
  const port = await freePort();
  // Executor and utility accounts differ from the deployer's (dev account 0), so nonces never collide.
  for (const address of altoAddresses()) await anvil.testClient.setBalance({ address, value: parseEther("100") });
  const child: ChildProcess = spawn(process.execPath, altoArgs({ rpcUrl: anvil.url, entryPoints, port }), { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (chunk) => (stderr += chunk));
  const url = `http://127.0.0.1:${port}`;
  for (let attempt = 0; ; attempt++) {
    if (await bundlerAnswers(url)) break;
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
