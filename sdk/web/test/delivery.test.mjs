import test from "node:test";
import assert from "node:assert/strict";
import { Browser, ENDPOINT, plain, START, UUID7, VERSION } from "./browser.mjs";

const ORIGIN = "https://shop.example.com";
const quiet = { default_event: 0 };
const track = (p, n, from = 0) => {
  for (let i = from; i < from + n; i++) p.web_event.track("product", "view", { dims: { products: { id: "p" + i } } });
};
const ids = (batch) => batch.map((e) => e.payload.context.message_id);
const sizes = (b) => b.requests.map((r) => r.body.batch.length);
/** The events waiting in every page's queue (each page writes its own key _cdp_q.<id>). */
const queue = (b) => {
  const store = b.storage(ORIGIN);
  return { e: [...store.keys()].filter((k) => k.startsWith("_cdp_q")).flatMap((k) => JSON.parse(store.get(k)).e) };
};

test("wire format: POST {endpoint}/v1/batch?key=..., text/plain JSON {batch, sent_at}, items in the cdp.track_batch shape", async () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/cart?x=1", { config: { endpoint: ENDPOINT + "/", writeKey: "k y/z" }, propId: "web", title: "Cart" });
  p.web_event.track("product", "add_to_cart", {
    dims: { products: { id: "sku-1" } },
    extra: { identify_hash: "ab".repeat(32), price: 10.5 },
    items: [{ id: "sku-1", quantity: 2 }],
    other: "not sent",
  });
  await b.tick(5000);
  assert.equal(b.requests.length, 1);
  const [{ url, init, body }] = b.requests;
  assert.equal(url, ENDPOINT + "/v1/batch?key=k%20y%2Fz");
  assert.equal(init.method, "POST");
  assert.deepEqual(init.headers, { "Content-Type": "text/plain;charset=UTF-8" });
  assert.equal(init.credentials, "omit");
  assert.equal(init.keepalive, true);
  assert.deepEqual(Object.keys(body), ["batch", "sent_at"]);
  assert.equal(body.sent_at, new Date(START + 5000).toISOString());
  const [view, add] = body.batch;
  for (const item of body.batch) assert.deepEqual(Object.keys(item), ["uid", "category", "action", "event_time", "payload"]);
  assert.deepEqual([view.category, view.action], ["pageview", "view"]);
  assert.equal(add.event_time, new Date(START).toISOString());
  assert.equal(add.event_time, "2026-11-30T10:15:09.250Z");
  assert.match(add.uid, UUID7);
  const { context, ...rest } = add.payload;
  assert.deepEqual(rest, {
    dims: { products: { id: "sku-1" } },
    extra: { identify_hash: "ab".repeat(32), price: 10.5 },
    items: [{ id: "sku-1", quantity: 2 }],
  });
  assert.deepEqual(Object.keys(context).sort(), [
    "device_id", "locale", "message_id", "page_title", "page_url", "property_id", "referrer", "screen", "sdk", "session_id", "timezone",
  ]);
  assert.deepEqual(
    { ...context, device_id: 0, session_id: 0, message_id: 0 },
    {
      page_url: ORIGIN + "/cart?x=1",
      page_title: "Cart",
      referrer: "https://www.google.com/",
      timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
      locale: "vi-VN",
      screen: "1920x1080",
      property_id: "web",
      device_id: 0,
      session_id: 0,
      message_id: 0,
      sdk: "cdp-web/" + VERSION,
    },
  );
  for (const k of ["device_id", "session_id", "message_id"]) assert.match(context[k], UUID7);
  assert.notEqual(view.payload.context.message_id, context.message_id);
  assert.deepEqual(queue(b).e, [], "sent events leave the queue");
  assert.deepEqual(plain(p.web_event.stats()), { queued: 0, sent: 2, failures: 0, retry_at: null, dropped: {}, last_error: null });
});

