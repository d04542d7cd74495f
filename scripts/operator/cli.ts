// The operator CLI: one table of commands, each with its options and the function it runs.
// Every option is a --flag or the environment variable of the same name (--unstake-delay is
// UNSTAKE_DELAY), the flag winning. RPC_URL and PRIVATE_KEY are environment only, because
// flags end up in shell history and in `ps`.
import { parseArgs } from "node:util";

import { BaseError, formatEther } from "viem";
import { z } from "zod";

import { type TransactionSummary, connect, connectOperator, openPaymaster, revertReason } from "./chain.ts";
import { deploy } from "./deploy.ts";
import { deposit, withdrawDeposit } from "./deposit.ts";
import { OperatorError, UsageError } from "./errors.ts";
import {
  MIN_UNSTAKE_DELAY_SEC,
  address,
  addressList,
  entryPointVersion,
  ethAmount,
  ethAmountOrAll,
  nonZeroAddress,
  positiveEthAmount,
  privateKey,
  rpcUrl,
  unstakeDelaySec,
} from "./inputs.ts";
import { addSigner, removeSigner } from "./signers.ts";
import { stake, unlockStake, withdrawStake } from "./stake.ts";
import { type PaymasterStatus, type WriteResult, readDepositGuard, readStatus, redisKeyPrefix, redisUrl, statusJson, statusText } from "./status.ts";

/** Where the CLI writes: results to `out`; progress and errors to `err`. */
export type Io = { out: (text: string) => void; err: (text: string) => void };

type Option = {
  schema: z.ZodType;
  help: string;
  /** Read only from the environment, never from a flag. */
  envOnly?: boolean;
  /** Used when neither the flag nor the variable is set. */
  default?: string;
};

/** What a command produced: the state it leaves and, for a write, its transaction and a one-line summary. */
type Outcome = { status: PaymasterStatus; write?: { headline: string; transaction: TransactionSummary } };

type Values<O extends Record<string, Option>> = { [K in keyof O]: z.output<O[K]["schema"]> };

type Command<O extends Record<string, Option> = Record<string, Option>> = {
  /** One line, naming who may run it. */
  summary: string;
  details?: string;
  options: O;
  /** Flags for the example in --help; RPC_URL and PRIVATE_KEY are shown set in the environment. */
  example: string;
  run: (values: Values<O>, progress: (line: string) => void) => Promise<Outcome>;
};

/** Type-checks a command's `run` against its own options, then files it in the table. */
const defineCommand = <O extends Record<string, Option>>(definition: Command<O>) =>
  definition as unknown as Command;

const RPC_URL = { schema: rpcUrl, envOnly: true, help: "JSON-RPC endpoint, http(s); only its host is ever printed" };
const keyOf = (role: string) => ({ schema: privateKey, envOnly: true, help: `${role}; never printed` });
const OWNER_KEY = keyOf("the owner's private key");
const PAYMASTER_ADDRESS = { schema: address, help: "the FiatGasPaymaster" };
const TO = { schema: nonZeroAddress, help: "the address that receives the ETH" };

const wrote = ({ transaction, status }: WriteResult, headline: string): Outcome => ({
  status,
  write: { headline, transaction },
});

