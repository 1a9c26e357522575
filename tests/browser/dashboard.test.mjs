// The dashboard in a real browser: a customer made by the SDK in one browser context, looked at
// by an admin role in another (login form, search, profile page with its SVG identity graph),
// and an Undo clicked. Keeps a screenshot of the profile page in tests/browser/artifacts/.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  ADMIN,
  ARTIFACTS,
  BASE,
  DASH_PASSWORD,
  READER,
  customerProfile,
  eventsOf,
  launch,
  loseUid,
  md5,
  newEmail,
  open,
  profileOfUid,
  signIn,
  sqlJson,
  uidIn,
  uidRow,
  visitor,
  waitFor,
} from "./lib.mjs";

let browser;
let story; // {email, customerId, uid1, uid2, anon1, anon2, profileId}
before(async () => {
  browser = await launch();
  mkdirSync(ARTIFACTS, { recursive: true });
  story = await dayOneThreeSeven();
});
after(async () => {
  await browser?.close();
});

/** The seed's story in one browser: Day 1 and Day 3 anonymous (a new UID each), Day 7 signs in. */
async function dayOneThreeSeven() {
  const { context, page } = await visitor(browser, { timezoneId: "Europe/London", locale: "en-GB" });
  const email = newEmail("dash");
  const customerId = md5(email);
  await open(page, "/index.html");
  await page.click("#to-product");
  await page.waitForFunction(() => window.web_event && window.web_event.version);
  const uid1 = await uidIn(page);
  await waitFor("Day 1", () => eventsOf(uid1).length === 2);
  await loseUid(context, page);
  await open(page, "/product.html");
  const uid2 = await uidIn(page);
  await waitFor("Day 3", () => eventsOf(uid2).length === 1);
  const anon1 = uidRow(uid1).profile_id;
  const anon2 = uidRow(uid2).profile_id;
  await open(page, "/index.html");
  await signIn(page, email, "Dashboard Person");
  const customer = await waitFor("Day 7's customer with both anonymous profiles", () => {
    const c = customerProfile(customerId);
    return c && c.merged_profiles.length === 2 && c;
  });
  await context.close();
  return { email, customerId, uid1, uid2, anon1, anon2, profileId: customer.profile_id };
}

/** Logs in through the dashboard's form; returns the page. */
async function login(role) {
  const { page } = await visitor(browser, { viewport: { width: 1280, height: 900 } });
  await page.goto(BASE + "/dashboard");
  assert.match(page.url(), /\/dashboard\/login$/, "not logged in: the login form");
  await page.fill("input[name=role]", role);
  await page.fill("input[name=password]", DASH_PASSWORD);
  await Promise.all([page.waitForURL((u) => !u.pathname.endsWith("/login")), page.click("button[type=submit]")]);
  assert.match(await page.textContent("header .who"), new RegExp(`signed in as\\s+${role}`));
  return page;
}

test("dashboard: a wrong password does not log in", async () => {
  const { page, context } = await visitor(browser);
  await page.goto(BASE + "/dashboard/login");
  await page.fill("input[name=role]", ADMIN);
  await page.fill("input[name=password]", "not-the-password");
  await page.click("button[type=submit]");
  await page.waitForSelector(".error");
  assert.match(await page.textContent(".error"), /Login failed/);
  assert.equal(await page.locator("header .who").count(), 0);
  await context.close();
});

