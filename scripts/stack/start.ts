// `npm start`: the local stack on 127.0.0.1. Starts Hardhat's node with every contract deployed,
// redis-server, the gateway sandbox, the Alto bundler and the service; prints their URLs and writes
// stack.json; stops them all, newest first, on Ctrl-C (SIGINT), SIGTERM or SIGHUP, or as soon as any
// of them stops by itself. Exit codes: 0 stopped on request; 1 a component failed; 2 cannot start as asked.
import { LOCAL_PRICE_FEED } from "./contracts.ts";
import { USAGE, UsageError, parseOptions, productionModeProblem } from "./options.ts";
import { createSupervisor, describeExit, tailFile } from "./processes.ts";
import { StackError, launchStack, prepareStack, stackPaths } from "./stack.ts";
import { type StackDescription, removeStackFile, stackFilePath, writeStackFile } from "./stackFile.ts";

let options: ReturnType<typeof parseOptions>;
try {
  options = parseOptions(process.argv.slice(2));
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  console.error(`${error.message}\n\n${USAGE}`);
  process.exit(2);
}
if (options.help) {
  console.log(USAGE);
  process.exit(0);
}
const productionMode = productionModeProblem();
if (productionMode) {
  console.error(productionMode);
  process.exit(2);
}

const began = performance.now();
const elapsed = () => `${((performance.now() - began) / 1000).toFixed(1)} s`;
const indent = (text: string) => text.replace(/^/gm, "    ");
let wroteStackFile = false;
let stopping: Promise<never> | null = null;

const supervisor = createSupervisor({
  logDir: stackPaths(options.dir).logs,
  onUnexpectedExit(child) {
    const tail = tailFile(child.logFile);
    void stop(1, `✗ ${child.name} stopped unexpectedly (${describeExit(child.exit!)}).${tail ? ` Last lines of ${child.logFile}:\n${indent(tail)}` : ""}\nStopping the stack.`);
  },
});

/** Stops every child, newest first, removes stack.json and exits with `code`; later calls wait for the first. */
function stop(code: number, reason: string): Promise<never> {
  stopping ??= (async () => {
    (code === 0 ? console.log : console.error)(reason);
    const started = supervisor.children().length > 0;
    await supervisor.stop({
      onStopped(child, forced) {
        if (child.name !== "build") console.log(`  ■ ${child.name} stopped${forced ? " (killed: it ignored SIGTERM for 10 s)" : ""}`);
      },
    });
    if (wroteStackFile) removeStackFile(options.dir);
    if (started) console.log(code === 0 ? "Stopped." : "Stopped: see the message above.");
    process.exit(code);
  })();
  return stopping;
}

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  // A terminal's Ctrl-C can arrive twice (from the terminal and forwarded by npm); the first one counts.
  process.on(signal, () => void stop(0, `\n${signal}: stopping the stack`));
}
process.on("uncaughtException", (error) => void stop(1, `✗ unexpected error: ${error.stack ?? error}\nStopping the stack.`));
process.on("unhandledRejection", (error) => void stop(1, `✗ unexpected error: ${error instanceof Error ? error.stack : String(error)}\nStopping the stack.`));
// Whatever ends this process, no child outlives it.
process.on("exit", () => supervisor.killAll());

try {
  const prepared = await prepareStack(options);
  console.log(`FiatGas local stack: a clean start in ${options.dir} (a new chain, an empty Redis, new keys)`);
  const description = await launchStack(prepared, {
    supervisor,
    progress: (component, detail) => console.log(`  ✓ ${component.padEnd(9)} ${detail}  (${elapsed()})`),
  });
  if (!supervisor.stopping()) {
    writeStackFile(options.dir, description);
    wroteStackFile = true;
    printSummary(description);
  }
} catch (error) {
  if (stopping) await stopping;
  if (error instanceof UsageError) await stop(2, error.message);
  if (error instanceof StackError) await stop(1, `✗ ${error.message}\nStopping the stack.`);
  await stop(1, `✗ unexpected error: ${error instanceof Error ? error.stack : String(error)}\nStopping the stack.`);
}

function printSummary(stack: StackDescription) {
  const pair = (values: Record<string, string>) => Object.entries(values).map(([version, address]) => `v${version} ${address}`).join("   ");
  const fen = LOCAL_PRICE_FEED.answer / 10n ** BigInt(LOCAL_PRICE_FEED.decimals - 2);
  const price = `${fen / 100n}.${String(fen % 100n).padStart(2, "0")}`;
  console.log(`
Local stack ready in ${elapsed()}. Ctrl-C stops it.

  chain RPC    ${stack.urls.rpc}   chain id ${stack.chainId}
  bundler      ${stack.urls.bundler}
  service      ${stack.urls.service}   ERC-7677 paymaster ${stack.urls.paymaster}, API docs ${stack.urls.service}/docs
  sandbox      ${stack.urls.sandbox}   cashier ${stack.urls.sandbox}/cashier/{alipay|wechatpay}/{orderId}
  redis        ${stack.urls.redis}

  EntryPoint   ${pair(stack.contracts.entryPoints)}
  factory      ${pair(stack.contracts.simpleAccountFactories)}
  paymaster    ${pair(stack.contracts.paymasters)}
  price feed   ${stack.contracts.priceFeed}   ${LOCAL_PRICE_FEED.description} ${price}; dev account 0 reports new prices (setRoundData)

  stack.json   ${stackFilePath(stack.dir)} (mode 0600): the admin token, the sandbox's keys, the funded dev accounts
  logs         ${stackPaths(stack.dir).logs}/{${stack.processes.map(({ name }) => name).join(",")}}.log`);
}