test("batching: 10 waiting events go at once", async () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/", { config: quiet });
  track(p, 9);
  await b.tick(0);
  assert.equal(b.requests.length, 0);
  track(p, 1, 9);
  await b.tick(0);
  assert.deepEqual(sizes(b), [10]);
  assert.deepEqual(b.requests[0].body.batch.map((e) => e.payload.dims.products.id), ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9"]);
  track(p, 25, 10);
  await b.tick(0);
  assert.deepEqual(sizes(b), [10, 10, 10], "a backlog goes batch after batch; the last 5 wait");
  await b.tick(5000);
  assert.deepEqual(sizes(b), [10, 10, 10, 5]);
});

test("batching: fewer than 10 go 5 s after the first of them", async () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/", { config: quiet });
  track(p, 1);
  await b.tick(3000);
  track(p, 2, 1);
  await b.tick(1999);
  assert.equal(b.requests.length, 0);
  await b.tick(1);
  assert.deepEqual(sizes(b), [3]);
  await b.tick(60e3);
  assert.equal(b.requests.length, 1, "nothing more to send");
});

test("batch_size and flush_interval are configurable (for tests); web_event.flush() sends everything now", async () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/", { config: { ...quiet, batch_size: 3, flush_interval: 100 } });
  track(p, 4);
  await b.tick(0);
  assert.deepEqual(sizes(b), [3]);
  await b.tick(100);
  assert.deepEqual(sizes(b), [3, 1]);
  track(p, 8);
  await p.web_event.flush();
  assert.deepEqual(sizes(b), [3, 1, 3, 3, 2]);
});

test("retries: network errors and 5xx back off exponentially with jitter, capped at 5 minutes, then succeed with the same message ids", async () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/", { config: quiet });
  track(p, 3);
  b.answer({ error: true }, { status: 500 }, { status: 502 }, ...Array(9).fill({ status: 500 }), { status: 200 });
  const waits = [];
  for (let i = 0; i < 13; i++) waits.push(await b.nextRequest());
  assert.equal(waits[0], 5000);
  for (let n = 1; n <= 12; n++) {
    const full = Math.min(300e3, 1000 * 2 ** (n - 1));
    assert.ok(waits[n] >= full / 2 && waits[n] <= full, `retry ${n} after ${waits[n]} ms, expected ${full / 2}..${full}`);
  }
  assert.ok(new Set(waits.slice(1, 10)).size > 5, "jittered");
  const first = ids(b.requests[0].body.batch);
  assert.ok(b.requests.every((r) => JSON.stringify(ids(r.body.batch)) == JSON.stringify(first)));
  assert.equal(await b.nextRequest(), Infinity, "done after the success");
  assert.deepEqual(plain(p.web_event.stats()), { queued: 0, sent: 3, failures: 0, retry_at: null, dropped: {}, last_error: "HTTP 500" });
});

test("429 and 503 Retry-After (seconds or an HTTP date) are honoured, also by new full batches and by other tabs", async () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/", { config: quiet });
  b.answer({ status: 429, headers: { "Retry-After": "120" } });
  track(p, 10);
  await b.tick(0);
  track(p, 10, 10); // a full batch, but the server asked to wait
  const other = b.open(ORIGIN + "/other", { config: quiet });
  track(other, 10, 20);
  await b.tick(0);
  assert.equal(b.requests.length, 1);
  b.answer({ status: 503, headers: { "Retry-After": new Date(START + 120e3 + 60e3).toUTCString() } });
  assert.equal(await b.nextRequest(), 120e3);
  const wait = await b.nextRequest(); // an HTTP date has whole seconds
  assert.ok(wait > 59e3 && wait <= 60e3, String(wait));
  await b.tick(0);
  assert.deepEqual(sizes(b), [10, 10, 10, 10, 10]);
  assert.equal(new Set(b.events.map((e) => e.payload.context.message_id)).size, 30, "every event once after the retries");
  assert.equal(queue(b).e.length, 0);
});

