// TEST ONLY, imported by the *.test.ts files here: a real chain (anvil, both EntryPoints and their
// SimpleAccount factories), a real redis-server and a Sessions instance over them.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";

import { type Account, type Address, parseEther } from "viem";
import type { LocalAccount } from "viem/accounts";
import { type SiweMessage, createSiweMessage } from "viem/siwe";

import { aaArtifact, deployArtifact, deployEntryPoint, simpleAccount, simpleAccountFactoryAbi } from "./aa.ts";
import { startAnvil } from "./anvil.ts";
import { startRedis } from "./redis.ts";
import { ENTRYPOINT_VERSIONS, type EntryPointVersion } from "../../service/chain/entryPoints.ts";
import { type ErrorCode, ServiceError } from "../../service/errors.ts";
import { sessionsConfigSchema } from "../../service/sessions/config.ts";
import { createSessions } from "../../service/sessions/sessions.ts";

export const DOMAIN = "app.fiatgas.test";
export const URI = "https://app.fiatgas.test/login";
export const KEY_PREFIX = "fg-test";

export type SessionsFixture = Awaited<ReturnType<typeof startSessionsFixture>>;

/** Starts anvil and redis-server, deploys the factories, and builds Sessions with a movable clock. */
export async function startSessionsFixture() {
  const [anvil, redis] = await Promise.all([startAnvil(), startRedis()]);
  const clients = { publicClient: anvil.publicClient, walletClient: anvil.walletClient };
  const factories = {} as Record<EntryPointVersion, Address>;
  for (const version of ENTRYPOINT_VERSIONS) {
    const entryPoint = await deployEntryPoint(version, clients);
    factories[version] = await deployArtifact(aaArtifact(version, "SimpleAccountFactory"), [entryPoint], clients);
  }
  const config = sessionsConfigSchema.parse({
    SESSION_SECRET: randomBytes(32).toString("hex"),
    SIWE_DOMAIN: DOMAIN,
    SIWE_URI: URI,
    SIWE_ACCOUNT_FACTORIES: Object.values(factories).join(","),
  });
  const redisClient = redis.client();
  let offsetMs = 0;
  const sessions = createSessions({
    config,
    redis: redisClient,
    publicClient: anvil.publicClient,
    chainId: anvil.chainId,
    keyPrefix: KEY_PREFIX,
    now: () => Date.now() + offsetMs,
  });

  return {
    anvil,
    redis,
    redisClient,
    clients,
    factories,
    config,
    sessions,
    /** Moves the sessions' clock forward by `ms`. */
    advanceClock(ms: number) {
      offsetMs += ms;
    },
    /** A message for `address` with a fresh nonce, signed by `signer` (EIP-191, as wallets sign SIWE). */
    async signedMessage(signer: LocalAccount, address: Address, fields: Partial<SiweMessage> = {}) {
      const message = createSiweMessage({
        domain: DOMAIN,
        address,
        statement: "Sign in to FiatGas to pay for gas in fiat.",
        uri: URI,
        version: "1",
        chainId: anvil.chainId,
        nonce: await sessions.issueNonce(),
        issuedAt: new Date(),
        ...fields,
      });
      return { message, signature: await signer.signMessage({ message }) };
    },
    /** Deploys the SimpleAccount of `owner` and `salt` the way a first UserOp would: from the EntryPoint's SenderCreator on v0.8. */
    async deploySimpleAccount(version: EntryPointVersion, owner: Address, salt = 0n): Promise<Address> {
      const factory = factories[version];
      const { sender } = await simpleAccount(anvil.publicClient, factory, owner, salt);
      // v0.8's factory only takes calls from SenderCreator; anvil can send as it without its key.
      let from: Account | Address = anvil.walletClient.account;
      if (version === "0.8") {
        from = (await anvil.publicClient.readContract({ address: factory, abi: simpleAccountFactoryAbi, functionName: "senderCreator" })) as Address;
        await anvil.testClient.impersonateAccount({ address: from });
        await anvil.testClient.setBalance({ address: from, value: parseEther("1") });
      }
      const hash = await anvil.walletClient.writeContract({
        address: factory,
        abi: simpleAccountFactoryAbi,
        functionName: "createAccount",
        args: [owner, salt],
        account: from,
        chain: anvil.chain,
      });
      await anvil.publicClient.waitForTransactionReceipt({ hash });
      if (typeof from === "string") await anvil.testClient.stopImpersonatingAccount({ address: from });
      assert.notEqual(await anvil.publicClient.getCode({ address: sender }), undefined, "account was not deployed");
      return sender;
    },
    async stop() {
      await Promise.all([redis.stop(), anvil.stop()]);
    },
  };
}

/** Asserts `promise` rejects with a ServiceError of `code` whose message matches `message`. */
export async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ServiceError, `expected a ServiceError, got ${String(error)}`);
    assert.equal(error.code, code, `code of "${error.message}"`);
    assert.match(error.message, message);
    return true;
  });
}
