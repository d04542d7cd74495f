// ERC-7677 sponsorship: stub data for estimation, then final data that is paid for by reserving
// the op's worst-case cost in fen from the sender's balance before the signature leaves.
import { type Address, type Hex, getAddress } from "viem";
import { getUserOperationHash } from "viem/account-abstraction";

import { ENTRYPOINT_ADDRESS, type EntryPointVersion, entryPointVersionAt } from "../chain/entryPoints.ts";
import { ServiceError } from "../errors.ts";
import type { Ledger } from "../ledger/ledger.ts";
import { type Pricing, type UserOperationGas, lockedRateToJson } from "../pricing/index.ts";
import { checkCalls } from "../risk/calls.ts";
import { checkOperationLimits } from "../risk/operationLimits.ts";
import type { Policy } from "../risk/policy.ts";
import type { RpcUserOperation } from "../rpc/schemas.ts";
import type { SponsoredUserOperation } from "./paymasterData.ts";
import type { SponsorshipSigner } from "./signer.ts";


/** What sponsorship needs from sessions: proof that the caller holds `address`. */
export type SessionsPort = {
  requireSessionFor(token: unknown, address: Address): Promise<unknown>;
};

/** What sponsorship needs from the deposit guard: the in-flight cap, or a refusal when it is paused. */
export type DepositGuardPort = {
  /** Throws DEPOSIT_BELOW_FLOOR or DEPENDENCY_UNAVAILABLE; otherwise the most wei all live reservations may hold. */
  capFor(version: EntryPointVersion): bigint;
};

export type PaymasterParams = [userOperation: RpcUserOperation, entryPoint: Address, chainId: bigint, context: Record<string, unknown>];

export type StubResult = {
  paymaster: Address;
  paymasterData: Hex;
  paymasterVerificationGasLimit: Hex;
  paymasterPostOpGasLimit: Hex;
  sponsor: { name: string; icon: string };
  isFinal: false;
};

export type FinalResult = {
  paymaster: Address;
  paymasterData: Hex;
  paymasterVerificationGasLimit: Hex;
  paymasterPostOpGasLimit: Hex;
};

const EIP7702_MARKERS = new Set(["0x7702", "0x7702000000000000000000000000000000000000"]);

