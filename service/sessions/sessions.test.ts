// Sign-in and sessions against a real anvil and a real redis-server.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { Redis } from "ioredis";
import {
  type Address,
  type Hex,
  createPublicClient,
  encodeFunctionData,
  http,
  getAddress,
  hashMessage,
  parseAbi,
  serializeErc6492Signature,
} from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";

import { aaArtifact, deployArtifact, executeCall, simpleAccount } from "../../test/support/aa.ts";
import { projectArtifact } from "../../test/support/anvil.ts";
import { freePort } from "../../test/support/redis.ts";
import { ENTRYPOINT_VERSIONS } from "../chain/entryPoints.ts";
import { sessionsConfigSchema } from "./config.ts";
import { createSessions } from "./sessions.ts";
import { CLOCK_SKEW_SECONDS } from "./siwe.ts";
import { KEY_PREFIX, type SessionsFixture, rejectsWith, startSessionsFixture } from "../../test/support/sessionsFixture.ts";

const newKey = () => privateKeyToAccount(generatePrivateKey());
const MINUTE = 60_000;

let fx: SessionsFixture;
before(async () => {
  fx = await startSessionsFixture();
});
after(async () => {
  await fx?.stop();
});

/** Signs in and checks the token stands for `address`. */
async function signsIn(parameters: Parameters<SessionsFixture["sessions"]["signIn"]>[0], address: Address) {
  const result = await fx.sessions.signIn(parameters);
  assert.equal(result.address, getAddress(address));
  const session = await fx.sessions.verifySession(result.token);
  assert.equal(session.address, getAddress(address));
  return result;
}

for (const version of ENTRYPOINT_VERSIONS) {
  describe(`SimpleAccount (EntryPoint v${version}, no ERC-1271): the owner signs`, () => {
    it("signs in a deployed account, checked against owner()", async () => {
      const owner = newKey();
      const account = await fx.deploySimpleAccount(version, owner.address);
      await signsIn({ ...(await fx.signedMessage(owner, account)), owner: owner.address }, account);
    });

    it("signs in an undeployed account from its factory and factoryData, and leaves it undeployed", async () => {
      const owner = newKey();
      const { sender, factory, factoryData } = await simpleAccount(fx.anvil.publicClient, fx.factories[version], owner.address, 7n);
      await signsIn({ ...(await fx.signedMessage(owner, sender)), owner: owner.address, factory, factoryData }, sender);
      assert.equal(await fx.anvil.publicClient.getCode({ address: sender }), undefined);
    });

    it("rejects a key that is not the deployed account's owner", async () => {
      const account = await fx.deploySimpleAccount(version, newKey().address, 1n);
      const intruder = newKey();
      await rejectsWith(
        fx.sessions.signIn({ ...(await fx.signedMessage(intruder, account)), owner: intruder.address }),
        "INVALID_SIGNATURE",
        new RegExp(`^${intruder.address} is not the owner of account ${account}$`),
      );
    });
  });
}

