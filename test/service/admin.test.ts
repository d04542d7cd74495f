// The admin API against the real stack: authentication and its log, the policy routes with
// If-Match, live reload into a second service instance on the same Redis, and account freezes and
// lookups. One stack for the file; the tests run in order.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { getAddress, numberToHex } from "viem";

import { ERROR_TABLE } from "../../service/errors.ts";
import { PreflightError } from "../../service/preflight.ts";
import { DEFAULT_POLICY, policyToJson } from "../../service/risk/policy.ts";
import { policyKeys } from "../../service/risk/policyStore.ts";
import { type Service, createService } from "../../service/service.ts";
import { captureLog, FIXTURE_POLICY, rpcUserOperationFields, type ServiceStack, startServiceStack } from "../support/serviceFixture.ts";
import { within } from "../support/wait.ts";

/** Every line the service logs at info and above. */
const { lines: logLines, stream: logStream } = captureLog();

let stack: ServiceStack;
let second: Service | undefined;
before(async () => {
  // No starting policy: these tests count versions from 0, the defaults.
  stack = await startServiceStack({}, { logger: { level: "info", stream: logStream }, policy: null });
});
after(async () => {
  await second?.stop();
  await stack?.stop();
});

type ErrorBody = { error: { code: string; message: string; data?: Record<string, unknown> } };
type PolicyBody = { version: number; etag: string; policy: Record<string, unknown> };

