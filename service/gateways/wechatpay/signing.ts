// WeChat Pay APIv3 cryptography with node:crypto only: SHA256withRSA signatures on responses and
// notifications (looked up by serial, no network), merchant request signing, AEAD_AES_256_GCM
// resources, and key loading. Every check here is one the gateway specifies; see
// ../shared/specs/payment-gateways.md §2.
import {
  type KeyObject,
  X509Certificate,
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  randomInt,
  sign,
  verify,
} from "node:crypto";

/** The only signature scheme APIv3 defines; also the default when `Wechatpay-Signature-Type` is absent. */
export const SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048";
/** WeChat's probes carry signatures with this prefix and must be refused (non-2xx). */
export const PROBE_SIGNATURE_PREFIX = "WECHATPAY/SIGNTEST/";
/** Largest accepted |now − Wechatpay-Timestamp|, in seconds (Go SDK and wechatpay-axios-plugin). */
export const MAX_CLOCK_SKEW_SECONDS = 300;
/** The only resource encryption APIv3 uses. */
export const RESOURCE_ALGORITHM = "AEAD_AES_256_GCM";

const GCM_TAG_BYTES = 16;
const GCM_NONCE_BYTES = 12;
const APIV3_KEY_BYTES = 32;
const MIN_RSA_BITS = 2048;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const NONCE_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/**
 * The gateway's verification keys by `Wechatpay-Serial`: platform-certificate serials and
 * `PUB_KEY_ID_…` public-key ids side by side, so both modes (and a rotation) verify at once.
 */
export type PlatformKeys = ReadonlyMap<string, KeyObject>;

/** The Wechatpay-* headers of a signed response or notification, as received. */
export type SignatureHeaders = {
  timestamp?: string;
  nonce?: string;
  signature?: string;
  serial?: string;
  signatureType?: string;
};

/** Why a signature was refused; `probe` marks a `WECHATPAY/SIGNTEST/` probe. */
export type SignatureCheck = { ok: true; serial: string } | { ok: false; reason: string; probe: boolean };

/** A random alphanumeric nonce (header nonces are 32 characters, resource nonces 12). */
export function randomNonce(length = 32): string {
  let nonce = "";
  for (let i = 0; i < length; i++) nonce += NONCE_ALPHABET[randomInt(NONCE_ALPHABET.length)];
  return nonce;
}

/** Reads the Wechatpay-* headers through `get` (case-insensitive on both fetch Headers and Node's lower-cased records). */
export function readSignatureHeaders(get: (name: string) => string | undefined): SignatureHeaders {
  return {
    timestamp: get("wechatpay-timestamp"),
    nonce: get("wechatpay-nonce"),
    signature: get("wechatpay-signature"),
    serial: get("wechatpay-serial"),
    signatureType: get("wechatpay-signature-type"),
  };
}

/** `${timestamp}\n${nonce}\n${body}\n` over the body bytes exactly as received. */
export function responseMessage(timestamp: string, nonce: string, body: Buffer | string): Buffer {
  return Buffer.concat([Buffer.from(`${timestamp}\n${nonce}\n`), Buffer.isBuffer(body) ? body : Buffer.from(body), Buffer.from("\n")]);
}

/** Signs a response or notification body as the gateway does; returns the Wechatpay-* headers. */
export function signResponse(body: string, { privateKey, serial, timestamp, nonce = randomNonce() }: { privateKey: KeyObject; serial: string; timestamp: number; nonce?: string }): Record<string, string> {
  return {
    "Wechatpay-Timestamp": String(timestamp),
    "Wechatpay-Nonce": nonce,
    "Wechatpay-Signature": sign("sha256", responseMessage(String(timestamp), nonce, body), privateKey).toString("base64"),
    "Wechatpay-Serial": serial,
    "Wechatpay-Signature-Type": SIGNATURE_TYPE,
  };
}

/**
 * Verifies a gateway signature (response or notification) over the raw body: scheme, probe,
 * freshness (±300 s of `now`, unix seconds), known serial, then SHA256withRSA. Cheap checks first.
 */
export function verifySignature(headers: SignatureHeaders, body: Buffer | string, keys: PlatformKeys, now: number): SignatureCheck {
  const { timestamp, nonce, signature, serial, signatureType = SIGNATURE_TYPE } = headers;
  if (signature?.startsWith(PROBE_SIGNATURE_PREFIX)) return { ok: false, reason: "signature is a WECHATPAY/SIGNTEST probe", probe: true };
  const missing = Object.entries({ "Wechatpay-Timestamp": timestamp, "Wechatpay-Nonce": nonce, "Wechatpay-Signature": signature, "Wechatpay-Serial": serial })
    .filter(([, value]) => !value)
    .map(([name]) => name);
  if (missing.length > 0) return refused(`missing ${missing.join(", ")}`);
  if (signatureType !== SIGNATURE_TYPE) return refused(`Wechatpay-Signature-Type ${JSON.stringify(signatureType)} is not ${SIGNATURE_TYPE}`);
  if (!/^\d{1,12}$/.test(timestamp!)) return refused("Wechatpay-Timestamp is not unix seconds");
  const skew = now - Number(timestamp);
  if (Math.abs(skew) > MAX_CLOCK_SKEW_SECONDS) return refused(`Wechatpay-Timestamp is ${Math.abs(skew)} s ${skew > 0 ? "old" : "in the future"} (at most ${MAX_CLOCK_SKEW_SECONDS} s allowed)`);
  // A Map, not an object: a serial such as "__proto__" or "constructor" must not find anything.
  const key = keys.get(serial!);
  if (!key) return refused(`Wechatpay-Serial ${JSON.stringify(serial)} is not a configured platform certificate or public key`);
  if (!BASE64.test(signature!)) return refused("Wechatpay-Signature is not base64");
  if (!verify("sha256", responseMessage(timestamp!, nonce!, body), key, Buffer.from(signature!, "base64"))) {
    return refused(`signature does not verify with ${serial}`);
  }
  return { ok: true, serial: serial! };
}

