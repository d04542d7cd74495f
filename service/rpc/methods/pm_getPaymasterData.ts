import type { Sponsorship } from "../../sponsorship/sponsorship.ts";
import { defineMethod } from "../jsonRpc.ts";
import { paymasterParams } from "../schemas.ts";

/** ERC-7677 final data: needs the sender's session (`context.session`) and reserves the worst case. */
export function pm_getPaymasterData(sponsorship: Sponsorship) {
  return defineMethod({ params: paymasterParams, handler: (params) => sponsorship.final(params) });
}
