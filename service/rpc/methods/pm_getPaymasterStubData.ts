import type { Sponsorship } from "../../sponsorship/sponsorship.ts";
import { defineMethod } from "../jsonRpc.ts";
import { paymasterParams } from "../schemas.ts";

/** ERC-7677 stub data for gas estimation; needs no session and reserves nothing. */
export function pm_getPaymasterStubData(sponsorship: Sponsorship) {
  return defineMethod({ params: paymasterParams, handler: (params) => sponsorship.stub(params) });
}