describe("owner-signed accounts: what the proof must bind", () => {
  it("rejects a signature that is not from the claimed owner", async () => {
    const owner = newKey();
    const account = await fx.deploySimpleAccount("0.7", owner.address, 2n);
    await rejectsWith(
      fx.sessions.signIn({ ...(await fx.signedMessage(newKey(), account)), owner: owner.address }),
      "INVALID_SIGNATURE",
      new RegExp(`^signature is not from owner ${owner.address}$`),
    );
  });

  it("rejects a factory that is not in the allowlist, even a genuine SimpleAccountFactory", async () => {
    const entryPoint = "0x0000000071727De22E5E9d8BAf0edAc6f37da032";
    const unlisted = await deployArtifact(aaArtifact("0.7", "SimpleAccountFactory"), [entryPoint], fx.clients);
    const owner = newKey();
    const { sender, factory, factoryData } = await simpleAccount(fx.anvil.publicClient, unlisted, owner.address);
    await rejectsWith(
      fx.sessions.signIn({ ...(await fx.signedMessage(owner, sender)), owner: owner.address, factory, factoryData }),
      "UNAUTHENTICATED",
      new RegExp(`^factory ${unlisted} is not an allowed account factory$`),
    );
  });

  it("rejects factoryData that creates the account for another owner", async () => {
    const victim = newKey();
    const attacker = newKey();
    // The victim's own initCode: it does create `sender`, but not for the key that signed.
    const { sender, factory, factoryData } = await simpleAccount(fx.anvil.publicClient, fx.factories["0.8"], victim.address);
    await rejectsWith(
      fx.sessions.signIn({ ...(await fx.signedMessage(attacker, sender)), owner: attacker.address, factory, factoryData }),
      "INVALID_SIGNATURE",
      /^factoryData creates an account for another owner$/,
    );
  });

  it("rejects factoryData whose getAddress is another account (another salt)", async () => {
    const owner = newKey();
    const { sender } = await simpleAccount(fx.anvil.publicClient, fx.factories["0.7"], owner.address, 0n);
    const other = await simpleAccount(fx.anvil.publicClient, fx.factories["0.7"], owner.address, 1n);
    await rejectsWith(
      fx.sessions.signIn({
        ...(await fx.signedMessage(owner, sender)),
        owner: owner.address,
        factory: other.factory,
        factoryData: other.factoryData,
      }),
      "INVALID_SIGNATURE",
      new RegExp(`^factory and factoryData do not create account ${sender}$`),
    );
  });

  it("rejects factoryData that is not a createAccount call", async () => {
    const owner = newKey();
    const { sender, factory } = await simpleAccount(fx.anvil.publicClient, fx.factories["0.7"], owner.address);
    await rejectsWith(
      fx.sessions.signIn({
        ...(await fx.signedMessage(owner, sender)),
        owner: owner.address,
        factory,
        factoryData: executeCall(owner.address, 0n, "0x"),
      }),
      "INVALID_PARAMS",
      /^factoryData is not a createAccount\(address owner, uint256 salt\) call$/,
    );
  });

  it("asks for factory and factoryData when an owner-signed account is not deployed", async () => {
    const owner = newKey();
    const { sender } = await simpleAccount(fx.anvil.publicClient, fx.factories["0.7"], owner.address, 3n);
    await rejectsWith(
      fx.sessions.signIn({ ...(await fx.signedMessage(owner, sender)), owner: owner.address }),
      "INVALID_PARAMS",
      new RegExp(`^account ${sender} is not deployed: send factory and factoryData \\(its initCode\\) with owner$`),
    );
  });

  it("points a SimpleAccount that signs without owner to the owner path", async () => {
    const owner = newKey();
    const account = await fx.deploySimpleAccount("0.7", owner.address, 4n);
    await rejectsWith(
      fx.sessions.signIn(await fx.signedMessage(owner, account)),
      "INVALID_SIGNATURE",
      new RegExp(
        `^signature does not verify for ${account} by ERC-1271, ERC-6492 or its own key; for an owner-signed account without ERC-1271, also send owner`,
      ),
    );
  });
});

