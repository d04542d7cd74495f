// The faithful gateway sandbox: one loopback HTTP server that plays both gateways (their APIs,
// through the simulators), the payer (the cashier page) and a JSON control API for tests and the
// local stack. Notifications leave through one in-memory delivery shared by both simulators, so
// a restarted sandbox forgets the ones still undelivered; its keys can survive in a keys file.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";

import Fastify, { type FastifyPluginAsync, type FastifyReply, type FastifyServerOptions } from "fastify";
import { type ZodTypeProvider, validatorCompiler } from "fastify-type-provider-zod";
import { z } from "zod";

import { ServiceError } from "../../service/errors.ts";
import { CHANNELS, type Channel, ORDER_ID } from "../../service/gateways/gateway.ts";
import { sendHttpError } from "../../service/httpErrors.ts";
import { StartupError } from "../../service/startupError.ts";
import { type AlipaySimulator, type AlipaySimulatorKeys, createAlipaySimulator } from "./alipay.ts";
import { CASHIER_HEADERS, renderCashierPage, renderMessagePage } from "./cashier.ts";
import { type SandboxDelivery, createNotificationDelivery } from "./delivery.ts";
import type { GatewaySimulator, SandboxOrder } from "./simulator.ts";
import { type WechatPaySimulator, type WechatPaySimulatorKeys, createWechatPaySimulator } from "./wechatpay.ts";

export type SandboxOptions = {
  /** Loopback by default; the sandbox has no authentication. */
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Divides the gateways' retry waits, at least 1 (3600: an hour becomes a second). */
  timeScale?: number;
  /** Concurrent copies of each notification attempt, as WeChat sends from several servers. */
  duplicates?: number;
  /** Deliveries repeated after an acknowledgement, as if the gateway had lost it. */
  redeliverAfterAck?: number;
  /** Send WeChat's mis-signed SIGNTEST probes before each notification. */
  probes?: boolean;
  /** Keeps the simulators' keys across restarts: read if it exists, written (0600) when keys are made. */
  keysFile?: string;
  /** Fastify's logger option; off by default. */
  logger?: FastifyServerOptions["logger"];
  /** The simulators' clock, unix seconds; the system clock by default. */
  now?: () => number;
};

/** A running sandbox. */
export type Sandbox = {
  /** Where it listens, e.g. http://127.0.0.1:43121 (no trailing slash). */
  url: string;
  /** Both simulators' settings for the service, merged. */
  environment(): Record<string, string>;
  delivery: SandboxDelivery;
  simulators: SandboxSimulators;
  /** Stops delivery, then the server. */
  close(): Promise<void>;
};

/** Both simulators, with their sandbox-only controls (Alipay `scan`, WeChat `settleRefund`). */
export type SandboxSimulators = { alipay: AlipaySimulator; wechatpay: WechatPaySimulator };
type Simulators = Record<Channel, GatewaySimulator>;
type Handler = (request: IncomingMessage, response: ServerResponse) => void;


const orderParams = z.object({
  channel: z.enum(CHANNELS, { error: `channel must be one of ${CHANNELS.join(", ")}` }),
  orderId: z.string().regex(ORDER_ID, "orderId must be 6-32 characters of A-Z, a-z, 0-9, _ and -"),
});

const refundBody = z.object({
  refundFen: z.string().regex(/^[1-9][0-9]{0,15}$/, 'refundFen must be a positive whole number of fen as a string, e.g. "150"'),
});

const notificationsQuery = z.object({ id: z.string().min(1).max(128).optional() });

