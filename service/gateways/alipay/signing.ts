// Alipay's v1 wire rules with node:crypto only: form parsing, sign content, RSA2, keys, money, time.
// Not alipay-sdk: it trusts a notification's own sign_type (RSA/SHA1), signs empty values that the
// gateway's Java SDK skips, and only hashes UTF-8 (../shared/specs/payment-gateways.md §3.1, §4).
import { createPrivateKey, createPublicKey, type KeyObject, sign as cryptoSign, verify as cryptoVerify } from "node:crypto";

/** An Alipay message that breaks the protocol: malformed, badly encoded, unsigned or mis-signed. */
export class AlipayProtocolError extends Error {
  override name = "AlipayProtocolError";
}

// ---------------------------------------------------------------------------------------------
// Form bodies

/** The charsets Alipay echoes in `charset` (gb2312 decodes as its superset GBK). */
export type AlipayCharset = "utf-8" | "gbk";

const CHARSET_LABELS: ReadonlyMap<string, AlipayCharset> = new Map([
  ["utf-8", "utf-8"],
  ["utf8", "utf-8"],
  ["gbk", "gbk"],
  ["gb2312", "gbk"],
]);

/** A parsed form: decoded values, and each value's bytes in the form's charset (what Alipay signed). */
export type AlipayForm = {
  charset: AlipayCharset;
  params: ReadonlyMap<string, string>;
  bytes: ReadonlyMap<string, Buffer>;
};

/** Form-encoded parameters as strings (UTF-8) or as the exact bytes to sign. */
export type SignParams = ReadonlyMap<string, string | Uint8Array> | Readonly<Record<string, string>>;

function hexValue(byte: number | undefined): number {
  if (byte === undefined) return -1;
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x37;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x57;
  return -1;
}

/** Percent-decodes body[start, end) to bytes, once; '+' is a space. */
function percentDecode(body: Buffer, start: number, end: number): Buffer {
  const out = Buffer.alloc(end - start);
  let length = 0;
  for (let i = start; i < end; i++) {
    const byte = body[i];
    if (byte === 0x2b) {
      out[length++] = 0x20;
    } else if (byte === 0x25) {
      const high = i + 2 < end ? hexValue(body[i + 1]) : -1;
      const low = i + 2 < end ? hexValue(body[i + 2]) : -1;
      if (high < 0 || low < 0) throw new AlipayProtocolError(`malformed form body: "%" at byte ${i} is not followed by two hex digits`);
      out[length++] = high * 16 + low;
      i += 2;
    } else if (byte < 0x21 || byte > 0x7e) {
      throw new AlipayProtocolError(`malformed form body: raw byte 0x${byte.toString(16).padStart(2, "0")} at byte ${i} (a form body is percent-encoded ASCII)`);
    } else {
      out[length++] = byte;
    }
  }
  return out.subarray(0, length);
}

/** The charset parameter of a Content-Type header, if any. */
export function contentTypeCharset(contentType: string | undefined): string | undefined {
  return contentType?.match(/;\s*charset\s*=\s*"?([^";\s]+)"?/i)?.[1];
}

function charsetOf(label: string, source: string): AlipayCharset {
  const charset = CHARSET_LABELS.get(label.trim().toLowerCase());
  if (!charset) throw new AlipayProtocolError(`unsupported charset ${JSON.stringify(label.slice(0, 32))} in ${source} (expected utf-8, gbk or gb2312)`);
  return charset;
}

/**
 * Parses an application/x-www-form-urlencoded body: percent-decoded to bytes exactly once, then
 * decoded in the charset its `charset` parameter names (else the Content-Type's, else UTF-8).
 * Duplicate names, bad escapes, raw non-ASCII bytes and bytes invalid in the charset are refused.
 */
