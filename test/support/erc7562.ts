// ERC-7562 validation-scope checks over Geth-style struct logs (`debug_traceCall` with the default
// tracer). `buildFrames` turns the flat step list into a call tree whose frames know their own address;
// `checkErc7562` is a pure function of those frames and the op's entities, so it can be fed synthetic
// logs in tests. Rule ids and wording follow ERCS/erc-7562.md; where the reference bundler
// (eth-infinitism/bundler, ERC7562BannedOpcodes.ts) is stricter than the text, the stricter list is used.
import { type Address, type Hex, getAddress, keccak256, numberToHex, pad, size, slice, toFunctionSelector } from "viem";

/** One step of the struct logger. EDR, like Geth, lists the stack bottom first: the top is the last item. */
export type StructLog = {
  pc: number;
  op: string;
  gas: number;
  gasCost: number;
  depth: number;
  stack?: string[];
  /** 32-byte words, present with `enableMemory: true`. */
  memory?: string[];
  storage?: Record<string, string>;
  /** EDR writes e.g. "Some(OutOfGas)" on the step that failed. */
  error?: string;
};

export type FrameKind = "CALL" | "STATICCALL" | "DELEGATECALL" | "CALLCODE" | "CREATE" | "CREATE2";

/** A call frame rebuilt from struct logs. */
export type Frame = {
  kind: FrameKind;
  /** Storage context: whose storage SLOAD and SSTORE touch (the caller's, for DELEGATECALL and CALLCODE). */
  address: Address;
  /** Whose code runs: the call target. */
  codeAddress: Address;
  /** The address that executed the call opcode. */
  from: Address;
  /** Wei the call opcode sends (DELEGATECALL and STATICCALL send none). */
  value: bigint;
  /** Gas argument of the call opcode. */
  gas: bigint;
  /** Calldata (or init code), when the trace carries memory. */
  input?: Hex;
  depth: number;
  /** Whether any code ran in the frame: false for precompiles, code-less accounts and calls that failed to start. */
  entered: boolean;
  /** pc of the opcode in the parent that made this call; -1 for the root. */
  callPc: number;
  /** This frame's own steps, without those of its sub-calls. */
  steps: StructLog[];
  calls: Frame[];
  outOfGas: boolean;
  /** The error of the step that ended the frame, if it failed by an exceptional halt. */
  error?: string;
};

