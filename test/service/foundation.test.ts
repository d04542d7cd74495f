// The service foundation against the real stack: health, readiness with a dependency down, metrics,
// docs, the account and pricing REST routes, the error model, log redaction and graceful shutdown.
// One stack for the file; the tests run in order, and the last one stops the service.
import assert from "node:assert/strict";
import { once } from "node:events";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";

import { numberToHex } from "viem";

import { ERROR_TABLE } from "../../service/errors.ts";
import { captureLog, rpcUserOperationFields, type ServiceStack, startServiceStack } from "../support/serviceFixture.ts";

/** Every line the service logs, at trace level, through the logger createService builds. */
const { lines: logLines, stream: logStream } = captureLog();

let stack: ServiceStack;
let stopped = false;
before(async () => {
  // FEE_MAX_AGE_SECONDS=1 lets the fees readiness test see fees go stale within seconds.
  stack = await startServiceStack({ FEE_MAX_AGE_SECONDS: "1" }, { logger: { level: "trace", stream: logStream } });
});
after(async () => {
  if (!stopped) await stack?.service.stop();
  await stack?.redis.stop();
  await stack?.anvil.stop();
});

type ErrorBody = { error: { code: string; message: string; data?: Record<string, unknown> } };

const get = (path: string, headers: Record<string, string> = {}) => fetch(`${stack.url}${path}`, { headers });

/** Checks status and code of an error answer and returns its body. */
async function errorOf(response: Response, status: number, code: keyof typeof ERROR_TABLE): Promise<ErrorBody["error"]> {
  const text = await response.text();
  assert.equal(response.status, status, text);
  const body = JSON.parse(text) as ErrorBody;
  assert.equal(body.error.code, code, text);
  assert.equal(ERROR_TABLE[code].http, status, "the status comes from the one error table");
  return body.error;
}

/** Waits, without timing anything, until `condition` holds; gives up after `attempts` tries. */
async function eventually(condition: () => Promise<boolean>, what: string, attempts = 100): Promise<void> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`gave up waiting until ${what}`);
}

/** A signed-in fresh SimpleAccount (v0.7) with `creditFen` on its balance. */
async function signedInAccount(creditFen = 0n) {
  const account = await stack.newAccount("0.7");
  const token = await stack.signIn(account);
  if (creditFen > 0n) await stack.service.ledger.credit(account.sender, creditFen);
  return { ...account, token };
}