export function parseForm(body: Buffer | string, contentType?: string): AlipayForm {
  // A string is UTF-8 encoded, so any non-ASCII character becomes bytes the parser refuses.
  const raw = typeof body === "string" ? Buffer.from(body, "utf8") : body;
  const pairs: [Buffer, Buffer][] = [];
  let start = 0;
  while (start <= raw.length) {
    let end = raw.indexOf(0x26, start);
    if (end < 0) end = raw.length;
    if (end > start) {
      const equals = raw.indexOf(0x3d, start);
      if (equals < 0 || equals >= end) {
        throw new AlipayProtocolError(`malformed form body: parameter at byte ${start} has no "="`);
      }
      pairs.push([percentDecode(raw, start, equals), percentDecode(raw, equals + 1, end)]);
    }
    start = end + 1;
  }

  // Names are ASCII, so the charset can be read before anything is decoded with it.
  const names = pairs.map(([name]) => {
    if (name.length === 0) throw new AlipayProtocolError("malformed form body: a parameter has an empty name");
    if (!name.every((byte) => byte >= 0x21 && byte <= 0x7e)) throw new AlipayProtocolError("malformed form body: a parameter name is not printable ASCII");
    return name.toString("latin1");
  });
  const declared = pairs[names.indexOf("charset")]?.[1];
  const headerCharset = contentTypeCharset(contentType);
  const charset =
    declared && declared.length > 0 ? charsetOf(declared.toString("latin1"), "the charset parameter") : headerCharset ? charsetOf(headerCharset, "the Content-Type header") : "utf-8";

  const decoder = new TextDecoder(charset, { fatal: true, ignoreBOM: true });
  const params = new Map<string, string>();
  const bytes = new Map<string, Buffer>();
  for (const [index, name] of names.entries()) {
    if (params.has(name)) throw new AlipayProtocolError(`malformed form body: duplicate parameter "${name}"`);
    const valueBytes = pairs[index][1];
    let value: string;
    try {
      value = decoder.decode(valueBytes);
    } catch {
      throw new AlipayProtocolError(`malformed form body: parameter "${name}" is not valid ${charset}`);
    }
    params.set(name, value);
    bytes.set(name, valueBytes);
  }
  return { charset, params, bytes };
}

/** Form-encodes parameters as UTF-8, with '+' for spaces (what Alipay and Java's URLEncoder send). */
export function encodeForm(params: Readonly<Record<string, string>>): string {
  return new URLSearchParams(Object.entries(params)).toString();
}

// ---------------------------------------------------------------------------------------------
// Sign content and RSA2

function entriesOf(params: SignParams): [string, Buffer][] {
  const entries = params instanceof Map ? [...params.entries()] : Object.entries(params as Record<string, string>);
  return entries.map(([name, value]) => [name, typeof value === "string" ? Buffer.from(value, "utf8") : Buffer.from(value)]);
}

/** `k=v&…` over the sorted names minus `exclude`, skipping empty values (Java SDK getSignContent). */
function signContent(params: SignParams, exclude: readonly string[]): Buffer {
  const entries = entriesOf(params)
    .filter(([name, value]) => !exclude.includes(name) && name.length > 0 && value.length > 0)
    // Plain UTF-16 code-unit order, as Java's Collections.sort on String keys.
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const parts: Buffer[] = [];
  for (const [index, [name, value]] of entries.entries()) {
    parts.push(Buffer.from(`${index === 0 ? "" : "&"}${name}=`, "utf8"), value);
  }
  return Buffer.concat(parts);
}

/** The bytes a notification's signature covers: all but `sign` and `sign_type`, empties skipped (Java V1). */
export function notificationSignContent(params: SignParams): Buffer {
  return signContent(params, ["sign", "sign_type"]);
}

/** The bytes a v1 request's signature covers: all but `sign` (sign_type included), empties skipped. */
export function requestSignContent(params: SignParams): Buffer {
  return signContent(params, ["sign"]);
}

