// The SDK's only way to the service: fetch, with a timeout, the caller's abort signal, and every
// refusal turned into its typed error. REST and JSON-RPC share it.
import { NetworkError, UnexpectedResponseError, createFiatGasError, serviceErrorBody } from "./errors.ts";

/** How to reach the service. */
export type FiatGasTransportOptions = {
  /** The service's base URL, e.g. `https://gas.example.com` (a path prefix is kept). */
  url: string;
  /** A fetch implementation; the global `fetch` by default. */
  fetch?: typeof fetch | undefined;
  /** Extra headers for every request, e.g. an API gateway's key. */
  headers?: Record<string, string> | undefined;
  /** How long one request may take before it fails with `TIMEOUT`, in ms (default 10,000). */
  timeoutMs?: number | undefined;
};

export type RequestOptions = {
  body?: unknown;
  /** A session token, sent as `Authorization: Bearer <token>`. */
  token?: string | undefined;
  signal?: AbortSignal | undefined;
};

export type Transport = {
  /** The base URL without credentials or trailing slash. */
  readonly url: string;
  /** A REST call; resolves with the parsed JSON body (undefined for 204), or throws the typed error. */
  request<T>(method: "GET" | "POST", path: string, options?: RequestOptions): Promise<T>;
  /** A JSON-RPC call to `POST /rpc`; resolves with `result`, or throws the typed error from `error.data.code`. */
  rpc<T>(method: string, params: unknown[], options?: Pick<RequestOptions, "signal">): Promise<T>;
};

export const DEFAULT_TIMEOUT_MS = 10_000;

/** The base URL, checked, without a trailing slash; credentials in it are refused rather than leaked into logs. */
function baseUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw createFiatGasError({ code: "INVALID_PARAMS", message: "url must be an absolute http(s) URL of the FiatGas service" });
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw createFiatGasError({ code: "INVALID_PARAMS", message: `url must be http or https, not ${parsed.protocol}` });
  }
  if (parsed.username || parsed.password) {
    throw createFiatGasError({ code: "INVALID_PARAMS", message: "url must not contain credentials; pass them in headers" });
  }
  parsed.search = "";
  parsed.hash = "";
  return parsed.toString().replace(/\/+$/, "");
}

/** Seconds from a Retry-After header (delta-seconds or an HTTP date). */
function retryAfterSeconds(headers: Headers): number | undefined {
  const value = headers.get("retry-after");
  if (value === null) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

/** Aborts when any of `signals` does: AbortSignal.any where the platform has it (Node 20.3+, browsers since 2024). */
function anySignal(signals: AbortSignal[]): AbortSignal {
  if (typeof AbortSignal.any === "function") return AbortSignal.any(signals);
  const controller = new AbortController();
  for (const signal of signals) {
    if (signal.aborted) {
      controller.abort(signal.reason);
      break;
    }
    signal.addEventListener("abort", () => controller.abort(signal.reason), { once: true });
  }
  return controller.signal;
}

/** Builds the transport for `options.url`. */
export function createTransport({ url, fetch: fetchFn, headers = {}, timeoutMs = DEFAULT_TIMEOUT_MS }: FiatGasTransportOptions): Transport {
  const base = baseUrl(url);
  let nextId = 1;

  /** Sends one request and returns its status, headers and parsed JSON (undefined for an empty body). */
  async function send(method: "GET" | "POST", path: string, label: string, { body, token, signal }: RequestOptions) {
    const timeout = AbortSignal.timeout(timeoutMs);
    const combined = signal ? anySignal([signal, timeout]) : timeout;
    const doFetch = fetchFn ?? globalThis.fetch;
    let response: Response;
    let raw: string;
    try {
      response = await doFetch(`${base}${path}`, {
        method,
        headers: {
          accept: "application/json",
          ...headers,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
          ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body, (_key, value) => (typeof value === "bigint" ? value.toString() : value)) }),
        signal: combined,
      });
      raw = await response.text();
    } catch (error) {
      // The caller's own abort is not a network failure: it propagates as the caller's reason.
      if (signal?.aborted) throw signal.reason;
      if (timeout.aborted) throw new NetworkError({ code: "TIMEOUT", message: `the FiatGas service did not answer within ${timeoutMs} ms`, request: label, cause: error });
      throw new NetworkError({ code: "NETWORK_ERROR", message: "the FiatGas service could not be reached", request: label, cause: error });
    }
    let json: unknown;
    if (raw !== "") {
      try {
        json = JSON.parse(raw);
      } catch {
        throw new UnexpectedResponseError({ code: "UNEXPECTED_RESPONSE", message: `the answer (HTTP ${response.status}) is not JSON: is url the FiatGas service?`, status: response.status, request: label });
      }
    }
    if (!response.ok) {
      const error = serviceErrorBody((json as { error?: unknown } | undefined)?.error);
      if (!error) {
        throw new UnexpectedResponseError({ code: "UNEXPECTED_RESPONSE", message: `HTTP ${response.status} without the service's error body`, status: response.status, request: label });
      }
      throw createFiatGasError({ ...error, status: response.status, retryAfterHeader: retryAfterSeconds(response.headers), request: label });
    }
    return { status: response.status, json };
  }

  return {
    url: base,

    async request<T>(method: "GET" | "POST", path: string, options: RequestOptions = {}): Promise<T> {
      const { json } = await send(method, path, `${method} ${path}`, options);
      return json as T;
    },

    async rpc<T>(method: string, params: unknown[], { signal }: Pick<RequestOptions, "signal"> = {}): Promise<T> {
      const label = `POST /rpc ${method}`;
      const { status, json } = await send("POST", "/rpc", label, { body: { jsonrpc: "2.0", id: nextId++, method, params }, signal });
      const answer = json as { result?: unknown; error?: { code?: unknown; message?: unknown; data?: unknown } } | undefined;
      if (answer?.error !== undefined) {
        const { code: rpcCode, message, data } = answer.error;
        const body = serviceErrorBody({ code: (data as { code?: unknown } | undefined)?.code, message, data });
        if (!body) {
          throw new UnexpectedResponseError({ code: "UNEXPECTED_RESPONSE", message: `JSON-RPC error without the service's code: ${String(message)}`, status, rpcCode: typeof rpcCode === "number" ? rpcCode : undefined, request: label });
        }
        const { code: _code, ...rest } = body.data;
        throw createFiatGasError({ code: body.code, message: body.message, data: rest, status, rpcCode: typeof rpcCode === "number" ? rpcCode : undefined, request: label });
      }
      if (answer === undefined || !("result" in answer)) {
        throw new UnexpectedResponseError({ code: "UNEXPECTED_RESPONSE", message: "JSON-RPC answer without result or error", status, request: label });
      }
      return answer.result as T;
    },
  };
}
