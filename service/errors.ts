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
