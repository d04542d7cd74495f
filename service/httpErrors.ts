import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { hasZodFastifySchemaValidationErrors } from "fastify-type-provider-zod";

import { ServiceError, toHttpError } from "./errors.ts";

/**
 * The one HTTP error handler: schema failures become INVALID_PARAMS with field-level issues,
 * fastify's own client errors keep their 4xx status, anything unexpected is logged and answered
 * as INTERNAL with no detail.
 */
export function sendHttpError(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  if (hasZodFastifySchemaValidationErrors(error)) {
    const issues = error.validation.map((issue) => ({ path: issue.instancePath.replace(/^\//, "").replaceAll("/", "."), message: issue.message }));
    const summary = issues.map(({ path, message }) => (path ? `${path} ${message}` : message)).join("; ");
    const { status, body } = toHttpError(new ServiceError("INVALID_PARAMS", `invalid request ${error.validationContext ?? "body"}: ${summary}`, { data: { issues } }));
    return reply.code(status).send(body);
  }
  // Only fastify's own client errors (FST_ codes: empty or oversized body, bad content type) pass
  // their message through: another library's error with a statusCode is unexpected, its message private.
  const { statusCode: clientStatus = 0, code } = error as { statusCode?: number; code?: unknown };
  if (!(error instanceof ServiceError) && typeof code === "string" && code.startsWith("FST_") && clientStatus >= 400 && clientStatus < 500) {
    const { body } = toHttpError(new ServiceError("INVALID_REQUEST", error.message));
    return reply.code(clientStatus).send(body);
  }
  // The request itself (tokens, signatures) is never logged; only the unexpected error is.
  if (!(error instanceof ServiceError)) request.log.error({ err: error }, "unhandled error");
  const { status, body } = toHttpError(error);
  return reply.code(status).send(body);
}
