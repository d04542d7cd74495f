import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";

import { encode7579Calls } from "permissionless/utils";
import {
  type Abi,
  type AbiFunction,
  type Address,
  type Hex,
  concatHex,
  encodeAbiParameters,
  encodeFunctionData,
  getAddress,
  numberToHex,
  pad,
  parseAbi,
  toFunctionSelector,
  toFunctionSignature,
} from "viem";

import {
  ACCOUNT_CALL_ABI,
  ACCOUNT_CALL_SELECTORS,
  type AccountCall,
  CALL_REJECTION_CODES,
  type CheckCallsReturnType,
  PLAIN_TRANSFER_SELECTOR,
  checkCalls,
  decodeAccountCalls,
} from "./calls.ts";
import { type PolicyDocument, policySchema } from "./policy.ts";

// ---------------------------------------------------------------------------------------------
// Fixtures

const artifactAbi = (path: string): Abi =>
  (JSON.parse(readFileSync(new URL(`../../node_modules/@account-abstraction/${path}`, import.meta.url), "utf8")) as { abi: Abi }).abi;
const V07_ACCOUNT = artifactAbi("contracts/artifacts/SimpleAccount.json");
const V08_ACCOUNT = artifactAbi("contracts-v8/artifacts/SimpleAccount.json");
const V07_ACCOUNT_EXECUTE = artifactAbi("contracts/artifacts/IAccountExecute.json");
const V08_ACCOUNT_EXECUTE = artifactAbi("contracts-v8/artifacts/IAccountExecute.json");
const artifactFunction = (abi: Abi, name: string): AbiFunction => {
  const items = abi.filter((item): item is AbiFunction => item.type === "function" && item.name === name);
  assert.equal(items.length, 1, `exactly one ${name} in the artifact`);
  return items[0];
};

/** ERC-7579 execute and its batch encoding, written out here apart from calls.ts. */
const ERC7579_ABI = [
  {
    type: "function",
    name: "execute",
    stateMutability: "payable",
    inputs: [
      { name: "mode", type: "bytes32" },
      { name: "executionCalldata", type: "bytes" },
    ],
    outputs: [],
  },
] as const;
const EXECUTIONS = [
  {
    type: "tuple[]",
    components: [
      { name: "target", type: "address" },
      { name: "value", type: "uint256" },
      { name: "callData", type: "bytes" },
    ],
  },
] as const;
const ERC20 = parseAbi(["function transfer(address to, uint256 amount)", "function approve(address spender, uint256 amount)"]);

const SENDER = getAddress("0x5a11ce0000000000000000000000000000000001");
const TOKEN = getAddress("0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48");
const ROUTER = getAddress("0x3fc91a3afd70395cd496c647d5a6cc9d4b2b7fad");
const OTHER = getAddress("0x00000000000000000000000000000000deadbeef");

const transfer = (to: Address, amount: bigint) => encodeFunctionData({ abi: ERC20, functionName: "transfer", args: [to, amount] });
const approve = (spender: Address, amount: bigint) => encodeFunctionData({ abi: ERC20, functionName: "approve", args: [spender, amount] });

const ONE: AccountCall[] = [{ target: TOKEN, value: 0n, data: transfer(OTHER, 10n ** 6n) }];
/** A plain transfer, an approve, and a call whose data itself holds an encoded batch (nested bytes). */
const THREE: AccountCall[] = [
  { target: OTHER, value: 10n ** 18n, data: "0x" },
  { target: TOKEN, value: 0n, data: approve(ROUTER, 2n ** 256n - 1n) },
  { target: ROUTER, value: 7n, data: encodeFunctionData({ abi: V08_ACCOUNT, functionName: "executeBatch", args: [[{ target: TOKEN, value: 1n, data: transfer(SENDER, 1n) }]] }) },
];