/** RSA-SHA256 (Alipay "RSA2") of `content`, base64. */
export function rsa2Sign(content: Uint8Array, privateKey: KeyObject): string {
  return cryptoSign("sha256", content, privateKey).toString("base64");
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Whether `signature` (base64) is an RSA-SHA256 signature of `content` by `publicKey`. */
export function rsa2Verify(content: Uint8Array, signature: string, publicKey: KeyObject): boolean {
  if (signature.length === 0 || !BASE64.test(signature)) return false;
  return cryptoVerify("sha256", content, publicKey, Buffer.from(signature, "base64"));
}

/** Signs v1 request parameters with the app private key; returns the `sign` value. */
export function signRequest(params: SignParams, appPrivateKey: KeyObject): string {
  return rsa2Sign(requestSignContent(params), appPrivateKey);
}

/** Checks a signed form's `sign_type` (RSA2 only, never trusted from the message) and its `sign`. */
function verifyForm(form: AlipayForm, publicKey: KeyObject, content: (params: SignParams) => Buffer, what: string): void {
  const signType = form.params.get("sign_type");
  if (signType === undefined || signType === "") throw new AlipayProtocolError(`${what} has no sign_type (only RSA2 is accepted)`);
  if (signType !== "RSA2") throw new AlipayProtocolError(`${what} has sign_type ${JSON.stringify(signType.slice(0, 16))} (only RSA2 is accepted)`);
  const signature = form.params.get("sign");
  if (signature === undefined || signature === "") throw new AlipayProtocolError(`${what} has no sign`);
  if (!rsa2Verify(content(form.bytes), signature, publicKey)) throw new AlipayProtocolError(`${what} signature does not verify with the expected public key`);
}

/** Verifies an async notification's RSA2 signature over the Java V1 sign content, in its charset. */
export function verifyNotificationSignature(form: AlipayForm, alipayPublicKey: KeyObject): void {
  verifyForm(form, alipayPublicKey, notificationSignContent, "notification");
}

/** Verifies a v1 request's RSA2 signature (sign_type included in the content); the gateway's side. */
export function verifyRequestSignature(form: AlipayForm, appPublicKey: KeyObject): void {
  verifyForm(form, appPublicKey, requestSignContent, "request");
}

// ---------------------------------------------------------------------------------------------
// v1 responses: {"alipay_xxx_response":{...},"sign":"..."} signed over the inner object's exact text

/** The `…_response` key of a v1 method: alipay.trade.query → alipay_trade_query_response. */
export function responseKey(method: string): string {
  return `${method.replaceAll(".", "_")}_response`;
}

function skipWhitespace(text: string, index: number): number {
  while (index < text.length && " \t\n\r".includes(text[index])) index++;
  return index;
}

function skipString(text: string, index: number): number {
  for (let i = index + 1; i < text.length; i++) {
    if (text[i] === "\\") i++;
    else if (text[i] === '"') return i + 1;
  }
  throw new AlipayProtocolError("response is not JSON: unterminated string");
}

function skipValue(text: string, index: number): number {
  const first = text[index];
  if (first === '"') return skipString(text, index);
  if (first === "{" || first === "[") {
    let depth = 0;
    for (let i = index; i < text.length; ) {
      const char = text[i];
      if (char === '"') {
        i = skipString(text, i);
        continue;
      }
      if (char === "{" || char === "[") depth++;
      else if (char === "}" || char === "]") depth--;
      i++;
      if (depth === 0) return i;
    }
    throw new AlipayProtocolError("response is not JSON: unbalanced brackets");
  }
  let i = index;
  while (i < text.length && !",}] \t\n\r".includes(text[i])) i++;
  return i;
}

/** Each top-level member's raw text span; the text must already be valid JSON. */
function topLevelMembers(text: string): Map<string, string> {
  const members = new Map<string, string>();
  let i = skipWhitespace(text, 0);
  if (text[i] !== "{") throw new AlipayProtocolError("response is not a JSON object");
  i = skipWhitespace(text, i + 1);
  if (text[i] === "}") return members;
  for (;;) {
    const keyEnd = skipString(text, i);
    const key = JSON.parse(text.slice(i, keyEnd)) as string;
    i = skipWhitespace(text, skipWhitespace(text, keyEnd) + 1);
    const valueEnd = skipValue(text, i);
    if (members.has(key)) throw new AlipayProtocolError(`response has a duplicate member "${key.slice(0, 64)}"`);
    members.set(key, text.slice(i, valueEnd));
    i = skipWhitespace(text, valueEnd);
    if (text[i] === "}") return members;
    i = skipWhitespace(text, i + 1);
  }
}

/**
 * Verifies a v1 response body and returns its inner object. The signature covers the exact text of
 * `<method>_response` (or `error_response`) as sent, so it is cut out of the body, never re-serialised.
 */
export function verifyResponse(body: string, method: string, alipayPublicKey: KeyObject): Record<string, unknown> {
  try {
    JSON.parse(body);
  } catch {
    throw new AlipayProtocolError("response is not JSON");
  }
  const members = topLevelMembers(body);
  const key = members.has(responseKey(method)) ? responseKey(method) : "error_response";
  const innerText = members.get(key);
  if (innerText === undefined || !innerText.startsWith("{")) throw new AlipayProtocolError(`response has no ${responseKey(method)} object`);
  const inner = JSON.parse(innerText) as Record<string, unknown>;
  const signText = members.get("sign");
  const signature: unknown = signText === undefined ? undefined : JSON.parse(signText);
  if (typeof signature !== "string" || signature === "") {
    const code = [inner.code, inner.sub_code].filter((part) => typeof part === "string").join(" ");
    throw new AlipayProtocolError(`response is unsigned${code ? ` (unverified code ${code.slice(0, 80)})` : ""}`);
  }
  if (!rsa2Verify(Buffer.from(innerText, "utf8"), signature, alipayPublicKey)) {
    throw new AlipayProtocolError(`${key} signature does not verify with the Alipay public key`);
  }
  return inner;
}

/**
 * Builds a signed v1 response body as the gateway does: the `…_response` member first, `sign` last,
 * and "/" escaped as "\/" (Alipay's serialiser does), so a verifier that re-serialises fails.
 */
export function signResponse(method: string, inner: Record<string, unknown>, alipayPrivateKey: KeyObject): string {
  const innerText = JSON.stringify(inner).replaceAll("/", "\\/");
  return `{"${responseKey(method)}":${innerText},"sign":"${rsa2Sign(Buffer.from(innerText, "utf8"), alipayPrivateKey)}"}`;
}

// ---------------------------------------------------------------------------------------------
// Keys: PEM or bare base64 (how Alipay's key tool hands them out)

const MIN_RSA_BITS = 2048;

function keyText(text: string): string {
  // Env files often carry PEM newlines as a literal "\n".
  return text.replaceAll("\\n", "\n").trim();
}

function pemLabel(text: string): string | undefined {
  return text.match(/^-----BEGIN ([A-Z0-9 ]+)-----/)?.[1];
}

function bareBase64(text: string, what: string): Buffer {
  const compact = text.replace(/\s+/g, "");
  if (!BASE64.test(compact) || compact.length === 0) throw new AlipayProtocolError(`${what} is neither PEM nor base64`);
  return Buffer.from(compact, "base64");
}

function checkRsa(key: KeyObject, what: string): KeyObject {
  if (key.asymmetricKeyType !== "rsa") throw new AlipayProtocolError(`${what} is a ${key.asymmetricKeyType} key, not RSA`);
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_RSA_BITS) throw new AlipayProtocolError(`${what} is RSA-${bits}; RSA2 needs at least ${MIN_RSA_BITS} bits`);
  return key;
}

