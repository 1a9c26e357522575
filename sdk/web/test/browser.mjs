// A small fake browser for the tests: pages (each its own JS realm, running dist/cdp.js) that
// share what a real browser shares between them: the cookie jar, localStorage per origin, one
// clock with timers, and the network (fetch and sendBeacon, answered from a script of responses).

import vm from "node:vm";
import { readFileSync } from "node:fs";
import { webcrypto } from "node:crypto";

process.env.TZ = "Asia/Ho_Chi_Minh"; // a fixed zone for local-time checks (UTC+7, no DST)

export const BUNDLE_PATH = new URL("../dist/cdp.js", import.meta.url);
const BUNDLE = readFileSync(BUNDLE_PATH, "utf8");
export const SNIPPET = readFileSync(new URL("../snippet.html", import.meta.url), "utf8").match(/<script>([\s\S]*?)<\/script>/)[1];
export const ENDPOINT = "https://collect.example.net";
export const START = Date.UTC(2026, 10, 30, 10, 15, 9, 250);
export const UUID7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
export const VERSION = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).version;

/** A page's value as a value of this realm (deepStrictEqual compares prototypes). */
export const plain = (value) => JSON.parse(JSON.stringify(value));

/** Lets pending promises (fetch answers) run. */
export const settle = () => new Promise((r) => setImmediate(r)).then(() => new Promise((r) => setImmediate(r)));

export class Browser {
  constructor() {
    this.now = START;
    this.timers = [];
    this.nextTimer = 1;
    this.cookies = []; // {name, value, domain, hostOnly, expires}
    this.cookieWrites = []; // raw document.cookie assignments
    this.origins = new Map(); // origin -> Map (localStorage)
    this.quota = Infinity; // characters one localStorage origin may hold
    this.requests = []; // fetch calls: {url, init, body}
    this.beacons = []; // sendBeacon calls: {url, body}
    this.beaconOk = true;
    this.answers = []; // scripted fetch answers, used in order; then 200
  }

  storage(origin) {
    if (!this.origins.has(origin)) this.origins.set(origin, new Map());
    return this.origins.get(origin);
  }

  /** Answers for the next fetch calls: {status, body, headers} or {error: true} (a network error). */
  answer(...answers) {
    this.answers.push(...answers);
  }

  fetch(url, init) {
    const body = JSON.parse(init.body);
    this.requests.push({ url, init: plain(init), body });
    const a = this.answers.shift() || { status: 200 };
    if (a.error) return Promise.reject(new TypeError("Failed to fetch"));
    if (a.hang) return new Promise(() => {}); // a request that never comes back (the page died)
    const json = a.body ?? (a.status == 200 ? { accepted: body.batch.length, stored: body.batch.length, duplicates: 0, rejected: [] } : { error: "x" });
    const headers = new Map(Object.entries(a.headers || {}).map(([k, v]) => [k.toLowerCase(), String(v)]));
    return Promise.resolve({
      status: a.status,
      ok: a.status < 300,
      headers: { get: (k) => headers.get(k.toLowerCase()) ?? null },
      json: async () => JSON.parse(JSON.stringify(json)),
      text: async () => JSON.stringify(json),
    });
  }

  /** Every event sent so far (fetch and beacon), in order. */
  get events() {
    return this.requests.flatMap((r) => r.body.batch).concat(this.beacons.flatMap((b) => b.body.batch));
  }

  addTimer(page, fn, ms) {
    const id = this.nextTimer++;
    this.timers.push({ id, page, fn, at: this.now + Math.max(0, ms || 0) });
    return id;
  }

  /** Advances the clock by ms, running the timers that come due in order (and the promises they start). */
  async tick(ms = 0) {
    const end = this.now + ms;
    await settle();
    for (;;) {
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.now = Math.max(this.now, due.at);
      due.fn();
      await settle();
    }
    this.now = end;
    await settle();
  }

  /** Runs the timers one at a time until a fetch goes out; returns the ms waited (Infinity: none within limit). */
  async nextRequest(limit = 864e5) {
    const start = this.now;
    const count = this.requests.length;
    await settle();
    while (this.requests.length == count) {
      const at = Math.min(...this.timers.map((t) => t.at));
      if (!(at - start <= limit)) return Infinity;
      await this.tick(Math.max(0, at - this.now));
    }
    return this.now - start;
  }

  cookieHeader(host) {
    this.cookies = this.cookies.filter((c) => c.expires > this.now);
    return this.cookies
      .filter((c) => (c.hostOnly ? c.domain == host : host == c.domain || host.endsWith("." + c.domain)))
      .map((c) => c.name + "=" + c.value)
      .join("; ");
  }

