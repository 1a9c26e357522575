import test from "node:test";
import assert from "node:assert/strict";
import { Browser, UUID7 } from "./browser.mjs";

const ORIGIN = "https://shop.example.com";
const quiet = { default_event: 0 };
const signIn = (id) => ({ dims: { customers: { customer_id: id, name: "N" } }, extra: { identify_id: id, identify_event: "user_sign_in" } });
const last = (b) => b.events.at(-1);
const ctx = (e) => e.payload.context;

test("UID and device id: UUIDv7 in first-party cookies (a year, SameSite=Lax, Secure on https) mirrored in localStorage", () => {
  const b = new Browser();
  b.open(ORIGIN + "/");
  const uid = b.cookie("_cdp_uid");
  const did = b.cookie("_cdp_did");
  assert.match(uid, UUID7);
  assert.match(did, UUID7);
  assert.notEqual(uid, did);
  assert.equal(parseInt(uid.replace("-", "").slice(0, 12), 16), b.now, "UUIDv7 carries the time in ms");
  assert.ok(b.cookieWrites.includes(`_cdp_uid=${uid}; path=/; max-age=31536000; SameSite=Lax; Secure`), b.cookieWrites.join("\n"));
  assert.ok(b.cookieWrites.includes(`_cdp_did=${did}; path=/; max-age=31536000; SameSite=Lax; Secure`));
  assert.equal(b.storage(ORIGIN).get("_cdp_uid"), uid);
  assert.equal(b.storage(ORIGIN).get("_cdp_did"), did);

  const plain = new Browser();
  plain.open("http://localhost:8080/");
  assert.ok(plain.cookieWrites.every((c) => !c.includes("Secure")), "no Secure on http");
});

test("the cookies' year restarts at every page load", async () => {
  const b = new Browser();
  b.open(ORIGIN + "/");
  await b.tick(200 * 864e5);
  b.open(ORIGIN + "/");
  await b.tick(200 * 864e5);
  assert.ok(b.cookie("_cdp_uid"), "still there 400 days after the first visit");
});

test("a lost cookie is restored from localStorage, and lost localStorage from the cookie", async () => {
  const b = new Browser();
  b.open(ORIGIN + "/");
  const uid = b.cookie("_cdp_uid");
  const did = b.cookie("_cdp_did");
  await b.tick(5000);

  b.deleteCookies("_cdp_uid");
  b.deleteCookies("_cdp_did");
  const p2 = b.open(ORIGIN + "/2");
  assert.equal(b.cookie("_cdp_uid"), uid);
  assert.equal(b.cookie("_cdp_did"), did);
  assert.equal(p2.web_event.getUid(), uid);
  await b.tick(5000);

  b.storage(ORIGIN).clear();
  b.open(ORIGIN + "/3");
  assert.equal(b.storage(ORIGIN).get("_cdp_uid"), uid);
  assert.equal(b.storage(ORIGIN).get("_cdp_did"), did);

  await b.tick(5000);
  assert.ok(b.events.length == 3 && b.events.every((e) => e.uid == uid && ctx(e).device_id == did));
});

test("the device id survives the loss of the UID", async () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/");
  const uid = p.web_event.getUid();
  const did = b.cookie("_cdp_did");
  b.deleteCookies("_cdp_uid");
  b.storage(ORIGIN).delete("_cdp_uid");
  b.open(ORIGIN + "/");
  await b.tick(5000);
  const e = last(b);
  assert.notEqual(e.uid, uid);
  assert.match(e.uid, UUID7);
  assert.equal(ctx(e).device_id, did);
});

test("first_party_domain: the cookies are set on the parent domain and shared by its subdomains", async () => {
  const b = new Browser();
  const config = { first_party_domain: ".example.com" };
  const shop = b.open("https://shop.example.com/", { config });
  assert.ok(b.cookieWrites.some((c) => c.startsWith("_cdp_uid=") && c.includes("; domain=.example.com; SameSite=Lax")));
  const blog = b.open("https://blog.example.com/", { config }); // another origin: its own, empty localStorage
  assert.equal(blog.web_event.getUid(), shop.web_event.getUid());
  await b.tick(5000);
  assert.equal(new Set(b.events.map((e) => ctx(e).device_id)).size, 1);
  assert.equal(b.storage("https://blog.example.com").get("_cdp_uid"), shop.web_event.getUid());
});

test("session: continues while events come less than 30 minutes apart, rolls over after 30 minutes idle", async () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/", { config: quiet });
  const session = () => {
    p.web_event.track("page", "scroll");
    return JSON.parse(b.storage(ORIGIN).get("_cdp_ses")).id;
  };
  const first = session();
  assert.match(first, UUID7);
  await b.tick(29 * 60e3);
  assert.equal(session(), first);
  await b.tick(29 * 60e3 + 59e3); // an hour after the first event, but never 30 minutes idle
  assert.equal(session(), first);
  await b.tick(30 * 60e3 + 1);
  const second = session();
  assert.notEqual(second, first);
  await p.web_event.flush();
  assert.deepEqual(b.events.map((e) => ctx(e).session_id), [first, first, first, second]);
});

