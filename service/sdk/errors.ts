// Typed errors for every way the service can refuse a request. The service answers each refusal
// with a stable string code (REST: `{ error: { code, message, data } }`; JSON-RPC: `error.data.code`);
// this module turns that code into an error class per rejection family, with its data parsed.
import type { Address } from "viem";

/**
 * Every stable code the service answers with, as `service/errors.ts` lists them in ERROR_TABLE.
 * `service/sdk/errors.test.ts` asserts the two lists are equal, so they cannot drift.
 */
export const FIATGAS_ERROR_CODES = [
  "PARSE_ERROR",
  "INVALID_REQUEST",
  "METHOD_NOT_FOUND",
  "INVALID_PARAMS",
  "NOT_FOUND",
  "PRECONDITION_REQUIRED",
  "PRECONDITION_FAILED",
  "UNSUPPORTED_ENTRY_POINT",
  "WRONG_CHAIN",
  "UNAUTHENTICATED",
  "FORBIDDEN",
  "INVALID_SIGNATURE",
  "INSUFFICIENT_BALANCE",
  "TOO_MANY_RESERVATIONS",
  "CHANNEL_UNAVAILABLE",
  "GATEWAY_UNAVAILABLE",
  "REFUND_NOT_POSSIBLE",
  "ACCOUNT_FROZEN",
  "POLICY_INACTIVE",
  "BASE_FEE_CIRCUIT_BREAKER",
  "LIMIT_GAS",
  "LIMIT_FEE",
  "LIMIT_CHARGE",
  "LIMIT_OPS_PER_MINUTE",
  "LIMIT_OPS_PER_DAY",
  "LIMIT_ACCOUNT_SPEND_PER_DAY",
  "LIMIT_GLOBAL_SPEND_PER_DAY",
  "TOPUP_COOLING",
  "SENDER_DENIED",
  "TARGET_DENIED",
  "TARGET_NOT_ALLOWED",
  "SELECTOR_NOT_ALLOWED",
  "CALLDATA_UNDECODABLE",
  "LIMIT_DEPOSIT_IN_FLIGHT",
  "DEPOSIT_BELOW_FLOOR",
  "PRICE_UNAVAILABLE",
  "PRICE_STALE",
  "FEES_UNAVAILABLE",
  "DEPENDENCY_UNAVAILABLE",
  "RATE_LIMITED",
  "OVERLOADED",
  "INTERNAL",
] as const;

/** A code the service answers with. */
export type FiatGasErrorCode = (typeof FIATGAS_ERROR_CODES)[number];

/**
 * Codes the SDK raises itself, never the service: the service could not be reached or timed out,
 * it answered something that is not its API, or a wait for a top-up ended without a payment.
 */
export type FiatGasClientErrorCode = "NETWORK_ERROR" | "TIMEOUT" | "UNEXPECTED_RESPONSE" | "TOPUP_CLOSED" | "WAIT_TIMEOUT";

/** The facts an error is built from: the service's answer, or the SDK's own. */
export type FiatGasErrorParameters = {
  code: string;
  message: string;
  data?: Record<string, unknown> | undefined;
  /** The HTTP status of the answer, when there was one. */
  status?: number | undefined;
  /** The JSON-RPC error code, for errors from `POST /rpc`. */
  rpcCode?: number | undefined;
  /** The `Retry-After` header, in seconds, when the answer had one. */
  retryAfterHeader?: number | undefined;
  /** The request's method and path, e.g. `POST /v1/topups` or `POST /rpc pm_getPaymasterData`. */
  request?: string | undefined;
  cause?: unknown;
};

const isCode = (code: string): code is FiatGasErrorCode => (FIATGAS_ERROR_CODES as readonly string[]).includes(code);

/** A decimal string of an integer as a bigint, or undefined for anything else. */
function integer(value: unknown): bigint | undefined {
  return typeof value === "string" && /^-?\d{1,78}$/.test(value) ? BigInt(value) : typeof value === "number" && Number.isSafeInteger(value) ? BigInt(value) : undefined;
}

const text = (value: unknown): string | undefined => (typeof value === "string" ? value : typeof value === "number" ? String(value) : undefined);

/** When to retry: the data's `retryAfter` (unix seconds), its `retryAfterSeconds`, or the Retry-After header. */
function retryAfterOf(data: Record<string, unknown>, header: number | undefined): Date | undefined {
  if (typeof data.retryAfter === "number" && data.retryAfter > 0) return new Date(data.retryAfter * 1000);
  const seconds = typeof data.retryAfterSeconds === "number" ? data.retryAfterSeconds : header;
  return seconds !== undefined && seconds >= 0 ? new Date(Date.now() + seconds * 1000) : undefined;
}

