// One error model for the whole service. Every error a caller can see has a stable string code;
// ERROR_TABLE maps each code to its JSON-RPC code and HTTP status, in one place.

/** How a code reaches callers over JSON-RPC and HTTP. */
type ErrorMapping = { rpc: number; http: number };

/**
 * Every stable error code. JSON-RPC codes follow JSON-RPC 2.0 for protocol errors and the
 * -32000..-32099 server range for the service's own; clients branch on `data.code`, not on these.
 */
export const ERROR_TABLE = {
  // Protocol and input.
  PARSE_ERROR: { rpc: -32700, http: 400 },
  INVALID_REQUEST: { rpc: -32600, http: 400 },
  METHOD_NOT_FOUND: { rpc: -32601, http: 404 },
  INVALID_PARAMS: { rpc: -32602, http: 400 },
  NOT_FOUND: { rpc: -32004, http: 404 },
  // Conditional writes (the admin API's If-Match): no precondition sent, or a stale one.
  PRECONDITION_REQUIRED: { rpc: -32060, http: 428 },
  PRECONDITION_FAILED: { rpc: -32061, http: 412 },
  // Sponsorship target.
  UNSUPPORTED_ENTRY_POINT: { rpc: -32602, http: 400 },
  WRONG_CHAIN: { rpc: -32602, http: 400 },
  // Who may spend.
  UNAUTHENTICATED: { rpc: -32001, http: 401 },
  FORBIDDEN: { rpc: -32003, http: 403 },
  INVALID_SIGNATURE: { rpc: -32001, http: 401 },
  // Money.
  INSUFFICIENT_BALANCE: { rpc: -32010, http: 402 },
  TOO_MANY_RESERVATIONS: { rpc: -32011, http: 429 },
  // Top-ups and refunds.
  CHANNEL_UNAVAILABLE: { rpc: -32070, http: 400 },
  GATEWAY_UNAVAILABLE: { rpc: -32071, http: 502 },
  REFUND_NOT_POSSIBLE: { rpc: -32072, http: 409 },
  // Risk policy: one code per limit kind; data names the limit, its value, the current value and retryAfter.
  ACCOUNT_FROZEN: { rpc: -32040, http: 403 },
  POLICY_INACTIVE: { rpc: -32041, http: 403 },
  BASE_FEE_CIRCUIT_BREAKER: { rpc: -32042, http: 503 },
  LIMIT_GAS: { rpc: -32043, http: 400 },
  LIMIT_FEE: { rpc: -32044, http: 400 },
  LIMIT_CHARGE: { rpc: -32045, http: 400 },
  LIMIT_OPS_PER_MINUTE: { rpc: -32046, http: 429 },
  LIMIT_OPS_PER_DAY: { rpc: -32047, http: 429 },
  LIMIT_ACCOUNT_SPEND_PER_DAY: { rpc: -32048, http: 429 },
  LIMIT_GLOBAL_SPEND_PER_DAY: { rpc: -32049, http: 429 },
  TOPUP_COOLING: { rpc: -32050, http: 402 },
  SENDER_DENIED: { rpc: -32051, http: 403 },
  TARGET_DENIED: { rpc: -32052, http: 403 },
  TARGET_NOT_ALLOWED: { rpc: -32053, http: 403 },
  SELECTOR_NOT_ALLOWED: { rpc: -32054, http: 403 },
  CALLDATA_UNDECODABLE: { rpc: -32055, http: 403 },
  // The paymaster's EntryPoint deposit: the in-flight cap, and the floor (sponsorship paused until the operator tops up).
  LIMIT_DEPOSIT_IN_FLIGHT: { rpc: -32056, http: 503 },
  DEPOSIT_BELOW_FLOOR: { rpc: -32057, http: 503 },
  // Pricing and dependencies: fail closed.
  PRICE_UNAVAILABLE: { rpc: -32020, http: 503 },
  PRICE_STALE: { rpc: -32021, http: 503 },
  FEES_UNAVAILABLE: { rpc: -32022, http: 503 },
  DEPENDENCY_UNAVAILABLE: { rpc: -32023, http: 503 },
  // Load.
  RATE_LIMITED: { rpc: -32029, http: 429 },
  OVERLOADED: { rpc: -32030, http: 503 },
  // Anything unexpected: no detail leaves the process.
  INTERNAL: { rpc: -32603, http: 500 },
} as const satisfies Record<string, ErrorMapping>;

export type ErrorCode = keyof typeof ERROR_TABLE;

export type ServiceErrorParameters = {
  /** Extra structured facts the caller can act on (amounts, limits, when to retry). */
  data?: Record<string, unknown>;
  /** The underlying error, kept for the log and never sent to callers. */
  cause?: unknown;
};

/** The base of every error the service raises on purpose. */
export class ServiceError extends Error {
  override name = "ServiceError";
  readonly code: ErrorCode;
  readonly data: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, { data, cause }: ServiceErrorParameters = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
    this.data = data;
  }
}

/** What callers see of an error: the public message, code and data, or a generic internal error. */
export function publicError(error: unknown): { code: ErrorCode; message: string; data?: Record<string, unknown> } {
  if (error instanceof ServiceError) {
    return { code: error.code, message: error.message, ...(error.data ? { data: error.data } : {}) };
  }
  return { code: "INTERNAL", message: "Internal error" };
}

/** A JSON-RPC error object; `data.code` carries the stable string code. */
export function toJsonRpcError(error: unknown): { code: number; message: string; data: Record<string, unknown> } {
  const { code, message, data } = publicError(error);
  return { code: ERROR_TABLE[code].rpc, message, data: { code, ...data } };
}

/** An HTTP status and JSON body for a REST route. */
export function toHttpError(error: unknown): { status: number; body: { error: { code: ErrorCode; message: string; data?: Record<string, unknown> } } } {
  const body = publicError(error);
  return { status: ERROR_TABLE[body.code].http, body: { error: body } };
}

/** Whether `error` is a ServiceError with `code`. */
export function hasCode(error: unknown, code: ErrorCode): error is ServiceError {
  return error instanceof ServiceError && error.code === code;
}
