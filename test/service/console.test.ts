// The operator console against the real stack: the page and its assets with their CSP, the live
// figures behind the admin token moving with a sponsorship and a rejection, and a static check that
// the console's script never turns data into markup. Browser-level tests are not here (no browser
// in this environment).
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { after, before, describe, it } from "node:test";

import { numberToHex } from "viem";

import { CONSOLE_CSP } from "../../service/console/routes.ts";
import type { Stats } from "../../service/console/stats.ts";
import { FIXTURE_POLICY, rpcUserOperationFields, type ServiceStack, startServiceStack } from "../support/serviceFixture.ts";
import { within } from "../support/wait.ts";

let stack: ServiceStack;
before(async () => {
  stack = await startServiceStack();
});
after(async () => {
  await stack?.stop();
});

const SCRIPT = new URL("../../service/console/console.js", import.meta.url);

/** The stack's admin token unless `token` is null (no Authorization header). */
async function getStats(token: string | null = stack.adminToken) {
  const response = await fetch(`${stack.url}/admin/stats`, { headers: token === null ? {} : { authorization: `Bearer ${token}` } });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Stats & { error?: { code: string } } };
}

/** Signs pm_getPaymasterData for a fresh funded account, or is refused for it when `frozen`. */
async function sponsor({ frozen = false }: { frozen?: boolean } = {}) {
  const account = await stack.newAccount("0.7");
  const token = await stack.signIn(account);
  await stack.service.ledger.credit(account.sender, 100_000n);
  if (frozen) await stack.service.freezes.freeze(account.sender, { reason: "console test", actor: "test" });
  return stack.post("/rpc", {
    jsonrpc: "2.0",
    id: 1,
    method: "pm_getPaymasterData",
    params: [rpcUserOperationFields(account.sender, account.factory, account.factoryData), stack.entryPoint("0.7"), numberToHex(stack.anvil.chainId), { session: token }],
  });
}

describe("console page", () => {
  it("serves GET /console as HTML with a strict CSP, referencing only same-origin assets and no inline script or style", async () => {
    const response = await fetch(`${stack.url}/console`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/html; charset=utf-8/);
    const csp = response.headers.get("content-security-policy") ?? "";
    assert.equal(csp, CONSOLE_CSP);
    assert.match(csp, /(^|; )default-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*|https?:/);
    assert.equal(response.headers.get("x-content-type-options"), "nosniff");
    assert.equal(response.headers.get("x-frame-options"), "DENY");

    const html = await response.text();
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
    assert.ok(scripts.length > 0);
    for (const [, attributes, body] of scripts) {
      assert.match(attributes, /\bsrc="\/console\/[^"]+"/, "every script is an asset of the console");
      assert.equal(body.trim(), "", "no inline script");
    }
    assert.doesNotMatch(html, /<style\b|\sstyle=|\son[a-z]+=|javascript:/i, "no inline style or handler");
    const references = [...html.matchAll(/\b(?:src|href)="([^"]*)"/gi)].map(([, value]) => value);
    assert.deepEqual(references.sort(), ["/console/console.css", "/console/console.js"]);
  });

  it("serves the script and the stylesheet with their content types and the same CSP", async () => {
    for (const [path, type] of [
      ["/console/console.js", /^text\/javascript; charset=utf-8/],
      ["/console/console.css", /^text\/css; charset=utf-8/],
    ] as const) {
      const response = await fetch(`${stack.url}${path}`);
      assert.equal(response.status, 200, path);
      assert.match(response.headers.get("content-type") ?? "", type, path);
      assert.equal(response.headers.get("content-security-policy"), CONSOLE_CSP);
      assert.equal(response.headers.get("x-content-type-options"), "nosniff");
      assert.ok((await response.text()).length > 0);
    }
    assert.equal((await fetch(`${stack.url}/console/other.js`)).status, 404);
    assert.equal((await fetch(`${stack.url}/console/../package.json`)).status, 404);
  });

  it("serves the script exactly as it is on disk: no build step", async () => {
    assert.equal(await (await fetch(`${stack.url}/console/console.js`)).text(), await readFile(SCRIPT, "utf8"));
  });
});

