// Who the visitor is: the UID, the device id, the session, and the customer last identified.
//
// The UID and the device id each live in a first-party cookie (a year, SameSite=Lax, on
// first_party_domain when set) mirrored in localStorage: when one of the two is lost (a cookie
// cleaner, Safari's 7-day cap on script cookies) it is restored from the other. The device id
// survives UID rotation and logout. The session ({id, t: last activity}) is kept in localStorage,
// so every tab shares it; it rolls over after 30 minutes without an event.

import { md5 } from "./md5";
import { getCookie, ls, setCookie } from "./store";
import { uuid7 } from "./util";

export const UID = "_cdp_uid";
export const DEVICE = "_cdp_did";
export const SESSION = "_cdp_ses";
/** {u: UID, c: md5 of the customer id} of the last sign-in on that UID. */
export const CUSTOMER = "_cdp_cid";
export const IDLE = 30 * 60 * 1000;

const parse = (text: string | null) => {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
};

export class Identity {
  constructor(private domain?: string) {}

  private put(name: string, value: string) {
    setCookie(name, value, this.domain);
    ls.set(name, value);
  }

  /** The id stored under `name`, restoring a lost copy, or a new one; `renew` restarts the cookie's year. */
  private id(name: string, renew = false): string {
    const cookie = getCookie(name);
    const local = ls.get(name);
    const value = cookie || local || uuid7();
    if (renew || cookie != value) setCookie(name, value, this.domain);
    if (local != value) ls.set(name, value);
    return value;
  }

  uid = () => this.id(UID);
  device = () => this.id(DEVICE);

  /** At page load: restore lost copies and extend both cookies by a year from now. */
  renew() {
    this.id(UID, true);
    this.id(DEVICE, true);
  }

  /** The session id, continued when the last event (in any tab) was less than 30 minutes ago. */
  session(now = Date.now(), fresh = false): string {
    let s = parse(ls.get(SESSION));
    if (fresh || !s || !s.id || !(now - s.t < IDLE)) s = { id: uuid7(now) };
    s.t = now;
    ls.set(SESSION, JSON.stringify(s));
    return s.id;
  }

  /** Logout: a new UID and a new session; the device id stays. */
  rotate(): string {
    const uid = uuid7();
    this.put(UID, uid);
    ls.del(CUSTOMER);
    this.session(Date.now(), true);
    return uid;
  }

  /**
   * A sign-in (an event carrying a customer id): if this UID was already identified as another
   * customer, the browser is shared and the UID rotates first. Returns the UID the event goes to.
   */
  signIn(customerId: string): string {
    let uid = this.uid();
    const hash = md5(customerId);
    const last = parse(ls.get(CUSTOMER));
    if (last && last.u == uid && last.c != hash) uid = this.rotate();
    ls.set(CUSTOMER, JSON.stringify({ u: uid, c: hash }));
    return uid;
  }

  /** Opt-out: every identifier this SDK stored is deleted. */
  forget() {
    for (const name of [UID, DEVICE]) {
      setCookie(name, null, this.domain);
      if (this.domain) setCookie(name, null);
      ls.del(name);
    }
    ls.del(SESSION);
    ls.del(CUSTOMER);
  }
}

// Ids that identify nobody (the server refuses them too): a page that sends one for every logged-out
// visitor must not rotate the UID on each page.
const JUNK = /^(undefined|null|none|nan|0|-1|true|false|\[object object\]|anonymous|guest|unknown)$/i;
const JUNK_MD5 = ["", "undefined", "null", "[object Object]"].map(md5);

/** The customer id an event claims (dims.customers.customer_id, else extra.identify_id), as the server reads it. */
export function claimedCustomer(data: any): string | undefined {
  const id = data?.dims?.customers?.customer_id ?? data?.extra?.identify_id;
  if (typeof id != "string" && typeof id != "number") return;
  let text = String(id).normalize("NFKC").trim();
  // The server folds an md5 or sha256 hex digest to lowercase.
  if (/^([0-9a-f]{32}|[0-9a-f]{64})$/i.test(text)) text = text.toLowerCase();
  return text && !JUNK.test(text) && !JUNK_MD5.includes(text) ? text : undefined;
}
