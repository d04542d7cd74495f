// The chain's side of a period, read straight from the node (not from settlement's stream): our
// paymasters' UserOperationEvents, and the EntryPoint deposit's movements. Then the ledger against
// those events, and the deposit against them.
import { type Address, BaseError, ContractFunctionZeroDataError, type PublicClient, getAddress, parseAbi, parseAbiItem } from "viem";

import { ENTRYPOINT_ADDRESS, type EntryPointVersion, entryPointVersionAt } from "../chain/entryPoints.ts";
import type { Ledger, SettledOp } from "../ledger/ledger.ts";
import type { Anomaly } from "../settlement/anomalies.ts";
import { type PaymasterEvent, paymasterEventFromLog, userOperationEvent } from "../settlement/events.ts";
import type { BlockRange } from "./blocks.ts";
import { mapLimit } from "./limit.ts";
import type { ChainVsDepositFigures, LedgerVsChainFigures, Mismatch } from "./report.ts";

const depositedEvent = parseAbiItem("event Deposited(address indexed account, uint256 totalDeposit)");
const withdrawnEvent = parseAbiItem("event Withdrawn(address indexed account, address withdrawAddress, uint256 amount)");
const balanceOfAbi = parseAbi(["function balanceOf(address account) view returns (uint256)"]);

/** Log ranges read at once. */
const LOG_CONCURRENCY = 4;
/** Settled-record lookups in flight at once. */
const STORE_CONCURRENCY = 32;

export type ChainClient = Pick<PublicClient, "getLogs" | "readContract">;

/** A change of the paymaster's deposit, in log order. `Deposited` carries the new total, not the amount. */
type Movement = { blockNumber: bigint; logIndex: number } & ({ kind: "deposited"; totalWei: bigint } | { kind: "withdrawn" | "gas"; wei: bigint });

/** What the chain says about one paymaster in the period. */
export type ChainFacts = {
  entryPoint: Address;
  paymaster: Address;
  events: PaymasterEvent[];
  startDepositWei: bigint;
  endDepositWei: bigint;
  depositedWei: bigint;
  withdrawnWei: bigint;
  /** Σ actualGasCost of `events`. */
  chainWei: bigint;
};

export type ReadChainParameters = {
  client: ChainClient;
  paymasters: Partial<Record<EntryPointVersion, Address>>;
  /** Most blocks per eth_getLogs call (SETTLEMENT_LOG_BLOCK_RANGE). */
  logBlockRange: number;
  /** Runs a node call, turning its failure into DEPENDENCY_UNAVAILABLE. */
  node: <T>(call: () => Promise<T>) => Promise<T>;
};

const byLogOrder = (a: { blockNumber: bigint; logIndex: number }, b: { blockNumber: bigint; logIndex: number }) =>
  a.blockNumber === b.blockNumber ? a.logIndex - b.logIndex : a.blockNumber < b.blockNumber ? -1 : 1;