export function createSponsorship(deps: {
  chainId: number;
  paymasters: Partial<Record<EntryPointVersion, Address>>;
  signer: SponsorshipSigner;
  ledger: Ledger;
  pricing: Pick<Pricing, "quote" | "baseFee">;
  sessions: SessionsPort;
  /** The paymaster deposit's cached figures. */
  deposits: DepositGuardPort;
  /** The risk policy in force (live-reloaded). */
  policy: () => Policy;
  paymasterVerificationGasLimit: bigint;
  sponsor: { name: string; icon: string };
  now: () => number;
}) {
  const { chainId, paymasters, signer, ledger, pricing, sessions, deposits, policy: currentPolicy, sponsor, now } = deps;
  const toHex = (value: bigint) => `0x${value.toString(16)}` as Hex;

  /** The EntryPoint version and our paymaster for it, or a precise error. */
  function target(entryPoint: Address, requestedChainId: bigint) {
    if (requestedChainId !== BigInt(chainId)) {
      throw new ServiceError("WRONG_CHAIN", `this paymaster serves chain ${chainId}, not ${requestedChainId}`, {
        data: { expected: chainId, received: Number(requestedChainId) },
      });
    }
    const version = entryPointVersionAt(entryPoint);
    const paymaster = version ? paymasters[version] : undefined;
    if (!version || !paymaster) {
      const supported = Object.keys(paymasters).map((v) => ENTRYPOINT_ADDRESS[v as EntryPointVersion]);
      throw new ServiceError("UNSUPPORTED_ENTRY_POINT", `EntryPoint ${getAddress(entryPoint)} is not supported`, { data: { supported } });
    }
    return { version, paymaster };
  }

  /** The op as it will be sent: our paymaster and gas limits, 7702 initCode checked. */
  function sponsoredOp(op: RpcUserOperation, version: EntryPointVersion): SponsoredUserOperation & UserOperationGas {
    if (version === "0.8" && op.factory && EIP7702_MARKERS.has(op.factory.toLowerCase()) && !op.authorization) {
      throw new ServiceError("INVALID_PARAMS", "an EIP-7702 initCode needs eip7702Auth: the signature binds the account's delegate");
    }
    return {
      ...op,
      paymasterVerificationGasLimit: op.paymasterVerificationGasLimit ?? deps.paymasterVerificationGasLimit,
      paymasterPostOpGasLimit: op.paymasterPostOpGasLimit ?? 0n,
    };
  }

  function window(policy: Policy) {
    return { validUntil: now() + policy.time.signatureValiditySeconds, validAfter: 0 };
  }

  /** Refuses calls the policy does not allow: cheap, so it runs for stub data too, before the user signs. */
  function enforceCallPolicy(op: { sender: Address; callData: Hex }, policy: Policy) {
    const verdict = checkCalls({ sender: op.sender, callData: op.callData, policy });
    if (!verdict.ok) throw new ServiceError(verdict.code, verdict.message, { data: { limit: verdict.limit, ...verdict.data } });
  }

  return {
    /** pm_getPaymasterStubData: no session, no reservation; same length and code path as final data. */
    async stub([userOperation, entryPoint, requestedChainId]: PaymasterParams): Promise<StubResult> {
      const { version, paymaster } = target(entryPoint, requestedChainId);
      const op = sponsoredOp(userOperation, version);
      const policy = currentPolicy();
      enforceCallPolicy(op, policy);
      // A paused paymaster fails here already, before the user signs.
      deposits.capFor(version);
      return {
        paymaster,
        paymasterData: signer.stubPaymasterData(window(policy)),
        paymasterVerificationGasLimit: toHex(op.paymasterVerificationGasLimit),
        paymasterPostOpGasLimit: toHex(op.paymasterPostOpGasLimit),
        sponsor,
        isFinal: false,
      };
    },

    /**
     * pm_getPaymasterData: needs the sender's session; reserves the op's worst-case cost in fen at a
     * locked rate, signs, then records the userOpHash the signed op will have.
     */
    async final([userOperation, entryPoint, requestedChainId, context]: PaymasterParams): Promise<FinalResult> {
      const { version, paymaster } = target(entryPoint, requestedChainId);
      const op = sponsoredOp(userOperation, version);
      await sessions.requireSessionFor(context.session, op.sender);
      const policy = currentPolicy();
      enforceCallPolicy(op, policy);
      // The worst case is the EntryPoint's required prefund, priced at a rate locked now.
      const { maxWei, maxChargeFen: chargeFen, rate } = pricing.quote(op);
      const rejection = checkOperationLimits({ op, chargeFen, baseFee: pricing.baseFee(), policy, now: now() });
      if (rejection) {
        const { code, message, ...facts } = rejection;
        throw new ServiceError(code, message, { data: facts });
      }
      const inFlightCapWei = deposits.capFor(version);
      const { validUntil, validAfter } = window(policy);

      // Account and global limits, the deposit's in-flight cap among them, are judged inside the reservation, atomically with it.
      await ledger.reserve({
        account: op.sender,
        entryPointVersion: version,
        nonce: op.nonce,
        paymaster,
        chargeFen,
        maxWei,
        validUntil,
        now: now(),
        limits: policy.perAccount,
        globalMaxSpendFenPerDay: policy.global.maxSpendFenPerDay,
        inFlightCapWei,
      });
      const paymasterData = await signer.paymasterData({ userOperation: op, entryPointVersion: version, paymaster, validUntil, validAfter });
      const userOpHash = getUserOperationHash({
        userOperation: { ...op, paymaster, paymasterData, signature: "0x" },
        entryPointAddress: ENTRYPOINT_ADDRESS[version],
        entryPointVersion: version,
        chainId,
      });
      const attached = await ledger.attachOp(op.sender, version, op.nonce, { userOpHash, chargeFen, maxWei, validUntil, rate: lockedRateToJson(rate) });
      if (!attached) throw new ServiceError("INTERNAL", "reservation vanished while signing");
      return {
        paymaster,
        paymasterData,
        paymasterVerificationGasLimit: toHex(op.paymasterVerificationGasLimit),
        paymasterPostOpGasLimit: toHex(op.paymasterPostOpGasLimit),
      };
    },
  };
}

export type Sponsorship = ReturnType<typeof createSponsorship>;
