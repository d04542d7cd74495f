// The sign-in REST routes, as an encapsulated Fastify plugin; errors go through the app's one
// handler (service/httpErrors.ts). Register with `app.register(sessionRoutes, { sessions })`.
import type { FastifyPluginAsync } from "fastify";
import { type ZodTypeProvider, serializerCompiler, validatorCompiler } from "fastify-type-provider-zod";
import { z } from "zod";

import { ServiceError } from "../errors.ts";
import { type Sessions, signInParametersSchema } from "./sessions.ts";

export type SessionRoutesOptions = { sessions: Sessions };

const BEARER = /^Bearer +(\S+)$/i;

/** GET /v1/auth/nonce, POST /v1/auth/sign-in and POST /v1/auth/sign-out. */
export const sessionRoutes: FastifyPluginAsync<SessionRoutesOptions> = async (fastify, { sessions }) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // Nonces and tokens are single-use or secret: no cache may keep them.
  app.addHook("onSend", async (_request, reply) => {
    reply.header("cache-control", "no-store");
  });

  app.get("/v1/auth/nonce", { schema: { response: { 200: z.object({ nonce: z.string() }) } } }, async () => ({
    nonce: await sessions.issueNonce(),
  }));

  app.post(
    "/v1/auth/sign-in",
    {
      // The schema's bounds add up to ~30 KB; refuse more before parsing it.
      bodyLimit: 64 * 1024,
      schema: {
        body: signInParametersSchema,
        response: { 200: z.object({ token: z.string(), address: z.string(), expiresAt: z.iso.datetime() }) },
      },
    },
    async (request) => {
      const { token, address, expiresAt } = await sessions.signIn(request.body);
      return { token, address, expiresAt: expiresAt.toISOString() };
    },
  );

  app.post("/v1/auth/sign-out", async (request, reply) => {
    const token = BEARER.exec(request.headers.authorization ?? "")?.[1];
    if (token === undefined) throw new ServiceError("UNAUTHENTICATED", "Authorization header must be `Bearer <session token>`");
    await sessions.revoke(await sessions.verifySession(token));
    return reply.code(204).send();
  });
};