describe("health, metrics and docs", () => {
  it("answers GET /healthz and GET /readyz while every dependency is up", async () => {
    const health = await get("/healthz");
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: "ok" });
    const ready = await get("/readyz");
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: "ready", checks: { redis: true, fees: true, price: true, paymasterDeposit: true } });
  });

  it("serves Prometheus text at GET /metrics with RPC calls by method and outcome and HTTP durations", async () => {
    const account = await stack.newAccount("0.7");
    const { body } = await stack.post("/rpc", {
      jsonrpc: "2.0",
      id: 1,
      method: "pm_getPaymasterStubData",
      params: [rpcUserOperationFields(account.sender, account.factory, account.factoryData), stack.entryPoint("0.7"), numberToHex(stack.anvil.chainId), {}],
    });
    assert.ok(body.result, JSON.stringify(body));
    await stack.post("/rpc", { jsonrpc: "2.0", id: 2, method: "pm_nope", params: [] });

    const response = await get("/metrics");
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    assert.match(text, /^# TYPE fiatgas_rpc_calls_total counter$/m);
    assert.match(text, /^fiatgas_rpc_calls_total\{method="pm_getPaymasterStubData",outcome="ok"\} 1$/m);
    assert.match(text, /^fiatgas_rpc_calls_total\{method="pm_nope",outcome="METHOD_NOT_FOUND"\} 1$/m);
    assert.match(text, /^# TYPE fiatgas_http_request_duration_seconds histogram$/m);
    assert.match(text, /^fiatgas_http_request_duration_seconds_count\{route="\/rpc",status="200"\} 2$/m);
    assert.match(text, /^fiatgas_http_request_duration_seconds_bucket\{le="\+Inf",route="\/healthz",status="200"\} \d+$/m);
    assert.match(text, /^fiatgas_process_resident_memory_bytes \d+/m, "default process metrics carry the service prefix");
  });

  it("serves the OpenAPI UI at /docs and a document at /docs/json listing the REST routes", async () => {
    const page = await get("/docs");
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    assert.match(await page.text(), /<title>Swagger UI<\/title>/);

    const response = await get("/docs/json");
    assert.equal(response.status, 200);
    const document = (await response.json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    assert.match(document.openapi, /^3\./);
    for (const [path, method] of [
      ["/v1/gas-prices", "get"],
      ["/v1/quotes", "post"],
      ["/v1/accounts/{address}", "get"],
      ["/v1/auth/nonce", "get"],
      ["/v1/auth/sign-in", "post"],
      ["/v1/auth/sign-out", "post"],
      ["/rpc", "post"],
    ]) {
      assert.ok(document.paths[path]?.[method], `${method.toUpperCase()} ${path} is documented`);
    }
    for (const hidden of ["/healthz", "/readyz", "/metrics"]) assert.equal(document.paths[hidden], undefined, `${hidden} is not part of the API`);
  });
});

describe("GET /v1/accounts/:address", () => {
  it("refuses a request without a token (401) and with another account's token (403)", async () => {
    const owner = await signedInAccount();
    const other = await signedInAccount();
    const path = `/v1/accounts/${owner.sender}`;
    assert.match((await errorOf(await get(path), 401, "UNAUTHENTICATED")).message, /session token is missing/);
    await errorOf(await get(path, { authorization: "Basic abc" }), 401, "UNAUTHENTICATED");
    await errorOf(await get(path, { authorization: `Bearer ${other.token}` }), 403, "FORBIDDEN");
    await errorOf(await get(path, { authorization: `Bearer ${owner.token}x` }), 401, "UNAUTHENTICATED");
  });

  it("answers the account's own session with balance, reserved and available as decimal strings", async () => {
    const account = await signedInAccount(100_000n);
    // The scheme name is case-insensitive, as on POST /v1/auth/sign-out.
    for (const scheme of ["Bearer", "bearer"]) {
      const response = await get(`/v1/accounts/${account.sender.toLowerCase()}`, { authorization: `${scheme} ${account.token}` });
      assert.equal(response.status, 200);
      assert.deepEqual(await response.json(), { address: account.sender, currency: "CNY", balanceFen: "100000", reservedFen: "0", availableFen: "100000" });
    }
  });
});

describe("pricing routes", () => {
  it("serves GET /v1/gas-prices from the pricing cache: decimal wei, slow ≤ standard ≤ fast", async () => {
    const response = await get("/v1/gas-prices");
    assert.equal(response.status, 200);
    const body = (await response.json()) as Record<"slow" | "standard" | "fast", { maxFeePerGas: string; maxPriorityFeePerGas: string }> & { baseFee: string };
    const cached = stack.service.pricing.gasPrices();
    for (const tier of ["slow", "standard", "fast"] as const) {
      assert.match(body[tier].maxFeePerGas, /^\d+$/);
      assert.match(body[tier].maxPriorityFeePerGas, /^\d+$/);
      assert.equal(BigInt(body[tier].maxFeePerGas), cached[tier].maxFeePerGas);
      assert.equal(BigInt(body[tier].maxPriorityFeePerGas), cached[tier].maxPriorityFeePerGas);
    }
    assert.match(body.baseFee, /^\d+$/);
    for (const field of ["maxFeePerGas", "maxPriorityFeePerGas"] as const) {
      assert.ok(BigInt(body.slow[field]) <= BigInt(body.standard[field]) && BigInt(body.standard[field]) <= BigInt(body.fast[field]), field);
    }
  });

  it("quotes with POST /v1/quotes exactly what pm_getPaymasterData then reserves", async () => {
    const account = await signedInAccount(100_000n);
    const userOperation = rpcUserOperationFields(account.sender, account.factory, account.factoryData);
    const { status, body } = await stack.post<Record<string, unknown>>("/v1/quotes", { userOperation, entryPoint: stack.entryPoint("0.7") });
    assert.equal(status, 200, JSON.stringify(body));
    // (500k + 100k + 30k + 0 + 60k) gas × 3 gwei = 2.07e15 wei; × ¥25,000/ETH × 1.1 = ¥56.925 → 5,693 fen, + 1 fen fee.
    assert.equal(body.maxWei, "2070000000000000");
    assert.equal(body.maxChargeFen, "5694");
    assert.match(String(body.expectedChargeFen), /^\d+$/);
    assert.ok(BigInt(String(body.expectedChargeFen)) <= 5_694n);
    assert.ok(BigInt(String(body.expectedWei)) <= 2_070_000_000_000_000n);
    assert.equal(body.currency, "CNY");
    assert.deepEqual({ ...(body.rate as object), updatedAt: 0 }, { price: "25000.00", source: "static", updatedAt: 0 });
    assert.equal(body.expiresAt, null, "a static price does not go stale");

    const rpc = await stack.post("/rpc", {
      jsonrpc: "2.0",
      id: 1,
      method: "pm_getPaymasterData",
      params: [userOperation, stack.entryPoint("0.7"), numberToHex(stack.anvil.chainId), { session: account.token }],
    });
    assert.ok(rpc.body.result, JSON.stringify(rpc.body));
    const [reservation] = await stack.service.ledger.reservations(account.sender);
    assert.equal(reservation.chargeFen.toString(), body.maxChargeFen);
    const balance = (await (await get(`/v1/accounts/${account.sender}`, { authorization: `Bearer ${account.token}` })).json()) as Record<string, string>;
    assert.deepEqual([balance.reservedFen, balance.availableFen], ["5694", String(100_000 - 5_694)]);
  });

  it("refuses a quote for an EntryPoint the service does not sign for", async () => {
    const account = await stack.newAccount("0.7");
    const { status, body } = await stack.post<ErrorBody>("/v1/quotes", { userOperation: rpcUserOperationFields(account.sender), entryPoint: "0x5FF137D4b0FDCD49DcA30c7CF57E578a026d2789" });
    assert.equal(status, 400);
    assert.equal(body.error.code, "UNSUPPORTED_ENTRY_POINT");
    assert.deepEqual(body.error.data, { supported: [stack.entryPoint("0.7"), stack.entryPoint("0.8")] });
  });
});

describe("error model", () => {
  it("answers an unknown route with 404 NOT_FOUND", async () => {
    const error = await errorOf(await get("/v1/nothing-here?x=1"), 404, "NOT_FOUND");
    assert.equal(error.message, "no route GET /v1/nothing-here");
  });

  it("answers an empty or malformed JSON body with 400 INVALID_REQUEST", async () => {
    for (const body of [undefined, "{"]) {
      const response = await fetch(`${stack.url}/v1/quotes`, { method: "POST", headers: { "content-type": "application/json" }, body });
      await errorOf(response, 400, "INVALID_REQUEST");
    }
  });

  it("answers invalid params with 400 INVALID_PARAMS and an issue per field", async () => {
    const account = await stack.newAccount("0.7");
    const { status, body } = await stack.post<ErrorBody>("/v1/quotes", { userOperation: { ...rpcUserOperationFields(account.sender), callGasLimit: "lots" }, entryPoint: "0x12" });
    assert.equal(status, 400);
    assert.equal(body.error.code, "INVALID_PARAMS");
    const issues = body.error.data?.issues as { path: string; message: string }[];
    assert.deepEqual(issues.map((issue) => issue.path).sort(), ["entryPoint", "userOperation.callGasLimit"]);
    for (const issue of issues) assert.ok(issue.message.length > 0);

    const address = await errorOf(await get("/v1/accounts/0x12"), 400, "INVALID_PARAMS");
    assert.deepEqual(address.data, { issues: [{ path: "address", message: "must be a 20-byte hex address" }] });
  });

  it("answers an unexpected error with a generic 500 INTERNAL and keeps the detail for the log", async () => {
    const account = await signedInAccount();
    const { ledger } = stack.service;
    const balance = ledger.balance;
    const detail = "connect ETIMEDOUT 10.20.30.40:6379 (redis://admin:hunter2@10.20.30.40)";
    ledger.balance = async () => {
      throw new Error(detail);
    };
    try {
      const response = await get(`/v1/accounts/${account.sender}`, { authorization: `Bearer ${account.token}` });
      const text = await response.text();
      assert.equal(response.status, 500);
      assert.deepEqual(JSON.parse(text), { error: { code: "INTERNAL", message: "Internal error" } });
      assert.doesNotMatch(text, /10\.20\.30\.40|hunter2|ETIMEDOUT|\bat /);
    } finally {
      ledger.balance = balance;
    }
    const logged = logLines.filter((line) => line.includes(detail));
    assert.equal(logged.length, 1, "the detail went to the log once");
    assert.equal(JSON.parse(logged[0]).msg, "unhandled error");
  });
});

describe("log redaction", () => {
  it("logs requests at trace level without the bearer token, the JSON-RPC session or the service's secrets", async () => {
    const account = await signedInAccount(100_000n);
    const other = await signedInAccount();
    const from = logLines.length;
    const headers = { authorization: `Bearer ${account.token}` };
    assert.equal((await get(`/v1/accounts/${account.sender}`, headers)).status, 200);
    const params = (session: string) => [rpcUserOperationFields(account.sender, account.factory, account.factoryData), stack.entryPoint("0.7"), numberToHex(stack.anvil.chainId), { session }];
    // One that signs and one that is refused: the refusal is logged with its error.
    const signed = await stack.post("/rpc", { jsonrpc: "2.0", id: 1, method: "pm_getPaymasterData", params: params(account.token) }, headers);
    assert.ok(signed.body.result, JSON.stringify(signed.body));
    const refused = await stack.post("/rpc", { jsonrpc: "2.0", id: 2, method: "pm_getPaymasterData", params: params(other.token) }, headers);
    assert.equal(refused.body.error?.data.code, "FORBIDDEN");

    const lines = logLines.slice(from);
    const requests = lines.map((line) => JSON.parse(line)).filter((entry) => entry.msg === "incoming request").map((entry) => `${entry.req.method} ${entry.req.url}`);
    assert.deepEqual(requests, [`GET /v1/accounts/${account.sender}`, "POST /rpc", "POST /rpc"], "the requests were logged");
    assert.ok(lines.some((line) => /"level":40.*session is for another account/.test(line)), "the refusal was logged");

    const { config } = stack.service;
    const secrets = {
      "the bearer token": account.token,
      "the other session": other.token,
      "a token's signature": account.token.split(".").at(-1)!,
      SIGNER_PRIVATE_KEY: config.SIGNER_PRIVATE_KEY.slice(2),
      SESSION_SECRET: config.SESSION_SECRET.export().toString("hex"),
    };
    for (const [name, secret] of Object.entries(secrets)) {
      assert.ok(secret.length >= 16);
      const leaks = logLines.filter((line) => line.toLowerCase().includes(secret.toLowerCase()));
      assert.deepEqual(leaks, [], `${name} appears in the log`);
    }
  });

  it("applies the service's redaction paths to whatever is logged through the app's logger", async () => {
    const from = logLines.length;
    const token = "tok-0123456789abcdef";
    stack.service.app.log.trace(
      { req: { headers: { authorization: `Bearer ${token}`, cookie: `sid=${token}` } }, context: { session: token }, claims: { token }, signer: { privateKey: token, secret: token } },
      "redaction probe",
    );
    const [line] = logLines.slice(from);
    assert.ok(line, "the trace line was written");
    assert.ok(!line.includes(token), line);
    const entry = JSON.parse(line);
    assert.equal(entry.msg, "redaction probe");
    assert.deepEqual([entry.context.session, entry.claims.token, entry.signer.privateKey, entry.signer.secret], Array(4).fill("[redacted]"));
    // Fastify's request serializer keeps no headers at all; what is left of `req` holds no secret either.
    assert.equal(entry.req?.headers?.authorization ?? "[redacted]", "[redacted]");
  });
});

describe("with a dependency down", () => {
  it("is not ready while Redis is down, fails account reads with a bare 503, keeps Redis-free routes up, and recovers", async () => {
    const account = await signedInAccount();
    const { redis } = stack.service;
    await stack.redis.crash();
    try {
      const notReady = await get("/readyz");
      assert.equal(notReady.status, 503);
      assert.deepEqual(await notReady.json(), { status: "not ready", checks: { redis: false, fees: true, price: true, paymasterDeposit: true } });
      assert.equal((await get("/healthz")).status, 200, "the process itself is alive");

      const response = await get(`/v1/accounts/${account.sender}`, { authorization: `Bearer ${account.token}` });
      const text = await response.text();
      assert.equal(response.status, 503);
      assert.deepEqual(JSON.parse(text), { error: { code: "DEPENDENCY_UNAVAILABLE", message: "the session store is unavailable: retry shortly" } });
      assert.doesNotMatch(text, new RegExp(`127\\.0\\.0\\.1|${stack.redis.port}|ECONNREFUSED|MaxRetries|\\bat `));

      // The rate limiter counts in Redis too; it fails open so fees and quotes stay available.
      assert.equal((await get("/v1/gas-prices")).status, 200);
    } finally {
      await stack.redis.restart();
    }
    if (redis.status !== "ready") await once(redis, "ready");
    const ready = await get("/readyz");
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: "ready", checks: { redis: true, fees: true, price: true, paymasterDeposit: true } });
  });

  it("is not ready once the network fees go stale, and ready again when they are refreshed", async () => {
    const { pricing } = stack.service;
    pricing.stop();
    try {
      await eventually(async () => (await get("/readyz")).status === 503, "the fees go stale");
      assert.deepEqual(await (await get("/readyz")).json(), { status: "not ready", checks: { redis: true, fees: false, price: true, paymasterDeposit: true } });
      await errorOf(await get("/v1/gas-prices"), 503, "FEES_UNAVAILABLE");
    } finally {
      await pricing.start();
    }
    assert.equal((await get("/readyz")).status, 200);
    assert.equal((await get("/v1/gas-prices")).status, 200);
  });
});

