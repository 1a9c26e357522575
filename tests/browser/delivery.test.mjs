// Delivery in a real browser: the localStorage queue across a network outage, and the beacon
// when the page goes away. Every assertion reads the database.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { drain, eventsMarked, eventsOf, launch, mark, open, sleep, statsIn, uidIn, visitor, waitFor } from "./lib.mjs";

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test("offline, then online: the queued event is redelivered (by the next page load) and stored once", async () => {
  const { context, page } = await visitor(browser);
  await open(page, "/index.html", { batch: 1, interval: 50 });
  const uid = await uidIn(page);
  await waitFor("the page view", () => eventsOf(uid).length === 1);

  await context.setOffline(true);
  const m = mark();
  await page.evaluate((m) => window.web_event.track("test", "offline", { extra: { mark: m } }), m);
  const failed = await waitFor("a failed send", async () => {
    const s = await statsIn(page);
    return s.failures >= 1 && s;
  });
  assert.equal(failed.queued, 1, "the event waits in the queue");
  assert.match(failed.last_error, /network error/);
  assert.ok(failed.retry_at > Date.now(), "backing off");
  assert.equal(eventsMarked(m).length, 0, "nothing arrived while offline");
  await context.setOffline(false);

  // The next page load finds the event in the localStorage queue and sends it once the backoff
  // (0.5-1 s after one failure) is over; the page that failed may have sent it just before.
  await page.reload();
  await page.waitForFunction(() => window.web_event && window.web_event.version);
  await drain(page, 40_000);
  const stored = await waitFor("the offline event", () => eventsMarked(m).length && eventsMarked(m));
  await sleep(500); // a second delivery would arrive by now
  assert.equal(eventsMarked(m).length, 1, "stored once");
  assert.equal(stored[0].uid, uid);
  assert.deepEqual((await statsIn(page)).dropped, {}, "nothing dropped");
  assert.equal(eventsOf(uid).length, 3, "the two page views and the event");
  await context.close();
});

test("closing the page delivers what waits with the beacon", async () => {
  const { context, page } = await visitor(browser);
  // Nothing goes out by itself: batches of 50, a minute apart.
  await open(page, "/index.html", { batch: 50, interval: 60_000 });
  const uid = await uidIn(page);
  const m = mark();
  await page.evaluate((m) => window.web_event.track("test", "before_close", { extra: { mark: m } }), m);
  await sleep(300);
  assert.equal((await statsIn(page)).queued, 2, "the page view and the event wait");
  assert.equal(eventsOf(uid).length, 0, "nothing sent yet");

  await page.close({ runBeforeUnload: true });
  const [e] = await waitFor("the event sent on pagehide", () => eventsMarked(m).length && eventsMarked(m));
  assert.equal(e.uid, uid);
  assert.equal(e.action, "before_close");
  await waitFor("the page view too", () => eventsOf(uid).length === 2);
  await context.close();
});

test("navigating away delivers what waits with the beacon", async () => {
  const { context, page } = await visitor(browser);
  await open(page, "/product.html", { batch: 50, interval: 60_000 });
  const uid = await uidIn(page);
  const m = mark();
  await page.evaluate((m) => window.web_event.track("cart", "add_to_cart", { items: [{ sku: "RUN-42", qty: 1 }], extra: { mark: m } }), m);
  await sleep(200);
  assert.equal(eventsOf(uid).length, 0, "nothing sent yet");

  await page.goto("about:blank"); // another site: no SDK there to send the queue
  const [e] = await waitFor("the event sent on pagehide", () => eventsMarked(m).length && eventsMarked(m));
  assert.equal(e.uid, uid);
  const events = await waitFor("both events", () => eventsOf(uid).length === 2 && eventsOf(uid));
  assert.deepEqual(events.map((x) => x.action).sort(), ["add_to_cart", "view"]);
  assert.deepEqual(events.find((x) => x.action === "add_to_cart").payload.items, [{ sku: "RUN-42", qty: 1 }]);
  await context.close();
});

// Two tabs of the site track at the same time: each writes only its own queue, so neither
// overwrites the other's waiting events.
test(
  "two tabs tracking at once: every event arrives",
  async () => {
    const { context, page } = await visitor(browser);
    const other = await context.newPage();
    await open(page, "/index.html", { batch: 1, interval: 0 });
    await open(other, "/product.html", { batch: 1, interval: 0 });
    const m = mark();
    const burst = (p, tab) =>
      p.evaluate(async ({ m, tab }) => {
        for (let i = 0; i < 20; i++) {
          window.web_event.track("test", "burst", { extra: { mark: m, tab, i } });
          await new Promise((r) => setTimeout(r, 5));
        }
      }, { m, tab });
    await Promise.all([burst(page, "a"), burst(other, "b")]);
    // Whatever is still in the queues goes out now (a resurrected, leased event may wait 30 s: not needed here).
    await Promise.all([drain(page, 3000).catch(() => {}), drain(other, 3000).catch(() => {})]);
    await sleep(500);
    const stored = eventsMarked(m).length;
    await context.close();
    assert.equal(stored, 40, `${40 - stored} of 40 events were lost`);
  },
);