/** Opcode names by number, with the aliases tracers use; anything else is unassigned (OP-013). */
const OPCODES: Record<number, string[]> = {
  0x00: ["STOP"], 0x01: ["ADD"], 0x02: ["MUL"], 0x03: ["SUB"], 0x04: ["DIV"], 0x05: ["SDIV"], 0x06: ["MOD"],
  0x07: ["SMOD"], 0x08: ["ADDMOD"], 0x09: ["MULMOD"], 0x0a: ["EXP"], 0x0b: ["SIGNEXTEND"],
  0x10: ["LT"], 0x11: ["GT"], 0x12: ["SLT"], 0x13: ["SGT"], 0x14: ["EQ"], 0x15: ["ISZERO"], 0x16: ["AND"],
  0x17: ["OR"], 0x18: ["XOR"], 0x19: ["NOT"], 0x1a: ["BYTE"], 0x1b: ["SHL"], 0x1c: ["SHR"], 0x1d: ["SAR"], 0x1e: ["CLZ"],
  0x20: ["KECCAK256", "SHA3"],
  0x30: ["ADDRESS"], 0x31: ["BALANCE"], 0x32: ["ORIGIN"], 0x33: ["CALLER"], 0x34: ["CALLVALUE"],
  0x35: ["CALLDATALOAD"], 0x36: ["CALLDATASIZE"], 0x37: ["CALLDATACOPY"], 0x38: ["CODESIZE"], 0x39: ["CODECOPY"],
  0x3a: ["GASPRICE"], 0x3b: ["EXTCODESIZE"], 0x3c: ["EXTCODECOPY"], 0x3d: ["RETURNDATASIZE"],
  0x3e: ["RETURNDATACOPY"], 0x3f: ["EXTCODEHASH"],
  0x40: ["BLOCKHASH"], 0x41: ["COINBASE"], 0x42: ["TIMESTAMP"], 0x43: ["NUMBER"],
  0x44: ["PREVRANDAO", "DIFFICULTY", "RANDOM"], 0x45: ["GASLIMIT"], 0x46: ["CHAINID"], 0x47: ["SELFBALANCE"],
  0x48: ["BASEFEE"], 0x49: ["BLOBHASH"], 0x4a: ["BLOBBASEFEE"],
  0x50: ["POP"], 0x51: ["MLOAD"], 0x52: ["MSTORE"], 0x53: ["MSTORE8"], 0x54: ["SLOAD"], 0x55: ["SSTORE"],
  0x56: ["JUMP"], 0x57: ["JUMPI"], 0x58: ["PC"], 0x59: ["MSIZE"], 0x5a: ["GAS"], 0x5b: ["JUMPDEST"],
  0x5c: ["TLOAD"], 0x5d: ["TSTORE"], 0x5e: ["MCOPY"], 0x5f: ["PUSH0"],
  ...Object.fromEntries(Array.from({ length: 32 }, (_, i) => [0x60 + i, [`PUSH${i + 1}`]])),
  ...Object.fromEntries(Array.from({ length: 16 }, (_, i) => [0x80 + i, [`DUP${i + 1}`]])),
  ...Object.fromEntries(Array.from({ length: 16 }, (_, i) => [0x90 + i, [`SWAP${i + 1}`]])),
  ...Object.fromEntries(Array.from({ length: 5 }, (_, i) => [0xa0 + i, [`LOG${i}`]])),
  0xf0: ["CREATE"], 0xf1: ["CALL"], 0xf2: ["CALLCODE"], 0xf3: ["RETURN"], 0xf4: ["DELEGATECALL"], 0xf5: ["CREATE2"],
  0xfa: ["STATICCALL"], 0xfd: ["REVERT"], 0xfe: ["INVALID"], 0xff: ["SELFDESTRUCT", "SUICIDE"],
};
const opcodeByName = new Map(Object.entries(OPCODES).flatMap(([code, names]) => names.map((n) => [n, Number(code)])));

/** The opcode number of a struct-log op name, or undefined for a name no fork assigns. */
export function opcodeNumber(name: string): number | undefined {
  return opcodeByName.get(name);
}

const CALLS = new Set(["CALL", "STATICCALL", "DELEGATECALL", "CALLCODE"]);
const CREATES = new Set(["CREATE", "CREATE2"]);
const EXTCODE = new Set(["EXTCODESIZE", "EXTCODECOPY", "EXTCODEHASH"]);
const STORAGE = new Set(["SLOAD", "SSTORE", "TLOAD", "TSTORE"]);

/**
 * OP-011 as written in the ERC, plus BLOBHASH and BLOBBASEFEE, which the reference bundler also bans for
 * EntryPoint v0.7 and v0.8 (environment opcodes added by Cancun after the list was written).
 */
export const BANNED_OPCODES: ReadonlySet<number> = new Set([
  0x32, 0x3a, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x48, 0x49, 0x4a, 0xf0, 0xfe, 0xff,
]);
/** OP-080: allowed only in a staked entity's phase. */
export const STAKED_ONLY_OPCODES: ReadonlySet<number> = new Set([0x31, 0x47]);

/** OP-062: the core precompiles 0x01..0x09 (RIP-7212's 0x100 only where a network adopted it). */
export const CORE_PRECOMPILES: readonly Address[] = Array.from({ length: 9 }, (_, i) => getAddress(pad(numberToHex(i + 1), { size: 20 })));

/** keccak256("") : EXTCODEHASH of an account that exists but holds no code. */
const EMPTY_CODE_HASH = 0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470n;

