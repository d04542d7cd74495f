// createFiatGasClient: every call a DApp makes to the FiatGas service, over one transport.
import type { FiatGasTransportOptions } from "./http.ts";
import { createTransport } from "./http.ts";
import { type FiatGasPaymaster, type FiatGasPaymasterOptions, createFiatGasPaymaster } from "./paymaster.ts";
import { type FeesPerGas, type GasPrices, type GasTier, type Quote, type QuoteParameters, createFeeEstimator, getGasPrices, quote } from "./pricing.ts";
import { type FiatGasSession, type SessionInput, type SignInParameters, getNonce, signIn, signOut } from "./session.ts";
import {
  type Balance,
  type CreateTopUpParameters,
  type GetBalanceParameters,
  type RefundResult,
  type RequestRefundParameters,
  type TopUp,
  type WaitForTopUpParameters,
  createTopUp,
  getBalance,
  getTopUp,
  requestRefund,
  waitForTopUp,
} from "./topUps.ts";

export type FiatGasClientOptions = FiatGasTransportOptions;

type Signal = { signal?: AbortSignal | undefined };

export type FiatGasClient = {
  /** The service's base URL. */
  readonly url: string;
  /** A fresh single-use sign-in nonce (signIn fetches its own). */
  getNonce(options?: Signal): Promise<string>;
  /** Signs in `account` with EIP-4361 and returns its session. */
  signIn(parameters: SignInParameters): Promise<FiatGasSession>;
  /** Ends a session at once. */
  signOut(session: SessionInput, options?: Signal): Promise<void>;
  /** Opens a top-up order; show the payer its `qrCode` or `codeUrl`. */
  createTopUp(parameters: CreateTopUpParameters): Promise<TopUp>;
  /** A top-up order's current state. */
  getTopUp(orderId: string, options?: Signal): Promise<TopUp>;
  /** Resolves once the order is paid (or `until` holds); throws TopUpNotPaidError if it closes unpaid or time runs out. */
  waitForTopUp(orderId: string, parameters?: WaitForTopUpParameters): Promise<TopUp>;
  /** The session account's balance, reserved and available fen. */
  getBalance(parameters: FiatGasSession | GetBalanceParameters): Promise<Balance>;
  /** What sponsoring an op would reserve and is expected to cost. */
  quote(parameters: QuoteParameters): Promise<Quote>;
  /** Refunds unused balance back through the account's paid top-ups. */
  requestRefund(parameters: RequestRefundParameters): Promise<RefundResult>;
  /** The service's slow/standard/fast fee suggestions. */
  gasPrices(options?: Signal): Promise<GasPrices>;
  /** One tier of the fee suggestions (default `standard`), shaped for viem's `estimateFeesPerGas` hook. */
  estimateFeesPerGas(tier?: GasTier): Promise<FeesPerGas>;
  /** The ERC-7677 paymaster for viem and permissionless, spending from `session`'s account. */
  paymaster(options: FiatGasPaymasterOptions): FiatGasPaymaster;
};

/** A typed client of the FiatGas service: `createFiatGasClient({ url: "https://gas.example.com" })`. */
export function createFiatGasClient(options: FiatGasClientOptions): FiatGasClient {
  const transport = createTransport(options);
  const estimators = new Map<GasTier, () => Promise<FeesPerGas>>();
  return {
    url: transport.url,
    getNonce: (parameters) => getNonce(transport, parameters),
    signIn: (parameters) => signIn(transport, parameters),
    signOut: (session, parameters) => signOut(transport, session, parameters),
    createTopUp: (parameters) => createTopUp(transport, parameters),
    getTopUp: (orderId, parameters) => getTopUp(transport, orderId, parameters),
    waitForTopUp: (orderId, parameters) => waitForTopUp(transport, orderId, parameters),
    getBalance: (parameters) => getBalance(transport, "token" in parameters && typeof parameters.token === "string" ? { session: parameters as FiatGasSession } : (parameters as GetBalanceParameters)),
    quote: (parameters) => quote(transport, parameters),
    requestRefund: (parameters) => requestRefund(transport, parameters),
    gasPrices: (parameters) => getGasPrices(transport, parameters),
    estimateFeesPerGas(tier = "standard") {
      let estimator = estimators.get(tier);
      if (!estimator) estimators.set(tier, (estimator = createFeeEstimator(transport, tier)));
      return estimator();
    },
    paymaster: (paymasterOptions) => createFiatGasPaymaster(transport, paymasterOptions),
  };
}
