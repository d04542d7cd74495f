// The operator's risk policy in Redis: the current document and its version, every past version
// with who changed what, and a copy in memory that every instance keeps within a second of Redis.
// A change is validated whole, then written only against the version the operator last saw.
import { isDeepStrictEqual } from "node:util";

import type { Redis } from "ioredis";
import type { z } from "zod";

import { ServiceError } from "../errors.ts";
import { DEFAULT_POLICY, type Policy, type PolicyDocument, policySchema, policyToJson } from "./policy.ts";

/** One changed leaf between two policy documents; `from` or `to` is absent where the field is. */
export type PolicyChange = { path: string; from?: unknown; to?: unknown };

/** The policy in force and its version; version 0 is DEFAULT_POLICY, before any change. */
export type VersionedPolicy = { version: number; policy: Policy };

/** One version as history keeps it. */
export type PolicyHistoryEntry = {
  version: number;
  /** When it was written, unix milliseconds. */
  time: number;
  actor: string;
  /** The whole document, as policyToJson writes it. */
  document: PolicyDocument;
  /** Against the version before it (DEFAULT_POLICY for version 1). */
  diff: PolicyChange[];
  /** Set when this version re-applied an older one. */
  rollbackOf?: number;
};

export type PolicyStoreLogger = {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
};

export type CreatePolicyStoreParameters = {
  redis: Redis;
  /** REDIS_KEY_PREFIX. */
  prefix: string;
  logger: PolicyStoreLogger;
  /** How often the stored version is compared with the loaded one, in case a pub/sub message was missed. */
  checkIntervalMs?: number;
  /** The current time in ms; tests inject a clock. */
  now?: () => number;
};

export type WriteOptions = {
  /** The version the change was made against (the ETag the operator read); anything else is refused. */
  expectedVersion: number;
  /** Who made the change, for history and logs. */
  actor: string;
};

/**
 * Key names. The hash tag `{policy}` puts both keys in one Redis Cluster slot, so one script can
 * check the version and write the document and its history entry atomically.
 */
export function policyKeys(prefix: string) {
  return {
    /** HASH {version, document (JSON), time (unix ms), actor}: absent until the first change. */
    current: `${prefix}:{policy}:current`,
    /** HASH: version → history entry JSON (PolicyHistoryEntry). */
    history: `${prefix}:{policy}:history`,
    /** Pub/sub channel: the new version number, published by the write itself. */
    channel: `${prefix}:policy:changed`,
  };
}

/**
 * Writes a new version if the stored one is still ARGV[1], and announces it.
 * KEYS: 1 current hash, 2 history hash. ARGV: 1 expected version, 2 document JSON, 3 history entry
 * JSON (carrying version ARGV[1] + 1), 4 time (unix ms), 5 actor, 6 channel.
 * Returns {1, new version} or {0, stored version} (-1 when the stored version is unreadable).
 */
const WRITE = `
local stored = redis.call('HGET', KEYS[1], 'version')
local current = tonumber(stored or '0') or -1
if current ~= tonumber(ARGV[1]) then
  return {0, current}
end
local version = current + 1
redis.call('HSET', KEYS[1], 'version', version, 'document', ARGV[2], 'time', ARGV[4], 'actor', ARGV[5])
redis.call('HSET', KEYS[2], tostring(version), ARGV[3])
redis.call('PUBLISH', ARGV[6], tostring(version))
return {1, version}
`;