const commands: Record<string, Command> = {
  deploy: defineCommand({
    summary: "Deploy a FiatGasPaymaster for the canonical EntryPoint of a version (any funded key).",
    options: {
      RPC_URL,
      PRIVATE_KEY: keyOf("the deployer's private key (any funded account; it gets no role)"),
      ENTRYPOINT_VERSION: { schema: entryPointVersion, help: '"0.7" or "0.8"' },
      OWNER: { schema: nonZeroAddress, help: "holds the deposit and stake: the only one who can withdraw" },
      MANAGER: { schema: nonZeroAddress, help: "may add and remove signers" },
      SIGNERS: { schema: addressList, help: "the initial signer addresses, comma-separated" },
    },
    example: "deploy --entrypoint-version 0.7 --owner 0xOwner… --manager 0xManager… --signers 0xSignerA…,0xSignerB…",
    run: async (values, progress) => {
      const operator = await connectOperator(values.RPC_URL, values.PRIVATE_KEY, progress);
      const result = await deploy(operator, {
        entryPointVersion: values.ENTRYPOINT_VERSION,
        owner: values.OWNER,
        manager: values.MANAGER,
        signers: values.SIGNERS,
      });
      return wrote(result, `deployed the paymaster at ${result.status.paymaster}`);
    },
  }),

  deposit: defineCommand({
    summary: "Add ETH to the paymaster's EntryPoint deposit (any funded key).",
    details: "The deposit is what the EntryPoint charges for every sponsored operation.",
    options: {
      RPC_URL,
      PRIVATE_KEY: keyOf("the private key paying in (any funded account)"),
      PAYMASTER_ADDRESS,
      AMOUNT: { schema: positiveEthAmount, help: "ETH to deposit, as a decimal string, e.g. 1.5" },
    },
    example: "deposit --paymaster-address 0xPaymaster… --amount 1.5",
    run: async (values, progress) => {
      const operator = await connectOperator(values.RPC_URL, values.PRIVATE_KEY, progress);
      const result = await deposit(operator, values.PAYMASTER_ADDRESS, values.AMOUNT);
      return wrote(result, `deposited ${formatEther(values.AMOUNT)} ETH`);
    },
  }),

  "withdraw-deposit": defineCommand({
    summary: "Withdraw ETH from the paymaster's EntryPoint deposit (owner).",
    options: {
      RPC_URL,
      PRIVATE_KEY: OWNER_KEY,
      PAYMASTER_ADDRESS,
      TO,
      AMOUNT: { schema: ethAmountOrAll, help: 'ETH to withdraw as a decimal string, or "all"' },
    },
    example: "withdraw-deposit --paymaster-address 0xPaymaster… --to 0xTreasury… --amount all",
    run: async (values, progress) => {
      const operator = await connectOperator(values.RPC_URL, values.PRIVATE_KEY, progress);
      const result = await withdrawDeposit(operator, values.PAYMASTER_ADDRESS, values.TO, values.AMOUNT);
      const amount = values.AMOUNT === "all" ? "the whole deposit" : `${formatEther(values.AMOUNT)} ETH`;
      return wrote(result, `withdrew ${amount} to ${values.TO}`);
    },
  }),

  stake: defineCommand({
    summary: "Add to the paymaster's EntryPoint stake and set the unstake delay (owner).",
    details:
      "Bundlers require the stake because validation reads the paymaster's storage (ERC-7562), " +
      "and each sets a minimum stake for its chain. " +
      "Staking again while the stake is unlocking locks it again.",
    options: {
      RPC_URL,
      PRIVATE_KEY: OWNER_KEY,
      PAYMASTER_ADDRESS,
      AMOUNT: { schema: ethAmount, help: "ETH to add to the stake, e.g. 1; 0 only raises the delay" },
      UNSTAKE_DELAY: {
        schema: unstakeDelaySec,
        default: String(MIN_UNSTAKE_DELAY_SEC),
        help: "seconds between unlock-stake and withdraw-stake; at least a day; can only grow",
      },
    },
    example: "stake --paymaster-address 0xPaymaster… --amount 1 --unstake-delay 86400",
    run: async (values, progress) => {
      const operator = await connectOperator(values.RPC_URL, values.PRIVATE_KEY, progress);
      const result = await stake(operator, values.PAYMASTER_ADDRESS, values.AMOUNT, values.UNSTAKE_DELAY);
      return wrote(result, `staked ${formatEther(values.AMOUNT)} ETH with an unstake delay of ${values.UNSTAKE_DELAY} s`);
    },
  }),

  "unlock-stake": defineCommand({
    summary: "Start the unstake delay (owner).",
    details: "Bundlers stop treating the paymaster as staked at once, so it stops sponsoring through them.",
    options: { RPC_URL, PRIVATE_KEY: OWNER_KEY, PAYMASTER_ADDRESS },
    example: "unlock-stake --paymaster-address 0xPaymaster…",
    run: async (values, progress) => {
      const operator = await connectOperator(values.RPC_URL, values.PRIVATE_KEY, progress);
      return wrote(await unlockStake(operator, values.PAYMASTER_ADDRESS), "unlocked the stake");
    },
  }),

  "withdraw-stake": defineCommand({
    summary: "Withdraw the whole stake once unlock-stake's delay has passed (owner).",
    options: { RPC_URL, PRIVATE_KEY: OWNER_KEY, PAYMASTER_ADDRESS, TO },
    example: "withdraw-stake --paymaster-address 0xPaymaster… --to 0xTreasury…",
    run: async (values, progress) => {
      const operator = await connectOperator(values.RPC_URL, values.PRIVATE_KEY, progress);
      return wrote(await withdrawStake(operator, values.PAYMASTER_ADDRESS, values.TO), `withdrew the stake to ${values.TO}`);
    },
  }),

  "add-signer": defineCommand({
    summary: "Authorise a sponsorship signer (manager or owner).",
    options: {
      RPC_URL,
      PRIVATE_KEY: keyOf("the manager's or the owner's private key"),
      PAYMASTER_ADDRESS,
      SIGNER: { schema: nonZeroAddress, help: "the signer address to authorise" },
    },
    example: "add-signer --paymaster-address 0xPaymaster… --signer 0xNewSigner…",
    run: async (values, progress) => {
      const operator = await connectOperator(values.RPC_URL, values.PRIVATE_KEY, progress);
      return wrote(await addSigner(operator, values.PAYMASTER_ADDRESS, values.SIGNER), `added signer ${values.SIGNER}`);
    },
  }),

  "remove-signer": defineCommand({
    summary: "Revoke a sponsorship signer (manager or owner).",
    details: "Sponsorships it signed stop validating at once, even unexpired ones.",
    options: {
      RPC_URL,
      PRIVATE_KEY: keyOf("the manager's or the owner's private key"),
      PAYMASTER_ADDRESS,
      SIGNER: { schema: nonZeroAddress, help: "the signer address to revoke" },
    },
    example: "remove-signer --paymaster-address 0xPaymaster… --signer 0xOldSigner…",
    run: async (values, progress) => {
      const operator = await connectOperator(values.RPC_URL, values.PRIVATE_KEY, progress);
      return wrote(await removeSigner(operator, values.PAYMASTER_ADDRESS, values.SIGNER), `removed signer ${values.SIGNER}`);
    },
  }),

  status: defineCommand({
    summary: "Show the paymaster's EntryPoint, roles, signers, deposit and stake (no key needed).",
    details: "With the service's REDIS_URL, also the deposit guard: wei in flight, the policy's floor, headroom and whether sponsorship is paused.",
    options: {
      RPC_URL,
      PAYMASTER_ADDRESS,
      REDIS_URL: { schema: redisUrl, envOnly: true, help: "the service's Redis, for the deposit guard's figures (optional); never printed" },
      REDIS_KEY_PREFIX: { schema: redisKeyPrefix, default: "fg", help: "the service's REDIS_KEY_PREFIX" },
    },
    example: "status --paymaster-address 0xPaymaster… --json",
    run: async (values) => {
      const reader = await connect(values.RPC_URL);
      const status = await readStatus(reader, await openPaymaster(reader, values.PAYMASTER_ADDRESS));
      const guard = values.REDIS_URL ? await readDepositGuard(values.REDIS_URL, values.REDIS_KEY_PREFIX, status) : null;
      return { status: guard ? { ...status, depositGuard: guard } : status };
    },
  }),
};

