// `node service/main.ts` as a child process with a clean environment: how it refuses to start.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { describe, it } from "node:test";

import { freePort } from "../test/support/redis.ts";

const MAIN = path.join(import.meta.dirname, "main.ts");
const SESSION_SECRET = "5e".repeat(32);
const ADMIN_TOKEN = "ad".repeat(16);
const VALID_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

/** Runs main.ts with exactly `env`; resolves with its exit code and output. */
function runMain(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Asserts that `output` shows no stack frame and none of `secrets` (hex, with or without 0x, or as a decimal number). */
function assertClean(output: string, secrets: string[]) {
  assert.doesNotMatch(output, /^\s+at /m, "no stack trace");
  for (const secret of secrets) {
    const hex = secret.replace(/^0x/, "");
    assert.ok(!output.toLowerCase().includes(hex.toLowerCase()), "a secret is printed as hex");
    if (/^[0-9a-f]+$/i.test(hex)) assert.ok(!output.includes(BigInt(`0x${hex}`).toString()), "a secret is printed as a number");
  }
}

describe("node service/main.ts", () => {
  it("exits with code 2 and lists every bad setting on stderr, without a stack or secret values", async () => {
    const badKey = VALID_KEY.slice(0, -1);
    const shortSecret = SESSION_SECRET.slice(0, 40);
    const { code, stdout, stderr } = await runMain({ SIGNER_PRIVATE_KEY: badKey, SESSION_SECRET: shortSecret, CHAIN_ID: "abc", LOG_LEVEL: "loud" });
    assert.equal(code, 2, stderr);
    assert.equal(stdout, "");
    const problems = stderr.slice(stderr.indexOf("invalid configuration:\n")).trim().split("\n");
    assert.deepEqual(problems, [
      "invalid configuration:",
      "  - LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent",
      "  - RPC_URL is required",
      "  - CHAIN_ID must be an integer",
      "  - REDIS_URL is required",
      "  - SIGNER_PRIVATE_KEY must be a 32-byte 0x-prefixed hex key",
      "  - ADMIN_TOKEN is required: the bearer token of the /admin API, at least 32 characters (openssl rand -hex 32)",
      "  - SESSION_SECRET must be at least 32 bytes (64 hex digits)",
      "  - SIWE_DOMAIN is required: the site's host[:port] that wallets show, e.g. app.fiatgas.example",
      "  - PAYMASTER_V07_ADDRESS and/or PAYMASTER_V08_ADDRESS is required: the service needs a paymaster to sign for",
    ]);
    assertClean(stderr, [badKey, shortSecret]);
  });

  it("refuses a signer key outside the curve's range as a setting, not with a crash that prints it", async () => {
    const outOfRange = `0x${"ff".repeat(32)}`;
    const { code, stderr } = await runMain({
      RPC_URL: "http://127.0.0.1:1",
      CHAIN_ID: "31337",
      REDIS_URL: "redis://127.0.0.1:1",
      PAYMASTER_V07_ADDRESS: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
      SIGNER_PRIVATE_KEY: outOfRange,
      PRICE_SOURCE: "static",
      STATIC_PRICE: "25000",
      SESSION_SECRET,
      ADMIN_TOKEN,
      SIWE_DOMAIN: "app.fiatgas.example",
    });
    assert.equal(code, 2, stderr);
    assert.match(stderr, /^ {2}- SIGNER_PRIVATE_KEY is not a valid secp256k1 private key/m);
    assertClean(stderr, [outOfRange, SESSION_SECRET, ADMIN_TOKEN]);
  });

  it("exits with code 2 and names Redis when nothing answers at REDIS_URL", async () => {
    const [rpcPort, redisPort] = [await freePort(), await freePort()];
    const { code, stderr } = await runMain({
      RPC_URL: `http://127.0.0.1:${rpcPort}`,
      CHAIN_ID: "31337",
      REDIS_URL: `redis://:hunter2hunter2@127.0.0.1:${redisPort}`,
      PAYMASTER_V07_ADDRESS: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
      SIGNER_PRIVATE_KEY: VALID_KEY,
      PRICE_SOURCE: "static",
      STATIC_PRICE: "25000",
      SESSION_SECRET,
      ADMIN_TOKEN,
      SIWE_DOMAIN: "app.fiatgas.example",
      LOG_LEVEL: "silent",
    });
    assert.equal(code, 2, stderr);
    assert.match(stderr.trim(), /^preflight failed:\n {2}- Redis at REDIS_URL does not answer: [^\n]+$/);
    assertClean(stderr, [VALID_KEY, SESSION_SECRET, ADMIN_TOKEN, "hunter2hunter2"]);
  });
});
