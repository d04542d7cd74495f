// Runs the local stack's script (`npm start`) as a child process, as a developer would, for the
// tests that need the whole product running.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";

import { PRODUCTION_SETTINGS } from "../../scripts/stack/options.ts";
import { type StackDescription, readStackFile } from "../../scripts/stack/stackFile.ts";
import { within } from "./wait.ts";

const ROOT = path.join(import.meta.dirname, "../..");
const NODE = path.join(ROOT, "node_modules/.bin/node");

/** Every port picked free, so stacks never collide with each other or a developer's own. */
export const FREE_PORTS = ["--chain-port", "0", "--bundler-port", "0", "--service-port", "0", "--sandbox-port", "0", "--redis-port", "0"];
/** The SIWE domain the stack's service accepts by default. */
export const STACK_SIWE_DOMAIN = "localhost:5173";

export type StackRun = { child: ChildProcess; output: () => string; exited: Promise<number | null> };

/** Runs the script `npm start` runs, with no production settings in its environment. */
export function runStack(args: string[], env: Record<string, string> = {}): StackRun {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !(PRODUCTION_SETTINGS as readonly string[]).includes(name)));
  const child = spawn(NODE, ["scripts/stack/start.ts", ...args], { cwd: ROOT, env: { ...inherited, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, output: () => output, exited };
}

/** Waits for the stack to describe itself in stack.json; fails with its output if it exits first. */
export async function waitForStack(run: StackRun, dir: string): Promise<StackDescription> {
  let stack: StackDescription | null = null;
  const ready = await within(120_000, () => {
    assert.equal(run.child.exitCode, null, `the stack exited while starting:\n${run.output()}`);
    stack = readStackFile(dir);
    return stack !== null;
  });
  assert.ok(ready && stack, `no stack.json within 120 s:\n${run.output()}`);
  return stack;
}

/** Whether a process with this pid still runs. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