test("413: the batch is split in halves, each sent on its own; a single event too large is dropped and counted", async () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/", { config: quiet });
  b.answer({ status: 413 }, { status: 200 }, { status: 413 }, { status: 200 }, { status: 413 }, { status: 413 }, { status: 200 });
  track(p, 10);
  await b.tick(0);
  assert.deepEqual(sizes(b), [10, 5, 5, 2, 3, 1, 2]);
  const stored = [1, 3, 6].flatMap((i) => ids(b.requests[i].body.batch));
  assert.equal(stored.length, 9);
  assert.deepEqual(ids(b.requests[0].body.batch).filter((id) => !stored.includes(id)), ids(b.requests[5].body.batch));
  const stats = plain(p.web_event.stats());
  assert.equal(stats.queued, 0);
  assert.deepEqual(stats.dropped, { http_413: 1 });
  assert.match(stats.last_error, /^HTTP 413/);
});

for (const status of [400, 401, 403]) {
  test(`${status}: the batch is dropped, not retried, and why is recorded`, async () => {
    const b = new Browser();
    const p = b.open(ORIGIN + "/", { config: quiet });
    track(p, 3);
    b.answer({ status, body: { error: "unknown write key" } });
    await b.tick(5000);
    assert.equal(await b.nextRequest(), Infinity);
    const stats = plain(p.web_event.stats());
    assert.equal(stats.queued, 0);
    assert.deepEqual(stats.dropped, { ["http_" + status]: 3 });
    assert.match(stats.last_error, new RegExp(`^HTTP ${status} .*unknown write key`));
    track(p, 1);
    await b.tick(5000);
    assert.deepEqual(sizes(b), [3, 1], "later events are sent as usual");
  });
}

test("a 200 answer's rejected items are not sent again; they are counted with the reason", async () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/", { config: { ...quiet, debug: true } });
  track(p, 3);
  b.answer({ status: 200, body: { accepted: 2, stored: 2, duplicates: 0, rejected: [{ index: 1, sqlstate: "22023", message: "payload.dims must be a JSON object" }] } });
  await b.tick(5000);
  assert.equal(await b.nextRequest(), Infinity);
  const stats = plain(p.web_event.stats());
  assert.deepEqual([stats.queued, stats.sent, stats.dropped], [0, 2, { rejected: 1 }]);
  assert.equal(stats.last_error, "rejected: 22023 payload.dims must be a JSON object");
  assert.ok(p.warnings.some((w) => w.includes("rejected") && w.includes("22023")), "debug: true logs it");
});

test("the queue is bounded: beyond max_queue the oldest events are dropped and counted", async () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/", { config: { ...quiet, max_queue: 5 } });
  b.answer({ error: true });
  track(p, 1);
  await b.tick(5000); // fails: backing off
  track(p, 7, 1);
  assert.deepEqual(plain(p.web_event.stats()).dropped, { overflow: 3 });
  assert.equal(plain(p.web_event.stats()).queued, 5);
  await b.nextRequest();
  assert.deepEqual(b.requests[1].body.batch.map((e) => e.payload.dims.products.id), ["p3", "p4", "p5", "p6", "p7"]);
});

test("a full localStorage: the older half of the queue is dropped until it fits, counted", () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/", { config: { ...quiet, batch_size: 100 } });
  b.quota = 12000;
  track(p, 40);
  const stats = plain(p.web_event.stats());
  assert.ok(stats.dropped.overflow > 0 && stats.queued > 0 && stats.queued + stats.dropped.overflow == 40, JSON.stringify(stats));
  assert.equal(queue(b).e.at(-1).i.payload.dims.products.id, "p39", "the newest are kept");
});

test("a crashed page's queue: the next page sends it once that page has been silent for a minute", async () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/", { config: quiet });
  track(p, 3);
  p.closed = true; // the tab crashed: no pagehide, no timers
  b.timers = [];
  b.open(ORIGIN + "/next");
  await b.tick(5000);
  assert.deepEqual(sizes(b), [1], "its own page view; the other queue may belong to a live tab");
  await b.tick(65e3);
  assert.deepEqual(sizes(b), [1, 3]);
  assert.deepEqual(b.requests[1].body.batch.map((e) => e.payload.dims.products.id), ["p0", "p1", "p2"]);
  assert.equal(queue(b).e.length, 0);
  assert.deepEqual([...b.storage(ORIGIN).keys()].filter((k) => k.startsWith("_cdp_q")), [], "no queue is left behind");
});