const PROGRAM = "npm run paymaster --";
const flagOf = (variable: string) => `--${variable.toLowerCase().replaceAll("_", "-")}`;

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((name) => name.length)) + 2;
  return [
    `Usage: ${PROGRAM} <command> [--flags] [--json]`,
    "",
    "Operates a FiatGasPaymaster: deploy it, fund it, stake it, rotate its signers, inspect it.",
    "",
    "Commands:",
    ...Object.entries(commands).map(([name, { summary }]) => `  ${name.padEnd(width)}${summary}`),
    "",
    `Every option is a flag or the environment variable of the same name (--unstake-delay or UNSTAKE_DELAY);`,
    "the flag wins. RPC_URL and PRIVATE_KEY are read from the environment only.",
    `Run \`${PROGRAM} <command> --help\` for a command's options.`,
  ].join("\n");
}

function commandHelp(name: string, { summary, details, options, example }: Command): string {
  const flagged = Object.entries(options).filter(([, option]) => !option.envOnly);
  const envOnly = Object.entries(options).filter(([, option]) => option.envOnly);
  const flagCells = flagged.map(([variable]) => `${flagOf(variable)} <value>`);
  const width = Math.max(...flagCells.map((cell) => cell.length), "-h, --help".length) + 2;
  const variableWidth = Math.max(...flagged.map(([variable]) => variable.length + 2), 0) + 2;
  const envWidth = Math.max(...envOnly.map(([variable]) => variable.length)) + 2;
  const defaultOf = (option: Option) => (option.default === undefined ? "" : ` (default ${option.default})`);
  return [
    `Usage: ${PROGRAM} ${name} [--flags] [--json]`,
    "",
    ...(details ? [summary, details] : [summary]),
    "",
    "Options (flag, or the environment variable in brackets):",
    ...flagged.map(
      ([variable, option], index) =>
        `  ${flagCells[index].padEnd(width)}${`[${variable}]`.padEnd(variableWidth)}${option.help}${defaultOf(option)}`,
    ),
    `  ${"--json".padEnd(width)}${"".padEnd(variableWidth)}print the result as JSON`,
    `  ${"-h, --help".padEnd(width)}${"".padEnd(variableWidth)}show this help`,
    "",
    "Environment only:",
    ...envOnly.map(([variable, option]) => `  ${variable.padEnd(envWidth)}${option.help}`),
    "",
    "Example:",
    `  ${envOnly.map(([variable]) => `${variable}=…`).join(" ")} ${PROGRAM} ${example}`,
  ].join("\n");
}