/** Reads the period's events and deposit movements for every configured paymaster. */
export async function readChain({ client, paymasters, logBlockRange, node }: ReadChainParameters, { fromBlock, toBlock }: BlockRange): Promise<Partial<Record<EntryPointVersion, ChainFacts>>> {
  const versions = Object.keys(paymasters) as EntryPointVersion[];
  // An empty address list would make eth_getLogs match every contract.
  if (versions.length === 0) return {};
  const entryPoints = versions.map((version) => ENTRYPOINT_ADDRESS[version]);
  const ours = versions.map((version) => paymasters[version]!);
  /** The version whose (EntryPoint, paymaster) pair this is, or null: the filters are an OR of both. */
  const versionOf = (entryPoint: Address, paymaster: Address) => {
    const version = entryPointVersionAt(entryPoint);
    return version && paymasters[version] === getAddress(paymaster) ? version : null;
  };

  const chunks: { from: bigint; to: bigint }[] = [];
  for (let from = fromBlock; from <= toBlock; from += BigInt(logBlockRange)) {
    const to = from + BigInt(logBlockRange) - 1n;
    chunks.push({ from, to: to < toBlock ? to : toBlock });
  }
  const events = new Map<EntryPointVersion, PaymasterEvent[]>(versions.map((version) => [version, []]));
  const movements = new Map<EntryPointVersion, Movement[]>(versions.map((version) => [version, []]));
  await mapLimit(chunks, LOG_CONCURRENCY, async ({ from, to }) => {
    const range = { fromBlock: from, toBlock: to, strict: true } as const;
    const [operations, deposits, withdrawals] = await Promise.all([
      node(() => client.getLogs({ address: entryPoints, event: userOperationEvent, args: { paymaster: ours }, ...range })),
      node(() => client.getLogs({ address: entryPoints, event: depositedEvent, args: { account: ours }, ...range })),
      node(() => client.getLogs({ address: entryPoints, event: withdrawnEvent, args: { account: ours }, ...range })),
    ]);
    for (const log of operations) {
      const version = versionOf(getAddress(log.address), log.args.paymaster);
      if (!version) continue;
      events.get(version)!.push(paymasterEventFromLog(log, version));
      movements.get(version)!.push({ kind: "gas", wei: log.args.actualGasCost, blockNumber: log.blockNumber, logIndex: log.logIndex });
    }
    for (const log of deposits) {
      const version = versionOf(getAddress(log.address), log.args.account);
      if (version) movements.get(version)!.push({ kind: "deposited", totalWei: log.args.totalDeposit, blockNumber: log.blockNumber, logIndex: log.logIndex });
    }
    for (const log of withdrawals) {
      const version = versionOf(getAddress(log.address), log.args.account);
      if (version) movements.get(version)!.push({ kind: "withdrawn", wei: log.args.amount, blockNumber: log.blockNumber, logIndex: log.logIndex });
    }
  });

  const facts = await Promise.all(
    versions.map(async (version): Promise<[EntryPointVersion, ChainFacts]> => {
      const entryPoint = ENTRYPOINT_ADDRESS[version];
      const paymaster = paymasters[version]!;
      const balances = new Map<bigint, Promise<bigint>>();
      /** The deposit at the end of `block`; 0 before genesis or before the EntryPoint existed. */
      const depositAt = (block: bigint): Promise<bigint> => {
        if (block < 0n) return Promise.resolve(0n);
        let balance = balances.get(block);
        if (!balance) {
          balance = node(async () => {
            try {
              return await client.readContract({ address: entryPoint, abi: balanceOfAbi, functionName: "balanceOf", args: [paymaster], blockNumber: block });
            } catch (error) {
              if (error instanceof BaseError && error.walk((cause) => cause instanceof ContractFunctionZeroDataError)) return 0n;
              throw error;
            }
          });
          balances.set(block, balance);
        }
        return balance;
      };
      const ordered = movements.get(version)!.sort(byLogOrder);
      // Deposited carries the new total: the amount is that minus the deposit just before it. That is
      // anchored at the chain's state at the end of the previous block, then replayed through the
      // block's own movements, so a deposit never absorbs an unexplained change from another block.
      let depositedWei = 0n;
      for (const block of new Set(ordered.filter((movement) => movement.kind === "deposited").map((movement) => movement.blockNumber))) {
        let running = await depositAt(block - 1n);
        for (const movement of ordered.filter((candidate) => candidate.blockNumber === block)) {
          if (movement.kind === "deposited") {
            depositedWei += movement.totalWei - running;
            running = movement.totalWei;
          } else running -= movement.wei;
        }
      }
      const sum = (kind: "withdrawn" | "gas") => ordered.reduce((total, movement) => (movement.kind === kind ? total + movement.wei : total), 0n);
      const [startDepositWei, endDepositWei] = await Promise.all([depositAt(fromBlock - 1n), depositAt(toBlock)]);
      return [version, { entryPoint, paymaster, events: events.get(version)!.sort(byLogOrder), startDepositWei, endDepositWei, depositedWei, withdrawnWei: sum("withdrawn"), chainWei: sum("gas") }];
    }),
  );
  return Object.fromEntries(facts);
}

