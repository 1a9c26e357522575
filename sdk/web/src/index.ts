// cdp-web: the browser SDK of cdp_identity.
//
// The page sets its config (_portalId, _propId, _cdp365Analytics) and the loader snippet, which
// queues calls made before this script loads; this script then replaces the stub with the real
// `web_event` and `_cdpEventFunction` and replays the queue. See README.md.

import { Delivery } from "./delivery";
import { claimedCustomer, Identity } from "./identity";
import { md5 } from "./md5";
import { getCookie, ls, setCookie } from "./store";
import { leadTime, timeZone, uuid7 } from "./util";

declare const VERSION: string;

type Data = { dims?: object; extra?: object; items?: unknown };

const w = window as any;
const OPT_OUT = "_cdp_optout";

function start() {
  const stub = w.web_event;
  if (stub && stub.version) return; // loaded twice
  const config = w._cdp365Analytics || {};
  const key = config.writeKey || w._portalId;
  const endpoint = config.endpoint && String(config.endpoint).replace(/\/+$/, "");
  const log = config.debug ? console.warn.bind(console) : () => {};
  if (!endpoint || !key) console.warn("cdp: _cdp365Analytics.endpoint and writeKey are needed to send events");

  const identity = new Identity(config.first_party_domain);
  const delivery = new Delivery({
    url: endpoint && key ? endpoint + "/v1/batch?key=" + encodeURIComponent(key) : null,
    batchSize: config.batch_size || 10,
    flushInterval: config.flush_interval ?? 5000,
    maxQueue: config.max_queue || 1000,
    log,
  });

  const optedOut = () => ls.get(OPT_OUT) == "1" || getCookie(OPT_OUT) == "1";
  const dnt = () => [navigator.doNotTrack, w.doNotTrack].some((v) => v == "1" || v == "yes");
  const allowed = () => !optedOut() && !(config.respect_dnt && dnt());

  function record(category: string, action: string, data?: Data | null, time = Date.now()) {
    if (!allowed() || !category || !action) return;
    data = data || {};
    const customer = claimedCustomer(data);
    const uid = customer ? identity.signIn(customer) : identity.uid();
    const context: Record<string, string> = {
      page_url: location.href,
      page_title: document.title,
      referrer: document.referrer,
      timezone: timeZone(),
      locale: navigator.language,
      screen: w.screen ? screen.width + "x" + screen.height : "",
      property_id: w._propId,
      device_id: identity.device(),
      session_id: identity.session(),
      message_id: uuid7(time),
      sdk: "cdp-web/" + VERSION,
    };
    for (const k in context) if (context[k] == null || context[k] === "") delete context[k];
    const payload: any = {};
    for (const k of ["dims", "extra", "items"] as const) if (data[k] != null) payload[k] = data[k];
    payload.context = context;
    delivery.add({ uid, category: String(category), action: String(action), event_time: new Date(time).toISOString(), payload });
  }

  const api = {
    version: VERSION,
    track: (category: string, action: string, data?: Data) => record(category, action, data),
    /** On logout: a new anonymous UID and a new session; the device id stays. */
    resetAnonymousUId: () => void (allowed() && identity.rotate()),
    /** Stops tracking in this browser (persisted) and deletes the ids and the waiting events. */
    optOut() {
      ls.set(OPT_OUT, "1");
      setCookie(OPT_OUT, "1", config.first_party_domain);
      identity.forget();
      delivery.clear();
    },
    optIn() {
      ls.del(OPT_OUT);
      setCookie(OPT_OUT, null, config.first_party_domain);
      if (config.first_party_domain) setCookie(OPT_OUT, null);
    },
    /** Sends every waiting event now; resolves when done or when the server asked to wait. */
    flush: () => delivery.drain(),
    stats: () => delivery.stats(),
    /** The current UID (also readable by the site's backend in the _cdp_uid cookie), for cdp.identify(). */
    getUid: () => (allowed() ? identity.uid() : null),
  };
  w.web_event = api;
  w._cdpEventFunction = { md5, _cdpGetLeadTime: () => leadTime() };

  // Calls queued by the snippet: opt-out and opt-in first (a consent tool may have answered
  // before the automatic page view), then the page view, then the rest, in order, each with the
  // time it was made.
  const queued: [string, any[], number][] = (stub && stub.q) || [];
  for (const [method] of queued) if (/^opt(In|Out)$/.test(method)) (api as any)[method]();
  if (allowed()) identity.renew();

  const view = config.default_event ?? true;
  if (view) {
    const [category, action] = typeof view == "object" ? [view.category, view.action] : ["pageview", "view"];
    const pageView = (time?: number) => record(category || "pageview", action || "view", {}, time);
    pageView(stub && stub.t);
    // Single-page apps: a page view when history changes the URL (after the app had a turn to set the title).
    let last = location.href;
    const changed = () =>
      setTimeout(() => {
        if (location.href != last) {
          last = location.href;
          pageView();
        }
      }, 0);
    for (const m of ["pushState", "replaceState"] as const) {
      const original = history[m];
      history[m] = function (this: History, ...args: any[]) {
        const result = original.apply(this, args as any);
        changed();
        return result;
      };
    }
    addEventListener("popstate", changed);
  }

  for (const [method, args, time] of queued) {
    const a = resolve(args);
    if (method == "track") record(a[0], a[1], a[2], time);
    else if (method == "resetAnonymousUId") api.resetAnonymousUId();
  }

  delivery.kick();
  addEventListener("pagehide", () => delivery.close());
  document.addEventListener("visibilitychange", () => document.visibilityState == "hidden" && delivery.beacon());
}

/** Values made by the snippet's stand-ins for md5() and _cdpGetLeadTime() before this script loaded. */
function resolve(value: any): any {
  if (Array.isArray(value)) return value.map(resolve);
  if (!value || typeof value != "object") return value;
  if (value._cdp == "md5") return md5(value.v);
  if (value._cdp == "time") return leadTime(new Date(value.v));
  const out: any = {};
  for (const k in value) out[k] = resolve(value[k]);
  return out;
}

start();
