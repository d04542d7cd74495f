// The SDK against a scripted fetch: what it sends, and how it reads every kind of answer. The
// end-to-end tests against the real service are in test/service/sdk.test.ts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { http } from "viem";
import { createBundlerClient } from "viem/account-abstraction";

import {
  AuthenticationError,
  InvalidRequestError,
  LimitError,
  NetworkError,
  OverloadedError,
  TopUpNotPaidError,
  UnexpectedResponseError,
  createFiatGasClient,
  fiatGasPaymaster,
} from "./index.ts";

const ACCOUNT = "0x00000000000000000000000000000000000000AA";
const PAYMASTER = "0x00000000000000000000000000000000000000bb";
const ENTRY_POINT = "0x0000000071727De22E5E9d8BAf0edAc6f37da032";

type Call = { url: string; method: string; headers: Record<string, string>; body: unknown };
type Answer = Response | ((call: Call, signal: AbortSignal | undefined) => Response | Promise<Response>);

/** A fetch that records each call and answers from `answers` in order (the last one repeats). */
function scriptedFetch(...answers: Answer[]) {
  const calls: Call[] = [];
  const fetch = (async (input: string | URL | Request, init: RequestInit = {}) => {
    const call: Call = { url: String(input), method: init.method ?? "GET", headers: init.headers as Record<string, string>, body: init.body ? JSON.parse(String(init.body)) : undefined };
    calls.push(call);
    const answer = answers[Math.min(calls.length - 1, answers.length - 1)];
    return typeof answer === "function" ? answer(call, init.signal ?? undefined) : answer.clone();
  }) as typeof globalThis.fetch;
  return { fetch, calls };
}

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

const order = (state: string) => ({
  orderId: "TU0123456789abcdef",
  account: ACCOUNT,
  channel: "alipay",
  state,
  amountFen: "1234",
  currency: "CNY",
  refundedFen: "0",
  pendingRefundFen: "0",
  createdAt: "2030-01-01T00:00:00.000Z",
  expiresAt: new Date(Date.now() + 60_000).toISOString(),
  qrCode: "https://qr.example/abc",
  ...(state === "pending" || state === "closed" ? {} : { paidAt: "2030-01-01T00:01:00.000Z" }),
});

describe("transport", () => {
  it("refuses a URL with credentials instead of sending or logging them", () => {
    assert.throws(() => createFiatGasClient({ url: "https://user:secret@gas.example" }), InvalidRequestError);
    assert.throws(() => createFiatGasClient({ url: "gas.example" }), InvalidRequestError);
    assert.equal(createFiatGasClient({ url: "https://gas.example/prefix/?x=1" }).url, "https://gas.example/prefix");
  });

  it("turns a REST error body into its typed error, with the status and Retry-After", async () => {
    const { fetch } = scriptedFetch(json({ error: { code: "OVERLOADED", message: "the service is overloaded; retry shortly", data: { pressure: "eventLoopDelay" } } }, 503, { "retry-after": "5" }));
    const error = await createFiatGasClient({ url: "http://gas.test", fetch }).gasPrices().catch((e: unknown) => e);
    assert.ok(error instanceof OverloadedError);
    assert.equal(error.status, 503);
    assert.equal(error.request, "GET /v1/gas-prices");
    assert.ok(error.retryAfter && error.retryAfter.getTime() > Date.now() + 4_000);
  });

  it("reports a proxy's page, a network failure and a timeout as such, and passes the caller's abort through", async () => {
    const page = scriptedFetch(new Response("<html>Bad Gateway</html>", { status: 502 }));
    const unexpected = await createFiatGasClient({ url: "http://gas.test", fetch: page.fetch }).gasPrices().catch((e: unknown) => e);
    assert.ok(unexpected instanceof UnexpectedResponseError);
    assert.equal(unexpected.status, 502);

    const down = scriptedFetch(() => Promise.reject(new TypeError("fetch failed")));
    const network = await createFiatGasClient({ url: "http://gas.test", fetch: down.fetch }).gasPrices().catch((e: unknown) => e);
    assert.ok(network instanceof NetworkError);
    assert.equal(network.code, "NETWORK_ERROR");

    // A request that never answers; the interval stands for the open socket that keeps a real one alive.
    const hang = (_call: Call, signal: AbortSignal | undefined) =>
      new Promise<Response>((_resolve, reject) => {
        const socket = setInterval(() => {}, 1_000);
        signal?.addEventListener("abort", () => {
          clearInterval(socket);
          reject(signal.reason);
        });
      });
    const slow = scriptedFetch(hang);
    const timeout = await createFiatGasClient({ url: "http://gas.test", fetch: slow.fetch, timeoutMs: 50 }).gasPrices().catch((e: unknown) => e);
    assert.ok(timeout instanceof NetworkError);
    assert.equal(timeout.code, "TIMEOUT");

    const controller = new AbortController();
    const pending = createFiatGasClient({ url: "http://gas.test", fetch: scriptedFetch(hang).fetch }).gasPrices({ signal: controller.signal });
    controller.abort(new Error("user left the page"));
    await assert.rejects(pending, /user left the page/);
  });

  it("sends the session as a bearer token and reads money as bigint", async () => {
    const { fetch, calls } = scriptedFetch(json({ address: ACCOUNT, currency: "CNY", balanceFen: "5000", reservedFen: "1200", availableFen: "3800" }));
    const client = createFiatGasClient({ url: "http://gas.test", fetch, headers: { "x-api-key": "k" } });
    const balance = await client.getBalance({ token: "tok", address: ACCOUNT, expiresAt: new Date() });
    assert.deepEqual(balance, { address: ACCOUNT, currency: "CNY", balanceFen: 5000n, reservedFen: 1200n, availableFen: 3800n });
    assert.equal(calls[0].url, `http://gas.test/v1/accounts/${ACCOUNT}`);
    assert.equal(calls[0].headers.authorization, "Bearer tok");
    assert.equal(calls[0].headers["x-api-key"], "k");
    await assert.rejects(client.getBalance({ session: "tok" }), (error: unknown) => error instanceof InvalidRequestError && error.issues[0].path === "account");
    await assert.rejects(client.getBalance({ session: "" , account: ACCOUNT }), AuthenticationError);
  });

  it("writes an amount in fen as the API's decimal amount", async () => {
    const { fetch, calls } = scriptedFetch(json(order("pending"), 201));
    const client = createFiatGasClient({ url: "http://gas.test", fetch });
    const topUp = await client.createTopUp({ account: ACCOUNT, amountFen: 1_205n, channel: "alipay" });
    assert.deepEqual(calls[0].body, { account: ACCOUNT, amount: "12.05", currency: "CNY", channel: "alipay" });
    assert.equal(topUp.amountFen, 1_234n);
    assert.equal(topUp.paidAt, undefined);
    await assert.rejects(client.createTopUp({ account: ACCOUNT, amountFen: 0n, channel: "alipay" }), InvalidRequestError);
    await assert.rejects(client.createTopUp({ account: "0x12", amount: "1", channel: "alipay" }), InvalidRequestError);
    assert.equal(calls.length, 1, "refused before any request");
  });
});

