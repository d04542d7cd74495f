// `.local/stack.json`: the machine-readable description of a running local stack. It holds the admin
// token and keys, so only its owner may read it (0600). It exists while the stack runs: the stack
// writes it once everything answers and removes it when it stops.
import { existsSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";

import type { Address, Hex } from "viem";

import type { EntryPointVersion } from "../../service/chain/entryPoints.ts";
import { writePrivateFile } from "../sandbox/server.ts";

/** The file's layout; `version` changes when a field changes meaning. */
export type StackDescription = {
  version: 1;
  /** The `npm start` process: send it SIGINT or SIGTERM to stop the stack. */
  pid: number;
  startedAt: string;
  /** "clean": every start makes a new chain, an empty Redis and new keys (see the README). */
  restart: "clean";
  chainId: number;
  urls: {
    rpc: string;
    bundler: string;
    service: string;
    /** ERC-7677 JSON-RPC: the service's `/rpc`. */
    paymaster: string;
    sandbox: string;
    redis: string;
  };
  contracts: {
    entryPoints: Record<EntryPointVersion, Address>;
    simpleAccountFactories: Record<EntryPointVersion, Address>;
    paymasters: Record<EntryPointVersion, Address>;
    priceFeed: Address;
  };
  /** The bearer token of the service's /admin API. */
  adminToken: string;
  /** The key the service signs sponsorships with, authorised on both paymasters. */
  sponsorshipSigner: { address: Address; privateKey: Hex };
  sandbox: {
    /** The ALIPAY_* and WECHATPAY_* settings the service runs with, private keys included. */
    merchantEnvironment: Record<string, string>;
    /** The simulated gateways' own keys (their signing keys, the merchant keys they verify with). */
    gatewayKeys: unknown;
  };
  devAccounts: {
    mnemonic: string;
    accounts: { index: number; address: Address; privateKey: Hex; balanceEth: string; role: string }[];
  };
  /** Every child process, in start order, with its log file. */
  processes: { name: string; pid: number; log: string }[];
  /** The folder holding this file, Redis's data and the logs. */
  dir: string;
};

/** Where the description of the stack run from `dir` lives. */
export const stackFilePath = (dir: string) => path.join(dir, "stack.json");

/** Writes the description (0600, atomically). */
export function writeStackFile(dir: string, description: StackDescription): void {
  writePrivateFile(stackFilePath(dir), `${JSON.stringify(description, null, 2)}\n`);
}

/** The description left in `dir`, or null when there is none or it cannot be read. */
export function readStackFile(dir: string): StackDescription | null {
  const file = stackFilePath(dir);
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, "utf8")) as StackDescription;
  } catch {
    return null;
  }
}

export function removeStackFile(dir: string): void {
  rmSync(stackFilePath(dir), { force: true });
}

/** Whether process `pid` is alive and, where /proc can tell, its command line contains `needle` (a reused pid is not ours). */
export function isRunning(pid: number, needle?: string): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch {
    // ESRCH: gone. EPERM: another user's, so not a process of this stack.
    return false;
  }
  if (needle === undefined) return true;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(needle);
  } catch {
    // No /proc (macOS): trust the pid.
    return true;
  }
}