/** Loads an RSA private key: PEM (PKCS#8 or PKCS#1) or bare base64 DER. Errors never echo the key. */
export function loadPrivateKey(key: string | KeyObject, what = "private key"): KeyObject {
  if (typeof key !== "string") {
    if (key.type !== "private") throw new AlipayProtocolError(`${what} is a ${key.type} key, not a private key`);
    return checkRsa(key, what);
  }
  const text = keyText(key);
  const label = pemLabel(text);
  let loaded: KeyObject | undefined;
  if (label !== undefined) {
    if (label !== "PRIVATE KEY" && label !== "RSA PRIVATE KEY") throw new AlipayProtocolError(`${what} is a PEM "${label}", expected "PRIVATE KEY" or "RSA PRIVATE KEY" (unencrypted)`);
    try {
      loaded = createPrivateKey({ key: text, format: "pem" });
    } catch {
      throw new AlipayProtocolError(`${what} is not a valid PEM private key`);
    }
  } else {
    const der = bareBase64(text, what);
    for (const type of ["pkcs8", "pkcs1"] as const) {
      try {
        loaded = createPrivateKey({ key: der, format: "der", type });
        break;
      } catch {
        // Try the next encoding.
      }
    }
    if (!loaded) throw new AlipayProtocolError(`${what} is not a PKCS#8 or PKCS#1 RSA private key`);
  }
  return checkRsa(loaded, what);
}