const v07Execute = (call: AccountCall) => encodeFunctionData({ abi: V07_ACCOUNT, functionName: "execute", args: [call.target, call.value, call.data] });
const v07Batch = (calls: AccountCall[], values = calls.map((c) => c.value)) =>
  encodeFunctionData({ abi: V07_ACCOUNT, functionName: "executeBatch", args: [calls.map((c) => c.target), values, calls.map((c) => c.data)] });
const v08Execute = (call: AccountCall) => encodeFunctionData({ abi: V08_ACCOUNT, functionName: "execute", args: [call.target, call.value, call.data] });
const v08Batch = (calls: AccountCall[]) => encodeFunctionData({ abi: V08_ACCOUNT, functionName: "executeBatch", args: [calls] });

/** An ERC-7579 mode: callType, execType, 4 unused bytes, modeSelector, 22-byte payload. */
const mode = ({ callType = "0x00", execType = "0x00", unused = "0x00000000", selector = "0x00000000", payload = pad("0x", { size: 22 }) }: Partial<Record<string, Hex>> = {}) =>
  concatHex([callType, execType, unused, selector, payload]);
const erc7579 = (executionMode: Hex, executionCalldata: Hex) => encodeFunctionData({ abi: ERC7579_ABI, functionName: "execute", args: [executionMode, executionCalldata] });
const packedSingle = (call: AccountCall) => concatHex([call.target, numberToHex(call.value, { size: 32 }), call.data]);
const encodedBatch = (calls: AccountCall[]) => encodeAbiParameters(EXECUTIONS, [calls.map((c) => ({ target: c.target, value: c.value, callData: c.data }))]);

/** JSON for assertion messages, with bigints as decimal strings. */
const show = (value: unknown) => JSON.stringify(value, (_key, v) => (typeof v === "bigint" ? v.toString() : v));

const decodedCalls = (callData: Hex): AccountCall[] => {
  const result = decodeAccountCalls(callData);
  assert.ok("calls" in result, `expected calls, got ${show(result)}`);
  return result.calls;
};
const undecodable = (callData: Hex, reason: RegExp) => {
  const result = decodeAccountCalls(callData);
  assert.ok("undecodable" in result, `expected undecodable, got ${show(result)}`);
  assert.match(result.undecodable, reason);
  assert.doesNotMatch(result.undecodable, /\n/, "reasons are one line");
};

/** Replaces the 32-byte ABI word at `word` (counted after the 4-byte selector). */
const withWord = (callData: Hex, word: number, value: Hex) => {
  const start = 10 + word * 64;
  return `${callData.slice(0, start)}${pad(value, { size: 32 }).slice(2)}${callData.slice(start + 64)}` as Hex;
};

// ---------------------------------------------------------------------------------------------

