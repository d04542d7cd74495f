// Checks what can be checked before traffic arrives, so a misconfigured service refuses to start
// with a precise reason instead of failing every request.
import type { Redis } from "ioredis";
import { type Address, type PublicClient, getAddress, parseAbi } from "viem";

import { ENTRYPOINT_ADDRESS, type EntryPointVersion } from "./chain/entryPoints.ts";
import { StartupError } from "./startupError.ts";

const paymasterAbi = parseAbi([
  "function entryPoint() view returns (address)",
  "function isSigner(address signer) view returns (bool)",
]);

/** A failed start-up check; `problems` lists each one. */
export class PreflightError extends StartupError {
  override name = "PreflightError";
  constructor(problems: string[]) {
    super("preflight failed", problems);
  }
}

export type PreflightParameters = {
  publicClient: PublicClient;
  redis: Redis;
  chainId: number;
  paymasters: Partial<Record<EntryPointVersion, Address>>;
  signer: Address;
  /** Whether Redis must run AOF with fsync on every write, so an acknowledged credit survives its crash. */
  requireDurableRedis?: boolean;
};

/** Verifies chain id, contract code, paymaster wiring, signer authorisation and Redis; throws PreflightError. */
export async function preflight({ publicClient, redis, chainId, paymasters, signer, requireDurableRedis = false }: PreflightParameters): Promise<void> {
  const problems: string[] = [];
  const attempt = async (what: string, check: () => Promise<string | undefined>) => {
    try {
      const problem = await check();
      if (problem) problems.push(problem);
    } catch (error) {
      problems.push(`${what}: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`);
    }
  };

  if (Object.keys(paymasters).length === 0) problems.push("no paymaster configured: set PAYMASTER_V07_ADDRESS and/or PAYMASTER_V08_ADDRESS");

  let redisUp = false;
  await attempt("Redis at REDIS_URL does not answer", async () => {
    redisUp = (await redis.ping()) === "PONG";
    return redisUp ? undefined : "Redis did not answer PING";
  });
  if (requireDurableRedis && redisUp) {
    await attempt("Redis's persistence settings cannot be read (CONFIG GET refused); make sure AOF runs with appendfsync always, then set REDIS_REQUIRE_DURABLE=false", async () => {
      const [, appendonly] = (await redis.config("GET", "appendonly")) as string[];
      const [, appendfsync] = (await redis.config("GET", "appendfsync")) as string[];
      return appendonly === "yes" && appendfsync === "always"
        ? undefined
        : `Redis runs with appendonly ${appendonly} and appendfsync ${appendfsync}: a credit acknowledged to a gateway could be lost in a crash. Run it with --appendonly yes --appendfsync always (or set REDIS_REQUIRE_DURABLE=false if your Redis is durable another way)`;
    });
  }
  await attempt("the node at RPC_URL does not answer", async () => {
    const actual = await publicClient.getChainId();
    return actual === chainId ? undefined : `RPC_URL serves chain ${actual}, but CHAIN_ID is ${chainId}`;
  });

  for (const [version, paymaster] of Object.entries(paymasters) as [EntryPointVersion, Address][]) {
    const entryPoint = ENTRYPOINT_ADDRESS[version];
    await attempt(`EntryPoint v${version}`, async () =>
      (await publicClient.getCode({ address: entryPoint })) ? undefined : `no EntryPoint v${version} code at ${entryPoint}`,
    );
    await attempt(`paymaster v${version}`, async () => {
      if (!(await publicClient.getCode({ address: paymaster }))) return `no contract at PAYMASTER_V${version.replace(".", "")}_ADDRESS ${paymaster}`;
      const [servedEntryPoint, authorised] = await Promise.all([
        publicClient.readContract({ address: paymaster, abi: paymasterAbi, functionName: "entryPoint" }),
        publicClient.readContract({ address: paymaster, abi: paymasterAbi, functionName: "isSigner", args: [signer] }),
      ]);
      if (getAddress(servedEntryPoint) !== entryPoint) return `paymaster ${paymaster} serves EntryPoint ${servedEntryPoint}, not v${version} ${entryPoint}`;
      if (!authorised) return `signer ${signer} is not authorised on paymaster ${paymaster}: add it with \`npm run paymaster -- add-signer\``;
      return undefined;
    });
  }
  if (problems.length) throw new PreflightError(problems);
}
