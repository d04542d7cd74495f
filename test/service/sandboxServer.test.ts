// The sandbox shell with the real simulators, driven the way the local stack drives it: the
// service's own gateway adapters, configured from the sandbox's merchant environment, open the
// orders; a merchant endpoint on 127.0.0.1 verifies what arrives. Covers the cashier page and its
// Pay form, the JSON control API (including its 400s and 404s) and keys kept across restarts.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";

import Fastify, { type FastifyInstance } from "fastify";

import { type Sandbox, startSandbox } from "../../scripts/sandbox/server.ts";
import { parseConfig } from "../../service/config.ts";
import { alipayConfigSchema } from "../../service/gateways/alipay/config.ts";
import type { Channel, GatewayNotification, PaymentGateway } from "../../service/gateways/gateway.ts";
import { createGateways } from "../../service/gateways/index.ts";
import { wechatPayConfigSchema } from "../../service/gateways/wechatpay/config.ts";
import { StartupError } from "../../service/startupError.ts";

const SUBJECT = `Gas <script>alert("x")</script> & 'more'`;

const folder = mkdtempSync(path.join(tmpdir(), "fiatgas-sandbox-"));
const keysFile = path.join(folder, "keys.json");
let sandbox: Sandbox;
let receiver: FastifyInstance;
let gateways: Partial<Record<Channel, PaymentGateway>>;
/** Every notification the merchant endpoint verified, and every one it refused. */
const verified: { channel: Channel; notification: GatewayNotification }[] = [];
const refused: { channel: Channel; reason: string }[] = [];

before(async () => {
  // The merchant: verifies over the raw body, as the service's webhooks do.
  receiver = Fastify();
  receiver.removeAllContentTypeParsers();
  receiver.addContentTypeParser("*", { parseAs: "buffer" }, (_request, body, done) => done(null, body));
  receiver.post<{ Params: { channel: Channel } }>("/webhooks/:channel", async (request, reply) => {
    const { channel } = request.params;
    try {
      const notification = gateways[channel]!.parseNotification({ headers: request.headers, rawBody: request.body as Buffer }, Math.floor(Date.now() / 1000));
      verified.push({ channel, notification });
    } catch (error) {
      refused.push({ channel, reason: String(error) });
      return channel === "alipay" ? reply.type("text/plain").send("fail") : reply.code(401).send({ code: "FAIL", message: "rejected" });
    }
    return channel === "alipay" ? reply.type("text/plain").send("success") : reply.code(204).send();
  });
  await receiver.listen({ host: "127.0.0.1", port: 0 });
  const { port } = receiver.server.address() as { port: number };

  sandbox = await startSandbox({ timeScale: 1e6, probes: true, keysFile });
  const environment = sandbox.environment();
  gateways = createGateways({
    ...parseConfig(alipayConfigSchema, environment),
    ...parseConfig(wechatPayConfigSchema, environment),
    PUBLIC_BASE_URL: `http://127.0.0.1:${port}`,
  });
});

after(async () => {
  await sandbox?.close();
  await receiver?.close();
  rmSync(folder, { recursive: true, force: true });
});

let orders = 0;
/** Opens an order at the sandbox through the service's adapter for `channel`. */
async function openOrder(channel: Channel, amountFen = 1234n) {
  const orderId = `SBX${Date.now()}${++orders}`;
  await gateways[channel]!.createPayment({ orderId, amountFen, currency: "CNY", subject: SUBJECT, expiresAt: Math.floor(Date.now() / 1000) + 1800 });
  return orderId;
}

