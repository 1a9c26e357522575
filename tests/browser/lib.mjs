// Helpers of the browser tests: the browser (Debian's chromium through playwright-core), the test
// site served by the collector, and psql, which every assertion reads. Started by test.sh, which
// sets CDP_BROWSER_BASE (the collector), PGHOST/PGPORT/PGUSER/PGDATABASE (the test cluster),
// CDP_CHROMIUM, CDP_ARTIFACTS and the dashboard roles.
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { chromium } from "playwright-core";

export const BASE = need("CDP_BROWSER_BASE");
export const ARTIFACTS = process.env.CDP_ARTIFACTS || new URL("./artifacts", import.meta.url).pathname;
export const ADMIN = process.env.CDP_ADMIN_ROLE || "browser_admin";
export const READER = process.env.CDP_READER_ROLE || "browser_reader";
export const DASH_PASSWORD = need("CDP_DASH_PASSWORD");
export const DEFAULT_KEY = "wk_browser_default";
export const VERIFIED_KEY = "wk_browser_verified";

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run tests/browser/test.sh`);
  return v;
}

/** Debian's chromium, headless. No browser is downloaded: executablePath is the system one. */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CDP_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    // root: no sandbox; /dev/shm can be small in containers
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
  });
}

// ---------------------------------------------------------------- the database

/** A SQL string literal. */
export function lit(value) {
  return "'" + String(value).replace(/'/g, "''") + "'";
}

/** Runs SQL as postgres in the test database; returns the output (unaligned, tuples only), trimmed. */
export function sql(query) {
  return execFileSync("psql", ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", query], {
    encoding: "utf8",
    env: { ...process.env, PGOPTIONS: "-c client_min_messages=warning" },
    stdio: ["ignore", "pipe", "pipe"],
  }).trim();
}

/** The JSON value of a query returning one json column (null for no row or SQL NULL). */
export function sqlJson(query) {
  const out = sql(query);
  return out === "" ? null : JSON.parse(out);
}

/** Polls fn (sync or async) until it returns a truthy value; throws with `what` after timeoutMs. */
export async function waitFor(what, fn, timeoutMs = 10_000, everyMs = 100) {
  const until = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last})`);
    await sleep(everyMs);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The events of a UID in a portal, oldest first: [{event_id, profile_id, category, action, payload}]. */
export function eventsOf(uid, portal = "default") {
  return (
    sqlJson(
      `SELECT json_agg(json_build_object('event_id', event_id, 'profile_id', profile_id, 'category', category,
              'action', action, 'message_id', message_id, 'payload', payload) ORDER BY event_id)
       FROM cdp.events WHERE portal = ${lit(portal)} AND uid = ${lit(uid)}`,
    ) || []
  );
}

/** The events carrying a marker (payload.extra.mark), in any portal. */
export function eventsMarked(mark) {
  return (
    sqlJson(
      `SELECT json_agg(json_build_object('event_id', event_id, 'uid', uid, 'category', category, 'action', action,
              'message_id', message_id) ORDER BY event_id)
       FROM cdp.events WHERE payload->'extra'->>'mark' = ${lit(mark)}`,
    ) || []
  );
}

/** cdp.uids row of a UID: {profile_id, first_seen, last_device_id} or null. */
export function uidRow(uid, portal = "default") {
  return sqlJson(
    `SELECT row_to_json(u) FROM (SELECT profile_id, first_seen, last_device_id FROM cdp.uids
     WHERE portal = ${lit(portal)} AND uid = ${lit(uid)}) u`,
  );
}

/** The unified profile (cdp.profile) the UID writes to now, or null. */
export function profileOfUid(uid, portal = "default") {
  return sqlJson(`SELECT cdp.profile(cdp.profile_of(${lit(uid)}, portal => ${lit(portal)}), portal => ${lit(portal)})`);
}

/** cdp.customer_profile of a customer id, or null. */
export function customerProfile(customerId, portal = "default") {
  return sqlJson(`SELECT cdp.customer_profile(${lit(customerId)}, portal => ${lit(portal)})`);
}

/** The customer id the seed derives from an email: md5 of the email as typed. */
export function md5(text) {
  return sql(`SELECT cdp.md5(${lit(text)})`);
}

/** A unique email per test run, so the tests never see each other's customers. */
export function newEmail(who) {
  return `${who}.${randomUUID().slice(0, 8)}@example.com`;
}

export const mark = () => randomUUID();

// ---------------------------------------------------------------- the browser

/**
 * Opens a test site page and waits for the real SDK (the snippet's stub has no version).
 * opts: key (write key), batch (batch_size), interval (flush_interval ms).
 */
export async function open(page, path = "/index.html", opts = {}) {
  const q = new URLSearchParams();
  if (opts.key) q.set("key", opts.key);
  if (opts.batch) q.set("batch", String(opts.batch));
  if (opts.interval != null) q.set("interval", String(opts.interval));
  const url = BASE + path + (q.toString() ? "?" + q : "");
  await page.goto(url, { waitUntil: "load" });
  await page.waitForFunction(() => window.web_event && window.web_event.version, null, { timeout: 10_000 });
  return url;
}

/** A new browser context (its own cookies and localStorage: a new visitor) with one page. */
export async function visitor(browser, options = {}) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  return { context, page };
}

export async function cookie(context, name) {
  const c = (await context.cookies(BASE)).find((c) => c.name === name);
  return c ? decodeURIComponent(c.value) : null;
}

export const uidIn = (page) => page.evaluate(() => window.web_event.getUid());
export const statsIn = (page) => page.evaluate(() => window.web_event.stats());
export const flushIn = (page) => page.evaluate(() => window.web_event.flush());

/** Sends everything the page's SDK holds (retrying after any backoff it asked for) within timeoutMs. */
export async function drain(page, timeoutMs = 10_000) {
  let stats;
  try {
    await waitFor("the SDK's queue to empty", async () => {
      await flushIn(page);
      stats = await statsIn(page);
      return stats.queued === 0;
    }, timeoutMs, 200);
  } catch (e) {
    const queue = await page.evaluate(() => JSON.stringify(Object.keys(localStorage).filter((k) => k.startsWith("_cdp_q")).map((k) => localStorage.getItem(k)))).catch(() => null);
    throw new Error(`${e.message}; stats ${JSON.stringify(stats)}; queue ${queue} at ${Date.now()}`);
  }
}

/** The test site's sign-in form: the seed's web_event.track("user", "sign_in", ...). */
export async function signIn(page, email, name = "", hash = "") {
  await page.fill("#signin input[name=email]", email);
  await page.fill("#signin input[name=fullname]", name);
  await page.fill("#signin input[name=hash]", hash);
  await page.click("#signin button[type=submit]");
  await page.waitForFunction((e) => document.body.getAttribute("data-signed-in") === e, email);
}

/**
 * A new UID in the same browser, as when the UID's cookie and its localStorage copy are gone
 * (expired, cleaned) but the device id survived: the seed's "Day 3: gets a new UID".
 */
export async function loseUid(context, page) {
  await page.evaluate(() => {
    localStorage.removeItem("_cdp_uid");
    localStorage.removeItem("_cdp_ses");
  });
  const keep = (await context.cookies(BASE)).filter((c) => c.name !== "_cdp_uid");
  await context.clearCookies();
  await context.addCookies(keep);
}