/** Starts the sandbox: both simulators, the cashier and the control API on one server. */
export async function startSandbox({
  host = "127.0.0.1",
  port = 0,
  timeScale = 1,
  duplicates = 1,
  redeliverAfterAck = 0,
  probes = false,
  keysFile,
  logger = false,
  now,
}: SandboxOptions = {}): Promise<Sandbox> {
  const savedKeys = keysFile === undefined ? {} : readKeysFile(keysFile);

  // The simulators need the base URL before their routes exist, and fastify takes no routes once
  // listening: so the socket listens first, answering 503 until fastify is ready behind it.
  let handle: Handler | undefined;
  let fastifyHandler: Handler | undefined;
  const server = createServer((request, response) => {
    if (handle) return handle(request, response);
    response.writeHead(503, { "content-type": "text/plain; charset=utf-8" }).end("the sandbox is starting\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`;

  const app = Fastify({
    logger,
    serverFactory: (handler) => {
      fastifyHandler = handler;
      return server;
    },
  });
  const delivery = createNotificationDelivery({ timeScale, duplicates, redeliverAfterAck, probes, logger: app.log });
  const close = async () => {
    await delivery.stop();
    await app.close();
    await closeServer(server);
  };
  try {
    const simulators: SandboxSimulators = {
      alipay: withSavedKeys(savedKeys.alipay && keysFile, "alipay", () => createAlipaySimulator({ baseUrl: url, delivery, now, keys: savedKeys.alipay })),
      wechatpay: withSavedKeys(savedKeys.wechatpay && keysFile, "wechatpay", () => createWechatPaySimulator({ baseUrl: url, delivery, now, keys: savedKeys.wechatpay })),
    };
    // Written only when a simulator had to make keys, so a complete file is never rewritten.
    if (keysFile !== undefined && (savedKeys.alipay === undefined || savedKeys.wechatpay === undefined)) {
      writePrivateFile(keysFile, `${JSON.stringify({ alipay: simulators.alipay.keys, wechatpay: simulators.wechatpay.keys }, null, 2)}\n`);
    }
    // Each simulator in its own scope: their body parsers and hooks cannot collide.
    for (const simulator of Object.values(simulators)) await app.register(async (scope) => simulator.register(scope));
    await app.register(cashierRoutes, { simulators });
    await app.register(controlRoutes, { simulators, delivery });
    await app.ready();
    // A clash between the simulators' settings fails the start, not the first GET.
    mergeEnvironments(simulators);
    handle = fastifyHandler;
    return { url, environment: () => mergeEnvironments(simulators), delivery, simulators, close };
  } catch (error) {
    await close();
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Routes

/** GET /cashier/:channel/:orderId and its Pay form's POST, as HTML pages. */
const cashierRoutes: FastifyPluginAsync<{ simulators: Simulators }> = async (app, { simulators }) => {
  // A browser posts the empty Pay form as a urlencoded body; nothing in it matters.
  app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_request, _body, done) => done(null, undefined));
  app.setErrorHandler((error, request, reply) => {
    request.log.error({ err: error }, "cashier error");
    return sendPage(reply, 500, renderMessagePage("Sandbox error", "The sandbox failed to handle this request; see its log."));
  });

  /** The order the URL names, or the error page to answer with. */
  const lookUp = (params: unknown): { status: number; html: string } | { simulator: GatewaySimulator; order: SandboxOrder; page: string } => {
    const parsed = orderParams.safeParse(params);
    if (!parsed.success) return { status: 400, html: renderMessagePage("Bad cashier address", parsed.error.issues.map((issue) => issue.message).join("; ")) };
    const { channel, orderId } = parsed.data;
    const order = simulators[channel].order(orderId);
    if (!order) return { status: 404, html: renderMessagePage("No such order", `The ${channel} sandbox has no order ${orderId}.`) };
    return { simulator: simulators[channel], order, page: `/cashier/${channel}/${orderId}` };
  };

  app.get("/cashier/:channel/:orderId", async (request, reply) => {
    const found = lookUp(request.params);
    if ("html" in found) return sendPage(reply, found.status, found.html);
    return sendPage(reply, 200, await renderCashierPage(found.order, `${found.page}/pay`));
  });

  app.post("/cashier/:channel/:orderId/pay", async (request, reply) => {
    const found = lookUp(request.params);
    if ("html" in found) return sendPage(reply, found.status, found.html);
    try {
      found.simulator.pay(found.order.orderId);
    } catch (error) {
      request.log.warn({ err: error }, "the simulator refused a cashier payment");
      return sendPage(reply, 409, renderMessagePage("Payment refused", refusal(error)));
    }
    // 303: the browser follows with a GET, so reloading the page cannot pay twice.
    return reply.redirect(found.page, 303);
  });
};

/** The JSON control API: pay, refund at the gateway, inspect orders, notifications and settings. */
const controlRoutes: FastifyPluginAsync<{ simulators: Simulators; delivery: SandboxDelivery }> = async (fastify, { simulators, delivery }) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setErrorHandler(sendHttpError);

  const existing = ({ channel, orderId }: z.output<typeof orderParams>) => {
    const simulator = simulators[channel];
    const order = simulator.order(orderId);
    if (!order) throw new ServiceError("NOT_FOUND", `the ${channel} sandbox has no order ${orderId}`);
    return { simulator, order };
  };
  /** Runs a simulator action; a refusal (already paid, refund too large…) is a 409 with its reason. */
  const act = (reply: FastifyReply, action: () => SandboxOrder) => {
    try {
      return orderJson(action());
    } catch (error) {
      reply.log.warn({ err: error }, "the simulator refused a control request");
      return reply.code(409).send({ error: { code: "SANDBOX_REFUSED", message: refusal(error) } });
    }
  };

  app.get("/sandbox/environment", async () => mergeEnvironments(simulators));

  app.get("/sandbox/notifications", { schema: { querystring: notificationsQuery } }, async (request) => {
    const { id } = request.query;
    return {
      deliveries: delivery.deliveries().filter((summary) => id === undefined || summary.id === id),
      attempts: delivery.attempts(id),
    };
  });

  app.get("/sandbox/:channel/:orderId", { schema: { params: orderParams } }, async (request) => orderJson(existing(request.params).order));

  app.post("/sandbox/:channel/:orderId/pay", { schema: { params: orderParams } }, async (request, reply) => {
    const { simulator } = existing(request.params);
    return act(reply, () => simulator.pay(request.params.orderId));
  });

  app.post("/sandbox/:channel/:orderId/refund", { schema: { params: orderParams, body: refundBody } }, async (request, reply) => {
    const { simulator } = existing(request.params);
    return act(reply, () => simulator.refundFromConsole(request.params.orderId, BigInt(request.body.refundFen)));
  });
};

function sendPage(reply: FastifyReply, status: number, html: string) {
  return reply.code(status).headers(CASHIER_HEADERS).send(html);
}

/** A simulator's reason for refusing; the simulators are ours, so their messages are safe to show. */
function refusal(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A SandboxOrder as JSON: fen amounts as integer strings. */
function orderJson(order: SandboxOrder) {
  return { ...order, amountFen: order.amountFen.toString(), refundedFen: order.refundedFen.toString() };
}

/** Both simulators' settings as one set; a name both define differently is a simulator bug. */
function mergeEnvironments(simulators: Simulators): Record<string, string> {
  const merged: Record<string, string> = {};
  for (const simulator of Object.values(simulators)) {
    for (const [name, value] of Object.entries(simulator.merchantEnvironment())) {
      if (name in merged && merged[name] !== value) throw new Error(`both simulators set ${name}, differently`);
      merged[name] = value;
    }
  }
  return merged;
}

function closeServer(server: Server) {
  if (!server.listening) return Promise.resolve();
  server.closeAllConnections();
  return new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
}

// ---------------------------------------------------------------------------------------------
// The keys file: { "alipay": AlipaySimulatorKeys, "wechatpay": WechatPaySimulatorKeys }, PEM strings.

const keysFileSchema = z.object({
  alipay: z.record(z.string(), z.string()).optional(),
  wechatpay: z.record(z.string(), z.string()).optional(),
});
type SavedKeys = { alipay?: AlipaySimulatorKeys; wechatpay?: WechatPaySimulatorKeys };

function readKeysFile(file: string): SavedKeys {
  if (!existsSync(file)) return {};
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new StartupError("cannot use the sandbox keys file", [`${file}: ${error instanceof Error ? error.message : String(error)}`]);
  }
  const parsed = keysFileSchema.safeParse(json);
  if (!parsed.success) throw new StartupError("cannot use the sandbox keys file", [`${file} must be a JSON object whose "alipay" and "wechatpay" entries map names to strings`]);
  // Each simulator checks its own keys' fields and key material.
  return parsed.data as SavedKeys;
}

/** Creates a simulator; keys it refuses from `file` (set when they came from there) make a startup error naming it. */
function withSavedKeys<T>(file: string | undefined, channel: Channel, create: () => T): T {
  try {
    return create();
  } catch (error) {
    if (file === undefined) throw error;
    throw new StartupError("cannot use the sandbox keys file", [`${file}: the ${channel} keys are unusable (${error instanceof Error ? error.message : String(error)})`]);
  }
}

/** Writes a file only its owner can read (0600), atomically, creating its folder. */
export function writePrivateFile(file: string, text: string) {
  mkdirSync(path.dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, text, { mode: 0o600 });
  renameSync(temporary, file);
}