/**
 * The base of every error the SDK throws. `code` is the service's stable code (branch on it, or on
 * the subclass); `data` is what the service said about it, as sent.
 */
export class FiatGasError extends Error {
  override name: string = "FiatGasError";
  /** The stable code: one of FIATGAS_ERROR_CODES, an SDK code, or a code newer than this SDK. */
  readonly code: FiatGasErrorCode | FiatGasClientErrorCode | (string & {});
  /** The service's message, without the SDK's additions. */
  readonly shortMessage: string;
  /** Structured facts from the service (amounts are decimal strings), as sent. */
  readonly data: Record<string, unknown>;
  /** HTTP status of the answer; undefined when no answer came. */
  readonly status: number | undefined;
  /** JSON-RPC error code, for answers from `POST /rpc`. */
  readonly rpcCode: number | undefined;
  /** When trying again may succeed, if the service said. */
  readonly retryAfter: Date | undefined;
  /** The request that failed, e.g. `POST /v1/topups`. */
  readonly request: string | undefined;

  constructor({ code, message, data = {}, status, rpcCode, retryAfterHeader, request, cause }: FiatGasErrorParameters) {
    super(request ? `${message} (${code}, ${request})` : `${message} (${code})`, cause === undefined ? undefined : { cause });
    this.code = code;
    this.shortMessage = message;
    this.data = data;
    this.status = status;
    this.rpcCode = rpcCode;
    this.retryAfter = retryAfterOf(data, retryAfterHeader);
    this.request = request;
  }
}

/** The request itself was refused as malformed: bad JSON, a field that fails validation, an EntryPoint or chain the service does not serve. */
export class InvalidRequestError extends FiatGasError {
  override name = "InvalidRequestError" as const;
  declare readonly code: "PARSE_ERROR" | "INVALID_REQUEST" | "METHOD_NOT_FOUND" | "INVALID_PARAMS" | "UNSUPPORTED_ENTRY_POINT" | "WRONG_CHAIN" | "PRECONDITION_REQUIRED" | "PRECONDITION_FAILED";
  /** Each field that failed validation (`INVALID_PARAMS`), e.g. `{ path: "amount", message: "…" }`. */
  readonly issues: { path: string; message: string }[];
  constructor(parameters: FiatGasErrorParameters) {
    super(parameters);
    const issues = this.data.issues;
    this.issues = Array.isArray(issues) ? issues.filter((issue): issue is { path: string; message: string } => typeof issue?.path === "string" && typeof issue?.message === "string") : [];
  }
}

/** There is no such top-up order (or route). */
export class NotFoundError extends FiatGasError {
  override name = "NotFoundError" as const;
  declare readonly code: "NOT_FOUND";
}

/** No session, an expired or revoked one, one for another account, or a sign-in signature that proves nothing: sign in again. */
export class AuthenticationError extends FiatGasError {
  override name = "AuthenticationError" as const;
  declare readonly code: "UNAUTHENTICATED" | "FORBIDDEN" | "INVALID_SIGNATURE";
}

/** The available balance does not cover the operation's worst case: top up (at least `shortfallFen`). */
export class InsufficientBalanceError extends FiatGasError {
  override name = "InsufficientBalanceError" as const;
  declare readonly code: "INSUFFICIENT_BALANCE";
  /** The operation's worst-case charge, in fen. */
  readonly neededFen: bigint | undefined;
  /** The account's available balance, in fen (negative after a chargeback). */
  readonly availableFen: bigint | undefined;
  /** How much more the account needs, in fen. */
  readonly shortfallFen: bigint | undefined;
  constructor(parameters: FiatGasErrorParameters) {
    super(parameters);
    this.neededFen = integer(this.data.neededFen);
    this.availableFen = integer(this.data.availableFen);
    this.shortfallFen = this.neededFen !== undefined && this.availableFen !== undefined ? this.neededFen - this.availableFen : undefined;
  }
}

/** The operator's risk policy refused the operation; `limit` is the policy path it hit. */
export class PolicyError extends FiatGasError {
  override name: string = "PolicyError";
  declare readonly code: PolicyErrorCode;
  /** The policy path (e.g. `perOperation.maxChargeFen`), or the setting, that refused the operation. */
  readonly limit: string | undefined;
  constructor(parameters: FiatGasErrorParameters) {
    super(parameters);
    this.limit = text(this.data.limit);
  }
}

