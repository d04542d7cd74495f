// Brings the local stack up, component by component, and describes it. Every start is clean: the
// chain (Hardhat's node) keeps its state in memory only, so Redis's balances, reservations and
// settlement cursor, the sandbox's orders and every key are made anew with it; nothing can refer
// to a chain that no longer exists.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";

import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";

import { ENTRYPOINT_VERSIONS } from "../../service/chain/entryPoints.ts";
import { serviceConfigSchema } from "../../service/config.ts";
// @ts-expect-error: a plain .mjs helper shared with the test runner.
import { ensureRedisServer } from "../toolchain/ensure-redis.mjs";
import { ALTO_ACCOUNTS, altoArgs, bundlerAnswers } from "./alto.ts";
import {
  DEPLOYER_INDEX,
  HARDHAT_CLI,
  LOCAL_CHAIN_ID,
  chainAnswers,
  chainLogFilter,
  contractsNeedBuild,
  deployContracts,
  describeDevAccounts,
  hardhatNodeArgs,
  setBlockTime,
} from "./chain.ts";
import { type Component, type StackOptions, UsageError } from "./options.ts";
import { freePort, isPortFree } from "./ports.ts";
import { type ManagedProcess, type Supervisor, describeExit, tailFile } from "./processes.ts";
import { redisServerArgs, waitForRedis } from "./redis.ts";
import { type StackDescription, isRunning, readStackFile, removeStackFile } from "./stackFile.ts";

const root = path.resolve(import.meta.dirname, "../..");

/** A component that failed to start or stopped; the message says which and shows its log's end. */
export class StackError extends Error {
  override name = "StackError";
}

/** Reports a component as it comes up: its name and one line about it. */
export type Progress = (component: string, detail: string) => void;

/** The folders and files a stack keeps under its `dir`. */
export function stackPaths(dir: string) {
  return { redis: path.join(dir, "redis"), logs: path.join(dir, "logs"), sandboxKeys: path.join(dir, "sandbox-keys.json") };
}

/** What each child's command line contains, to tell our leftovers from a process that reused a pid. */
const COMMAND_OF: Record<string, string> = { chain: "hardhat", redis: "redis-server", sandbox: "scripts/sandbox/main.ts", bundler: "alto", service: "service/main.ts" };

/** The error for a child that exited or never answered while starting, with the end of its log. */
function startFailure(child: ManagedProcess, what: string): StackError {
  const tail = tailFile(child.logFile);
  const state = child.exit ? `exited while starting (${describeExit(child.exit)})` : what;
  return new StackError(`${child.name} ${state}. ${tail ? `Last lines of ${child.logFile}:\n${indent(tail)}` : `Its log, ${child.logFile}, is empty.`}`);
}

const indent = (text: string) => text.replace(/^/gm, "    ");