/** The flags in `args`: one string flag per variable, plus --json and --help. */
function parseFlags(args: string[], variables: string[]): Record<string, string | boolean | undefined> {
  try {
    return parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        ...Object.fromEntries(variables.map((variable) => [flagOf(variable).slice(2), { type: "string" as const }])),
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (error) {
    const code = (error as { code?: string }).code;
    // The positional itself is not echoed: a key pasted in the wrong place must not be printed.
    const problem =
      code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL"
        ? "takes no positional arguments; give values as --flags"
        : (error as Error).message.split(". ")[0];
    throw new UsageError(`${problem} (see --help)`);
  }
}

/** Reads the command's options from flags, then the environment, then defaults, and validates them together. */
function readOptions(command: Command, args: string[], env: NodeJS.ProcessEnv) {
  const flagged = Object.keys(command.options).filter((variable) => !command.options[variable].envOnly);
  for (const arg of args) {
    const variable = Object.keys(command.options).find((name) => arg.split("=")[0] === flagOf(name));
    if (variable && command.options[variable].envOnly) {
      throw new UsageError(`${flagOf(variable)} is not accepted: set ${variable} in the environment instead`);
    }
  }
  const values = parseFlags(args, flagged);
  if (values.help) return { help: true as const };

  const source: Record<string, string> = {};
  const raw: Record<string, string | undefined> = {};
  for (const [variable, option] of Object.entries(command.options)) {
    const flagValue = option.envOnly ? undefined : (values[flagOf(variable).slice(2)] as string | undefined);
    const envValue = env[variable] === "" ? undefined : env[variable];
    raw[variable] = flagValue ?? envValue ?? option.default;
    source[variable] = flagValue !== undefined ? flagOf(variable) : variable;
  }
  const shape = Object.fromEntries(Object.entries(command.options).map(([variable, option]) => [variable, option.schema]));
  const result = z.object(shape).safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const variable = String(issue.path[0]);
      if (raw[variable] === undefined) {
        const how = command.options[variable].envOnly ? `set ${variable}` : `set ${variable} or pass ${flagOf(variable)}`;
        return `${variable} is required (${how})`;
      }
      return `${source[variable]} ${issue.message}`;
    });
    throw new UsageError(problems.join("; "));
  }
  return { help: false as const, json: values.json === true, values: result.data };
}

function render(outcome: Outcome, json: boolean): string {
  const { status, write } = outcome;
  if (json) {
    const transaction = write && {
      hash: write.transaction.hash,
      blockNumber: Number(write.transaction.blockNumber),
      gasUsed: write.transaction.gasUsed.toString(),
    };
    return JSON.stringify(write ? { transaction, status: statusJson(status) } : statusJson(status), null, 2);
  }
  if (!write) return statusText(status);
  const { headline, transaction } = write;
  return [
    headline,
    `transaction ${transaction.hash} (block ${transaction.blockNumber}, gas used ${transaction.gasUsed})`,
    "",
    statusText(status),
  ].join("\n");
}

/**
 * One line for an error. viem's `details` and `metaMessages` are left out on purpose: they carry
 * the RPC URL (whose path may hold an API key) and request bodies.
 */
function describeError(error: unknown): string {
  if (error instanceof OperatorError) return error.message;
  if (error instanceof BaseError) return revertReason(error) ?? error.shortMessage;
  return error instanceof Error ? error.message : String(error);
}

/** Runs the CLI on `argv` (without the node and script paths) and returns the exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv, io: Io): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    (name === undefined ? io.err : io.out)(usage());
    return name === undefined ? 2 : 0;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!command) {
    // Echoed only when it looks like a command word, so a key typed in its place is never printed.
    const shown = /^[a-z-]{1,32}$/.test(name) ? ` "${name}"` : "";
    io.err(`error: unknown command${shown}; run \`${PROGRAM} --help\` for the list`);
    return 2;
  }
  try {
    const options = readOptions(command, args, env);
    if (options.help) {
      io.out(commandHelp(name, command));
      return 0;
    }
    const outcome = await command.run(options.values, (line) => io.err(line));
    io.out(render(outcome, options.json));
    return 0;
  } catch (error) {
    io.err(`error: ${describeError(error)}`);
    // Only a bug, not a refusal, is worth a stack trace.
    if (!(error instanceof OperatorError) && !(error instanceof BaseError) && error instanceof Error) {
      io.err(error.stack ?? "");
    }
    return error instanceof OperatorError ? error.exitCode : 1;
  }
}
