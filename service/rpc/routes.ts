import type { FastifyInstance } from "fastify";

import type { Sponsorship } from "../sponsorship/sponsorship.ts";
import { type RpcMethod, createDispatcher } from "./jsonRpc.ts";
import { pm_getPaymasterData } from "./methods/pm_getPaymasterData.ts";
import { pm_getPaymasterStubData } from "./methods/pm_getPaymasterStubData.ts";

export type RpcRouteOptions = {
  sponsorship: Sponsorship;
  maxBatch: number;
  onCall?: (method: string, outcome: string) => void;
};

/** `POST /rpc`: ERC-7677 over JSON-RPC 2.0, batches included. */
export async function rpcRoutes(app: FastifyInstance, { sponsorship, maxBatch, onCall }: RpcRouteOptions) {
  const methods: Record<string, RpcMethod> = {
    pm_getPaymasterStubData: pm_getPaymasterStubData(sponsorship) as RpcMethod,
    pm_getPaymasterData: pm_getPaymasterData(sponsorship) as RpcMethod,
  };
  const dispatcher = createDispatcher({
    methods,
    maxBatch,
    onCall,
    onError: (error, method) => app.log.warn({ err: error, method }, "rpc call failed"),
  });

  // The body is parsed by the dispatcher, so malformed JSON gets a JSON-RPC parse error, not a 400.
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string", bodyLimit: 1024 * 1024 }, (_request, body, done) => done(null, body));

  app.post("/rpc", async (request, reply) => {
    const response = await dispatcher.handle(typeof request.body === "string" ? request.body : "");
    if (response === undefined) return reply.code(204).send();
    return reply.type("application/json").send(JSON.stringify(response));
  });
}