describe("account ABIs against the compiled contracts", () => {
  const ours = (name: string, selector: Hex) => {
    const item = ACCOUNT_CALL_ABI.find((i) => i.name === name && toFunctionSelector(i) === selector);
    assert.ok(item, `calls.ts declares ${name} with ${selector}`);
    return item;
  };

  it("matches SimpleAccount v0.7 execute and executeBatch", () => {
    const execute = artifactFunction(V07_ACCOUNT, "execute");
    const batch = artifactFunction(V07_ACCOUNT, "executeBatch");
    assert.equal(toFunctionSelector(execute), ACCOUNT_CALL_SELECTORS.execute);
    assert.equal(toFunctionSelector(batch), ACCOUNT_CALL_SELECTORS.executeBatchV07);
    assert.equal(toFunctionSignature(ours("execute", ACCOUNT_CALL_SELECTORS.execute)), toFunctionSignature(execute));
    assert.equal(toFunctionSignature(ours("executeBatch", ACCOUNT_CALL_SELECTORS.executeBatchV07)), toFunctionSignature(batch));
  });

  it("matches SimpleAccount v0.8 (BaseAccount) execute and executeBatch(Call[])", () => {
    const execute = artifactFunction(V08_ACCOUNT, "execute");
    const batch = artifactFunction(V08_ACCOUNT, "executeBatch");
    assert.equal(toFunctionSelector(execute), ACCOUNT_CALL_SELECTORS.execute);
    assert.equal(toFunctionSelector(batch), ACCOUNT_CALL_SELECTORS.executeBatchV08);
    assert.equal(toFunctionSignature(ours("executeBatch", ACCOUNT_CALL_SELECTORS.executeBatchV08)), toFunctionSignature(batch));
  });

  it("matches IAccountExecute.executeUserOp in v0.7 and v0.8", () => {
    for (const abi of [V07_ACCOUNT_EXECUTE, V08_ACCOUNT_EXECUTE]) {
      assert.equal(toFunctionSelector(artifactFunction(abi, "executeUserOp")), ACCOUNT_CALL_SELECTORS.executeUserOp);
    }
    assert.equal(toFunctionSelector(ours("executeUserOp", ACCOUNT_CALL_SELECTORS.executeUserOp)), toFunctionSelector(artifactFunction(V07_ACCOUNT_EXECUTE, "executeUserOp")));
  });

  it("matches ERC-7579 execute(bytes32,bytes) as an SDK encodes it", () => {
    assert.equal(toFunctionSelector("function execute(bytes32 mode, bytes executionCalldata)"), ACCOUNT_CALL_SELECTORS.erc7579Execute);
    assert.equal(toFunctionSelector(ours("execute", ACCOUNT_CALL_SELECTORS.erc7579Execute)), ACCOUNT_CALL_SELECTORS.erc7579Execute);
    const sdk = encode7579Calls({ mode: { type: "call" }, callData: [{ to: TOKEN, data: "0x" }] });
    assert.equal(sdk.slice(0, 10), ACCOUNT_CALL_SELECTORS.erc7579Execute);
  });

  it("declares a selector for every ABI item and nothing else", () => {
    assert.deepEqual(ACCOUNT_CALL_ABI.map((item) => toFunctionSelector(item)).sort(), Object.values(ACCOUNT_CALL_SELECTORS).sort());
  });
});

describe("decodeAccountCalls: formats", () => {
  it("reads empty callData as no calls (the EntryPoint skips the account call)", () => {
    assert.deepEqual(decodedCalls("0x"), []);
  });

  it("round-trips execute for v0.7 and v0.8 SimpleAccount, with nested and empty data", () => {
    for (const encode of [v07Execute, v08Execute]) {
      for (const call of [...ONE, ...THREE]) assert.deepEqual(decodedCalls(encode(call)), [call]);
    }
  });

  it("round-trips v0.7 executeBatch with 1, 3 and 0 calls", () => {
    for (const calls of [ONE, THREE, []]) assert.deepEqual(decodedCalls(v07Batch(calls)), calls);
  });

  it("reads an empty v0.7 value array as zero value for every call, as SimpleAccount does", () => {
    const calls = decodedCalls(v07Batch(THREE, []));
    assert.deepEqual(calls, THREE.map((c) => ({ ...c, value: 0n })));
  });

  it("refuses v0.7 executeBatch whose array lengths make the account revert", () => {
    undecodable(v07Batch(THREE, [1n, 2n]), /2 values for 3 calls/);
    const targetsShort = encodeFunctionData({ abi: V07_ACCOUNT, functionName: "executeBatch", args: [[TOKEN], [], ["0x", "0x"]] });
    undecodable(targetsShort, /1 targets but 2 call data/);
  });

  it("round-trips v0.8 executeBatch(Call[]) with 1, 3 and 0 calls", () => {
    for (const calls of [ONE, THREE, []]) assert.deepEqual(decodedCalls(v08Batch(calls)), calls);
  });

  it("round-trips ERC-7579 single mode, from an SDK encoder and by hand", () => {
    for (const call of [...ONE, ...THREE]) {
      const sdk = encode7579Calls({ mode: { type: "call" }, callData: [{ to: call.target, value: call.value, data: call.data }] });
      assert.deepEqual(decodedCalls(sdk), [call]);
      assert.deepEqual(decodedCalls(erc7579(mode(), packedSingle(call))), [call]);
    }
  });

  it("round-trips ERC-7579 batch mode with 1, 3 and 0 calls", () => {
    for (const calls of [ONE, THREE, []]) assert.deepEqual(decodedCalls(erc7579(mode({ callType: "0x01" }), encodedBatch(calls))), calls);
    const sdk = encode7579Calls({ mode: { type: "batchcall" }, callData: THREE.map((c) => ({ to: c.target, value: c.value, data: c.data })) });
    assert.deepEqual(decodedCalls(sdk), THREE);
  });

  it("reads ERC-7579 try mode (execType 0x01) like the default, since the same calls are attempted", () => {
    assert.deepEqual(decodedCalls(erc7579(mode({ execType: "0x01" }), packedSingle(ONE[0]))), ONE);
    assert.deepEqual(decodedCalls(erc7579(mode({ callType: "0x01", execType: "0x01" }), encodedBatch(THREE))), THREE);
  });

  it("reads an ERC-7579 single execution of exactly 52 bytes as a call with empty data", () => {
    const call = { target: OTHER, value: 5n, data: "0x" as Hex };
    assert.deepEqual(decodedCalls(erc7579(mode(), packedSingle(call))), [call]);
  });

  it("accepts upper-case hex and returns checksummed targets and lower-case data", () => {
    const [call] = decodedCalls(`0x${v08Execute(ONE[0]).slice(2).toUpperCase()}` as Hex);
    assert.equal(call.target, TOKEN);
    assert.equal(call.data, ONE[0].data.toLowerCase());
  });
});

