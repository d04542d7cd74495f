import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { ERROR_TABLE, ServiceError, hasCode, publicError, toHttpError, toJsonRpcError } from "./errors.ts";

describe("the error model", () => {
  it("maps every code to a JSON-RPC code and an HTTP error status", () => {
    for (const [code, { rpc, http }] of Object.entries(ERROR_TABLE)) {
      assert.match(code, /^[A-Z][A-Z_]+$/);
      assert.ok(Number.isInteger(rpc) && rpc <= -32000 && rpc >= -32768, `${code}: ${rpc}`);
      assert.ok(http >= 400 && http <= 599, `${code}: ${http}`);
    }
    assert.deepEqual(ERROR_TABLE.INTERNAL, { rpc: -32603, http: 500 });
  });

  it("shows callers a ServiceError's code, message and data, but never its cause", () => {
    const error = new ServiceError("DEPENDENCY_UNAVAILABLE", "the session store is unavailable: retry shortly", {
      data: { retryAfterSeconds: 1 },
      cause: new Error("connect ECONNREFUSED 10.0.0.9:6379"),
    });
    assert.deepEqual(toHttpError(error), {
      status: 503,
      body: { error: { code: "DEPENDENCY_UNAVAILABLE", message: "the session store is unavailable: retry shortly", data: { retryAfterSeconds: 1 } } },
    });
    assert.deepEqual(toJsonRpcError(error), {
      code: -32023,
      message: "the session store is unavailable: retry shortly",
      data: { code: "DEPENDENCY_UNAVAILABLE", retryAfterSeconds: 1 },
    });
    assert.ok(!JSON.stringify(toHttpError(error)).includes("10.0.0.9"));
    assert.ok(hasCode(error, "DEPENDENCY_UNAVAILABLE") && !hasCode(error, "INTERNAL"));
  });

  it("turns anything else into a generic INTERNAL error with no detail", () => {
    const leaky = Object.assign(new Error("ECONNRESET redis://admin:pw@10.0.0.9"), { code: "FORBIDDEN", statusCode: 403, data: { host: "10.0.0.9" } });
    for (const error of [leaky, new TypeError("x is undefined"), "a string", undefined, { code: "NOT_FOUND", message: "fake" }]) {
      assert.deepEqual(publicError(error), { code: "INTERNAL", message: "Internal error" });
      assert.deepEqual(toHttpError(error), { status: 500, body: { error: { code: "INTERNAL", message: "Internal error" } } });
      assert.deepEqual(toJsonRpcError(error), { code: -32603, message: "Internal error", data: { code: "INTERNAL" } });
    }
  });
});