describe("waitForTopUp", () => {
  it("waits out a brief outage and resolves once paid, reporting each state change", async () => {
    const { fetch, calls } = scriptedFetch(
      json(order("pending")),
      json({ error: { code: "DEPENDENCY_UNAVAILABLE", message: "Redis" } }, 503),
      json(order("pending")),
      json(order("paid")),
    );
    const states: string[] = [];
    const paid = await createFiatGasClient({ url: "http://gas.test", fetch }).waitForTopUp("TU0123456789abcdef", { intervalMs: 5, onUpdate: (topUp) => states.push(topUp.state) });
    assert.equal(paid.state, "paid");
    assert.ok(paid.paidAt instanceof Date);
    assert.deepEqual(states, ["pending", "paid"]);
    assert.equal(calls.length, 4);
  });

  it("throws TOPUP_CLOSED for an order that closed unpaid, WAIT_TIMEOUT when time is up, and the service's error for an unknown order", async () => {
    const closed = scriptedFetch(json(order("pending")), json(order("closed")));
    await assert.rejects(createFiatGasClient({ url: "http://gas.test", fetch: closed.fetch }).waitForTopUp("TU0123456789abcdef", { intervalMs: 5 }), (error: unknown) => error instanceof TopUpNotPaidError && error.code === "TOPUP_CLOSED");

    const pending = scriptedFetch(json(order("pending")));
    const started = Date.now();
    await assert.rejects(
      createFiatGasClient({ url: "http://gas.test", fetch: pending.fetch }).waitForTopUp("TU0123456789abcdef", { intervalMs: 10, timeoutMs: 60 }),
      (error: unknown) => error instanceof TopUpNotPaidError && error.code === "WAIT_TIMEOUT" && error.data.state === "pending",
    );
    assert.ok(Date.now() - started < 1_000);

    const unknown = scriptedFetch(json({ error: { code: "NOT_FOUND", message: "there is no top-up order with this id" } }, 404));
    await assert.rejects(createFiatGasClient({ url: "http://gas.test", fetch: unknown.fetch }).waitForTopUp("TUnosuchorder", { intervalMs: 5 }), { name: "NotFoundError" });
    assert.equal(unknown.calls.length, 1, "not retried");

    const controller = new AbortController();
    const waiting = createFiatGasClient({ url: "http://gas.test", fetch: pending.fetch }).waitForTopUp("TU0123456789abcdef", { intervalMs: 10_000, signal: controller.signal });
    setTimeout(() => controller.abort(new Error("cancelled")), 20);
    await assert.rejects(waiting, /cancelled/);
  });
});