const word = (value: string | undefined): bigint => (value === undefined ? 0n : BigInt(value));
const toAddress = (value: string | undefined): Address => getAddress(pad(numberToHex(word(value) & ((1n << 160n) - 1n)), { size: 20 }));
const same = (a: string | undefined, b: string | undefined) => a !== undefined && b !== undefined && a.toLowerCase() === b.toLowerCase();

/** The n-th stack item from the top (0 = top), given the struct logger's bottom-first order. */
export function stackItem(step: StructLog, n: number): bigint {
  const stack = step.stack ?? [];
  return word(stack[stack.length - 1 - n]);
}

/** `size` bytes of the step's memory from `offset`, zero-filled past its end; undefined without memory. */
function readMemory(step: StructLog, offset: bigint, length: bigint): Hex | undefined {
  if (!step.memory) return undefined;
  if (length === 0n) return "0x";
  const all = step.memory.map((w) => w.replace(/^0x/, "")).join("");
  const start = Number(offset) * 2;
  const end = start + Number(length) * 2;
  return `0x${all.slice(start, end).padEnd(end - start, "0")}`;
}

/** The call or create a call-family step starts, before knowing whether code ran. */
function describeCall(step: StructLog, parent: Frame): Frame {
  const kind = step.op as FrameKind;
  const base = { kind, from: parent.address, depth: step.depth + 1, entered: false, callPc: step.pc, steps: [], calls: [], outOfGas: false };
  if (CREATES.has(kind)) {
    // Address unknown until the frame returns; see buildFrames.
    const input = readMemory(step, stackItem(step, 1), stackItem(step, 2));
    return { ...base, address: parent.address, codeAddress: parent.address, value: stackItem(step, 0), gas: 0n, input };
  }
  const target = toAddress(step.stack?.[step.stack.length - 2]);
  const withValue = kind === "CALL" || kind === "CALLCODE";
  const args = withValue ? 3 : 2;
  const input = readMemory(step, stackItem(step, args), stackItem(step, args + 1));
  return {
    ...base,
    address: kind === "DELEGATECALL" || kind === "CALLCODE" ? parent.address : target,
    codeAddress: target,
    value: withValue ? stackItem(step, 2) : 0n,
    gas: stackItem(step, 0),
    input,
  };
}

/** Rebuilds the call tree of a traced call to `to` from its struct logs. */
export function buildFrames(logs: readonly StructLog[], tx: { from: Address; to: Address; input?: Hex; value?: bigint; gas?: bigint }): Frame {
  const root: Frame = {
    kind: "CALL",
    address: getAddress(tx.to),
    codeAddress: getAddress(tx.to),
    from: getAddress(tx.from),
    value: tx.value ?? 0n,
    gas: tx.gas ?? 0n,
    input: tx.input,
    depth: logs[0]?.depth ?? 1,
    entered: logs.length > 0,
    callPc: -1,
    steps: [],
    calls: [],
    outOfGas: false,
  };
  const open: Frame[] = [root];
  const close = (frame: Frame, next: StructLog | undefined) => {
    const last = frame.steps.at(-1);
    if (last?.error) frame.error = last.error;
    // A created contract's address is what the creating opcode leaves on the parent's stack.
    if (CREATES.has(frame.kind) && next) frame.address = frame.codeAddress = toAddress(next.stack?.at(-1));
  };
  for (let i = 0; i < logs.length; i++) {
    const step = logs[i];
    while (open.length > 1 && open[open.length - 1].depth > step.depth) close(open.pop()!, step);
    const frame = open[open.length - 1];
    if (frame.depth !== step.depth) throw new Error(`struct log ${i} jumps from depth ${frame.depth} to ${step.depth}`);
    frame.steps.push(step);
    if (step.error && /out ?of ?gas/i.test(step.error)) frame.outOfGas = true;
    if (!CALLS.has(step.op) && !CREATES.has(step.op)) continue;
    const child = describeCall(step, frame);
    frame.calls.push(child);
    const next = logs[i + 1];
    if (next && next.depth === step.depth + 1) {
      child.entered = true;
      open.push(child);
    } else {
      close(child, next);
    }
  }
  while (open.length > 1) close(open.pop()!, undefined);
  close(root, undefined);
  return root;
}