  setCookie(host, text) {
    this.cookieWrites.push(text);
    const [pair, ...attrs] = text.split(";").map((s) => s.trim());
    const eq = pair.indexOf("=");
    const cookie = { name: pair.slice(0, eq), value: pair.slice(eq + 1), domain: host, hostOnly: true, expires: Infinity };
    for (const attr of attrs) {
      const [k, v] = attr.split("=");
      if (/^max-age$/i.test(k)) cookie.expires = this.now + Number(v) * 1000;
      if (/^domain$/i.test(k)) {
        const domain = v.replace(/^\./, "").toLowerCase();
        if (host != domain && !host.endsWith("." + domain)) return; // a browser ignores a foreign domain
        Object.assign(cookie, { domain, hostOnly: false });
      }
    }
    this.cookies = this.cookies.filter((c) => !(c.name == cookie.name && c.domain == cookie.domain && c.hostOnly == cookie.hostOnly));
    if (cookie.expires > this.now) this.cookies.push(cookie);
  }

  deleteCookies(name) {
    this.cookies = this.cookies.filter((c) => c.name != name);
  }

  cookie(name) {
    return this.cookies.find((c) => c.name == name && c.expires > this.now)?.value;
  }

  /** Opens a page: the config globals, optionally the loader snippet (with `before` run after it), then the bundle. */
  open(url = "https://shop.example.com/", opts = {}) {
    return new Page(this, url, opts);
  }
}

export class Page {
  constructor(browser, url, { config = {}, portalId, propId, snippet = false, before, title = "Home", referrer = "https://www.google.com/", navigator: nav = {}, load = true } = {}) {
    this.browser = browser;
    this.closed = false;
    this.listeners = { window: {}, document: {} };
    this.scripts = [];
    this.warnings = [];
    const page = this;
    const loc = {};
    this.setUrl = (href) => {
      const u = new URL(href, loc.href);
      Object.assign(loc, { href: u.href, protocol: u.protocol, host: u.host, hostname: u.hostname, origin: u.origin, pathname: u.pathname, search: u.search, hash: u.hash });
    };
    this.setUrl(url);
    const store = browser.storage(loc.origin);
    const used = () => [...store].reduce((n, [k, v]) => n + k.length + v.length, 0);
    const localStorage = {
      getItem: (k) => (store.has(k) ? store.get(k) : null),
      setItem: (k, v) => {
        v = String(v);
        if (used() - (store.get(k)?.length ?? -k.length) + v.length > browser.quota) throw new Error("QuotaExceededError");
        store.set(k, v);
      },
      removeItem: (k) => store.delete(k),
      get length() {
        return store.size;
      },
      key: (i) => [...store.keys()][i] ?? null,
    };
    const on = (where) => (type, fn) => (this.listeners[where][type] ||= []).push(fn);
    const RealDate = Date;
    class FakeDate extends RealDate {
      constructor(...a) {
        a.length ? super(...a) : super(browser.now);
      }
      static now() {
        return browser.now;
      }
    }
    const document = {
      title,
      referrer,
      visibilityState: "visible",
      get cookie() {
        return browser.cookieHeader(loc.hostname);
      },
      set cookie(text) {
        browser.setCookie(loc.hostname, text);
      },
      addEventListener: on("document"),
      createElement: (tag) => ({ tag }),
      head: { appendChild: (el) => page.scripts.push(el.src) },
    };
    const globals = { _cdp365Analytics: { endpoint: ENDPOINT, writeKey: "wk_test", ...config }, _portalId: portalId, _propId: propId };
    const win = {
      console: { ...console, warn: (...a) => page.warnings.push(a.join(" ")) },
      Date: FakeDate,
      crypto: webcrypto,
      TextEncoder,
      URL,
      setTimeout: (fn, ms) => (page.closed ? 0 : browser.addTimer(page, fn, ms)),
      clearTimeout: (id) => (browser.timers = browser.timers.filter((t) => t.id != id)),
      location: loc,
      document,
      localStorage,
      screen: { width: 1920, height: 1080 },
      navigator: {
        language: "vi-VN",
        doNotTrack: null,
        sendBeacon: (url, body) => {
          if (!browser.beaconOk) return false;
          browser.beacons.push({ url, body: JSON.parse(body) });
          return true;
        },
        ...nav,
      },
      history: {
        pushState: (state, t, href) => href != null && page.setUrl(href),
        replaceState: (state, t, href) => href != null && page.setUrl(href),
      },
      fetch: (url, init) => browser.fetch(url, init),
      addEventListener: on("window"),
      ...globals,
    };
    win.window = win;
    this.window = vm.createContext(win);
    this.document = document;
    if (snippet) {
      this.run(SNIPPET);
      Object.assign(this.window, globals);
    }
    if (before) this.run(before);
    if (load) this.load();
  }

  run(code) {
    return vm.runInContext(code, this.window);
  }

  load() {
    this.run(BUNDLE);
  }

  get web_event() {
    return this.window.web_event;
  }

  fire(where, type) {
    for (const fn of this.listeners[where][type] || []) fn({ type });
  }

  /** The tab goes to the background. */
  hide() {
    this.document.visibilityState = "hidden";
    this.fire("document", "visibilitychange");
  }

  /** The page is unloaded: pagehide, then its timers never run. */
  close() {
    this.fire("window", "pagehide");
    this.closed = true;
    this.browser.timers = this.browser.timers.filter((t) => t.page !== this);
  }

  /** The back button of a single-page app. */
  back(href) {
    this.setUrl(href);
    this.fire("window", "popstate");
  }
}
