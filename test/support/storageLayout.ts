// Storage slots as the compiler assigns them. Hardhat's build info does not request `storageLayout`, so
// the contract's own build-info input is compiled again with only that output selected (analysis only,
// under a second with the wasm compiler). Tests then name slots by path instead of hard-coding numbers.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";

import { artifacts } from "hardhat";
import { type Hex, encodeAbiParameters, keccak256, numberToHex, pad } from "viem";

type StorageEntry = { label: string; slot: string; offset: number; type: string };
type StorageType = { encoding: string; label: string; numberOfBytes: string; members?: StorageEntry[] };

/** solc's `storageLayout` output. */
export type StorageLayout = { storage: StorageEntry[]; types: Record<string, StorageType> };

type Solc = { version(): string; compile(input: string): string };
type BuildInfo = { solcLongVersion: string; input: { settings: { outputSelection: unknown } } };

/** The compiler's storage layout of `contractName`, from the build that produced its artifact. */
export async function storageLayoutOf(contractName: string): Promise<StorageLayout> {
  const artifact = await artifacts.readArtifact(contractName);
  const buildInfoId = await artifacts.getBuildInfoId(contractName);
  const buildInfoPath = buildInfoId && (await artifacts.getBuildInfoPath(buildInfoId));
  if (!buildInfoPath) throw new Error(`no build info for ${contractName}; run hardhat build`);
  const buildInfo = JSON.parse(await readFile(buildInfoPath, "utf8")) as BuildInfo;

  const solc = createRequire(import.meta.url)("solc") as Solc;
  if (!solc.version().startsWith(buildInfo.solcLongVersion)) {
    throw new Error(`solc ${solc.version()} is not the ${buildInfo.solcLongVersion} that built ${contractName}`);
  }
  const input = structuredClone(buildInfo.input);
  input.settings.outputSelection = { [artifact.inputSourceName!]: { [contractName]: ["storageLayout"] } };
  const output = JSON.parse(solc.compile(JSON.stringify(input))) as {
    errors?: { severity: string; formattedMessage: string }[];
    contracts?: Record<string, Record<string, { storageLayout: StorageLayout }>>;
  };
  const errors = (output.errors ?? []).filter((e) => e.severity === "error");
  if (errors.length) throw new Error(errors.map((e) => e.formattedMessage).join("\n"));
  return output.contracts![artifact.inputSourceName!][contractName].storageLayout;
}

/** The slot of a state variable or a member inside one, by dotted path (e.g. `_signers._inner._positions`). */
export function slotOf(layout: StorageLayout, path: string): bigint {
  let entries = layout.storage;
  let base = 0n;
  for (const label of path.split(".")) {
    const entry = entries.find((e) => e.label === label);
    if (!entry) throw new Error(`no ${label} in ${entries.map((e) => e.label).join(", ")} (path ${path})`);
    base += BigInt(entry.slot);
    entries = layout.types[entry.type].members ?? [];
  }
  return base;
}

/** The slot of `mapping[key]` for a mapping at `slot` with a 32-byte value-type key. */
export function mappingSlot(key: Hex, slot: bigint): Hex {
  return keccak256(encodeAbiParameters([{ type: "bytes32" }, { type: "uint256" }], [pad(key, { size: 32 }), slot]));
}

/** The slot of element `index` of a dynamic array whose length lives at `slot`. */
export function arrayElementSlot(slot: bigint, index: bigint): Hex {
  return numberToHex(BigInt(keccak256(numberToHex(slot, { size: 32 }))) + index, { size: 32 });
}
