// cdp_identity from a Node.js backend: node-postgres (pg).
//
//     npm ci
//     PGHOST=... PGPORT=... PGDATABASE=... PGUSER=app_backend CDP_READER_USER=analytics node example.js
//
// The database is the one the standard libpq variables name (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD; node-postgres
// reads them itself) and must have `CREATE EXTENSION cdp_identity`. Two roles, least privilege:
//   * PGUSER, the application (member of cdp_writer): tracks events, identifies, writes its own orders. It also needs
//     CREATE on the database, for this example's schema `example_node` (its `orders` table).
//   * CDP_READER_USER (default: PGUSER), a reader (member of cdp_reader): reads timelines and follows the change feed.
//
// Each step checks what it got back; the first mismatch ends the program with "FAILED: ..." and exit status 1. Every
// run uses fresh UIDs and emails, so it can run any number of times against the same database.
import { createHash, randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import pg from 'pg';

const RUN = randomBytes(4).toString('hex'); // makes this run's UIDs, devices and emails unique
const SCHEMA = 'example_node'; // the application's own tables
const FEED_CHANNEL = 'cdp_identity_changes'; // every identity decision NOTIFYs it at commit (payload: the portal)
const READER_USER = process.env.CDP_READER_USER || undefined; // undefined: node-postgres falls back to PGUSER

// ---------------------------------------------------------------------------------------------------------------------
// Pitfall: node-postgres returns int8 (bigint) columns as *strings* ("42"), because a JS number cannot hold every int8,
// while ids inside jsonb (identify_outcome, track_batch's report) are JSON numbers (42), and "42" !== 42.
// Profile and event ids are far below 2^53, so parse int8 as a number, and refuse one that would lose digits.
// This parser is scoped to the pools below; `pg.types.setTypeParser(20, parseInt8)` would set it for the whole process.
// (Or use BigInt(text): exact for any int8, but then compare with jsonb numbers via Number() or ==, never ===.)
function parseInt8(text) {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new RangeError(`int8 ${text} does not fit a JS number`);
  return n;
}
const types = new pg.TypeOverrides();
types.setTypeParser(pg.types.builtins.INT8, parseInt8); // oid 20

class Mismatch extends Error {}

function expect(actual, expected, what) {
  if (!isDeepStrictEqual(actual, expected)) {
    throw new Mismatch(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

function expectThat(condition, what, detail) {
  if (!condition) throw new Mismatch(what + (detail === undefined ? '' : ` (${JSON.stringify(detail)})`));
}

const step = (text) => console.log(text);
const minutes = (n) => n * 60_000;
const days = (n) => n * 86_400_000;

// ---------------------------------------------------------------------------------------------------------------------
// The calls, as a backend would wrap them. Every call names its arguments in SQL (`uid => $1, customer_id => $2`) and the
// wrappers take an object ({ uid, customerId }), so uid and customer_id, both text, cannot be swapped silently; a
// misspelt name is an error (step 7).
// Every jsonb parameter goes in as JSON.stringify(value) with a `::jsonb` cast: node-postgres stringifies a plain object
// by itself but turns a JS *array* into a Postgres array literal ('{"{...}"}'), which is not JSON (step 2).
// Times go in as ISO strings (Date.prototype.toISOString(), to the millisecond, with a Z), or epoch milliseconds in JSON.

let app; // the application's pool (cdp_writer)
let reader; // the reader's pool (cdp_reader)

/** The first column of the first row. */
async function one(db, text, values) {
  const { rows } = await db.query({ text, values, rowMode: 'array' });
  return rows.length ? rows[0][0] : undefined;
}

/** cdp.track_event (pool.query: a transaction of its own); returns the profile id the event went to. */
function track(uid, category, action, payload = {}, at = null) {
  return one(app, 'SELECT cdp.track_event(uid => $1, category => $2, action => $3, payload => $4::jsonb, event_time => $5)',
    [uid, category, action, JSON.stringify(payload), at && at.toISOString()]);
}

/** cdp.identify_outcome: {profile_id, outcome, merged_profiles, reassigned_from, skipped}. */
function identifyOutcome({ uid, customerId, attributes = {} }) {
  return one(app, 'SELECT cdp.identify_outcome(uid => $1, customer_id => $2, attributes => $3::jsonb)',
    [uid, customerId, JSON.stringify(attributes)]);
}

/** The whole timeline, oldest first (cdp.events_of without paging arguments). */
async function timeline(profileId) {
  return (await reader.query('SELECT * FROM cdp.events_of(profile_id => $1)', [profileId])).rows;
}

/**
 * Keyset paging: each page starts after the last event_id of the previous one (what an HTTP API hands its client as the
 * "next" cursor). Unlike OFFSET, a page never skips or repeats an event when events arrive meanwhile, and events with
 * the same event_time are ordered by event_id.
 */
async function* timelinePages(profileId, pageSize, newestFirst = false) {
  let after = null;
  for (;;) {
    const { rows: page } = await reader.query(
      'SELECT * FROM cdp.events_of(profile_id => $1, after_event => $2, max_rows => $3, newest_first => $4)',
      [profileId, after, pageSize, newestFirst]);
    if (page.length) yield page;
    if (page.length < pageSize) return; // a short page is the last one
    after = page.at(-1).event_id;
  }
}

async function changesSince(cursor) {
  return (await reader.query('SELECT * FROM cdp.changes_since(cursor => $1, max_rows => 1000)', [cursor])).rows;
}

/**
 * A new consumer that wants the changes from now on: read the feed to its end and keep the last cursor.
 * (A real consumer stores its cursor, in the same transaction as what it did with the changes.)
 */
async function feedHead() {
  let cursor = 0;
  for (let page = await changesSince(cursor); page.length; page = await changesSince(cursor)) cursor = page.at(-1).cursor;
  return cursor;
}

// ---------------------------------------------------------------------------------------------------------------------

/** 1. User A browses anonymously on Day 1 and Day 3 (a new UID each time, same browser), signs in on Day 7. */
async function seedStory() {
  const email = `User.A.${RUN}@Example.com`;
  const customerId = await one(app, 'SELECT cdp.customer_id_for_email($1)', [email]);
  // The same value the page's SDK puts in the page, md5 of the trimmed lowercase address (Gmail addresses are also
  // stripped of dots and +tags, which is why the backend should ask cdp.customer_id_for_email rather than hash).
  expect(customerId, createHash('md5').update(email.trim().toLowerCase()).digest('hex'), 'customer_id_for_email');

  const now = Date.now();
  const device = { device_id: `browser-of-A-${RUN}` };
  const uids = { 1: `${RUN}-uid-day-1`, 3: `${RUN}-uid-day-3`, 7: `${RUN}-uid-day-7` };
  const anonymous = {};
  anonymous[1] = await track(uids[1], 'pageview', 'view', { context: { ...device, session_id: 'day1' } }, new Date(now - days(6)));
  await track(uids[1], 'product', 'view', { dims: { product: { sku: 'RUN-42' } }, context: device },
    new Date(now - days(6) + minutes(3)));
  anonymous[3] = await track(uids[3], 'pageview', 'view', { context: { ...device, session_id: 'day3' } }, new Date(now - days(4)));
  await track(uids[3], 'cart', 'add_to_cart', { items: [{ sku: 'RUN-42', qty: 1 }], context: device },
    new Date(now - days(4) + minutes(5)));
  expectThat(anonymous[1] !== anonymous[3], 'Day 1 and Day 3 are two anonymous profiles', anonymous);
  anonymous[7] = await track(uids[7], 'pageview', 'view', { context: { ...device, session_id: 'day7' } }, new Date(now - minutes(2)));

  // The sign-in event: dims.customers.customer_id identifies, in the same call that stores the event.
  const signIn = new Date(now - minutes(1));
  const customer = await track(uids[7], 'user', 'sign_in', {
    dims: { customers: { customer_id: customerId, name: 'User A', email } },
    extra: { identify_time: signIn.toISOString(), identify_type: 'exact' },
    context: { ...device, session_id: 'day7' },
  }, signIn);
  expectThat(!Object.values(anonymous).includes(customer), 'the customer profile is a new profile', customer);
  for (const [day, uid] of Object.entries(uids)) {
    expect(await one(app, 'SELECT cdp.profile_of(uid => $1)', [uid]), customer, `profile_of the Day ${day} UID`);
  }

  const profile = await one(reader, 'SELECT cdp.customer_profile(customer_id => $1)', [customerId]);
  expect(profile.kind, 'customer', 'kind');
  expect(profile.uids, Object.values(uids).sort(), "the customer's UIDs");
  expect([...profile.merged_profiles].sort((x, y) => x - y), Object.values(anonymous).sort((x, y) => x - y), 'merged_profiles');
  const events = (await timeline(customer)).map((e) => [e.uid, e.category, e.action]);
  expect(events, [[uids[1], 'pageview', 'view'], [uids[1], 'product', 'view'], [uids[3], 'pageview', 'view'],
    [uids[3], 'cart', 'add_to_cart'], [uids[7], 'pageview', 'view'], [uids[7], 'user', 'sign_in']],
  "the customer's timeline, with the anonymous Day 1 and Day 3 events");
  step(`1. seed story: anonymous profiles ${anonymous[1]} (Day 1), ${anonymous[3]} (Day 3), ${anonymous[7]} (Day 7) `
    + `merged into customer ${customer}; its timeline has all ${events.length} events`);
  return { customerId, customer, uid: uids[7], anonymous };
}

/** 2. cdp.track_batch: one call for many events; every item is checked alone, and the report says which failed. */
async function batch(a) {
  const base = Math.floor(Date.now() / 1000) * 1000 - 50_000;
  const at = [0, 1, 2, 3, 4, 5].map((s) => new Date(base + s * 1000 + 123)); // Dates hold milliseconds
  const retry = { context: { message_id: `${RUN}-msg-cart` } };
  const events = [
    { uid: a.uid, category: 'pageview', action: 'view', event_time: at[1].toISOString() }, // ISO 8601 with Z, to the ms
    { uid: a.uid, category: 'product', action: 'compare', event_time: at[2].getTime() }, // a number: epoch millis
    { uid: a.uid, category: 'product', action: 'zoom', event_time: at[2].getTime() }, // the same time: a tie
    { uid: a.uid, category: 'pageview', action: 'view', timestamp: at[3].toISOString() }, // unknown key
    { uid: a.uid, category: 'pageview', action: 'view', event_time: String(at[3]) }, // "Mon Nov 30 2026 ...": not a time
    { uid: a.uid, category: 'cart', action: 'add_to_cart', payload: retry, event_time: at[4].toISOString() },
    { uid: a.uid, category: 'cart', action: 'add_to_cart', payload: retry, event_time: at[4].toISOString() }, // a retry
    { uid: a.uid, category: 'checkout', action: 'start', event_time: at[5].toISOString() },
  ];

  // The pitfall: the array itself as the parameter becomes a Postgres array literal, and the call fails
  // with 22P02 invalid_text_representation ("invalid input syntax for type json"), with or without the cast.
  try {
    await app.query('SELECT cdp.track_batch($1::jsonb)', [events]);
    throw new Mismatch('a JS array was accepted as jsonb');
  } catch (e) {
    if (e instanceof Mismatch) throw e;
    expect(e.code, '22P02', 'a JS array passed as is');
  }
  // The right way: one JSON text, cast to jsonb.
  const report = await one(app, 'SELECT cdp.track_batch(events => $1::jsonb)', [JSON.stringify(events)]);

  const rejected = Object.fromEntries(report.rejected.map((r) => [r.index, r.sqlstate]));
  expect(rejected, { 3: '22023', 4: '22007' }, 'rejected items (index: sqlstate)');
  const unknownKey = report.rejected.find((r) => r.index === 3).message;
  expectThat(unknownKey.includes('unknown key "timestamp"'), 'the message names the unknown key', unknownKey);
  expect([report.accepted, report.stored, report.duplicates], [6, 5, 1],
    'accepted, stored, duplicates (the retried message id is stored once)');
  expect(report.profile_ids, [a.customer, a.customer, a.customer, null, null, a.customer, a.customer, a.customer],
    'profile_ids: the customer for every accepted item, null for a rejected one');

  // The times sent as an ISO string and as epoch millis come back to the millisecond.
  const got = new Map((await timeline(a.customer)).map((e) => [`${e.category}/${e.action}`, e.event_time.getTime()]));
  expect(got.get('product/compare'), at[2].getTime(), 'an epoch-millis time keeps its milliseconds');
  expect(got.get('checkout/start'), at[5].getTime(), 'an ISO time keeps its milliseconds');
  step(`2. batch: ${events.length} items, accepted ${report.accepted}, stored ${report.stored}, `
    + `duplicates ${report.duplicates}, rejected ${JSON.stringify(report.rejected.map((r) => [r.index, r.sqlstate]))}; `
    + 'a JS array passed as is fails with 22P02');
}

/**
 * The application's own transaction: the order is what matters; the sign-in is tracked under a SAVEPOINT, so a tracking
 * failure is logged and rolled back to the savepoint, and the order still commits.
 */
async function placeOrder(uid, email, totalCents) {
  const client = await app.connect(); // one connection for the whole transaction (pool.query may use another each time)
  let broken = false;
  try {
    await client.query('BEGIN');
    const orderId = await one(client, `INSERT INTO ${SCHEMA}.orders (email, total_cents, uid) VALUES ($1, $2, $3) RETURNING order_id`,
      [email, totalCents, uid]);
    let customer = null;
    let error = null;
    await client.query('SAVEPOINT track_sign_in');
    try {
      customer = await one(client, 'SELECT cdp.identify(uid => $1, customer_id => cdp.customer_id_for_email($2), attributes => $3::jsonb)',
        [uid, email, JSON.stringify({ email })]);
      await client.query('RELEASE SAVEPOINT track_sign_in');
    } catch (e) {
      if (!(e instanceof pg.DatabaseError)) throw e;
      error = e; // log it and go on: after ROLLBACK TO SAVEPOINT the transaction is usable again
      await client.query('ROLLBACK TO SAVEPOINT track_sign_in');
    }
    // The identify took the portal's identity lock, held until COMMIT: keep what follows short.
    await client.query(`UPDATE ${SCHEMA}.orders SET cdp_profile_id = $1 WHERE order_id = $2`, [customer, orderId]);
    await client.query('COMMIT');
    return { orderId, customer, error };
  } catch (e) {
    try { await client.query('ROLLBACK'); } catch { broken = true; }
    throw e;
  } finally {
    client.release(broken); // release(true) closes a connection that cannot be trusted any more
  }
}

/** 3. A sign-in at checkout, inside the application's transaction, with the tracking under a savepoint. */
async function ordersInOwnTransaction() {
  await app.query(`CREATE SCHEMA IF NOT EXISTS ${SCHEMA}`);
  await app.query(`CREATE TABLE IF NOT EXISTS ${SCHEMA}.orders (
    order_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL,
    total_cents integer NOT NULL,
    uid text,
    cdp_profile_id bigint,
    created_at timestamptz NOT NULL DEFAULT now())`);
  const goodUid = `${RUN}-checkout`;
  const goodEmail = `buyer.${RUN}@example.com`;
  const badEmail = `no-cookie.${RUN}@example.com`;
  await track(goodUid, 'cart', 'view', { context: { device_id: `checkout-device-${RUN}` } });

  const first = await placeOrder(goodUid, goodEmail, 4990);
  expect(first.error, null, 'tracking the first sign-in');
  // An empty UID (the visitor's cookie was missing) makes the tracking fail: 22023 invalid_parameter_value.
  const second = await placeOrder('', badEmail, 1250);
  expectThat(second.error instanceof pg.DatabaseError && second.error.code === '22023',
    "the second sign-in's tracking fails with 22023", second.error && second.error.message);
  expect(second.customer, null, 'no customer profile for the failed tracking');

  const { rows } = await app.query(`SELECT order_id, cdp_profile_id FROM ${SCHEMA}.orders WHERE order_id = ANY($1) ORDER BY order_id`,
    [[first.orderId, second.orderId]]); // a JS array *is* right here: the parameter is a Postgres array (bigint[])
  expect(rows, [{ order_id: first.orderId, cdp_profile_id: first.customer }, { order_id: second.orderId, cdp_profile_id: null }],
    'both orders are committed');
  expect(await one(app, 'SELECT cdp.profile_of(uid => $1)', [goodUid]), first.customer, 'the first sign-in was committed with its order');
  expect(await one(reader, 'SELECT cdp.customer_profile(customer_id => cdp.customer_id_for_email($1))', [badEmail]), null,
    'the failed tracking was rolled back to the savepoint: no customer');
  step(`3. own transaction: orders ${first.orderId} and ${second.orderId} committed; the second order's tracking failed `
    + `(${second.error.code}: ${second.error.message}) and was rolled back to its savepoint`);
}

/** 4. cdp.identify_outcome: what an identify did, for the application to act on. */
async function identifyOutcomes() {
  const customerId = `${RUN}-customer-b`; // any stable id works; the backend's own user id, say
  const laptop = `${RUN}-laptop`;
  const phone = `${RUN}-phone`;
  const laptopProfile = await track(laptop, 'pageview', 'view', { context: { device_id: `laptop-${RUN}` } });
  const first = await identifyOutcome({ uid: laptop, customerId, attributes: { name: 'User B' } });
  expect(first.outcome, 'created', 'the first identify of a new customer id');
  expect(first.merged_profiles, [laptopProfile], "the laptop's anonymous profile is merged");
  expect([first.reassigned_from, first.skipped], [null, []], 'nothing reassigned or skipped');

  const phoneProfile = await track(phone, 'pageview', 'view', { context: { device_id: `phone-${RUN}` } });
  const second = await identifyOutcome({ uid: phone, customerId });
  expect(second.outcome, 'linked', 'the same customer on a second device');
  expect(second.profile_id, first.profile_id, 'the second device joins the same customer profile');
  expect(second.merged_profiles, [phoneProfile], "the phone's anonymous profile is merged");
  const again = await identifyOutcome({ uid: phone, customerId });
  expect([again.outcome, again.merged_profiles], ['unchanged', []], 'a repeated identify changes nothing');
  step(`4. identify_outcome: created customer ${first.profile_id} (merged ${JSON.stringify(first.merged_profiles)}), `
    + `then linked the phone (merged ${JSON.stringify(second.merged_profiles)}), then unchanged`);
  return { customerId, customer: first.profile_id, merged: [laptopProfile, phoneProfile] };
}

/** 5. A timeline page by page, both ways; the pages put together are the whole timeline. */
async function paging(a) {
  const whole = (await timeline(a.customer)).map((e) => e.event_id);
  const oldestFirst = [];
  for await (const page of timelinePages(a.customer, 4)) oldestFirst.push(page.map((e) => e.event_id));
  const newestFirst = [];
  for await (const page of timelinePages(a.customer, 5, true)) newestFirst.push(page.map((e) => e.event_id));
  expect(oldestFirst.flat(), whole, 'oldest-first pages put together');
  expect(newestFirst.flat(), [...whole].reverse(), 'newest-first pages put together');
  expectThat(oldestFirst.slice(0, -1).every((p) => p.length === 4), 'every page but the last is full', oldestFirst);
  step(`5. paging: ${whole.length} events in ${oldestFirst.length} pages of 4 (oldest first) and `
    + `${newestFirst.length} pages of 5 (newest first), equal to the whole timeline`);
}

/** A LISTEN connection: its own client, outside the pool (a pooled one is handed to others). */
async function listen() {
  const client = new pg.Client({ types, user: READER_USER });
  const notifications = [];
  let wake = () => {};
  client.on('notification', (msg) => { notifications.push(msg); wake(); });
  client.on('error', (e) => console.error(`listener: ${e.message}`)); // a real consumer reconnects and polls
  await client.connect();
  await client.query(`LISTEN ${FEED_CHANNEL}`);
  /** Resolves at the next notification, or after `ms`. */
  const nextNotification = (ms) => new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    wake = () => { clearTimeout(timer); wake = () => {}; resolve(); };
  });
  return { client, notifications, nextNotification };
}

/** 6. The change feed: wake up on NOTIFY, then poll cdp.changes_since(cursor) and move the cursor on. */
async function followFeed(listener, cursor, a, b) {
  // LISTEN was issued before step 1, so the commits of steps 1-4 have sent notifications to this connection.
  if (!listener.notifications.length) await listener.nextNotification(5000);
  expect(listener.notifications.slice(0, 1).map((n) => [n.channel, n.payload]), [[FEED_CHANNEL, 'default']],
    `a NOTIFY on ${FEED_CHANNEL} with the portal as its payload`);

  const key = (profileId, customer, customerId) => `${profileId} -> ${customer} (${customerId})`;
  const expected = [...Object.values(a.anonymous).map((p) => key(p, a.customer, a.customerId)),
    ...b.merged.map((p) => key(p, b.customer, b.customerId))];
  const seen = new Set();
  const reasons = {};
  const deadline = Date.now() + 15_000;
  for (;;) {
    // A notification only says "something changed": always read the feed itself. A change becomes visible once every
    // older transaction has ended, so a poll right after a NOTIFY may still come back empty: poll again.
    for (const change of await changesSince(cursor)) {
      cursor = change.cursor; // a real consumer applies the change, then stores the cursor
      if (change.kind === 'merge') {
        seen.add(key(change.profile_id, change.customer_profile, change.customer_id));
        reasons[change.profile_id] = change.detail.reason;
      }
    }
    const missing = expected.filter((k) => !seen.has(k));
    if (!missing.length) break;
    expectThat(Date.now() < deadline, 'the merges of steps 1 and 4 arrive on the feed', missing);
    await listener.nextNotification(1000); // sleep until the next NOTIFY, or poll again in 1 s
  }
  expect([1, 3, 7].map((d) => reasons[a.anonymous[d]]), ['device_id', 'device_id', 'uid'],
    "the seed story's merges: Day 1 and Day 3 by the device, Day 7 by its UID");
  step(`6. change feed: NOTIFY '${listener.notifications[0].payload}'; ${expected.length} merges of steps 1 and 4 arrived, `
    + `cursor now ${cursor}`);
}

/** 7. int8 as strings, named arguments, times. */
async function pitfalls(b) {
  // Without the parser (a client with the default types), an int8 comes back as a string.
  const plain = new pg.Client({ user: READER_USER });
  await plain.connect();
  let asString;
  try {
    asString = (await plain.query('SELECT cdp.root_of(profile_id => $1) AS id', [b.customer])).rows[0].id;
  } finally {
    await plain.end();
  }
  expect(typeof asString, 'string', 'int8 without a type parser');
  expectThat(asString !== b.customer && Number(asString) === b.customer, '"42" !== 42: compare after parsing',
    [asString, b.customer]);
  const withParser = await one(reader, 'SELECT cdp.root_of(profile_id => $1)', [b.customer]);
  const inJson = (await one(reader, 'SELECT cdp.customer_profile(customer_id => $1)', [b.customerId])).profile_id;
  expect([typeof withParser, typeof inJson], ['number', 'number'], 'int8 with the parser, and an id inside jsonb');
  expect(withParser, inJson, 'the same id either way');

  // A misspelt argument name is an error (42883 undefined_function), not a silently different call.
  try {
    await app.query('SELECT cdp.identify(uid => $1, customer => $2)', [`${RUN}-x`, `${RUN}-y`]);
    throw new Mismatch('a misspelt argument name was accepted');
  } catch (e) {
    if (e instanceof Mismatch) throw e;
    expect(e.code, '42883', 'a misspelt argument name');
  }

  // Times: toISOString() (or epoch millis in JSON) keeps the milliseconds; a Date as a parameter works too (node-postgres
  // sends it with its UTC offset). A Date has no microseconds: select event_time::text where they matter. And an epoch
  // in *seconds* where milliseconds are expected is silently January 1970: Date.now(), never Date.now() / 1000.
  const at = new Date(Math.floor(Date.now() / 1000) * 1000 - 3_600_000 + 987);
  const profile = await track(`${RUN}-precise`, 'pageview', 'view', {}, at);
  const [event] = await timeline(profile);
  expect(event.event_time.toISOString(), at.toISOString(), 'an ISO time keeps its milliseconds');
  step('7. pitfalls: int8 comes back as a string without a type parser ("42" !== 42), jsonb ids are numbers; '
    + 'a misspelt argument name fails (42883); ISO times keep their milliseconds');
}

async function main() {
  app = new pg.Pool({ types, max: 4 }); // PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD from the environment
  reader = new pg.Pool({ types, max: 2, user: READER_USER });
  // An idle pooled connection that breaks (server restart) emits 'error' on the pool: without a handler the process dies.
  for (const pool of [app, reader]) pool.on('error', (e) => console.error(`idle connection: ${e.message}`));
  let listener;
  try {
    listener = await listen();
    const cursor = await feedHead();
    const a = await seedStory();
    await batch(a);
    await ordersInOwnTransaction();
    const b = await identifyOutcomes();
    await paging(a);
    await followFeed(listener, cursor, a, b);
    await pitfalls(b);
  } finally {
    if (listener) await listener.client.end();
    await app.end();
    await reader.end();
  }
  console.log('node example: all checks passed');
}

main().catch((e) => {
  const what = e instanceof Mismatch ? e.message : `${e.constructor.name}${e.code ? ` ${e.code}` : ''}: ${e.message}`;
  console.error(`FAILED: ${what}`);
  process.exitCode = 1;
});