/** The deposit's movement against the chain's events, per paymaster. */
export function reconcileDeposits(facts: Partial<Record<EntryPointVersion, ChainFacts>>): { figures: Partial<Record<EntryPointVersion, ChainVsDepositFigures>>; mismatches: Mismatch[] } {
  const mismatches: Mismatch[] = [];
  const figures = Object.fromEntries(
    (Object.entries(facts) as [EntryPointVersion, ChainFacts][]).map(([version, chain]) => {
      const expected = chain.depositedWei - chain.withdrawnWei - chain.chainWei;
      const difference = chain.endDepositWei - chain.startDepositWei - expected;
      if (difference !== 0n) {
        mismatches.push({
          kind: "deposit_unexplained",
          section: "chainVsDeposit",
          cause: `the EntryPoint v${version} deposit moved by ${chain.endDepositWei - chain.startDepositWei} wei, but deposits − withdrawals − gas explain ${expected} wei: look for a movement this report does not model (a deposit made inside a bundle, another EntryPoint)`,
          differenceWei: difference.toString(),
          details: { entryPointVersion: version, entryPoint: chain.entryPoint, paymaster: chain.paymaster },
        });
      }
      const json: ChainVsDepositFigures = {
        entryPoint: chain.entryPoint,
        paymaster: chain.paymaster,
        startDepositWei: chain.startDepositWei.toString(),
        endDepositWei: chain.endDepositWei.toString(),
        depositedWei: chain.depositedWei.toString(),
        withdrawnWei: chain.withdrawnWei.toString(),
        chainWei: chain.chainWei.toString(),
        differenceWei: difference.toString(),
      };
      return [version, json];
    }),
  );
  return { figures, mismatches };
}

export type LedgerVsChainParameters = {
  ledger: Pick<Ledger, "settledOp" | "settled">;
  /** Runs a Redis call, turning its failure into DEPENDENCY_UNAVAILABLE. */
  store: <T>(call: () => Promise<T>) => Promise<T>;
  /** Settlement anomalies by id (a userOpHash for the event kinds). */
  anomalies: Map<string, Anomaly>;
  /** The newest block whose events are all settled, or null. */
  settledThrough: bigint | null;
};

/** Anomaly kinds recorded for an event settlement could not charge. */
const UNCHARGED_KINDS = new Set(["no_reservation", "unknown_op", "unreadable_rate"]);