/** An operator froze the account: contact the operator. */
export class AccountFrozenError extends PolicyError {
  override name = "AccountFrozenError" as const;
  declare readonly code: "ACCOUNT_FROZEN";
}

/** A call the policy does not sponsor: a denied sender or target, a target or function not allowed, or callData it cannot read. */
export class CallNotAllowedError extends PolicyError {
  override name = "CallNotAllowedError" as const;
  declare readonly code: "SENDER_DENIED" | "TARGET_DENIED" | "TARGET_NOT_ALLOWED" | "SELECTOR_NOT_ALLOWED" | "CALLDATA_UNDECODABLE";
  /** The call's target, when one was refused. */
  readonly target: Address | undefined;
  /** The refused function selector (`SELECTOR_NOT_ALLOWED`). */
  readonly selector: string | undefined;
  constructor(parameters: FiatGasErrorParameters) {
    super(parameters);
    this.target = text(this.data.target) as Address | undefined;
    this.selector = text(this.data.selector);
  }
}

/**
 * A limit of the policy or of the paymaster: `limit` names it, `limitValue` is its value and
 * `currentValue` the op's or the account's (decimal strings: fen, wei, gas, counts or unix seconds,
 * depending on the limit), and `retryAfter` says when it lifts if that is known.
 */
export class LimitError extends PolicyError {
  override name: string = "LimitError";
  declare readonly code: LimitErrorCode;
  readonly limitValue: string | undefined;
  readonly currentValue: string | undefined;
  constructor(parameters: FiatGasErrorParameters) {
    super(parameters);
    this.limitValue = text(this.data.limitValue);
    this.currentValue = text(this.data.currentValue);
  }
}

/** Only recent top-ups would cover the op, and they cannot be spent yet: retry after `retryAfter`. */
export class TopUpCoolingError extends LimitError {
  override name = "TopUpCoolingError" as const;
  declare readonly code: "TOPUP_COOLING";
  /** The operation's worst-case charge, in fen. */
  readonly neededFen: bigint | undefined;
  /** What can be spent now, in fen. */
  readonly spendableFen: bigint | undefined;
  constructor(parameters: FiatGasErrorParameters) {
    super(parameters);
    this.neededFen = integer(this.data.neededFen);
    this.spendableFen = integer(this.data.spendableFen);
  }
}

/** A top-up through a channel the service has no settings for; `available` lists those it has. */
export class ChannelUnavailableError extends FiatGasError {
  override name = "ChannelUnavailableError" as const;
  declare readonly code: "CHANNEL_UNAVAILABLE";
  readonly available: string[];
  constructor(parameters: FiatGasErrorParameters) {
    super(parameters);
    this.available = Array.isArray(this.data.available) ? this.data.available.filter((channel): channel is string => typeof channel === "string") : [];
  }
}

/** Nothing (or not that much) can be refunded: `availableFen` or `refundableFen` says how much can. */
export class RefundNotPossibleError extends FiatGasError {
  override name = "RefundNotPossibleError" as const;
  declare readonly code: "REFUND_NOT_POSSIBLE";
  readonly requestedFen: bigint | undefined;
  /** The available balance, when the request exceeded it. */
  readonly availableFen: bigint | undefined;
  /** What the paid orders can still take back, when that is the bound. */
  readonly refundableFen: bigint | undefined;
  constructor(parameters: FiatGasErrorParameters) {
    super(parameters);
    this.requestedFen = integer(this.data.requestedFen);
    this.availableFen = integer(this.data.availableFen);
    this.refundableFen = integer(this.data.refundableFen);
  }
}

/** The service cannot answer right now (price, fees, Redis or the node); retry shortly. It fails closed: nothing was reserved. */
export class ServiceUnavailableError extends FiatGasError {
  override name: string = "ServiceUnavailableError";
  declare readonly code: "PRICE_UNAVAILABLE" | "PRICE_STALE" | "FEES_UNAVAILABLE" | "DEPENDENCY_UNAVAILABLE" | "GATEWAY_UNAVAILABLE" | "OVERLOADED";
}

/** The payment gateway did not answer; a new order stays pending and the service settles or closes it. */
export class GatewayUnavailableError extends ServiceUnavailableError {
  override name = "GatewayUnavailableError" as const;
  declare readonly code: "GATEWAY_UNAVAILABLE";
  readonly channel: string | undefined;
  constructor(parameters: FiatGasErrorParameters) {
    super(parameters);
    this.channel = text(this.data.channel);
  }
}

