// How the project runs a private redis-server (the local stack and the tests alike): loopback only,
// no RDB snapshots, and with `durable` the AOF with an fsync on every write, which the service's
// preflight requires (REDIS_REQUIRE_DURABLE) so that a credit acknowledged to a gateway survives a crash.
import { Redis } from "ioredis";

/** redis-server's command line for `port` and data folder `dir`. */
export function redisServerArgs({ port, dir, durable }: { port: number; dir: string; durable: boolean }): string[] {
  return [
    "--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "",
    "--appendonly", durable ? "yes" : "no", "--appendfsync", "always", "--protected-mode", "yes",
  ];
}

/** Resolves once a Redis on 127.0.0.1:`port` answers PING; gives up after `timeoutMs` or when `exited()` says the server is gone. */
export async function waitForRedis(port: number, { timeoutMs = 10_000, exited = () => false }: { timeoutMs?: number; exited?: () => boolean } = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const probe = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    // Refused connections are expected until the server listens; connect() reports them.
    probe.on("error", () => {});
    try {
      await probe.connect();
      await probe.ping();
      return;
    } catch (error) {
      if (exited()) throw new Error(`redis-server on port ${port} exited before it answered`, { cause: error });
      if (Date.now() >= deadline) throw new Error(`redis-server did not start on port ${port}`, { cause: error });
    } finally {
      probe.disconnect();
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
