// Measures what one steady-state UserOperation costs on chain when a SimpleAccount pays for itself,
// when the eth-infinitism VerifyingPaymaster sample pays, and when FiatGasPaymaster pays, on
// EntryPoint v0.7 and v0.8. The gas report (scripts/gas-report.ts) and the gas regression test
// (test/contracts/gas.test.ts) both measure through this module, so they cannot disagree.
//
// Every key, address, nonce and validity window is fixed, and ECDSA signing is deterministic
// (RFC 6979), so each run sends byte-identical bundles and measures identical gas. Steady state
// means: the accounts exist and have used nonce 0, the payers' deposits are non-zero, and the
// beneficiary already holds ether, so no measured op pays for a first write or a new account.
import { readFileSync, writeFileSync } from "node:fs";

import {
  type Abi,
  type Address,
  type Hex,
  type PublicClient,
  concat,
  encodeAbiParameters,
  getAddress,
  keccak256,
  parseAbiItem,
  parseEther,
  parseEventLogs,
  stringToHex,
  zeroAddress,
} from "viem";
import { type UserOperation, toPackedUserOperation } from "viem/account-abstraction";
import { type PrivateKeyAccount, privateKeyToAccount } from "viem/accounts";
import { z } from "zod";

import type { EntryPointVersion } from "../../service/chain/entryPoints.ts";
import { ENTRYPOINT_VERSIONS, entryPointAbi, signAsAccount, simpleAccount, sponsor } from "./aa.ts";
import { type Chain, type Stack, connectChain, deployStack, newUserOp } from "./paymasterFixture.ts";

/** Who pays for the measured operations. */
export const PAYERS = ["account", "verifyingPaymaster", "fiatGasPaymaster"] as const;
export type Payer = (typeof PAYERS)[number];

/** How the report names each payer. */
export const payerLabel: Record<Payer, string> = {
  account: "SimpleAccount, self-paying",
  verifyingPaymaster: "VerifyingPaymaster sample",
  fiatGasPaymaster: "FiatGasPaymaster",
};

/** How many ops the large bundle holds; the marginal cost per op is taken between 1 and this many. */
export const BUNDLE_SIZE = 10;

/** Gas of handleOps bundles (the transaction's gasUsed) for one payer on one EntryPoint. */
export type BundleGas = {
  /** A bundle of one op. */
  oneOp: bigint;
  /** A bundle of BUNDLE_SIZE ops, each from a different account. */
  fullBundle: bigint;
  /** What each op after the first adds: (fullBundle - oneOp) / (BUNDLE_SIZE - 1), rounded down. */
  perOp: bigint;
};

export type GasReport = Record<EntryPointVersion, Record<Payer, BundleGas>>;

/** A validity window both paymasters sign; fixed so the signed bytes never change, and far enough ahead that the chain never reaches it. */
const VALID_UNTIL = 4_102_444_800; // 2100-01-01T00:00:00Z
const VALID_AFTER = 0;

/** Each measured op's nonce: the account-deploying op used nonce 0, so the nonce slot is already non-zero. */
const STEADY_STATE_NONCE = 1n;

/** Gas limit of every handleOps transaction: ample for ten ops, and fixed so estimation plays no part. */
const BUNDLE_TX_GAS = 10_000_000n;

/** Deposits that no measured bundle comes close to exhausting. */
const PAYMASTER_DEPOSIT = parseEther("10");
const ACCOUNT_DEPOSIT = parseEther("1");

/** Fixed test keys derived from a label, so every run signs the same bytes. */
function benchKey(label: string): PrivateKeyAccount {
  return privateKeyToAccount(keccak256(stringToHex(`fiat-gas-paymaster gas bench: ${label}`)));
}

/** Signs for both paymasters, so their ops differ only in what each contract requires. */
const sponsorSigner = benchKey("sponsor signer");
const accountOwners = Array.from({ length: BUNDLE_SIZE }, (_, i) => benchKey(`account owner ${i}`));

const verifyingPaymasterContractName = { "0.7": "VerifyingPaymaster", "0.8": "VerifyingPaymasterV8" } as const;

const userOperationEvent = parseAbiItem(
  "event UserOperationEvent(bytes32 indexed userOpHash, address indexed sender, address indexed paymaster, uint256 nonce, bool success, uint256 actualGasCost, uint256 actualGasUsed)",
);

/** How one payer takes on an op: the address the EntryPoint reports as its paymaster, and what it adds to the op. */
type PayerRig = { paymaster: Address; pay(op: UserOperation<"0.7">): Promise<UserOperation<"0.7">> };

type VersionBench = { stack: Stack; payers: Record<Payer, PayerRig> };