describe("graceful shutdown", () => {
  it("finishes a request in flight, refuses new connections, then closes Redis", async () => {
    const account = await signedInAccount(42_000n);
    const { app, ledger, redis } = stack.service;
    const port = new URL(stack.url).port;

    // Hold one real request inside its handler, after the session check and before the ledger read.
    const balance = ledger.balance;
    let entered!: () => void;
    let release!: () => void;
    const inHandler = new Promise<void>((resolve) => (entered = resolve));
    const released = new Promise<void>((resolve) => (release = resolve));
    ledger.balance = async (address) => {
      entered();
      await released;
      return balance.call(ledger, address);
    };
    const inFlight = get(`/v1/accounts/${account.sender}`, { authorization: `Bearer ${account.token}` });
    await inHandler;

    const stopping = stack.service.stop();
    stopped = true;
    await eventually(async () => !app.server.listening, "the server stops listening");
    const refused = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      const socket = connect(Number(port), "127.0.0.1", () => {
        socket.destroy();
        resolve(undefined);
      });
      socket.once("error", resolve);
    });
    assert.equal(refused?.code, "ECONNREFUSED", "a new connection is refused");
    assert.equal(redis.status, "ready", "Redis stays open while a request is in flight");

    release();
    const response = await inFlight;
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { address: account.sender, currency: "CNY", balanceFen: "42000", reservedFen: "0", availableFen: "42000" });
    await stopping;
    // quit() resolves on Redis's OK; the socket closes just after.
    const status = (): string => redis.status;
    if (status() !== "end") await once(redis, "end");
    assert.equal(status(), "end", "the Redis connection is closed");
  });
});
