import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";

import type { Ledger } from "../ledger/ledger.ts";
import { address } from "../rpc/schemas.ts";
import type { SessionsPort } from "../sponsorship/sponsorship.ts";

// The auth scheme is case-insensitive (RFC 9110 §11.1), as POST /v1/auth/sign-out already reads it.
const BEARER = /^Bearer +(\S+)$/i;

/** The bearer token of a request, if any. */
export function bearerToken(request: FastifyRequest): string | undefined {
  return BEARER.exec(request.headers.authorization ?? "")?.[1];
}

/** Fen as a decimal string: JSON numbers are doubles, and money is never a float. */
const fen = z.string().regex(/^-?\d+$/).describe("integer amount in fen (1/100 of the currency unit)");

/** An account's money, in fen as decimal strings; the admin lookup extends it. */
export const accountBalanceSchema = z.object({
  address: z.string(),
  currency: z.string(),
  balanceFen: fen,
  reservedFen: fen,
  availableFen: fen,
});

/** `GET /v1/accounts/:address`: the balance of the session's own account. */
export async function accountRoutes(app: FastifyInstance, { ledger, sessions, currency }: { ledger: Ledger; sessions: SessionsPort; currency: string }) {
  app.withTypeProvider<ZodTypeProvider>().get(
    "/v1/accounts/:address",
    {
      schema: {
        summary: "Balance, reserved and available amounts of an account",
        description: "Needs the account's session token: `Authorization: Bearer <token>`.",
        tags: ["accounts"],
        params: z.object({ address }),
        response: { 200: accountBalanceSchema },
      },
    },
    async (request) => {
      const account = request.params.address;
      await sessions.requireSessionFor(bearerToken(request), account);
      const { balanceFen, reservedFen, availableFen } = await ledger.balance(account);
      return {
        address: account,
        currency,
        balanceFen: balanceFen.toString(),
        reservedFen: reservedFen.toString(),
        availableFen: availableFen.toString(),
      };
    },
  );
}
