// The FiatGas DApp SDK: sign in, top up, read the balance, quote, refund, and the ERC-7677
// paymaster for viem and permissionless, with a typed error for every refusal. It depends on viem
// and fetch only, so it runs in browsers and in Node alike.
export { type FiatGasClient, type FiatGasClientOptions, createFiatGasClient } from "./client.ts";
export {
  AccountFrozenError,
  AuthenticationError,
  CallNotAllowedError,
  ChannelUnavailableError,
  FIATGAS_ERROR_CODES,
  FiatGasError,
  type FiatGasClientErrorCode,
  type FiatGasErrorCode,
  type FiatGasErrorParameters,
  type FiatGasErrorType,
  type FiatGasErrorWithCode,
  GatewayUnavailableError,
  InsufficientBalanceError,
  InternalError,
  InvalidRequestError,
  LimitError,
  type LimitErrorCode,
  NetworkError,
  NotFoundError,
  OverloadedError,
  PolicyError,
  type PolicyErrorCode,
  RateLimitedError,
  RefundNotPossibleError,
  ServiceUnavailableError,
  TopUpCoolingError,
  TopUpNotPaidError,
  UnexpectedResponseError,
  createFiatGasError,
  isFiatGasError,
  toFiatGasError,
} from "./errors.ts";
export { DEFAULT_TIMEOUT_MS, type FiatGasTransportOptions } from "./http.ts";
export { type FiatGasPaymaster, type FiatGasPaymasterOptions, type FiatGasPaymasterParameters, type SessionSource, createFiatGasPaymaster, fiatGasPaymaster } from "./paymaster.ts";
export { type FeesPerGas, type GasPrices, type GasTier, type Quote, type QuoteParameters } from "./pricing.ts";
export { type FiatGasSession, type MessageSigner, type SessionInput, type SignInAccount, type SignInParameters } from "./session.ts";
export {
  type Balance,
  type CreateTopUpParameters,
  type GetBalanceParameters,
  type Refund,
  type RefundResult,
  type RequestRefundParameters,
  TOPUP_WAIT_GRACE_MS,
  type TopUp,
  type TopUpChannel,
  type TopUpState,
  type WaitForTopUpParameters,
} from "./topUps.ts";
export { type UserOperationInput, formatUserOperation } from "./wire.ts";
