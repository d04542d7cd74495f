import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync, sign as cryptoSign } from "node:crypto";
import { describe, it } from "node:test";

import iconv from "iconv-lite";

import {
  AlipayProtocolError,
  fenToYuan,
  formatBeijingTime,
  loadPrivateKey,
  loadPublicKey,
  notificationSignContent,
  parseBeijingTime,
  parseForm,
  requestSignContent,
  rsa2Sign,
  rsa2Verify,
  signResponse,
  verifyResponse,
  yuanToFen,
} from "./signing.ts";

const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const other = generateKeyPairSync("rsa", { modulusLength: 2048 });

const protocolError = (message: RegExp) => ({ name: "AlipayProtocolError", message });

describe("parseForm", () => {
  it("decodes once: '+' is a space, %2B a plus, %25 a percent, an encoded value stays encoded", () => {
    const form = parseForm("subject=100%25+gas+refill&sign=ab%2Bcd%3D&passback_params=order%253D1%2526src%253Dweb&empty=");
    assert.equal(form.charset, "utf-8");
    assert.equal(form.params.get("subject"), "100% gas refill");
    assert.equal(form.params.get("sign"), "ab+cd=");
    // Alipay echoes passback_params URL-encoded as the merchant sent it; decoding twice would give "order=1&src=web".
    assert.equal(form.params.get("passback_params"), "order%3D1%26src%3Dweb");
    assert.equal(form.params.get("empty"), "");
    assert.deepEqual(form.bytes.get("subject"), Buffer.from("100% gas refill"));
  });

  it("decodes in the charset the charset parameter names, keeping the exact bytes", () => {
    const gbk = iconv.encode("燃气充值", "gbk");
    const encoded = [...gbk].map((byte) => `%${byte.toString(16).toUpperCase()}`).join("");
    const form = parseForm(`subject=${encoded}&charset=gbk`, "application/x-www-form-urlencoded; charset=utf-8");
    assert.equal(form.charset, "gbk");
    assert.equal(form.params.get("subject"), "燃气充值");
    assert.deepEqual(form.bytes.get("subject"), gbk);
    assert.equal(parseForm(`subject=${encoded}&charset=GB2312`).params.get("subject"), "燃气充值");
  });

  it("falls back to the Content-Type charset, then UTF-8", () => {
    const gbk = [...iconv.encode("中", "gbk")].map((byte) => `%${byte.toString(16)}`).join("");
    assert.equal(parseForm(`a=${gbk}`, "application/x-www-form-urlencoded; charset=GBK").params.get("a"), "中");
    assert.equal(parseForm("a=%E4%B8%AD").params.get("a"), "中");
    assert.equal(parseForm("a=%E4%B8%AD", "application/x-www-form-urlencoded").charset, "utf-8");
  });

  it("refuses duplicates, bad escapes, raw bytes, bad encodings and unknown charsets", () => {
    assert.throws(() => parseForm("a=1&b=2&a=1"), protocolError(/duplicate parameter "a"/));
    assert.throws(() => parseForm("a=100%"), protocolError(/not followed by two hex digits/));
    assert.throws(() => parseForm("a=%zz"), protocolError(/not followed by two hex digits/));
    assert.throws(() => parseForm("a=%4"), protocolError(/not followed by two hex digits/));
    assert.throws(() => parseForm(Buffer.from("a=中")), protocolError(/raw byte 0xe4/));
    assert.throws(() => parseForm("a=1 2"), protocolError(/raw byte 0x20/));
    assert.throws(() => parseForm("a=1&b"), protocolError(/has no "="/));
    assert.throws(() => parseForm("=1"), protocolError(/empty name/));
    assert.throws(() => parseForm("a=%FF%FE"), protocolError(/parameter "a" is not valid utf-8/));
    assert.throws(() => parseForm("a=%FF%FF&charset=gbk"), protocolError(/not valid gbk/));
    assert.throws(() => parseForm("a=1&charset=big5"), protocolError(/unsupported charset "big5" in the charset parameter/));
    assert.throws(() => parseForm("a=1", "application/x-www-form-urlencoded; charset=latin1"), protocolError(/unsupported charset "latin1" in the Content-Type/));
  });
});

describe("sign content", () => {
  const params = { sign: "S", sign_type: "RSA2", b: "2", a_b: "x", aB: "y", empty: "", subject: "燃气 100%" };

  it("for notifications drops sign and sign_type, skips empty values and sorts by code unit", () => {
    assert.equal(notificationSignContent(params).toString("utf8"), "aB=y&a_b=x&b=2&subject=燃气 100%");
  });

  it("for requests keeps sign_type", () => {
    assert.equal(requestSignContent(params).toString("utf8"), "aB=y&a_b=x&b=2&sign_type=RSA2&subject=燃气 100%");
  });

  it("uses the given bytes as they are", () => {
    const gbk = iconv.encode("燃气", "gbk");
    assert.deepEqual(notificationSignContent(new Map<string, string | Uint8Array>([["subject", gbk], ["a", "1"]])), Buffer.concat([Buffer.from("a=1&subject="), gbk]));
  });
});

