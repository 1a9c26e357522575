// The demo shop (demo/shop/, started by demo/web.sh), served here under /shop/: the click-through
// that demo/web.sh prints, Day 1 / Day 3 / Day 7, checked in the database.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { BASE, cookie, customerProfile, eventsOf, launch, md5, newEmail, profileOfUid, sqlJson, uidRow, visitor, waitFor } from "./lib.mjs";

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

const footerUid = async (page) => {
  await page.waitForFunction(() => /^[0-9a-f-]{36}$/.test(document.getElementById("demo-uid").textContent));
  return page.textContent("#demo-uid");
};

test("demo shop: Day 1 browse and add to cart, Day 3 a new UID, Day 7 sign in: one customer with both visits; logout rotates", async () => {
  const { context, page } = await visitor(browser);
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const email = newEmail("Shopper");

  // Day 1
  await page.goto(BASE + "/shop/index.html");
  const uid1 = await footerUid(page);
  assert.equal(await cookie(context, "_cdp_uid"), uid1, "the footer shows the UID of the cookie");
  await page.click(".card a[href='product.html?sku=RUN-42']");
  await page.click("[data-add-to-cart]");
  await page.waitForSelector("#added:not([hidden])");
  const day1 = await waitFor("Day 1's three events", () => eventsOf(uid1).length === 3 && eventsOf(uid1));
  const cart = day1.find((e) => e.action === "add_to_cart");
  assert.equal(cart.category, "cart");
  assert.deepEqual(cart.payload.items, [{ sku: "RUN-42", name: "Trail running shoe", price: 89, currency: "GBP", quantity: 1 }]);

  // Day 3
  await Promise.all([page.waitForURL(/\/shop\/index\.html$/), page.click("#demo-new-day")]);
  const uid2 = await footerUid(page);
  assert.notEqual(uid2, uid1);
  await page.click("nav a[href='product.html?sku=JKT-7']");
  await waitFor("Day 3's page views", () => eventsOf(uid2).length === 2);
  assert.equal(eventsOf(uid2)[0].payload.context.device_id, day1[0].payload.context.device_id, "the same device");

  // Day 7: the account link, the sign-in form (the email typed with capitals and spaces)
  await page.click("#signin-link");
  await page.fill("input[name=email]", `  ${email.toUpperCase()} `);
  await page.fill("input[name=fullname]", "Shop Per");
  await Promise.all([page.waitForURL(/welcome=1/), page.click("#signin-form button[type=submit]")]);
  assert.match(await page.textContent("#greeting"), /Welcome, Shop Per/);
  assert.match(await page.textContent("#account"), /Hi, Shop Per/);
  const customerId = md5(email.toLowerCase());
  const customer = await waitFor("the customer with both anonymous profiles", () => {
    const c = customerProfile(customerId);
    return c && c.merged_profiles.length === 2 && c;
  });
  assert.deepEqual([...customer.uids].sort(), [uid1, uid2].sort());
  assert.deepEqual([...customer.merged_profiles].sort(), [uidRow(uid1).profile_id, uidRow(uid2).profile_id].sort());
  assert.equal(customer.attributes.email, email.toLowerCase());
  const actions = sqlJson(`SELECT json_agg(action ORDER BY event_time, event_id) FROM cdp.events_of(${customer.profile_id})`);
  assert.ok(actions.includes("add_to_cart") && actions.includes("sign_in"), `the timeline: ${actions}`);

  // Log out: a new UID, no longer the customer's
  await Promise.all([page.waitForURL(/bye=1/), page.click("#logout")]);
  const uid3 = await footerUid(page);
  assert.notEqual(uid3, uid2);
  await waitFor("the page view after the logout", () => eventsOf(uid3).length === 1);
  assert.equal(profileOfUid(uid3).customer_id, null);
  assert.match(await page.textContent("#account"), /Sign in/);
  assert.deepEqual(errors, [], "no script errors");
  await context.close();
});
