import { type Address, getAddress } from "viem";

/** EntryPoint versions the paymaster contract supports. */
export type EntryPointVersion = "0.7" | "0.8";

export const ENTRYPOINT_VERSIONS: readonly EntryPointVersion[] = ["0.7", "0.8"];

/** Where eth-infinitism's CREATE2 deployment puts each EntryPoint, on every chain. */
export const ENTRYPOINT_ADDRESS = {
  "0.7": "0x0000000071727De22E5E9d8BAf0edAc6f37da032",
  "0.8": "0x4337084D9E255Ff0702461CF8895CE9E3b5Ff108",
} as const satisfies Record<EntryPointVersion, Address>;

/** The EntryPoint version at `address`, or null when it is not a canonical EntryPoint. */
export function entryPointVersionAt(address: Address): EntryPointVersion | null {
  const checksummed = getAddress(address);
  return ENTRYPOINT_VERSIONS.find((version) => ENTRYPOINT_ADDRESS[version] === checksummed) ?? null;
}

/** The concrete paymaster contract deployed for each EntryPoint version. */
export const paymasterContractName = {
  "0.7": "FiatGasPaymasterV7",
  "0.8": "FiatGasPaymasterV8",
} as const satisfies Record<EntryPointVersion, string>;