/** `frame` and every frame below it, in execution order. */
export function flattenFrames(frame: Frame): Frame[] {
  return [frame, ...frame.calls.flatMap(flattenFrames)];
}

/** Every frame whose code `to` ran when called by `from` with calldata starting with `selector`. */
export function findCalls(root: Frame, { from, to, selector }: { from: Address; to: Address; selector?: Hex }): Frame[] {
  return flattenFrames(root).filter(
    (f) => same(f.from, from) && same(f.codeAddress, to) && (!selector || (f.input !== undefined && same(slice(f.input, 0, 4), selector))),
  );
}

/** The selector of a Solidity signature such as `validatePaymasterUserOp(...)`. */
export const selectorOf = (signature: string): Hex => toFunctionSelector(signature);

/** A storage (or transient storage, OP-070) access made in a frame. */
export type StorageAccess = {
  op: "SLOAD" | "SSTORE" | "TLOAD" | "TSTORE";
  /** Whose storage: the frame's storage context. */
  address: Address;
  slot: Hex;
  /** Value read (from the next step's stack) or written. */
  value?: Hex;
  pc: number;
};

/** Storage accesses of one frame, with that frame. */
function frameStorage(frame: Frame): { access: StorageAccess; frame: Frame }[] {
  return frame.steps.flatMap((step, k) => {
    if (!STORAGE.has(step.op)) return [];
    const op = step.op as StorageAccess["op"];
    const isWrite = op === "SSTORE" || op === "TSTORE";
    const after = frame.steps[k + 1];
    const value = isWrite ? stackItem(step, 1) : after ? stackItem(after, 0) : undefined;
    const access: StorageAccess = {
      op,
      address: frame.address,
      slot: pad(numberToHex(stackItem(step, 0)), { size: 32 }),
      value: value === undefined ? undefined : pad(numberToHex(value), { size: 32 }),
      pc: step.pc,
    };
    return [{ access, frame }];
  });
}

/** All storage accesses in `frames`, in execution order. */
export function storageAccesses(frames: readonly Frame[]): StorageAccess[] {
  return frames.flatMap((frame) => frameStorage(frame).map(({ access }) => access));
}

/** How often each opcode ran in `frames`. */
export function opcodeHistogram(frames: readonly Frame[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const step of frames.flatMap((f) => f.steps)) counts[step.op] = (counts[step.op] ?? 0) + 1;
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => a.localeCompare(b)));
}

/** An EXTCODESIZE, EXTCODECOPY or EXTCODEHASH and, for the first and last, what it returned. */
export type CodeAccess = { op: string; frame: Frame; target: Address; result?: bigint; next?: StructLog; pc: number };

/** Every EXTCODE* access in `frames`. */
export function codeAccesses(frames: readonly Frame[]): CodeAccess[] {
  return frames.flatMap((frame) =>
    frame.steps.flatMap((step, k): CodeAccess[] => {
      if (!EXTCODE.has(step.op)) return [];
      const next = frame.steps[k + 1];
      const result = step.op !== "EXTCODECOPY" && next ? stackItem(next, 0) : undefined;
      return [{ op: step.op, frame, target: toAddress(step.stack?.at(-1)), result, next, pc: step.pc }];
    }),
  );
}

/** Inputs of every KECCAK256 in `frames` (needs memory in the trace). */
export function keccakPreimages(frames: readonly Frame[]): Hex[] {
  return frames.flatMap((frame) =>
    frame.steps.flatMap((step) => {
      if (step.op !== "KECCAK256" && step.op !== "SHA3") return [];
      const input = readMemory(step, stackItem(step, 0), stackItem(step, 1));
      return input ? [input] : [];
    }),
  );
}

export type Erc7562RuleId =
  | "OP-011" | "OP-012" | "OP-013" | "OP-020" | "OP-031" | "OP-041" | "OP-054" | "OP-061" | "OP-062" | "OP-080"
  | "STO-021" | "STO-022" | "STO-031" | "STO-032" | "STO-033";

