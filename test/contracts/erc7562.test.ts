// Proves from real traces that FiatGasPaymaster's validation follows the ERC-7562 rules for a staked
// paymaster, on EntryPoint v0.7 and v0.8: handleOps is traced with the struct logger, the paymaster's
// validatePaymasterUserOp frame is isolated, and its opcodes, calls and storage are checked rule by rule.
// EDR's own erc7562Tracer is used only as an independent cross-check of the frame isolation.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { type Address, type Hex, encodeFunctionData, getAbiItem, getAddress, numberToHex, pad, toFunctionSelector } from "viem";
import { type UserOperation, toPackedUserOperation } from "viem/account-abstraction";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";

import {
  ENTRYPOINT_VERSIONS,
  aaArtifact,
  deployArtifact,
  entryPointAbi,
  handleOpsCall,
  signAsAccount,
  sponsor,
} from "../support/aa.ts";
import {
  CORE_PRECOMPILES,
  type Erc7562Rules,
  type Frame,
  type StructLog,
  buildFrames,
  checkErc7562,
  codeAccesses,
  findCalls,
  flattenFrames,
  keccakPreimages,
  opcodeHistogram,
  opcodeNumber,
  stackItem,
  storageAccesses,
} from "../support/erc7562.ts";
import { type Stack, TARGET, connectChain, deployStack, newUserOp, paymasterContractName } from "../support/paymasterFixture.ts";
import { arrayElementSlot, mappingSlot, slotOf, storageLayoutOf } from "../support/storageLayout.ts";

const chain = await connectChain();
const { networkHelpers } = chain;
const fixtures = {
  "0.7": () => deployStack(chain, "0.7"),
  "0.8": () => deployStack(chain, "0.8"),
};

/** At EIP-7825's per-transaction cap, which EDR enforces from Osaka on. */
const TRACE_GAS = 1n << 24n;
const ECRECOVER = CORE_PRECOMPILES[0];
const MIN_UNSTAKE_DELAY = 86_400;

type StructLoggerResult = { failed: boolean; gas: number; returnValue: Hex; structLogs: StructLog[] };
/** A frame of EDR's native `erc7562Tracer` (the tracer bundlers run on Geth). */
type Erc7562TracerCall = {
  type: string;
  from: Address;
  to: Address;
  input: Hex;
  gas: Hex;
  value?: Hex;
  usedOpcodes: Record<string, number>;
  accessedSlots: Record<"reads" | "writes" | "transientReads" | "transientWrites", Record<Hex, unknown>>;
  extCodeAccessInfo: Address[];
  outOfGas: boolean;
  calls?: Erc7562TracerCall[];
};

/** What each traced scenario showed, printed once at the end so a reviewer sees what was checked. */
const summary: string[] = [];

async function trace<T>(stack: Stack, op: UserOperation<"0.7">, tracerConfig: object): Promise<T> {
  const call = { from: stack.deployer.account.address, to: stack.entryPoint, data: handleOpsCall([op], stack.beneficiary), gas: numberToHex(TRACE_GAS) };
  return (await chain.provider.request({ method: "debug_traceCall", params: [call, "latest", tracerConfig] })) as T;
}

/** handleOps([op]) under the struct logger, with memory for calldata and keccak inputs, as a call tree. */
async function traceFrames(stack: Stack, op: UserOperation<"0.7">) {
  const result = await trace<StructLoggerResult>(stack, op, { enableMemory: true, disableStack: false, disableStorage: false });
  const root = buildFrames(result.structLogs, { from: stack.deployer.account.address, to: stack.entryPoint });
  return { result, root };
}

function validatePaymasterUserOpSelector(stack: Stack): Hex {
  return toFunctionSelector(getAbiItem({ abi: stack.paymaster.abi, name: "validatePaymasterUserOp" }));
}

/** The frame of the EntryPoint's call into validatePaymasterUserOp; there must be exactly one. */
function paymasterValidationFrame(stack: Stack, root: Frame): Frame {
  const selector = validatePaymasterUserOpSelector(stack);
  const frames = findCalls(root, { from: stack.entryPoint, to: stack.paymaster.address, selector });
  assert.equal(frames.length, 1, "one validatePaymasterUserOp call from the EntryPoint");
  return frames[0];
}

