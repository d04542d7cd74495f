// The operator console's script: a plain ES module, served as it is. It calls the /admin API with
// the token the operator types in, which stays in this tab's sessionStorage. Every value from the
// API reaches the page as text (textContent, or strings given to append()), never as markup.
/* global document, window, sessionStorage, fetch, confirm, URLSearchParams */

const TOKEN_KEY = "fiatgas.console.token";
const ACTOR_KEY = "fiatgas.console.actor";
const LIVE_INTERVAL_MS = 5_000;

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------------------------
// DOM helpers: strings become text nodes, so data is never parsed as HTML.

/** An element with optional class, text and attributes, and children (nodes or plain text). */
function h(tag, { className, text, attrs, onClick } = {}, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs ?? {})) node.setAttribute(name, String(value));
  if (onClick) node.addEventListener("click", onClick);
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

/** Sets an element's text, replacing whatever it held. */
function say(element, message, className = "") {
  element.textContent = message;
  element.className = className;
}

/** A table: `columns` are `{ label, value(row), number? }`; value returns text or a node. */
function table(columns, rows, empty = "None.") {
  if (rows.length === 0) return h("p", { className: "muted", text: empty });
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, ...columns.map((column) => h("th", { text: column.label })))),
    h(
      "tbody",
      {},
      ...rows.map((row) =>
        h(
          "tr",
          {},
          ...columns.map((column) => {
            const value = column.value(row);
            const cell = h("td", { className: column.number ? "number" : "" });
            cell.append(value === undefined || value === null ? "—" : value);
            return cell;
          }),
        ),
      ),
    ),
  );
}

/** A definition list of `[term, value]` pairs; value is text or a node. */
function figures(pairs) {
  const list = h("dl", { className: "figures" });
  for (const [term, value] of pairs) list.append(h("dt", { text: term }), h("dd", {}, value === undefined || value === null ? "—" : value));
  return list;
}

/** A table of objects keyed by name (a channel, an EntryPoint), one row each, columns from their fields. */
function keyedTable(keyLabel, record) {
  const entries = Object.entries(record ?? {}).filter(([, value]) => value);
  if (entries.length === 0) return h("p", { className: "muted", text: "Nothing configured." });
  const fields = Object.keys(entries[0][1]);
  return table(
    [{ label: keyLabel, value: ([key]) => key }, ...fields.map((field) => ({ label: field, value: ([, row]) => display(row[field]), number: /Fen$|Wei$|^events$|orders$/i.test(field) }))],
    entries,
  );
}

/** Any JSON value as one line of text. */
function display(value) {
  if (value === undefined || value === null) return "—";
  return typeof value === "string" ? value : JSON.stringify(value);
}

// ---------------------------------------------------------------------------------------------
// Money: decimal strings from the API, formatted with string arithmetic (never a float).

/** Integer minor units as a decimal amount: ("12345", 2) → "123.45", ("-5", 2) → "-0.05". */
function decimal(integer, places) {
  const negative = integer.startsWith("-");
  const digits = (negative ? integer.slice(1) : integer).padStart(places + 1, "0");
  const whole = digits.slice(0, digits.length - places);
  const fraction = digits.slice(digits.length - places);
  return `${negative ? "-" : ""}${whole}${places > 0 ? `.${fraction}` : ""}`;
}

const fen = (value, currency = "") => (value === undefined || value === null ? "—" : `${decimal(value, 2)}${currency ? ` ${currency}` : ""} (${value} fen)`);

function wei(value) {
  if (value === undefined || value === null) return "—";
  const ether = decimal(value, 18).replace(/\.?0+$/, "");
  return `${ether} ETH (${value} wei)`;
}

const unixTime = (seconds) => (typeof seconds === "number" ? new Date(seconds * 1000).toISOString() : "—");

// ---------------------------------------------------------------------------------------------
// The admin API.