describe("ERC-1271 accounts, through viem's verifier", () => {
  const erc1271Abi = parseAbi(["function isValidSignature(bytes32 hash, bytes signature) view returns (bytes4)"]);

  async function delegatedEoa() {
    const eoa = newKey();
    const implementation = await deployArtifact(aaArtifact("0.8", "Simple7702Account"), [], fx.clients);
    const authorization = await eoa.signAuthorization({ address: implementation, chainId: fx.anvil.chainId, nonce: 0 });
    // The dev account relays the authorization, so the EOA itself needs no ETH.
    const hash = await fx.anvil.walletClient.sendTransaction({
      to: eoa.address,
      authorizationList: [authorization],
      account: fx.anvil.walletClient.account,
      chain: fx.anvil.chain,
    });
    await fx.anvil.publicClient.waitForTransactionReceipt({ hash });
    assert.equal(await fx.anvil.publicClient.getCode({ address: eoa.address }), `0xef0100${implementation.slice(2).toLowerCase()}`);
    return eoa;
  }

  it("signs in an EOA delegated to Simple7702Account by a real EIP-7702 authorization", async () => {
    const eoa = await delegatedEoa();
    const signed = await fx.signedMessage(eoa, eoa.address);
    const magic = await fx.anvil.publicClient.readContract({
      address: eoa.address,
      abi: erc1271Abi,
      functionName: "isValidSignature",
      args: [hashMessage(signed.message), signed.signature],
    });
    assert.equal(magic, "0x1626ba7e");
    await signsIn(signed, eoa.address);
  });

  it("tells a client that sends owner for an account without owner() to drop it", async () => {
    const eoa = await delegatedEoa();
    await rejectsWith(
      fx.sessions.signIn({ ...(await fx.signedMessage(eoa, eoa.address)), owner: eoa.address }),
      "INVALID_SIGNATURE",
      new RegExp(`^account ${eoa.address} has no owner\\(\\) to check: omit owner to verify it by ERC-1271$`),
    );
  });

  it("rejects another key's signature for a 7702-delegated EOA", async () => {
    const eoa = await delegatedEoa();
    await rejectsWith(fx.sessions.signIn(await fx.signedMessage(newKey(), eoa.address)), "INVALID_SIGNATURE", /^signature does not verify for /);
  });

  describe("a factory-made ERC-1271 account (contracts/test/Erc1271TestAccount.sol, deliberately not allowlisted)", () => {
    let factory: Address;
    before(async () => {
      factory = await deployArtifact(projectArtifact("contracts/test/Erc1271TestAccount.sol", "Erc1271TestAccountFactory"), [], fx.clients);
    });
    const factoryAbi = parseAbi([
      "function createAccount(address owner, uint256 salt) returns (address)",
      "function getAddress(address owner, uint256 salt) view returns (address)",
    ]);
    const counterfactual = async (owner: Address, salt: bigint) => ({
      account: await fx.anvil.publicClient.readContract({ address: factory, abi: factoryAbi, functionName: "getAddress", args: [owner, salt] }),
      factoryData: encodeFunctionData({ abi: factoryAbi, functionName: "createAccount", args: [owner, salt] }),
    });

    it("signs in a deployed one, whose signatures do not recover to its address", async () => {
      const owner = newKey();
      const { account, factoryData } = await counterfactual(owner.address, 0n);
      const hash = await fx.anvil.walletClient.sendTransaction({
        to: factory,
        data: factoryData,
        account: fx.anvil.walletClient.account,
        chain: fx.anvil.chain,
      });
      await fx.anvil.publicClient.waitForTransactionReceipt({ hash });
      await signsIn(await fx.signedMessage(owner, account), account);
    });

    it("signs in an undeployed one by an ERC-6492 signature, and leaves it undeployed", async () => {
      const owner = newKey();
      const { account, factoryData } = await counterfactual(owner.address, 1n);
      const { message, signature } = await fx.signedMessage(owner, account);
      await signsIn({ message, signature: serializeErc6492Signature({ address: factory, data: factoryData, signature }) }, account);
      assert.equal(await fx.anvil.publicClient.getCode({ address: account }), undefined);
    });

    it("rejects an ERC-6492 signature by another key", async () => {
      const { account, factoryData } = await counterfactual(newKey().address, 2n);
      const { message, signature } = await fx.signedMessage(newKey(), account);
      await rejectsWith(
        fx.sessions.signIn({ message, signature: serializeErc6492Signature({ address: factory, data: factoryData, signature }) }),
        "INVALID_SIGNATURE",
        /^signature does not verify for /,
      );
    });
  });
});

describe("plain EOAs", () => {
  it("signs in an EOA with no code by its own key: EntryPoint v0.8 can delegate it in its first UserOp", async () => {
    const eoa = newKey();
    await signsIn(await fx.signedMessage(eoa, eoa.address), eoa.address);
  });

  it("rejects an EOA's message signed by another key", async () => {
    const eoa = newKey();
    await rejectsWith(fx.sessions.signIn(await fx.signedMessage(newKey(), eoa.address)), "INVALID_SIGNATURE", /^signature does not verify for /);
  });
});

