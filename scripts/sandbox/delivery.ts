// The gateways' side of async notifications: each one is POSTed to the merchant's notify URL until
// acknowledged or the gateway's real retry schedule runs out (spec §1.1, §2.4). Waits can be
// divided by `timeScale` so a 24-hour schedule runs in seconds. State lives in memory only: a
// restarted sandbox forgets undelivered notifications, as if the gateway had lost them.
import type { Channel } from "../../service/gateways/gateway.ts";
import type { NotificationDelivery, OutgoingNotification } from "./simulator.ts";

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/** The gateways' waits (ms) after each failed attempt; one attempt more than waits. */
export const RETRY_SCHEDULES: Readonly<Record<Channel, readonly number[]>> = {
  // 8 notifications within 25 h (Alipay opendocs 异步通知说明).
  alipay: [4 * MINUTE, 10 * MINUTE, 10 * MINUTE, HOUR, 2 * HOUR, 6 * HOUR, 15 * HOUR],
  // 16 notifications over 24 h 4 m (WeChat Pay APIv3 notify docs).
  wechatpay: [
    15 * SECOND, 15 * SECOND, 30 * SECOND, 3 * MINUTE, 10 * MINUTE, 20 * MINUTE, 30 * MINUTE, 30 * MINUTE,
    30 * MINUTE, 60 * MINUTE, 3 * HOUR, 3 * HOUR, 3 * HOUR, 6 * HOUR, 6 * HOUR,
  ],
};

/** Where delivery reports; fastify's `app.log` fits. */
export type DeliveryLogger = {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
};

export type NotificationDeliveryOptions = {
  /** Waits (ms) after each failed attempt, by channel; the gateways' real schedules by default. */
  schedules?: Partial<Record<Channel, readonly number[]>>;
  /** Divides every wait, at least 1 (3600: an hour becomes a second). Timeouts are not scaled. */
  timeScale?: number;
  /** Concurrent copies of each attempt, as WeChat sends from several servers. */
  duplicates?: number;
  /** Deliveries repeated after an acknowledgement, as if the gateway had lost it. */
  redeliverAfterAck?: number;
  /** Send the notification's mis-signed probe (WeChat SIGNTEST) before the first attempt. */
  probes?: boolean;
  /** Per request, real milliseconds; the gateways allow the merchant 5 s. */
  timeoutMs?: number;
  logger?: DeliveryLogger;
  fetch?: typeof fetch;
};

/** One request sent to a merchant. */
export type DeliveryAttempt = {
  id: string;
  channel: Channel;
  url: string;
  /** 1 for the first attempt; 0 for the probe; redeliveries continue the count. */
  attempt: number;
  /** Which of the attempt's concurrent copies, from 1. */
  copy: number;
  /** The schedule's wait before this attempt, unscaled ms: 0 for the first and the probe. */
  afterMs: number;
  /** When it was sent, ms since the epoch. */
  at: number;
  /** The merchant's HTTP status; null when no answer came (network error, timeout). */
  status: number | null;
  /** Whether the merchant acknowledged it; for a probe, whether it (wrongly) answered 2xx. */
  acknowledged: boolean;
  error?: string;
  probe?: true;
  redelivery?: true;
};

/** Where one notification's delivery stands. */
export type DeliveryState = "delivering" | "acknowledged" | "gaveUp" | "stopped";

export type DeliverySummary = {
  id: string;
  channel: Channel;
  url: string;
  state: DeliveryState;
  /** Attempts made, probe and redeliveries not counted. */
  attempts: number;
  /** Set when a probe was sent: whether the merchant wrongly acknowledged it (a security flaw). */
  probeAcknowledged?: boolean;
};

/** NotificationDelivery with the inspection the tests and the sandbox console use. */
export type SandboxDelivery = NotificationDelivery & {
  /** Every request sent, in the order they completed; only those of notification `id` if given. */
  attempts(id?: string): DeliveryAttempt[];
  /** One summary per notification sent, oldest first. */
  deliveries(): DeliverySummary[];
  /** Notifications still scheduled or in flight. */
  pending(): number;
  /** Resolves once nothing is scheduled or in flight. */
  idle(): Promise<void>;
  /** Cancels every timer and aborts requests in flight; later sends are ignored. */
  stop(): Promise<void>;
};

/** Bounds memory in a long-running sandbox; older records are dropped first. */
const MAX_RECORDS = 10_000;

/** Without a logger, warnings (probe flaws, give-ups) still reach the console. */
const consoleLogger: DeliveryLogger = {
  info() {},
  warn(details, message) {
    console.warn(message, details);
  },
};

