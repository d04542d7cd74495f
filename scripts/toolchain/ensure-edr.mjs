// Hardhat's simulator (EDR) ships its native code as an optional package per platform.
// npm running on Node 20 drops it silently (EDR's engines field asks for Node 22), so a
// fresh `npm install` leaves Hardhat unable to start. This postinstall step fetches the
// exact platform package EDR expects with `npm pack` and unpacks it in place.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";

const require = createRequire(import.meta.url);
const root = path.resolve(import.meta.dirname, "../..");

function platformPackage() {
  const { platform, arch } = process;
  if (platform === "linux") {
    const musl = !process.report.getReport().header.glibcVersionRuntime;
    return `@nomicfoundation/edr-linux-${arch}-${musl ? "musl" : "gnu"}`;
  }
  if (platform === "darwin") return `@nomicfoundation/edr-darwin-${arch}`;
  if (platform === "win32") return `@nomicfoundation/edr-win32-${arch}-msvc`;
  throw new Error(`ensure-edr: no EDR build for ${platform}/${arch}`);
}

function isInstalled(name) {
  try {
    require.resolve(`${name}/package.json`, { paths: [path.join(root, "node_modules/@nomicfoundation/edr")] });
    return true;
  } catch {
    return false;
  }
}

const edrManifest = path.join(root, "node_modules/@nomicfoundation/edr/package.json");
if (!existsSync(edrManifest)) process.exit(0); // Hardhat is not installed (production install).

const name = platformPackage();
if (isInstalled(name)) process.exit(0);

const { optionalDependencies = {} } = JSON.parse(readFileSync(edrManifest, "utf8"));
const version = optionalDependencies[name];
if (!version) throw new Error(`ensure-edr: EDR lists no ${name}`);

console.log(`ensure-edr: installing ${name}@${version} (npm skipped it under Node ${process.versions.node})`);
const work = mkdtempSync(path.join(tmpdir(), "edr-"));
try {
  const npm = process.env.npm_execpath;
  const packArgs = ["pack", `${name}@${version}`, "--silent", "--pack-destination", work];
  const tarball = npm
    ? execFileSync(process.execPath, [npm, ...packArgs], { encoding: "utf8" })
    : execFileSync("npm", packArgs, { encoding: "utf8" });
  const file = path.join(work, tarball.trim().split("\n").pop());
  execFileSync("tar", ["-xzf", file, "-C", work]);
  const target = path.join(root, "node_modules", name);
  rmSync(target, { recursive: true, force: true });
  mkdirSync(path.dirname(target), { recursive: true });
  renameSync(path.join(work, "package"), target);
  console.log(`ensure-edr: ${name} ready (${readdirSync(target).length} files)`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