test("session: shared by the tabs (activity in one tab keeps the other's session alive)", async () => {
  const b = new Browser();
  const a = b.open(ORIGIN + "/a", { config: quiet });
  const c = b.open(ORIGIN + "/c", { config: quiet });
  a.web_event.track("x", "1");
  await b.tick(20 * 60e3);
  c.web_event.track("x", "2");
  await b.tick(20 * 60e3); // tab a has been idle 40 minutes, the browser 20
  a.web_event.track("x", "3");
  await b.tick(31 * 60e3);
  c.web_event.track("x", "4");
  await a.web_event.flush();
  await c.web_event.flush();
  const byAction = Object.fromEntries(b.events.map((e) => [e.action, ctx(e).session_id]));
  assert.equal(byAction[1], byAction[2]);
  assert.equal(byAction[2], byAction[3]);
  assert.notEqual(byAction[4], byAction[3]);
});

test("resetAnonymousUId: a new UID (UUIDv7) in the cookie and localStorage, the same device id, a new session", async () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/", { config: quiet });
  p.web_event.track("x", "before");
  const before = p.web_event.getUid();
  p.web_event.resetAnonymousUId();
  p.web_event.track("x", "after");
  const after = p.web_event.getUid();
  assert.notEqual(after, before);
  assert.match(after, UUID7);
  assert.equal(b.cookie("_cdp_uid"), after);
  assert.equal(b.storage(ORIGIN).get("_cdp_uid"), after);
  await p.web_event.flush();
  const [e1, e2] = b.events;
  assert.deepEqual([e1.uid, e2.uid], [before, after]);
  assert.equal(ctx(e1).device_id, ctx(e2).device_id);
  assert.notEqual(ctx(e1).session_id, ctx(e2).session_id);
});

test("a reset in one tab: the other tab's next event has the new UID", async () => {
  const b = new Browser();
  const a = b.open(ORIGIN + "/a", { config: quiet });
  const c = b.open(ORIGIN + "/c", { config: quiet });
  a.web_event.resetAnonymousUId();
  c.web_event.track("x", "y");
  await c.web_event.flush();
  assert.equal(last(b).uid, a.web_event.getUid());
});

test("a sign-in as another customer than the one this UID was identified as rotates the UID first (shared browser)", async () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/", { config: quiet });
  const { md5 } = p.window._cdpEventFunction;
  const first = p.web_event.getUid();
  p.web_event.track("user", "sign_in", signIn(md5("dad@example.com")));
  p.web_event.track("product", "view");
  assert.equal(p.web_event.getUid(), first, "the first sign-in keeps the UID (its anonymous visits join the customer)");
  p.web_event.track("user", "sign_in", signIn(md5("kid@example.com")));
  const second = p.web_event.getUid();
  assert.notEqual(second, first);
  await p.web_event.flush();
  const [dad, view, kid] = b.events;
  assert.deepEqual([dad.uid, view.uid, kid.uid], [first, first, second], "the kid's sign-in itself goes to the new UID");
  assert.equal(ctx(kid).device_id, ctx(dad).device_id);
  assert.notEqual(ctx(kid).session_id, ctx(dad).session_id);
  const remembered = b.storage(ORIGIN).get("_cdp_cid");
  assert.ok(!remembered.includes(md5("kid@example.com")), "the customer id is remembered hashed");
  assert.equal(JSON.parse(remembered).c, md5(md5("kid@example.com")));
});

test("the same customer again (any hex case, or only extra.identify_id) does not rotate", () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/", { config: quiet });
  const id = p.window._cdpEventFunction.md5("a@example.com");
  const uid = p.web_event.getUid();
  p.web_event.track("user", "sign_in", signIn(id));
  p.web_event.track("user", "identify", signIn(id.toUpperCase()));
  p.web_event.track("user", "identify", { extra: { identify_id: " " + id + " " } });
  p.web_event.track("user", "identify", { dims: { customers: { customer_id: "" } } }); // no claim
  assert.equal(p.web_event.getUid(), uid);
  p.web_event.track("user", "identify", { extra: { identify_id: 12345 } }); // another customer, as a number
  assert.notEqual(p.web_event.getUid(), uid);
});

test("after a logout the next customer's sign-in keeps the fresh UID, so their anonymous visits join them", async () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/", { config: quiet });
  p.web_event.track("user", "sign_in", signIn("dad"));
  p.web_event.resetAnonymousUId();
  const fresh = p.web_event.getUid();
  p.web_event.track("product", "view");
  p.web_event.track("user", "sign_in", signIn("kid"));
  assert.equal(p.web_event.getUid(), fresh);
  // The customer is remembered across pages: dad signing in again rotates away from the kid's UID.
  const p2 = b.open(ORIGIN + "/2", { config: quiet });
  p2.web_event.track("user", "sign_in", signIn("dad"));
  assert.notEqual(p2.web_event.getUid(), fresh);
});

test("junk customer ids (undefined, null, md5 of an empty email, ...) never rotate the UID", () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/", { config: quiet });
  const { md5 } = p.window._cdpEventFunction;
  p.web_event.track("user", "sign_in", signIn("customer-7"));
  const uid = p.web_event.getUid();
  for (const junk of ["undefined", "null", "0", "[object Object]", " NULL ", md5(""), md5(undefined), md5(null), 0])
    p.web_event.track("user", "identify", signIn(junk));
  p.web_event.track("user", "identify", { dims: { customers: { customer_id: { id: 1 } } } });
  assert.equal(p.web_event.getUid(), uid);
  p.web_event.track("user", "identify", signIn("customer-7"));
  assert.equal(p.web_event.getUid(), uid);
});
