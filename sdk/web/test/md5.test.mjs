import test from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Browser } from "./browser.mjs";

const browser = new Browser();
const { md5, _cdpGetLeadTime } = browser.open().window._cdpEventFunction;

test("md5: the RFC 1321 test vectors", () => {
  const vectors = {
    "": "d41d8cd98f00b204e9800998ecf8427e",
    a: "0cc175b9c0f1b6a831c399e269772661",
    abc: "900150983cd24fb0d6963f7d28e17f72",
    "message digest": "f96b697d7cb7938d525a2f31aaf161d0",
    abcdefghijklmnopqrstuvwxyz: "c3fcd3d76192e4007dfb496cca67e13b",
    ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789: "d174ab98d277d9f5a5611c2c9f419d9f",
    "12345678901234567890123456789012345678901234567890123456789012345678901234567890": "57edf4a22be3c955ac49da2e2107b67a",
  };
  for (const [text, hex] of Object.entries(vectors)) assert.equal(md5(text), hex, JSON.stringify(text));
});

test("md5: UTF-8 text, every padding length and multi-block inputs agree with node:crypto", () => {
  for (let n = 0; n < 300; n++) {
    const text = "ký tự 🙂 ".repeat(n % 5) + "x".repeat(n);
    assert.equal(md5(text), createHash("md5").update(text, "utf8").digest("hex"), `length ${n}`);
  }
  assert.equal(md5("user.a@example.com"), createHash("md5").update("user.a@example.com").digest("hex"));
});

test("md5: a non-text argument is hashed as its string form (md5(undefined) is a junk id the server refuses)", () => {
  assert.equal(md5(undefined), createHash("md5").update("undefined").digest("hex"));
  assert.equal(md5(42), md5("42"));
});

test("_cdpGetLeadTime: the local wall-clock time as YYYY-MM-DD HH:MM:SS", () => {
  assert.match(_cdpGetLeadTime(), /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
  assert.equal(_cdpGetLeadTime(), "2026-11-30 17:15:09"); // 10:15:09.250 UTC in Asia/Ho_Chi_Minh
  browser.now = Date.UTC(2027, 0, 1, 16, 2, 3, 999); // pads months, days, hours; drops the milliseconds
  assert.equal(_cdpGetLeadTime(), "2027-01-01 23:02:03");
});