/** The service is shedding load; retry after `retryAfter`. */
export class OverloadedError extends ServiceUnavailableError {
  override name = "OverloadedError" as const;
  declare readonly code: "OVERLOADED";
}

/** Too many requests from this client; retry after `retryAfter`. */
export class RateLimitedError extends FiatGasError {
  override name = "RateLimitedError" as const;
  declare readonly code: "RATE_LIMITED";
}

/** Something unexpected went wrong inside the service; it logged the detail. */
export class InternalError extends FiatGasError {
  override name = "InternalError" as const;
  declare readonly code: "INTERNAL";
}

/** The service could not be reached, or did not answer within the timeout (`TIMEOUT`). */
export class NetworkError extends FiatGasError {
  override name = "NetworkError" as const;
  declare readonly code: "NETWORK_ERROR" | "TIMEOUT";
}

/** The answer was not the service's API: a proxy's error page, or JSON of another shape. */
export class UnexpectedResponseError extends FiatGasError {
  override name = "UnexpectedResponseError" as const;
  declare readonly code: "UNEXPECTED_RESPONSE";
}

/** `waitForTopUp` ended without the state it waited for: the order closed unpaid, or the wait timed out. */
export class TopUpNotPaidError extends FiatGasError {
  override name = "TopUpNotPaidError" as const;
  declare readonly code: "TOPUP_CLOSED" | "WAIT_TIMEOUT";
}

/** Codes refused by the risk policy or the paymaster's limits. */
export type PolicyErrorCode = "ACCOUNT_FROZEN" | CallNotAllowedError["code"] | LimitErrorCode;

/** Codes of a limit with a value: LimitError and TopUpCoolingError. */
export type LimitErrorCode =
  | "POLICY_INACTIVE"
  | "BASE_FEE_CIRCUIT_BREAKER"
  | "LIMIT_GAS"
  | "LIMIT_FEE"
  | "LIMIT_CHARGE"
  | "LIMIT_OPS_PER_MINUTE"
  | "LIMIT_OPS_PER_DAY"
  | "LIMIT_ACCOUNT_SPEND_PER_DAY"
  | "LIMIT_GLOBAL_SPEND_PER_DAY"
  | "TOO_MANY_RESERVATIONS"
  | "LIMIT_DEPOSIT_IN_FLIGHT"
  | "DEPOSIT_BELOW_FLOOR"
  | "TOPUP_COOLING";

type ErrorClass = new (parameters: FiatGasErrorParameters) => FiatGasError;

/** The class of each code; `satisfies` makes a code without a class a type error. */
const ERROR_CLASSES = {
  PARSE_ERROR: InvalidRequestError,
  INVALID_REQUEST: InvalidRequestError,
  METHOD_NOT_FOUND: InvalidRequestError,
  INVALID_PARAMS: InvalidRequestError,
  NOT_FOUND: NotFoundError,
  PRECONDITION_REQUIRED: InvalidRequestError,
  PRECONDITION_FAILED: InvalidRequestError,
  UNSUPPORTED_ENTRY_POINT: InvalidRequestError,
  WRONG_CHAIN: InvalidRequestError,
  UNAUTHENTICATED: AuthenticationError,
  FORBIDDEN: AuthenticationError,
  INVALID_SIGNATURE: AuthenticationError,
  INSUFFICIENT_BALANCE: InsufficientBalanceError,
  TOO_MANY_RESERVATIONS: LimitError,
  CHANNEL_UNAVAILABLE: ChannelUnavailableError,
  GATEWAY_UNAVAILABLE: GatewayUnavailableError,
  REFUND_NOT_POSSIBLE: RefundNotPossibleError,
  ACCOUNT_FROZEN: AccountFrozenError,
  POLICY_INACTIVE: LimitError,
  BASE_FEE_CIRCUIT_BREAKER: LimitError,
  LIMIT_GAS: LimitError,
  LIMIT_FEE: LimitError,
  LIMIT_CHARGE: LimitError,
  LIMIT_OPS_PER_MINUTE: LimitError,
  LIMIT_OPS_PER_DAY: LimitError,
  LIMIT_ACCOUNT_SPEND_PER_DAY: LimitError,
  LIMIT_GLOBAL_SPEND_PER_DAY: LimitError,
  TOPUP_COOLING: TopUpCoolingError,
  SENDER_DENIED: CallNotAllowedError,
  TARGET_DENIED: CallNotAllowedError,
  TARGET_NOT_ALLOWED: CallNotAllowedError,
  SELECTOR_NOT_ALLOWED: CallNotAllowedError,
  CALLDATA_UNDECODABLE: CallNotAllowedError,
  LIMIT_DEPOSIT_IN_FLIGHT: LimitError,
  DEPOSIT_BELOW_FLOOR: LimitError,
  PRICE_UNAVAILABLE: ServiceUnavailableError,
  PRICE_STALE: ServiceUnavailableError,
  FEES_UNAVAILABLE: ServiceUnavailableError,
  DEPENDENCY_UNAVAILABLE: ServiceUnavailableError,
  RATE_LIMITED: RateLimitedError,
  OVERLOADED: OverloadedError,
  INTERNAL: InternalError,
} as const satisfies Record<FiatGasErrorCode, ErrorClass>;

