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
    /** HASH: one top-up order (state, amounts, gateway trade), in its account's slot. */
    order: (address: Address, orderId: string) => `${account(address)}:order:${orderId}`,
    /** HASH: an order's refunds by refund id, as JSON. */
    orderRefunds: (address: Address, orderId: string) => `${account(address)}:order:${orderId}:refunds`,
    /** ZSET: the account's order ids by creation time. */
    accountOrders: (address: Address) => `${account(address)}:orders`,
    /** STREAM: the account's money movements from top-ups and refunds, for reconciliation. */
    journal: (address: Address) => `${account(address)}:journal`,
    /** HASH: order id → account, so a notification finds its order (its own slot: `{orders}`). */
    orderAccounts: () => `${prefix}:{orders}:accounts`,
    /** ZSET: unpaid orders by creation time, which the recovery job queries at the gateway. */
    pendingOrders: () => `${prefix}:{orders}:pending`,
    /** ZSET: "<order id>/<refund id>" of refunds awaiting their outcome, by start time. */
    pendingRefunds: () => `${prefix}:{orders}:refunds:pending`,
    /** ZSET: every order id by creation time, for periods and reconciliation. */
    ordersByTime: () => `${prefix}:{orders}:by-time`,
    /** STRING: held by the instance running the top-up recovery pass. */
    topUpRecoveryLease: () => `${prefix}:{orders}:recovery-lease`,
  };
}

export type Keys = ReturnType<typeof createKeys>;