/** The settled records against the chain's events, per paymaster. */
export async function reconcileLedger({ ledger, store, anomalies, settledThrough }: LedgerVsChainParameters, range: BlockRange, facts: Partial<Record<EntryPointVersion, ChainFacts>>) {
  const mismatches: Mismatch[] = [];
  /** userOpHashes reported as unmatched_event: their anomalies need no mismatch of their own. */
  const explained = new Set<string>();
  const figures: Partial<Record<EntryPointVersion, LedgerVsChainFigures>> = {};
  for (const [version, chain] of Object.entries(facts) as [EntryPointVersion, ChainFacts][]) {
    const records = await mapLimit(chain.events, STORE_CONCURRENCY, (event) => store(() => ledger.settledOp(event.sender, event.userOpHash)));
    let chargedWei = 0n;
    chain.events.forEach((event, index) => {
      const settled = records[index];
      const details = {
        entryPointVersion: version,
        userOpHash: event.userOpHash,
        sender: event.sender,
        nonce: event.nonce.toString(),
        blockNumber: Number(event.blockNumber),
        transactionHash: event.transactionHash,
        actualGasCost: event.actualGasCost.toString(),
      };
      if (settled) {
        chargedWei += settled.actualGasCost;
        const differenceWei = (settled.actualGasCost - event.actualGasCost).toString();
        const recorded = { settledBlockNumber: Number(settled.blockNumber), settledBlockHash: settled.blockHash, settledActualGasCost: settled.actualGasCost.toString(), chargedFen: settled.chargedFen.toString() };
        if (settled.blockHash !== event.blockHash) {
          mismatches.push({
            kind: "settled_block_mismatch",
            section: "ledgerVsChain",
            cause: `settled from block ${settled.blockNumber} (${settled.blockHash}), but the op is now in block ${event.blockNumber} (${event.blockHash}): a reorg deeper than the confirmations; check the charge against the event now on the chain`,
            differenceWei,
            details: { ...details, blockHash: event.blockHash, ...recorded },
          });
        } else if (settled.actualGasCost !== event.actualGasCost) {
          mismatches.push({
            kind: "charged_wei_mismatch",
            section: "ledgerVsChain",
            cause: `the settled record holds ${settled.actualGasCost} wei, the event ${event.actualGasCost} wei: the account was charged for another cost than the paymaster paid`,
            differenceWei,
            details: { ...details, ...recorded },
          });
        }
        return;
      }
      const anomaly = [...UNCHARGED_KINDS].map((kind) => anomalies.get(`${kind}:${event.userOpHash}`)).find((found) => found !== undefined);
      const differenceWei = (-event.actualGasCost).toString();
      if (anomaly || (settledThrough !== null && event.blockNumber <= settledThrough)) {
        explained.add(event.userOpHash);
        mismatches.push({
          kind: "unmatched_event",
          section: "ledgerVsChain",
          cause: anomaly
            ? `settlement recorded the anomaly ${anomaly.kind}: ${anomaly.kind === "no_reservation" ? "no reservation matches the event (an op signed outside the service, or one released before it landed)" : anomaly.kind === "unknown_op" ? "the reservation holds no op with this userOpHash" : "the op's locked rate could not be read"}; the paymaster paid and nobody was charged`
            : "settlement is past this block but holds no settled record and no anomaly for the event: look for a settlement failure in the logs",
          differenceWei,
          details: { ...details, anomalyKind: anomaly?.kind ?? null },
        });
        return;
      }
      mismatches.push({
        kind: "not_yet_settled",
        section: "ledgerVsChain",
        cause: `the event's block is past the newest block whose events are all settled (${settledThrough ?? "none yet"}): settlement has not charged it yet; it will unless the worker is stopped (SETTLEMENT_ENABLED) or failing`,
        differenceWei,
        details: { ...details, settledThroughBlock: settledThrough === null ? null : Number(settledThrough) },
      });
    });

    // Settled records in the period's blocks whose event is gone (a reorg) are found among the
    // accounts that have events in the period; see the README for this limit.
    const hashes = new Set(chain.events.map((event) => event.userOpHash));
    const senders = [...new Set(chain.events.map((event) => event.sender))];
    const settledOfSenders = await mapLimit(senders, STORE_CONCURRENCY, (sender) => store(() => ledger.settled(sender)));
    settledOfSenders.forEach((settledOps: SettledOp[], index) => {
      for (const settled of settledOps) {
        if (settled.entryPointVersion !== version || hashes.has(settled.userOpHash) || settled.blockNumber < range.fromBlock || settled.blockNumber > range.toBlock) continue;
        chargedWei += settled.actualGasCost;
        mismatches.push({
          kind: "settled_without_event",
          section: "ledgerVsChain",
          cause: `settled from block ${settled.blockNumber} (${settled.blockHash}), but the chain holds no such event in the period now: a reorg removed it after it was charged; refund the charge unless the op landed again`,
          differenceWei: settled.actualGasCost.toString(),
          details: {
            entryPointVersion: version,
            userOpHash: settled.userOpHash,
            sender: senders[index],
            settledBlockNumber: Number(settled.blockNumber),
            settledBlockHash: settled.blockHash,
            actualGasCost: settled.actualGasCost.toString(),
            chargedFen: settled.chargedFen.toString(),
          },
        });
      }
    });
    figures[version] = {
      entryPoint: chain.entryPoint,
      paymaster: chain.paymaster,
      events: chain.events.length,
      chargedWei: chargedWei.toString(),
      chainWei: chain.chainWei.toString(),
      differenceWei: (chargedWei - chain.chainWei).toString(),
    };
  }
  return { figures, mismatches, explained };
}
