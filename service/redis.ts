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
  };
}

export type Keys = ReturnType<typeof createKeys>;