describe("fiatGasPaymaster", () => {
  const op = { sender: ACCOUNT, nonce: 3n, callData: "0x1234", callGasLimit: 100_000n, maxFeePerGas: 2n, maxPriorityFeePerGas: 1n, signature: "0xff" } as const;
  const result = { paymaster: PAYMASTER, paymasterData: "0xabcd", paymasterVerificationGasLimit: "0x7530", paymasterPostOpGasLimit: "0x0" };

  it("sends ERC-7677 params with the session in the caller's context and returns bigint gas limits", async () => {
    const { fetch, calls } = scriptedFetch((call) => json({ jsonrpc: "2.0", id: (call.body as { id: number }).id, result: { ...result, sponsor: { name: "FiatGas" }, isFinal: false } }));
    let asked = 0;
    const paymaster = fiatGasPaymaster({ url: "http://gas.test", fetch, session: () => (asked++, { token: "tok", address: ACCOUNT, expiresAt: new Date() }) });
    const stub = await paymaster.getPaymasterStubData({ ...op, chainId: 31337, entryPointAddress: ENTRY_POINT, context: { campaign: "x" } });
    assert.deepEqual(stub, { paymaster: PAYMASTER, paymasterData: "0xabcd", paymasterVerificationGasLimit: 30_000n, paymasterPostOpGasLimit: 0n, sponsor: { name: "FiatGas" }, isFinal: false });
    assert.equal(asked, 0, "stub data needs no session");
    const final = await paymaster.getPaymasterData({ ...op, chainId: 31337, entryPointAddress: ENTRY_POINT, context: { campaign: "x" } });
    assert.deepEqual(final, { paymaster: PAYMASTER, paymasterData: "0xabcd", paymasterVerificationGasLimit: 30_000n, paymasterPostOpGasLimit: 0n });
    assert.equal(asked, 1);
    const [stubCall, finalCall] = calls.map((call) => call.body as { method: string; params: unknown[] });
    assert.equal(stubCall.method, "pm_getPaymasterStubData");
    assert.deepEqual(stubCall.params, [
      { sender: ACCOUNT, callData: "0x1234", signature: "0xff", nonce: "0x3", callGasLimit: "0x186a0", maxFeePerGas: "0x2", maxPriorityFeePerGas: "0x1" },
      ENTRY_POINT,
      "0x7a69",
      { campaign: "x" },
    ]);
    assert.equal(finalCall.method, "pm_getPaymasterData");
    assert.deepEqual(finalCall.params[3], { campaign: "x", session: "tok" });
  });

  it("is what viem's createBundlerClient takes as paymaster, with its fee hook as userOperation", () => {
    const paymaster = fiatGasPaymaster({ url: "http://gas.test", session: "tok" });
    const bundlerClient = createBundlerClient({ transport: http("http://bundler.test"), paymaster, userOperation: paymaster.userOperation });
    assert.equal(bundlerClient.paymaster, paymaster);
    assert.equal(bundlerClient.userOperation?.estimateFeesPerGas, paymaster.estimateFeesPerGas);
  });

  it("throws the typed error from error.data.code", async () => {
    const { fetch } = scriptedFetch((call) =>
      json({ jsonrpc: "2.0", id: (call.body as { id: number }).id, error: { code: -32045, message: "too dear", data: { code: "LIMIT_CHARGE", limit: "perOperation.maxChargeFen", limitValue: "1", currentValue: "30" } } }),
    );
    const error = await fiatGasPaymaster({ url: "http://gas.test", fetch, session: "tok" })
      .getPaymasterData({ ...op, chainId: 31337, entryPointAddress: ENTRY_POINT })
      .catch((e: unknown) => e);
    assert.ok(error instanceof LimitError);
    assert.deepEqual([error.code, error.rpcCode, error.limit, error.limitValue, error.currentValue, error.request], ["LIMIT_CHARGE", -32045, "perOperation.maxChargeFen", "1", "30", "POST /rpc pm_getPaymasterData"]);
    assert.equal(error.shortMessage, "too dear");
  });

  it("estimates fees from one tier of /v1/gas-prices, sharing one request between concurrent callers", async () => {
    const tier = (fee: string) => ({ maxFeePerGas: fee, maxPriorityFeePerGas: "1000000" });
    const { fetch, calls } = scriptedFetch(json({ baseFee: "7", slow: tier("10"), standard: tier("20"), fast: tier("30") }));
    const paymaster = fiatGasPaymaster({ url: "http://gas.test", fetch, session: "tok", tier: "fast" });
    const [a, b] = await Promise.all([paymaster.userOperation.estimateFeesPerGas(), paymaster.estimateFeesPerGas()]);
    assert.deepEqual(a, { maxFeePerGas: 30n, maxPriorityFeePerGas: 1_000_000n });
    assert.deepEqual(b, a);
    assert.equal(calls.length, 1);
    await paymaster.estimateFeesPerGas();
    assert.equal(calls.length, 2, "a later call asks again: fees move every block");
  });
});