/** Polls `probe` until it returns a value; fails when the child exits or `timeoutMs` passes. */
async function waitFor<T>(child: ManagedProcess, probe: () => Promise<T | null>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exit) throw startFailure(child, "exited");
    const value = await probe();
    if (value !== null) return value;
    if (Date.now() >= deadline) throw startFailure(child, `did not answer within ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** GET `url` as JSON; null while it does not answer 200. */
async function getJson<T>(url: string): Promise<T | null> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    return response.status === 200 ? ((await response.json()) as T) : null;
  } catch {
    return null;
  }
}

/** Refuses to start over a stack still running from `dir`, or over one that left processes behind. */
function checkNotRunning(dir: string): void {
  const previous = readStackFile(dir);
  if (!previous) return;
  if (isRunning(previous.pid, "scripts/stack/start.ts")) {
    throw new UsageError(`a stack is already running from ${dir} (pid ${previous.pid}, started ${previous.startedAt}): stop it first (Ctrl-C in its terminal, or kill -INT ${previous.pid})`);
  }
  const leftovers = (previous.processes ?? []).filter(({ name, pid }) => isRunning(pid, COMMAND_OF[name]));
  if (leftovers.length > 0) {
    throw new UsageError(
      `the stack that ran from ${dir} (pid ${previous.pid}) was killed without stopping its processes, which still run: ` +
        `${leftovers.map(({ name, pid }) => `${name} (pid ${pid})`).join(", ")}. Stop them (kill ${leftovers.map(({ pid }) => pid).join(" ")}) and start again.`,
    );
  }
}

/** The requested ports, with 0 replaced by a free one; every fixed port must be free and used once. */
async function resolvePorts(requested: Record<Component, number>): Promise<Record<Component, number>> {
  const problems: string[] = [];
  const seen = new Map<number, Component>();
  for (const [component, port] of Object.entries(requested) as [Component, number][]) {
    if (port === 0) continue;
    const other = seen.get(port);
    if (other) problems.push(`port ${port} is given to both ${other} and ${component}: use --${component}-port N to choose another`);
    else if (!(await isPortFree(port))) problems.push(`port ${port} (${component}) on 127.0.0.1 is in use: stop what holds it, or choose another with --${component}-port N (0: any free port)`);
    seen.set(port, component);
  }
  if (problems.length > 0) throw new UsageError(problems.join("\n"));
  const ports = { ...requested };
  for (const component of Object.keys(ports) as Component[]) {
    while (ports[component] === 0) {
      const port = await freePort();
      if (!seen.has(port)) {
        ports[component] = port;
        seen.set(port, component);
      }
    }
  }
  return ports;
}

/** A stack ready to launch: checked, its ports chosen, the previous run's data removed. */
export type PreparedStack = { options: StackOptions; ports: Record<Component, number>; redisBinary: string };

/**
 * Everything before the first child starts: refuses (UsageError) a stack still running from the
 * same folder or a port in use, picks the free ports asked for, removes the previous run's data,
 * and makes sure Hardhat's native simulator and a redis-server binary are installed.
 */
export async function prepareStack(options: StackOptions): Promise<PreparedStack> {
  const { dir } = options;
  const paths = stackPaths(dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  checkNotRunning(dir);
  const ports = await resolvePorts(options.ports);

  // A clean start: the previous run's data referred to a chain that is gone.
  removeStackFile(dir);
  for (const stale of [paths.redis, paths.logs, paths.sandboxKeys]) rmSync(stale, { recursive: true, force: true });
  mkdirSync(paths.redis, { mode: 0o700 });
  mkdirSync(paths.logs, { mode: 0o700 });

  // Installed if missing, as `npm test` does (see the README's Toolchain).
  execFileSync(process.execPath, [path.join(root, "scripts/toolchain/ensure-edr.mjs")], { cwd: root, stdio: ["ignore", "inherit", "inherit"] });
  const redisBinary: string = ensureRedisServer();
  return { options, ports, redisBinary };
}

/**
 * Starts every component under `supervisor`, reporting each through `progress`, and returns the
 * stack's description (the caller writes stack.json). Throws StackError when a component fails.
 */
export async function launchStack({ options, ports, redisBinary }: PreparedStack, { supervisor, progress }: { supervisor: Supervisor; progress: Progress }): Promise<StackDescription> {
  const { dir } = options;
  const paths = stackPaths(dir);
  const url = (port: number) => `http://127.0.0.1:${port}`;
  const urls = {
    rpc: url(ports.chain),
    bundler: url(ports.bundler),
    service: url(ports.service),
    paymaster: `${url(ports.service)}/rpc`,
    sandbox: url(ports.sandbox),
    redis: `redis://127.0.0.1:${ports.redis}`,
  };
  const spawnOptions = { cwd: root, env: process.env };

  // Started together, stopped in reverse: the service, the bundler, the sandbox, Redis, the chain.
  const build = contractsNeedBuild() ? supervisor.start("build", process.execPath, [HARDHAT_CLI, "build"], { ...spawnOptions, oneShot: true }) : null;
  const chain = supervisor.start("chain", process.execPath, hardhatNodeArgs(ports.chain), { ...spawnOptions, keepLine: chainLogFilter() });
  const redis = supervisor.start("redis", redisBinary, redisServerArgs({ port: ports.redis, dir: paths.redis, durable: true }), spawnOptions);
  const sandbox = supervisor.start("sandbox", process.execPath, [path.join(root, "scripts/sandbox/main.ts"), "--port", String(ports.sandbox), "--keys-file", paths.sandboxKeys], spawnOptions);

  const built = (async () => {
    if (!build) return progress("contracts", "build up to date");
    await build.exited;
    if (build.exit?.code !== 0) throw new StackError(`hardhat build failed (${describeExit(build.exit!)}). Last lines of ${build.logFile}:\n${indent(tailFile(build.logFile, 40))}`);
    progress("contracts", "built (hardhat build)");
  })();
  const chainReady = (async () => {
    await waitFor(chain, async () => ((await chainAnswers(urls.rpc)) ? true : null), 60_000);
    await setBlockTime(urls.rpc, options.blockTimeSeconds);
    const mining = options.blockTimeSeconds > 0 ? `a block every ${options.blockTimeSeconds} s and one per transaction` : "a block per transaction";
    progress("chain", `${urls.rpc}  Hardhat node, chain ${LOCAL_CHAIN_ID}, ${mining}`);
  })();
  const redisReady = (async () => {
    try {
      await waitForRedis(ports.redis, { timeoutMs: 15_000, exited: () => redis.exit !== null });
    } catch {
      throw startFailure(redis, "did not answer within 15 s");
    }
    progress("redis", `${urls.redis}  AOF on, fsync always, data in ${paths.redis}`);
  })();
  const sandboxReady = (async () => {
    const environment = await waitFor(sandbox, () => getJson<Record<string, string>>(`${urls.sandbox}/sandbox/environment`), 60_000);
    progress("sandbox", `${urls.sandbox}  Alipay and WeChat Pay, new keys`);
    return environment;
  })();
  const signerKey = generatePrivateKey();
  const sponsorshipSigner = privateKeyToAccount(signerKey);
  const deployed = (async () => {
    await Promise.all([built, chainReady]);
    const contracts = await deployContracts(urls.rpc, sponsorshipSigner.address);
    progress("contracts", "deployed: EntryPoint v0.7 and v0.8, a SimpleAccountFactory and a FiatGasPaymaster (staked, funded) each, the price feed");
    return contracts;
  })();
  const [contracts, merchantEnvironment] = await Promise.all([deployed, sandboxReady, redisReady]);

  const adminToken = randomBytes(32).toString("hex");
  const serviceSettings: Record<string, string> = {
    HOST: "127.0.0.1",
    PORT: String(ports.service),
    LOG_LEVEL: "info",
    RPC_URL: urls.rpc,
    CHAIN_ID: String(LOCAL_CHAIN_ID),
    REDIS_URL: urls.redis,
    PAYMASTER_V07_ADDRESS: contracts.paymasters["0.7"],
    PAYMASTER_V08_ADDRESS: contracts.paymasters["0.8"],
    SIGNER_PRIVATE_KEY: signerKey,
    ADMIN_TOKEN: adminToken,
    SESSION_SECRET: randomBytes(32).toString("hex"),
    SIWE_DOMAIN: options.siweDomain,
    SIWE_ACCOUNT_FACTORIES: ENTRYPOINT_VERSIONS.map((version) => contracts.simpleAccountFactories[version]).join(","),
    PRICE_SOURCE: "chainlink",
    PRICE_FEED_ADDRESS: contracts.priceFeed,
    // The mock feed reports only when told to: its first answer must not go stale under a running stack.
    PRICE_MAX_AGE_SECONDS: String(7 * 86_400),
    PUBLIC_BASE_URL: urls.service,
    SETTLEMENT_ENABLED: "true",
    // Deep enough to exercise the confirmation logic, shallow enough to settle within seconds; with
    // no interval mining, blocks come only with transactions, so nothing could ever confirm.
    SETTLEMENT_CONFIRMATIONS: options.blockTimeSeconds > 0 ? "2" : "0",
    SETTLEMENT_POLL_MS: "1000",
    REDIS_REQUIRE_DURABLE: "true",
    ...merchantEnvironment,
  };
  // Neither needs the other: both start at once, the bundler first so that the service stops first.
  const bundler = supervisor.start("bundler", process.execPath, altoArgs({ rpcUrl: urls.rpc, entryPoints: ENTRYPOINT_VERSIONS.map((version) => contracts.entryPoints[version]), port: ports.bundler }), spawnOptions);
  const service = supervisor.start("service", process.execPath, [path.join(root, "service/main.ts")], { cwd: root, env: { ...withoutServiceSettings(process.env), ...serviceSettings } });
  await Promise.all([
    waitFor(bundler, async () => ((await bundlerAnswers(urls.bundler)) ? true : null), 60_000).then(() => progress("bundler", `${urls.bundler}  Alto, safe mode off`)),
    waitFor(service, () => getJson<unknown>(`${urls.service}/readyz`), 90_000).then(() => progress("service", `${urls.service}  ready (ERC-7677 at /rpc, API docs at /docs)`)),
  ]);

  const roles: Record<number, string> = {
    [DEPLOYER_INDEX]: "deployer; owner and manager of both paymasters; owner of the price feed (setRoundData)",
    [ALTO_ACCOUNTS.executor]: "the bundler's executor: leave it to Alto",
    [ALTO_ACCOUNTS.utility]: "the bundler's utility account: leave it to Alto",
  };
  return {
    version: 1,
    pid: process.pid,
    startedAt: new Date().toISOString(),
    restart: "clean",
    chainId: LOCAL_CHAIN_ID,
    urls,
    contracts,
    adminToken,
    sponsorshipSigner: { address: sponsorshipSigner.address, privateKey: signerKey },
    sandbox: { merchantEnvironment, gatewayKeys: JSON.parse(readFileSync(paths.sandboxKeys, "utf8")) },
    devAccounts: await describeDevAccounts(urls.rpc, roles),
    processes: supervisor
      .children()
      .filter((child) => child.name !== "build")
      .map(({ name, pid, logFile }) => ({ name, pid, log: logFile })),
    dir,
  };
}

/** The environment without any of the service's own settings, so a stray one in the shell cannot reach the local service. */
function withoutServiceSettings(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const settings = new Set(Object.keys(serviceConfigSchema.shape));
  return Object.fromEntries(Object.entries(env).filter(([name]) => !settings.has(name)));
}