/** Sends handleOps for `ops` as the bundler and returns its gasUsed, failing unless every op ran and `paidBy` paid for it. */
async function sendBundle(stack: Stack, ops: UserOperation<"0.7">[], paidBy: Address): Promise<bigint> {
  const hash = await stack.deployer.writeContract({
    account: stack.deployer.account!,
    chain: stack.deployer.chain,
    address: stack.entryPoint,
    abi: entryPointAbi,
    functionName: "handleOps",
    args: [ops.map((op) => toPackedUserOperation(op)), stack.beneficiary],
    gas: BUNDLE_TX_GAS,
  });
  const receipt = await stack.publicClient.waitForTransactionReceipt({ hash });
  if (receipt.status !== "success") throw new Error(`handleOps reverted (${hash})`);
  const events = parseEventLogs({ abi: [userOperationEvent], logs: receipt.logs });
  const paidAsExpected = events.filter((e) => e.args.success && getAddress(e.args.paymaster) === getAddress(paidBy));
  if (events.length !== ops.length || paidAsExpected.length !== ops.length) {
    throw new Error(`expected ${ops.length} successful ops paid by ${paidBy}, got ${JSON.stringify(events.map((e) => e.args), (_, v) => (typeof v === "bigint" ? v.toString() : v))}`);
  }
  return receipt.gasUsed;
}

/** Adds `amount` to the EntryPoint deposit of `holder`. */
async function depositTo(stack: Stack, holder: Address, amount: bigint) {
  const hash = await stack.deployer.writeContract({
    account: stack.deployer.account!,
    chain: stack.deployer.chain,
    address: stack.entryPoint,
    abi: entryPointAbi,
    functionName: "depositTo",
    args: [holder],
    value: amount,
  });
  await stack.publicClient.waitForTransactionReceipt({ hash });
}

/** Sets up one EntryPoint version: the fixture's stack, a VerifyingPaymaster, and BUNDLE_SIZE deployed accounts. */
async function prepareVersion(chain: Chain, version: EntryPointVersion): Promise<VersionBench> {
  const stack = await deployStack(chain, version);
  // The fixture's signer is a fresh random key; a fixed one keeps the signatures, and so the calldata, identical.
  const addSigner = await stack.manager.writeContract({
    account: stack.manager.account!,
    chain: stack.manager.chain,
    address: stack.paymaster.address,
    abi: stack.paymaster.abi,
    functionName: "addSigner",
    args: [sponsorSigner.address],
  });
  await stack.publicClient.waitForTransactionReceipt({ hash: addSigner });

  const verifyingPaymaster = await chain.viem.deployContract(verifyingPaymasterContractName[version], [
    stack.entryPoint,
    sponsorSigner.address,
  ]);
  await depositTo(stack, verifyingPaymaster.address, PAYMASTER_DEPOSIT);

  // Each account's first op deploys it; it is self-paid here so that no payer's measurement includes it.
  const firstOps: UserOperation<"0.7">[] = [];
  for (const owner of accountOwners) {
    const { sender } = await simpleAccount(stack.publicClient, stack.factory, owner.address);
    await depositTo(stack, sender, ACCOUNT_DEPOSIT);
    const { op } = await newUserOp(stack, { owner });
    firstOps.push(await signAsAccount(selfPaid(op), version, stack.chainId, owner));
  }
  await sendBundle(stack, firstOps, zeroAddress);

  return {
    stack,
    payers: {
      account: { paymaster: zeroAddress, pay: async (op) => selfPaid(op) },
      verifyingPaymaster: {
        paymaster: verifyingPaymaster.address,
        pay: (op) => sponsorByVerifyingPaymaster(stack.publicClient, op, verifyingPaymaster),
      },
      fiatGasPaymaster: {
        paymaster: stack.paymaster.address,
        pay: (op) =>
          sponsor(op, {
            version,
            chainId: stack.chainId,
            paymaster: stack.paymaster.address,
            signer: sponsorSigner,
            validUntil: VALID_UNTIL,
            validAfter: VALID_AFTER,
          }),
      },
    },
  };
}

/** `op` with no paymaster: the account's EntryPoint deposit covers the prefund. */
function selfPaid(op: UserOperation<"0.7">): UserOperation<"0.7"> {
  return {
    ...op,
    paymaster: undefined,
    paymasterData: undefined,
    paymasterVerificationGasLimit: undefined,
    paymasterPostOpGasLimit: undefined,
  };
}

