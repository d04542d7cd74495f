// JSON-RPC 2.0: envelopes, batches and dispatch to methods declared with a zod params schema.
import { z } from "zod";

import { ServiceError, toJsonRpcError } from "../errors.ts";

/** A method: its params schema and its handler, declared together. */
export type RpcMethod<Params extends z.ZodType = z.ZodType, Result = unknown> = {
  params: Params;
  handler: (params: z.output<Params>) => Promise<Result>;
};

/** Declares a method with its params schema, so the handler receives parsed params. */
export function defineMethod<Params extends z.ZodType, Result>(method: RpcMethod<Params, Result>): RpcMethod<Params, Result> {
  return method;
}

const id = z.union([z.string().max(256), z.number(), z.null()]);

const envelope = z.object({
  jsonrpc: z.literal("2.0", { error: 'jsonrpc must be "2.0"' }),
  id: id.optional(),
  method: z.string({ error: "method must be a string" }).max(128),
  params: z.array(z.unknown()).optional(),
});

type RpcId = z.infer<typeof id>;

export type RpcResponse =
  | { jsonrpc: "2.0"; id: RpcId; result: unknown }
  | { jsonrpc: "2.0"; id: RpcId; error: { code: number; message: string; data?: unknown } };

export type Dispatcher = {
  /** Handles a raw request body; returns the body to send, or undefined when only notifications came. */
  handle(body: string): Promise<RpcResponse | RpcResponse[] | undefined>;
};

/** Readable field-level messages from a zod error, for INVALID_PARAMS data. */
export function issues(error: z.ZodError): { path: string; message: string }[] {
  return error.issues.map((issue) => ({ path: issue.path.join("."), message: issue.message }));
}

/** Builds a dispatcher over `methods`; `onError` sees every error before it is made public. */
export function createDispatcher({
  methods,
  maxBatch,
  onError,
  onCall,
}: {
  methods: Record<string, RpcMethod>;
  maxBatch: number;
  onError: (error: unknown, method: string) => void;
  onCall?: (method: string, outcome: string) => void;
}): Dispatcher {
  const failure = (requestId: RpcId, error: unknown): RpcResponse => ({ jsonrpc: "2.0", id: requestId, error: toJsonRpcError(error) });

  async function handleOne(request: unknown): Promise<RpcResponse | undefined> {
    const parsed = envelope.safeParse(request);
    if (!parsed.success) {
      const requestId = id.safeParse((request as { id?: unknown } | null)?.id);
      return failure(requestId.success ? requestId.data : null, new ServiceError("INVALID_REQUEST", "invalid JSON-RPC 2.0 request", { data: { issues: issues(parsed.error) } }));
    }
    const { id: requestId, method: name, params = [] } = parsed.data;
    const isNotification = requestId === undefined;
    const method = Object.hasOwn(methods, name) ? methods[name] : undefined;
    let response: RpcResponse;
    if (!method) {
      response = failure(requestId ?? null, new ServiceError("METHOD_NOT_FOUND", `method ${name} is not supported`, { data: { supported: Object.keys(methods) } }));
      onCall?.(name, "METHOD_NOT_FOUND");
    } else {
      try {
        const checked = method.params.safeParse(params);
        if (!checked.success) {
          throw new ServiceError("INVALID_PARAMS", `invalid params for ${name}: ${checked.error.issues[0]?.message}`, { data: { issues: issues(checked.error) } });
        }
        response = { jsonrpc: "2.0", id: requestId ?? null, result: await method.handler(checked.data) };
        onCall?.(name, "ok");
      } catch (error) {
        onError(error, name);
        response = failure(requestId ?? null, error);
        onCall?.(name, toJsonRpcError(error).data.code as string);
      }
    }
    return isNotification ? undefined : response;
  }

  return {
    async handle(body) {
      let request: unknown;
      try {
        request = JSON.parse(body);
      } catch {
        return failure(null, new ServiceError("PARSE_ERROR", "request body is not valid JSON"));
      }
      if (!Array.isArray(request)) return handleOne(request);
      if (request.length === 0) return failure(null, new ServiceError("INVALID_REQUEST", "empty batch"));
      if (request.length > maxBatch) {
        return failure(null, new ServiceError("INVALID_REQUEST", `batch of ${request.length} requests exceeds the limit of ${maxBatch}`, { data: { limit: maxBatch } }));
      }
      const responses = (await Promise.all(request.map(handleOne))).filter((r): r is RpcResponse => r !== undefined);
      return responses.length ? responses : undefined;
    },
  };
}