async function call(method: string, route: string, body?: unknown) {
  const response = await fetch(`${sandbox.url}${route}`, {
    method,
    redirect: "manual",
    ...(body === undefined ? {} : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
  });
  const text = await response.text();
  const json = response.headers.get("content-type")?.startsWith("application/json") ? (JSON.parse(text) as Record<string, unknown>) : undefined;
  return { status: response.status, headers: response.headers, text, json };
}

/** The error body of a 4xx answer: `{ error: { code, message } }`. */
function errorOf(answer: Awaited<ReturnType<typeof call>>, status: number, code: string) {
  assert.equal(answer.status, status, answer.text);
  const { error } = answer.json as { error: { code: string; message: string } };
  assert.equal(error.code, code, answer.text);
  return error.message;
}

describe("the cashier", () => {
  it("shows an open order: channel, amount in yuan, escaped subject, an SVG QR code and the Pay form", async () => {
    const orderId = await openOrder("alipay", 120_005n);
    const page = await call("GET", `/cashier/alipay/${orderId}`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'none'/);
    assert.match(page.text, /Alipay/);
    assert.match(page.text, /CNY 1200\.05/);
    assert.match(page.text, /<svg[^>]*>[\s\S]*<\/svg>/);
    assert.ok(page.text.includes(`<form method="post" action="/cashier/alipay/${orderId}/pay">`));
    // The subject arrives escaped, never as markup.
    assert.ok(!page.text.includes("<script>"), "unescaped subject");
    assert.ok(page.text.includes("Gas &#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62; &#38; &#39;more&#39;"));
    // The QR code's payload is the order's, as the simulator holds it.
    const order = await call("GET", `/sandbox/alipay/${orderId}`);
    assert.ok(page.text.includes(String(order.json?.qrContent).replaceAll("&", "&#38;")));
  });

  it("pays through the form: 303 back to the page, the order is paid, the merchant gets a verified notification", async () => {
    const orderId = await openOrder("alipay");
    const paid = await fetch(`${sandbox.url}/cashier/alipay/${orderId}/pay`, {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "",
    });
    assert.equal(paid.status, 303);
    assert.equal(paid.headers.get("location"), `/cashier/alipay/${orderId}`);
    await sandbox.delivery.idle();

    const order = await call("GET", `/sandbox/alipay/${orderId}`);
    assert.deepEqual([order.json?.state, order.json?.amountFen, order.json?.refundedFen], ["paid", "1234", "0"]);
    const delivered = verified.find(({ notification }) => notification.orderId === orderId);
    assert.ok(delivered, `no verified notification for ${orderId}; refused: ${JSON.stringify(refused)}`);
    const { channel, notification } = delivered;
    assert.deepEqual([channel, notification.kind, notification.kind === "payment" && notification.amountFen], ["alipay", "payment", 1234n]);

    // Paid: the page says so and offers nothing to pay.
    const page = await call("GET", `/cashier/alipay/${orderId}`);
    assert.match(page.text, /paid/);
    assert.ok(!page.text.includes("<form"));
    assert.ok(!page.text.includes("<svg"));
    // Paying again is refused by the simulator, as a page.
    const again = await fetch(`${sandbox.url}/cashier/alipay/${orderId}/pay`, { method: "POST", redirect: "manual", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "" });
    assert.equal(again.status, 409);
  });

  it("answers an unknown order with a 404 page and a malformed address with a 400 page", async () => {
    const unknown = await call("GET", "/cashier/wechatpay/NOSUCHORDER1");
    assert.equal(unknown.status, 404);
    assert.match(unknown.text, /no order NOSUCHORDER1/);
    assert.equal((await call("POST", "/cashier/alipay/NOSUCHORDER1/pay")).status, 404);
    const malformed = await call("GET", "/cashier/paypal/%3Cb%3Ex%3C%2Fb%3E");
    assert.equal(malformed.status, 400);
    assert.match(malformed.text, /channel must be one of alipay, wechatpay/);
    assert.ok(!malformed.text.includes("<b>x"));
  });
});

describe("the control API", () => {
  it("pays and refunds a WeChat Pay order; the merchant verifies both notifications and refuses the probe", async () => {
    const orderId = await openOrder("wechatpay", 500n);
    const paid = await call("POST", `/sandbox/wechatpay/${orderId}/pay`);
    assert.equal(paid.status, 200, paid.text);
    assert.deepEqual([paid.json?.state, paid.json?.amountFen], ["paid", "500"]);
    const refunded = await call("POST", `/sandbox/wechatpay/${orderId}/refund`, { refundFen: "120" });
    assert.equal(refunded.status, 200, refunded.text);
    assert.equal(refunded.json?.refundedFen, "120");
    await sandbox.delivery.idle();

    const facts = verified.filter(({ notification }) => notification.orderId === orderId).map(({ notification }) => notification);
    assert.deepEqual(facts.map((fact) => fact.kind).sort(), ["payment", "refund"]);
    const refund = facts.find((fact) => fact.kind === "refund");
    assert.deepEqual([refund?.kind === "refund" && refund.status, refund?.kind === "refund" && refund.refundFen], ["succeeded", 120n]);

    // Probes went first and the merchant, verifying properly, did not acknowledge them.
    const log = await call("GET", "/sandbox/notifications");
    const deliveries = (log.json?.deliveries as { channel: string; state: string; probeAcknowledged?: boolean }[]).filter(({ channel }) => channel === "wechatpay");
    assert.ok(deliveries.length >= 2);
    for (const delivery of deliveries) assert.deepEqual([delivery.state, delivery.probeAcknowledged], ["acknowledged", false]);
    const attempts = log.json?.attempts as { channel: string; probe?: boolean; acknowledged: boolean; status: number }[];
    assert.ok(attempts.some(({ channel, probe, status }) => channel === "wechatpay" && probe && status === 401));
  });

  it("refuses what the simulator refuses with 409 and its reason", async () => {
    const orderId = await openOrder("alipay", 300n);
    assert.equal((await call("POST", `/sandbox/alipay/${orderId}/pay`)).status, 200);
    assert.match(errorOf(await call("POST", `/sandbox/alipay/${orderId}/pay`), 409, "SANDBOX_REFUSED"), /cannot be paid/);
    errorOf(await call("POST", `/sandbox/alipay/${orderId}/refund`, { refundFen: "301" }), 409, "SANDBOX_REFUSED");
    await sandbox.delivery.idle();
  });

  it("validates every input (400) and answers unknown orders with 404", async () => {
    assert.match(errorOf(await call("GET", "/sandbox/paypal/ORDER1234"), 400, "INVALID_PARAMS"), /channel must be one of alipay, wechatpay/);
    assert.match(errorOf(await call("GET", "/sandbox/alipay/abc"), 400, "INVALID_PARAMS"), /orderId must be 6-32 characters/);
    assert.match(errorOf(await call("POST", "/sandbox/alipay/bad.order.id/pay"), 400, "INVALID_PARAMS"), /orderId/);
    const orderId = await openOrder("wechatpay");
    for (const body of [{ refundFen: "1.50" }, { refundFen: 150 }, { refundFen: "0" }, { refundFen: "-5" }, {}]) {
      assert.match(errorOf(await call("POST", `/sandbox/wechatpay/${orderId}/refund`, body), 400, "INVALID_PARAMS"), /refundFen/, JSON.stringify(body));
    }
    errorOf(await call("POST", `/sandbox/wechatpay/${orderId}/refund`), 400, "INVALID_PARAMS");
    // Nothing above touched the order.
    assert.equal((await call("GET", `/sandbox/wechatpay/${orderId}`)).json?.state, "pending");

    assert.match(errorOf(await call("GET", "/sandbox/alipay/NOSUCHORDER1"), 404, "NOT_FOUND"), /no order NOSUCHORDER1/);
    errorOf(await call("POST", "/sandbox/wechatpay/NOSUCHORDER1/pay"), 404, "NOT_FOUND");
    errorOf(await call("POST", "/sandbox/alipay/NOSUCHORDER1/refund", { refundFen: "1" }), 404, "NOT_FOUND");
  });

  it("serves the merged merchant environment, pointing at the sandbox", async () => {
    const answer = await call("GET", "/sandbox/environment");
    assert.deepEqual(answer.json, sandbox.environment());
    assert.equal(answer.json?.ALIPAY_GATEWAY_URL, `${sandbox.url}/alipay/gateway.do`);
    assert.equal(answer.json?.WECHATPAY_API_URL, `${sandbox.url}/wechatpay`);
  });
});

describe("keys", () => {
  /** The environment without the sandbox's URLs, which change with the port. */
  const keysOf = (environment: Record<string, string>) => Object.fromEntries(Object.entries(environment).filter(([name]) => !name.endsWith("_URL")));

  it("writes the keys file 0600 and a restarted sandbox reuses it, leaving it as it was", async () => {
    assert.equal(statSync(keysFile).mode & 0o777, 0o600);
    const before = readFileSync(keysFile, "utf8");
    const restarted = await startSandbox({ keysFile });
    try {
      assert.notEqual(restarted.url, sandbox.url);
      assert.deepEqual(keysOf(restarted.environment()), keysOf(sandbox.environment()));
      assert.equal(readFileSync(keysFile, "utf8"), before);
    } finally {
      await restarted.close();
    }
    // Without the file, keys are new: the equality above is not a coincidence.
    const fresh = await startSandbox();
    try {
      assert.notEqual(fresh.environment().ALIPAY_PUBLIC_KEY, sandbox.environment().ALIPAY_PUBLIC_KEY);
      assert.notEqual(fresh.environment().WECHATPAY_APIV3_KEY, sandbox.environment().WECHATPAY_APIV3_KEY);
    } finally {
      await fresh.close();
    }
  });

  it("refuses to start on an unreadable keys file, naming it", async () => {
    const broken = path.join(folder, "broken.json");
    writeFileSync(broken, "{ not json");
    await assert.rejects(startSandbox({ keysFile: broken }), (error) => error instanceof StartupError && error.message.includes(broken));
    writeFileSync(broken, JSON.stringify({ alipay: { alipayPrivateKey: "not a key", appPrivateKey: "not a key" } }));
    await assert.rejects(startSandbox({ keysFile: broken }), (error) => error instanceof StartupError && /alipay keys are unusable/.test(error.message));
  });
});
