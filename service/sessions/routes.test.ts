// The auth routes through app.inject, over real Sessions (anvil + redis-server).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import Fastify, { type FastifyInstance } from "fastify";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";

import { simpleAccount } from "../../test/support/aa.ts";
import { sendHttpError } from "../httpErrors.ts";
import { sessionRoutes } from "./routes.ts";
import { type SessionsFixture, startSessionsFixture } from "../../test/support/sessionsFixture.ts";

let fx: SessionsFixture;
let app: FastifyInstance;
before(async () => {
  fx = await startSessionsFixture();
  app = Fastify();
  app.setErrorHandler(sendHttpError);
  await app.register(sessionRoutes, { sessions: fx.sessions });
  await app.ready();
});
after(async () => {
  await app?.close();
  await fx?.stop();
});

const newKey = () => privateKeyToAccount(generatePrivateKey());
const signIn = (payload: unknown) => app.inject({ method: "POST", url: "/v1/auth/sign-in", payload: payload as object });
const signOut = (authorization?: string) =>
  app.inject({ method: "POST", url: "/v1/auth/sign-out", headers: authorization === undefined ? {} : { authorization } });

/** The error body of a response, after checking its status and code. */
function errorOf(response: Awaited<ReturnType<typeof signIn>>, status: number, code: string) {
  assert.equal(response.statusCode, status, response.body);
  const { error } = response.json();
  assert.equal(error.code, code);
  return error as { code: string; message: string; data?: { issues: { path: string; message: string }[] } };
}

describe("GET /v1/auth/nonce", () => {
  it("returns a fresh nonce that no cache may keep", async () => {
    const [first, second] = await Promise.all([1, 2].map(() => app.inject({ method: "GET", url: "/v1/auth/nonce" })));
    assert.equal(first.statusCode, 200);
    assert.equal(first.headers["cache-control"], "no-store");
    assert.match(first.json().nonce, /^[0-9a-f]{32}$/);
    assert.notEqual(first.json().nonce, second.json().nonce);
  });
});

describe("POST /v1/auth/sign-in and /v1/auth/sign-out", () => {
  it("signs in an undeployed SimpleAccount by its owner, then signs out once", async () => {
    const owner = newKey();
    const { sender, factory, factoryData } = await simpleAccount(fx.anvil.publicClient, fx.factories["0.7"], owner.address);
    const response = await signIn({ ...(await fx.signedMessage(owner, sender)), owner: owner.address.toLowerCase(), factory, factoryData });
    assert.equal(response.statusCode, 200, response.body);
    assert.equal(response.headers["cache-control"], "no-store");
    const { token, address, expiresAt } = response.json();
    assert.equal(address, sender);
    assert.equal(new Date(expiresAt).toISOString(), expiresAt);
    assert.equal((await fx.sessions.verifySession(token)).address, sender);

    assert.equal((await signOut(`Bearer ${token}`)).statusCode, 204);
    await assert.rejects(fx.sessions.verifySession(token), /signed out or revoked/);
    assert.match(errorOf(await signOut(`bearer ${token}`), 401, "UNAUTHENTICATED").message, /^session has been signed out or revoked/);
  });

  it("maps a refused sign-in to its status and code", async () => {
    const eoa = newKey();
    const signed = await fx.signedMessage(eoa, eoa.address);
    assert.equal((await signIn(signed)).statusCode, 200);
    assert.match(errorOf(await signIn(signed), 401, "UNAUTHENTICATED").message, /^message nonce is unknown, expired or already used/);
    assert.match(
      errorOf(await signIn(await fx.signedMessage(newKey(), eoa.address)), 401, "INVALID_SIGNATURE").message,
      /^signature does not verify/,
    );
  });

  it("answers bad bodies with INVALID_PARAMS and a message per field", async () => {
    const eoa = newKey();
    const { message, signature } = await fx.signedMessage(eoa, eoa.address);
    const cases: [unknown, { path: string; message: string }[]][] = [
      [{ message }, [{ path: "signature", message: "is required" }]],
      [{ message, signature: "0x12g4" }, [{ path: "signature", message: "must be 0x-prefixed hex bytes" }]],
      [{ message, signature: "0x" }, [{ path: "signature", message: "must be 0x-prefixed hex bytes" }]],
      [{ message: "", signature }, [{ path: "message", message: "must not be empty" }]],
      [{ message, signature, owner: "0x1234" }, [{ path: "owner", message: "must be a 20-byte 0x address" }]],
      [{ message, signature, owner: eoa.address, factory: eoa.address }, [{ path: "factoryData", message: "factory and factoryData go together" }]],
      [
        { message, signature, factory: eoa.address, factoryData: "0x00" },
        [
          {
            path: "owner",
            message:
              "is required with factory: factory and factoryData are for owner-signed accounts; wrap an ERC-1271 account's signature per ERC-6492 instead",
          },
        ],
      ],
      [{ message, signature, extra: 1 }, [{ path: "", message: 'Unrecognized key: "extra"' }]],
    ];
    for (const [body, issues] of cases) {
      const error = errorOf(await signIn(body), 400, "INVALID_PARAMS");
      assert.deepEqual(error.data?.issues, issues, JSON.stringify(body));
      assert.ok(error.message.startsWith("invalid request body: "), error.message);
    }
    assert.equal(
      errorOf(await app.inject({ method: "POST", url: "/v1/auth/sign-in" }), 400, "INVALID_PARAMS").message,
      "invalid request body: must be a JSON object with message and signature",
    );
    assert.equal(
      errorOf(await signIn({ message: 1, signature: 2 }), 400, "INVALID_PARAMS").message,
      "invalid request body: message must be the EIP-4361 message text; signature must be 0x-prefixed hex bytes",
    );
  });

  it("answers a body that is not JSON (400) or too large (413) with INVALID_REQUEST", async () => {
    const response = await app.inject({ method: "POST", url: "/v1/auth/sign-in", headers: { "content-type": "application/json" }, payload: "{nope" });
    errorOf(response, 400, "INVALID_REQUEST");
    const huge = await signIn({ message: "x".repeat(70_000), signature: "0x00" });
    assert.match(errorOf(huge, 413, "INVALID_REQUEST").message, /^Request body is too large$/);
  });

  it("refuses sign-out without a Bearer token or with a forged one", async () => {
    const expected = "Authorization header must be `Bearer <session token>`";
    assert.equal(errorOf(await signOut(), 401, "UNAUTHENTICATED").message, expected);
    assert.equal(errorOf(await signOut("Basic dXNlcjpwYXNz"), 401, "UNAUTHENTICATED").message, expected);
    assert.equal(errorOf(await signOut(`Bearer e30.${"A".repeat(43)}`), 401, "UNAUTHENTICATED").message, "session token signature is invalid");
  });
});
