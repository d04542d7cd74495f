import assert from "node:assert/strict";
import crypto from "node:crypto";
import { describe, it, mock } from "node:test";

import { ServiceError } from "../errors.ts";
import { DEFAULT_ACTOR, adminActor, authenticateAdmin } from "./auth.ts";

const TOKEN = crypto.randomBytes(32).toString("hex");
const DIGEST = crypto.createHash("sha256").update(TOKEN).digest();

function refused(authorization: string | undefined, message: RegExp) {
  assert.throws(
    () => authenticateAdmin(authorization, DIGEST),
    (error: unknown) => error instanceof ServiceError && error.code === "UNAUTHENTICATED" && message.test(error.message),
  );
}

describe("authenticateAdmin", () => {
  it("accepts `Bearer <ADMIN_TOKEN>`, with the scheme in any case", () => {
    authenticateAdmin(`Bearer ${TOKEN}`, DIGEST);
    authenticateAdmin(`bearer ${TOKEN}`, DIGEST);
  });

  it("refuses a missing or malformed header, and a wrong token of the same or another length", () => {
    refused(undefined, /^Authorization header must be `Bearer <admin token>`$/);
    refused(`Basic ${TOKEN}`, /must be `Bearer/);
    refused(`Bearer ${TOKEN} extra`, /must be `Bearer/);
    const sameLength = TOKEN.slice(0, -1) + (TOKEN.endsWith("0") ? "1" : "0");
    for (const wrong of [sameLength, TOKEN.slice(0, 10), `${TOKEN}${TOKEN}`]) refused(`Bearer ${wrong}`, /^the admin token is not valid$/);
  });

  it("compares SHA-256 digests with crypto.timingSafeEqual, so a token's length does not show", () => {
    const spy = mock.method(crypto, "timingSafeEqual");
    try {
      authenticateAdmin(`Bearer ${TOKEN}`, DIGEST);
      refused("Bearer short", /not valid/);
      refused(`Bearer ${"x".repeat(500)}`, /not valid/);
      assert.equal(spy.mock.callCount(), 3);
      assert.ok(spy.mock.calls.every((call) => call.arguments[0].byteLength === 32 && call.arguments[1].byteLength === 32));
    } finally {
      spy.mock.restore();
    }
  });
});

describe("adminActor", () => {
  it("is the X-Admin-Actor header when well formed, and DEFAULT_ACTOR without one", () => {
    assert.equal(adminActor(undefined), DEFAULT_ACTOR);
    assert.equal(adminActor("alice.ops@fiatgas.example"), "alice.ops@fiatgas.example");
    assert.equal(adminActor("a".repeat(64)), "a".repeat(64));
  });

  it("refuses a malformed actor with INVALID_PARAMS naming the header", () => {
    for (const header of ["", "a".repeat(65), "alice smith", "-alice", "alice\nlevel=50", ["alice", "bob"]]) {
      assert.throws(
        () => adminActor(header),
        (error: unknown) => error instanceof ServiceError && error.code === "INVALID_PARAMS" && (error.data?.issues as { path: string }[])[0].path === "x-admin-actor",
        JSON.stringify(header),
      );
    }
  });
});
