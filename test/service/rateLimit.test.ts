// Per-client rate limits on the public routes of the real service, counted in Redis.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { type ServiceStack, startServiceStack } from "../support/serviceFixture.ts";

const LIMIT = 5;
let stack: ServiceStack;
before(async () => {
  stack = await startServiceStack({ RATE_LIMIT_PER_MINUTE: String(LIMIT) });
});
after(() => stack?.stop());

const get = (path: string) => fetch(`${stack.url}${path}`);

describe("rate limits", () => {
  it("answers 429 RATE_LIMITED with Retry-After once a client exceeds RATE_LIMIT_PER_MINUTE, on every public route", async () => {
    for (let request = 1; request <= LIMIT; request++) {
      const response = await get("/v1/gas-prices");
      assert.equal(response.status, 200, `request ${request}`);
      assert.equal(response.headers.get("x-ratelimit-remaining"), String(LIMIT - request));
    }

    const limited = await get("/v1/gas-prices");
    assert.equal(limited.status, 429);
    const retryAfter = Number(limited.headers.get("retry-after"));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After: ${retryAfter}`);
    const { error } = (await limited.json()) as { error: { code: string; message: string; data: Record<string, unknown> } };
    assert.equal(error.code, "RATE_LIMITED");
    assert.match(error.message, /^more than 5 requests a minute from this client; retry after \d+ (seconds?|minute)$/);
    assert.deepEqual(error.data, { limit: LIMIT, retryAfterSeconds: retryAfter });

    // The count is per client, not per route: the other public routes refuse it too.
    const others = [
      await get("/v1/auth/nonce"),
      await stack.post("/rpc", { jsonrpc: "2.0", id: 1, method: "pm_getPaymasterStubData", params: [] }),
      await stack.post("/v1/quotes", {}),
    ];
    for (const response of others) {
      assert.equal(response.status, 429);
      const body = response instanceof Response ? await response.json() : response.body;
      assert.equal((body as { error: { code: string } }).error.code, "RATE_LIMITED");
    }
  });

  it("keeps the probes and the metrics out of the limit", async () => {
    for (const path of ["/healthz", "/readyz", "/metrics"]) assert.equal((await get(path)).status, 200, path);
  });

  it("counts each client on its own, in Redis where every instance sees it", async () => {
    const other = await stack.service.app.inject({ method: "GET", url: "/v1/gas-prices", remoteAddress: "192.0.2.7" });
    assert.equal(other.statusCode, 200);
    assert.equal(other.headers["x-ratelimit-remaining"], String(LIMIT - 1));
    assert.equal((await get("/v1/gas-prices")).status, 429, "the first client is still limited");

    const keys = await stack.redis.client().keys("fg:ratelimit:*");
    assert.deepEqual(keys.sort(), ["fg:ratelimit:127.0.0.1", "fg:ratelimit:192.0.2.7"]);
  });
});
