// Verified identity from the browser: in portal 'verified' (identity_verification = required) a
// sign-in identifies only with extra.identify_hash = cdp.identity_hash(customer_id), which the
// site's backend renders into the page. Every assertion reads the database.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  VERIFIED_KEY,
  customerProfile,
  eventsOf,
  launch,
  lit,
  md5,
  newEmail,
  open,
  profileOfUid,
  signIn,
  sql,
  sqlJson,
  uidIn,
  visitor,
  waitFor,
} from "./lib.mjs";

const PORTAL = "verified";
let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** What the site's backend computes for the signed-in user. */
const identityHash = (customerId) => sql(`SELECT cdp.identity_hash(${lit(customerId)}, portal => 'verified')`);

const skipsOf = (uid) =>
  sqlJson(
    `SELECT json_agg(json_build_object('field', field, 'value', value, 'reason', reason) ORDER BY skip_id)
     FROM cdp.identify_skips WHERE portal = 'verified' AND uid = ${lit(uid)}`,
  ) || [];

/** The customer signs in on a new browser, with the hash the backend rendered into the page. */
async function verifiedSignIn(email, name = "Victim") {
  const v = await visitor(browser);
  await open(v.page, "/product.html", { key: VERIFIED_KEY });
  const uid = await uidIn(v.page);
  await waitFor("the page view", () => eventsOf(uid, PORTAL).length === 1);
  await open(v.page, "/index.html", { key: VERIFIED_KEY });
  await signIn(v.page, email, name, identityHash(md5(email)));
  await waitFor("the UID on the customer", () => profileOfUid(uid, PORTAL)?.customer_id === md5(email));
  return { ...v, uid };
}

/** Somebody else types the victim's email into the sign-in call (md5(email) is no secret): no hash, then a wrong one. */
async function forgedSignIns(email) {
  const v = await visitor(browser);
  await open(v.page, "/index.html", { key: VERIFIED_KEY });
  const uid = await uidIn(v.page);
  await signIn(v.page, email, "Not The Victim");
  await waitFor("the unverified skip", () => skipsOf(uid).length === 1);
  // A wrong hash: 64 hex digits, but the hash of another customer id.
  await signIn(v.page, email, "Not The Victim", identityHash(md5("someone.else@example.com")));
  await waitFor("the second unverified skip", () => skipsOf(uid).length === 2);
  return { ...v, uid };
}

test("verified portal: sign-ins with the right hash join the customer; forged ones (no hash, a wrong hash) do not", async () => {
  const email = newEmail("victim");
  const customerId = md5(email);

  // The customer, on a phone and then on a laptop: both join the one customer.
  const phone = await verifiedSignIn(email);
  const customer = customerProfile(customerId, PORTAL);
  assert.deepEqual(customer.uids, [phone.uid]);
  assert.deepEqual(skipsOf(phone.uid), []);
  assert.equal(customerProfile(customerId, "default"), null, "nothing in the other portal");
  const laptop = await verifiedSignIn(email);
  const joined = customerProfile(customerId, PORTAL);
  assert.equal(joined.profile_id, customer.profile_id);
  assert.deepEqual([...joined.uids].sort(), [phone.uid, laptop.uid].sort());
  assert.deepEqual(skipsOf(laptop.uid), []);

  // A forger: the skips are recorded, the events are stored, the UID stays anonymous.
  const forger = await forgedSignIns(email);
  assert.deepEqual(skipsOf(forger.uid), [
    { field: "payload.dims.customers.customer_id", value: customerId, reason: "unverified" },
    { field: "payload.dims.customers.customer_id", value: customerId, reason: "unverified" },
  ]);
  const events = eventsOf(forger.uid, PORTAL);
  assert.deepEqual(events.map((e) => e.action), ["view", "sign_in", "sign_in"], "the forged sign-ins are stored");
  const mine = profileOfUid(forger.uid, PORTAL);
  assert.notEqual(mine.profile_id, customer.profile_id);
  assert.equal(mine.customer_id, null, "the forger's UID stays anonymous");

  // The customer is untouched: its UIDs, its name, none of the forger's events.
  const after = customerProfile(customerId, PORTAL);
  assert.deepEqual(after.uids, joined.uids);
  assert.deepEqual(after.merged_profiles, joined.merged_profiles);
  assert.equal(after.attributes.name, "Victim");
  const timelineUids = sql(`SELECT string_agg(DISTINCT uid, ',' ORDER BY uid) FROM cdp.events_of(${after.profile_id}, portal => 'verified')`);
  assert.equal(timelineUids, [phone.uid, laptop.uid].sort().join(","));

  for (const v of [phone, laptop, forger]) await v.context.close();
});

// The forged sign-ins leave the victim's email on the forger's profile (as a lead form would); in a
// portal that requires verified identity it does not merge by default (contact_linking 'suggest').
test(
  "verified portal: the customer's next verified sign-in does not pull a forger's UID in",
  async () => {
    const email = newEmail("victim2");
    const first = await verifiedSignIn(email);
    const forger = await forgedSignIns(email);
    const again = await verifiedSignIn(email);
    const customer = customerProfile(md5(email), PORTAL);
    const forgerProfile = profileOfUid(forger.uid, PORTAL);
    for (const v of [first, forger, again]) await v.context.close();
    assert.notEqual(forgerProfile.profile_id, customer.profile_id, "the forger's UID writes to the customer");
    assert.ok(!customer.uids.includes(forger.uid));
  },
);