class ApiError extends Error {
  constructor(status, error) {
    super(error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = error?.code ?? "HTTP_ERROR";
    this.data = error?.data ?? {};
  }
}

/** Calls the admin API; resolves to `{ body, headers }` or throws ApiError. */
async function api(method, path, { body, headers = {} } = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) throw new ApiError(401, { code: "UNAUTHENTICATED", message: "enter the admin token first" });
  const sent = { authorization: `Bearer ${token}`, ...headers };
  const actor = sessionStorage.getItem(ACTOR_KEY);
  if (actor) sent["x-admin-actor"] = actor;
  if (body !== undefined) sent["content-type"] = "application/json";
  const response = await fetch(path, { method, headers: sent, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store", credentials: "omit" });
  const text = await response.text();
  let parsed;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!response.ok) {
    if (response.status === 401) say($("session"), "The admin token was refused: enter it again.", "bad");
    throw new ApiError(response.status, parsed?.error);
  }
  return { body: parsed, headers: response.headers };
}

/** An error as one line for a status paragraph. */
const describe = (error) => (error instanceof ApiError ? `${error.code}: ${error.message}` : `Request failed: ${error.message}`);

/** A list of `{ path, message }` issues into `list`; returns whether there were any. */
function showIssues(list, issues, onPick) {
  list.replaceChildren();
  for (const { path, message } of issues ?? []) {
    const item = h("li", {}, h("code", { text: path || "(document)" }), ` ${message}`);
    if (onPick && path) {
      item.title = "Show in the editor";
      item.addEventListener("click", () => onPick(path));
    }
    list.append(item);
  }
  return list.childElementCount > 0;
}

// ---------------------------------------------------------------------------------------------
// Session: the token and the actor live in sessionStorage only.

function showSession() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const actor = sessionStorage.getItem(ACTOR_KEY);
  $("actor").value = actor ?? "";
  say($("session"), token ? `Token set for this tab${actor ? `, acting as ${actor}` : ""}. It is kept in sessionStorage only.` : "Not connected. The token is kept in this tab's sessionStorage only.", token ? "good" : "muted");
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  const actor = $("actor").value.trim();
  if (actor) sessionStorage.setItem(ACTOR_KEY, actor);
  else sessionStorage.removeItem(ACTOR_KEY);
  $("token").value = "";
  showSession();
  loadPolicy();
});

$("logout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(ACTOR_KEY);
  stopLive();
  showSession();
});

// ---------------------------------------------------------------------------------------------
// Tabs.

let activeTab = "policy";

function selectTab(name) {
  activeTab = name;
  for (const button of document.querySelectorAll("#tabs button")) button.classList.toggle("active", button.dataset.tab === name);
  for (const section of document.querySelectorAll("main > section")) section.hidden = section.id !== `tab-${name}`;
  if (name === "live") startLive();
  else stopLive();
}

for (const button of document.querySelectorAll("#tabs button")) button.addEventListener("click", () => selectTab(button.dataset.tab));

// ---------------------------------------------------------------------------------------------
// Policy: edit against a version (If-Match), field-level issues, history and rollback.

let policyEtag = null;

/** Selects the field a dotted issue path names, as far as the editor's text lets us find it. */
function pickPath(path) {
  const editor = $("policy-editor");
  let from = 0;
  let found = -1;
  for (const segment of path.split(".")) {
    const at = /^\d+$/.test(segment) ? -1 : editor.value.indexOf(`"${segment}"`, from);
    if (at >= 0) {
      found = at;
      from = at + segment.length + 2;
    }
  }
  if (found < 0) return;
  editor.focus();
  editor.setSelectionRange(found, from);
}

async function loadPolicy() {
  const message = $("policy-message");
  try {
    const { body } = await api("GET", "/admin/policy");
    policyEtag = body.etag;
    $("policy-editor").value = JSON.stringify(body.policy, null, 2);
    say($("policy-version"), `version ${body.version}`, "muted");
    say(message, "");
    $("policy-issues").replaceChildren();
  } catch (error) {
    say(message, describe(error), "bad");
  }
  await loadHistory();
}

async function savePolicy() {
  const message = $("policy-message");
  const issues = $("policy-issues");
  let document_;
  try {
    document_ = JSON.parse($("policy-editor").value);
  } catch (error) {
    say(message, "The document is not valid JSON; nothing was sent.", "bad");
    showIssues(issues, [{ path: "", message: error.message }]);
    return;
  }
  try {
    const { body } = await api("PUT", "/admin/policy", { body: document_, headers: { "if-match": policyEtag ?? '"0"' } });
    policyEtag = body.etag;
    $("policy-editor").value = JSON.stringify(body.policy, null, 2);
    say($("policy-version"), `version ${body.version}`, "muted");
    say(message, `Saved as version ${body.version}. Every instance applies it within a second.`, "good");
    issues.replaceChildren();
    await loadHistory();
  } catch (error) {
    if (error instanceof ApiError && error.status === 412) {
      say(message, `Someone changed the policy first (now version ${error.data.currentVersion ?? "?"}). Copy your edit, reload, and save again.`, "bad");
      issues.replaceChildren();
      return;
    }
    say(message, error instanceof ApiError && error.status === 400 ? "The policy was refused; the policy in force stays. Fix these fields:" : describe(error), "bad");
    showIssues(issues, error instanceof ApiError ? error.data.issues : [], pickPath);
  }
}

