// `npm test`: every check and test suite in order, with progress, ending in one line
// `N passed, N failed` that counts tests from all suites (a check counts as one test).
// The summary is also written to test-output/summary.txt for CI.
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { stripVTControlCharacters } from "node:util";

const root = path.resolve(import.meta.dirname, "../..");

/** Each step is an npm script; `suite` steps report test counts, checks count as one test. */
const steps = [
  { script: "build", kind: "check", required: true },
  { script: "typecheck", kind: "check" },
  { script: "lint:ts", kind: "check" },
  { script: "lint:sol", kind: "check" },
  { script: "test:solidity", kind: "suite" },
  { script: "test:contracts", kind: "suite" },
  { script: "test:service", kind: "suite" },
];

// npm on Node 20 may have dropped Hardhat's native package since the last install (see ensure-edr.mjs),
// and the service tests need a redis-server binary (see ensure-redis.mjs).
for (const script of ["ensure-edr.mjs", "ensure-redis.mjs"]) {
  const { code } = await run(process.execPath, [path.join(root, "scripts/toolchain", script)]);
  if (code !== 0) console.log(`${script} failed; the suites that need it will fail.`);
}

const totals = { passed: 0, failed: 0 };
const rows = [];

for (const [index, step] of steps.entries()) {
  console.log(`\n▶ [${index + 1}/${steps.length}] npm run ${step.script}`);
  const started = Date.now();
  const { code, output } = await run("npm", ["run", "--silent", step.script]);
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const counts = step.kind === "suite" ? suiteCounts(stripVTControlCharacters(output), code) : checkCounts(code);
  totals.passed += counts.passed;
  totals.failed += counts.failed;
  rows.push(`${code === 0 ? "ok  " : "FAIL"} ${step.script.padEnd(16)} ${counts.passed} passed, ${counts.failed} failed (${seconds}s)`);
  console.log(`◀ ${rows.at(-1)}`);
  if (code !== 0 && step.required) {
    console.log("A required step failed; the remaining steps cannot run.");
    totals.failed += steps.length - index - 1;
    break;
  }
}

const summary = `${totals.passed} passed, ${totals.failed} failed`;
mkdirSync(path.join(root, "test-output"), { recursive: true });
writeFileSync(path.join(root, "test-output/summary.txt"), `${summary}\n`);
console.log(`\n${rows.join("\n")}\n\n${summary}`);
process.exit(totals.failed === 0 ? 0 : 1);

/** Counts from a suite's closing summary; a crash without counts is one failure. */
function suiteCounts(output, code) {
  const last = (pattern) => {
    const matches = [...output.matchAll(pattern)];
    return matches.length ? Number(matches.at(-1)[1]) : 0;
  };
  // Mocha-style ("N passing") from Hardhat, or node:test's spec reporter ("ℹ pass N").
  const passed = last(/^\s*(\d+) passing/gm) || last(/^ℹ pass (\d+)/gm);
  const failed = last(/^\s*(\d+) failing/gm) || last(/^ℹ fail (\d+)/gm);
  if (code !== 0 && failed === 0) return { passed, failed: 1 };
  return { passed, failed };
}

function checkCounts(code) {
  return code === 0 ? { passed: 1, failed: 0 } : { passed: 0, failed: 1 };
}

/** Runs a command from the project root, streaming and capturing its output. */
function run(command, args) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    for (const stream of [child.stdout, child.stderr]) {
      stream.on("data", (chunk) => {
        output += chunk;
        (stream === child.stdout ? process.stdout : process.stderr).write(chunk);
      });
    }
    child.on("error", (error) => resolve({ code: 1, output: String(error) }));
    child.on("close", (code) => resolve({ code: code ?? 1, output }));
  });
}