/** Creates the in-memory notification sender shared by both simulators. */
export function createNotificationDelivery({
  schedules = {},
  timeScale = 1,
  duplicates = 1,
  redeliverAfterAck = 0,
  probes = false,
  timeoutMs = 5000,
  logger = consoleLogger,
  fetch: send = globalThis.fetch,
}: NotificationDeliveryOptions = {}): SandboxDelivery {
  // Slowing down could push a 15 h wait past setTimeout's ~24.8-day limit, where it fires at once.
  if (!(Number.isFinite(timeScale) && timeScale >= 1)) throw new RangeError(`timeScale must be a number >= 1, got ${timeScale}`);
  if (!(Number.isSafeInteger(duplicates) && duplicates >= 1)) throw new RangeError(`duplicates must be an integer >= 1, got ${duplicates}`);
  if (!(Number.isSafeInteger(redeliverAfterAck) && redeliverAfterAck >= 0)) {
    throw new RangeError(`redeliverAfterAck must be an integer >= 0, got ${redeliverAfterAck}`);
  }
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new RangeError(`timeoutMs must be a positive number, got ${timeoutMs}`);
  const waitsFor = (channel: Channel) => schedules[channel] ?? RETRY_SCHEDULES[channel];

  const records: DeliveryAttempt[] = [];
  const summaries: DeliverySummary[] = [];
  const timers = new Map<NodeJS.Timeout, () => void>();
  const halt = new AbortController();
  let active = 0;
  let idleWaiters: (() => void)[] = [];

  const remember = <T>(list: T[], item: T) => {
    list.push(item);
    if (list.length > MAX_RECORDS) list.splice(0, list.length - MAX_RECORDS);
  };

  /** Waits `ms` scaled; false if stopped meanwhile. */
  const sleep = (ms: number) =>
    new Promise<boolean>((resolve) => {
      if (halt.signal.aborted) return resolve(false);
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve(true);
      }, ms / timeScale);
      timers.set(timer, () => resolve(false));
    });

  /** One request; never throws. */
  async function post(notification: OutgoingNotification, record: Omit<DeliveryAttempt, "at" | "status" | "acknowledged">, probe: boolean) {
    const entry: DeliveryAttempt = { ...record, at: Date.now(), status: null, acknowledged: false };
    const timeout = AbortSignal.timeout(timeoutMs);
    try {
      const { headers, body } = probe ? notification.buildProbe!() : notification.build();
      // Gateways do not follow redirects: a 3xx is just an unacknowledged answer.
      const response = await send(notification.url, { method: "POST", headers, body, redirect: "manual", signal: AbortSignal.any([halt.signal, timeout]) });
      const text = await response.text();
      entry.status = response.status;
      entry.acknowledged = probe ? response.status >= 200 && response.status < 300 : notification.acknowledged(response.status, text);
    } catch (error) {
      entry.error = timeout.aborted ? `timed out after ${timeoutMs} ms` : halt.signal.aborted ? "delivery stopped" : describe(error);
    }
    remember(records, entry);
    return entry;
  }

  /** One attempt as `duplicates` concurrent copies; acknowledged if any copy was. */
  async function attempt(notification: OutgoingNotification, number: number, afterMs: number, redelivery: boolean) {
    const { id, channel, url } = notification;
    const copies = Array.from({ length: duplicates }, (_, index) =>
      post(notification, { id, channel, url, attempt: number, copy: index + 1, afterMs, ...(redelivery ? { redelivery: true as const } : {}) }, false),
    );
    return (await Promise.all(copies)).some((entry) => entry.acknowledged);
  }

  async function deliver(notification: OutgoingNotification, summary: DeliverySummary) {
    const { id, channel, url } = notification;
    const waits = waitsFor(channel);
    if (probes && notification.buildProbe) {
      const probe = await post(notification, { id, channel, url, attempt: 0, copy: 1, afterMs: 0, probe: true }, true);
      summary.probeAcknowledged = probe.acknowledged;
      if (probe.acknowledged) {
        logger.warn({ id, channel, url, status: probe.status }, "merchant acknowledged a mis-signed probe: it does not verify notification signatures");
      }
    }
    for (let number = 1, afterMs = 0; ; number++) {
      if (halt.signal.aborted) return;
      summary.attempts = number;
      if (await attempt(notification, number, afterMs, false)) {
        summary.state = "acknowledged";
        logger.info({ id, channel, attempt: number }, "notification acknowledged");
        break;
      }
      if (halt.signal.aborted) return;
      if (number > waits.length) {
        summary.state = "gaveUp";
        logger.warn({ id, channel, url, attempts: number }, "notification gave up: never acknowledged");
        return;
      }
      afterMs = waits[number - 1];
      if (!(await sleep(afterMs))) return;
    }
    // The gateway lost the acknowledgement: it retries on the same schedule.
    for (let extra = 1; extra <= redeliverAfterAck; extra++) {
      const afterMs = waits[Math.min(extra, waits.length) - 1] ?? 0;
      if (!(await sleep(afterMs))) return;
      await attempt(notification, summary.attempts + extra, afterMs, true);
    }
  }

  return {
    send(notification) {
      const { id, channel, url } = notification;
      if (halt.signal.aborted) {
        logger.warn({ id, channel }, "notification dropped: delivery is stopped");
        return;
      }
      const summary: DeliverySummary = { id, channel, url, state: "delivering", attempts: 0 };
      remember(summaries, summary);
      active++;
      void deliver(notification, summary)
        .catch((error: unknown) => logger.warn({ id, channel, error: describe(error) }, "notification delivery failed"))
        .finally(() => {
          if (summary.state === "delivering") summary.state = "stopped";
          active--;
          if (active === 0) {
            const waiters = idleWaiters;
            idleWaiters = [];
            for (const resolve of waiters) resolve();
          }
        });
    },
    attempts: (id) => (id === undefined ? records : records.filter((entry) => entry.id === id)).map((entry) => ({ ...entry })),
    deliveries: () => summaries.map((summary) => ({ ...summary })),
    pending: () => active,
    idle: () => (active === 0 ? Promise.resolve() : new Promise<void>((resolve) => idleWaiters.push(resolve))),
    async stop() {
      halt.abort();
      for (const [timer, cancel] of timers) {
        clearTimeout(timer);
        cancel();
      }
      timers.clear();
      if (active > 0) await new Promise<void>((resolve) => idleWaiters.push(resolve));
    },
  };
}

/** A network error's most useful words: undici hides the errno in `cause`. */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause as { code?: unknown; message?: unknown } | undefined;
  const detail = typeof cause?.code === "string" ? cause.code : typeof cause?.message === "string" ? cause.message : undefined;
  return detail ? `${error.message}: ${detail}` : error.message;
}
