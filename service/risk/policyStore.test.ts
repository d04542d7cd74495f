// The policy store against a real redis-server: whole-document validation, versioned writes,
// history with diffs, rollback, and live reload across instances (pub/sub and the periodic check).
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";

import type { Redis } from "ioredis";

import { type RedisServer, startRedis } from "../../test/support/redis.ts";
import { type ServiceError, hasCode } from "../errors.ts";
import { createRedis } from "../redis.ts";
import { DEFAULT_POLICY, policySchema, policyToJson } from "./policy.ts";
import { type PolicyStore, type PolicyStoreLogger, createPolicyStore, diffJson, policyKeys } from "./policyStore.ts";
import { within } from "../../test/support/wait.ts";

const ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

let server: RedisServer;
let admin: Redis;
let prefixes = 0;
const cleanups: (() => Promise<void>)[] = [];

before(async () => {
  server = await startRedis();
  admin = server.client();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
after(async () => {
  await server?.stop();
});

type LogLine = { level: keyof PolicyStoreLogger; fields: object; message: string };

/** A store on its own connection (named `<prefix>-<name>`), started; stopped after the test. */
async function startStore(prefix: string, { name = "a", checkIntervalMs }: { name?: string; checkIntervalMs?: number } = {}) {
  const redis = createRedis(server.url, { connectionName: `${prefix}-${name}` });
  const logs: LogLine[] = [];
  const logger: PolicyStoreLogger = {
    info: (fields, message) => logs.push({ level: "info", fields, message }),
    warn: (fields, message) => logs.push({ level: "warn", fields, message }),
    error: (fields, message) => logs.push({ level: "error", fields, message }),
  };
  const store = createPolicyStore({ redis, prefix, logger, ...(checkIntervalMs === undefined ? {} : { checkIntervalMs }) });
  cleanups.push(async () => {
    await store.stop();
    redis.disconnect();
  });
  await store.start();
  return { store, redis, logs };
}

/** A fresh key prefix, so each test starts from an empty store. */
const freshPrefix = () => `t${++prefixes}`;

/** Asserts `promise` rejects with a ServiceError of `code` and returns it. */
async function rejection(promise: Promise<unknown>, code: ServiceError["code"]): Promise<ServiceError> {
  const error = await promise.then(
    () => assert.fail(`expected ${code}`),
    (error: unknown) => error,
  );
  assert.ok(hasCode(error, code), `expected ${code}, got ${String(error)}`);
  return error as ServiceError;
}

/** The id of the client connection named `name`. */
async function clientId(name: string): Promise<string> {
  const list = (await admin.client("LIST")) as string;
  const line = list.split("\n").find((entry) => entry.includes(` name=${name} `));
  assert.ok(line, `a client named ${name}`);
  return /\bid=(\d+)/.exec(line)![1];
}

const subscribers = async (prefix: string) => Number(((await admin.pubsub("NUMSUB", policyKeys(prefix).channel)) as [string, number])[1]);

describe("diffJson", () => {
  it("lists each changed leaf by dotted path; arrays and scalars compare whole; added and removed fields lack from or to", () => {
    assert.deepEqual(
      diffJson(
        { perAccount: { maxOperationsPerDay: null, topUpCoolingSeconds: 0 }, calls: { deniedSenders: [] }, gone: 1 },
        { perAccount: { maxOperationsPerDay: 100, topUpCoolingSeconds: 0 }, calls: { deniedSenders: [ALICE] }, added: { x: 1 } },
      ),
      [
        { path: "perAccount.maxOperationsPerDay", from: null, to: 100 },
        { path: "calls.deniedSenders", from: [], to: [ALICE] },
        { path: "added", to: { x: 1 } },
        { path: "gone", from: 1 },
      ],
    );
    assert.deepEqual(diffJson(policyToJson(DEFAULT_POLICY), policyToJson(DEFAULT_POLICY)), []);
  });
});

describe("createPolicyStore", () => {
  it("serves DEFAULT_POLICY as version 0 until the first change, then each change as the next version", async () => {
    const prefix = freshPrefix();
    const { store, redis } = await startStore(prefix);
    assert.deepEqual(store.current(), { version: 0, policy: DEFAULT_POLICY });

    const changed = await store.put({ perAccount: { maxOperationsPerDay: 100 } }, { expectedVersion: 0, actor: "alice" });
    assert.equal(changed.version, 1);
    assert.equal(store.current().version, 1);
    assert.equal(store.current().policy.perAccount.maxOperationsPerDay, 100);
    assert.equal(store.current().policy.perOperation.maxCallGasLimit, 2_000_000, "omitted fields take their defaults");
    const stored = await redis.hgetall(policyKeys(prefix).current);
    assert.equal(stored.version, "1");
    assert.equal(stored.actor, "alice");
    assert.deepEqual(JSON.parse(stored.document), policyToJson(store.current().policy), "the whole document is stored, defaults filled in");

    const second = await store.put({ perAccount: { maxOperationsPerDay: 50 }, global: { maxSpendFenPerDay: "900000" } }, { expectedVersion: 1, actor: "bob" });
    assert.equal(second.version, 2);
    assert.equal(store.current().policy.global.maxSpendFenPerDay, 900_000n);
  });

  it("refuses a document with any bad field, naming each field, and keeps the policy in force and in Redis", async () => {
    const prefix = freshPrefix();
    const { store, redis } = await startStore(prefix);
    await store.put({ perAccount: { maxOperationsPerDay: 100 } }, { expectedVersion: 0, actor: "alice" });
    const before = await redis.hgetall(policyKeys(prefix).current);

    const error = await rejection(
      store.put(
        {
          perAccount: { maxOperationsPerDay: -1, maxSpendFenPerDay: 12.5 },
          perOperation: { maxChargeFen: "500" },
          time: { activeFrom: 2_000, activeUntil: 1_000 },
        },
        { expectedVersion: 1, actor: "mallory" },
      ),
      "INVALID_PARAMS",
    );
    const issues = error.data?.issues as { path: string; message: string }[];
    assert.deepEqual(issues.map((issue) => issue.path).sort(), ["perAccount.maxOperationsPerDay", "perAccount.maxSpendFenPerDay"]);
    assert.match(issues.find((issue) => issue.path === "perAccount.maxOperationsPerDay")!.message, /must not be negative/);
    assert.match(error.message, /^invalid policy: perAccount\.maxOperationsPerDay: /);

    // Cross-field rules and unknown fields are refused the same way.
    const crossField = await rejection(store.put({ time: { activeFrom: 2_000, activeUntil: 1_000 } }, { expectedVersion: 1, actor: "mallory" }), "INVALID_PARAMS");
    assert.deepEqual(crossField.data?.issues, [{ path: "time.activeUntil", message: "activeUntil must be after activeFrom" }]);
    const unknown = await rejection(store.put({ perAccount: { maxOpsPerDay: 5 } }, { expectedVersion: 1, actor: "mallory" }), "INVALID_PARAMS");
    assert.equal((unknown.data?.issues as { path: string }[])[0].path, "perAccount");

    assert.equal(store.current().version, 1);
    assert.equal(store.current().policy.perAccount.maxOperationsPerDay, 100);
    assert.deepEqual(await redis.hgetall(policyKeys(prefix).current), before);
    assert.equal(await redis.hlen(policyKeys(prefix).history), 1);
  });

  it("writes only against the stored version: a stale or concurrent change gets PRECONDITION_FAILED with the current version", async () => {
    const prefix = freshPrefix();
    const a = await startStore(prefix, { name: "a" });
    const b = await startStore(prefix, { name: "b" });
    await a.store.put({}, { expectedVersion: 0, actor: "alice" });

    const stale = await rejection(a.store.put({ perAccount: { maxOperationsPerDay: 1 } }, { expectedVersion: 0, actor: "alice" }), "PRECONDITION_FAILED");
    assert.deepEqual(stale.data, { currentVersion: 1, expectedVersion: 0 });
    assert.match(stale.message, /If-Match: "1"/);

    // Two instances change version 1 at once: exactly one wins.
    const results = await Promise.allSettled([
      a.store.put({ perAccount: { maxOperationsPerDay: 10 } }, { expectedVersion: 1, actor: "alice" }),
      b.store.put({ perAccount: { maxOperationsPerDay: 20 } }, { expectedVersion: 1, actor: "bob" }),
    ]);
    const won = results.filter((result) => result.status === "fulfilled");
    const lost = results.filter((result) => result.status === "rejected");
    assert.equal(won.length, 1);
    assert.equal(won[0].value.version, 2);
    assert.ok(hasCode(lost[0].reason, "PRECONDITION_FAILED"));
    assert.equal((lost[0].reason as ServiceError).data?.currentVersion, 2);
    assert.equal(await a.redis.hlen(policyKeys(prefix).history), 2);
  });

  it("keeps every version with actor, time and a diff, newest first; a rollback is a new version and history keeps both", async () => {
    const prefix = freshPrefix();
    let clock = 1_700_000_000_000;
    const redis = createRedis(server.url, { connectionName: `${prefix}-clock` });
    const silent: PolicyStoreLogger = { info: () => {}, warn: () => {}, error: () => {} };
    const store: PolicyStore = createPolicyStore({ redis, prefix, logger: silent, now: () => clock });
    cleanups.push(async () => {
      await store.stop();
      redis.disconnect();
    });
    await store.start();

    await store.put({ perAccount: { maxOperationsPerDay: 100 } }, { expectedVersion: 0, actor: "alice" });
    clock += 60_000;
    await store.put({ perAccount: { maxOperationsPerDay: 50 }, calls: { deniedSenders: [ALICE.toLowerCase()] } }, { expectedVersion: 1, actor: "bob" });
    clock += 60_000;
    const rolledBack = await store.rollback(1, { expectedVersion: 2, actor: "carol" });
    assert.equal(rolledBack.version, 3);
    assert.deepEqual(policyToJson(store.current().policy), policyToJson(policySchema.parse({ perAccount: { maxOperationsPerDay: 100 } })));

    const history = await store.history(10);
    assert.deepEqual(
      history.map(({ version, time, actor, diff, rollbackOf }) => ({ version, time, actor, diff, rollbackOf })),
      [
        {
          version: 3,
          time: 1_700_000_120_000,
          actor: "carol",
          diff: [
            { path: "perAccount.maxOperationsPerDay", from: 50, to: 100 },
            { path: "calls.deniedSenders", from: [ALICE], to: [] },
          ],
          rollbackOf: 1,
        },
        {
          version: 2,
          time: 1_700_000_060_000,
          actor: "bob",
          diff: [
            { path: "perAccount.maxOperationsPerDay", from: 100, to: 50 },
            { path: "calls.deniedSenders", from: [], to: [ALICE] },
          ],
          rollbackOf: undefined,
        },
        { version: 1, time: 1_700_000_000_000, actor: "alice", diff: [{ path: "perAccount.maxOperationsPerDay", from: null, to: 100 }], rollbackOf: undefined },
      ],
    );
    assert.deepEqual(history[2].document, history[0].document, "the rollback re-applied version 1's document");
    assert.deepEqual(
      (await store.history(2)).map((entry) => entry.version),
      [3, 2],
    );

    // Version 0 is the defaults; an unknown version and a stale If-Match are refused.
    const defaults = await store.rollback(0, { expectedVersion: 3, actor: "carol" });
    assert.deepEqual(defaults, { version: 4, policy: DEFAULT_POLICY });
    assert.deepEqual((await rejection(store.rollback(99, { expectedVersion: 4, actor: "carol" }), "NOT_FOUND")).data, { toVersion: 99 });
    assert.equal((await rejection(store.rollback(2, { expectedVersion: 3, actor: "carol" }), "PRECONDITION_FAILED")).data?.currentVersion, 4);
    assert.equal(store.current().version, 4);
  });

  it("refuses to roll back to a version whose document no longer validates", async () => {
    const prefix = freshPrefix();
    const { store, redis } = await startStore(prefix);
    await store.put({}, { expectedVersion: 0, actor: "alice" });
    // As if version 1 had been written under an older, looser schema.
    await redis.hset(policyKeys(prefix).history, "1", JSON.stringify({ version: 1, time: 0, actor: "alice", document: { perAccount: { maxOperationsPerDay: -1 } }, diff: [] }));
    const error = await rejection(store.rollback(1, { expectedVersion: 1, actor: "carol" }), "INVALID_PARAMS");
    assert.match(error.message, /^version 1 does not validate under the current policy schema: perAccount\.maxOperationsPerDay/);
    assert.equal(store.current().version, 1);
  });
});

describe("live reload", () => {
  it("pushes a change to another instance over pub/sub within a second", async () => {
    const prefix = freshPrefix();
    const a = await startStore(prefix, { name: "a" });
    // A check interval far beyond the deadline: only the pub/sub message can deliver in time.
    const b = await startStore(prefix, { name: "b", checkIntervalMs: 60_000 });
    await a.store.put({ perAccount: { maxOperationsPerDay: 7 } }, { expectedVersion: 0, actor: "alice" });
    assert.ok(await within(1_000, () => b.store.current().version === 1), "B applies version 1 within a second");
    assert.equal(b.store.current().policy.perAccount.maxOperationsPerDay, 7);
    assert.ok(b.logs.some((line) => line.level === "info" && line.message === "risk policy reloaded"));
  });

  it("catches a change whose message the subscriber missed with the periodic check", async () => {
    const prefix = freshPrefix();
    const a = await startStore(prefix, { name: "a" });
    const b = await startStore(prefix, { name: "b" });
    const keys = policyKeys(prefix);
    const document = JSON.stringify(policyToJson(policySchema.parse({ perAccount: { maxOperationsPerDay: 3 } })));
    // Kill B's subscriber and write the change in one transaction: the message cannot reach B.
    const killed = await clientId(`${prefix}-b:policy`);
    const replies = (await admin
      .multi()
      .client("KILL", "ID", killed)
      .hset(keys.current, "version", "1", "document", document, "time", String(Date.now()), "actor", "alice")
      .publish(keys.channel, "1")
      .exec())!;
    assert.equal(replies[2][1], 1, "only A's subscriber received the message");

    assert.ok(await within(1_000, () => b.store.current().version === 1), "B applies version 1 within a second anyway");
    assert.equal(b.store.current().policy.perAccount.maxOperationsPerDay, 3);
    assert.equal(a.store.current().version, 1);
  });

  it("resubscribes after its subscriber connection drops", async () => {
    const prefix = freshPrefix();
    const a = await startStore(prefix, { name: "a" });
    const b = await startStore(prefix, { name: "b", checkIntervalMs: 60_000 });
    assert.equal(await subscribers(prefix), 2);
    await admin.client("KILL", "ID", await clientId(`${prefix}-b:policy`));
    assert.ok(await within(5_000, async () => (await subscribers(prefix)) === 2), "B's subscriber is back");
    await a.store.put({ perAccount: { maxOperationsPerDay: 9 } }, { expectedVersion: 0, actor: "alice" });
    assert.ok(await within(1_000, () => b.store.current().version === 1), "B applies version 1 within a second, over pub/sub");
  });

  it("keeps the policy in force when the stored document is corrupted, logs it once, and recovers with the next valid change", async () => {
    const prefix = freshPrefix();
    const a = await startStore(prefix, { name: "a" });
    const b = await startStore(prefix, { name: "b", checkIntervalMs: 50 });
    await a.store.put({ perAccount: { maxOperationsPerDay: 100 } }, { expectedVersion: 0, actor: "alice" });
    assert.ok(await within(1_000, () => b.store.current().version === 1));
    const keys = policyKeys(prefix);

    for (const [version, document] of [
      ["2", JSON.stringify({ perAccount: { maxOperationsPerDay: -5 } })],
      ["3", "{not json"],
    ] as const) {
      await admin.hset(keys.current, "version", version, "document", document);
      await admin.publish(keys.channel, version);
      assert.ok(
        await within(2_000, () => b.logs.some((line) => line.level === "error" && (line.fields as { storedVersion?: string }).storedVersion === version)),
        `B reports stored version ${version}`,
      );
      assert.equal(b.store.current().version, 1, "B keeps version 1");
      assert.equal(b.store.current().policy.perAccount.maxOperationsPerDay, 100);
    }
    // Several checks later, each bad version has been reported once.
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(
      b.logs.filter((line) => line.level === "error").map((line) => [(line.fields as { storedVersion: string }).storedVersion, line.message]),
      [
        ["2", "risk policy: the stored policy is invalid; keeping the policy in force"],
        ["3", "risk policy: the stored policy is invalid; keeping the policy in force"],
      ],
    );
    const problem = (b.logs.find((line) => line.level === "error")!.fields as { problem: string }).problem;
    assert.match(problem, /perAccount\.maxOperationsPerDay/);

    // A new instance refuses to start on it rather than fall back to the defaults.
    const redis = createRedis(server.url, { connectionName: `${prefix}-c` });
    const c = createPolicyStore({ redis, prefix, logger: { info: () => {}, warn: () => {}, error: () => {} } });
    cleanups.push(async () => {
      await c.stop();
      redis.disconnect();
    });
    await assert.rejects(c.start(), /the stored risk policy \(version 3\) is invalid: the document is not JSON/);

    // The operator writes a valid version against the stored one; every instance takes it.
    await a.store.put({ perAccount: { maxOperationsPerDay: 42 } }, { expectedVersion: 3, actor: "alice" });
    assert.ok(await within(1_000, () => b.store.current().version === 4));
    assert.equal(b.store.current().policy.perAccount.maxOperationsPerDay, 42);
  });
});
