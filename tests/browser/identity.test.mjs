// UIDs, sign-in and logout in a real browser: what the SDK does in the page, what the collector
// adds, what the database records. Every assertion reads the database.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  cookie,
  customerProfile,
  eventsOf,
  launch,
  lit,
  loseUid,
  md5,
  newEmail,
  open,
  profileOfUid,
  signIn,
  sql,
  sqlJson,
  uidIn,
  uidRow,
  visitor,
  waitFor,
} from "./lib.mjs";

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test("first visit: a UID in the _cdp_uid cookie, a cdp.uids row, the page view with the collector's ip and user agent", async () => {
  const { context, page } = await visitor(browser);
  await open(page, "/index.html");
  const uid = await uidIn(page);
  assert.match(uid, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/, "a UUIDv7");
  assert.equal(await cookie(context, "_cdp_uid"), uid);
  const userAgent = await page.evaluate(() => navigator.userAgent);

  const row = await waitFor("the UID in cdp.uids", () => uidRow(uid));
  const [view] = await waitFor("the page view in cdp.events", () => eventsOf(uid).length && eventsOf(uid));
  assert.equal(view.category, "pageview");
  assert.equal(view.action, "view");
  assert.equal(view.profile_id, row.profile_id);
  const ctx = view.payload.context;
  assert.equal(ctx.ip, "127.0.0.1", "context.ip is set by the collector");
  assert.equal(ctx.user_agent, userAgent, "context.user_agent is the browser's User-Agent, set by the collector");
  assert.equal(ctx.page_url, page.url());
  assert.equal(ctx.page_title, "Browser test: home");
  assert.equal(ctx.device_id, await cookie(context, "_cdp_did"));
  assert.equal(row.last_device_id, ctx.device_id);
  const profile = profileOfUid(uid);
  assert.equal(profile.kind, "anonymous");
  assert.equal(profile.customer_id, null);
  assert.match(JSON.stringify(profile.system), /Chrom/, "system attributes derived from the user agent");
  await context.close();
});

test("reload keeps the UID; a new browser context gets a new one", async () => {
  const { context, page } = await visitor(browser);
  await open(page, "/index.html");
  const uid = await uidIn(page);
  await waitFor("the first page view", () => eventsOf(uid).length === 1);
  await page.reload();
  await page.waitForFunction(() => window.web_event && window.web_event.version);
  assert.equal(await uidIn(page), uid);
  assert.equal(await cookie(context, "_cdp_uid"), uid);
  await open(page, "/product.html");
  const events = await waitFor("three page views of the same UID", () => eventsOf(uid).length === 3 && eventsOf(uid));
  assert.deepEqual(events.map((e) => e.payload.context.page_title), ["Browser test: home", "Browser test: home", "Browser test: product"]);
  assert.equal(new Set(events.map((e) => e.profile_id)).size, 1, "one anonymous profile");
  assert.equal(new Set(events.map((e) => e.payload.context.session_id)).size, 1, "one session");
  const device = events[0].payload.context.device_id;
  assert.equal(sql(`SELECT count(DISTINCT uid) FROM cdp.events WHERE payload->'context'->>'device_id' = ${lit(device)}`), "1");

  const other = await visitor(browser);
  await open(other.page, "/index.html");
  const uid2 = await uidIn(other.page);
  assert.notEqual(uid2, uid);
  assert.equal(await cookie(other.context, "_cdp_uid"), uid2);
  const row2 = await waitFor("the second visitor's UID in cdp.uids", () => uidRow(uid2));
  assert.notEqual(row2.profile_id, uidRow(uid).profile_id, "its own anonymous profile");
  assert.notEqual(row2.last_device_id, device, "its own device id");
  await other.context.close();
  await context.close();
});