test("dashboard: the admin finds the customer by email; the profile page shows the merged profile and its identity graph", async () => {
  const page = await login(ADMIN);
  await page.fill("input[name=q]", story.email);
  await Promise.all([page.waitForURL(/\/dashboard\/search\?/), page.click("form[action$='/search'] button[type=submit]")]);
  const hit = page.locator(`a[href$="/profiles/${story.profileId}"]`);
  assert.equal(await hit.count(), 1, "the customer is the one hit");
  await Promise.all([page.waitForURL(new RegExp(`/profiles/${story.profileId}`)), hit.click()]);

  assert.match(await page.textContent("h1"), new RegExp(`Customer\\s+${story.customerId}`));
  const facts = await page.textContent("dl.facts");
  assert.match(facts, new RegExp(`#${story.anon1}`));
  assert.match(facts, new RegExp(`#${story.anon2}`));
  const db = customerProfile(story.customerId);
  assert.match(facts, new RegExp(`${db.event_count} in`), "the event count of cdp.profile");

  // The identity graph: inline SVG with the device, both UIDs, both merged profiles and the customer.
  const svg = page.locator(".graph svg");
  assert.equal(await svg.count(), 1);
  const box = await svg.boundingBox();
  assert.ok(box.width > 400 && box.height > 100, `the graph has a size (${box.width}x${box.height})`);
  const titles = async (cls) => page.locator(`.graph svg g.${cls} > title`).allTextContents();
  const uidTitles = await titles("n-uid");
  assert.equal(uidTitles.length, 2);
  for (const uid of [story.uid1, story.uid2]) assert.ok(uidTitles.some((t) => t.includes(uid)), `UID ${uid} is drawn`);
  assert.equal((await titles("n-anonymous")).length, 2, "the two merged anonymous profiles");
  assert.equal((await titles("n-root")).length, 1, "the customer profile");
  assert.equal((await titles("n-device")).length, 1, "one device");
  assert.equal(await page.locator(".graph svg path.e-merge").count(), 2, "two merge edges");
  assert.equal(await page.locator(".graph svg path.e-undone").count(), 0);

  // UIDs table and the timeline (both anonymous visits and the sign-in).
  const uidTable = await page.locator("h2:has-text('UIDs') + table").textContent();
  assert.ok(uidTable.includes(story.uid1) && uidTable.includes(story.uid2));
  const rows = page.locator("table.timeline tbody tr");
  assert.equal(await rows.count(), db.event_count);
  const timeline = await page.locator("table.timeline").textContent();
  assert.match(timeline, /user\s*\/\s*sign_in/);
  assert.ok(timeline.includes(story.uid1), "Day 1's events are in the timeline");
  assert.equal(await page.locator("button.danger:has-text('Undo')").count(), 2, "an Undo per active merge");

  await page.screenshot({ path: join(ARTIFACTS, "profile.png"), fullPage: true });
  await page.context().close();
});

test("dashboard: Undo of the device merge restores Day 1's profile (cdp.merges.undone_at set, the page shows it)", async () => {
  const page = await login(ADMIN);
  await page.goto(`${BASE}/dashboard/portals/default/profiles/${story.profileId}`);
  const history = page.locator("h2:has-text('Merge history') + table tbody tr");
  const row = history.filter({ hasText: "device_id:" });
  assert.equal(await row.count(), 1, "one device_id merge in the history");
  const action = await row.locator("form.undo").getAttribute("action");
  const mergeId = Number(action.match(/\/merges\/(\d+)\/undo$/)[1]);
  const before = sqlJson(`SELECT row_to_json(m) FROM (SELECT from_profile, reason, undone_at FROM cdp.merges WHERE merge_id = ${mergeId}) m`);
  assert.deepEqual(before, { from_profile: story.anon1, reason: "device_id", undone_at: null });

  await Promise.all([page.waitForURL(/undone=/), row.locator("button:has-text('Undo')").click()]);
  assert.match(await page.textContent(".flash"), new RegExp(`Decision #${mergeId} was undone`));

  // The database: the decision is undone, Day 1's UID has its anonymous profile back.
  const undone = sqlJson(`SELECT json_build_object('undone', undone_at IS NOT NULL) FROM cdp.merges WHERE merge_id = ${mergeId}`);
  assert.deepEqual(undone, { undone: true });
  const customer = customerProfile(story.customerId);
  assert.deepEqual(customer.merged_profiles, [story.anon2]);
  assert.deepEqual(customer.uids, [story.uid2]);
  const day1 = profileOfUid(story.uid1);
  assert.equal(day1.profile_id, story.anon1);
  assert.equal(day1.customer_id, null);

  // The page: the unmerged state.
  const facts = await page.textContent("dl.facts");
  assert.match(facts, new RegExp(`#${story.anon2}`));
  assert.doesNotMatch(facts, new RegExp(`#${story.anon1}\\b`));
  assert.match(await history.filter({ hasText: "device_id:" }).textContent(), /undone/);
  assert.equal(await page.locator(".graph svg path.e-undone").count(), 1, "the undone merge is drawn dashed");
  assert.equal(await page.locator(".graph svg path.e-merge").count(), 1);
  assert.equal(await page.locator("button.danger:has-text('Undo')").count(), 1, "only the UID's merge can still be undone");
  const timeline = await page.locator("table.timeline").textContent();
  assert.ok(!timeline.includes(story.uid1), "Day 1's events left the customer's timeline");
  assert.equal(await page.locator("table.timeline tbody tr").count(), customer.event_count);
  await page.screenshot({ path: join(ARTIFACTS, "profile-after-undo.png"), fullPage: true });
  await page.context().close();
});

test("dashboard: a reader sees the profile and its graph, without Undo buttons", async () => {
  const page = await login(READER);
  await page.goto(`${BASE}/dashboard/portals/default/profiles/${story.profileId}`);
  assert.match(await page.textContent("h1"), new RegExp(story.customerId));
  assert.equal(await page.locator(".graph svg").count(), 1);
  assert.equal(await page.locator("button:has-text('Undo')").count(), 0);
  await page.context().close();
});
