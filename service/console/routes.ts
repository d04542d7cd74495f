// The operator console: one HTML page, a plain ES module and a stylesheet, served as they are (no
// build step, nothing from another origin). The page holds no secret: it asks for the admin token
// and calls the /admin API with it, which checks it as for any other caller.
import { readFile } from "node:fs/promises";

import type { FastifyPluginAsync, FastifyReply } from "fastify";

/**
 * Same-origin only, and no inline script or style: every value the page shows comes from the API,
 * so a script that slipped into one could not run, nor send anything elsewhere.
 */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** The console's files, by the path they are served at. */
const ASSETS = {
  "/console": { file: "index.html", type: "text/html; charset=utf-8" },
  "/console/console.js": { file: "console.js", type: "text/javascript; charset=utf-8" },
  "/console/console.css": { file: "console.css", type: "text/css; charset=utf-8" },
} as const;

/** Headers on every console file: the CSP, no sniffing, no framing, no referrer carrying the URL away. */
function secure(reply: FastifyReply, type: string): FastifyReply {
  return reply
    .type(type)
    .header("content-security-policy", CONSOLE_CSP)
    .header("x-content-type-options", "nosniff")
    .header("x-frame-options", "DENY")
    .header("referrer-policy", "no-referrer")
    .header("cache-control", "no-cache");
}

/** `GET /console` and its assets; register with `app.register(consoleRoutes)`. The files are read once, at registration. */
export const consoleRoutes: FastifyPluginAsync = async (app) => {
  for (const [path, { file, type }] of Object.entries(ASSETS)) {
    const content = await readFile(new URL(file, import.meta.url));
    app.get(path, { schema: { hide: true } }, async (_request, reply) => secure(reply, type).send(content));
  }
};
