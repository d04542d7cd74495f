// Wire formats at the boundary: hex becomes bigint and addresses are checksummed here, never later.
import { type Address, type Hex, getAddress, isAddress } from "viem";
import { z } from "zod";

/** Largest calldata or factoryData accepted, in bytes: bounds the hashing work per request. */
export const MAX_DATA_BYTES = 64 * 1024;

export const address = z
  .string()
  .refine((value) => isAddress(value, { strict: false }), "must be a 20-byte hex address")
  .transform((value) => getAddress(value) as Address);

export const hexBytes = (maxBytes = MAX_DATA_BYTES) =>
  z
    .string()
    .regex(/^0x([0-9a-fA-F]{2})*$/, "must be 0x-prefixed hex bytes")
    .refine((value) => (value.length - 2) / 2 <= maxBytes, `must be at most ${maxBytes} bytes`)
    .transform((value) => value.toLowerCase() as Hex);

/** A JSON-RPC quantity up to `bits` bits: 0x-prefixed hex without leading zeros (leniently accepted). */
export const quantity = (bits: number) =>
  z
    .string()
    .regex(/^0x[0-9a-fA-F]{1,64}$/, "must be a 0x-prefixed hex quantity")
    .transform((value) => BigInt(value))
    .refine((value) => value < 1n << BigInt(bits), `must fit in ${bits} bits`);

const authorization = z.object({
  address,
  chainId: quantity(256),
  nonce: quantity(64),
  r: hexBytes(32),
  s: hexBytes(32),
  yParity: quantity(8),
});

/**
 * An ERC-4337 v0.7/v0.8 UserOperation as ERC-7677 clients send it. Gas fields may be absent
 * from stub requests (viem fills them after the stub), so they default to zero.
 */
export const rpcUserOperation = z
  .object({
    sender: address,
    nonce: quantity(256),
    factory: address.optional(),
    factoryData: hexBytes().optional(),
    callData: hexBytes(),
    callGasLimit: quantity(128).default(0n),
    verificationGasLimit: quantity(128).default(0n),
    preVerificationGas: quantity(256).default(0n),
    maxFeePerGas: quantity(128).default(0n),
    maxPriorityFeePerGas: quantity(128).default(0n),
    paymaster: address.optional(),
    paymasterVerificationGasLimit: quantity(128).optional(),
    paymasterPostOpGasLimit: quantity(128).optional(),
    paymasterData: hexBytes(1024).optional(),
    signature: hexBytes(4096).optional(),
    eip7702Auth: authorization.optional(),
    initCode: z.undefined({ error: "initCode is the v0.6 format; send factory and factoryData (v0.7+)" }).optional(),
    paymasterAndData: z.undefined({ error: "paymasterAndData is the v0.6 format; send paymaster and paymasterData" }).optional(),
  })
  .refine((op) => op.factory !== undefined || op.factoryData === undefined, {
    message: "factoryData needs a factory",
    path: ["factoryData"],
  })
  .transform(({ eip7702Auth, initCode: _initCode, paymasterAndData: _paymasterAndData, ...op }) => ({
    ...op,
    ...(eip7702Auth
      ? {
          authorization: {
            address: eip7702Auth.address,
            chainId: Number(eip7702Auth.chainId),
            nonce: Number(eip7702Auth.nonce),
            r: eip7702Auth.r,
            s: eip7702Auth.s,
            yParity: Number(eip7702Auth.yParity),
          },
        }
      : {}),
  }));

export type RpcUserOperation = z.output<typeof rpcUserOperation>;

/** ERC-7677 params: `[userOp, entryPoint, chainId, context]`. */
export const paymasterParams = z.tuple([
  rpcUserOperation,
  address,
  quantity(64),
  z.record(z.string(), z.unknown()).nullish().transform((context) => context ?? {}),
]);
