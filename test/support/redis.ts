// A private redis-server per test file, on a free loopback port, with its data in a temp folder.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { Redis } from "ioredis";

import { freePort } from "../../scripts/stack/ports.ts";
import { redisServerArgs, waitForRedis } from "../../scripts/stack/redis.ts";
// @ts-expect-error: a plain .mjs helper shared with the test runner.
import { ensureRedisServer } from "../../scripts/toolchain/ensure-redis.mjs";

// Shared with the local stack (`npm start`).
export { freePort };

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
  const args = redisServerArgs({ port, dir, durable });
  const clients: Redis[] = [];
  let child: ChildProcess;

  async function launch() {
    child = spawn(binary, args, { stdio: "ignore" });
    await waitForRedis(port, { exited: () => child.exitCode !== null });
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