test("a closed page's queue: the next page takes it at once and sends it when the server's wait is over", async () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/", { config: quiet });
  b.answer({ status: 503, headers: { "Retry-After": "30" } });
  track(p, 10);
  await b.tick(0);
  p.close(); // no beacon while the server asked to wait
  const next = b.open(ORIGIN + "/next", { config: quiet });
  assert.equal(plain(next.web_event.stats()).queued, 10, "taken over: the 10 events of the closed page");
  track(next, 2, 10);
  await b.tick(29e3);
  assert.deepEqual(sizes(b), [10], "the server's wait holds for the next page too");
  await b.tick(1000);
  assert.deepEqual(sizes(b), [10, 10]);
  await b.tick(5000);
  assert.deepEqual(sizes(b), [10, 10, 2]);
  assert.equal(new Set(b.events.slice(10).map((e) => e.payload.context.message_id)).size, 12, "each event once");
});

test("tabs keep their own queues: events tracked in two tabs at once are each sent once", async () => {
  const b = new Browser();
  const one = b.open(ORIGIN + "/a", { config: quiet });
  const two = b.open(ORIGIN + "/b", { config: quiet });
  for (let i = 0; i < 20; i++) track(i % 2 ? one : two, 1, i);
  assert.equal([...b.storage(ORIGIN).keys()].filter((k) => k.startsWith("_cdp_q.")).length, 2);
  await b.tick(10e3);
  const sent = b.events.map((e) => e.payload.context.message_id);
  assert.equal(sent.length, 20);
  assert.equal(new Set(sent).size, 20);
});

test("pagehide sends what waits with navigator.sendBeacon", async () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/", { config: quiet });
  track(p, 3);
  p.close();
  assert.equal(b.requests.length, 0);
  assert.equal(b.beacons.length, 1);
  assert.equal(b.beacons[0].url, ENDPOINT + "/v1/batch?key=wk_test");
  assert.deepEqual(Object.keys(b.beacons[0].body), ["batch", "sent_at"]);
  assert.equal(b.beacons[0].body.batch.length, 3);
  assert.equal(queue(b).e.length, 0);
  await b.tick(60e3);
  assert.equal(b.requests.length, 0);
});

test("visibilitychange to hidden sends too; big queues go in beacons of at most 60 KB", () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/", { config: { ...quiet, batch_size: 1000 } });
  for (let i = 0; i < 30; i++) p.web_event.track("note", "write", { extra: { text: "x".repeat(5000) } });
  p.hide();
  assert.ok(b.beacons.length >= 3);
  assert.ok(b.beacons.every((x) => JSON.stringify(x.body).length <= 60000));
  assert.equal(b.beacons.flatMap((x) => x.body.batch).length, 30);
});

test("when sendBeacon refuses, fetch with keepalive; an in-flight batch is leased, and sent again when its lease runs out", async () => {
  const b = new Browser();
  b.beaconOk = false;
  const p = b.open(ORIGIN + "/", { config: quiet });
  track(p, 2);
  b.answer({ hang: true });
  p.close(); // the page dies with the request in flight
  assert.equal(b.requests.length, 1);
  assert.equal(b.requests[0].init.keepalive, true);
  const next = b.open(ORIGIN + "/next", { config: quiet });
  track(next, 1, 2);
  await b.tick(5000);
  assert.deepEqual(sizes(b), [2, 1], "the leased events are not sent twice meanwhile");
  await b.tick(25e3);
  track(next, 1, 3);
  await b.tick(5000);
  assert.deepEqual(sizes(b), [2, 1, 3], "the lease ran out: sent again, with the same message ids");
  assert.deepEqual(ids(b.requests[2].body.batch).slice(0, 2), ids(b.requests[0].body.batch));
});

test("no beacon while the server asked to wait: the events stay for the next page", () => {
  const b = new Browser();
  const p = b.open(ORIGIN + "/", { config: quiet });
  b.answer({ status: 503, headers: { "Retry-After": "60" } });
  track(p, 10);
  return b.tick(0).then(() => {
    p.close();
    assert.equal(b.beacons.length, 0);
    assert.equal(queue(b).e.length, 10);
  });
});