/** Fills the paymaster fields of `op` for the VerifyingPaymaster sample: abi.encode(validUntil, validAfter) ‖ EIP-191 signature of its getHash. */
async function sponsorByVerifyingPaymaster(
  publicClient: PublicClient,
  op: UserOperation<"0.7">,
  paymaster: { address: Address; abi: Abi },
): Promise<UserOperation<"0.7">> {
  const unsigned = { ...op, paymaster: paymaster.address, paymasterData: "0x" as Hex };
  // The contract's own getHash: the report measures the sample, it does not re-implement it.
  const hash = (await publicClient.readContract({
    address: paymaster.address,
    abi: paymaster.abi,
    functionName: "getHash",
    args: [toPackedUserOperation(unsigned), VALID_UNTIL, VALID_AFTER],
  })) as Hex;
  const signature = await sponsorSigner.signMessage({ message: { raw: hash } });
  const window = encodeAbiParameters([{ type: "uint48" }, { type: "uint48" }], [VALID_UNTIL, VALID_AFTER]);
  return { ...unsigned, paymasterData: concat([window, signature]) };
}

/** The measuring rig: one chain with both EntryPoints, every payer, and deployed accounts, reset before each bundle. */
export type GasBench = {
  /** Gas of a 1-op and a BUNDLE_SIZE-op bundle paid by `payer`, each sent from the same starting state. */
  measure(version: EntryPointVersion, payer: Payer): Promise<BundleGas>;
  /** Every payer on every EntryPoint version. */
  measureAll(): Promise<GasReport>;
};

/** Deploys the rig on a new in-process chain. */
export async function createGasBench(): Promise<GasBench> {
  const chain = await connectChain();
  const benches = {} as Record<EntryPointVersion, VersionBench>;
  for (const version of ENTRYPOINT_VERSIONS) benches[version] = await prepareVersion(chain, version);
  const steadyState = await chain.networkHelpers.takeSnapshot();

  async function bundleGas(version: EntryPointVersion, payer: Payer, size: number): Promise<bigint> {
    await steadyState.restore();
    const { stack, payers } = benches[version];
    const ops: UserOperation<"0.7">[] = [];
    for (const owner of accountOwners.slice(0, size)) {
      const { op } = await newUserOp(stack, { owner, nonce: STEADY_STATE_NONCE });
      ops.push(await signAsAccount(await payers[payer].pay(op), version, stack.chainId, owner));
    }
    return sendBundle(stack, ops, payers[payer].paymaster);
  }

  // Every bundle resets the one chain, so measurements must take turns even if callers overlap them.
  let previous: Promise<unknown> = Promise.resolve();
  function measure(version: EntryPointVersion, payer: Payer): Promise<BundleGas> {
    const turn = previous.catch(() => undefined).then(async () => {
      const oneOp = await bundleGas(version, payer, 1);
      const fullBundle = await bundleGas(version, payer, BUNDLE_SIZE);
      return { oneOp, fullBundle, perOp: (fullBundle - oneOp) / BigInt(BUNDLE_SIZE - 1) };
    });
    previous = turn;
    return turn;
  }

  async function measureAll(): Promise<GasReport> {
    const report = {} as GasReport;
    for (const version of ENTRYPOINT_VERSIONS) {
      report[version] = {} as Record<Payer, BundleGas>;
      for (const payer of PAYERS) report[version][payer] = await measure(version, payer);
    }
    return report;
  }

  return { measure, measureAll };
}

/*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
/*                      COMMITTED SNAPSHOT                    */
/*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

/** The committed figures the regression test compares against. */
export const GAS_SNAPSHOT_PATH = new URL("../gas/gas-snapshot.json", import.meta.url);

const gasFigure = z.number().int().nonnegative().transform((gas) => BigInt(gas));
const bundleGasSchema = z.object({ oneOp: gasFigure, fullBundle: gasFigure, perOp: gasFigure });
const payerSchema = z.object({
  account: bundleGasSchema,
  verifyingPaymaster: bundleGasSchema,
  fiatGasPaymaster: bundleGasSchema,
});
const snapshotSchema = z.object({ "0.7": payerSchema, "0.8": payerSchema });

/** Reads the committed snapshot; gas figures become bigint here and nowhere later. */
export function readGasSnapshot(): GasReport {
  return snapshotSchema.parse(JSON.parse(readFileSync(GAS_SNAPSHOT_PATH, "utf8")));
}

/** Writes `report` as the committed snapshot (gas fits a JSON number exactly: far below 2^53). */
export function writeGasSnapshot(report: GasReport): void {
  const json = JSON.stringify(
    {
      $comment: `Gas (transaction gasUsed) of EntryPoint.handleOps with 1 and ${BUNDLE_SIZE} ops; perOp = (fullBundle - oneOp) / ${BUNDLE_SIZE - 1}. Written by GAS_SNAPSHOT_UPDATE=1 npm run gas; checked by test/contracts/gas.test.ts.`,
      ...report,
    },
    (_, value) => (typeof value === "bigint" ? Number(value) : value),
    2,
  );
  writeFileSync(GAS_SNAPSHOT_PATH, `${json}\n`);
}