/** Loads an RSA public key: PEM or bare base64 SPKI. A private key is refused, never silently derived from. */
export function loadPublicKey(key: string | KeyObject, what = "public key"): KeyObject {
  if (typeof key !== "string") {
    if (key.type !== "public") throw new AlipayProtocolError(`${what} is a ${key.type} key, not a public key`);
    return checkRsa(key, what);
  }
  const text = keyText(key);
  const label = pemLabel(text);
  let loaded: KeyObject;
  if (label !== undefined) {
    if (label !== "PUBLIC KEY" && label !== "RSA PUBLIC KEY") throw new AlipayProtocolError(`${what} is a PEM "${label}", expected "PUBLIC KEY"`);
    try {
      loaded = createPublicKey({ key: text, format: "pem" });
    } catch {
      throw new AlipayProtocolError(`${what} is not a valid PEM public key`);
    }
  } else {
    try {
      loaded = createPublicKey({ key: bareBase64(text, what), format: "der", type: "spki" });
    } catch (error) {
      if (error instanceof AlipayProtocolError) throw error;
      throw new AlipayProtocolError(`${what} is not an SPKI RSA public key`);
    }
  }
  return checkRsa(loaded, what);
}

/** A public key as Alipay's console shows it: bare base64 SPKI DER. */
export function bareSpki(key: KeyObject): string {
  return key.export({ format: "der", type: "spki" }).toString("base64");
}

// ---------------------------------------------------------------------------------------------
// Money (yuan strings ↔ integer fen) and Beijing time

const YUAN = /^\d+(\.\d{1,2})?$/;

/** "12.30" → 1230n; refuses anything but plain digits with at most two decimals. */
export function yuanToFen(text: string): bigint {
  if (!YUAN.test(text)) throw new AlipayProtocolError(`amount ${JSON.stringify(text.slice(0, 32))} is not a yuan amount like 12.30`);
  const [whole, fraction = ""] = text.split(".");
  return BigInt(whole) * 100n + BigInt(fraction.padEnd(2, "0"));
}

/** 1230n → "12.30". */
export function fenToYuan(fen: bigint): string {
  if (fen < 0n) throw new RangeError(`a fen amount cannot be negative: ${fen}`);
  return `${fen / 100n}.${(fen % 100n).toString().padStart(2, "0")}`;
}

const BEIJING_OFFSET_SECONDS = 8 * 3600;
const BEIJING_TIME = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.\d{1,3})?$/;

/** "yyyy-MM-dd HH:mm:ss" (optionally ".SSS", as gmt_refund) in Beijing time (UTC+8) → unix seconds. */
export function parseBeijingTime(text: string): number {
  const match = BEIJING_TIME.exec(text);
  if (!match) throw new AlipayProtocolError(`time ${JSON.stringify(text.slice(0, 32))} is not yyyy-MM-dd HH:mm:ss`);
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number);
  const date = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  const roundTrips =
    date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day && date.getUTCHours() === hour && date.getUTCMinutes() === minute && date.getUTCSeconds() === second;
  if (!roundTrips) throw new AlipayProtocolError(`time ${JSON.stringify(text)} is not a valid date and time`);
  return date.getTime() / 1000 - BEIJING_OFFSET_SECONDS;
}

/** Unix seconds → "yyyy-MM-dd HH:mm:ss" in Beijing time. */
export function formatBeijingTime(unixSeconds: number): string {
  if (!Number.isSafeInteger(unixSeconds)) throw new RangeError(`not a whole number of seconds: ${unixSeconds}`);
  const iso = new Date((unixSeconds + BEIJING_OFFSET_SECONDS) * 1000).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;
}