describe("GET /admin/stats", () => {
  it("is in the OpenAPI docs under admin; the console's files are not", async () => {
    const docs = (await (await fetch(`${stack.url}/docs/json`)).json()) as { paths: Record<string, { get?: { tags: string[]; responses: Record<string, { content: Record<string, { schema: { properties: Record<string, unknown> } }> }> } }> };
    const route = docs.paths["/admin/stats"]?.get;
    assert.deepEqual(route?.tags, ["admin"]);
    assert.deepEqual(Object.keys(route?.responses["200"].content["application/json"].schema.properties ?? {}).sort(), ["at", "deposits", "rejections", "reservations", "settlement", "sponsorships"]);
    assert.deepEqual(Object.keys(docs.paths).filter((path) => path.startsWith("/console")), []);
  });

  it("needs the admin token (401 without it or with a wrong one)", async () => {
    for (const token of [null, "0".repeat(64)]) {
      const answer = await getStats(token);
      assert.equal(answer.status, 401);
      assert.equal(answer.body.error?.code, "UNAUTHENTICATED");
      assert.match(answer.headers.get("www-authenticate") ?? "", /^Bearer /);
    }
  });

  it("counts a sponsorship and a rejection by its code, and reports the deposit against the floor as exact decimal strings", async () => {
    const before = await getStats();
    assert.equal(before.status, 200, JSON.stringify(before.body));
    assert.equal(before.headers.get("cache-control"), "no-store");
    const rejectedBefore = before.body.rejections.find((row) => row.method === "pm_getPaymasterData" && row.code === "ACCOUNT_FROZEN")?.count ?? 0;

    const signed = await sponsor();
    assert.ok(signed.body.result, JSON.stringify(signed.body));
    const refused = await sponsor({ frozen: true });
    assert.equal(refused.body.error?.data.code, "ACCOUNT_FROZEN", JSON.stringify(refused.body));

    const { status, body } = await getStats();
    assert.equal(status, 200);
    assert.equal(body.sponsorships.signed, before.body.sponsorships.signed + 1);
    assert.equal(body.sponsorships.rejected, before.body.sponsorships.rejected + 1);
    assert.equal(body.sponsorships.byOutcome.ACCOUNT_FROZEN, (before.body.sponsorships.byOutcome.ACCOUNT_FROZEN ?? 0) + 1);
    assert.equal(body.rejections.find((row) => row.method === "pm_getPaymasterData" && row.code === "ACCOUNT_FROZEN")?.count, rejectedBefore + 1);
    assert.ok(body.rejections.every((row) => row.code !== "ok"));

    // The signed op holds fen: the reserved total moved by exactly its charge.
    // The gauge behind it is refreshed on the worker's poll, so wait for the poll after the sponsorship.
    const totals = await stack.service.ledger.totals();
    let reservedFen = body.reservations.reservedFen;
    assert.ok(
      await within(5_000, async () => {
        reservedFen = (await getStats()).body.reservations.reservedFen;
        return reservedFen === totals.reservedFen.toString();
      }),
      `stats reserved ${reservedFen}, the ledger ${totals.reservedFen}`,
    );
    assert.ok(BigInt(reservedFen ?? "0") > BigInt(before.body.reservations.reservedFen ?? "0"));

    // The guard refreshes its figures on its own poll: compare one answer with the figures of that moment.
    const sameAsGuard = (rows: typeof body.deposits) =>
      rows.length > 0 &&
      rows.every((row) => {
        const figures = stack.service.depositGuard.figures(row.entryPointVersion as "0.7" | "0.8");
        const expected = figures && [figures.depositWei, figures.floorWei, figures.inFlightWei, figures.headroomWei, figures.capWei, figures.degraded].map((value) => (typeof value === "bigint" ? value.toString() : value));
        return JSON.stringify([row.depositWei, row.floorWei, row.inFlightWei, row.headroomWei, row.capWei, row.degraded]) === JSON.stringify(expected);
      });
    let deposits = body.deposits;
    assert.ok(
      await within(5_000, async () => {
        deposits = (await getStats()).body.deposits;
        return sameAsGuard(deposits);
      }),
      `the deposit figures are the guard's: ${JSON.stringify(deposits)}`,
    );
    for (const row of deposits) {
      assert.equal(row.entryPoint, stack.entryPoint(row.entryPointVersion as "0.7" | "0.8"));
      assert.equal(row.floorWei, FIXTURE_POLICY.global?.depositFloorWei ?? "0");
      for (const value of [row.depositWei, row.floorWei, row.inFlightWei, row.headroomWei, row.capWei]) assert.match(value, /^-?\d+$/);
    }
    assert.match(body.settlement.chargedFen, /^\d+$/);
    assert.ok(!Number.isNaN(Date.parse(body.at)));
  });
});

describe("console script", () => {
  it("never writes markup: no innerHTML, outerHTML, insertAdjacentHTML, document.write or eval", async () => {
    const script = await readFile(SCRIPT, "utf8");
    for (const sink of [/\binnerHTML\b/, /\bouterHTML\b/, /\binsertAdjacentHTML\b/, /\bdocument\.write(ln)?\b/, /\beval\s*\(/, /\bnew\s+Function\b/, /\bcreateContextualFragment\b/, /\bDOMParser\b/, /setAttribute\(\s*["'`]on/, /\.src\s*=|\.href\s*=/]) {
      assert.doesNotMatch(script, sink, `the console script uses ${sink}`);
    }
  });

  it("keeps the token in sessionStorage only and calls nothing but the same-origin /admin API", async () => {
    const script = await readFile(SCRIPT, "utf8");
    assert.doesNotMatch(script, /localStorage|document\.cookie|indexedDB/);
    assert.equal([...script.matchAll(/\bfetch\(/g)].length, 1, "one fetch, in the api() helper");
    const calls = [...script.matchAll(/\bapi\(\s*"(GET|PUT|POST)",\s*(["`])([^"`]*)\2/g)].map(([, , , path]) => path);
    assert.ok(calls.length >= 7, `found ${calls.length} API calls`);
    for (const path of calls) assert.match(path, /^\/admin\//, path);
  });
});