describe("decodeAccountCalls: refusals", () => {
  it("refuses input that is not hex of whole bytes, without throwing", () => {
    undecodable("0x123" as Hex, /not 0x-prefixed hex/);
    undecodable("0xzz" as Hex, /not 0x-prefixed hex/);
    undecodable("b61d27f6" as Hex, /not 0x-prefixed hex/);
    undecodable(42 as unknown as Hex, /not 0x-prefixed hex/);
  });

  it("refuses callData shorter than a selector", () => {
    undecodable("0xb61d27", /3 bytes, shorter than a 4-byte function selector/);
  });

  it("refuses an unknown selector and names it", () => {
    undecodable(transfer(OTHER, 1n), /unknown account function 0xa9059cbb/);
  });

  it("refuses every format's selector with no arguments", () => {
    for (const selector of [ACCOUNT_CALL_SELECTORS.execute, ACCOUNT_CALL_SELECTORS.executeBatchV07, ACCOUNT_CALL_SELECTORS.executeBatchV08, ACCOUNT_CALL_SELECTORS.erc7579Execute]) {
      undecodable(selector, /malformed ABI encoding/);
    }
  });

  it("refuses truncated encodings of each format", () => {
    const encodings = [v07Execute(ONE[0]), v07Batch(THREE), v08Batch(THREE), erc7579(mode({ callType: "0x01" }), encodedBatch(THREE))];
    for (const full of encodings) {
      for (const cut of [2, 32, 64, 200]) undecodable(full.slice(0, full.length - cut) as Hex, /malformed ABI encoding|truncated, \d+ bytes? short/);
    }
  });

  it("refuses trailing bytes after the arguments and counts them", () => {
    undecodable(`${v07Execute(ONE[0])}00`, /execute: 1 byte extra after the encoded arguments/);
    undecodable(`${v08Batch(THREE)}${"ab".repeat(32)}`, /executeBatch\(\(address,uint256,bytes\)\[\]\): 32 bytes extra after the encoded arguments/);
    undecodable(`${v07Batch(ONE)}ff`, /executeBatch\(address\[\],uint256\[\],bytes\[\]\): 1 byte extra after the encoded arguments/);
    // Inside an ERC-7579 batch's executionCalldata too.
    undecodable(erc7579(mode({ callType: "0x01" }), `${encodedBatch(ONE)}00`), /ERC-7579 batch: 1 byte extra after the encoded arguments/);
  });

  it("refuses offsets that point out of bounds or away from the standard layout", () => {
    const call = v07Execute(ONE[0]);
    // Word 2 is the offset of `func` (0x60 in the standard layout).
    assert.equal(call.slice(10 + 2 * 64, 10 + 3 * 64), pad("0x60", { size: 32 }).slice(2));
    undecodable(withWord(call, 2, "0xffffffff"), /execute: malformed ABI encoding/);
    undecodable(withWord(call, 2, "0x40"), /execute: (malformed|non-standard) ABI encoding/);
    // An array length far beyond the data.
    const batch = v08Batch(THREE);
    undecodable(withWord(batch, 1, "0xffffffffffff"), /malformed ABI encoding/);
  });

  it("refuses an address word with dirty high bits, which Solidity would revert on", () => {
    const call = v07Execute(ONE[0]);
    const dirty = `${call.slice(0, 10)}01${call.slice(12)}` as Hex;
    undecodable(dirty, /execute: non-standard ABI encoding/);
  });

  it("refuses ERC-7579 delegatecall, staticcall and unknown call types", () => {
    const single = packedSingle(ONE[0]);
    undecodable(erc7579(mode({ callType: "0xff" }), single), /delegatecall mode: the target's code runs with the account's own storage/);
    undecodable(erc7579(mode({ callType: "0xfe" }), single), /staticcall mode is not supported/);
    undecodable(erc7579(mode({ callType: "0x02" }), single), /unknown ERC-7579 call type 0x02/);
  });

  it("refuses ERC-7579 unknown exec types, account-specific mode selectors and non-zero reserved bytes", () => {
    const single = packedSingle(ONE[0]);
    undecodable(erc7579(mode({ execType: "0x02" }), single), /unknown ERC-7579 exec type 0x02/);
    undecodable(erc7579(mode({ callType: "0x01", selector: "0x78210001" }), encodedBatch(ONE)), /mode selector 0x78210001 is account-specific/);
    undecodable(erc7579(mode({ unused: "0x00000001" }), single), /non-zero reserved or payload bytes/);
    undecodable(erc7579(mode({ payload: pad("0x01", { size: 22 }) }), single), /non-zero reserved or payload bytes/);
  });

  it("refuses an ERC-7579 single execution shorter than target and value", () => {
    undecodable(erc7579(mode(), packedSingle(ONE[0]).slice(0, 2 + 51 * 2) as Hex), /single execution is 51 bytes; it needs at least 52/);
  });

  it("refuses a packed single execution sent in batch mode", () => {
    undecodable(erc7579(mode({ callType: "0x01" }), packedSingle(ONE[0])), /ERC-7579 batch: (malformed|non-standard) ABI encoding/);
  });

  it("refuses executeUserOp, whose inner format belongs to the account", () => {
    undecodable(concatHex([ACCOUNT_CALL_SELECTORS.executeUserOp, v08Execute(ONE[0])]), /executeUserOp: the account reads the bytes after the selector in its own format/);
  });

  it("never throws on mutated encodings", () => {
    // A fixed-seed generator so any failure reproduces.
    let seed = 0x2545f491;
    const random = (n: number) => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const bases = [v07Execute(THREE[2]), v07Batch(THREE), v08Batch(THREE), erc7579(mode({ callType: "0x01" }), encodedBatch(THREE)), erc7579(mode(), packedSingle(THREE[1]))];
    let refused = 0;
    for (let i = 0; i < 2_000; i++) {
      const base = bases[i % bases.length];
      const chars = base.split("");
      for (let j = 0; j < 1 + random(4); j++) chars[10 + random(base.length - 10)] = "0123456789abcdef"[random(16)];
      const mutated = chars.join("").slice(0, base.length - 2 * random(3)) as Hex;
      const result = decodeAccountCalls(mutated);
      assert.ok("calls" in result ? Array.isArray(result.calls) : typeof result.undecodable === "string");
      if ("undecodable" in result) refused++;
    }
    assert.ok(refused > 0, "some mutations are refused");
  });
});

