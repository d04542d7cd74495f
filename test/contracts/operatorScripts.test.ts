// End-to-end tests of the operator CLI (scripts/paymaster.ts): each test runs the real CLI as a
// child process against a real `hardhat node` JSON-RPC server, then checks the chain directly.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createRequire } from "node:module";
import { type AddressInfo, createServer } from "node:net";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

import {
  type Abi,
  type Address,
  type Hex,
  createPublicClient,
  createTestClient,
  createWalletClient,
  encodeFunctionData,
  http,
  parseEther,
  zeroAddress,
} from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { hardhat } from "viem/chains";
import { formatAbiItem } from "viem/utils";

import { connectOperator, send } from "../../scripts/operator/chain.ts";
import { paymasterAbi } from "../../scripts/operator/contracts.ts";
import type { EntryPointVersion } from "../../service/chain/entryPoints.ts";
import {
  ENTRYPOINT_ADDRESS,
  ENTRYPOINT_VERSIONS,
  deployEntryPoint,
  entryPointAbi,
  installCreate2Deployer,
} from "../support/aa.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CLI = fileURLToPath(new URL("../../scripts/paymaster.ts", import.meta.url));
const require = createRequire(import.meta.url);
// What `npx hardhat` runs; started with this test's own Node 22 rather than through npx, so that
// killing the child kills the node itself and not a wrapper.
const HARDHAT_CLI = fileURLToPath(new URL("../../node_modules/.bin/hardhat", import.meta.url));

/** The first dev accounts of `hardhat node` (its well-known mnemonic), each funded with 10,000 ETH. */
const DEV_KEYS = {
  deployer: "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
  owner: "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
  manager: "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
  stranger: "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
} as const satisfies Record<string, Hex>;
const dev = {
  deployer: privateKeyToAccount(DEV_KEYS.deployer),
  owner: privateKeyToAccount(DEV_KEYS.owner),
  manager: privateKeyToAccount(DEV_KEYS.manager),
  stranger: privateKeyToAccount(DEV_KEYS.stranger),
};

const paymasterArtifact = (version: EntryPointVersion): { abi: Abi } => {
  const name = version === "0.7" ? "FiatGasPaymasterV7" : "FiatGasPaymasterV8";
  return require(`../../artifacts/contracts/${name}.sol/${name}.json`);
};

/** A loopback port nothing listens on right now. */
async function freePort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, "close");
  return port;
}

