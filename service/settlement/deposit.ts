// The deposit guard: the paymaster's EntryPoint deposit against the wei in flight in live
// reservations. Each instance reads the deposit once per new block (not per request) and the
// in-flight total once per poll; sponsorship reads the cached figures. Below the policy's floor,
// readiness fails and sponsorship stops (fail closed) until the operator tops the deposit up.
import { type Address, type PublicClient, parseAbi } from "viem";

import { ENTRYPOINT_ADDRESS, type EntryPointVersion } from "../chain/entryPoints.ts";
import { ServiceError } from "../errors.ts";

const balanceOfAbi = parseAbi(["function balanceOf(address account) view returns (uint256)"]);

/** The guard's figures for one paymaster, in wei. */
export type DepositFigures = {
  depositWei: bigint;
  inFlightWei: bigint;
  floorWei: bigint;
  /** The deposit left if every live reservation lands at its worst case; negative when it does not cover them. */
  headroomWei: bigint;
  /** The most all live reservations may hold: the deposit minus the floor (the in-flight cap). */
  capWei: bigint;
  /** The headroom is below the floor: sponsorship is paused. */
  degraded: boolean;
};

/** The guard's arithmetic, written once for the service, its metrics and the operator's status command. */
export function depositFigures({ depositWei, inFlightWei, floorWei }: { depositWei: bigint; inFlightWei: bigint; floorWei: bigint }): DepositFigures {
  const headroomWei = depositWei - inFlightWei;
  return { depositWei, inFlightWei, floorWei, headroomWei, capWei: depositWei - floorWei, degraded: headroomWei < floorWei };
}

export type DepositGuardLogger = { info(fields: object, message: string): void; warn(fields: object, message: string): void };

export type CreateDepositGuardParameters = {
  publicClient: Pick<PublicClient, "getBlockNumber" | "readContract">;
  /** Reads the in-flight total for one EntryPoint (the ledger's). */
  inFlightWei: (version: EntryPointVersion) => Promise<bigint>;
  paymasters: Partial<Record<EntryPointVersion, Address>>;
  /** The policy's global.depositFloorWei, live. */
  floorWei: () => bigint;
  pollMs: number;
  /** Figures not confirmed for this long stop sponsorship. */
  maxAgeSeconds: number;
  logger?: DepositGuardLogger;
  /** Milliseconds since the epoch. */
  now?: () => number;
};

type Reading = { depositWei: bigint; inFlightWei: bigint; blockNumber: bigint; confirmedAt: number };

/** The deposit guard. Call start() before serving; until the first read, sponsorship fails closed. */
export function createDepositGuard({ publicClient, inFlightWei, paymasters, floorWei, pollMs, maxAgeSeconds, logger, now = Date.now }: CreateDepositGuardParameters) {
  const versions = Object.keys(paymasters) as EntryPointVersion[];
  const readings = new Map<EntryPointVersion, Reading>();
  const degraded = new Set<EntryPointVersion>();
  let head: bigint | null = null;
  let failing = false;
  let timer: NodeJS.Timeout | undefined;
  let running = false;

  async function refresh(): Promise<void> {
    const blockNumber = await publicClient.getBlockNumber({ cacheTime: 0 });
    const confirmedAt = now();
    await Promise.all(
      versions.map(async (version) => {
        const previous = readings.get(version);
        const depositWei =
          previous && previous.blockNumber === blockNumber
            ? previous.depositWei
            : await publicClient.readContract({ address: ENTRYPOINT_ADDRESS[version], abi: balanceOfAbi, functionName: "balanceOf", args: [paymasters[version]!], blockNumber });
        readings.set(version, { depositWei, inFlightWei: await inFlightWei(version), blockNumber, confirmedAt });
      }),
    );
    head = blockNumber;
    for (const version of versions) {
      const figures = figuresOf(version)!;
      const fields = { entryPoint: ENTRYPOINT_ADDRESS[version], paymaster: paymasters[version], ...depositFiguresJson(figures) };
      if (figures.degraded && !degraded.has(version)) {
        degraded.add(version);
        logger?.warn(fields, "paymaster deposit below the floor: sponsorship paused until the deposit is topped up");
      } else if (!figures.degraded && degraded.delete(version)) {
        logger?.info(fields, "paymaster deposit back above the floor: sponsorship resumed");
      }
    }
  }

  async function poll(): Promise<void> {
    try {
      await refresh();
      if (failing) logger?.info({}, "paymaster deposit refresh recovered");
      failing = false;
    } catch (error) {
      if (!failing) logger?.warn({ error: error instanceof Error ? error.name : String(error) }, "paymaster deposit refresh failed; serving the cached figure until it is too old");
      failing = true;
    }
  }

  function schedule(): void {
    timer = setTimeout(async () => {
      await poll();
      if (running) schedule();
    }, pollMs);
    timer.unref();
  }

  function figuresOf(version: EntryPointVersion): DepositFigures | null {
    const reading = readings.get(version);
    return reading ? depositFigures({ depositWei: reading.depositWei, inFlightWei: reading.inFlightWei, floorWei: floorWei() }) : null;
  }

  const fresh = (version: EntryPointVersion) => {
    const reading = readings.get(version);
    return !!reading && now() - reading.confirmedAt <= maxAgeSeconds * 1000;
  };

  return {
    /** Reads the deposits once, then keeps them fresh in the background; resolves even if the node is down. */
    async start(): Promise<void> {
      if (running) return;
      running = true;
      await poll();
      if (running) schedule();
    },
    /** Stops the background refresh; the figures then age out. */
    stop(): void {
      running = false;
      clearTimeout(timer);
    },
    /** Reads the deposits and in-flight totals now. */
    refresh,
    /** The figures for one paymaster with the floor in force, or null before the first read. */
    figures: figuresOf,
    /** The newest block number seen. */
    headBlock: () => head,
    /** Whether every paymaster's figures are fresh and above the floor (the readiness check). */
    ready: () => versions.every((version) => fresh(version) && !figuresOf(version)!.degraded),
    /**
     * The in-flight cap for a new sponsorship on `version` (deposit minus floor). Throws
     * DEPENDENCY_UNAVAILABLE when the deposit is not known or too old, DEPOSIT_BELOW_FLOOR when degraded.
     */
    capFor(version: EntryPointVersion): bigint {
      const figures = figuresOf(version);
      if (!figures || !fresh(version)) {
        throw new ServiceError("DEPENDENCY_UNAVAILABLE", "the paymaster's deposit has not been read from the node recently; retry shortly");
      }
      if (figures.degraded) {
        throw new ServiceError("DEPOSIT_BELOW_FLOOR", "sponsorship is paused: the paymaster's deposit, less the gas in flight, is below the operator's floor; retry later or contact the operator", {
          data: {
            limit: "global.depositFloorWei",
            limitValue: figures.floorWei.toString(),
            currentValue: figures.headroomWei.toString(),
            depositWei: figures.depositWei.toString(),
            inFlightWei: figures.inFlightWei.toString(),
            entryPoint: ENTRYPOINT_ADDRESS[version],
          },
        });
      }
      return figures.capWei;
    },
  };
}

/** The figures as JSON values: wei as decimal strings. */
export function depositFiguresJson(figures: DepositFigures) {
  return {
    depositWei: figures.depositWei.toString(),
    inFlightWei: figures.inFlightWei.toString(),
    floorWei: figures.floorWei.toString(),
    headroomWei: figures.headroomWei.toString(),
    capWei: figures.capWei.toString(),
    degraded: figures.degraded,
  };
}

export type DepositGuard = ReturnType<typeof createDepositGuard>;