/** An admin request: the stack's token unless `token` says otherwise (null: no Authorization header). */
async function admin(method: string, path: string, { body, token, headers = {} }: { body?: unknown; token?: string | null; headers?: Record<string, string> } = {}) {
  const sent: Record<string, string> = { ...headers };
  if (token !== null) sent.authorization ??= `Bearer ${token ?? stack.adminToken}`;
  if (body !== undefined) sent["content-type"] = "application/json";
  const response = await fetch(`${stack.url}${path}`, {
    method,
    headers: sent,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: (text ? JSON.parse(text) : undefined) as unknown, text };
}

/** Checks an error answer's status and code, which must agree with the one error table. */
function errorOf(answer: { status: number; body: unknown; text: string }, status: number, code: keyof typeof ERROR_TABLE): ErrorBody["error"] {
  assert.equal(answer.status, status, answer.text);
  const { error } = answer.body as ErrorBody;
  assert.equal(error.code, code, answer.text);
  assert.equal(ERROR_TABLE[code].http, status);
  return error;
}

/** Parsed "admin call" log lines written since `from`. */
const adminCalls = (from: number) =>
  logLines
    .slice(from)
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((entry) => entry.msg === "admin call");

describe("admin authentication", () => {
  it("refuses a call without a token, with another scheme, or with a wrong token of the same or another length (401)", async () => {
    const sameLength = stack.adminToken.slice(0, -1) + (stack.adminToken.endsWith("0") ? "1" : "0");
    const attempts: { token?: string | null; headers?: Record<string, string> }[] = [
      { token: null },
      { token: null, headers: { authorization: `Basic ${stack.adminToken}` } },
      { token: sameLength },
      { token: stack.adminToken.slice(0, 16) },
      { token: `${stack.adminToken}0` },
    ];
    for (const attempt of attempts) {
      for (const [method, path, body] of [
        ["GET", "/admin/policy", undefined],
        ["PUT", "/admin/policy", { perAccount: { maxOperationsPerDay: 1 } }],
        ["POST", `/admin/accounts/${"0x" + "11".repeat(20)}/freeze`, { reason: "x" }],
      ] as const) {
        const answer = await admin(method, path, { ...attempt, body, headers: { ...attempt.headers, "if-match": '"0"' } });
        errorOf(answer, 401, "UNAUTHENTICATED");
        assert.match(answer.headers.get("www-authenticate") ?? "", /^Bearer /);
      }
    }
    assert.equal(stack.service.policies.current().version, 0, "nothing changed");
    assert.equal(await stack.service.freezes.status(`0x${"11".repeat(20)}`), null);
  });

  it("logs every call with its actor, route and outcome, and never the token", async () => {
    const from = logLines.length;
    const wrong = `${stack.adminToken.slice(0, -4)}beef`;
    await admin("GET", "/admin/policy", { token: wrong });
    await admin("GET", "/admin/policy");
    await admin("GET", "/admin/policy/history?limit=5", { headers: { "x-admin-actor": "alice@ops" } });
    errorOf(await admin("GET", "/admin/policy", { headers: { "x-admin-actor": "alice smith" } }), 400, "INVALID_PARAMS");

    const calls = adminCalls(from).map(({ actor, route, status, outcome, level }) => ({ actor, route, status, outcome, level }));
    assert.deepEqual(calls, [
      { actor: null, route: "GET /admin/policy", status: 401, outcome: "UNAUTHENTICATED", level: 30 },
      { actor: "admin", route: "GET /admin/policy", status: 200, outcome: "ok", level: 30 },
      { actor: "alice@ops", route: "GET /admin/policy/history", status: 200, outcome: "ok", level: 30 },
      { actor: null, route: "GET /admin/policy", status: 400, outcome: "INVALID_PARAMS", level: 30 },
    ]);
    for (const secret of [stack.adminToken, wrong]) {
      assert.deepEqual(
        logLines.filter((line) => line.includes(secret)),
        [],
        "a token appears in the log",
      );
    }
  });
});

describe("policy routes", () => {
  it("serves the default policy as version 0 with its ETag", async () => {
    const answer = await admin("GET", "/admin/policy");
    assert.equal(answer.status, 200);
    assert.equal(answer.headers.get("etag"), '"0"');
    assert.equal(answer.headers.get("cache-control"), "no-store");
    assert.deepEqual(answer.body, { version: 0, etag: '"0"', policy: policyToJson(DEFAULT_POLICY) });
  });

  it("requires If-Match (428), refuses `*` or a malformed one (400), and a bad document with an issue per field (400), keeping the policy", async () => {
    const document = { perAccount: { maxOperationsPerDay: 100 } };
    const missing = errorOf(await admin("PUT", "/admin/policy", { body: document }), 428, "PRECONDITION_REQUIRED");
    assert.match(missing.message, /If-Match is required/);
    for (const ifMatch of ["*", "0", 'W/"0"', '"0", "1"']) {
      const error = errorOf(await admin("PUT", "/admin/policy", { body: document, headers: { "if-match": ifMatch } }), 400, "INVALID_PARAMS");
      assert.deepEqual(error.data, { issues: [{ path: "if-match", message: 'must be one ETag from GET /admin/policy, e.g. "3"' }] });
    }

    const bad = { perAccount: { maxOperationsPerDay: -1, maxSpendFenPerDay: 5 }, perOperation: { maxFeeToBaseFeeBps: 5_000 }, extra: true };
    const error = errorOf(await admin("PUT", "/admin/policy", { body: bad, headers: { "if-match": '"0"' } }), 400, "INVALID_PARAMS");
    const issues = error.data?.issues as { path: string; message: string }[];
    assert.deepEqual(issues.map((issue) => issue.path).sort(), ["", "perAccount.maxOperationsPerDay", "perAccount.maxSpendFenPerDay", "perOperation.maxFeeToBaseFeeBps"]);
    assert.ok(issues.every((issue) => issue.message.length > 0));

    assert.equal(((await admin("GET", "/admin/policy")).body as PolicyBody).version, 0);
    assert.equal(stack.service.policies.current().version, 0);
  });

  it("applies a valid document against the current version, answers the new ETag, and refuses a stale If-Match with the current version (412)", async () => {
    const answer = await admin("PUT", "/admin/policy", {
      body: { perAccount: { maxOperationsPerDay: 100 } },
      headers: { "if-match": '"0"', "x-admin-actor": "alice" },
    });
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.headers.get("etag"), '"1"');
    const body = answer.body as PolicyBody;
    assert.equal(body.version, 1);
    assert.equal((body.policy.perAccount as Record<string, unknown>).maxOperationsPerDay, 100);
    assert.equal(stack.service.policies.current().version, 1, "the instance that wrote it applies it at once");
    assert.equal(stack.service.policies.current().policy.perAccount.maxOperationsPerDay, 100);

    const stale = errorOf(await admin("PUT", "/admin/policy", { body: {}, headers: { "if-match": '"0"' } }), 412, "PRECONDITION_FAILED");
    assert.deepEqual(stale.data, { currentVersion: 1, expectedVersion: 0 });
    assert.equal(stack.service.policies.current().version, 1);
  });

  it("lists history newest first with actor, time and diff, and rolls back as a new version", async () => {
    const put = await admin("PUT", "/admin/policy", {
      body: { perAccount: { maxOperationsPerDay: 50 }, global: { maxSpendFenPerDay: "1000000" } },
      headers: { "if-match": '"1"', "x-admin-actor": "bob" },
    });
    assert.equal(put.status, 200, put.text);

    const history = await admin("GET", "/admin/policy/history?limit=10");
    assert.equal(history.status, 200, history.text);
    const entries = history.body as { version: number; time: string; actor: string; diff: unknown[]; rollbackOf?: number }[];
    assert.deepEqual(
      entries.map(({ version, actor, diff }) => ({ version, actor, diff })),
      [
        {
          version: 2,
          actor: "bob",
          diff: [
            { path: "perAccount.maxOperationsPerDay", from: 100, to: 50 },
            { path: "global.maxSpendFenPerDay", from: null, to: "1000000" },
          ],
        },
        { version: 1, actor: "alice", diff: [{ path: "perAccount.maxOperationsPerDay", from: null, to: 100 }] },
      ],
    );
    for (const entry of entries) assert.ok(Math.abs(Date.parse(entry.time) - Date.now()) < 60_000, entry.time);
    assert.equal(((await admin("GET", "/admin/policy/history?limit=1")).body as unknown[]).length, 1);
    assert.equal(((await admin("GET", "/admin/policy/history")).body as unknown[]).length, 2, "the default limit is 20");
    errorOf(await admin("GET", "/admin/policy/history?limit=0"), 400, "INVALID_PARAMS");
    errorOf(await admin("GET", "/admin/policy/history?limit=101"), 400, "INVALID_PARAMS");

    errorOf(await admin("POST", "/admin/policy/rollback", { body: { toVersion: 1 } }), 428, "PRECONDITION_REQUIRED");
    errorOf(await admin("POST", "/admin/policy/rollback", { body: { toVersion: 9 }, headers: { "if-match": '"2"' } }), 404, "NOT_FOUND");
    const rollback = await admin("POST", "/admin/policy/rollback", { body: { toVersion: 1 }, headers: { "if-match": '"2"', "x-admin-actor": "carol" } });
    assert.equal(rollback.status, 200, rollback.text);
    assert.equal(rollback.headers.get("etag"), '"3"');
    const versionOne = (await stack.service.policies.history(3)).find((entry) => entry.version === 1)!;
    assert.deepEqual((rollback.body as PolicyBody).policy, versionOne.document);

    const latest = ((await admin("GET", "/admin/policy/history?limit=3")).body as { version: number; actor: string; rollbackOf?: number; diff: unknown[] }[]).map(
      ({ version, actor, rollbackOf, diff }) => ({ version, actor, rollbackOf, diff }),
    );
    assert.deepEqual(latest, [
      {
        version: 3,
        actor: "carol",
        rollbackOf: 1,
        diff: [
          { path: "perAccount.maxOperationsPerDay", from: 50, to: 100 },
          { path: "global.maxSpendFenPerDay", from: "1000000", to: null },
        ],
      },
      { version: 2, actor: "bob", rollbackOf: undefined, diff: latest[1].diff },
      { version: 1, actor: "alice", rollbackOf: undefined, diff: latest[2].diff },
    ]);
    assert.equal(stack.service.policies.current().version, 3);
  });

  it("documents every admin route under the tag admin", async () => {
    const document = (await (await fetch(`${stack.url}/docs/json`)).json()) as { paths: Record<string, Record<string, { tags?: string[] }>> };
    for (const [path, method] of [
      ["/admin/policy", "get"],
      ["/admin/policy", "put"],
      ["/admin/policy/history", "get"],
      ["/admin/policy/rollback", "post"],
      ["/admin/accounts/{address}/freeze", "post"],
      ["/admin/accounts/{address}/unfreeze", "post"],
      ["/admin/accounts/{address}", "get"],
    ]) {
      assert.deepEqual(document.paths[path]?.[method]?.tags, ["admin"], `${method.toUpperCase()} ${path}`);
    }
  });
});