/** Starts `hardhat node` on loopback and resolves once it answers eth_chainId. */
async function startHardhatNode(port: number): Promise<ChildProcess> {
  // stdout is ignored: the node logs every request there, and an unread pipe would stall it.
  const child = spawn(process.execPath, [HARDHAT_CLI, "node", "--hostname", "127.0.0.1", "--port", String(port)], {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (chunk) => (stderr += chunk));
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`hardhat node exited with ${child.exitCode}: ${stderr}`);
    try {
      const response = await fetch(`http://127.0.0.1:${port}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
      });
      if (response.ok) return child;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill();
  throw new Error(`hardhat node did not answer within 60 s: ${stderr}`);
}

type CliRun = { code: number | null; stdout: string; stderr: string };

/** Runs the CLI with only `env` (and PATH) in its environment, so the caller's shell cannot leak in. */
async function runCli(args: string[], env: Record<string, string>): Promise<CliRun> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? "", ...env } });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => (stdout += chunk));
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const [code] = await once(child, "close");
  return { code, stdout, stderr };
}

/** Runs a CLI command with --json, asserts it succeeded, and returns the parsed output. */
async function runJson(args: string[], env: Record<string, string>) {
  const run = await runCli([...args, "--json"], env);
  assert.equal(run.code, 0, `CLI failed: ${run.stderr}`);
  return JSON.parse(run.stdout);
}

/** Asserts a refusal: the exit code, a single `error:` line containing `message`, and no stack trace. */
function assertRefused(run: CliRun, code: number, message: string | RegExp) {
  assert.equal(run.code, code, `expected exit ${code}; stdout: ${run.stdout}; stderr: ${run.stderr}`);
  assert.equal(run.stdout, "");
  const errorLines = run.stderr.split("\n").filter((line) => line.startsWith("error: "));
  assert.equal(errorLines.length, 1, run.stderr);
  assert.doesNotMatch(run.stderr, /^\s+at /m, "no stack trace");
  if (typeof message === "string") assert.ok(errorLines[0].includes(message), `"${errorLines[0]}" lacks "${message}"`);
  else assert.match(errorLines[0], message);
}

const WEI = (eth: string) => parseEther(eth).toString();
const DAY = 86_400;

let node: ChildProcess;
let rpcUrl: string;
let port: number;
let publicClient: ReturnType<typeof createPublicClient<ReturnType<typeof http>, typeof hardhat>>;
let testClient: ReturnType<typeof createTestClient>;

before(async () => {
  port = await freePort();
  node = await startHardhatNode(port);
  rpcUrl = `http://127.0.0.1:${port}`;
  publicClient = createPublicClient({ chain: hardhat, transport: http(rpcUrl), pollingInterval: 50 });
  testClient = createTestClient({ chain: hardhat, mode: "hardhat", transport: http(rpcUrl) });
  const walletClient = createWalletClient({ chain: hardhat, account: dev.deployer, transport: http(rpcUrl) });
  await installCreate2Deployer((address, code) =>
    testClient.setCode({ address: address as Address, bytecode: code as Hex }),
  );
  for (const version of ENTRYPOINT_VERSIONS) {
    await deployEntryPoint(version, { publicClient, walletClient });
  }
});

after(() => {
  node?.kill();
});

/** Deploys a paymaster through the CLI and returns its address. */
async function deployPaymaster(version: EntryPointVersion, signers: Address[]): Promise<Address> {
  const result = await runJson(
    ["deploy", "--entrypoint-version", version, "--owner", dev.owner.address, "--signers", signers.join(",")],
    { RPC_URL: rpcUrl, PRIVATE_KEY: DEV_KEYS.deployer, MANAGER: dev.manager.address },
  );
  return result.status.paymaster;
}

const depositInfo = (paymaster: Address, version: EntryPointVersion) =>
  publicClient.readContract({
    address: ENTRYPOINT_ADDRESS[version],
    abi: entryPointAbi,
    functionName: "getDepositInfo",
    args: [paymaster],
  }) as Promise<{ deposit: bigint; staked: boolean; stake: bigint; unstakeDelaySec: number; withdrawTime: number }>;

for (const version of ENTRYPOINT_VERSIONS) {
  describe(`operator CLI on EntryPoint v${version}`, () => {
    const firstSigner = privateKeyToAccount(generatePrivateKey()).address;
    const secondSigner = privateKeyToAccount(generatePrivateKey()).address;
    let paymaster: Address;
    const env = (key: Hex) => ({ RPC_URL: rpcUrl, PRIVATE_KEY: key, PAYMASTER_ADDRESS: paymaster });

    it("deploys the paymaster for the canonical EntryPoint, with flags and env mixed", async () => {
      const result = await runJson(
        ["deploy", "--owner", dev.owner.address, "--signers", firstSigner],
        { RPC_URL: rpcUrl, PRIVATE_KEY: DEV_KEYS.deployer, ENTRYPOINT_VERSION: version, MANAGER: dev.manager.address },
      );
      paymaster = result.status.paymaster;
      const receipt = await publicClient.getTransactionReceipt({ hash: result.transaction.hash });
      assert.equal(receipt.contractAddress?.toLowerCase(), paymaster.toLowerCase());
      assert.deepEqual(result.status.entryPoint, { address: ENTRYPOINT_ADDRESS[version], version });
      const abi = paymasterArtifact(version).abi;
      assert.equal(await publicClient.readContract({ address: paymaster, abi, functionName: "owner" }), dev.owner.address);
      assert.equal(await publicClient.readContract({ address: paymaster, abi, functionName: "manager" }), dev.manager.address);
      assert.deepEqual(await publicClient.readContract({ address: paymaster, abi, functionName: "signers" }), [firstSigner]);
    });

    it("deposits a decimal ETH amount from any key", async () => {
      const result = await runJson(["deposit", "--amount", "1.5"], env(DEV_KEYS.stranger));
      assert.match(result.transaction.hash, /^0x[0-9a-f]{64}$/);
      assert.deepEqual(result.status.deposit, { eth: "1.5", wei: WEI("1.5") });
      assert.equal((await depositInfo(paymaster, version)).deposit, parseEther("1.5"));
    });

    it("reports the on-chain state with status --json", async () => {
      const status = await runJson(["status"], { RPC_URL: rpcUrl, PAYMASTER_ADDRESS: paymaster });
      const block = await publicClient.getBlock();
      assert.deepEqual(status, {
        paymaster,
        chainId: 31337,
        block: { number: Number(block.number), timestamp: Number(block.timestamp) },
        entryPoint: { address: ENTRYPOINT_ADDRESS[version], version },
        owner: dev.owner.address,
        pendingOwner: null,
        manager: dev.manager.address,
        signers: [firstSigner],
        deposit: { eth: "1.5", wei: WEI("1.5") },
        stake: { eth: "0", wei: "0" },
        staked: false,
        unstakeDelaySec: 0,
        withdrawTime: 0,
      });
    });

    it("prints the same state as text without --json", async () => {
      const run = await runCli(["status"], { RPC_URL: rpcUrl, PAYMASTER_ADDRESS: paymaster });
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, new RegExp(`^entry point +${ENTRYPOINT_ADDRESS[version]} \\(v${version}\\)$`, "m"));
      assert.match(run.stdout, /^deposit +1\.5 ETH \(1500000000000000000 wei\)$/m);
      assert.match(run.stdout, /^pending owner +none$/m);
    });

    it("adds a signer with the manager's key", async () => {
      const result = await runJson(["add-signer", "--signer", secondSigner], env(DEV_KEYS.manager));
      assert.deepEqual(result.status.signers, [firstSigner, secondSigner]);
    });

    it("removes a signer with the owner's key", async () => {
      const result = await runJson(["remove-signer", "--signer", firstSigner], env(DEV_KEYS.owner));
      assert.deepEqual(result.status.signers, [secondSigner]);
    });

    it("stakes with the default unstake delay of one day", async () => {
      const result = await runJson(["stake", "--amount", "1"], env(DEV_KEYS.owner));
      assert.equal(result.status.staked, true);
      assert.deepEqual(result.status.stake, { eth: "1", wei: WEI("1") });
      assert.equal(result.status.unstakeDelaySec, DAY);
      const info = await depositInfo(paymaster, version);
      assert.equal(info.stake, parseEther("1"));
      assert.equal(info.deposit, parseEther("1.5"), "the stake is kept apart from the deposit");
    });

    it("refuses to withdraw a locked stake before sending anything", async () => {
      const blockBefore = await publicClient.getBlockNumber();
      const run = await runCli(["withdraw-stake", "--to", dev.owner.address], env(DEV_KEYS.owner));
      assertRefused(run, 1, "the stake is locked: run unlock-stake");
      assert.equal(await publicClient.getBlockNumber(), blockBefore);
    });

    it("unlocks the stake", async () => {
      const result = await runJson(["unlock-stake"], env(DEV_KEYS.owner));
      const block = await publicClient.getBlock({ blockNumber: BigInt(result.transaction.blockNumber) });
      assert.equal(result.status.staked, false);
      assert.equal(result.status.withdrawTime, Number(block.timestamp) + DAY);
    });

    it("refuses to withdraw the stake before the delay has passed", async () => {
      const run = await runCli(["withdraw-stake", "--to", dev.owner.address], env(DEV_KEYS.owner));
      assertRefused(run, 1, /the unstake delay has not passed: .* \(in \d+ s\)$/);
    });

    it("withdraws the whole stake once the delay has passed", async () => {
      await testClient.increaseTime({ seconds: DAY + 1 });
      await testClient.mine({ blocks: 1 });
      const treasury = privateKeyToAccount(generatePrivateKey()).address;
      const result = await runJson(["withdraw-stake", "--to", treasury], env(DEV_KEYS.owner));
      assert.deepEqual(result.status.stake, { eth: "0", wei: "0" });
      assert.equal(result.status.withdrawTime, 0);
      assert.equal(await publicClient.getBalance({ address: treasury }), parseEther("1"));
    });

    it("withdraws part of the deposit, then all of it", async () => {
      const treasury = privateKeyToAccount(generatePrivateKey()).address;
      const part = await runJson(["withdraw-deposit", "--to", treasury, "--amount", "0.25"], env(DEV_KEYS.owner));
      assert.deepEqual(part.status.deposit, { eth: "1.25", wei: WEI("1.25") });
      const rest = await runJson(["withdraw-deposit", "--to", treasury], { ...env(DEV_KEYS.owner), AMOUNT: "all" });
      assert.deepEqual(rest.status.deposit, { eth: "0", wei: "0" });
      assert.equal(await publicClient.getBalance({ address: treasury }), parseEther("1.5"));
    });
  });
}

