// The sandbox cashier: the page a payer would see after scanning, with the order's QR code and a
// "Pay" button standing in for the wallet app. Self-contained HTML: no scripts, no external assets,
// every interpolated string escaped.
import QRCode from "qrcode";

import { fenToYuan } from "../../service/gateways/alipay/signing.ts";
import type { Channel } from "../../service/gateways/gateway.ts";
import type { SandboxOrder } from "./simulator.ts";

const CHANNEL_NAMES: Record<Channel, string> = { alipay: "Alipay 支付宝", wechatpay: "WeChat Pay 微信支付" };

/** Headers for every cashier page: nothing may load from elsewhere or be cached. */
export const CASHIER_HEADERS = {
  "content-type": "text/html; charset=utf-8",
  "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
  "cache-control": "no-store",
} as const;

/** Escapes text for HTML content and double- or single-quoted attributes. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

const STYLE = `body{font-family:system-ui,sans-serif;max-width:30rem;margin:2rem auto;padding:0 1rem;color:#222}
.banner{background:#fff3cd;padding:.5rem;border-radius:4px;font-size:.9rem}
dl{display:grid;grid-template-columns:auto 1fr;gap:.3rem 1rem}dt{color:#666}dd{margin:0;word-break:break-all}
.amount{font-size:1.6rem;font-weight:600}.qr svg{width:14rem;height:14rem}.qr code{display:block;font-size:.75rem;word-break:break-all}
button{font-size:1.1rem;padding:.6rem 2rem}`;

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><style>${STYLE}</style></head>
<body><p class="banner">FiatGas gateway sandbox: no real money moves.</p>
${body}
</body></html>
`;
}

/** The cashier page of one order; `payAction` is where its Pay form posts. */
export async function renderCashierPage(order: SandboxOrder, payAction: string): Promise<string> {
  const name = CHANNEL_NAMES[order.channel];
  const amount = `${order.currency} ${fenToYuan(order.amountFen)}`;
  const expires = Number.isFinite(order.expiresAt) ? new Date(order.expiresAt * 1000).toISOString() : String(order.expiresAt);
  const rows: [string, string][] = [
    ["Subject", order.subject],
    ["Order", order.orderId],
    ["State", order.state],
  ];
  if (order.refundedFen > 0n) rows.push(["Refunded", `${order.currency} ${fenToYuan(order.refundedFen)}`]);
  rows.push(["Expires", expires]);
  // Only an open order has anything to scan or pay; the simulator decides whether paying is allowed.
  const payable =
    order.state === "pending"
      ? `<figure class="qr">${await QRCode.toString(order.qrContent, { type: "svg", margin: 1 })}<figcaption><code>${escapeHtml(order.qrContent)}</code></figcaption></figure>
<form method="post" action="${escapeHtml(payAction)}"><button type="submit">Pay ${escapeHtml(amount)}</button></form>`
      : `<p>This order is ${escapeHtml(order.state)}: there is nothing to pay.</p>`;
  return page(
    `${name} · ${order.orderId}`,
    `<h1>${escapeHtml(name)}</h1>
<p class="amount">${escapeHtml(amount)}</p>
<dl>${rows.map(([term, value]) => `<dt>${term}</dt><dd>${escapeHtml(value)}</dd>`).join("")}</dl>
${payable}`,
  );
}

/** A page with one message, for unknown orders, bad addresses and refused payments. */
export function renderMessagePage(title: string, message: string): string {
  return page(title, `<h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p>`);
}