/** The rules of this op for the paymaster phase, with stake read from the EntryPoint and code from the chain. */
async function paymasterRules(stack: Stack, op: UserOperation<"0.7">, phase: Frame[]): Promise<Erc7562Rules> {
  const info = (await stack.publicClient.readContract({
    address: stack.entryPoint,
    abi: entryPointAbi,
    functionName: "getDepositInfo",
    args: [stack.paymaster.address],
  })) as { staked: boolean; stake: bigint; unstakeDelaySec: number };
  const withCode = new Set<string>();
  for (const { target } of codeAccesses(phase)) {
    if (await stack.publicClient.getCode({ address: target })) withCode.add(target.toLowerCase());
  }
  const factory = op.factory && op.factory !== "0x7702" ? [getAddress(op.factory)] : [];
  return {
    role: "paymaster",
    entity: stack.paymaster.address,
    staked: info.staked && info.stake > 0n && info.unstakeDelaySec >= MIN_UNSTAKE_DELAY,
    sender: op.sender,
    entryPoint: stack.entryPoint,
    entities: [...factory, stack.paymaster.address],
    senderExists: !op.factory || op.factory === "0x7702",
    hasCode: (address) => withCode.has(address.toLowerCase()),
  };
}

/** Opcode counts by number, the form EDR's erc7562Tracer reports them in. */
function byOpcodeNumber(histogram: Record<string, number>): Record<number, number> {
  return Object.fromEntries(Object.entries(histogram).map(([name, count]) => [opcodeNumber(name)!, count]));
}

function findTracerCall(call: Erc7562TracerCall, from: Address, to: Address, selector: Hex): Erc7562TracerCall[] {
  const here = call.from.toLowerCase() === from.toLowerCase() && call.to.toLowerCase() === to.toLowerCase() && call.input.startsWith(selector);
  return [...(here ? [call] : []), ...(call.calls ?? []).flatMap((c) => findTracerCall(c, from, to, selector))];
}

