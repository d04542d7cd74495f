// Operator freezes of single accounts. The frozen key carries the account's hash tag, so the
// reservation script reads it in the same Redis Cluster slot as the balance: a frozen account
// gets no new sponsorship, atomically with the reservation.
import type { Redis } from "ioredis";
import type { Address } from "viem";

import { ServiceError } from "../errors.ts";
import type { Keys } from "../redis.ts";

/** An account's freeze while it lasts. */
export type Freeze = { reason: string; actor: string; /** unix seconds */ at: number };

/** One freeze or unfreeze, as the account's freeze log keeps it. */
export type FreezeEvent = Freeze & { action: "freeze" | "unfreeze" };

/** How many freeze events each account keeps. */
export const FREEZE_LOG_LENGTH = 100;

/**
 * Freezes: KEYS 1 frozen hash, 2 freeze log list. ARGV 1 reason, 2 actor, 3 at, 4 event JSON.
 * Returns 1 if the account was not frozen before (a re-freeze updates reason, actor and time).
 */
const FREEZE = `
local was = redis.call('EXISTS', KEYS[1])
redis.call('HSET', KEYS[1], 'reason', ARGV[1], 'actor', ARGV[2], 'at', ARGV[3])
redis.call('LPUSH', KEYS[2], ARGV[4])
redis.call('LTRIM', KEYS[2], 0, ${FREEZE_LOG_LENGTH - 1})
return 1 - was
`;

/** Unfreezes: KEYS as FREEZE, ARGV 1 event JSON. Returns 1 if the account was frozen; only then is the event logged. */
const UNFREEZE = `
local was = redis.call('DEL', KEYS[1])
if was == 1 then
  redis.call('LPUSH', KEYS[2], ARGV[1])
  redis.call('LTRIM', KEYS[2], 0, ${FREEZE_LOG_LENGTH - 1})
end
return was
`;

/** The freeze log's key: next to the frozen key, under the same hash tag. */
export const freezeLogKey = (keys: Keys, account: Address) => `${keys.frozen(account)}:log`;

/** Freezing and unfreezing accounts, with who did it, when and why. */
export function createAccountFreezes({ redis, keys, now = () => Math.floor(Date.now() / 1000) }: { redis: Redis; keys: Keys; now?: () => number }) {
  redis.defineCommand("fiatgasFreeze", { lua: FREEZE, numberOfKeys: 2 });
  redis.defineCommand("fiatgasUnfreeze", { lua: UNFREEZE, numberOfKeys: 2 });
  const commands = redis as unknown as Record<"fiatgasFreeze" | "fiatgasUnfreeze", (...args: string[]) => Promise<number>>;

  async function store<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw new ServiceError("DEPENDENCY_UNAVAILABLE", "the account store is unavailable: retry shortly", { cause: error });
    }
  }

  return {
    /** Freezes `account`; `changed` is false if it was frozen already (the reason is then replaced). */
    async freeze(account: Address, { reason, actor }: { reason: string; actor: string }): Promise<{ freeze: Freeze; changed: boolean }> {
      const freeze: Freeze = { reason, actor, at: now() };
      const event: FreezeEvent = { action: "freeze", ...freeze };
      const changed = await store(() => commands.fiatgasFreeze(keys.frozen(account), freezeLogKey(keys, account), reason, actor, String(freeze.at), JSON.stringify(event)));
      return { freeze, changed: changed === 1 };
    },

    /** Lifts a freeze; `changed` is false if the account was not frozen. */
    async unfreeze(account: Address, { reason, actor }: { reason: string; actor: string }): Promise<{ changed: boolean }> {
      const event: FreezeEvent = { action: "unfreeze", reason, actor, at: now() };
      const changed = await store(() => commands.fiatgasUnfreeze(keys.frozen(account), freezeLogKey(keys, account), JSON.stringify(event)));
      return { changed: changed === 1 };
    },

    /** The account's freeze, or null if it is not frozen. */
    async status(account: Address): Promise<Freeze | null> {
      const { reason, actor, at } = await store(() => redis.hgetall(keys.frozen(account)));
      // The key's existence is the flag the reservation script reads; its fields say why.
      if (reason === undefined && actor === undefined && at === undefined) return null;
      return { reason: reason ?? "", actor: actor ?? "", at: Number(at ?? 0) };
    },

    /** The account's most recent freezes and unfreezes, newest first. */
    async log(account: Address, limit = 20): Promise<FreezeEvent[]> {
      const raws = await store(() => redis.lrange(freezeLogKey(keys, account), 0, limit - 1));
      return raws.flatMap((raw) => {
        try {
          return [JSON.parse(raw) as FreezeEvent];
        } catch {
          return [];
        }
      });
    },
  };
}

export type AccountFreezes = ReturnType<typeof createAccountFreezes>;
