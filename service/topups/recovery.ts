// Runs the top-up recovery pass on a timer. Several service instances may run it; a lease in
// Redis lets one pass run at a time, and each pass is idempotent anyway.
import { randomBytes } from "node:crypto";

import type { Redis } from "ioredis";

import type { TopUps, TopUpsLogger } from "./topups.ts";

/** Releases the lease only if this runner still holds it. */
const RELEASE_LEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

export type RecoveryOptions = {
  topUps: TopUps;
  redis: Redis;
  leaseKey: string;
  intervalSeconds: number;
  olderThanSeconds: number;
  logger: TopUpsLogger;
};

/** Starts the recovery timer; the returned function stops it and waits for a running pass. */
export function startTopUpRecovery({ topUps, redis, leaseKey, intervalSeconds, olderThanSeconds, logger }: RecoveryOptions): () => Promise<void> {
  const holder = randomBytes(8).toString("hex");
  let running: Promise<void> | undefined;
  let stopped = false;

  async function pass() {
    const leased = await redis.set(leaseKey, holder, "PX", Math.max(intervalSeconds * 1000, 30_000), "NX");
    if (leased !== "OK") return;
    try {
      const summary = await topUps.recover({ olderThan: olderThanSeconds });
      if (summary.ordersChecked || summary.refundsChecked) logger.info(summary, "top-up recovery pass");
    } finally {
      await redis.eval(RELEASE_LEASE, 1, leaseKey, holder);
    }
  }

  const timer = setInterval(() => {
    if (running || stopped) return;
    running = pass()
      .catch((error: unknown) => logger.warn({ err: { name: (error as Error).name, message: (error as Error).message } }, "top-up recovery pass failed; retried next interval"))
      .finally(() => {
        running = undefined;
      });
  }, intervalSeconds * 1000);
  timer.unref();

  return async () => {
    stopped = true;
    clearInterval(timer);
    await running;
  };
}
