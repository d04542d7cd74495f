import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { HttpRequestError, RpcRequestError, UnknownRpcError } from "viem";

import { ERROR_TABLE } from "../errors.ts";
import {
  AccountFrozenError,
  CallNotAllowedError,
  FIATGAS_ERROR_CODES,
  FiatGasError,
  InsufficientBalanceError,
  InvalidRequestError,
  LimitError,
  PolicyError,
  RateLimitedError,
  TopUpCoolingError,
  createFiatGasError,
  isFiatGasError,
  toFiatGasError,
} from "./errors.ts";

describe("SDK error codes", () => {
  it("are exactly the service's ERROR_TABLE codes, so the two cannot drift", () => {
    assert.deepEqual([...FIATGAS_ERROR_CODES].sort(), Object.keys(ERROR_TABLE).sort());
    assert.equal(new Set(FIATGAS_ERROR_CODES).size, FIATGAS_ERROR_CODES.length);
  });

  it("give every code its family's class, and an unknown code the base class", () => {
    for (const code of FIATGAS_ERROR_CODES) {
      const error = createFiatGasError({ code, message: "m" });
      assert.ok(error instanceof FiatGasError, code);
      assert.equal(error.code, code);
      assert.notEqual(error.constructor, FiatGasError, `${code} has a class of its own`);
      assert.equal(error.name, error.constructor.name);
    }
    const future = createFiatGasError({ code: "SOMETHING_NEW", message: "from a newer service" });
    assert.equal(future.constructor, FiatGasError);
    assert.equal(future.code, "SOMETHING_NEW");
  });

  it("parse each family's data: amounts as bigint, limits as their policy path and values, retryAfter as a Date", () => {
    const balance = createFiatGasError({ code: "INSUFFICIENT_BALANCE", message: "top up", data: { neededFen: "1500", availableFen: "-20", hint: "top up via POST /v1/topups" }, status: 402 });
    assert.ok(balance instanceof InsufficientBalanceError);
    assert.deepEqual([balance.neededFen, balance.availableFen, balance.shortfallFen, balance.status], [1500n, -20n, 1520n, 402]);

    const limit = createFiatGasError({ code: "LIMIT_OPS_PER_DAY", message: "m", data: { limit: "perAccount.maxOperationsPerDay", limitValue: "10", currentValue: "10", retryAfter: 1_900_000_000 } });
    assert.ok(limit instanceof LimitError && limit instanceof PolicyError);
    assert.deepEqual([limit.limit, limit.limitValue, limit.currentValue, limit.retryAfter?.getTime()], ["perAccount.maxOperationsPerDay", "10", "10", 1_900_000_000_000]);

    const cooling = createFiatGasError({ code: "TOPUP_COOLING", message: "m", data: { limit: "perAccount.topUpCoolingSeconds", limitValue: "3600", currentValue: "0", neededFen: "300", spendableFen: "0", retryAfter: 1_800_000_000 } });
    assert.ok(cooling instanceof TopUpCoolingError && cooling instanceof LimitError);
    assert.deepEqual([cooling.neededFen, cooling.spendableFen], [300n, 0n]);

    const frozen = createFiatGasError({ code: "ACCOUNT_FROZEN", message: "m", data: { limit: "account.frozen" } });
    assert.ok(frozen instanceof AccountFrozenError && frozen instanceof PolicyError && !(frozen instanceof LimitError));

    const target = createFiatGasError({ code: "TARGET_NOT_ALLOWED", message: "m", data: { limit: "calls.allowedTargets", target: "0x00000000000000000000000000000000000000cc", index: 0 } });
    assert.ok(target instanceof CallNotAllowedError);
    assert.equal(target.target, "0x00000000000000000000000000000000000000cc");

    const invalid = createFiatGasError({ code: "INVALID_PARAMS", message: "m", data: { issues: [{ path: "amount", message: "bad" }, { nonsense: true }] } });
    assert.ok(invalid instanceof InvalidRequestError);
    assert.deepEqual(invalid.issues, [{ path: "amount", message: "bad" }]);

    const before = Date.now();
    const limited = createFiatGasError({ code: "RATE_LIMITED", message: "m", data: { limit: 600, retryAfterSeconds: 30 } });
    assert.ok(limited instanceof RateLimitedError);
    assert.ok(limited.retryAfter!.getTime() >= before + 30_000 && limited.retryAfter!.getTime() <= Date.now() + 30_000);
  });

  it("narrow with isFiatGasError by code", () => {
    const error: unknown = createFiatGasError({ code: "LIMIT_CHARGE", message: "m", data: { limit: "perOperation.maxChargeFen", limitValue: "1", currentValue: "9" } });
    assert.equal(isFiatGasError(error), true);
    assert.equal(isFiatGasError(error, "INSUFFICIENT_BALANCE"), false);
    if (isFiatGasError(error, "LIMIT_CHARGE", "LIMIT_GAS")) assert.equal(error.limitValue, "1");
    else assert.fail("LIMIT_CHARGE narrows");
    assert.equal(isFiatGasError(new Error("x")), false);
  });
});

describe("toFiatGasError", () => {
  const rpcError = { code: -32010, message: "balance does not cover this operation's worst-case gas cost; top up first", data: { code: "INSUFFICIENT_BALANCE", neededFen: "900", availableFen: "100" } };

  it("finds the service's code in viem's JSON-RPC errors (createPaymasterClient), however deeply wrapped", () => {
    const request = new RpcRequestError({ body: { method: "pm_getPaymasterData" }, error: rpcError, url: "http://127.0.0.1/rpc" });
    const wrapped = new UnknownRpcError(request);
    for (const viemError of [request, wrapped, new Error("outer", { cause: wrapped })]) {
      const error = toFiatGasError(viemError);
      assert.ok(error instanceof InsufficientBalanceError, String(viemError));
      assert.equal(error.shortMessage, rpcError.message);
      assert.equal(error.rpcCode, -32010);
      assert.equal(error.neededFen, 900n);
      assert.equal("code" in error.data, false, "data holds the facts, not the code again");
      assert.equal(error.cause, viemError);
    }
  });

  it("reads a REST error body inside viem's HttpRequestError (a 429 or 503 on /rpc)", () => {
    const viemError = new HttpRequestError({
      url: "http://127.0.0.1/rpc",
      status: 429,
      headers: new Headers({ "retry-after": "12" }),
      details: JSON.stringify({ code: "RATE_LIMITED", message: "more than 600 requests a minute", data: { limit: 600, retryAfterSeconds: 12 } }),
    });
    const error = toFiatGasError(viemError);
    assert.ok(error instanceof RateLimitedError);
    assert.equal(error.status, 429);
    assert.ok(error.retryAfter);
  });

  it("returns a FiatGasError as it is, and undefined for anything the service did not cause", () => {
    const own = createFiatGasError({ code: "INTERNAL", message: "Internal error" });
    assert.equal(toFiatGasError(own), own);
    assert.equal(toFiatGasError(new Error("boom")), undefined);
    assert.equal(toFiatGasError(new HttpRequestError({ url: "http://x", status: 502, details: "Bad Gateway" })), undefined);
    assert.equal(toFiatGasError({ code: -32000, message: "AA33 reverted", data: "0x" }), undefined, "a bundler's error is not ours");
    assert.equal(toFiatGasError(undefined), undefined);
    const cyclic: { cause?: unknown } = {};
    cyclic.cause = cyclic;
    assert.equal(toFiatGasError(cyclic), undefined);
  });
});