function refused(reason: string): SignatureCheck {
  return { ok: false, reason, probe: false };
}

/** The merchant's request signature: `METHOD\nPATH?QUERY\nts\nnonce\nbody\n`. */
export function requestMessage(method: string, pathAndQuery: string, timestamp: string, nonce: string, body: string): string {
  return `${method}\n${pathAndQuery}\n${timestamp}\n${nonce}\n${body}\n`;
}

/** The merchant's parts of an APIv3 `Authorization` header. */
export type MerchantCredentials = { mchid: string; serial: string; privateKey: KeyObject };

/** Builds the `Authorization` header of a merchant request to APIv3. */
export function signRequest(
  { method, pathAndQuery, body }: { method: string; pathAndQuery: string; body: string },
  { mchid, serial, privateKey }: MerchantCredentials,
  { timestamp, nonce = randomNonce() }: { timestamp: number; nonce?: string },
): string {
  const signature = sign("sha256", Buffer.from(requestMessage(method, pathAndQuery, String(timestamp), nonce, body)), privateKey).toString("base64");
  return `${SIGNATURE_TYPE} mchid="${mchid}",nonce_str="${nonce}",signature="${signature}",timestamp="${timestamp}",serial_no="${serial}"`;
}

/** The fields of a parsed `Authorization` header. */
export type AuthorizationFields = { mchid: string; nonce_str: string; signature: string; timestamp: string; serial_no: string };

const AUTHORIZATION_FIELDS = ["mchid", "nonce_str", "signature", "timestamp", "serial_no"] as const;

/** Parses `WECHATPAY2-SHA256-RSA2048 k="v",…` (any field order); undefined when malformed. */
export function parseAuthorization(header: string | undefined): AuthorizationFields | undefined {
  const prefix = `${SIGNATURE_TYPE} `;
  if (!header?.startsWith(prefix)) return undefined;
  const fields = new Map<string, string>();
  for (const part of header.slice(prefix.length).split(",")) {
    const match = /^\s*([a-z_]+)="([^"]*)"\s*$/.exec(part);
    if (!match || fields.has(match[1])) return undefined;
    fields.set(match[1], match[2]);
  }
  if (fields.size !== AUTHORIZATION_FIELDS.length || !AUTHORIZATION_FIELDS.every((name) => fields.get(name))) return undefined;
  return Object.fromEntries(fields) as AuthorizationFields;
}

/** Verifies a merchant request's `Authorization` as the gateway does (the simulator's side). */
export function verifyRequest(
  { authorization, method, pathAndQuery, body }: { authorization: string | undefined; method: string; pathAndQuery: string; body: string },
  { mchid, serial, publicKey }: { mchid: string; serial: string; publicKey: KeyObject },
  now: number,
): { ok: true } | { ok: false; reason: string } {
  const fields = parseAuthorization(authorization);
  if (!fields) return { ok: false, reason: `Authorization must be ${SIGNATURE_TYPE} mchid="…",nonce_str="…",signature="…",timestamp="…",serial_no="…"` };
  if (fields.mchid !== mchid) return { ok: false, reason: "mchid in Authorization is not this merchant" };
  if (fields.serial_no !== serial) return { ok: false, reason: "serial_no in Authorization is not the merchant's API certificate" };
  if (!/^\d{1,12}$/.test(fields.timestamp) || Math.abs(now - Number(fields.timestamp)) > MAX_CLOCK_SKEW_SECONDS) {
    return { ok: false, reason: "timestamp in Authorization is not within 300 s of the gateway's clock" };
  }
  if (!BASE64.test(fields.signature)) return { ok: false, reason: "signature in Authorization is not base64" };
  const message = Buffer.from(requestMessage(method, pathAndQuery, fields.timestamp, fields.nonce_str, body));
  if (!verify("sha256", message, publicKey, Buffer.from(fields.signature, "base64"))) return { ok: false, reason: "signature in Authorization does not verify" };
  return { ok: true };
}

/** An encrypted notification resource. */
export type EncryptedResource = { ciphertext: string; nonce: string; associated_data?: string };

