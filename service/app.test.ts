// The app's shared infrastructure through app.inject, with stub domain routes: errors and load shedding.
// (Routes, errors, limits and logs against the real stack are in test/service/.)
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import type { FastifyInstance } from "fastify";

import { buildApp } from "./app.ts";
import { createMetrics } from "./observability/metrics.ts";

type UnderPressure = FastifyInstance & {
  isUnderPressure(): boolean;
  memoryUsage(): { eventLoopDelay: number; eventLoopUtilized: number };
};

let app: UnderPressure;
let handled = 0;
before(async () => {
  app = (await buildApp({
    logger: false,
    rateLimitPerMinute: 1_000,
    keyPrefix: "fg",
    metrics: createMetrics(),
    readiness: [],
    routes: [
      {
        plugin: async (routes) => {
          routes.get("/v1/work", async () => ({ handled: ++handled }));
          routes.post("/v1/leaky", async () => {
            throw Object.assign(new Error("upstream 10.0.0.9 said: token abc123 expired"), { statusCode: 401 });
          });
        },
        options: {},
      },
    ],
  })) as UnderPressure;
  await app.ready();
});
after(() => app?.close());

/** Blocks the event loop for `ms`, as a CPU-bound burst would. */
const block = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
/** Lets timers that fell due run, among them the load sampler's. */
const yieldToTimers = () => new Promise((resolve) => setTimeout(resolve, 1));

describe("error handler", () => {
  it("keeps Fastify's own 4xx errors as INVALID_REQUEST, but hides another error's message even when it carries a 4xx status", async () => {
    const empty = await app.inject({ method: "POST", url: "/v1/leaky", headers: { "content-type": "application/json" } });
    assert.equal(empty.statusCode, 400);
    assert.equal(empty.json().error.code, "INVALID_REQUEST");

    const leaky = await app.inject({ method: "POST", url: "/v1/leaky", payload: {} });
    assert.equal(leaky.statusCode, 500);
    assert.deepEqual(leaky.json(), { error: { code: "INTERNAL", message: "Internal error" } });
  });
});

describe("load shedding", () => {
  it("answers 503 OVERLOADED with Retry-After while the event loop is saturated, without running the handler", async () => {
    assert.equal((await app.inject({ method: "GET", url: "/v1/work" })).statusCode, 200);
    assert.equal(handled, 1);
    // Idle first: a sampler that averaged since boot would now stay under its limits.
    await new Promise((resolve) => setTimeout(resolve, 1_200));

    // The sampler runs once a second: block past its limit (1 s of delay) until a sample sees it.
    for (let attempt = 0; !app.isUnderPressure(); attempt++) {
      assert.ok(attempt < 5, "five saturated seconds were not seen as pressure");
      block(1_100);
      await yieldToTimers();
    }
    assert.ok(app.memoryUsage().eventLoopUtilized > 0.98, `utilisation of the last interval, not since boot: ${JSON.stringify(app.memoryUsage())}`);

    const shed = await app.inject({ method: "GET", url: "/v1/work" });
    assert.equal(shed.statusCode, 503);
    assert.equal(shed.headers["retry-after"], "5");
    const { error } = shed.json();
    assert.equal(error.code, "OVERLOADED");
    assert.equal(error.message, "the service is overloaded; retry shortly");
    assert.equal(error.data.pressure, "eventLoopDelay");
    assert.equal(handled, 1, "the shed request never reached its handler");

    // The next sample of an idle loop lifts the pressure.
    for (let attempt = 0; app.isUnderPressure(); attempt++) {
      assert.ok(attempt < 50, "the pressure did not lift on an idle loop");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const served = await app.inject({ method: "GET", url: "/v1/work" });
    assert.equal(served.statusCode, 200);
    assert.equal(handled, 2);
  });
});
