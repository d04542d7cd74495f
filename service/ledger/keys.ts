// The ledger's keys beyond service/redis.ts: per-account settlement records and the `{global}`
// totals and indexes of live reservations. They are derived from the shared Keys, so an account's
// new keys carry exactly its existing hash tag and stay in its Redis Cluster slot.
import type { Address } from "viem";

import type { EntryPointVersion } from "../chain/entryPoints.ts";
import type { Keys } from "../redis.ts";

/** Key names for reservations' settlement and the deposit guard. */
export function ledgerKeys(keys: Keys) {
  const accountKey = (address: Address, suffix: string) => keys.balance(address).replace(/:balance$/, `:${suffix}`);
  // `<prefix>:{global}`, the slot of the global daily spend counters.
  const global = keys.globalSpendInDay(0).replace(/:spend:d:0$/, "");
  return {
    /** HASH userOpHash → settled op JSON: written by the script that charges, so an event charges once. */
    settled: (address: Address) => accountKey(address, "settled"),
    /** HASH slot → released reservation JSON, until its in-flight wei has been given back (crash recovery). */
    released: (address: Address) => accountKey(address, "released"),
    /** STRING: wei in flight (the largest maxWei of each live reservation) for one EntryPoint's paymaster, decimal. */
    inFlightWei: (version: EntryPointVersion) => `${global}:inflight:wei:${version}`,
    /** STRING: fen reserved by all accounts. */
    reservedFen: `${global}:reserved:fen`,
    /** ZSET reservation id → when its in-flight wei was given back: makes that give-back happen once. */
    returned: `${global}:inflight:returned`,
    /** ZSET `<account>|<slot>` → validUntil: live reservations, for the expiry scan. */
    live: `${global}:live`,
    /** ZSET `<account>|<slot>` → unix seconds of the next on-chain nonce check. */
    nonceDue: `${global}:nonce-due`,
  };
}

export type LedgerKeys = ReturnType<typeof ledgerKeys>;