/** The APIv3 key as a secret KeyObject (so logging a config shows no key); it must be 32 bytes. */
export function apiV3KeyFrom(key: string | KeyObject): KeyObject {
  const secret = typeof key === "string" ? createSecretKey(Buffer.from(key, "utf8")) : key;
  if (secret.type !== "secret" || secret.symmetricKeySize !== APIV3_KEY_BYTES) throw new RangeError(`the APIv3 key must be ${APIV3_KEY_BYTES} bytes`);
  return secret;
}

/**
 * Decrypts an AEAD_AES_256_GCM resource: IV = nonce (12 UTF-8 bytes), AAD = associated_data,
 * the last 16 bytes of the ciphertext are the tag. final() checks the tag, so tampering or a wrong key throws.
 */
export function decryptResource({ ciphertext, nonce, associated_data = "" }: EncryptedResource, apiV3Key: KeyObject): Buffer {
  const iv = Buffer.from(nonce, "utf8");
  if (iv.length !== GCM_NONCE_BYTES) throw new RangeError(`resource nonce must be ${GCM_NONCE_BYTES} bytes`);
  if (!BASE64.test(ciphertext)) throw new RangeError("resource ciphertext is not base64");
  const sealed = Buffer.from(ciphertext, "base64");
  if (sealed.length < GCM_TAG_BYTES) throw new RangeError("resource ciphertext is shorter than its tag");
  // authTagLength pins 16 bytes: without it GCM would also accept a truncated tag.
  const decipher = createDecipheriv("aes-256-gcm", apiV3Key, iv, { authTagLength: GCM_TAG_BYTES });
  decipher.setAuthTag(sealed.subarray(sealed.length - GCM_TAG_BYTES));
  decipher.setAAD(Buffer.from(associated_data, "utf8"));
  return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - GCM_TAG_BYTES)), decipher.final()]);
}

/** Encrypts a resource as the gateway does (base64 of ciphertext ‖ 16-byte tag). */
export function encryptResource(plaintext: string, apiV3Key: KeyObject, nonce: string, associatedData: string): string {
  const iv = Buffer.from(nonce, "utf8");
  if (iv.length !== GCM_NONCE_BYTES) throw new RangeError(`resource nonce must be ${GCM_NONCE_BYTES} bytes`);
  const cipher = createCipheriv("aes-256-gcm", apiV3Key, iv, { authTagLength: GCM_TAG_BYTES });
  cipher.setAAD(Buffer.from(associatedData, "utf8"));
  return Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final(), cipher.getAuthTag()]).toString("base64");
}

/** A key that failed to load; the message never contains key material. */
export class KeyLoadError extends Error {
  override name = "KeyLoadError";
}

/** A platform verification key: an SPKI public-key PEM, or an X.509 certificate PEM with its serial. */
export type LoadedPublicKey = { key: KeyObject; certificateSerial?: string };

const PEM_LABEL = /^-----BEGIN ([A-Z0-9 ]+)-----\r?\n[A-Za-z0-9+/=\r\n]+-----END \1-----\s*$/;

function pemLabel(pem: string): string | undefined {
  return PEM_LABEL.exec(pem.trim() + "\n")?.[1];
}

/** Loads a wechatpay public key (`PUBLIC KEY` PEM) or a platform certificate (`CERTIFICATE` PEM). */
export function loadPublicKey(pem: string): LoadedPublicKey {
  const label = pemLabel(pem);
  let loaded: LoadedPublicKey;
  try {
    if (label === "PUBLIC KEY") {
      loaded = { key: createPublicKey({ key: pem, format: "pem", type: "spki" }) };
    } else if (label === "CERTIFICATE") {
      const certificate = new X509Certificate(pem);
      loaded = { key: certificate.publicKey, certificateSerial: certificate.serialNumber.toUpperCase() };
    } else {
      throw new KeyLoadError("is not a PEM public key (-----BEGIN PUBLIC KEY-----) or certificate (-----BEGIN CERTIFICATE-----)");
    }
  } catch (error) {
    if (error instanceof KeyLoadError) throw error;
    throw new KeyLoadError(`does not parse as a PEM ${label === "CERTIFICATE" ? "X.509 certificate" : "SPKI public key"}`);
  }
  assertRsa(loaded.key);
  return loaded;
}

/** Loads the merchant's API private key: a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, as apiclient_key.pem). */
export function loadPrivateKey(pem: string): KeyObject {
  if (pemLabel(pem) !== "PRIVATE KEY") throw new KeyLoadError("is not a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----, as in apiclient_key.pem)");
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: "pem", type: "pkcs8" });
  } catch {
    throw new KeyLoadError("does not parse as a PKCS#8 PEM private key");
  }
  assertRsa(key);
  return key;
}

function assertRsa(key: KeyObject): void {
  if (key.asymmetricKeyType !== "rsa") throw new KeyLoadError(`is a ${key.asymmetricKeyType} key, not RSA`);
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_RSA_BITS) throw new KeyLoadError(`is a ${bits}-bit RSA key; at least ${MIN_RSA_BITS} bits are required`);
}
