import test from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { BUNDLE_PATH } from "./browser.mjs";

test("dist/cdp.js is at most 5 KB gzipped", () => {
  const size = gzipSync(readFileSync(BUNDLE_PATH), { level: 9 }).length;
  console.log(`dist/cdp.js: ${readFileSync(BUNDLE_PATH).length} bytes, ${size} gzipped`);
  assert.ok(size <= 5 * 1024, `${size} bytes gzipped`);
});
