// Delivery: events wait in a queue in localStorage (kept across pages) and go to
// POST {endpoint}/v1/batch?key={writeKey} in batches of `batchSize` events, or after
// `flushInterval` ms, whichever comes first.
//
// - Each page writes only its own queue (key `_cdp_q.<id>`): tabs that track at the same time
//   never overwrite each other's events (localStorage has no cross-tab transactions). A page takes
//   over the queue of a page that is gone: closed (pagehide marks it) or silent for a minute
//   (crashed). A queue taken from a page that still lives is sent twice at worst: retries carry the
//   same message ids, and the server stores each event once.
// - 2xx: done. Items the server rejected (`rejected` in its answer) are not sent again.
// - 408, 429, 5xx, network errors: the batch is sent again later, after the server's Retry-After
//   if it gave one, else after an exponential backoff with jitter (1 s doubling, at most 5 min).
//   The wait is shared by the tabs (key `_cdp_w`).
// - 413: the batch is split in halves, each sent on its own; a single event too large is dropped.
// - 400, 401, 403 and every other 4xx: the batch is dropped and the reason recorded (stats()).
// - An event in flight is leased for 30 s: it is not sent again meanwhile (also not by a page that
//   took the queue over); a lease that runs out (the page closed mid-request) is sent again.
// - At most `maxQueue` events wait; beyond that the oldest are dropped (counted as "overflow").
// - When the page is hidden or closed, what waits goes out with navigator.sendBeacon.

import { ls } from "./store";
import { bytes, uuid7 } from "./util";

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
/** One page's queue. */
interface State {
  e: Entry[];
  /** the page's last write (ms); 0: the page is gone */
  h?: number;
}
/** The server's wait, shared by the tabs. */
interface Wait {
  /** failures in a row */
  n: number;
  /** no request before this time (ms) */
  at: number;
}

export const QUEUE = "_cdp_q";
const WAIT = "_cdp_w";
const STALE = 60e3;
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
  private key = QUEUE + "." + uuid7();
  /** pagehide came: other pages may take the queue */
  private gone = false;
  /** events dropped, by reason */
  private d: Record<string, number> = {};
  /** the last error */
  private w?: string;
  sent = 0;

  constructor(private o: Options) {}

  private load(key = this.key): State {
    try {
      const s = JSON.parse(ls.get(key)!);
      if (s && Array.isArray(s.e)) return s;
    } catch {}
    return { e: [] };
  }

  /** Saves the queue (an empty one is removed); when the browser refuses (quota), drops the older half until it fits. */
  private save(s: State) {
    s.h = this.gone ? 0 : Date.now();
    if (!s.e.length) ls.del(this.key);
    while (s.e.length && !ls.set(this.key, JSON.stringify(s))) this.drop(s.e.splice(0, Math.ceil(s.e.length / 2)).length, "overflow");
  }

  private update(f: (s: State) => void) {
    const s = this.load();
    f(s);
    this.save(s);
    return s;
  }

  private wait(): Wait {
    try {
      return JSON.parse(ls.get(WAIT)!) || { n: 0, at: 0 };
    } catch {
      return { n: 0, at: 0 };
    }
  }

  private setWait(n: number, at: number) {
    n ? ls.set(WAIT, JSON.stringify({ n, at })) : ls.del(WAIT);
  }

  /** Takes over the queues of pages that are gone; true when another page's queue still waits. */
  private adopt() {
    let others = false;
    for (const k of ls.keys()) {
      if (k == this.key || k.indexOf(QUEUE)) continue;
      const o = this.load(k);
      if (o.h && Date.now() - o.h < STALE) {
        others = true;
        continue;
      }
      this.update((s) => {
        const have = new Set(s.e.map((e) => id(e.i)));
        for (const e of o.e) if (!have.has(id(e.i))) s.e.push(e);
      });
      ls.del(k);
    }
    return others;
  }

  private ready = (s: State, now = Date.now()) => s.e.filter((e) => e.l <= now);

  add(item: Item) {
    this.gone = false; // (back from the back-forward cache)
    this.update((s) => {
      s.e.push({ l: 0, i: item });
      const over = s.e.length - this.o.maxQueue;
      if (over > 0) this.drop(s.e.splice(0, over).length, "overflow", "queue full: dropped the oldest events");
    });
    this.kick();
  }

  /** Sends now when a batch is full, else makes sure a flush is due within flushInterval (or a look at other pages' queues). */
  kick() {
    const others = this.adopt();
    const n = this.ready(this.load()).length;
    const at = this.wait().at;
    if (!this.o.url || !(n || others)) return;
    if (n >= this.o.batchSize && Date.now() >= at) this.flush();
    else if (!this.timer) this.later(n ? Math.max(this.o.flushInterval, at - Date.now()) : STALE);
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
    if (!this.o.url || now < this.wait().at) return false;
    this.adopt();
    const s = this.load();
    const batch = this.ready(s, now).slice(0, this.o.batchSize);
    if (!batch.length) return false;
    for (const e of batch) e.l = now + LEASE;
    this.save(s);
    const ok = await this.send(batch.map((e) => e.i));
    if (!ok) this.later(Math.max(0, this.wait().at - Date.now()));
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
      this.update((s) => remove(s, items));
      this.setWait(0, 0);
      if (rejected.length) this.drop(rejected.length, "rejected", "rejected: " + rejected[0].sqlstate + " " + rejected[0].message);
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
    this.update((s) => remove(s, items));
    this.drop(items.length, "http_" + status, why);
    return true;
  }

  private retry(items: Item[], why: string, wait?: number): false {
    this.o.log("cdp: will retry:", why);
    this.update((s) => release(s, items));
    const n = this.wait().n + 1;
    const backoff = Math.min(CAP, BASE * 2 ** (n - 1));
    this.setWait(n, Date.now() + (wait ?? backoff / 2 + (Math.random() * backoff) / 2));
    this.w = why;
    return false;
  }

  /** The page is going away: send what waits with sendBeacon (else fetch with keepalive). */
  beacon() {
    const s = this.load();
    if (!this.o.url || Date.now() < this.wait().at) return; // backing off: the next page sends it
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

  /** pagehide: what waits goes out; what cannot is left to the next page. */
  close() {
    this.gone = true;
    this.beacon();
    this.update(() => {});
  }

  stats() {
    const w = this.wait();
    return { queued: this.load().e.length, sent: this.sent, failures: w.n, retry_at: w.at || null, dropped: this.d, last_error: this.w || null };
  }

  /** Opt-out: every page's waiting events are deleted. */
  clear() {
    clearTimeout(this.timer);
    this.timer = 0;
    for (const k of ls.keys()) if (!k.indexOf(QUEUE) || k == WAIT) ls.del(k);
  }

  private drop(count: number, reason: string, why?: string) {
    this.d[reason] = (this.d[reason] || 0) + count;
    if (why) this.w = why;
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

/** Retry-After in ms (seconds or an HTTP date), at least 1 s and at most a day; undefined when absent. */
function retryAfter(r: Response): number | undefined {
  const v = r.headers.get("Retry-After");
  if (!v) return;
  const ms = isNaN(+v) ? Date.parse(v) - Date.now() : +v * 1000;
  return isNaN(ms) ? undefined : Math.min(DAY, Math.max(BASE, ms));
}