describe("the message", () => {
  const eoa = newKey();

  it("rejects a tampered message", async () => {
    const { message, signature } = await fx.signedMessage(eoa, eoa.address);
    const tampered = message.replace("pay for gas in fiat.", "pay for gas in fiat and more.");
    assert.notEqual(tampered, message);
    await rejectsWith(fx.sessions.signIn({ message: tampered, signature }), "INVALID_SIGNATURE", /^signature does not verify for /);
  });

  it("rejects a reused nonce, even with the signature that worked", async () => {
    const signed = await fx.signedMessage(eoa, eoa.address);
    await fx.sessions.signIn(signed);
    await rejectsWith(
      fx.sessions.signIn(signed),
      "UNAUTHENTICATED",
      /^message nonce is unknown, expired or already used: get a new one from GET \/v1\/auth\/nonce$/,
    );
  });

  it("burns the nonce on a failed signature, so the message cannot be retried", async () => {
    const { message, signature } = await fx.signedMessage(newKey(), eoa.address);
    await rejectsWith(fx.sessions.signIn({ message, signature }), "INVALID_SIGNATURE", /does not verify/);
    await rejectsWith(fx.sessions.signIn({ message, signature: await eoa.signMessage({ message }) }), "UNAUTHENTICATED", /^message nonce is unknown/);
  });

  it("rejects a well-formed nonce this service never issued", async () => {
    const message = (await fx.signedMessage(eoa, eoa.address)).message.replace(/Nonce: \w+/, `Nonce: ${"a".repeat(32)}`);
    await rejectsWith(fx.sessions.signIn({ message, signature: await eoa.signMessage({ message }) }), "UNAUTHENTICATED", /^message nonce is unknown/);
  });

  it("rejects a nonce in another format without asking Redis", async () => {
    const signed = await fx.signedMessage(eoa, eoa.address, { nonce: "abcdefgh1234" });
    await rejectsWith(fx.sessions.signIn(signed), "UNAUTHENTICATED", /^message nonce was not issued by this service/);
  });

  it("stores nonces under the global nonce key with a TTL", async () => {
    const nonce = await fx.sessions.issueNonce();
    assert.match(nonce, /^[0-9a-f]{32}$/);
    const ttl = await fx.redisClient.ttl(`${KEY_PREFIX}:siwe-nonce:${nonce}`);
    assert.ok(ttl > 0 && ttl <= fx.config.SIWE_NONCE_TTL_SECONDS, `ttl ${ttl}`);
  });

  it("rejects an expired message", async () => {
    const expirationTime = new Date(Date.now() - CLOCK_SKEW_SECONDS * 1000 - MINUTE);
    const signed = await fx.signedMessage(eoa, eoa.address, { issuedAt: new Date(Date.now() - 10 * MINUTE), expirationTime });
    await rejectsWith(fx.sessions.signIn(signed), "UNAUTHENTICATED", new RegExp(`^message expired at ${expirationTime.toISOString()}$`));
  });

  it("accepts a message that expired within the clock skew", async () => {
    const signed = await fx.signedMessage(eoa, eoa.address, { expirationTime: new Date(Date.now() - (CLOCK_SKEW_SECONDS * 1000) / 2) });
    await fx.sessions.signIn(signed);
  });

  it("rejects a message before its Not Before, and one issued in the future", async () => {
    const notBefore = new Date(Date.now() + 5 * MINUTE);
    await rejectsWith(
      fx.sessions.signIn(await fx.signedMessage(eoa, eoa.address, { notBefore })),
      "UNAUTHENTICATED",
      new RegExp(`^message is not valid before ${notBefore.toISOString()}$`),
    );
    const issuedAt = new Date(Date.now() + 5 * MINUTE);
    await rejectsWith(
      fx.sessions.signIn(await fx.signedMessage(eoa, eoa.address, { issuedAt })),
      "UNAUTHENTICATED",
      /^message is issued in the future/,
    );
  });

  it("rejects another domain, another URI and another chain", async () => {
    await rejectsWith(
      fx.sessions.signIn(await fx.signedMessage(eoa, eoa.address, { domain: "evil.example" })),
      "UNAUTHENTICATED",
      /^message is for domain evil\.example, not app\.fiatgas\.test$/,
    );
    await rejectsWith(
      fx.sessions.signIn(await fx.signedMessage(eoa, eoa.address, { uri: "https://evil.example/login" })),
      "UNAUTHENTICATED",
      /^message URI https:\/\/evil\.example\/login is not this service's \(https:\/\/app\.fiatgas\.test\/login\)$/,
    );
    await rejectsWith(
      fx.sessions.signIn(await fx.signedMessage(eoa, eoa.address, { chainId: 1 })),
      "UNAUTHENTICATED",
      new RegExp(`^message is for chain 1, not ${fx.anvil.chainId}$`),
    );
  });

  it("rejects text that is not an EIP-4361 message, and bad dates", async () => {
    await rejectsWith(
      fx.sessions.signIn({ message: "hello", signature: await eoa.signMessage({ message: "hello" }) }),
      "INVALID_PARAMS",
      /^message is not an EIP-4361 sign-in message: no domain, address, uri, version, chainId, nonce, issuedAt$/,
    );
    const { message } = await fx.signedMessage(eoa, eoa.address);
    const badDate = message.replace(/Issued At: .*/, "Issued At: yesterday");
    await rejectsWith(
      fx.sessions.signIn({ message: badDate, signature: await eoa.signMessage({ message: badDate }) }),
      "INVALID_PARAMS",
      /^message Issued At is not an RFC 3339 date-time$/,
    );
  });
});

