// Tests and the local stack run a private redis-server. There is none on npm, so on a machine
// without one this installs Debian's package (redis-server 7.0) when it can, and otherwise says
// exactly what to install.
import { execFileSync, spawnSync } from "node:child_process";

/** Path of redis-server, or null. */
export function findRedisServer() {
  const found = spawnSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" });
  return found.status === 0 ? found.stdout.trim() : null;
}

/** Returns the redis-server path, installing Debian's package first if needed and possible. */
export function ensureRedisServer() {
  const existing = findRedisServer();
  if (existing) return existing;
  const canApt = process.getuid?.() === 0 && spawnSync("sh", ["-c", "command -v apt-get"]).status === 0;
  if (!canApt) {
    throw new Error("redis-server is not installed. Install Redis 7 (Debian/Ubuntu: sudo apt-get install -y redis-server) and retry.");
  }
  console.log("ensure-redis: installing Debian's redis-server (apt-get update, then install)…");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  execFileSync("apt-get", ["update", "-q"], { stdio: ["ignore", "ignore", "inherit"], env });
  execFileSync("apt-get", ["install", "-y", "-q", "--no-install-recommends", "redis-server"], {
    stdio: ["ignore", "ignore", "inherit"],
    env,
  });
  // Debian starts a system-wide instance on port 6379; the project runs its own, so stop it.
  spawnSync("sh", ["-c", "service redis-server stop || true"], { stdio: "ignore" });
  const installed = findRedisServer();
  if (!installed) throw new Error("ensure-redis: apt-get finished but redis-server is still missing");
  console.log(`ensure-redis: ${execFileSync(installed, ["--version"], { encoding: "utf8" }).trim()}`);
  return installed;
}

if (import.meta.url === `file://${process.argv[1]}`) ensureRedisServer();