describe("RSA2", () => {
  const content = Buffer.from("a=1&b=2");

  it("verifies its own signatures and nothing else", () => {
    const signature = rsa2Sign(content, privateKey);
    assert.equal(rsa2Verify(content, signature, publicKey), true);
    assert.equal(rsa2Verify(Buffer.from("a=1&b=3"), signature, publicKey), false);
    assert.equal(rsa2Verify(content, signature, other.publicKey), false);
    assert.equal(rsa2Verify(content, cryptoSign("sha1", content, privateKey).toString("base64"), publicKey), false, "RSA (SHA1) is not RSA2");
    assert.equal(rsa2Verify(content, `${signature.slice(0, -4)}!!!!`, publicKey), false);
    assert.equal(rsa2Verify(content, "", publicKey), false);
  });
});

describe("v1 responses", () => {
  const method = "alipay.trade.precreate";
  const inner = { code: "10000", msg: "Success", out_trade_no: "order-1", qr_code: "https://qr.alipay.com/bax0", note: 'a "sign" inside' };

  it("verifies the exact inner text, escaped slashes and all, and returns the object", () => {
    const body = signResponse(method, inner, privateKey);
    assert.match(body, /^\{"alipay_trade_precreate_response":\{.*"qr_code":"https:\\\/\\\/qr\.alipay\.com\\\/bax0".*\},"sign":"[^"]+"\}$/);
    assert.deepEqual(verifyResponse(body, method, publicKey), inner);
  });

  it("extracts the member wherever it is and however the body is spaced", () => {
    const innerText = '{ "code" : "40004", "sub_code":"ACQ.TRADE_NOT_EXIST" }';
    const signature = rsa2Sign(Buffer.from(innerText), privateKey);
    const body = `\n{ "sign" : "${signature}",\n  "alipay_cert_sn":"x", "alipay_trade_query_response" :  ${innerText} }\n`;
    assert.deepEqual(verifyResponse(body, "alipay.trade.query", publicKey), { code: "40004", sub_code: "ACQ.TRADE_NOT_EXIST" });
  });

  it("accepts a signed error_response", () => {
    const body = signResponse("error", { code: "40002", msg: "Invalid Arguments" }, privateKey);
    assert.equal(verifyResponse(body, method, publicKey).code, "40002");
  });

  it("refuses tampered, unsigned, wrongly signed, duplicated and non-JSON bodies", () => {
    const body = signResponse(method, inner, privateKey);
    assert.throws(() => verifyResponse(body.replace("order-1", "order-2"), method, publicKey), protocolError(/does not verify/));
    assert.throws(() => verifyResponse(signResponse(method, inner, other.privateKey), method, publicKey), protocolError(/does not verify/));
    assert.throws(() => verifyResponse(body.replace(/,"sign":"[^"]+"/, ""), method, publicKey), protocolError(/unsigned \(unverified code 10000\)/));
    assert.throws(() => verifyResponse(body.replace(/"sign":"[^"]+"/, '"sign":""'), method, publicKey), protocolError(/unsigned/));
    const duplicated = body.replace('{"alipay_trade_precreate_response":', '{"alipay_trade_precreate_response":{"code":"10000"},"alipay_trade_precreate_response":');
    assert.throws(() => verifyResponse(duplicated, method, publicKey), protocolError(/duplicate member/));
    assert.throws(() => verifyResponse(body.slice(0, -1), method, publicKey), protocolError(/not JSON/));
    assert.throws(() => verifyResponse(signResponse("alipay.trade.query", inner, privateKey), method, publicKey), protocolError(/no alipay_trade_precreate_response/));
  });
});

describe("keys", () => {
  const pkcs8Pem = privateKey.export({ format: "pem", type: "pkcs8" }).toString();
  const pkcs1Pem = privateKey.export({ format: "pem", type: "pkcs1" }).toString();
  const pkcs8Bare = privateKey.export({ format: "der", type: "pkcs8" }).toString("base64");
  const pkcs1Bare = privateKey.export({ format: "der", type: "pkcs1" }).toString("base64");
  const spkiPem = publicKey.export({ format: "pem", type: "spki" }).toString();
  const spkiBare = publicKey.export({ format: "der", type: "spki" }).toString("base64");

  it("loads private keys as PEM (PKCS#8, PKCS#1), bare base64 and with literal \\n", () => {
    for (const text of [pkcs8Pem, pkcs1Pem, pkcs8Bare, pkcs1Bare, pkcs8Pem.replaceAll("\n", "\\n"), `  ${pkcs8Bare.match(/.{1,64}/g)!.join("\n")}\n`]) {
      assert.ok(loadPrivateKey(text).equals(privateKey));
    }
  });

  it("loads public keys as PEM or bare base64 SPKI", () => {
    for (const text of [spkiPem, spkiBare, publicKey.export({ format: "pem", type: "pkcs1" }).toString()]) {
      assert.ok(loadPublicKey(text).equals(publicKey));
    }
  });

  it("refuses a private key as the public one and the reverse, in PEM and in base64", () => {
    assert.throws(() => loadPublicKey(pkcs8Pem, "ALIPAY_PUBLIC_KEY"), protocolError(/^ALIPAY_PUBLIC_KEY is a PEM "PRIVATE KEY", expected "PUBLIC KEY"$/));
    assert.throws(() => loadPublicKey(pkcs8Bare), protocolError(/not an SPKI RSA public key/));
    assert.throws(() => loadPrivateKey(spkiPem), protocolError(/is a PEM "PUBLIC KEY"/));
    assert.throws(() => loadPrivateKey(spkiBare), protocolError(/not a PKCS#8 or PKCS#1 RSA private key/));
    assert.throws(() => loadPublicKey(privateKey), protocolError(/is a private key, not a public key/));
    assert.throws(() => loadPrivateKey(createPublicKey(privateKey)), protocolError(/is a public key, not a private key/));
  });

  it("refuses non-RSA, short and garbled keys without echoing them", () => {
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "pem", type: "pkcs8" }).toString();
    assert.throws(() => loadPrivateKey(ec), protocolError(/is a ec key, not RSA/));
    const short = generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey;
    assert.throws(() => loadPrivateKey(short), protocolError(/RSA-1024; RSA2 needs at least 2048 bits/));
    const garbled = pkcs8Bare.slice(0, 200);
    for (const attempt of [() => loadPrivateKey(garbled, "KEY"), () => loadPrivateKey(`-----BEGIN PRIVATE KEY-----\n${garbled}\n-----END PRIVATE KEY-----`, "KEY"), () => loadPrivateKey("not a key", "KEY")]) {
      assert.throws(attempt, (error: Error) => error instanceof AlipayProtocolError && error.message.startsWith("KEY ") && !error.message.includes(garbled.slice(40, 80)));
    }
    assert.throws(() => loadPrivateKey("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----"), protocolError(/ENCRYPTED PRIVATE KEY/));
  });
});

describe("money", () => {
  it("converts yuan strings to fen exactly", () => {
    assert.equal(yuanToFen("0.01"), 1n);
    assert.equal(yuanToFen("12.3"), 1230n);
    assert.equal(yuanToFen("12"), 1200n);
    assert.equal(yuanToFen("0.29"), 29n, "0.29 * 100 is 28.999999999999996 as a float");
    assert.equal(yuanToFen("100000000.00"), 10_000_000_000n);
    assert.equal(yuanToFen("90071992547409.93"), 9_007_199_254_740_993n, "beyond float precision");
  });

  it("refuses anything but plain digits with at most two decimals", () => {
    for (const text of ["1.234", "-1", "1e3", " 1", "1.", ".5", "0x10", "１", "1,00", "", "NaN"]) {
      assert.throws(() => yuanToFen(text), protocolError(/is not a yuan amount/), text);
    }
  });

  it("formats fen as yuan with two decimals", () => {
    assert.equal(fenToYuan(0n), "0.00");
    assert.equal(fenToYuan(5n), "0.05");
    assert.equal(fenToYuan(1230n), "12.30");
    assert.equal(fenToYuan(9_007_199_254_740_993n), "90071992547409.93");
    assert.throws(() => fenToYuan(-1n), RangeError);
  });
});

describe("Beijing time", () => {
  it("reads yyyy-MM-dd HH:mm:ss as UTC+8", () => {
    assert.equal(parseBeijingTime("1970-01-01 08:00:00"), 0);
    assert.equal(parseBeijingTime("2024-02-29 23:59:59"), Date.UTC(2024, 1, 29, 15, 59, 59) / 1000);
    assert.equal(parseBeijingTime("2015-04-28 15:45:57.320"), parseBeijingTime("2015-04-28 15:45:57"), "gmt_refund carries milliseconds");
  });

  it("refuses other shapes and impossible dates", () => {
    for (const text of ["2023-02-29 00:00:00", "2024-01-01T00:00:00", "2024-01-01 24:00:00", "2024-13-01 00:00:00", "2024-1-1 0:0:0", "2024-01-01 00:00:00+08:00"]) {
      assert.throws(() => parseBeijingTime(text), protocolError(/time/), text);
    }
  });

  it("formats unix seconds in Beijing time, round-tripping", () => {
    assert.equal(formatBeijingTime(0), "1970-01-01 08:00:00");
    assert.equal(formatBeijingTime(1_750_000_000), "2025-06-15 23:06:40");
    assert.equal(parseBeijingTime(formatBeijingTime(1_750_000_000)), 1_750_000_000);
    assert.throws(() => formatBeijingTime(1.5), RangeError);
  });
});