export type Erc7562Violation = { rule: Erc7562RuleId; address: Address; op: string; pc: number; detail: string };

/** Who the phase belongs to and what the op's entities are. */
export type Erc7562Rules = {
  /** The entity whose validation phase the frames are. */
  role: "account" | "factory" | "paymaster";
  entity: Address;
  /** Stake of at least MIN_STAKE_VALUE with an unstake delay of at least MIN_UNSTAKE_DELAY. */
  staked: boolean;
  sender: Address;
  entryPoint: Address;
  /** Other entities of the op (factory, paymaster, aggregator); their storage is not "non-entity". */
  entities?: readonly Address[];
  /** False while the op's initCode is still to deploy the sender (STO-021 versus STO-022). */
  senderExists?: boolean;
  factoryStaked?: boolean;
  /** Whether `address` held code when the phase ran; used where the trace itself cannot tell (EXTCODECOPY). */
  hasCode: (address: Address) => boolean;
  /** Precompiles this network accepts (OP-062); defaults to 0x01..0x09. */
  precompiles?: readonly Address[];
};

/** Associated with `a`: the slot is `a` itself, or keccak(a ‖ x) + n with n < 128 for some hashed preimage. */
function associatedWith(slot: Hex, a: Address, preimages: readonly Hex[]): boolean {
  const value = BigInt(slot);
  if (value === BigInt(a)) return true;
  const key = pad(a, { size: 32 }).toLowerCase();
  return preimages.some((p) => {
    if (size(p) < 32 || !p.toLowerCase().startsWith(key)) return false;
    const base = BigInt(keccak256(p));
    return value >= base && value < base + 128n;
  });
}

const isSmallAddress = (a: Address) => BigInt(a) <= 0x1ffn;

/**
 * ERC-7562 violations in one entity's validation phase: `frames` are the entity's frame and all frames
 * below it (see flattenFrames). An empty result means the phase follows the rules checked here.
 */
