// ERC-7677 for viem and permissionless: `{ getPaymasterStubData, getPaymasterData }` calling our
// `POST /rpc` with the session in the context, plus a fee estimator from `/v1/gas-prices`. Pass the
// object as `paymaster` and its `userOperation` as `userOperation` to viem's createBundlerClient or
// permissionless's createSmartAccountClient. Refusals throw the SDK's typed errors unwrapped (viem
// runs the paymaster calls outside its own error wrapping).
import { type Address, numberToHex } from "viem";
import type { GetPaymasterDataReturnType, GetPaymasterStubDataReturnType, PaymasterActions } from "viem/account-abstraction";

import { type FiatGasTransportOptions, type Transport, createTransport } from "./http.ts";
import { type FeesPerGas, type GasTier, createFeeEstimator } from "./pricing.ts";
import { type SessionInput, tokenOf } from "./session.ts";
import { type UserOperationInput, address, formatUserOperation, hex, quantity } from "./wire.ts";

/** A session, or a function that returns the current one (called for every `pm_getPaymasterData`, so it can sign in again once the session expires). */
export type SessionSource = SessionInput | (() => SessionInput | Promise<SessionInput>);

export type FiatGasPaymasterOptions = {
  session: SessionSource;
  /** The fee tier `estimateFeesPerGas` suggests (default `standard`). */
  tier?: GasTier | undefined;
};

export type FiatGasPaymasterParameters = FiatGasTransportOptions & FiatGasPaymasterOptions;

export type FiatGasPaymaster = {
  /** ERC-7677 stub data for gas estimation (needs no session, reserves nothing). */
  getPaymasterStubData: PaymasterActions["getPaymasterStubData"];
  /** ERC-7677 final data: reserves the op's worst case from the session account's balance and signs. */
  getPaymasterData: PaymasterActions["getPaymasterData"];
  /** One tier of the service's fee suggestions, for `userOperation.estimateFeesPerGas`. */
  estimateFeesPerGas: () => Promise<FeesPerGas>;
  /** `{ estimateFeesPerGas }`, to pass as `userOperation` to createBundlerClient / createSmartAccountClient. */
  userOperation: { estimateFeesPerGas: () => Promise<FeesPerGas> };
};

/** What viem hands a paymaster: the op, the EntryPoint, the chain and the caller's `paymasterContext`. */
type PaymasterCall = UserOperationInput & { chainId: number; entryPointAddress: Address; context?: unknown };

type PaymasterAnswer = {
  paymaster?: unknown;
  paymasterData?: unknown;
  paymasterVerificationGasLimit?: unknown;
  paymasterPostOpGasLimit?: unknown;
  sponsor?: { name?: unknown; icon?: unknown };
  isFinal?: unknown;
};

/** The paymaster fields of an answer, parsed: viem expects bigint gas limits. */
function paymasterFields(answer: PaymasterAnswer | undefined) {
  return {
    paymaster: address(answer?.paymaster, "paymaster"),
    paymasterData: hex(answer?.paymasterData, "paymasterData"),
    ...(answer?.paymasterVerificationGasLimit === undefined ? {} : { paymasterVerificationGasLimit: quantity(answer.paymasterVerificationGasLimit, "paymasterVerificationGasLimit") }),
    paymasterPostOpGasLimit: answer?.paymasterPostOpGasLimit === undefined ? 0n : quantity(answer.paymasterPostOpGasLimit, "paymasterPostOpGasLimit"),
  };
}

/** The caller's own paymasterContext, if it is an object, to carry alongside the session. */
function contextOf(context: unknown): Record<string, unknown> {
  return typeof context === "object" && context !== null && !Array.isArray(context) ? (context as Record<string, unknown>) : {};
}

/** The paymaster actions over an existing transport; `createFiatGasClient().paymaster()` and `fiatGasPaymaster()` use it. */
export function createFiatGasPaymaster(transport: Transport, { session, tier = "standard" }: FiatGasPaymasterOptions): FiatGasPaymaster {
  const params = ({ chainId, entryPointAddress, context: _context, ...userOperation }: PaymasterCall, context: Record<string, unknown>) => [
    formatUserOperation(userOperation),
    entryPointAddress,
    numberToHex(chainId),
    context,
  ];
  const estimateFeesPerGas = createFeeEstimator(transport, tier);

  return {
    async getPaymasterStubData(parameters) {
      const call = parameters as PaymasterCall;
      const answer = await transport.rpc<PaymasterAnswer>("pm_getPaymasterStubData", params(call, contextOf(call.context)));
      const sponsor = answer?.sponsor && typeof answer.sponsor.name === "string" ? { name: answer.sponsor.name, ...(typeof answer.sponsor.icon === "string" ? { icon: answer.sponsor.icon } : {}) } : undefined;
      return {
        ...paymasterFields(answer),
        ...(sponsor ? { sponsor } : {}),
        isFinal: answer?.isFinal === true,
      } as GetPaymasterStubDataReturnType;
    },

    async getPaymasterData(parameters) {
      const call = parameters as PaymasterCall;
      const current = typeof session === "function" ? await session() : session;
      const answer = await transport.rpc<PaymasterAnswer>("pm_getPaymasterData", params(call, { ...contextOf(call.context), session: tokenOf(current) }));
      return paymasterFields(answer) as GetPaymasterDataReturnType;
    },

    estimateFeesPerGas,
    userOperation: { estimateFeesPerGas },
  };
}

/**
 * The FiatGas paymaster for viem and permissionless:
 *
 * ```ts
 * const paymaster = fiatGasPaymaster({ url, session });
 * createSmartAccountClient({ account, chain, bundlerTransport, paymaster, userOperation: paymaster.userOperation });
 * ```
 */
export function fiatGasPaymaster({ session, tier, ...transport }: FiatGasPaymasterParameters): FiatGasPaymaster {
  return createFiatGasPaymaster(createTransport(transport), { session, tier });
}
