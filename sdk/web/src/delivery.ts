// Delivery: events wait in a queue in localStorage (shared by the tabs, kept across pages) and
// go to POST {endpoint}/v1/batch?key={writeKey} in batches of `batchSize` events, or after
// `flushInterval` ms, whichever comes first.
//
// - 2xx: done. Items the server rejected (`rejected` in its answer) are not sent again.
// - 408, 429, 5xx, network errors: the batch is sent again later, after the server's Retry-After
//   if it gave one, else after an exponential backoff with jitter (1 s doubling, at most 5 min).
// - 413: the batch is split in halves, each sent on its own; a single event too large is dropped.
// - 400, 401, 403 and every other 4xx: the batch is dropped and the reason recorded (stats()).
// - An event in flight is leased for 30 s: another tab does not send it meanwhile; a lease that
//   runs out (the page closed mid-request) is sent again. Retries carry the same message ids, so
//   the server stores each event once.
// - At most `maxQueue` events wait; beyond that the oldest are dropped (counted as "overflow").
// - When the page is hidden or closed, what waits goes out with navigator.sendBeacon.

import { ls } from "./store";
import { bytes } from "./util";

export interface Item {
  uid: string;
  category: string;
  action: string;
  event_time: string;
  payload: { dims?: unknown; extra?: unknown; items?: unknown; context: Record<string, string> };
}
export interface Options {
  url: string | null;
  batchSize: number;
  flushInterval: number;
  maxQueue: number;
  log: (...args: unknown[]) => void;
}
interface Entry {
  /** leased until (ms): in flight */
  l: number;
  i: Item;
}
interface State {
  e: Entry[];
  /** failures in a row */
  n: number;
  /** no request before this time (ms) */
  at: number;
  /** events dropped, by reason */
  d: Record<string, number>;
  /** the last error */
  w?: string;
}

export const QUEUE = "_cdp_q";
const LEASE = 30e3;
const BASE = 1e3;
const CAP = 300e3;
const DAY = 864e5;
const BEACON_BYTES = 60000; // browsers allow 64 KB of beacon and keepalive bodies in flight

const id = (item: Item) => item.payload.context.message_id;
const body = (batch: Item[]) => JSON.stringify({ batch, sent_at: new Date().toISOString() });

export class Delivery {
  private timer: any = 0;
  private running: Promise<boolean> | null = null;
  sent = 0;

  constructor(private o: Options) {}

  private load(): State {
    try {
      const s = JSON.parse(ls.get(QUEUE)!);
      if (s && Array.isArray(s.e)) return s;
    } catch {}
    return { e: [], n: 0, at: 0, d: {} };
  }

  /** Saves the queue; when the browser refuses (quota), drops the older half until it fits. */
  private save(s: State) {
    while (!ls.set(QUEUE, JSON.stringify(s)) && s.e.length) drop(s, s.e.splice(0, Math.ceil(s.e.length / 2)).length, "overflow");
  }

  private update(f: (s: State) => void) {
    const s = this.load();
    f(s);
    this.save(s);
    return s;
  }

  private ready = (s: State, now = Date.now()) => s.e.filter((e) => e.l <= now);

  add(item: Item) {
    const s = this.update((s) => {
      s.e.push({ l: 0, i: item });
      const over = s.e.length - this.o.maxQueue;
      if (over > 0) drop(s, s.e.splice(0, over).length, "overflow", "queue full: dropped the oldest events");
    });
    this.kick(s);
  }

  /** Sends now when a batch is full, else makes sure a flush is due within flushInterval. */
  kick(s = this.load()) {
    const n = this.ready(s).length;
    if (!this.o.url || !n) return;
    if (n >= this.o.batchSize && Date.now() >= s.at) this.flush();
    else if (!this.timer) this.later(Math.max(this.o.flushInterval, s.at - Date.now()));
  }