describe("live reload across instances", () => {
  it("shows a change made through instance A in instance B within a second", async () => {
    second = await createService(stack.service.config, { logger: false });
    await second.start();
    assert.equal(second.policies.current().version, 3, "B loads the stored policy at start");

    const answer = await admin("PUT", "/admin/policy", { body: { perAccount: { maxOperationsPerDay: 7 } }, headers: { "if-match": '"3"' } });
    assert.equal(answer.status, 200, answer.text);
    const b = second;
    assert.ok(await within(1_000, () => b.policies.current().version === 4), "B applies version 4 within a second");
    assert.equal(b.policies.current().policy.perAccount.maxOperationsPerDay, 7);
  });

  it("still shows it within a second when B's subscriber connection was dropped", async () => {
    const b = second!;
    const client = stack.redis.client();
    // Drops every policy subscriber (A's and B's); the write below may land before they resubscribe.
    await client.client("KILL", "TYPE", "pubsub");
    const answer = await admin("PUT", "/admin/policy", { body: { perAccount: { maxOperationsPerDay: 8 } }, headers: { "if-match": '"4"' } });
    assert.equal(answer.status, 200, answer.text);
    assert.ok(await within(1_000, () => b.policies.current().version === 5), "B applies version 5 within a second");
    assert.ok(
      await within(5_000, async () => ((await client.pubsub("NUMSUB", policyKeys(stack.service.config.REDIS_KEY_PREFIX).channel)) as [string, number])[1] === 2),
      "both subscribers are back",
    );
  });
});

