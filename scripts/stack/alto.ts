// How the project runs the Alto bundler (the local stack and the tests alike). Its safe mode traces
// validation with a JavaScript tracer: Hardhat's node (EDR) has no JavaScript tracers, and on anvil
// the tracing fails too (TOOLCHAIN.md), so it runs with `--safe-mode false`. It binds 0.0.0.0 and has
// no host flag, so a preload moves every listen() to 127.0.0.1.
import path from "node:path";

import type { Address } from "viem";

import { devAccount, devPrivateKey } from "./contracts.ts";

const root = path.resolve(import.meta.dirname, "../..");

/** Dev accounts Alto sends bundles from and funds its executors with: never the deployer's (0), so nonces never collide. */
export const ALTO_ACCOUNTS = { executor: 8, utility: 9 } as const;

/** The executor and utility addresses, e.g. to fund them on a chain that did not. */
export const altoAddresses = () => [devAccount(ALTO_ACCOUNTS.executor).address, devAccount(ALTO_ACCOUNTS.utility).address];

/** Node's arguments that start Alto on 127.0.0.1:`port` against `rpcUrl` for `entryPoints`. */
export function altoArgs({ rpcUrl, entryPoints, port, logLevel = "warn" }: { rpcUrl: string; entryPoints: Address[]; port: number; logLevel?: string }): string[] {
  return [
    "--require", path.join(root, "scripts/toolchain/loopback-preload.cjs"),
    // The package's `exports` hide its CLI, so run the file its `bin` field names.
    path.join(root, "node_modules/@pimlico/alto/esm/cli/alto.js"),
    "--rpc-url", rpcUrl,
    "--entrypoints", entryPoints.join(","),
    "--executor-private-keys", devPrivateKey(ALTO_ACCOUNTS.executor),
    "--utility-private-key", devPrivateKey(ALTO_ACCOUNTS.utility),
    "--port", String(port),
    "--safe-mode", "false",
    "--log-level", logLevel,
  ];
}

/** Whether a bundler at `url` answers eth_supportedEntryPoints. */
export async function bundlerAnswers(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_supportedEntryPoints", params: [] }) });
    return response.ok;
  } catch {
    return false;
  }
}
