import { type Address, getAddress } from "viem";
import { Redis } from "ioredis";

/** Options every service connection uses: bounded waits, so a stuck Redis fails requests fast. */
export function createRedis(url: string, { connectionName = "fiatgas" }: { connectionName?: string } = {}): Redis {
  return new Redis(url, {
    connectionName,
    commandTimeout: 2_000,
    connectTimeout: 2_000,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    lazyConnect: true,
  });
}

/**
 * Key names. Every key of one account carries the hash tag `{0xChecksummed}`, so in Redis
 * Cluster all of them live in one slot and one Lua script can change them atomically.
 */
export function createKeys(prefix: string) {
  const account = (address: Address) => `${prefix}:{${getAddress(address)}}`;
  return {
    /** HASH: balance and reserved, in fen. */
    balance: (address: Address) => `${account(address)}:balance`,
    /** HASH: live reservations by `<entryPoint version>:<nonce>`. */
    reservations: (address: Address) => `${account(address)}:reservations`,
    /** HASH {reason, actor, at}: present while an operator has frozen the account. */
    frozen: (address: Address) => `${account(address)}:frozen`,
    /** ZSET of credits, "<reference>:<fen>" scored by credit time: the top-up cooling period reads it. */
    credits: (address: Address) => `${account(address)}:credits`,
    /** Counters of new sponsorships in a UTC minute and day, and of fen reserved in a UTC day. */
    opsInMinute: (address: Address, minute: number) => `${account(address)}:ops:m:${minute}`,
    opsInDay: (address: Address, day: number) => `${account(address)}:ops:d:${day}`,
    spendInDay: (address: Address, day: number) => `${account(address)}:spend:d:${day}`,
    /** Fen reserved by all accounts in a UTC day (its own slot: `{global}`). */
    globalSpendInDay: (day: number) => `${prefix}:{global}:spend:d:${day}`,
  };
}

export type Keys = ReturnType<typeof createKeys>;
