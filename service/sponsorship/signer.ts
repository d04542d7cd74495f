import type { Address, Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";

import type { EntryPointVersion } from "../chain/entryPoints.ts";
import {
  type SponsoredUserOperation,
  encodePaymasterData,
  getSponsorshipTypedData,
} from "./paymasterData.ts";

/**
 * The stub's signature: a real low-s ECDSA signature (of keccak256("fiatgas stub 0") by a throwaway
 * key) with no zero byte. It recovers to an address outside the signer set, so stub data takes the
 * same validation path as final data (ecrecover, then one signer-set lookup) and, since final data
 * can only have as many or more zero bytes, never under-prices preVerificationGas (ERC-7677).
 */
export const STUB_SIGNATURE: Hex =
  "0x721a583f512a79525c26d9e24d6c7c11900bd31e0aefa5684b9ae2676c0a76682c9014831dbb0a5606d9dbf4d7f871d6cf3e3e336c5d031bd5adc882093035481c";

export type SponsorshipWindow = { validUntil: number; validAfter: number };

/** Signs sponsorships off-chain: no chain call per request. */
export function createSponsorshipSigner({ privateKey, chainId }: { privateKey: Hex; chainId: number }) {
  const account = privateKeyToAccount(privateKey);
  return {
    /** The address the paymaster must list as a signer. */
    address: account.address,

    /** paymasterData with the stub signature: the final data's length and at most its zero bytes. */
    stubPaymasterData(window: SponsorshipWindow): Hex {
      return encodePaymasterData({ ...window, signature: STUB_SIGNATURE });
    },

    /** paymasterData signed for `userOperation` as it will be sent, paymaster gas limits included. */
    async paymasterData(parameters: {
      userOperation: SponsoredUserOperation;
      entryPointVersion: EntryPointVersion;
      paymaster: Address;
    } & SponsorshipWindow): Promise<Hex> {
      const signature = await account.signTypedData(getSponsorshipTypedData({ ...parameters, chainId }));
      return encodePaymasterData({ validUntil: parameters.validUntil, validAfter: parameters.validAfter, signature });
    },
  };
}

export type SponsorshipSigner = ReturnType<typeof createSponsorshipSigner>;