/** Every leaf that differs between two JSON values; arrays and scalars compare as wholes. */
export function diffJson(before: unknown, after: unknown, path = ""): PolicyChange[] {
  if (isObject(before) && isObject(after)) {
    const keys = [...Object.keys(after), ...Object.keys(before).filter((key) => !Object.hasOwn(after, key))];
    return keys.flatMap((key) => {
      const at = path === "" ? key : `${path}.${key}`;
      if (!Object.hasOwn(before, key)) return [{ path: at, to: after[key] }];
      if (!Object.hasOwn(after, key)) return [{ path: at, from: before[key] }];
      return diffJson(before[key], after[key], at);
    });
  }
  if (isDeepStrictEqual(before, after)) return [];
  return [{ path, ...(before === undefined ? {} : { from: before }), ...(after === undefined ? {} : { to: after }) }];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A rejected document's issues, one per field, as the HTTP error handler words schema failures. */
export function policyIssues(error: z.ZodError): { path: string; message: string }[] {
  return error.issues.map((issue) => ({ path: issue.path.map(String).join("."), message: issue.message }));
}

function invalidPolicy(error: z.ZodError, what = "invalid policy"): ServiceError {
  const issues = policyIssues(error);
  const summary = issues.map(({ path, message }) => (path ? `${path}: ${message}` : message)).join("; ");
  return new ServiceError("INVALID_PARAMS", `${what}: ${summary}`, { data: { issues } });
}

type Stored = { version: string | null; document: string | null };
type Decoded = { ok: true; value: VersionedPolicy } | { ok: false; version: string; problem: string };

/** Checks what Redis holds before it may replace a policy: the version must be a number and the document must validate. */
function decode({ version, document }: Stored): Decoded {
  if (version === null && document === null) return { ok: true, value: { version: 0, policy: DEFAULT_POLICY } };
  if (version === null || !/^\d{1,15}$/.test(version)) return { ok: false, version: String(version), problem: "the version is not a whole number" };
  if (document === null) return { ok: false, version, problem: "the document is missing" };
  let json: unknown;
  try {
    json = JSON.parse(document);
  } catch {
    return { ok: false, version, problem: "the document is not JSON" };
  }
  const parsed = policySchema.safeParse(json);
  if (!parsed.success) return { ok: false, version, problem: invalidPolicy(parsed.error, "the document does not validate").message };
  return { ok: true, value: { version: Number(version), policy: parsed.data } };
}

/**
 * The risk policy store: `current()` from memory, changes through Redis. Every instance reloads
 * within a second of a change: the write publishes the new version, and a periodic check of the
 * stored version catches a message its subscriber missed. A reload validates what it reads; a
 * document that does not validate is logged and the policy in force is kept.
 */
export function createPolicyStore({ redis, prefix, logger, checkIntervalMs = 500, now = Date.now }: CreatePolicyStoreParameters) {
  const keys = policyKeys(prefix);
  redis.defineCommand("fiatgasPolicyWrite", { lua: WRITE, numberOfKeys: 2 });
  const write = (redis as unknown as Record<string, (...args: string[]) => Promise<[0 | 1, number]>>).fiatgasPolicyWrite.bind(redis);

  let loaded: VersionedPolicy = { version: 0, policy: DEFAULT_POLICY };
  // Bumped on every change of `loaded`: a check that read Redis before a newer change landed drops its result.
  let generation = 0;
  let subscriber: Redis | undefined;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = true;
  // Each problem is logged once, not every check.
  let rejected: string | undefined;
  let checkFailing = false;
  let subscriberFailing = false;

  function apply(next: VersionedPolicy) {
    loaded = next;
    generation++;
    rejected = undefined;
  }

  async function store<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw new ServiceError("DEPENDENCY_UNAVAILABLE", "the policy store is unavailable: retry shortly", { cause: error });
    }
  }

  const read = async (): Promise<Stored> => {
    const [version, document] = await redis.hmget(keys.current, "version", "document");
    return { version, document };
  };

  /** Whether a stored version field is the version in force (no field: version 0). */
  const isInForce = (version: string | null) => version === (loaded.version === 0 ? null : String(loaded.version));

  /** Loads the stored policy if its version differs from the one in force. */
  async function check() {
    const seen = generation;
    let stored: Stored;
    try {
      // The version alone first: the document can be megabytes, and it rarely changes.
      const version = await redis.hget(keys.current, "version");
      stored = isInForce(version) ? { version, document: null } : await read();
    } catch (error) {
      if (!checkFailing) logger.warn({ err: { name: (error as Error).name, message: (error as Error).message } }, "risk policy: cannot read the stored version; keeping the policy in force");
      checkFailing = true;
      return;
    }
    if (checkFailing) logger.info({ version: loaded.version }, "risk policy: the stored version is readable again");
    checkFailing = false;
    if (generation !== seen || stopped) return;
    if (isInForce(stored.version)) return;
    const decoded = decode(stored);
    if (decoded.ok && decoded.value.version === 0) {
      // Versions only grow; an empty store under a running policy means lost data, not a change.
      if (rejected !== "0") logger.error({ version: loaded.version }, "risk policy: the stored policy is gone (was Redis flushed?); keeping the policy in force");
      rejected = "0";
      return;
    }
    if (!decoded.ok) {
      if (rejected !== decoded.version) logger.error({ storedVersion: decoded.version, version: loaded.version, problem: decoded.problem }, "risk policy: the stored policy is invalid; keeping the policy in force");
      rejected = decoded.version;
      return;
    }
    const previous = loaded.version;
    apply(decoded.value);
    logger.info({ version: loaded.version, previous }, "risk policy reloaded");
  }

  /** Runs a check, or one more after the one in flight, so checks never overlap. */
  function requestCheck(): Promise<void> {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await check();
      } while (again && !stopped);
    })().finally(() => {
      running = undefined;
    });
    return running;
  }

  async function change(document: unknown, { expectedVersion, actor }: WriteOptions, rollbackOf?: number): Promise<VersionedPolicy> {
    const parsed = policySchema.safeParse(document);
    if (!parsed.success) throw invalidPolicy(parsed.error);
    const next = policyToJson(parsed.data);

    const stored = await store(read);
    const storedVersion = stored.version === null ? 0 : /^\d{1,15}$/.test(stored.version) ? Number(stored.version) : -1;
    if (storedVersion !== expectedVersion) throw stale(storedVersion, expectedVersion);
    const before = storedVersion === 0 ? policyToJson(DEFAULT_POLICY) : parseJson(stored.document);

    const version = expectedVersion + 1;
    const time = now();
    const entry: PolicyHistoryEntry = { version, time, actor, document: next, diff: diffJson(before, next), ...(rollbackOf === undefined ? {} : { rollbackOf }) };
    const [written, current] = await store(() =>
      write(keys.current, keys.history, String(expectedVersion), JSON.stringify(next), JSON.stringify(entry), String(time), actor, keys.channel),
    );
    if (written !== 1) throw stale(current, expectedVersion);
    apply({ version, policy: parsed.data });
    logger.info({ version, actor, changes: entry.diff.length, ...(rollbackOf === undefined ? {} : { rollbackOf }) }, "risk policy changed");
    return loaded;
  }

  return {
    /** The policy in force on this instance, from memory. */
    current(): VersionedPolicy {
      return loaded;
    },

    /**
     * Validates `document` whole (INVALID_PARAMS with `data.issues`, nothing changes), then writes it
     * as the next version if the stored one is `expectedVersion` (else PRECONDITION_FAILED with
     * `data.currentVersion`).
     */
    put(document: unknown, options: WriteOptions): Promise<VersionedPolicy> {
      return change(document, options);
    },

    /** Re-applies version `toVersion`'s document (0: DEFAULT_POLICY) as a new version; history keeps both. */
    async rollback(toVersion: number, options: WriteOptions): Promise<VersionedPolicy> {
      let document: unknown = policyToJson(DEFAULT_POLICY);
      if (toVersion !== 0) {
        const raw = await store(() => redis.hget(keys.history, String(toVersion)));
        if (raw === null) throw new ServiceError("NOT_FOUND", `there is no policy version ${toVersion}: see GET /admin/policy/history`, { data: { toVersion } });
        const entry = parseJson(raw) as Partial<PolicyHistoryEntry> | undefined;
        document = entry?.document;
      }
      // A version written under an older schema may no longer validate: say which version, not just which field.
      const parsed = policySchema.safeParse(document);
      if (!parsed.success) throw invalidPolicy(parsed.error, `version ${toVersion} does not validate under the current policy schema`);
      return change(document, options, toVersion);
    },

    /** Up to `limit` versions, newest first. */
    async history(limit: number): Promise<PolicyHistoryEntry[]> {
      const top = Number((await store(() => redis.hget(keys.current, "version"))) ?? 0);
      if (!Number.isSafeInteger(top) || top < 1) return [];
      const versions = Array.from({ length: Math.min(limit, top) }, (_, index) => String(top - index));
      const raws = await store(() => redis.hmget(keys.history, ...versions));
      return raws.flatMap((raw, index) => {
        const entry = raw === null ? undefined : (parseJson(raw) as PolicyHistoryEntry | undefined);
        if (entry === undefined || entry.version !== Number(versions[index])) {
          logger.warn({ version: versions[index] }, "risk policy: a history entry is missing or unreadable");
          return [];
        }
        return [entry];
      });
    },

    /** Subscribes, loads the stored policy (throws if it does not validate), then checks periodically. */
    async start() {
      if (!stopped) return;
      stopped = false;
      const name = (redis.options.connectionName ?? "fiatgas") + ":policy";
      subscriber = redis.duplicate({ connectionName: name });
      subscriber.on("error", (error: Error) => {
        if (!subscriberFailing) logger.warn({ err: { name: error.name, message: error.message } }, "risk policy: subscriber connection error; the periodic check covers it");
        subscriberFailing = true;
      });
      subscriber.on("ready", () => {
        subscriberFailing = false;
      });
      subscriber.on("message", (channel: string, message: string) => {
        if (channel === keys.channel && Number(message) !== loaded.version) void requestCheck();
      });
      // Subscribed before the first load, so no change can fall between the two.
      await subscriber.subscribe(keys.channel);
      const decoded = decode(await read());
      if (!decoded.ok) {
        throw new Error(
          `the stored risk policy (version ${decoded.version}) is invalid: ${decoded.problem}. Re-apply a valid version with POST /admin/policy/rollback or PUT /admin/policy on a running instance, or repair the key ${keys.current}`,
        );
      }
      apply(decoded.value);
      timer = setInterval(() => void requestCheck(), checkIntervalMs);
      timer.unref();
    },

    /** Stops checking and closes the subscriber; the policy in force stays readable. */
    async stop() {
      stopped = true;
      clearInterval(timer);
      timer = undefined;
      await running;
      const closing = subscriber;
      subscriber = undefined;
      if (closing) await closing.quit().catch(() => closing.disconnect());
    },
  };

  function stale(currentVersion: number, expectedVersion: number): Error {
    // Not the caller's doing: a plain Error answers INTERNAL and goes to the log.
    if (currentVersion < 0) return new Error(`the stored policy version at ${keys.current} is not a whole number`);
    return new ServiceError(
      "PRECONDITION_FAILED",
      `the policy is at version ${currentVersion}, not ${expectedVersion}: read it again (GET /admin/policy), re-apply your change, and send If-Match: "${currentVersion}"`,
      { data: { currentVersion, expectedVersion } },
    );
  }
}

function parseJson(text: string | null): unknown {
  if (text === null) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export type PolicyStore = ReturnType<typeof createPolicyStore>;