async function rollback(version) {
  if (!confirm(`Re-apply version ${version}${version === 0 ? " (the defaults)" : ""} as a new version?`)) return;
  const message = $("policy-message");
  try {
    const { body } = await api("POST", "/admin/policy/rollback", { body: { toVersion: version }, headers: { "if-match": policyEtag ?? '"0"' } });
    say(message, `Version ${version} re-applied as version ${body.version}.`, "good");
    await loadPolicy();
  } catch (error) {
    say(message, describe(error), "bad");
  }
}

async function loadHistory() {
  const view = $("policy-history");
  try {
    const { body } = await api("GET", "/admin/policy/history?limit=50");
    const cards = body.map((entry) =>
      h(
        "div",
        { className: "card" },
        h(
          "header",
          {},
          h("strong", { text: `Version ${entry.version}` }),
          h("span", { className: "muted", text: `${entry.time} by ${entry.actor}` }),
          entry.rollbackOf === undefined ? null : h("span", { text: `rollback of version ${entry.rollbackOf}` }),
          h("button", { text: "Roll back to this version", attrs: { type: "button" }, onClick: () => rollback(entry.version) }),
        ),
        table(
          [
            { label: "field", value: (change) => h("code", { text: change.path }) },
            { label: "from", value: (change) => ("from" in change ? display(change.from) : "(absent)") },
            { label: "to", value: (change) => ("to" in change ? display(change.to) : "(absent)") },
          ],
          entry.diff,
          "No field changed.",
        ),
      ),
    );
    view.replaceChildren(
      ...(cards.length ? cards : [h("p", { className: "muted", text: "No change yet: the defaults (version 0) are in force." })]),
      h("p", {}, h("button", { text: "Restore the defaults (version 0)", attrs: { type: "button" }, onClick: () => rollback(0) })),
    );
  } catch (error) {
    view.replaceChildren(h("p", { className: "bad", text: describe(error) }));
  }
}

$("policy-save").addEventListener("click", savePolicy);
$("policy-reload").addEventListener("click", loadPolicy);

// ---------------------------------------------------------------------------------------------
// Account: balance, reservations, sponsorships, orders; freeze and unfreeze.

async function lookUp(address) {
  const message = $("account-message");
  const view = $("account-view");
  try {
    const { body: account } = await api("GET", `/admin/accounts/${encodeURIComponent(address)}`);
    say(message, "");
    view.replaceChildren(...renderAccount(account));
  } catch (error) {
    say(message, describe(error), "bad");
    view.replaceChildren();
  }
}

