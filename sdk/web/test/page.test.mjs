import test from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Browser, ENDPOINT, plain, START, UUID7, VERSION } from "./browser.mjs";

const ORIGIN = "https://shop.example.com";
const views = (b) => b.events.map((e) => [e.category, e.action, e.payload.context.page_url, e.payload.context.page_title]);

test("an automatic page view at load, with the page's context", async () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/p/1?utm_source=mail#top", { title: "Product 1", propId: "web" });
  await b.tick(5000);
  assert.equal(b.events.length, 1);
  const [e] = b.events;
  assert.deepEqual([e.category, e.action], ["pageview", "view"]);
  assert.deepEqual(Object.keys(e.payload), ["context"], "no dims, extra or items");
  const c = e.payload.context;
  assert.equal(c.page_url, ORIGIN + "/p/1?utm_source=mail#top");
  assert.equal(c.page_title, "Product 1");
  assert.equal(c.referrer, "https://www.google.com/");
  assert.equal(c.timezone, Intl.DateTimeFormat().resolvedOptions().timeZone);
  assert.equal(c.locale, "vi-VN");
  assert.equal(c.screen, "1920x1080");
  assert.equal(c.property_id, "web");
  assert.equal(c.sdk, "cdp-web/" + VERSION);
  assert.equal(p.web_event.version, VERSION);
});

test("empty context values are left out (a direct visit has no referrer)", async () => {
  const b = new Browser();
  b.open(ORIGIN + "/", { referrer: "", title: "" });
  await b.tick(5000);
  const c = b.events[0].payload.context;
  assert.ok(!("referrer" in c) && !("page_title" in c) && !("property_id" in c), JSON.stringify(c));
});

test("default_event: 0 turns automatic page views off; an object names their category and action", async () => {
  const off = new Browser();
  off.open(ORIGIN + "/", { config: { default_event: 0 } });
  await off.tick(60e3);
  assert.equal(off.events.length, 0);

  const named = new Browser();
  named.open(ORIGIN + "/", { config: { default_event: { category: "page", action: "load" } } });
  await named.tick(5000);
  assert.deepEqual([named.events[0].category, named.events[0].action], ["page", "load"]);

  const on = new Browser();
  on.open(ORIGIN + "/", { config: { default_event: 1 } });
  await on.tick(5000);
  assert.deepEqual([on.events[0].category, on.events[0].action], ["pageview", "view"]);
});

test("single-page apps: pushState, replaceState to a new URL and popstate make page views, with the title the app sets", async () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/", { title: "Home" });
  p.window.history.pushState({}, "", "/products");
  p.document.title = "Products"; // the app renders, then sets the title
  await b.tick(0);
  p.window.history.replaceState({ scroll: 10 }, ""); // same URL: no page view
  p.window.history.replaceState({}, "", "/products?page=2");
  await b.tick(0);
  p.document.title = "Home";
  p.back(ORIGIN + "/");
  await b.tick(0);
  p.window.history.pushState({}, "", "/"); // no change
  await b.tick(5000);
  assert.deepEqual(views(b), [
    ["pageview", "view", ORIGIN + "/", "Home"],
    ["pageview", "view", ORIGIN + "/products", "Products"],
    ["pageview", "view", ORIGIN + "/products?page=2", "Products"],
    ["pageview", "view", ORIGIN + "/", "Home"],
  ]);
  assert.ok(b.events.every((e) => e.payload.context.referrer == "https://www.google.com/"), "the document's referrer");
  assert.equal(new Set(b.events.map((e) => e.payload.context.message_id)).size, 4);
});

test("optOut: nothing is sent or stored, the ids and waiting events are deleted; it persists; optIn resumes with new ids", async () => {
  const b = new Browser();
  const config = { first_party_domain: "example.com" };
  const p = b.open(ORIGIN + "/", { config });
  const uid = p.web_event.getUid();
  p.web_event.track("x", "before");
  p.web_event.optOut();
  assert.equal(b.cookie("_cdp_uid"), undefined);
  assert.equal(b.cookie("_cdp_did"), undefined);
  assert.equal(b.cookie("_cdp_optout"), "1");
  assert.ok(b.cookieWrites.some((c) => c.startsWith("_cdp_optout=1;") && c.includes("domain=example.com")));
  assert.deepEqual([...b.storage(ORIGIN).keys()], ["_cdp_optout"]);
  p.web_event.track("x", "during");
  p.web_event.resetAnonymousUId();
  assert.equal(p.web_event.getUid(), null);
  await b.tick(60e3);
  p.close();
  const p2 = b.open(ORIGIN + "/2", { config }); // a later page: still opted out, no page view, no ids
  p2.window.history.pushState({}, "", "/3");
  await b.tick(60e3);
  assert.equal(b.events.length, 0);
  assert.equal(b.cookie("_cdp_uid"), undefined);

  b.storage(ORIGIN).clear(); // the cookie alone still says no
  b.open(ORIGIN + "/4", { config });
  await b.tick(60e3);
  assert.equal(b.events.length, 0);

  p2.web_event.optIn();
  assert.equal(b.cookie("_cdp_optout"), undefined);
  p2.web_event.track("x", "after");
  await b.tick(5000);
  assert.deepEqual(b.events.map((e) => e.action), ["after"]);
  assert.notEqual(b.events[0].uid, uid);
  assert.match(b.events[0].uid, UUID7);
});