/** Every typed error the service's codes map to, as one union to narrow with `instanceof` or `code`. */
export type FiatGasErrorType = InstanceType<(typeof ERROR_CLASSES)[FiatGasErrorCode]> | NetworkError | UnexpectedResponseError | TopUpNotPaidError;

/** The typed error for a code: its class when the SDK knows the code, the base class otherwise. */
export function createFiatGasError(parameters: FiatGasErrorParameters): FiatGasError {
  const Class: ErrorClass = isCode(parameters.code) ? ERROR_CLASSES[parameters.code] : FiatGasError;
  return new Class(parameters);
}

/** The typed errors that can carry one of `Code`. */
export type FiatGasErrorWithCode<Code extends string> = FiatGasErrorType extends infer E ? (E extends { code: infer C } ? ([Extract<Code, C>] extends [never] ? never : E) : never) : never;

/** Whether `error` is a FiatGasError, optionally with one of `codes`. */
export function isFiatGasError<Code extends FiatGasErrorType["code"]>(error: unknown, ...codes: Code[]): error is FiatGasErrorWithCode<Code> {
  return error instanceof FiatGasError && (codes.length === 0 || (codes as string[]).includes(error.code));
}

/** The service's error object (`{ code, message, data }`), if `value` is one. */
export function serviceErrorBody(value: unknown): { code: string; message: string; data: Record<string, unknown> } | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const { code, message, data } = value as Record<string, unknown>;
  if (typeof code !== "string" || !/^[A-Z][A-Z0-9_]*$/.test(code)) return undefined;
  return { code, message: typeof message === "string" ? message : code, data: typeof data === "object" && data !== null ? (data as Record<string, unknown>) : {} };
}

/**
 * The typed error inside any error the service caused, or undefined: a FiatGasError itself, or a
 * viem error from `createPaymasterClient` (a JSON-RPC error with the code in `data.code`, or an HTTP
 * error such as a 429 whose body is the service's REST error).
 */
export function toFiatGasError(error: unknown): FiatGasError | undefined {
  const seen = new Set<unknown>();
  for (let node: unknown = error; typeof node === "object" && node !== null && !seen.has(node); node = (node as { cause?: unknown }).cause) {
    seen.add(node);
    if (node instanceof FiatGasError) return node;
    const fields = node as { code?: unknown; data?: unknown; details?: unknown; message?: unknown; status?: unknown; name?: unknown; headers?: unknown };
    const status = typeof fields.status === "number" ? fields.status : undefined;
    // A JSON-RPC error (viem's RpcRequestError keeps the service's message in `details`; the raw object in `message`).
    const dataCode = typeof fields.data === "object" && fields.data !== null ? (fields.data as { code?: unknown }).code : undefined;
    if (typeof dataCode === "string" && typeof fields.code === "number") {
      const message = typeof fields.details === "string" ? fields.details : typeof fields.message === "string" ? fields.message : dataCode;
      const { code: _code, ...data } = fields.data as Record<string, unknown>;
      return createFiatGasError({ code: dataCode, message, data, rpcCode: fields.code, status, cause: error });
    }
    // viem's HttpRequestError: `details` is the JSON of the body's `error` member, the REST error object.
    if (fields.name === "HttpRequestError" && typeof fields.details === "string") {
      let body: ReturnType<typeof serviceErrorBody>;
      try {
        body = serviceErrorBody(JSON.parse(fields.details));
      } catch {
        body = undefined;
      }
      if (body) {
        const retryAfter = fields.headers instanceof Headers ? Number(fields.headers.get("retry-after") ?? Number.NaN) : Number.NaN;
        return createFiatGasError({ ...body, status, retryAfterHeader: Number.isFinite(retryAfter) ? retryAfter : undefined, cause: error });
      }
    }
  }
  return undefined;
}