function renderAccount(account) {
  const currency = account.currency;
  const reason = h("input", { attrs: { type: "text", maxlength: 500, placeholder: "reason (required)", size: 40 } });
  const freezeMessage = h("p", { attrs: { role: "status" } });
  const act = (action) => async () => {
    try {
      await api("POST", `/admin/accounts/${encodeURIComponent(account.address)}/${action}`, { body: { reason: reason.value } });
      await lookUp(account.address);
      say($("account-message"), action === "freeze" ? "Frozen: no new sponsorship for this account." : "Unfrozen.", "good");
    } catch (error) {
      const issues = error instanceof ApiError ? (error.data.issues ?? []) : [];
      say(freezeMessage, issues.length ? issues.map((issue) => `${issue.path}: ${issue.message}`).join("; ") : describe(error), "bad");
    }
  };
  return [
    h("h3", { text: account.address, className: "mono" }),
    figures([
      ["Balance", fen(account.balanceFen, currency)],
      ["Reserved", fen(account.reservedFen, currency)],
      ["Available", fen(account.availableFen, currency)],
    ]),
    h(
      "div",
      { className: "card" },
      h(
        "p",
        { className: account.frozen ? "bad" : "good" },
        account.frozen ? `Frozen since ${account.frozen.at} by ${account.frozen.actor}: ${account.frozen.reason}` : "Not frozen.",
      ),
      h(
        "p",
        {},
        reason,
        " ",
        h("button", { text: "Freeze", attrs: { type: "button" }, onClick: act("freeze") }),
        " ",
        h("button", { text: "Unfreeze", attrs: { type: "button" }, onClick: act("unfreeze") }),
      ),
      freezeMessage,
      table(
        [
          { label: "action", value: (event) => event.action },
          { label: "at", value: (event) => event.at },
          { label: "actor", value: (event) => event.actor },
          { label: "reason", value: (event) => event.reason },
        ],
        account.freezeLog,
        "Never frozen.",
      ),
    ),
    h("h3", { text: "Live reservations" }),
    table(
      [
        { label: "EntryPoint", value: (r) => r.entryPointVersion },
        { label: "nonce", value: (r) => r.nonce, number: true },
        { label: "charge", value: (r) => fen(r.chargeFen, currency), number: true },
        { label: "valid until", value: (r) => unixTime(r.validUntil) },
        { label: "created", value: (r) => unixTime(r.createdAt) },
        { label: "userOpHashes", value: (r) => h("span", { className: "mono break", text: r.userOpHashes.join(" ") }) },
      ],
      account.reservations,
    ),
    h("h3", { text: "Recent sponsorships" }),
    table(
      [
        { label: "userOpHash", value: (s) => h("span", { className: "mono break", text: s.userOpHash }) },
        { label: "EntryPoint", value: (s) => s.entryPointVersion },
        { label: "nonce", value: (s) => s.nonce, number: true },
        { label: "charge (worst case)", value: (s) => fen(s.chargeFen, currency), number: true },
        { label: "max wei", value: (s) => wei(s.maxWei), number: true },
        { label: "valid until", value: (s) => unixTime(s.validUntil) },
        { label: "status", value: (s) => s.status },
      ],
      account.recentSponsorships,
    ),
    h("h3", { text: "Orders" }),
    table(
      [
        { label: "order", value: (o) => h("span", { className: "mono", text: o.orderId }) },
        { label: "channel", value: (o) => o.channel },
        { label: "state", value: (o) => o.state },
        { label: "amount", value: (o) => fen(o.amountFen, o.currency), number: true },
        { label: "refunded", value: (o) => fen(o.refundedFen, o.currency), number: true },
        { label: "refund pending", value: (o) => fen(o.pendingRefundFen, o.currency), number: true },
        { label: "created", value: (o) => o.createdAt },
        { label: "paid", value: (o) => o.paidAt },
        {
          label: "refunds",
          value: (o) =>
            o.refunds.length === 0
              ? "—"
              : h("ul", {}, ...o.refunds.map((refund) => h("li", { text: `${refund.refundId}: ${fen(refund.fen)} ${refund.state} (${refund.origin}) ${refund.createdAt}${refund.reason ? `, ${refund.reason}` : ""}` }))),
        },
      ],
      account.orders,
    ),
  ];
}

$("account-form").addEventListener("submit", (event) => {
  event.preventDefault();
  lookUp($("account-address").value.trim());
});

// ---------------------------------------------------------------------------------------------
// Reconciliation.

function renderReport(report) {
  const { period } = report;
  return [
    h("p", { className: report.clean ? "good" : "bad", text: report.clean ? "Clean: no mismatch." : `${report.mismatches.length} mismatch(es).` }),
    figures([
      ["Period", `${period.from} – ${period.to}`],
      ["Blocks", `${period.fromBlock} – ${period.toBlock} (head ${period.headBlock})`],
      ["As of", period.asOf],
      ["Complete", period.complete ? "yes" : "no: the period has not ended, later events will change the figures"],
      ["Settled through block", display(report.settlement.settledThroughBlock)],
    ]),
    h("h3", { text: `Gateways against the ledger (${report.currency})` }),
    keyedTable("channel", report.gateways),
    h("h3", { text: "The ledger against the chain" }),
    keyedTable("EntryPoint", report.ledgerVsChain),
    h("h3", { text: "The chain against the deposit" }),
    keyedTable("EntryPoint", report.chainVsDeposit),
    h("h3", { text: "Mismatches" }),
    table(
      [
        { label: "section", value: (m) => m.section },
        { label: "kind", value: (m) => h("code", { text: m.kind }) },
        { label: "cause", value: (m) => m.cause },
        { label: "difference", value: (m) => (m.differenceFen !== undefined ? `${m.differenceFen} fen` : m.differenceWei !== undefined ? `${m.differenceWei} wei` : "—"), number: true },
        { label: "details", value: (m) => h("span", { className: "mono break", text: Object.entries(m.details).map(([key, value]) => `${key}=${display(value)}`).join(" ") }) },
      ],
      report.mismatches,
    ),
    h("h3", { text: "Settlement anomalies" }),
    table(
      [
        { label: "kind", value: (a) => a.kind },
        { label: "id", value: (a) => a.id },
        { label: "at", value: (a) => a.at },
        { label: "details", value: (a) => h("span", { className: "mono break", text: JSON.stringify(a.details) }) },
      ],
      report.settlement.anomalies,
    ),
  ];
}