test("Do Not Track: with respect_dnt, a browser sending DNT is not tracked; without it, it is", async () => {
  const dnt = new Browser();
  const p = dnt.open(ORIGIN + "/", { config: { respect_dnt: true }, navigator: { doNotTrack: "1" } });
  p.web_event.track("x", "y");
  await dnt.tick(60e3);
  assert.equal(dnt.events.length, 0);
  assert.equal(dnt.cookies.length, 0);
  assert.equal(dnt.storage(ORIGIN).size, 0);
  assert.equal(p.web_event.getUid(), null);

  const noDnt = new Browser();
  noDnt.open(ORIGIN + "/", { config: { respect_dnt: true }, navigator: { doNotTrack: "0" } });
  const ignored = new Browser();
  ignored.open(ORIGIN + "/", { navigator: { doNotTrack: "1" } });
  await noDnt.tick(5000);
  await ignored.tick(5000);
  assert.equal(noDnt.events.length, 1);
  assert.equal(ignored.events.length, 1, "respect_dnt is off by default");
});

test("the snippet: calls made before cdp.js loads are queued, then sent with the time they were made", async () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/login", {
    snippet: true,
    load: false,
    before: `web_event.track("user", "sign_in", {
      dims: { customers: { customer_id: window._cdpEventFunction.md5("user.a@example.com"), name: "A" } },
      extra: { identify_id: window._cdpEventFunction.md5("user.a@example.com"),
               identify_time: window._cdpEventFunction._cdpGetLeadTime(), identify_event: "user_sign_in", identify_type: "exact" },
      items: [{ id: 1 }]
    });`,
  });
  assert.deepEqual(p.scripts, ["https://cdn.example.com/cdp.js"]);
  assert.equal(p.web_event.q.length, 1);
  await b.tick(1500); // the script arrives 1.5 s later
  p.load();
  assert.equal(p.web_event.version, VERSION);
  await b.tick(5000);
  const [view, signIn] = b.events;
  assert.deepEqual([view.category, signIn.category, signIn.action], ["pageview", "user", "sign_in"]);
  assert.equal(view.event_time, new Date(START).toISOString(), "the page view at the snippet's time");
  assert.equal(signIn.event_time, new Date(START).toISOString(), "the call's own time, not the load's");
  const id = createHash("md5").update("user.a@example.com").digest("hex");
  assert.deepEqual(signIn.payload.dims, { customers: { customer_id: id, name: "A" } });
  assert.deepEqual(signIn.payload.extra, {
    identify_id: id,
    identify_time: "2026-11-30 17:15:09",
    identify_event: "user_sign_in",
    identify_type: "exact",
  });
  assert.deepEqual(signIn.payload.items, [{ id: 1 }]);
  p.web_event.track("x", "y"); // the real one now
  await b.tick(5000);
  assert.equal(b.events.length, 3);
});

test("the snippet: an opt-out queued before load stops the page view; a logout queued before load rotates the UID", async () => {
  const b = new Browser();
  b.open(ORIGIN + "/", { snippet: true, before: "web_event.optOut(); web_event.track('x', 'y');" });
  await b.tick(60e3);
  assert.equal(b.events.length, 0);

  const b2 = new Browser();
  const first = b2.open(ORIGIN + "/").web_event.getUid();
  const p = b2.open(ORIGIN + "/logout", { snippet: true, before: "web_event.track('a', 'before'); web_event.resetAnonymousUId(); web_event.track('a', 'after');" });
  await p.web_event.flush();
  const uids = Object.fromEntries(b2.events.map((e) => [e.action, e.uid]));
  assert.equal(uids.before, first);
  assert.notEqual(uids.after, first);
  assert.equal(uids.after, p.web_event.getUid());
});

test("the script loaded twice does nothing the second time", async () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/");
  const api = p.web_event;
  p.load();
  assert.equal(p.web_event, api);
  await b.tick(5000);
  assert.equal(b.events.length, 1);
});

test("writeKey defaults to _portalId; without endpoint nothing is sent and a warning says why", async () => {
  const b = new Browser();
  b.open(ORIGIN + "/", { config: { writeKey: undefined }, portalId: "shop" });
  await b.tick(5000);
  assert.equal(b.requests[0].url, ENDPOINT + "/v1/batch?key=shop");

  const none = new Browser();
  const p = none.open(ORIGIN + "/", { config: { endpoint: undefined } });
  p.web_event.track("x", "y");
  await none.tick(60e3);
  await p.web_event.flush();
  assert.equal(none.requests.length + none.beacons.length, 0);
  assert.equal(plain(p.web_event.stats()).queued, 2, "the events wait");
  assert.match(p.warnings.join("\n"), /endpoint and writeKey/);
});

test("extra.identify_hash and every other value of dims, extra and items are passed through as given", async () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/", { config: { default_event: 0 } });
  const data = {
    dims: { customers: { customer_id: "c-1", email: "A@Example.com" }, products: { id: "1", price: 1.1 } },
    extra: { identify_hash: "f".repeat(64), identify_time: "2026-11-30 17:15:09", nested: { deep: [1, null, "x"] } },
    items: [{ sku: "x" }],
  };
  p.web_event.track("user", "sign_in", data);
  await p.web_event.flush();
  const { context, ...rest } = b.events[0].payload;
  assert.deepEqual(rest, data);
});

test("a call without a category or action is ignored; a null third argument is fine", async () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/", { config: { default_event: 0 } });
  p.web_event.track("", "x");
  p.web_event.track("x");
  p.web_event.track("x", "y", null);
  await p.web_event.flush();
  assert.deepEqual(b.events.map((e) => [e.category, e.action]), [["x", "y"]]);
});