for (const version of ENTRYPOINT_VERSIONS) {
  describe(`ERC-7562 scope of FiatGasPaymaster validation on EntryPoint v${version}`, () => {
    const load = () => networkHelpers.loadFixture(fixtures[version]);
    let positionsSlot: bigint;
    let valuesSlot: bigint;

    before(async () => {
      const layout = await storageLayoutOf(paymasterContractName[version]);
      positionsSlot = slotOf(layout, "_signers._inner._positions");
      valuesSlot = slotOf(layout, "_signers._inner._values");
    });

    async function sponsoredOp(stack: Stack, op: UserOperation<"0.7">, owner: ReturnType<typeof privateKeyToAccount>) {
      const validUntil = (await networkHelpers.time.latest()) + 3600;
      const signed = await sponsor(op, { version, chainId: stack.chainId, paymaster: stack.paymaster.address, signer: stack.signer, validUntil });
      return signAsAccount(signed, version, stack.chainId, owner);
    }

    const scenarios: Record<string, (stack: Stack) => Promise<UserOperation<"0.7">>> = {
      "the first op of an account, which deploys it": async (stack) => {
        const { op, owner } = await newUserOp(stack);
        assert.ok(op.factory, "carries initCode");
        return sponsoredOp(stack, op, owner);
      },
      "an op from a deployed account": async (stack) => {
        const { op: first, owner } = await newUserOp(stack);
        const hash = await stack.deployer.writeContract({
          address: stack.entryPoint,
          abi: entryPointAbi,
          functionName: "handleOps",
          args: [[toPackedUserOperation(await sponsoredOp(stack, first, owner))], stack.beneficiary],
        });
        await stack.publicClient.waitForTransactionReceipt({ hash });
        const { op } = await newUserOp(stack, { owner, nonce: 1n });
        assert.equal(op.factory, undefined, "carries no initCode");
        return sponsoredOp(stack, op, owner);
      },
    };
    if (version === "0.8") {
      scenarios["an EIP-7702 account's op, whose initCode is the 0x7702 marker"] = async (stack) => {
        const eoa = privateKeyToAccount(generatePrivateKey());
        const clients = { publicClient: stack.publicClient, walletClient: stack.deployer };
        const delegate = await deployArtifact(aaArtifact("0.8", "Simple7702Account"), [], clients);
        const authorization = await eoa.signAuthorization({ address: delegate, chainId: stack.chainId, nonce: 0 });
        const hash = await stack.deployer.sendTransaction({
          account: stack.deployer.account,
          chain: stack.deployer.chain,
          to: eoa.address,
          authorizationList: [authorization],
        });
        await stack.publicClient.waitForTransactionReceipt({ hash });
        const { op } = await newUserOp(stack);
        const callData = encodeFunctionData({ abi: aaArtifact("0.8", "Simple7702Account").abi, functionName: "execute", args: [TARGET, 0n, "0x"] });
        const op7702: UserOperation<"0.7"> = { ...op, sender: eoa.address, factory: "0x7702", factoryData: undefined, callData, authorization };
        return sponsoredOp(stack, op7702, eoa);
      };
    }

    it("finds the signer set where the compiler's storage layout puts it", async () => {
      const stack = await load();
      const at = (slot: Hex | bigint) =>
        stack.publicClient.getStorageAt({ address: stack.paymaster.address, slot: typeof slot === "bigint" ? numberToHex(slot, { size: 32 }) : slot });
      const signerSlot = mappingSlot(stack.signer.address, positionsSlot);
      assert.equal(BigInt((await at(signerSlot))!), 1n, "_positions[signer] is its 1-based index, so non-zero");
      assert.equal(BigInt((await at(valuesSlot))!), 1n, "_values holds one signer");
      assert.equal(BigInt((await at(arrayElementSlot(valuesSlot, 0n)))!), BigInt(stack.signer.address), "_values[0] is the signer");
      assert.equal(BigInt((await at(mappingSlot(stack.stranger.account.address, positionsSlot)))!), 0n, "a non-signer's slot is empty");
    });

    for (const [scenario, build] of Object.entries(scenarios)) {
      it(`follows the staked-paymaster rules for ${scenario}`, async () => {
        const stack = await load();
        const op = await build(stack);
        const { result, root } = await traceFrames(stack, op);
        assert.equal(result.failed, false, "handleOps succeeds, so the paymaster accepted the op");

        const frame = paymasterValidationFrame(stack, root);
        const phase = flattenFrames(frame);
        assert.equal(
          findCalls(root, { from: stack.entryPoint, to: stack.paymaster.address }).length,
          1,
          "the paymaster runs once: the empty context means no postOp",
        );

        // The entry CALL, read with the stack's top last: target below gas, gas on top.
        assert.equal(frame.kind, "CALL");
        assert.equal(frame.value, 0n);
        assert.equal(frame.gas, op.paymasterVerificationGasLimit, "the gas argument is paymasterVerificationGasLimit");
        assert.equal(frame.outOfGas, false);

        const rules = await paymasterRules(stack, op, phase);
        assert.equal(rules.staked, true, "the fixture's paymaster is staked");
        const violations = checkErc7562(phase, rules);
        assert.deepEqual(violations, [], violations.map((v) => `${v.rule} ${v.op}@${v.pc}: ${v.detail}`).join("\n"));

        const histogram = opcodeHistogram(phase);
        // OP-011 (and the BLOBHASH/BLOBBASEFEE extension), named one by one so a failure names the opcode.
        for (const banned of [
          "GASPRICE", "GASLIMIT", "DIFFICULTY", "PREVRANDAO", "TIMESTAMP", "BASEFEE", "BLOCKHASH", "NUMBER", "ORIGIN",
          "COINBASE", "CREATE", "SELFDESTRUCT", "INVALID", "BLOBHASH", "BLOBBASEFEE",
        ]) {
          assert.equal(histogram[banned], undefined, `OP-011: ${banned} is banned in validation`);
        }
        assert.equal(histogram.CREATE2, undefined, "OP-031: CREATE2 only deploys the sender, from the factory");
        assert.equal(histogram.BALANCE ?? histogram.SELFBALANCE, undefined, "OP-080: allowed when staked, but unused");
        for (const f of phase) {
          f.steps.forEach((step, k) => {
            if (step.op === "GAS") assert.equal(f.steps[k + 1]?.op, "STATICCALL", "OP-012: GAS feeds the next call");
          });
        }

        // The only call out is ecrecover, without value and without running code (a precompile).
        const calls = phase.slice(1);
        assert.deepEqual(
          calls.map((c) => ({ kind: c.kind, to: c.codeAddress, value: c.value, entered: c.entered })),
          [{ kind: "STATICCALL", to: ECRECOVER, value: 0n, entered: false }],
          "OP-061/OP-062: one STATICCALL to the ecrecover precompile",
        );

        // OP-041/OP-042: code is read only for a 7702 sender, to bind its delegate.
        const extcode = codeAccesses(phase);
        if (op.factory === "0x7702") {
          assert.deepEqual(extcode.map((a) => [a.op, a.target]), [["EXTCODECOPY", op.sender]]);
          assert.match((await stack.publicClient.getCode({ address: op.sender }))!, /^0xef0100/, "the sender holds a delegation, so it has code");
        } else {
          assert.deepEqual(extcode, [], "no EXTCODE* for a factory or deployed account");
        }

        // STO-031: one SLOAD of our own storage, _signers._positions[signer], and nothing written.
        const expectedSlot = mappingSlot(stack.signer.address, positionsSlot);
        const storage = storageAccesses(phase);
        assert.deepEqual(
          storage.map(({ pc: _pc, ...access }) => access),
          [{ op: "SLOAD", address: getAddress(stack.paymaster.address), slot: expectedSlot, value: pad("0x01", { size: 32 }) }],
          "exactly one SLOAD: keccak256(abi.encode(recoveredSigner, _positions slot))",
        );
        const preimage = `${pad(stack.signer.address, { size: 32 })}${numberToHex(positionsSlot, { size: 32 }).slice(2)}`.toLowerCase();
        assert.ok(
          keccakPreimages(phase).some((p) => p.toLowerCase() === preimage),
          "the slot was hashed from the recovered signer and the _positions slot",
        );
        assert.equal(storage.filter((a) => a.op !== "SLOAD").length, 0, "no SSTORE, TLOAD or TSTORE: validation is view");

        // Cross-check the frame isolation against EDR's native erc7562Tracer.
        const native = await trace<Erc7562TracerCall>(stack, op, { tracer: "erc7562Tracer" });
        const [nativeFrame] = findTracerCall(native, stack.entryPoint, stack.paymaster.address, validatePaymasterUserOpSelector(stack));
        assert.ok(nativeFrame, "erc7562Tracer sees the same call");
        assert.equal(BigInt(nativeFrame.gas), frame.gas);
        assert.deepEqual(Object.fromEntries(Object.entries(nativeFrame.usedOpcodes).map(([k, v]) => [Number(k), v])), byOpcodeNumber(histogram));
        assert.deepEqual(Object.keys(nativeFrame.accessedSlots.reads), [expectedSlot]);
        assert.deepEqual(
          [nativeFrame.accessedSlots.writes, nativeFrame.accessedSlots.transientReads, nativeFrame.accessedSlots.transientWrites],
          [{}, {}, {}],
        );
        assert.deepEqual(nativeFrame.extCodeAccessInfo.map((a) => getAddress(a)), [...new Set(extcode.map((a) => a.target))]);
        assert.deepEqual((nativeFrame.calls ?? []).map((c) => [c.type, getAddress(c.to)]), [["STATICCALL", ECRECOVER]]);

        summary.push(
          `v${version}, ${scenario}: ${phase.reduce((n, f) => n + f.steps.length, 0)} steps, no violations`,
          ...storage.map((a) => `  ${a.op} ${a.address} slot ${a.slot} = ${BigInt(a.value!)} (_signers._positions[${stack.signer.address}], _positions at slot ${positionsSlot})`),
          ...calls.map((c) => `  ${c.kind} ${c.codeAddress} value ${c.value}${c.entered ? "" : " (precompile, no frame)"}`),
          ...extcode.map((a) => `  ${a.op} ${a.target} (the sender)`),
          `  opcodes: ${Object.entries(histogram).map(([name, n]) => `${name}×${n}`).join(" ")}`,
        );
      });
    }

    describe("the checker catches violations in real traces", () => {
      it("reports OP-020 when the paymaster runs out of gas", async () => {
        const stack = await load();
        const { op, owner } = await newUserOp(stack);
        const starved = await sponsoredOp(stack, { ...op, paymasterVerificationGasLimit: 3_000n }, owner);
        const { result, root } = await traceFrames(stack, starved);
        assert.equal(result.failed, true, "handleOps reverts with AA33");
        const phase = flattenFrames(paymasterValidationFrame(stack, root));
        const rules = await paymasterRules(stack, starved, phase);
        assert.deepEqual(checkErc7562(phase, rules).map((v) => v.rule), ["OP-020"]);
      });

      it("reports STO-031 for the signer-set SLOAD if the paymaster were unstaked", async () => {
        const stack = await load();
        const { op, owner } = await newUserOp(stack);
        const signed = await sponsoredOp(stack, op, owner);
        const { root } = await traceFrames(stack, signed);
        const phase = flattenFrames(paymasterValidationFrame(stack, root));
        const rules = { ...(await paymasterRules(stack, signed, phase)), staked: false };
        const violations = checkErc7562(phase, rules);
        assert.deepEqual(violations.map((v) => [v.rule, v.op]), [["STO-031", "SLOAD"]]);
      });

      it("sees the EntryPoint's own TIMESTAMP and bare GAS, outside the paymaster frame", async () => {
        const stack = await load();
        const { op, owner } = await newUserOp(stack);
        const signed = await sponsoredOp(stack, op, owner);
        const { root } = await traceFrames(stack, signed);
        const rules = await paymasterRules(stack, signed, [root]);
        const rulesHit = new Set(checkErc7562([root], { ...rules, entity: stack.entryPoint }).map((v) => `${v.rule} ${v.op}`));
        assert.ok(rulesHit.has("OP-011 TIMESTAMP"), "the EntryPoint reads block.timestamp to check validity windows");
        assert.ok(rulesHit.has("OP-012 GAS"), "the EntryPoint measures gasleft()");
      });
    });
  });
}