  private later(ms: number) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flush(), ms);
  }

  /** Sends one batch of what waits; true when one went out and is done with. One request at a time per tab. */
  flush(): Promise<boolean> {
    return (this.running ||= this.run().finally(() => {
      this.running = null;
      this.kick();
    }));
  }

  /** Sends everything that waits, batch after batch, until the queue is empty or the server asks to wait. */
  async drain() {
    while (await this.flush());
  }

  private async run(): Promise<boolean> {
    clearTimeout(this.timer);
    this.timer = 0;
    const now = Date.now();
    const s = this.load();
    if (!this.o.url || now < s.at) return false;
    const batch = this.ready(s, now).slice(0, this.o.batchSize);
    if (!batch.length) return false;
    for (const e of batch) e.l = now + LEASE;
    this.save(s);
    const ok = await this.send(batch.map((e) => e.i));
    if (!ok) this.later(Math.max(0, this.load().at - Date.now()));
    return ok;
  }

  /** One request. True when the batch is done with (stored, rejected or dropped), false when it waits for a retry. */
  private async send(items: Item[]): Promise<boolean> {
    const text = body(items);
    let r: Response;
    try {
      r = await fetch(this.o.url!, {
        method: "POST",
        body: text,
        // A CORS-simple request: no preflight. The collector reads the body as JSON.
        headers: { "Content-Type": "text/plain;charset=UTF-8" },
        credentials: "omit",
        keepalive: bytes(text) < BEACON_BYTES,
      });
    } catch (e) {
      return this.retry(items, "network error: " + e);
    }
    const status = r.status;
    if (status >= 200 && status < 300) {
      const report = await r.json().catch(() => ({}));
      const rejected: any[] = Array.isArray(report.rejected) ? report.rejected : [];
      for (const x of rejected) this.o.log("cdp: event rejected", items[x.index], x.sqlstate, x.message);
      this.sent += items.length - rejected.length;
      this.update((s) => {
        remove(s, items);
        s.n = s.at = 0;
        if (rejected.length) drop(s, rejected.length, "rejected", "rejected: " + rejected[0].sqlstate + " " + rejected[0].message);
      });
      return true;
    }
    if (status == 413 && items.length > 1) {
      const half = items.length >> 1;
      const rest = items.slice(half);
      if (await this.send(items.slice(0, half))) return this.send(rest);
      this.update((s) => release(s, rest));
      return false;
    }
    if (status == 408 || status == 429 || status >= 500) return this.retry(items, "HTTP " + status, retryAfter(r));
    const why = "HTTP " + status + " " + (await r.text().catch(() => "")).slice(0, 200);
    this.o.log("cdp: events dropped:", why);
    this.update((s) => {
      remove(s, items);
      drop(s, items.length, "http_" + status, why);
    });
    return true;
  }

  private retry(items: Item[], why: string, wait?: number): false {
    this.o.log("cdp: will retry:", why);
    this.update((s) => {
      release(s, items);
      s.n++;
      const backoff = Math.min(CAP, BASE * 2 ** (s.n - 1));
      s.at = Date.now() + (wait ?? backoff / 2 + (Math.random() * backoff) / 2);
      s.w = why;
    });
    return false;
  }

  /** The page is going away: send what waits with sendBeacon (else fetch with keepalive). */
  beacon() {
    const s = this.load();
    if (!this.o.url || Date.now() < s.at) return; // backing off: the next page sends it
    let chunk: Item[] = [];
    let size = 0;
    const out = () => {
      let ok = false;
      try {
        ok = navigator.sendBeacon(this.o.url!, body(chunk));
      } catch {}
      if (ok) {
        this.sent += chunk.length;
        this.update((s) => remove(s, chunk));
      } else {
        const items = chunk;
        const ids = new Set(items.map(id));
        this.update((s) => s.e.forEach((e) => ids.has(id(e.i)) && (e.l = Date.now() + LEASE)));
        this.send(items).then(() => this.kick());
      }
      chunk = [];
      size = 0;
    };
    for (const e of this.ready(s)) {
      const n = bytes(JSON.stringify(e.i)) + 1;
      if (chunk.length && size + n > BEACON_BYTES - 100) out();
      chunk.push(e.i);
      size += n;
    }
    if (chunk.length) out();
  }

  stats() {
    const s = this.load();
    return { queued: s.e.length, sent: this.sent, failures: s.n, retry_at: s.at || null, dropped: s.d, last_error: s.w || null };
  }

  clear() {
    clearTimeout(this.timer);
    this.timer = 0;
    ls.del(QUEUE);
  }
}

function remove(s: State, items: Item[]) {
  const ids = new Set(items.map(id));
  s.e = s.e.filter((e) => !ids.has(id(e.i)));
}

function release(s: State, items: Item[]) {
  const ids = new Set(items.map(id));
  for (const e of s.e) if (ids.has(id(e.i))) e.l = 0;
}

function drop(s: State, count: number, reason: string, why?: string) {
  s.d[reason] = (s.d[reason] || 0) + count;
  if (why) s.w = why;
}

/** Retry-After in ms (seconds or an HTTP date), at least 1 s and at most a day; undefined when absent. */
function retryAfter(r: Response): number | undefined {
  const v = r.headers.get("Retry-After");
  if (!v) return;
  const ms = isNaN(+v) ? Date.parse(v) - Date.now() : +v * 1000;
  return isNaN(ms) ? undefined : Math.min(DAY, Math.max(BASE, ms));
}