describe("start with a corrupted stored policy", () => {
  it("refuses to start (PreflightError) rather than run on the defaults", async () => {
    const prefix = "corrupt";
    const client = stack.redis.client();
    await client.hset(policyKeys(prefix).current, "version", "1", "document", JSON.stringify({ perAccount: { maxOperationsPerDay: "many" } }));
    const service = await createService({ ...stack.service.config, REDIS_KEY_PREFIX: prefix }, { logger: false });
    try {
      const error = await service.start().then(
        () => assert.fail("expected start() to fail"),
        (error: unknown) => error,
      );
      assert.ok(error instanceof PreflightError, String(error));
      assert.equal(error.problems.length, 1);
      assert.match(error.problems[0], /^risk policy: the stored risk policy \(version 1\) is invalid: the document does not validate: perAccount\.maxOperationsPerDay: /);
    } finally {
      await service.stop();
    }
  });
});


describe("accounts", () => {
  it("freezes and unfreezes an account in its hash-tagged key, and records who, when and why", async () => {
    const account = `0x${"ab".repeat(20)}`;
    const key = `${stack.service.config.REDIS_KEY_PREFIX}:{${getAddress(account)}}:frozen`;
    const redis = stack.redis.client();

    errorOf(await admin("POST", `/admin/accounts/${account}/freeze`, { body: {} }), 400, "INVALID_PARAMS");
    errorOf(await admin("POST", `/admin/accounts/${account}/freeze`, { body: { reason: "   " } }), 400, "INVALID_PARAMS");
    errorOf(await admin("POST", "/admin/accounts/0x12/freeze", { body: { reason: "x" } }), 400, "INVALID_PARAMS");

    const frozen = await admin("POST", `/admin/accounts/${account}/freeze`, { body: { reason: "chargeback on order 42" }, headers: { "x-admin-actor": "alice" } });
    assert.equal(frozen.status, 200, frozen.text);
    const body = frozen.body as { address: string; frozen: { reason: string; actor: string; at: string }; changed: boolean };
    assert.equal(body.address, getAddress(account));
    assert.equal(body.changed, true);
    assert.deepEqual({ reason: body.frozen.reason, actor: body.frozen.actor }, { reason: "chargeback on order 42", actor: "alice" });
    const stored = await redis.hgetall(key);
    assert.deepEqual(Object.keys(stored).sort(), ["actor", "at", "reason"]);
    assert.deepEqual({ reason: stored.reason, actor: stored.actor }, { reason: "chargeback on order 42", actor: "alice" });
    assert.match(stored.at, /^\d{10}$/, "unix seconds");
    assert.equal(new Date(Number(stored.at) * 1000).toISOString(), body.frozen.at);

    const again = await admin("POST", `/admin/accounts/${account}/freeze`, { body: { reason: "still under review" } });
    assert.equal((again.body as { changed: boolean }).changed, false);
    assert.equal((await redis.hgetall(key)).reason, "still under review");

    const unfrozen = await admin("POST", `/admin/accounts/${account}/unfreeze`, { body: { reason: "resolved" }, headers: { "x-admin-actor": "bob" } });
    assert.equal(unfrozen.status, 200, unfrozen.text);
    assert.deepEqual(unfrozen.body, { address: body.address, frozen: null, changed: true });
    assert.equal(await redis.exists(key), 0, "the key exists only while the account is frozen");
    const twice = await admin("POST", `/admin/accounts/${account}/unfreeze`, { body: { reason: "resolved" } });
    assert.equal((twice.body as { changed: boolean }).changed, false);

    const lookup = await admin("GET", `/admin/accounts/${account}`);
    assert.equal(lookup.status, 200, lookup.text);
    const view = lookup.body as { frozen: unknown; freezeLog: { action: string; reason: string; actor: string }[] };
    assert.equal(view.frozen, null);
    assert.deepEqual(
      view.freezeLog.map(({ action, reason, actor }) => ({ action, reason, actor })),
      [
        { action: "unfreeze", reason: "resolved", actor: "bob" },
        { action: "freeze", reason: "still under review", actor: "admin" },
        { action: "freeze", reason: "chargeback on order 42", actor: "alice" },
      ],
    );
  });

  it("looks an account up: balance, live reservations with their ops, freeze status, and no invented orders", async () => {
    const account = await stack.newAccount("0.7");
    const token = await stack.signIn(account);
    await stack.service.ledger.credit(account.sender, 100_000n);
    // The op's fixed 3 gwei would break the default fee cap on anvil's decayed base fee.
    await stack.service.policies.put(FIXTURE_POLICY, { expectedVersion: stack.service.policies.current().version, actor: "test" });
    const signed = await stack.post("/rpc", {
      jsonrpc: "2.0",
      id: 1,
      method: "pm_getPaymasterData",
      params: [rpcUserOperationFields(account.sender, account.factory, account.factoryData), stack.entryPoint("0.7"), numberToHex(stack.anvil.chainId), { session: token }],
    });
    assert.ok(signed.body.result, JSON.stringify(signed.body));
    const [reservation] = await stack.service.ledger.reservations(account.sender);
    assert.equal(reservation.ops.length, 1);

    const lookup = await admin("GET", `/admin/accounts/${account.sender.toLowerCase()}`);
    assert.equal(lookup.status, 200, lookup.text);
    const reserved = reservation.chargeFen.toString();
    assert.deepEqual(lookup.body, {
      address: account.sender,
      currency: "CNY",
      balanceFen: "100000",
      reservedFen: reserved,
      availableFen: String(100_000n - reservation.chargeFen),
      frozen: null,
      freezeLog: [],
      reservations: [
        {
          entryPointVersion: "0.7",
          nonce: "0",
          paymaster: stack.deployment("0.7").paymaster,
          chargeFen: reserved,
          validUntil: reservation.validUntil,
          createdAt: reservation.createdAt,
          userOpHashes: [reservation.ops[0].userOpHash],
        },
      ],
      recentSponsorships: [
        {
          userOpHash: reservation.ops[0].userOpHash,
          entryPointVersion: "0.7",
          nonce: "0",
          chargeFen: reservation.ops[0].chargeFen.toString(),
          maxWei: reservation.ops[0].maxWei.toString(),
          validUntil: reservation.ops[0].validUntil,
          status: "reserved",
        },
      ],
      settledSponsorships: [],
      orders: [],
    });
  });

  it("refuses new sponsorships for a frozen account with ACCOUNT_FROZEN (the reservation script reads the frozen key)", async () => {
    const account = await stack.newAccount("0.7");
    const token = await stack.signIn(account);
    await stack.service.ledger.credit(account.sender, 100_000n);
    assert.equal((await admin("POST", `/admin/accounts/${account.sender}/freeze`, { body: { reason: "fraud review" } })).status, 200);
    const refused = await stack.post("/rpc", {
      jsonrpc: "2.0",
      id: 1,
      method: "pm_getPaymasterData",
      params: [rpcUserOperationFields(account.sender, account.factory, account.factoryData), stack.entryPoint("0.7"), numberToHex(stack.anvil.chainId), { session: token }],
    });
    assert.equal(refused.body.error?.data.code, "ACCOUNT_FROZEN", JSON.stringify(refused.body));
    const lookup = (await admin("GET", `/admin/accounts/${account.sender}`)).body as { frozen: { reason: string }; reservations: unknown[]; reservedFen: string };
    assert.equal(lookup.frozen.reason, "fraud review");
    assert.deepEqual([lookup.reservations, lookup.reservedFen], [[], "0"]);
  });
});