test("Day 1 / Day 3 / Day 7: the sign-in merges the earlier anonymous visits into the customer profile", async () => {
  // A browser in Vietnam: _cdpGetLeadTime() is local time, read in context.timezone by the server.
  const { context, page } = await visitor(browser, { timezoneId: "Asia/Ho_Chi_Minh", locale: "vi-VN" });
  const email = newEmail("user.a");
  const customerId = md5(email);

  // Day 1: a UID, Anonymous Profile 1.
  await open(page, "/index.html");
  await page.click("#to-product");
  await page.waitForFunction(() => window.web_event && window.web_event.version);
  const uid1 = await uidIn(page);
  await waitFor("Day 1's two page views", () => eventsOf(uid1).length === 2);
  const anon1 = uidRow(uid1).profile_id;

  // Day 3: the UID cookie is gone (the device id survived): a new UID, Anonymous Profile 2.
  await loseUid(context, page);
  await open(page, "/product.html");
  const uid2 = await uidIn(page);
  assert.notEqual(uid2, uid1);
  await waitFor("Day 3's page view", () => eventsOf(uid2).length === 1);
  const anon2 = uidRow(uid2).profile_id;
  assert.notEqual(anon2, anon1);
  assert.equal(profileOfUid(uid2).kind, "anonymous");

  // Day 7: sign in (the seed's web_event.track("user", "sign_in", ...)).
  await open(page, "/index.html");
  await signIn(page, email, "User A");
  assert.equal(await uidIn(page), uid2, "the first sign-in of an anonymous UID keeps it");
  const customer = await waitFor("the customer profile", () => customerProfile(customerId));
  assert.equal(customer.kind, "customer");
  assert.equal(customer.customer_id, customerId);
  assert.deepEqual([...customer.uids].sort(), [uid1, uid2].sort());
  assert.deepEqual([...customer.merged_profiles].sort(), [anon1, anon2].sort((a, b) => a - b));
  assert.equal(customer.attributes.email, email);
  assert.equal(customer.attributes.name, "User A");
  assert.equal(profileOfUid(uid1).profile_id, customer.profile_id);

  // The timeline has both anonymous visits and the sign-in.
  const timeline = sqlJson(
    `SELECT json_agg(json_build_object('uid', uid, 'category', category, 'action', action) ORDER BY event_time, event_id)
     FROM cdp.events_of(${customer.profile_id})`,
  );
  assert.deepEqual(
    timeline.map((e) => `${e.uid === uid1 ? "uid1" : e.uid === uid2 ? "uid2" : e.uid} ${e.category}/${e.action}`),
    ["uid1 pageview/view", "uid1 pageview/view", "uid2 pageview/view", "uid2 pageview/view", "uid2 user/sign_in"],
  );

  // Why: the UID's own profile, and Day 1's profile by the shared device id; identified now (in UTC).
  const merges = sqlJson(
    `SELECT json_agg(json_build_object('from', from_profile, 'reason', reason, 'type', identify_type,
            'skew_s', abs(extract(epoch FROM identify_time - now()))) ORDER BY merge_id)
     FROM cdp.merges WHERE portal = 'default' AND into_profile = ${customer.profile_id}`,
  );
  assert.deepEqual(
    merges.map((m) => [m.from, m.reason, m.type]).sort((a, b) => a[0] - b[0]),
    [[anon1, "device_id", "exact"], [anon2, "uid", "exact"]],
  );
  for (const m of merges) assert.ok(m.skew_s < 120, `identify_time is now, read in the browser's zone (off by ${m.skew_s} s)`);
  await context.close();
});

test("logout: resetAnonymousUId() rotates the UID (new cookie, new cdp.uids row), keeps the device id", async () => {
  const { context, page } = await visitor(browser);
  const email = newEmail("logout");
  await open(page, "/index.html");
  const uid1 = await uidIn(page);
  const device = await cookie(context, "_cdp_did");
  await signIn(page, email, "Leaving Soon");
  const customer = await waitFor("the customer", () => customerProfile(md5(email)));
  assert.equal(profileOfUid(uid1).profile_id, customer.profile_id);

  await page.click("#logout");
  const uid2 = await uidIn(page);
  assert.notEqual(uid2, uid1);
  assert.equal(await cookie(context, "_cdp_uid"), uid2, "the cookie has the new UID");
  assert.equal(await cookie(context, "_cdp_did"), device, "the device id stays");
  await open(page, "/product.html");
  assert.equal(await uidIn(page), uid2);

  const row = await waitFor("the new UID in cdp.uids", () => uidRow(uid2));
  const [view] = eventsOf(uid2);
  assert.equal(view.payload.context.device_id, device);
  assert.notEqual(view.payload.context.session_id, eventsOf(uid1)[0].payload.context.session_id, "a new session");
  const after = profileOfUid(uid2);
  assert.equal(after.profile_id, row.profile_id);
  assert.equal(after.customer_id, null, "events after the logout are not the customer's");
  assert.equal(customerProfile(md5(email)).event_count, 2, "the customer kept its page view and sign-in, nothing after");
  await context.close();
});