$("reconciliation-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const message = $("reconciliation-message");
  const view = $("reconciliation-view");
  const query = new URLSearchParams({ from: $("reconciliation-from").value.trim(), to: $("reconciliation-to").value.trim() });
  say(message, "Reconciling…", "muted");
  view.replaceChildren();
  try {
    const { body } = await api("GET", `/admin/reconciliation?${query}`);
    say(message, "");
    view.replaceChildren(...renderReport(body));
  } catch (error) {
    const issues = error instanceof ApiError ? (error.data.issues ?? []) : [];
    say(message, issues.length ? issues.map((issue) => `${issue.path}: ${issue.message}`).join("; ") : describe(error), "bad");
  }
});

// Yesterday, UTC, as the default period.
{
  const today = new Date().toISOString().slice(0, 10);
  $("reconciliation-from").value = new Date(Date.parse(today) - 86_400_000).toISOString().slice(0, 10);
  $("reconciliation-to").value = today;
}

// ---------------------------------------------------------------------------------------------
// Live figures: GET /admin/stats every few seconds while the tab is open.

let liveTimer = null;

function renderStats(stats) {
  const counts = (record) => table([{ label: "label", value: ([key]) => key }, { label: "count", value: ([, count]) => String(count), number: true }], Object.entries(record));
  return [
    h(
      "div",
      { className: "cards" },
      h(
        "div",
        { className: "card" },
        h("h3", { text: "Sponsorships" }),
        figures([
          ["Signed", String(stats.sponsorships.signed)],
          ["Rejected", String(stats.sponsorships.rejected)],
        ]),
        counts(stats.sponsorships.byOutcome),
      ),
      h(
        "div",
        { className: "card" },
        h("h3", { text: "Settlement" }),
        figures([
          ["Lag (blocks)", display(stats.settlement.lagBlocks)],
          ["Lag (seconds)", display(stats.settlement.lagSeconds)],
          ["Backlog (events)", display(stats.settlement.backlogEvents)],
          ["Charged", fen(stats.settlement.chargedFen)],
          ["Reserved now", fen(stats.reservations.reservedFen)],
          ["Live reservations", display(stats.reservations.live)],
        ]),
        h("h4", { text: "Events by outcome" }),
        counts(stats.settlement.events),
        h("h4", { text: "Releases by reason" }),
        counts(stats.settlement.releases),
      ),
    ),
    h("h3", { text: "Rejections by reason" }),
    table(
      [
        { label: "method", value: (r) => r.method },
        { label: "code", value: (r) => h("code", { text: r.code }) },
        { label: "count", value: (r) => String(r.count), number: true },
      ],
      stats.rejections,
      "No rejection since this instance started.",
    ),
    h("h3", { text: "Deposit against the floor" }),
    table(
      [
        { label: "EntryPoint", value: (d) => `${d.entryPointVersion} ${d.entryPoint}` },
        { label: "deposit", value: (d) => wei(d.depositWei), number: true },
        { label: "in flight", value: (d) => wei(d.inFlightWei), number: true },
        { label: "headroom", value: (d) => wei(d.headroomWei), number: true },
        { label: "floor", value: (d) => wei(d.floorWei), number: true },
        { label: "above the floor", value: (d) => wei((BigInt(d.headroomWei) - BigInt(d.floorWei)).toString()), number: true },
        { label: "sponsorship", value: (d) => h("span", { className: d.degraded ? "bad" : "good", text: d.degraded ? "paused: below the floor" : "running" }) },
      ],
      stats.deposits,
      "The deposit has not been read yet.",
    ),
  ];
}

async function refreshLive() {
  try {
    const { body } = await api("GET", "/admin/stats");
    say($("live-message"), "");
    say($("live-updated"), `as of ${body.at}`, "muted");
    $("live-view").replaceChildren(...renderStats(body));
  } catch (error) {
    say($("live-message"), describe(error), "bad");
    if (error instanceof ApiError && error.status === 401) stopLive();
  }
}

function startLive() {
  stopLive();
  if (!sessionStorage.getItem(TOKEN_KEY)) {
    say($("live-message"), "Enter the admin token first.", "bad");
    return;
  }
  refreshLive();
  liveTimer = window.setInterval(refreshLive, LIVE_INTERVAL_MS);
}

function stopLive() {
  if (liveTimer !== null) window.clearInterval(liveTimer);
  liveTimer = null;
}

// ---------------------------------------------------------------------------------------------

showSession();
selectTab(activeTab);
if (sessionStorage.getItem(TOKEN_KEY)) loadPolicy();