// ---------------------------------------------------------------------------------------------

const policy = (calls: PolicyDocument["calls"]) => policySchema.parse({ calls });
const rejected = (result: CheckCallsReturnType) => {
  assert.equal(result.ok, false, `expected a rejection, got ${show(result)}`);
  if (result.ok) throw new Error("unreachable");
  assert.doesNotMatch(result.message, /\n/, "messages are one line");
  return result;
};
const accepted = (result: CheckCallsReturnType) => {
  assert.equal(result.ok, true, `expected acceptance, got ${show(result)}`);
  if (!result.ok) throw new Error("unreachable");
  return result.calls;
};
const UNDECODABLE = erc7579(mode({ callType: "0xff" }), packedSingle(ONE[0]));

describe("checkCalls", () => {
  it("with the default policy accepts decodable callData with its calls, and undecodable callData", () => {
    const open = policySchema.parse({});
    assert.deepEqual(accepted(checkCalls({ sender: SENDER, callData: v08Batch(THREE), policy: open })), THREE);
    assert.equal(accepted(checkCalls({ sender: SENDER, callData: UNDECODABLE, policy: open })), null);
  });

  it("refuses a denied sender before reading its callData, in any address case", () => {
    const p = policy({ deniedSenders: [SENDER.toLowerCase()] });
    for (const callData of [v08Batch(ONE), UNDECODABLE]) {
      const r = rejected(checkCalls({ sender: SENDER, callData, policy: p }));
      assert.equal(r.code, "SENDER_DENIED");
      assert.equal(r.limit, "calls.deniedSenders");
      assert.deepEqual(r.data, { sender: SENDER });
      assert.match(r.message, /contact the operator/);
    }
    assert.deepEqual(accepted(checkCalls({ sender: OTHER, callData: v08Batch(ONE), policy: p })), ONE);
  });

  it("refuses a call to a denied target and says which call", () => {
    const p = policy({ deniedTargets: [TOKEN] });
    const r = rejected(checkCalls({ sender: SENDER, callData: v07Batch(THREE), policy: p }));
    assert.equal(r.code, "TARGET_DENIED");
    assert.equal(r.limit, "calls.deniedTargets");
    assert.deepEqual(r.data, { target: TOKEN, index: 1 });
    assert.match(r.message, new RegExp(`call 1 goes to ${TOKEN}.*remove that call`));
    const clean = [THREE[0], THREE[2]];
    assert.deepEqual(accepted(checkCalls({ sender: SENDER, callData: v07Batch(clean), policy: p })), clean);
  });

  it("refuses undecodable callData when targets are denied, since its targets cannot be seen", () => {
    const r = rejected(checkCalls({ sender: SENDER, callData: UNDECODABLE, policy: policy({ deniedTargets: [OTHER] }) }));
    assert.equal(r.code, "CALLDATA_UNDECODABLE");
    assert.equal(r.limit, "calls.deniedTargets");
    assert.ok("reason" in r.data);
    assert.match(r.data.reason, /delegatecall/);
    assert.equal(accepted(checkCalls({ sender: SENDER, callData: UNDECODABLE, policy: policy({ deniedTargets: [] }) })), null);
  });

  it("refuses undecodable callData under an allowlist and tells the caller which formats work", () => {
    const r = rejected(checkCalls({ sender: SENDER, callData: `${v08Execute(ONE[0])}00`, policy: policy({ allowedTargets: [{ address: TOKEN }] }) }));
    assert.equal(r.code, "CALLDATA_UNDECODABLE");
    assert.equal(r.limit, "calls.allowedTargets");
    assert.deepEqual(r.data, { reason: "execute: 1 byte extra after the encoded arguments" });
    assert.match(r.message, /execute, executeBatch or ERC-7579 execute/);
  });

  it("refuses a target that is not allowed, with its index, and accepts allowed ones", () => {
    const p = policy({ allowedTargets: [{ address: TOKEN }, { address: OTHER }] });
    const r = rejected(checkCalls({ sender: SENDER, callData: v08Batch(THREE), policy: p }));
    assert.equal(r.code, "TARGET_NOT_ALLOWED");
    assert.equal(r.limit, "calls.allowedTargets");
    assert.deepEqual(r.data, { target: ROUTER, index: 2 });
    assert.match(r.message, new RegExp(`ask the operator to allow ${ROUTER}`));
    assert.deepEqual(accepted(checkCalls({ sender: SENDER, callData: v08Batch(THREE.slice(0, 2)), policy: p })), THREE.slice(0, 2));
  });

  it("refuses the account calling itself under an allowlist that does not list it", () => {
    const selfCall = v08Execute({ target: SENDER, value: 0n, data: v08Batch(ONE) });
    const r = rejected(checkCalls({ sender: SENDER, callData: selfCall, policy: policy({ allowedTargets: [{ address: TOKEN }] }) }));
    assert.equal(r.code, "TARGET_NOT_ALLOWED");
    assert.deepEqual(r.data, { target: SENDER, index: 0 });
  });

  it("an empty allowlist refuses every call, and a batch of no calls passes any allowlist", () => {
    const r = rejected(checkCalls({ sender: SENDER, callData: v08Execute(ONE[0]), policy: policy({ allowedTargets: [] }) }));
    assert.equal(r.code, "TARGET_NOT_ALLOWED");
    for (const callData of [v08Batch([]), "0x" as Hex]) assert.deepEqual(accepted(checkCalls({ sender: SENDER, callData, policy: policy({ allowedTargets: [] }) })), []);
  });

  it("checks selectors on targets that list them, whatever case the policy was written in", () => {
    const p = policy({ allowedTargets: [{ address: ROUTER }, { address: TOKEN.toLowerCase(), selectors: ["0xA9059CBB"] }] });
    assert.deepEqual(accepted(checkCalls({ sender: SENDER, callData: v08Execute(ONE[0]), policy: p })), ONE);
    const r = rejected(checkCalls({ sender: SENDER, callData: v08Batch([ONE[0], THREE[1]]), policy: p }));
    assert.equal(r.code, "SELECTOR_NOT_ALLOWED");
    assert.equal(r.limit, "calls.allowedTargets[1].selectors");
    assert.deepEqual(r.data, { target: TOKEN, index: 1, selector: "0x095ea7b3", allowedSelectors: ["0xa9059cbb"] });
    assert.match(r.message, new RegExp(`ask the operator to allow 0x095ea7b3 on ${TOKEN}`));
  });

  it("allows every function, plain transfers and short data on a target whose selectors are null", () => {
    const p = policy({ allowedTargets: [{ address: OTHER, selectors: null }] });
    const calls: AccountCall[] = [
      { target: OTHER, value: 1n, data: "0x" },
      { target: OTHER, value: 0n, data: "0x01" },
      { target: OTHER, value: 0n, data: approve(ROUTER, 1n) },
    ];
    assert.deepEqual(accepted(checkCalls({ sender: SENDER, callData: v08Batch(calls), policy: p })), calls);
  });

  it("needs the 0x00000000 pseudo-selector for a plain ETH transfer to a target with a selector list", () => {
    const send = v08Execute({ target: OTHER, value: 10n ** 17n, data: "0x" });
    const without = policy({ allowedTargets: [{ address: OTHER, selectors: ["0xa9059cbb"] }] });
    const r = rejected(checkCalls({ sender: SENDER, callData: send, policy: without }));
    assert.equal(r.code, "SELECTOR_NOT_ALLOWED");
    assert.ok("selector" in r.data);
    assert.equal(r.data.selector, PLAIN_TRANSFER_SELECTOR);
    assert.match(r.message, /sends ETH to .* without calling a function.*allow plain transfers \(0x00000000\)/);
    const withTransfers = policy({ allowedTargets: [{ address: OTHER, selectors: ["0xa9059cbb", PLAIN_TRANSFER_SELECTOR] }] });
    assert.equal(accepted(checkCalls({ sender: SENDER, callData: send, policy: withTransfers }))?.length, 1);
  });

  it("refuses call data of 1–3 bytes on a target with a selector list, even one listing 0x00000000", () => {
    const p = policy({ allowedTargets: [{ address: OTHER, selectors: [PLAIN_TRANSFER_SELECTOR] }] });
    const r = rejected(checkCalls({ sender: SENDER, callData: v08Execute({ target: OTHER, value: 0n, data: "0x000000" }), policy: p }));
    assert.equal(r.code, "SELECTOR_NOT_ALLOWED");
    assert.deepEqual(r.data, { target: OTHER, index: 0, selector: null, allowedSelectors: [PLAIN_TRANSFER_SELECTOR] });
    assert.match(r.message, /3 bytes of data, too short for a function selector/);
  });

  it("merges a target listed twice: the union of selectors, or everything if either entry is null", () => {
    const twice = policy({ allowedTargets: [{ address: TOKEN, selectors: ["0xa9059cbb"] }, { address: TOKEN, selectors: ["0x095ea7b3"] }] });
    const both = v08Batch([ONE[0], THREE[1]]);
    assert.equal(accepted(checkCalls({ sender: SENDER, callData: both, policy: twice }))?.length, 2);
    const r = rejected(checkCalls({ sender: SENDER, callData: v08Execute({ target: TOKEN, value: 0n, data: "0x12345678" }), policy: twice }));
    assert.equal(r.limit, "calls.allowedTargets[0].selectors");
    assert.ok("allowedSelectors" in r.data);
    assert.deepEqual(r.data.allowedSelectors, ["0xa9059cbb", "0x095ea7b3"]);
    const open = policy({ allowedTargets: [{ address: TOKEN, selectors: ["0xa9059cbb"] }, { address: TOKEN, selectors: null }] });
    assert.equal(accepted(checkCalls({ sender: SENDER, callData: v08Execute({ target: TOKEN, value: 0n, data: "0x12345678" }), policy: open }))?.length, 1);
  });

  it("lets a denied target win over the allowlist", () => {
    const r = rejected(checkCalls({ sender: SENDER, callData: v08Execute(ONE[0]), policy: policy({ allowedTargets: [{ address: TOKEN }], deniedTargets: [TOKEN] }) }));
    assert.equal(r.code, "TARGET_DENIED");
  });

  it("applies a changed policy at once (the per-policy index is not shared between policies)", () => {
    const callData = v08Execute(ONE[0]);
    assert.equal(checkCalls({ sender: SENDER, callData, policy: policy({ allowedTargets: [{ address: TOKEN }] }) }).ok, true);
    assert.equal(checkCalls({ sender: SENDER, callData, policy: policy({ allowedTargets: [{ address: OTHER }] }) }).ok, false);
  });

  it("produces every exported code, each with the policy path it hit and a one-line message", () => {
    const outcomes = [
      checkCalls({ sender: SENDER, callData: "0x", policy: policy({ deniedSenders: [SENDER] }) }),
      checkCalls({ sender: SENDER, callData: v08Execute(ONE[0]), policy: policy({ deniedTargets: [TOKEN] }) }),
      checkCalls({ sender: SENDER, callData: UNDECODABLE, policy: policy({ allowedTargets: [] }) }),
      checkCalls({ sender: SENDER, callData: v08Execute(ONE[0]), policy: policy({ allowedTargets: [] }) }),
      checkCalls({ sender: SENDER, callData: v08Execute(ONE[0]), policy: policy({ allowedTargets: [{ address: TOKEN, selectors: [] }] }) }),
    ].map(rejected);
    assert.deepEqual(outcomes.map((r) => r.code), [...CALL_REJECTION_CODES]);
    for (const r of outcomes) assert.match(r.limit, /^calls\.(deniedSenders|deniedTargets|allowedTargets)(\[\d+\]\.selectors)?$/);
  });
});
