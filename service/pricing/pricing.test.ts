import assert from "node:assert/strict";
import { setImmediate as nextTurn } from "node:timers/promises";
import { after, afterEach, before, describe, it } from "node:test";

import { type Address, type Hex, createPublicClient, custom, http, toFunctionSelector } from "viem";
import { privateKeyToAccount } from "viem/accounts";

import { hasCode } from "../errors.ts";
import { DEFAULT_GAS, deployArtifact } from "../../test/support/aa.ts";
import { type AnvilChain, projectArtifact, startAnvil } from "../../test/support/anvil.ts";
import { revertOf } from "../../test/support/assertions.ts";
import { freePort } from "../../test/support/redis.ts";
import {
  type Pricing,
  type PricingLogger,
  chargeFen,
  createPricing,
  expectedCostWei,
  maxPrefundWei,
  pricingConfigSchema,
} from "./index.ts";

const GWEI = 1_000_000_000n;
/** ¥25,000.50 per ETH. */
const PRICE_8 = 2_500_050_000_000n;
const PRICE_18 = 25_000_500_000_000_000_000_000n;
const feedArtifact = () => projectArtifact("contracts/mocks/MockAggregatorV3.sol", "MockAggregatorV3");
const SELECTOR = {
  decimals: toFunctionSelector("decimals()"),
  description: toFunctionSelector("description()"),
  latestRoundData: toFunctionSelector("latestRoundData()"),
};

/** Test settings: a fast poll, 10% markup and a 5 fen fee on top of the given env. */
function config(env: Record<string, string>) {
  return pricingConfigSchema.parse({ PRICING_POLL_INTERVAL_MS: "10", MARKUP_BPS: "1000", FIXED_FEE_FEN: "5", ...env });
}

/** A client on `anvil` that counts every finished JSON-RPC request by method, and eth_calls by selector. */
function countingClient(anvil: AnvilChain) {
  const counts = new Map<string, number>();
  const broken = new Set<string>();
  const bump = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);
  const transport = custom(
    {
      async request({ method, params }: { method: string; params?: unknown }) {
        try {
          if (broken.has(method)) throw new Error(`${method} is broken for this test`);
          return await anvil.publicClient.request({ method, params } as never);
        } finally {
          bump(method);
          if (method === "eth_call") bump(((params as [{ data: Hex }])[0].data ?? "").slice(0, 10));
        }
      },
    },
    { retryCount: 0 },
  );
  const publicClient = createPublicClient({ chain: anvil.chain, transport });
  const count = (key: string) => counts.get(key) ?? 0;
  return {
    publicClient,
    count,
    /** Makes `method` fail until mended. */
    break: (method: string) => broken.add(method),
    mend: (method: string) => broken.delete(method),
    total: () => [...counts.entries()].filter(([key]) => !key.startsWith("0x")).reduce((sum, [, n]) => sum + n, 0),
    /** Resolves once a whole poll has run after this call (two more eth_blockNumber answers). */
    async polled() {
      const target = count("eth_blockNumber") + 2;
      await until(() => count("eth_blockNumber") >= target, "two more polls");
    },
  };
}

