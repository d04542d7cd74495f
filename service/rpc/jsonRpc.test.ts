import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { z } from "zod";

import { ServiceError } from "../errors.ts";
import { type RpcMethod, createDispatcher, defineMethod } from "./jsonRpc.ts";

const errors: string[] = [];
const dispatcher = createDispatcher({
  maxBatch: 3,
  onError: (error, method) => errors.push(`${method}:${error instanceof Error ? error.message : String(error)}`),
  methods: {
    echo: defineMethod({ params: z.tuple([z.string()]), handler: async ([text]) => text.toUpperCase() }) as RpcMethod,
    fail: defineMethod({ params: z.tuple([]), handler: async () => { throw new ServiceError("INSUFFICIENT_BALANCE", "top up", { data: { neededFen: "5" } }); } }) as RpcMethod,
    crash: defineMethod({ params: z.tuple([]), handler: async () => { throw new Error("secret internal detail at /srv/db"); } }) as RpcMethod,
  },
});

const call = (body: unknown) => dispatcher.handle(typeof body === "string" ? body : JSON.stringify(body));

describe("JSON-RPC dispatcher", () => {
  it("answers a request with its id", async () => {
    assert.deepEqual(await call({ jsonrpc: "2.0", id: 7, method: "echo", params: ["hi"] }), { jsonrpc: "2.0", id: 7, result: "HI" });
  });

  it("maps a service error to its JSON-RPC code with the stable string code in data", async () => {
    assert.deepEqual(await call({ jsonrpc: "2.0", id: "a", method: "fail", params: [] }), {
      jsonrpc: "2.0",
      id: "a",
      error: { code: -32010, message: "top up", data: { code: "INSUFFICIENT_BALANCE", neededFen: "5" } },
    });
  });

  it("never leaks an unexpected error's detail, but logs it", async () => {
    const response = await call({ jsonrpc: "2.0", id: 1, method: "crash", params: [] });
    assert.deepEqual(response, { jsonrpc: "2.0", id: 1, error: { code: -32603, message: "Internal error", data: { code: "INTERNAL" } } });
    assert.ok(errors.some((e) => e.includes("secret internal detail")), "the detail reaches the log");
  });

  it("reports a parse error, an invalid request, an unknown method and bad params precisely", async () => {
    assert.deepEqual(await call("{not json"), { jsonrpc: "2.0", id: null, error: { code: -32700, message: "request body is not valid JSON", data: { code: "PARSE_ERROR" } } });
    const invalid = (await call({ jsonrpc: "1.0", id: 2, method: "echo" })) as { id: unknown; error: { code: number } };
    assert.deepEqual([invalid.id, invalid.error.code], [2, -32600]);
    const unknown = (await call({ jsonrpc: "2.0", id: 3, method: "eth_sendTransaction", params: [] })) as { error: { code: number; data: { supported: string[] } } };
    assert.equal(unknown.error.code, -32601);
    assert.deepEqual(unknown.error.data.supported, ["echo", "fail", "crash"]);
    const badParams = (await call({ jsonrpc: "2.0", id: 4, method: "echo", params: [42] })) as { error: { code: number; data: { issues: { path: string }[] } } };
    assert.equal(badParams.error.code, -32602);
    assert.equal(badParams.error.data.issues[0].path, "0");
  });

  it("answers a batch in order, skips notifications, and bounds the batch size", async () => {
    const responses = (await call([
      { jsonrpc: "2.0", id: 1, method: "echo", params: ["a"] },
      { jsonrpc: "2.0", method: "echo", params: ["notification"] },
      { jsonrpc: "2.0", id: 2, method: "echo", params: ["b"] },
    ])) as { id: number; result: string }[];
    assert.deepEqual(responses.map((r) => [r.id, r.result]), [[1, "A"], [2, "B"]]);
    assert.equal(await call([{ jsonrpc: "2.0", method: "echo", params: ["x"] }]), undefined, "only notifications: no body");
    const tooMany = (await call(Array.from({ length: 4 }, (_, id) => ({ jsonrpc: "2.0", id, method: "echo", params: ["x"] })))) as { error: { code: number; data: { limit: number } } };
    assert.deepEqual([tooMany.error.code, tooMany.error.data.limit], [-32600, 3]);
    const empty = (await call([])) as { error: { code: number } };
    assert.equal(empty.error.code, -32600);
  });

  it("does not dispatch to inherited object properties", async () => {
    const response = (await call({ jsonrpc: "2.0", id: 1, method: "constructor", params: [] })) as { error: { code: number } };
    assert.equal(response.error.code, -32601);
  });
});