describe("checkErc7562 on synthetic struct logs", () => {
  const ENTRY_POINT = getAddress("0x00000000000000000000000000000000000e0e0e");
  const PAYMASTER = getAddress("0x000000000000000000000000000000000000a7a7");
  const SENDER = getAddress("0x000000000000000000000000000000000000acc0");
  const FACTORY = getAddress("0x000000000000000000000000000000000000fac7");
  const OTHER = getAddress("0x0000000000000000000000000000000000c0ffee");
  const LIBRARY = getAddress("0x000000000000000000000000000000000000b1b1");
  const EMPTY = getAddress("0x000000000000000000000000000000000000dead");
  const VALIDATE = "0x52b7512c" as Hex;
  const DEPOSIT_TO = toFunctionSelector("depositTo(address)");

  type Item = StructLog | Item[];
  let pc = 0;
  /** One step; `stack` is given top last, as the struct logger writes it. */
  const step = (depth: number, op: string, stack: bigint[] = [], extra: Partial<StructLog> = {}): StructLog => ({
    pc: pc++,
    op,
    gas: 100_000,
    gasCost: 3,
    depth,
    stack: stack.map((v) => numberToHex(v)),
    ...extra,
  });
  const memoryOf = (data: Hex) => (data.slice(2).padEnd(Math.ceil((data.length - 2) / 64) * 64, "0").match(/.{64}/g) ?? []).map((w) => `0x${w}`);
  /** A call-family step at `depth` with calldata at memory offset 0, followed by the callee's steps. */
  const call = (depth: number, kind: "CALL" | "STATICCALL" | "DELEGATECALL", to: Address, body: Item[], { value = 0n, input = "0x" as Hex } = {}): Item[] => {
    const length = BigInt((input.length - 2) / 2);
    const args = kind === "CALL" ? [value, BigInt(to), 50_000n] : [BigInt(to), 50_000n];
    return [step(depth, kind, [0n, 0n, length, 0n, ...args], { memory: memoryOf(input) }), ...body];
  };
  const flat = (items: Item[]): StructLog[] => items.flatMap((i) => (Array.isArray(i) ? flat(i) : [i]));
  /** The EntryPoint calling validatePaymasterUserOp with `body` as the paymaster's steps. */
  const validation = (...body: Item[]): StructLog[] =>
    flat([step(1, "PUSH1"), call(1, "CALL", PAYMASTER, [...body, step(2, "RETURN")], { input: VALIDATE }), step(1, "STOP")]);

  const rules: Erc7562Rules = {
    role: "paymaster",
    entity: PAYMASTER,
    staked: true,
    sender: SENDER,
    entryPoint: ENTRY_POINT,
    entities: [FACTORY, PAYMASTER],
    senderExists: true,
    hasCode: (a) => [ENTRY_POINT, PAYMASTER, SENDER, FACTORY, OTHER, LIBRARY].includes(a),
  };
  const check = (logs: StructLog[], overrides: Partial<Erc7562Rules> = {}) => {
    const root = buildFrames(logs, { from: EMPTY, to: ENTRY_POINT });
    const [frame] = findCalls(root, { from: ENTRY_POINT, to: PAYMASTER, selector: VALIDATE });
    return checkErc7562(flattenFrames(frame), { ...rules, ...overrides }).map((v) => v.rule);
  };
  // Our frame's own shape: GAS feeding the ecrecover STATICCALL, then one SLOAD of our own storage.
  const ecrecover = [step(2, "GAS"), ...call(2, "STATICCALL", ECRECOVER, [])];
  const clean = [...ecrecover, step(2, "SLOAD", [7n]), step(2, "PUSH1", [1n])];

  it("finds nothing in a clean validation shaped like ours", () => {
    assert.deepEqual(check(validation(...clean)), []);
  });

  it("derives frame addresses from the call's stack arguments, top last", () => {
    const logs = validation(...call(2, "DELEGATECALL", LIBRARY, [step(3, "SLOAD", [9n]), step(3, "RETURN")]), ...call(2, "STATICCALL", OTHER, [step(3, "SLOAD", [9n]), step(3, "RETURN")]));
    const root = buildFrames(logs, { from: EMPTY, to: ENTRY_POINT });
    const [frame] = findCalls(root, { from: ENTRY_POINT, to: PAYMASTER, selector: VALIDATE });
    assert.equal(stackItem(logs[1], 1), BigInt(PAYMASTER), "the target sits below gas");
    assert.deepEqual(
      flattenFrames(frame).map((f) => [f.kind, f.codeAddress, f.address]),
      [["CALL", PAYMASTER, PAYMASTER], ["DELEGATECALL", LIBRARY, PAYMASTER], ["STATICCALL", OTHER, OTHER]],
    );
    assert.deepEqual(storageAccesses(flattenFrames(frame)).map((a) => a.address), [PAYMASTER, OTHER], "a library's SLOAD is ours");
  });

  const bannedOpcodes = [
    "ORIGIN", "GASPRICE", "BLOCKHASH", "COINBASE", "TIMESTAMP", "NUMBER", "DIFFICULTY", "PREVRANDAO", "GASLIMIT",
    "BASEFEE", "BLOBHASH", "BLOBBASEFEE", "CREATE", "INVALID", "SELFDESTRUCT",
  ];
  for (const op of bannedOpcodes) {
    it(`reports OP-011 for ${op} in the paymaster frame`, () => {
      assert.deepEqual(check(validation(...clean, step(2, op, [0n, 0n, 0n]))), ["OP-011"]);
    });
  }

  const senderKey = (slot: bigint) => `${pad(SENDER, { size: 32 })}${numberToHex(slot, { size: 32 }).slice(2)}` as Hex;
  const cases: [string, Item[], Partial<Erc7562Rules>, string[]][] = [
    ["GAS followed by arithmetic", [step(2, "GAS"), step(2, "ADD")], {}, ["OP-012"]],
    ["GAS as the frame's last opcode", [step(2, "GAS")], {}, ["OP-012"]],
    ["an opcode no fork assigns", [step(2, "OPCODE_0xEF")], {}, ["OP-013"]],
    ["running out of gas", [step(2, "SLOAD", [7n], { gasCost: 2100, gas: 100, error: "Some(OutOfGas)" })], {}, ["OP-020"]],
    ["CREATE2 outside the factory", [step(2, "CREATE2", [0n, 0n, 0n, 0n]), step(2, "PUSH1", [BigInt(OTHER)])], {}, ["OP-031"]],
    ["EXTCODESIZE of an address with no code", [step(2, "EXTCODESIZE", [BigInt(EMPTY)]), step(2, "ISZERO", [0n])], {}, ["OP-041"]],
    ["EXTCODECOPY of an address with no code", [step(2, "EXTCODECOPY", [0n, 0n, 0n, BigInt(EMPTY)])], {}, ["OP-041"]],
    ["a CALL to an address with no code", call(2, "CALL", EMPTY, []), {}, ["OP-041"]],
    ["EXTCODESIZE of the undeployed sender (OP-042 allows it)", [step(2, "EXTCODESIZE", [BigInt(SENDER)]), step(2, "ISZERO", [0n])], {}, []],
    ["EXTCODESIZE ISZERO on the EntryPoint (OP-051 allows it)", [step(2, "EXTCODESIZE", [BigInt(ENTRY_POINT)]), step(2, "ISZERO", [1n])], {}, []],
    ["EXTCODEHASH of the EntryPoint", [step(2, "EXTCODEHASH", [BigInt(ENTRY_POINT)]), step(2, "POP", [1n])], {}, ["OP-054"]],
    ["a depositTo call into the EntryPoint from the paymaster", call(2, "CALL", ENTRY_POINT, [step(3, "STOP")], { input: DEPOSIT_TO }), {}, ["OP-054"]],
    ["a CALL with value", call(2, "CALL", OTHER, [step(3, "STOP")], { value: 1n }), {}, ["OP-061"]],
    ["a call to a precompile outside 0x01..0x09", call(2, "STATICCALL", getAddress("0x000000000000000000000000000000000000000a"), []), {}, ["OP-062"]],
    ["BALANCE in an unstaked paymaster", [step(2, "BALANCE", [BigInt(OTHER)])], { staked: false }, ["OP-080"]],
    ["SELFBALANCE in a staked paymaster", [step(2, "SELFBALANCE")], {}, []],
    ["an SLOAD of its own storage while unstaked", [step(2, "SLOAD", [7n])], { staked: false }, ["STO-031"]],
    ["an SLOAD through a library while unstaked", call(2, "DELEGATECALL", LIBRARY, [step(3, "SLOAD", [7n]), step(3, "STOP")]), { staked: false }, ["STO-031"]],
    ["an SLOAD of another contract's storage while unstaked", call(2, "STATICCALL", OTHER, [step(3, "SLOAD", [5n]), step(3, "STOP")]), { staked: false }, ["STO-033"]],
    ["an SLOAD of another contract's storage while staked (STO-033 allows it)", call(2, "STATICCALL", OTHER, [step(3, "SLOAD", [5n]), step(3, "STOP")]), {}, []],
    ["an SLOAD of the factory's storage", call(2, "STATICCALL", FACTORY, [step(3, "SLOAD", [5n]), step(3, "STOP")]), {}, ["STO-033"]],
    ["an SSTORE to another contract's storage", call(2, "CALL", OTHER, [step(3, "SSTORE", [1n, 5n]), step(3, "STOP")]), {}, ["STO-032"]],
    ["a TSTORE to another contract (OP-070: like storage)", call(2, "CALL", OTHER, [step(3, "TSTORE", [1n, 5n]), step(3, "STOP")]), {}, ["STO-032"]],
    [
      "an SSTORE to the sender's mapping entry in another contract",
      [step(2, "KECCAK256", [64n, 0n], { memory: memoryOf(senderKey(3n)) }), ...call(2, "CALL", OTHER, [step(3, "SSTORE", [1n, BigInt(mappingSlot(SENDER, 3n)) + 1n]), step(3, "STOP")])],
      {},
      [],
    ],
    [
      "the same SSTORE before the sender exists, with an unstaked factory",
      [step(2, "KECCAK256", [64n, 0n], { memory: memoryOf(senderKey(3n)) }), ...call(2, "CALL", OTHER, [step(3, "SSTORE", [1n, BigInt(mappingSlot(SENDER, 3n)) + 1n]), step(3, "STOP")])],
      { senderExists: false, factoryStaked: false },
      ["STO-022"],
    ],
  ];
  for (const [name, body, overrides, expected] of cases) {
    it(`reports ${expected.length ? expected.join(", ") : "nothing"} for ${name}`, () => {
      assert.deepEqual(check(validation(...ecrecover, ...body), overrides), expected);
    });
  }

  it("reports each violation of a mixed frame with its rule id", () => {
    const logs = validation(
      step(2, "TIMESTAMP"),
      ...call(2, "STATICCALL", OTHER, [step(3, "SLOAD", [5n]), step(3, "STOP")]),
      step(2, "GAS"),
      step(2, "POP", [1n]),
    );
    assert.deepEqual(check(logs, { staked: false }), ["OP-011", "OP-012", "STO-033"]);
  });
});

after(() => {
  if (summary.length) console.log(["ERC-7562: the paymaster's validatePaymasterUserOp frame as traced", ...summary].join("\n"));
});