describe("operator CLI refusals", () => {
  const signer = privateKeyToAccount(generatePrivateKey()).address;
  let paymaster: Address;

  before(async () => {
    paymaster = await deployPaymaster("0.7", [signer]);
    await runJson(["deposit", "--amount", "1"], { RPC_URL: rpcUrl, PRIVATE_KEY: DEV_KEYS.owner, PAYMASTER_ADDRESS: paymaster });
  });

  const env = (key: Hex, extra: Record<string, string> = {}) => ({
    RPC_URL: rpcUrl,
    PRIVATE_KEY: key,
    PAYMASTER_ADDRESS: paymaster,
    ...extra,
  });

  /** Runs the CLI and asserts the refusal left the chain untouched (no block, so no transaction). */
  async function refused(args: string[], environment: Record<string, string>, code: number, message: string | RegExp) {
    const blockBefore = await publicClient.getBlockNumber();
    const run = await runCli(args, environment);
    assertRefused(run, code, message);
    assert.equal(await publicClient.getBlockNumber(), blockBefore, "nothing was sent");
    assert.equal((await depositInfo(paymaster, "0.7")).deposit, parseEther("1"));
    return run;
  }

  it("names a malformed RPC_URL", async () => {
    await refused(["deposit", "--amount", "1"], env(DEV_KEYS.owner, { RPC_URL: "ftp://127.0.0.1" }), 2, "error: RPC_URL must be an http(s) URL");
  });

  it("names a malformed PRIVATE_KEY without printing it", async () => {
    const key = "0x1234abcd";
    const run = await refused(["deposit", "--amount", "1"], env(key as Hex), 2, "error: PRIVATE_KEY must be a 32-byte hex key");
    assert.ok(!run.stderr.includes("1234abcd"));
  });

  it("refuses a private key given as a flag, without printing it", async () => {
    const run = await refused(
      ["deposit", "--amount", "1", `--private-key=${DEV_KEYS.owner}`],
      env(DEV_KEYS.owner),
      2,
      "--private-key is not accepted: set PRIVATE_KEY in the environment",
    );
    assert.ok(!run.stderr.includes(DEV_KEYS.owner.slice(2)));
  });

  it("names a missing variable and its flag", async () => {
    await refused(
      ["add-signer", "--signer", signer],
      { RPC_URL: rpcUrl, PRIVATE_KEY: DEV_KEYS.owner },
      2,
      "error: PAYMASTER_ADDRESS is required (set PAYMASTER_ADDRESS or pass --paymaster-address)",
    );
  });

  it("names a bad amount by the flag or the variable that supplied it", async () => {
    const owner = env(DEV_KEYS.owner);
    await Promise.all([
      refused(["deposit", "--amount", "1.5.0"], owner, 2, "error: --amount must be an amount of ETH as a decimal string"),
      refused(["deposit"], { ...owner, AMOUNT: "1e18" }, 2, "error: AMOUNT must be an amount of ETH as a decimal string"),
      refused(["deposit", "--amount", "0.0000000000000000001"], owner, 2, "--amount has more than 18 decimals"),
      refused(["deposit", "--amount", "0"], owner, 2, "--amount must be more than 0"),
      refused(["withdraw-deposit", "--to", dev.owner.address, "--amount", "most"], owner, 2, '--amount must be "all" or an amount of ETH'),
    ]);
  });

  it("refuses an unstake delay bundlers would not accept", async () => {
    await Promise.all([
      refused(["stake", "--amount", "1", "--unstake-delay", "3600"], env(DEV_KEYS.owner), 2, "--unstake-delay must be at least 86400 seconds"),
      refused(["stake", "--amount", "1"], env(DEV_KEYS.owner, { UNSTAKE_DELAY: "2.5" }), 2, "UNSTAKE_DELAY must be a whole number of seconds"),
    ]);
  });

  it("reports every bad value at once", async () => {
    await refused(
      ["deploy", "--entrypoint-version", "0.6", "--signers", `${signer},${signer}`],
      { RPC_URL: rpcUrl, PRIVATE_KEY: DEV_KEYS.deployer, OWNER: zeroAddress, MANAGER: "0x1234" },
      2,
      `error: --entrypoint-version must be "0.7" or "0.8"; OWNER must not be the zero address; MANAGER must be an address`,
    );
  });

  it("refuses an owner-only command from a non-owner key before sending", async () => {
    const nonce = await publicClient.getTransactionCount({ address: dev.manager.address });
    await refused(
      ["withdraw-deposit", "--to", dev.manager.address, "--amount", "0.1"],
      env(DEV_KEYS.manager),
      1,
      `error: only the owner ${dev.owner.address} may do this, and PRIVATE_KEY is ${dev.manager.address}`,
    );
    assert.equal(await publicClient.getTransactionCount({ address: dev.manager.address }), nonce);
  });

  it("refuses signer changes from a key that is neither manager nor owner", async () => {
    await refused(
      ["add-signer", "--signer", dev.stranger.address],
      env(DEV_KEYS.stranger),
      1,
      `only the manager ${dev.manager.address} or the owner ${dev.owner.address} may do this`,
    );
  });

  it("refuses to withdraw more than the deposit", async () => {
    await refused(
      ["withdraw-deposit", "--to", dev.owner.address, "--amount", "1.000000000000000001"],
      env(DEV_KEYS.owner),
      1,
      "error: cannot withdraw 1.000000000000000001 ETH: the deposit is only 1 ETH",
    );
  });

  it("refuses to add a signer twice or remove an absent one", async () => {
    await Promise.all([
      refused(["add-signer", "--signer", signer], env(DEV_KEYS.manager), 1, `${signer} is already a signer`),
      refused(["remove-signer", "--signer", dev.stranger.address], env(DEV_KEYS.manager), 1, `${dev.stranger.address} is not a signer`),
    ]);
  });

  it("refuses to unlock or withdraw a stake that does not exist", async () => {
    await Promise.all([
      refused(["unlock-stake"], env(DEV_KEYS.owner), 1, "the paymaster has no stake to unlock"),
      refused(["withdraw-stake", "--to", dev.owner.address], env(DEV_KEYS.owner), 1, "the paymaster has no stake to withdraw"),
    ]);
  });

  it("turns a revert the checks missed into a refusal before signing", async () => {
    // Calls send() directly, skipping the commands' own checks, to exercise the last guard.
    const operator = await connectOperator(rpcUrl, dev.owner, () => {});
    const blockBefore = await publicClient.getBlockNumber();
    const addExisting = encodeFunctionData({ abi: paymasterAbi, functionName: "addSigner", args: [signer] });
    await assert.rejects(send(operator, { to: paymaster, data: addExisting, description: "addSigner" }), {
      name: "OperatorError",
      message: `addSigner would fail: SignerAlreadyAdded(${signer})`,
    });
    const overdraw = encodeFunctionData({ abi: paymasterAbi, functionName: "withdrawTo", args: [dev.owner.address, parseEther("2")] });
    await assert.rejects(send(operator, { to: paymaster, data: overdraw, description: "withdrawTo" }), {
      name: "OperatorError",
      message: "withdrawTo would fail: Withdraw amount too large",
    });
    assert.equal(await publicClient.getBlockNumber(), blockBefore);
  });

  it("refuses a paymaster address with no code, or with code that is not a paymaster", async () => {
    const empty = privateKeyToAccount(generatePrivateKey()).address;
    const stop = privateKeyToAccount(generatePrivateKey()).address;
    await testClient.setCode({ address: stop, bytecode: "0x00" });
    await Promise.all([
      refused(["status"], { RPC_URL: rpcUrl, PAYMASTER_ADDRESS: empty }, 1, `PAYMASTER_ADDRESS ${empty} has no code on chain 31337`),
      refused(["status"], { RPC_URL: rpcUrl, PAYMASTER_ADDRESS: stop }, 1, `PAYMASTER_ADDRESS ${stop} is not a FiatGasPaymaster`),
    ]);
  });

  it("never prints an RPC URL's credentials, query or path", async () => {
    const secretUrl = (p: number) => `http://operator:hunter2@127.0.0.1:${p}/v3/apikey42?token=sekrit`;
    const ok = await runCli(["status"], { RPC_URL: secretUrl(port), PAYMASTER_ADDRESS: paymaster });
    assert.equal(ok.code, 0, ok.stderr);
    const closedPort = await freePort();
    const unreachable = await runCli(["status"], { RPC_URL: secretUrl(closedPort), PAYMASTER_ADDRESS: paymaster });
    assertRefused(unreachable, 1, `cannot reach RPC_URL http://127.0.0.1:${closedPort}/…`);
    for (const output of [ok.stdout + ok.stderr, unreachable.stderr]) {
      for (const secret of ["hunter2", "operator", "apikey42", "sekrit"]) assert.ok(!output.includes(secret), secret);
    }
  });

  it("shows --help for every command, naming its flags and variables", async () => {
    const expectedFlag: Record<string, string> = {
      deploy: "--entrypoint-version",
      deposit: "--amount",
      stake: "--unstake-delay",
      "unlock-stake": "--paymaster-address",
      "withdraw-stake": "--to",
      "withdraw-deposit": "--amount",
      "add-signer": "--signer",
      "remove-signer": "--signer",
      status: "--json",
    };
    const runs = await Promise.all(Object.keys(expectedFlag).map((command) => runCli([command, "--help"], {})));
    for (const [index, [command, flag]] of Object.entries(expectedFlag).entries()) {
      const run = runs[index];
      assert.equal(run.code, 0, run.stderr);
      assert.ok(run.stdout.includes(`npm run paymaster -- ${command}`), command);
      assert.ok(run.stdout.includes(flag), `${command} --help lacks ${flag}`);
      assert.ok(run.stdout.includes("RPC_URL"), command);
    }
  });

  it("rejects an unknown command or flag with a usage exit code", async () => {
    assertRefused(await runCli(["withdraw"], {}), 2, 'unknown command "withdraw"');
    assertRefused(await runCli(["status", "--verbose"], {}), 2, "Unknown option '--verbose'");
  });
});

/** `name(type,…)`; viem's formatAbiItem has no constructor case. */
const signatureOf = (item: Abi[number]) =>
  item.type === "constructor" ? `constructor(${item.inputs.map((input) => input.type).join(",")})` : formatAbiItem(item);

describe("operator ABI", () => {
  it("matches the compiled paymaster contracts", () => {
    for (const version of ENTRYPOINT_VERSIONS) {
      const compiled = paymasterArtifact(version).abi;
      for (const item of paymasterAbi) {
        const match = compiled.find(
          (entry) => entry.type === item.type && ("name" in item ? "name" in entry && entry.name === item.name : true),
        );
        const label = `${item.type} ${"name" in item ? item.name : ""} on v${version}`;
        assert.ok(match, `${label} is missing from the artifact`);
        assert.equal(signatureOf(match), signatureOf(item), label);
        if (item.type === "function" && match.type === "function") {
          assert.equal(match.stateMutability, item.stateMutability, label);
          assert.deepEqual(
            match.outputs.map((output) => output.type),
            item.outputs.map((output) => output.type),
            label,
          );
        }
      }
    }
  });
});