export function checkErc7562(frames: readonly Frame[], rules: Erc7562Rules): Erc7562Violation[] {
  const violations: Erc7562Violation[] = [];
  const report = (rule: Erc7562RuleId, frame: Frame, step: Pick<StructLog, "op" | "pc">, detail: string) =>
    violations.push({ rule, address: frame.address, op: step.op, pc: step.pc, detail });
  const precompiles = rules.precompiles ?? CORE_PRECOMPILES;
  const otherEntities = (rules.entities ?? []).filter((e) => !same(e, rules.entity) && !same(e, rules.sender));

  let creates = 0;
  for (const frame of frames) {
    if (frame.outOfGas) {
      const last = frame.steps.at(-1)!;
      report("OP-020", frame, last, `out of gas in ${frame.codeAddress} (${frame.error ?? "gas exhausted"})`);
    }
    frame.steps.forEach((step, k) => {
      const code = opcodeNumber(step.op);
      if (code === undefined) return report("OP-013", frame, step, `unassigned opcode ${step.op}`);
      if (BANNED_OPCODES.has(code)) report("OP-011", frame, step, `banned opcode ${step.op}`);
      if (STAKED_ONLY_OPCODES.has(code) && !rules.staked) report("OP-080", frame, step, `${step.op} in an unstaked ${rules.role}`);
      if (step.op === "GAS") {
        const next = frame.steps[k + 1];
        if (!next || !CALLS.has(next.op)) report("OP-012", frame, step, `GAS followed by ${next?.op ?? "the end of the frame"}, not a *CALL`);
      }
    });
    for (const access of codeAccesses([frame])) {
      const step = { op: access.op, pc: access.pc };
      if (same(access.target, rules.entryPoint)) {
        // OP-051: EXTCODESIZE ISZERO on the EntryPoint is the only allowed look at it.
        if (access.op !== "EXTCODESIZE" || access.next?.op !== "ISZERO") report("OP-054", frame, step, `${access.op} on the EntryPoint`);
        continue;
      }
      if (same(access.target, rules.sender)) continue; // OP-042
      const hasCode =
        access.op === "EXTCODESIZE" ? access.result! > 0n
        : access.op === "EXTCODEHASH" ? access.result !== 0n && access.result !== EMPTY_CODE_HASH
        : rules.hasCode(access.target);
      if (!hasCode) report("OP-041", frame, step, `${access.op} on ${access.target}, which has no code`);
    }
    for (const call of frame.calls) {
      const step = { op: call.kind, pc: call.callPc };
      if (CREATES.has(call.kind)) {
        creates++;
        const allowed = call.kind === "CREATE2" && rules.role === "factory" && creates === 1 && same(call.address, rules.sender);
        if (call.kind === "CREATE2" && !allowed) report("OP-031", frame, step, `CREATE2 of ${call.address} in the ${rules.role} phase`);
        continue; // CREATE itself is OP-011, reported from the steps.
      }
      const toEntryPoint = same(call.codeAddress, rules.entryPoint);
      if (toEntryPoint) {
        const selector = call.input && size(call.input) >= 4 ? slice(call.input, 0, 4) : "0x";
        const depositTo = same(selector, selectorOf("depositTo(address)")) && rules.role !== "paymaster"; // OP-052
        const fallback = call.input === "0x" && rules.role === "account"; // OP-053
        if (!depositTo && !fallback) report("OP-054", frame, step, `${call.kind} into the EntryPoint (${selector})`);
      } else if (call.value > 0n && (call.kind === "CALL" || call.kind === "CALLCODE")) {
        report("OP-061", frame, step, `${call.kind} to ${call.codeAddress} with value ${call.value}`);
      }
      if (isSmallAddress(call.codeAddress)) {
        if (!precompiles.some((p) => same(p, call.codeAddress))) report("OP-062", frame, step, `call to precompile ${call.codeAddress}`);
      } else if (!call.entered && !toEntryPoint && !same(call.codeAddress, rules.sender)) {
        report("OP-041", frame, step, `${call.kind} to ${call.codeAddress}, which has no code`);
      }
    }
  }

  const accesses = frames.flatMap(frameStorage);
  const preimages = keccakPreimages(frames);
  const written = new Set(
    accesses.filter(({ access: a }) => a.op === "SSTORE" || a.op === "TSTORE").map(({ access: a }) => `${a.address}:${a.slot}:${a.op}`),
  );
  for (const { access, frame } of accesses) {
    const transient = access.op === "TLOAD" || access.op === "TSTORE";
    const isWrite = access.op === "SSTORE" || access.op === "TSTORE";
    const what = `${access.op} of ${access.address} slot ${access.slot}`;
    const step = { op: access.op, pc: access.pc };
    if (same(access.address, rules.sender)) continue; // STO-010
    if (same(access.address, rules.entity)) {
      if (!rules.staked) report("STO-031", frame, step, `${what}: an unstaked ${rules.role} may not use its own storage`);
      continue;
    }
    const otherEntity = otherEntities.some((e) => same(e, access.address));
    if (!otherEntity && associatedWith(access.slot, rules.sender, preimages)) {
      if (rules.senderExists ?? true) continue; // STO-021
      if (rules.factoryStaked) continue; // STO-022
      report("STO-022", frame, step, `${what}: sender-associated storage before deployment needs a staked factory`);
      continue;
    }
    if (!otherEntity && rules.staked && associatedWith(access.slot, rules.entity, preimages)) continue; // STO-032
    const readOnly = !written.has(`${access.address}:${access.slot}:${transient ? "TSTORE" : "SSTORE"}`);
    if (!otherEntity && rules.staked && readOnly) continue; // STO-033
    if (otherEntity) report("STO-033", frame, step, `${what}: storage of another entity`);
    else if (isWrite || !readOnly) report("STO-032", frame, step, `${what}: write to storage not associated with the ${rules.role}`);
    else report("STO-033", frame, step, `${what}: an unstaked ${rules.role} may not read other contracts' storage`);
  }
  return violations;
}