/** Waits for `condition`; the deadline only keeps a broken test from hanging. */
async function until(condition: () => boolean, what: string) {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A clock the test moves by hand, in ms. */
function fakeClock(seconds: number) {
  let ms = seconds * 1000;
  return { now: () => ms, advance: (by: number) => (ms += by * 1000), seconds: () => Math.floor(ms / 1000) };
}

function recordingLogger() {
  const lines: { level: "info" | "warn"; object: Record<string, unknown>; message: string }[] = [];
  const logger: PricingLogger = {
    info: (object, message) => lines.push({ level: "info", object, message }),
    warn: (object, message) => lines.push({ level: "warn", object, message }),
  };
  return { logger, lines, warnings: () => lines.filter((line) => line.level === "warn") };
}

/** Asserts that `read` throws a ServiceError with `code`, and returns it. */
function throwsCode(read: () => unknown, code: "FEES_UNAVAILABLE" | "PRICE_STALE" | "PRICE_UNAVAILABLE") {
  try {
    read();
  } catch (error) {
    if (hasCode(error, code)) return error;
    throw error;
  }
  assert.fail(`expected ${code}`);
}

const started: Pricing[] = [];
/** Every pricing a test creates is stopped after it. */
function track(pricing: Pricing) {
  started.push(pricing);
  return pricing;
}
afterEach(() => {
  for (const pricing of started.splice(0)) pricing.stop();
});

describe("network fees, on anvil", () => {
  let anvil: AnvilChain;
  before(async () => {
    anvil = await startAnvil();
  });
  after(() => anvil?.stop());

  const staticEnv = { PRICE_SOURCE: "static", STATIC_PRICE: "25000.50" };
  const nextBaseFee = async () => (await anvil.publicClient.getFeeHistory({ blockCount: 1, rewardPercentiles: [] })).baseFeePerGas.at(-1)!;

  it("fails closed before the first fetch, without touching the node", () => {
    const client = countingClient(anvil);
    const pricing = track(createPricing({ publicClient: client.publicClient, config: config(staticEnv) }));
    const error = throwsCode(() => pricing.gasPrices(), "FEES_UNAVAILABLE");
    assert.equal(error.message, "Network fees are not known yet; try again shortly");
    throwsCode(() => pricing.baseFee(), "FEES_UNAVAILABLE");
    throwsCode(() => pricing.quote(DEFAULT_GAS), "FEES_UNAVAILABLE");
    assert.deepEqual(pricing.ready(), { fees: false, price: true });
    assert.equal(client.total(), 0);
  });

  it("reads the next base fee and tips from eth_feeHistory, with the minimum tip while blocks are empty", async () => {
    const client = countingClient(anvil);
    const pricing = track(createPricing({ publicClient: client.publicClient, config: config(staticEnv) }));
    await pricing.start();
    assert.deepEqual(pricing.ready(), { fees: true, price: true });

    // A fresh anvil: 1 gwei base fee, no transactions yet, so every tier gets MIN_PRIORITY_FEE_WEI (1e6).
    const baseFee = await nextBaseFee();
    assert.equal(baseFee, GWEI);
    assert.equal(pricing.baseFee(), baseFee);
    const empty = { maxPriorityFeePerGas: 1_000_000n, maxFeePerGas: 1_265_700_000n + 1_000_000n };
    assert.deepEqual(pricing.gasPrices(), { slow: empty, standard: empty, fast: empty });

    // One transaction tipping 7 gwei: its block is the only non-empty one, so every percentile is 7 gwei.
    const hash = await anvil.walletClient.sendTransaction({ to: "0x00000000000000000000000000000000000000cc", maxPriorityFeePerGas: 7n * GWEI, maxFeePerGas: 20n * GWEI });
    await anvil.publicClient.waitForTransactionReceipt({ hash });
    await client.polled();
    const next = await nextBaseFee();
    assert.equal(pricing.baseFee(), next);
    const tipped = { maxPriorityFeePerGas: 7n * GWEI, maxFeePerGas: (next * 12_657n + 9_999n) / 10_000n + 7n * GWEI };
    assert.deepEqual(pricing.gasPrices(), { slow: tipped, standard: tipped, fast: tipped });
  });

  it("answers any number of requests from the cache with zero RPC calls", async () => {
    const client = countingClient(anvil);
    const pricing = track(createPricing({ publicClient: client.publicClient, config: config(staticEnv) }));
    await pricing.start();
    pricing.stop();
    const before = client.total();
    assert.equal(client.count("eth_feeHistory"), 1);
    for (let i = 0; i < 200; i++) {
      pricing.gasPrices();
      pricing.baseFee();
      pricing.quote(DEFAULT_GAS);
      pricing.ready();
      // Give any call a request might have started the chance to finish and be counted.
      await nextTurn();
    }
    assert.equal(client.total(), before);
  });

  it("re-reads fees only when the block number moves, once per move however many blocks it skipped", async () => {
    const client = countingClient(anvil);
    const pricing = track(createPricing({ publicClient: client.publicClient, config: config(staticEnv) }));
    await pricing.start();
    for (let poll = 0; poll < 3; poll++) await client.polled();
    assert.equal(client.count("eth_feeHistory"), 1, "no new block, no new fee history");
    assert.ok(client.count("eth_blockNumber") >= 7);

    const before = pricing.baseFee();
    await anvil.testClient.mine({ blocks: 1 });
    await client.polled();
    assert.equal(client.count("eth_feeHistory"), 2);
    // An empty block lowers the base fee by 12.5%; the cache must show the new one.
    assert.equal(pricing.baseFee(), await nextBaseFee());
    assert.equal(pricing.baseFee(), before - before / 8n);

    await anvil.testClient.mine({ blocks: 3 });
    await client.polled();
    await client.polled();
    assert.equal(client.count("eth_feeHistory"), 3);
    assert.equal(pricing.baseFee(), await nextBaseFee());
  });

  it("keeps serving an idle chain's fees while the node confirms them, and fails closed once it stops answering", async () => {
    const own = await startAnvil();
    try {
      const client = countingClient(own);
      const clock = fakeClock(1_900_000_000);
      const { logger, warnings } = recordingLogger();
      const pricing = track(createPricing({ publicClient: client.publicClient, config: config({ ...staticEnv, FEE_MAX_AGE_SECONDS: "30" }), logger, now: clock.now }));
      await pricing.start();
      const prices = pricing.gasPrices();

      // No new block for 100 s, but every poll confirms the block: still fresh.
      clock.advance(100);
      await client.polled();
      assert.deepEqual(pricing.gasPrices(), prices);

      await own.stop();
      await until(() => warnings().length > 0, "the refresh failure to be logged");
      // Within the max age the cache still serves: a node blip must not stop sponsorship.
      clock.advance(30);
      assert.deepEqual(pricing.gasPrices(), prices);
      clock.advance(1);
      const error = throwsCode(() => pricing.gasPrices(), "FEES_UNAVAILABLE");
      assert.equal(error.message, "Network fees are out of date: the chain node has not confirmed them for 31 s; try again shortly");
      assert.deepEqual(error.data, { ageSeconds: 31, maxAgeSeconds: 30, blockNumber: "0" });
      throwsCode(() => pricing.baseFee(), "FEES_UNAVAILABLE");
      assert.deepEqual(pricing.ready(), { fees: false, price: true });

      // Logged once when it started failing, not once per poll.
      await client.polled();
      assert.deepEqual(warnings().map((line) => line.object.what), ["block number"]);
    } finally {
      await own.stop();
    }
  });

  it("fails closed when the node gives the new block but not its fee history, and logs the failure and recovery once each", async () => {
    const client = countingClient(anvil);
    const clock = fakeClock(1_900_000_000);
    const { logger, lines } = recordingLogger();
    const pricing = track(createPricing({ publicClient: client.publicClient, config: config(staticEnv), logger, now: clock.now }));
    await pricing.start();
    client.break("eth_feeHistory");
    await anvil.testClient.mine({ blocks: 1 });
    await client.polled();
    await client.polled();
    clock.advance(31);
    throwsCode(() => pricing.gasPrices(), "FEES_UNAVAILABLE");

    client.mend("eth_feeHistory");
    await client.polled();
    assert.equal(pricing.baseFee(), await nextBaseFee());
    assert.deepEqual(
      lines.map(({ level, object, message }) => [level, object.what, message]),
      [
        ["warn", "fees", "pricing refresh failed; serving the cache until it is too old"],
        ["info", "fees", "pricing refresh recovered"],
      ],
    );
    // The transport's own message stays out of the log: only viem's short message and the cause's name.
    assert.equal(lines[0].object.error, "UnknownRpcError: An unknown RPC error occurred. ← Error");
  });

  it("starts against a dead node, fails closed, and logs the failure without the RPC URL", async () => {
    const url = `http://127.0.0.1:${await freePort()}/v3/secret-api-key`;
    const publicClient = createPublicClient({ transport: http(url, { retryCount: 0 }) });
    // viem's own message carries the URL, so the log must not use it.
    await assert.rejects(publicClient.getBlockNumber(), (error: Error) => error.message.includes("secret-api-key"));

    const { logger, warnings } = recordingLogger();
    const pricing = track(createPricing({ publicClient, config: config({ PRICE_FEED_ADDRESS: "0x5FbDB2315678afecb367f032d93F642f64180aa3" }), logger }));
    await pricing.start();
    assert.deepEqual(pricing.ready(), { fees: false, price: false });
    throwsCode(() => pricing.gasPrices(), "FEES_UNAVAILABLE");
    throwsCode(() => pricing.lockRate(), "PRICE_UNAVAILABLE");
    assert.equal(warnings().length, 1);
    assert.equal(warnings()[0].object.what, "block number");
    assert.equal(warnings()[0].object.error, "HttpRequestError: HTTP request failed. ← TypeError ← Error (ECONNREFUSED)");
    assert.doesNotMatch(JSON.stringify(warnings()), /secret-api-key|127\.0\.0\.1/);
  });
});

describe("ETH price, on anvil", () => {
  let anvil: AnvilChain;
  before(async () => {
    anvil = await startAnvil();
  });
  after(() => anvil?.stop());

  /** 2026-03-17T16:53:20Z: far from anvil's own clock, so nothing passes by accident. */
  const T = 1_773_766_400;

  async function deployFeed(decimals: number, answer: bigint): Promise<Address> {
    return deployArtifact(feedArtifact(), [decimals, "ETH / CNY", answer], anvil);
  }

  async function report(feed: Address, answer: bigint, updatedAt: number) {
    const hash = await anvil.walletClient.writeContract({ address: feed, abi: feedArtifact().abi, functionName: "setRoundData", args: [answer, BigInt(updatedAt)] });
    await anvil.publicClient.waitForTransactionReceipt({ hash });
  }

  async function startOn(feed: Address, env: Record<string, string> = {}) {
    const client = countingClient(anvil);
    const clock = fakeClock(T);
    const recording = recordingLogger();
    const pricing = track(createPricing({ publicClient: client.publicClient, config: config({ PRICE_FEED_ADDRESS: feed, ...env }), logger: recording.logger, now: clock.now }));
    await pricing.start();
    return { pricing, client, clock, ...recording };
  }

  for (const [decimals, answer] of [[8, PRICE_8], [18, PRICE_18]] as const) {
    it(`locks the rate of a ${decimals}-decimal feed and charges the same fen for it`, async () => {
      const feed = await deployFeed(decimals, answer);
      await report(feed, answer, T - 60);
      const { pricing, lines } = await startOn(feed);
      assert.deepEqual(pricing.ready(), { fees: true, price: true });
      const rate = pricing.lockRate();
      assert.deepEqual(rate, {
        answer,
        decimals,
        currency: "CNY",
        fiatDecimals: 2,
        markupBps: 1000,
        fixedFeeFen: 5n,
        source: "chainlink",
        updatedAt: T - 60,
        lockedAt: T,
      });
      // 0.001 ETH at ¥25,000.50 plus 10% is 2750.055 fen → 2751, plus the 5 fen fee.
      assert.equal(chargeFen({ wei: 10n ** 15n, rate }), 2756n);
      assert.deepEqual(lines[0], { level: "info", object: { feed, description: "ETH / CNY", decimals }, message: "price feed connected" });
    });
  }

  it("reads decimals once and the round once per new block", async () => {
    const feed = await deployFeed(8, PRICE_8);
    await report(feed, PRICE_8, T);
    const { pricing, client } = await startOn(feed);
    const calls = () => [client.count(SELECTOR.decimals), client.count(SELECTOR.description), client.count(SELECTOR.latestRoundData)];
    assert.deepEqual(calls(), [1, 1, 1]);
    await client.polled();
    assert.deepEqual(calls(), [1, 1, 1], "no new block, no new read");

    await report(feed, PRICE_8 + 1n, T);
    await client.polled();
    assert.deepEqual(calls(), [1, 1, 2]);
    assert.equal(pricing.lockRate().answer, PRICE_8 + 1n);
  });

  it("refuses a price older than PRICE_MAX_AGE_SECONDS by the service's clock, and recovers when the feed updates", async () => {
    const feed = await deployFeed(8, PRICE_8);
    await report(feed, PRICE_8, T - 600);
    const { pricing, client, clock } = await startOn(feed, { PRICE_MAX_AGE_SECONDS: "600" });
    assert.equal(pricing.lockRate().updatedAt, T - 600, "exactly the max age is still fresh");

    clock.advance(1);
    const error = throwsCode(() => pricing.lockRate(), "PRICE_STALE");
    assert.equal(error.message, "The ETH price is 601 s old, over the 600 s limit; sponsorship resumes when the feed updates");
    assert.deepEqual(error.data, { updatedAt: T - 600, ageSeconds: 601, maxAgeSeconds: 600 });
    throwsCode(() => pricing.quote(DEFAULT_GAS), "PRICE_STALE");
    assert.deepEqual(pricing.ready(), { fees: true, price: false });

    await report(feed, PRICE_8, clock.seconds());
    await client.polled();
    assert.equal(pricing.lockRate().updatedAt, clock.seconds());
    assert.deepEqual(pricing.ready(), { fees: true, price: true });
  });

  it("refuses a zero or negative answer, and a round without a timestamp, as unavailable", async () => {
    const feed = await deployFeed(8, PRICE_8);
    await report(feed, 0n, T);
    const { pricing, client } = await startOn(feed);
    const zero = throwsCode(() => pricing.lockRate(), "PRICE_UNAVAILABLE");
    assert.equal(zero.message, "The price feed reports no usable ETH price; sponsorship is paused until it does");
    assert.deepEqual(zero.data, { answer: "0", updatedAt: T });
    assert.deepEqual(pricing.ready(), { fees: true, price: false });

    await report(feed, -PRICE_8, T);
    await client.polled();
    assert.deepEqual(throwsCode(() => pricing.lockRate(), "PRICE_UNAVAILABLE").data, { answer: (-PRICE_8).toString(), updatedAt: T });

    await report(feed, PRICE_8, 0);
    await client.polled();
    assert.deepEqual(throwsCode(() => pricing.lockRate(), "PRICE_UNAVAILABLE").data, { answer: PRICE_8.toString(), updatedAt: 0 });

    await report(feed, PRICE_8, T);
    await client.polled();
    assert.equal(pricing.lockRate().answer, PRICE_8);
  });

  it("has no price before the first read", async () => {
    const feed = await deployFeed(8, PRICE_8);
    const pricing = track(createPricing({ publicClient: anvil.publicClient, config: config({ PRICE_FEED_ADDRESS: feed }) }));
    const error = throwsCode(() => pricing.lockRate(), "PRICE_UNAVAILABLE");
    assert.equal(error.message, "The ETH price has not been read yet; try again shortly");
    assert.deepEqual(pricing.ready(), { fees: false, price: false });
  });

  it("uses a static operator price without reading any contract, and never calls it stale", async () => {
    const client = countingClient(anvil);
    const clock = fakeClock(T);
    const pricing = track(createPricing({ publicClient: client.publicClient, config: config({ PRICE_SOURCE: "static", STATIC_PRICE: "25000.50" }), now: clock.now }));
    await pricing.start();
    clock.advance(30 * 86_400);
    const rate = pricing.lockRate();
    assert.deepEqual(rate, {
      answer: 2_500_050n,
      decimals: 2,
      currency: "CNY",
      fiatDecimals: 2,
      markupBps: 1000,
      fixedFeeFen: 5n,
      source: "static",
      updatedAt: T,
      lockedAt: T + 30 * 86_400,
    });
    assert.equal(chargeFen({ wei: 10n ** 15n, rate }), 2756n);
    assert.equal(client.count("eth_call"), 0);
  });

  it("quotes the worst case and the expected cost of an op in wei and fen on one locked rate", async () => {
    const feed = await deployFeed(8, PRICE_8);
    await report(feed, PRICE_8, T);
    const { pricing } = await startOn(feed);
    const quote = pricing.quote(DEFAULT_GAS);
    // 720,000 gas × 3 gwei = 2.16e15 wei = 0.00216 ETH × ¥25,000.50 = ¥54.00108; × 1.1 = ¥59.401188
    // = 5940.1188 fen → 5941, + 5 = 5946.
    assert.equal(quote.maxWei, 2_160_000_000_000_000n);
    assert.equal(quote.maxWei, maxPrefundWei(DEFAULT_GAS));
    assert.equal(quote.maxChargeFen, 5946n);
    assert.equal(quote.expectedWei, expectedCostWei(DEFAULT_GAS, pricing.baseFee()));
    assert.ok(quote.expectedWei < quote.maxWei, "anvil's base fee is under maxFeePerGas - tip");
    assert.equal(quote.expectedChargeFen, chargeFen({ wei: quote.expectedWei, rate: quote.rate }));
    assert.deepEqual(quote.rate, pricing.lockRate());
  });
});

describe("MockAggregatorV3", () => {
  let anvil: AnvilChain;
  before(async () => {
    anvil = await startAnvil();
  });
  after(() => anvil?.stop());

  it("numbers rounds from 1, keeps old ones, and takes reports only from its owner", async () => {
    const { abi } = feedArtifact();
    const feed = await deployArtifact(feedArtifact(), [8, "ETH / CNY", PRICE_8], anvil);
    const read = (functionName: string, args: unknown[] = []) => anvil.publicClient.readContract({ address: feed, abi, functionName, args });
    const hash = await anvil.walletClient.writeContract({ address: feed, abi, functionName: "setRoundData", args: [PRICE_8 * 2n, 1234n] });
    await anvil.publicClient.waitForTransactionReceipt({ hash });

    assert.deepEqual(await read("latestRoundData"), [2n, PRICE_8 * 2n, 1234n, 1234n, 2n]);
    const [roundId, answer] = (await read("getRoundData", [1n])) as [bigint, bigint];
    assert.deepEqual([roundId, answer], [1n, PRICE_8]);
    assert.deepEqual(await revertOf(read("getRoundData", [3n])), { errorName: "RoundNotFound", args: [3n] });
    assert.deepEqual([await read("decimals"), await read("description"), await read("version")], [8, "ETH / CNY", 4n]);

    const stranger = privateKeyToAccount("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d");
    assert.deepEqual(
      await revertOf(anvil.publicClient.simulateContract({ address: feed, abi, functionName: "setRoundData", args: [1n, 1n], account: stranger })),
      { errorName: "NotOwner", args: [] },
    );
  });
});
