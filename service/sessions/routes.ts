// The sign-in REST routes, as an encapsulated Fastify plugin: its zod compilers and error handler
// apply to these routes only. Register with `app.register(sessionRoutes, { sessions })`.
import type { FastifyError, FastifyPluginAsync } from "fastify";
import { type ZodTypeProvider, hasZodFastifySchemaValidationErrors, serializerCompiler, validatorCompiler } from "fastify-type-provider-zod";
import { z } from "zod";

import { ServiceError, toHttpError } from "../errors.ts";
import { type Sessions, signInParametersSchema } from "./sessions.ts";

export type SessionRoutesOptions = { sessions: Sessions };

const BEARER = /^Bearer +(\S+)$/i;

/** A request error as the service's error model: field-level messages for schema failures. */
function asServiceError(error: FastifyError): unknown {
  if (hasZodFastifySchemaValidationErrors(error)) {
    const issues = error.validation.map(({ instancePath, message }) => ({ field: instancePath.slice(1).replaceAll("/", "."), message }));
    const summary = issues.map(({ field, message }) => (field ? `${field} ${message}` : message)).join("; ");
    return new ServiceError("INVALID_PARAMS", `invalid request ${error.validationContext ?? "body"}: ${summary}`, { data: { issues } });
  }
  // Fastify's own 4xx errors (bad JSON, wrong content type, body too large) carry safe public messages.
  if (error.code?.startsWith("FST_") && error.statusCode !== undefined && error.statusCode < 500) {
    return new ServiceError("INVALID_REQUEST", error.message);
  }
  return error;
}

/** GET /v1/auth/nonce, POST /v1/auth/sign-in and POST /v1/auth/sign-out. */
export const sessionRoutes: FastifyPluginAsync<SessionRoutesOptions> = async (fastify, { sessions }) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const { status, body } = toHttpError(asServiceError(error));
    // Only the unexpected is logged; the request itself (tokens, signatures) never is.
    if (status >= 500) request.log.error({ err: error }, "auth route failed");
    return reply.code(status).send(body);
  });
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