describe("sessions", () => {
  const eoa = newKey();
  const signIn = async () => fx.sessions.signIn(await fx.signedMessage(eoa, eoa.address));

  it("round-trips: the token stands for the account until it expires, under a per-account hash-tagged key", async () => {
    const { token, address, expiresAt } = await signIn();
    const session = await fx.sessions.verifySession(token);
    assert.deepEqual(session, { address, chainId: fx.anvil.chainId, expiresAt, sessionId: session.sessionId });
    assert.ok(Math.abs(expiresAt.getTime() - Date.now() - fx.config.SESSION_TTL_SECONDS * 1000) < 5_000);
    const key = `${KEY_PREFIX}:{${address}}:session:${session.sessionId}`;
    const ttl = await fx.redisClient.ttl(key);
    assert.ok(ttl > fx.config.SESSION_TTL_SECONDS - 5 && ttl <= fx.config.SESSION_TTL_SECONDS, `ttl ${ttl}`);
  });

  it("rejects a revoked session, and only that one", async () => {
    const first = await signIn();
    const second = await signIn();
    await fx.sessions.revoke(await fx.sessions.verifySession(first.token));
    await rejectsWith(fx.sessions.verifySession(first.token), "UNAUTHENTICATED", /^session has been signed out or revoked: sign in again$/);
    await fx.sessions.verifySession(second.token);
  });

  it("rejects an expired session (injected clock)", async () => {
    const { token, expiresAt } = await signIn();
    fx.advanceClock(fx.config.SESSION_TTL_SECONDS * 1000);
    try {
      await rejectsWith(
        fx.sessions.verifySession(token),
        "UNAUTHENTICATED",
        new RegExp(`^session token expired at ${expiresAt.toISOString()}: sign in again$`),
      );
    } finally {
      fx.advanceClock(-fx.config.SESSION_TTL_SECONDS * 1000);
    }
  });

  it("requireSessionFor: the session's own account in any case passes; another account is FORBIDDEN without naming the holder", async () => {
    const { token, address } = await signIn();
    assert.equal((await fx.sessions.requireSessionFor(token, address.toLowerCase() as Address)).address, address);
    await rejectsWith(fx.sessions.requireSessionFor(token, newKey().address), "FORBIDDEN", /^session is for another account$/);
    await rejectsWith(fx.sessions.requireSessionFor(undefined, address), "UNAUTHENTICATED", /^session token is missing/);
    await rejectsWith(fx.sessions.requireSessionFor(token, "0x1234" as Address), "INVALID_PARAMS", /^account is not a valid address$/);
  });

  it("reports an unreachable Redis as DEPENDENCY_UNAVAILABLE", async () => {
    const { token } = await signIn();
    const deadRedis = new Redis({
      host: "127.0.0.1",
      port: await freePort(),
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    const offline = createSessions({
      config: fx.config,
      redis: deadRedis,
      publicClient: fx.anvil.publicClient,
      chainId: fx.anvil.chainId,
      keyPrefix: KEY_PREFIX,
    });
    await rejectsWith(offline.verifySession(token), "DEPENDENCY_UNAVAILABLE", /^the session store is unavailable: retry shortly$/);
    deadRedis.disconnect();
  });

  it("reports an unreachable chain RPC as DEPENDENCY_UNAVAILABLE, though a plain key needs no RPC", async () => {
    const deadRpc = createPublicClient({ transport: http(`http://127.0.0.1:${await freePort()}`, { retryCount: 0 }) });
    const offline = createSessions({
      config: fx.config,
      redis: fx.redisClient,
      publicClient: deadRpc,
      chainId: fx.anvil.chainId,
      keyPrefix: KEY_PREFIX,
    });
    // Nonces come from the fixture's Sessions, which shares this Redis and prefix.
    const owner = newKey();
    const { sender, factory, factoryData } = await simpleAccount(fx.anvil.publicClient, fx.factories["0.7"], owner.address);
    const unavailable = /^the chain RPC is unavailable: retry shortly$/;
    await rejectsWith(
      offline.signIn({ ...(await fx.signedMessage(owner, sender)), owner: owner.address, factory, factoryData }),
      "DEPENDENCY_UNAVAILABLE",
      unavailable,
    );
    await rejectsWith(offline.signIn(await fx.signedMessage(owner, sender)), "DEPENDENCY_UNAVAILABLE", unavailable);
    // viem's verifier falls back to ECDSA recovery when its eth_call fails.
    assert.equal((await offline.signIn(await fx.signedMessage(owner, owner.address))).address, owner.address);
  });

  it("preflight passes with the deployed factories and fails on an address without code", async () => {
    await fx.sessions.preflight();
    const noCode: Hex = "0x000000000000000000000000000000000000dEaD";
    const config = sessionsConfigSchema.parse({ SESSION_SECRET: "ab".repeat(32), SIWE_DOMAIN: "x.test", SIWE_ACCOUNT_FACTORIES: noCode });
    const misconfigured = createSessions({
      config,
      redis: fx.redisClient,
      publicClient: fx.anvil.publicClient,
      chainId: fx.anvil.chainId,
      keyPrefix: KEY_PREFIX,
    });
    await assert.rejects(misconfigured.preflight(), new RegExp(`^Error: SIWE_ACCOUNT_FACTORIES: no contract at ${noCode}`));
  });
});
