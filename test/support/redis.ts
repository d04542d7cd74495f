// A private redis-server per test file, on a free loopback port, with its data in a temp folder.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

import { Redis } from "ioredis";

// @ts-expect-error: a plain .mjs helper shared with the test runner.
import { ensureRedisServer } from "../../scripts/toolchain/ensure-redis.mjs";

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export type RedisServer = {
  url: string;
  port: number;
  dir: string;
  /** A new client; closed by stop(). */
  client(): Redis;
  /** Kills the server with SIGKILL, as a crash would; the data folder is kept. */
  crash(): Promise<void>;
  /** Starts it again on the same port and data folder. */
  restart(): Promise<void>;
  stop(): Promise<void>;
};

/** Starts redis-server. `durable` turns on AOF with fsync on every write. */
export async function startRedis({ durable = false }: { durable?: boolean } = {}): Promise<RedisServer> {
  const binary: string = ensureRedisServer();
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), "fiatgas-redis-"));
  const args = [
    "--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "",
    "--appendonly", durable ? "yes" : "no", "--appendfsync", "always", "--protected-mode", "yes",
  ];
  const clients: Redis[] = [];
  let child: ChildProcess;

  async function launch() {
    child = spawn(binary, args, { stdio: "ignore" });
    const probe = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    // Refused connections are expected until the server listens; connect() reports them.
    probe.on("error", () => {});
    for (let attempt = 0; ; attempt++) {
      try {
        await probe.connect();
        await probe.ping();
        probe.disconnect();
        return;
      } catch (error) {
        if (attempt > 100) throw new Error(`redis-server did not start on port ${port}`, { cause: error });
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }

  async function kill(signal: NodeJS.Signals) {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill(signal);
    await exited;
  }

  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    client() {
      const client = new Redis({ port, host: "127.0.0.1" });
      // After crash() the client reconnects in the background; commands still report failures.
      client.on("error", () => {});
      clients.push(client);
      return client;
    },
    crash: () => kill("SIGKILL"),
    restart: launch,
    async stop() {
      for (const client of clients) client.disconnect();
      await kill("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
