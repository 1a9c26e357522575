#!/usr/bin/env python3
"""cdp_identity from a Python backend: psycopg 3 and psycopg_pool.

    python3 -m venv venv && venv/bin/pip install -r requirements.txt
    PGHOST=... PGPORT=... PGDATABASE=... PGUSER=app_backend CDP_READER_USER=analytics venv/bin/python cdp_example.py

The database is the one the standard libpq variables name (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, ...) and
must have `CREATE EXTENSION cdp_identity`. Two roles, least privilege:

  * PGUSER, the application (member of cdp_writer): tracks events, identifies, writes its own orders. It also needs
    CREATE on the database, for this example's schema `example_python` (its `orders` table).
  * CDP_READER_USER (default: PGUSER), a reader (member of cdp_reader): reads timelines and follows the change feed.

Each step checks what it got back; the first mismatch ends the program with "FAILED: ..." and exit status 1. Every
run uses fresh UIDs and emails, so it can run any number of times against the same database.
"""
import hashlib
import os
import secrets
import sys
import time
from datetime import datetime, timedelta, timezone

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

RUN = secrets.token_hex(4)  # makes this run's UIDs, devices and emails unique
SCHEMA = "example_python"  # the application's own tables
FEED_CHANNEL = "cdp_identity_changes"  # every identity decision NOTIFYs it at commit (payload: the portal)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class Mismatch(Exception):
    """What the example expected is not what the database answered."""


def expect(actual, expected, what):
    # Not `assert`: `python -O` removes asserts, and these checks are the point of the example.
    if actual != expected:
        raise Mismatch(f"{what}: expected {expected!r}, got {actual!r}")


def expect_that(condition, what, detail=None):
    if not condition:
        raise Mismatch(what + ("" if detail is None else f" ({detail!r})"))


def step(text):
    print(text, flush=True)


# ----------------------------------------------------------------------------------------------------------------------
# The calls, as a backend would wrap them. Every call names its arguments in SQL (`uid => %(uid)s`) and the wrappers take
# keyword arguments (`customer_id=...`), so uid and customer_id, both text, cannot be swapped silently; a misspelt
# name is an error (step 7).
# Payloads go in as Jsonb(...): psycopg does not guess JSON for a dict, and would send a list as a Postgres array.
# Times go in as *aware* datetimes (tzinfo set): a naive one is read in the session's TimeZone (step 7).

def one(conn, query, params=None):
    """The first column of the first row."""
    return conn.execute(query, params).fetchone()[0]


def track(pool, uid, category, action, payload=None, at=None):
    """cdp.track_event in a transaction of its own; returns the profile id the event went to."""
    with pool.connection() as conn:  # leaving the block commits (or rolls back on an exception) and returns conn
        return one(conn, "SELECT cdp.track_event(uid => %(uid)s, category => %(category)s, action => %(action)s,"
                         " payload => %(payload)s, event_time => %(at)s)",
                   {"uid": uid, "category": category, "action": action, "payload": Jsonb(payload or {}), "at": at})


def identify_outcome(pool, *, uid, customer_id, attributes=None):
    """cdp.identify_outcome: {"profile_id", "outcome", "merged_profiles", "reassigned_from", "skipped"}."""
    with pool.connection() as conn:
        return one(conn, "SELECT cdp.identify_outcome(uid => %(uid)s, customer_id => %(customer_id)s,"
                         " attributes => %(attributes)s)",
                   {"uid": uid, "customer_id": customer_id, "attributes": Jsonb(attributes or {})})


def timeline(reader, profile_id):
    """The whole timeline, oldest first (cdp.events_of without paging arguments)."""
    with reader.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM cdp.events_of(profile_id => %s)", (profile_id,)).fetchall()


def timeline_pages(reader, profile_id, page_size, newest_first=False):
    """Keyset paging: each page starts after the last event_id of the previous one (what an HTTP API hands its
    client as the 'next' cursor). Unlike OFFSET, a page never skips or repeats an event when events arrive meanwhile,
    and events with the same event_time are ordered by event_id."""
    after = None
    while True:
        with reader.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            page = cur.execute("SELECT * FROM cdp.events_of(profile_id => %(p)s, after_event => %(after)s,"
                               " max_rows => %(n)s, newest_first => %(newest)s)",
                               {"p": profile_id, "after": after, "n": page_size, "newest": newest_first}).fetchall()
        if page:
            yield page
        if len(page) < page_size:  # a short page is the last one
            return
        after = page[-1]["event_id"]


def changes_since(reader, cursor):
    with reader.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM cdp.changes_since(cursor => %s, max_rows => 1000)", (cursor,)).fetchall()


def feed_head(reader):
    """A new consumer that wants the changes from now on: read the feed to its end and keep the last cursor.
    (A real consumer stores its cursor, in the same transaction as what it did with the changes.)"""
    cursor = 0
    while page := changes_since(reader, cursor):
        cursor = page[-1]["cursor"]
    return cursor


# ----------------------------------------------------------------------------------------------------------------------

def seed_story(app, reader):
    """1. User A browses anonymously on Day 1 and Day 3 (a new UID each time, same browser), signs in on Day 7."""
    email = f"User.A.{RUN}@Example.com"
    with app.connection() as conn:
        customer_id = one(conn, "SELECT cdp.customer_id_for_email(%s)", (email,))
    # The same value the page's SDK puts in the page, md5 of the trimmed lowercase address (Gmail addresses are also
    # stripped of dots and +tags, which is why the backend should ask cdp.customer_id_for_email rather than hash).
    expect(customer_id, hashlib.md5(email.strip().lower().encode()).hexdigest(), "customer_id_for_email")

    now = datetime.now(timezone.utc)
    device = {"device_id": f"browser-of-A-{RUN}"}
    uids = {day: f"{RUN}-uid-day-{day}" for day in (1, 3, 7)}
    anonymous = {
        1: track(app, uids[1], "pageview", "view", {"context": {**device, "session_id": "day1"}}, now - timedelta(days=6)),
        3: track(app, uids[3], "pageview", "view", {"context": {**device, "session_id": "day3"}}, now - timedelta(days=4)),
    }
    track(app, uids[1], "product", "view", {"dims": {"product": {"sku": "RUN-42"}}, "context": device},
          now - timedelta(days=6) + timedelta(minutes=3))
    track(app, uids[3], "cart", "add_to_cart", {"items": [{"sku": "RUN-42", "qty": 1}], "context": device},
          now - timedelta(days=4) + timedelta(minutes=5))
    expect_that(anonymous[1] != anonymous[3], "Day 1 and Day 3 are two anonymous profiles", anonymous)
    anonymous[7] = track(app, uids[7], "pageview", "view", {"context": {**device, "session_id": "day7"}},
                         now - timedelta(minutes=2))

    # The sign-in event: dims.customers.customer_id identifies, in the same call that stores the event.
    customer = track(app, uids[7], "user", "sign_in", {
        "dims": {"customers": {"customer_id": customer_id, "name": "User A", "email": email}},
        "extra": {"identify_time": (now - timedelta(minutes=1)).isoformat(), "identify_type": "exact"},
        "context": {**device, "session_id": "day7"},
    }, now - timedelta(minutes=1))
    expect_that(customer not in anonymous.values(), "the customer profile is a new profile", customer)
    with app.connection() as conn:
        for day, uid in uids.items():
            expect(one(conn, "SELECT cdp.profile_of(uid => %s)", (uid,)), customer, f"profile_of the Day {day} UID")

    with reader.connection() as conn:
        profile = one(conn, "SELECT cdp.customer_profile(customer_id => %s)", (customer_id,))
    expect(profile["kind"], "customer", "kind")
    expect(profile["uids"], sorted(uids.values()), "the customer's UIDs")
    expect(sorted(profile["merged_profiles"]), sorted(anonymous.values()), "merged_profiles")
    events = [(e["uid"], e["category"], e["action"]) for e in timeline(reader, customer)]
    expect(events, [(uids[1], "pageview", "view"), (uids[1], "product", "view"), (uids[3], "pageview", "view"),
                    (uids[3], "cart", "add_to_cart"), (uids[7], "pageview", "view"), (uids[7], "user", "sign_in")],
           "the customer's timeline, with the anonymous Day 1 and Day 3 events")
    step(f"1. seed story: anonymous profiles {anonymous[1]} (Day 1), {anonymous[3]} (Day 3), {anonymous[7]} (Day 7) "
         f"merged into customer {customer}; its timeline has all {len(events)} events")
    return {"customer_id": customer_id, "customer": customer, "uid": uids[7], "anonymous": anonymous}


def batch(app, reader, a):
    """2. cdp.track_batch: one call for many events; every item is checked alone, and the report says which failed."""
    base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=50)
    at = [base + timedelta(seconds=s, microseconds=123456) for s in range(6)]
    millis = (at[2] - EPOCH) // timedelta(milliseconds=1)  # epoch *milliseconds* (what JavaScript's Date.now() gives)
    retry = {"context": {"message_id": f"{RUN}-msg-cart"}}
    events = [
        {"uid": a["uid"], "category": "pageview", "action": "view", "event_time": at[1].isoformat()},  # ISO 8601, to the µs
        {"uid": a["uid"], "category": "product", "action": "compare", "event_time": millis},  # a number: epoch millis
        {"uid": a["uid"], "category": "product", "action": "zoom", "event_time": millis},  # the same time: a tie
        {"uid": a["uid"], "category": "pageview", "action": "view", "timestamp": at[3].isoformat()},  # unknown key
        {"uid": a["uid"], "category": "pageview", "action": "view", "event_time": "yesterday"},  # not a time
        {"uid": a["uid"], "category": "cart", "action": "add_to_cart", "payload": retry, "event_time": at[4].isoformat()},
        {"uid": a["uid"], "category": "cart", "action": "add_to_cart", "payload": retry, "event_time": at[4].isoformat()},
        {"uid": a["uid"], "category": "checkout", "action": "start", "event_time": at[5].isoformat()},
    ]
    with app.connection() as conn:
        report = one(conn, "SELECT cdp.track_batch(events => %s)", (Jsonb(events),))  # Jsonb: one jsonb array
    rejected = {r["index"]: r["sqlstate"] for r in report["rejected"]}
    expect(rejected, {3: "22023", 4: "22007"}, "rejected items (index: sqlstate)")
    unknown_key = next(r["message"] for r in report["rejected"] if r["index"] == 3)
    expect_that('unknown key "timestamp"' in unknown_key, "the message names the unknown key", unknown_key)
    expect((report["accepted"], report["stored"], report["duplicates"]), (6, 5, 1),
           "accepted, stored, duplicates (the retried message id is stored once)")
    expect(report["profile_ids"], [a["customer"]] * 3 + [None, None] + [a["customer"]] * 3,
           "profile_ids: the customer for every accepted item, None for a rejected one")

    # The times sent as ISO strings and as epoch millis come back exactly (microseconds included for ISO).
    got = {(e["category"], e["action"]): e["event_time"] for e in timeline(reader, a["customer"])}
    expect(got[("product", "compare")], at[2].replace(microsecond=123000),
           "an epoch-millis time keeps its milliseconds")
    expect(got[("checkout", "start")], at[5], "an ISO time keeps its microseconds")
    step(f"2. batch: {len(events)} items, accepted {report['accepted']}, stored {report['stored']}, "
         f"duplicates {report['duplicates']}, rejected {[(r['index'], r['sqlstate']) for r in report['rejected']]}")


def place_order(app, uid, email, total_cents):
    """The application's own transaction: the order is what matters; the sign-in is tracked under a SAVEPOINT, so a
    tracking failure is logged and rolled back to the savepoint, and the order still commits.
    Returns (order_id, customer profile id or None, the tracking error or None)."""
    with app.connection() as conn:
        with conn.transaction():  # BEGIN ... COMMIT (ROLLBACK if the block raises)
            order_id = one(conn, f"INSERT INTO {SCHEMA}.orders (email, total_cents, uid) VALUES (%s, %s, %s)"
                                 " RETURNING order_id", (email, total_cents, uid))
            customer, error = None, None
            try:
                with conn.transaction():  # nested: SAVEPOINT ... RELEASE, or ROLLBACK TO SAVEPOINT on an exception
                    customer = one(conn, "SELECT cdp.identify(uid => %(uid)s,"
                                         " customer_id => cdp.customer_id_for_email(%(email)s),"
                                         " attributes => %(attributes)s)",
                                   {"uid": uid, "email": email, "attributes": Jsonb({"email": email})})
            except psycopg.Error as e:  # log it and go on: the transaction is usable again
                error = e
            # The identify took the portal's identity lock, held until COMMIT: keep what follows short.
            conn.execute(f"UPDATE {SCHEMA}.orders SET cdp_profile_id = %s WHERE order_id = %s", (customer, order_id))
    return order_id, customer, error


def orders_in_own_transaction(app, reader):
    """3. A sign-in at checkout, inside the application's transaction, with the tracking under a savepoint."""
    with app.connection() as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        conn.execute(f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.orders (
            order_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            email text NOT NULL,
            total_cents integer NOT NULL,
            uid text,
            cdp_profile_id bigint,
            created_at timestamptz NOT NULL DEFAULT now())""")
    good_uid, good_email = f"{RUN}-checkout", f"buyer.{RUN}@example.com"
    bad_email = f"no-cookie.{RUN}@example.com"
    track(app, good_uid, "cart", "view", {"context": {"device_id": f"checkout-device-{RUN}"}})

    order1, customer, error = place_order(app, good_uid, good_email, 4990)
    expect(error, None, "tracking the first sign-in")
    # An empty UID (the visitor's cookie was missing) makes the tracking fail: 22023 invalid_parameter_value.
    order2, no_customer, error = place_order(app, "", bad_email, 1250)
    expect_that(isinstance(error, psycopg.Error) and error.sqlstate == "22023",
                "the second sign-in's tracking fails with 22023", error)
    expect(no_customer, None, "no customer profile for the failed tracking")

    with app.connection() as conn:  # a fresh connection sees what was committed
        rows = conn.execute(f"SELECT order_id, cdp_profile_id FROM {SCHEMA}.orders WHERE order_id IN (%s, %s)"
                            " ORDER BY order_id", (order1, order2)).fetchall()
        expect(rows, [(order1, customer), (order2, None)], "both orders are committed")
        expect(one(conn, "SELECT cdp.profile_of(uid => %s)", (good_uid,)), customer,
               "the first sign-in was committed with its order")
    with reader.connection() as conn:
        expect(one(conn, "SELECT cdp.customer_profile(customer_id => cdp.customer_id_for_email(%s))", (bad_email,)),
               None, "the failed tracking was rolled back to the savepoint: no customer")
    step(f"3. own transaction: orders {order1} and {order2} committed; the second order's tracking failed "
         f"({error.sqlstate}: {error.diag.message_primary}) and was rolled back to its savepoint")


def identify_outcomes(app):
    """4. cdp.identify_outcome: what an identify did, for the application to act on."""
    customer_id = f"{RUN}-customer-b"  # any stable id works; the backend's own user id, say
    laptop, phone = f"{RUN}-laptop", f"{RUN}-phone"
    laptop_profile = track(app, laptop, "pageview", "view", {"context": {"device_id": f"laptop-{RUN}"}})
    first = identify_outcome(app, uid=laptop, customer_id=customer_id, attributes={"name": "User B"})
    expect(first["outcome"], "created", "the first identify of a new customer id")
    expect(first["merged_profiles"], [laptop_profile], "the laptop's anonymous profile is merged")
    expect((first["reassigned_from"], first["skipped"]), (None, []), "nothing reassigned or skipped")

    phone_profile = track(app, phone, "pageview", "view", {"context": {"device_id": f"phone-{RUN}"}})
    second = identify_outcome(app, uid=phone, customer_id=customer_id)
    expect(second["outcome"], "linked", "the same customer on a second device")
    expect(second["profile_id"], first["profile_id"], "the second device joins the same customer profile")
    expect(second["merged_profiles"], [phone_profile], "the phone's anonymous profile is merged")
    again = identify_outcome(app, uid=phone, customer_id=customer_id)
    expect((again["outcome"], again["merged_profiles"]), ("unchanged", []), "a repeated identify changes nothing")
    step(f"4. identify_outcome: created customer {first['profile_id']} (merged {first['merged_profiles']}), "
         f"then linked the phone (merged {second['merged_profiles']}), then unchanged")
    return {"customer_id": customer_id, "customer": first["profile_id"], "merged": [laptop_profile, phone_profile]}


def paging(reader, a):
    """5. A timeline page by page, both ways; the pages put together are the whole timeline."""
    whole = [e["event_id"] for e in timeline(reader, a["customer"])]
    oldest_first = [list(e["event_id"] for e in page) for page in timeline_pages(reader, a["customer"], 4)]
    newest_first = [list(e["event_id"] for e in page) for page in timeline_pages(reader, a["customer"], 5, True)]
    expect([i for page in oldest_first for i in page], whole, "oldest-first pages put together")
    expect([i for page in newest_first for i in page], whole[::-1], "newest-first pages put together")
    expect_that(all(len(p) == 4 for p in oldest_first[:-1]), "every page but the last is full", oldest_first)
    step(f"5. paging: {len(whole)} events in {len(oldest_first)} pages of 4 (oldest first) and "
         f"{len(newest_first)} pages of 5 (newest first), equal to the whole timeline")


def follow_feed(reader, listener, cursor, a, b):
    """6. The change feed: wake up on NOTIFY, then poll cdp.changes_since(cursor) and move the cursor on."""
    # LISTEN was issued before step 1, so the commits of steps 1-4 have queued notifications on this connection.
    notified = [n.payload for n in listener.notifies(timeout=5.0, stop_after=1)]
    expect(notified[:1], ["default"], f"a NOTIFY on {FEED_CHANNEL} with the portal as its payload")

    expected = {(p, a["customer"], a["customer_id"]) for p in a["anonymous"].values()} | \
               {(p, b["customer"], b["customer_id"]) for p in b["merged"]}
    seen, reasons = set(), {}
    deadline = time.monotonic() + 15
    while not expected <= seen:
        # A notification only says "something changed": always read the feed itself. A change becomes visible once
        # every older transaction has ended, so a poll right after a NOTIFY may still come back empty: poll again.
        for change in changes_since(reader, cursor):
            cursor = change["cursor"]  # a real consumer applies the change, then stores the cursor
            if change["kind"] == "merge":
                seen.add((change["profile_id"], change["customer_profile"], change["customer_id"]))
                reasons[change["profile_id"]] = change["detail"]["reason"]
        if expected <= seen:
            break
        expect_that(time.monotonic() < deadline, "the merges of steps 1 and 4 arrive on the feed", expected - seen)
        for _ in listener.notifies(timeout=1.0, stop_after=1):  # sleep until the next NOTIFY, or poll again in 1 s
            pass
    anonymous = a["anonymous"]
    expect([reasons[anonymous[d]] for d in (1, 3, 7)], ["device_id", "device_id", "uid"],
           "the seed story's merges: Day 1 and Day 3 by the device, Day 7 by its UID")
    step(f"6. change feed: NOTIFY {notified[0]!r}; {len(expected)} merges of steps 1 and 4 arrived, cursor now {cursor}")


def pitfalls(app, reader):
    """7. Named arguments, values psycopg will not guess, and times."""
    with app.connection() as conn:
        # A misspelt argument name is an error, not a silently different call.
        try:
            with conn.transaction():
                conn.execute("SELECT cdp.identify(uid => %s, customer => %s)", (f"{RUN}-x", f"{RUN}-y"))
            raise Mismatch("a misspelt argument name was accepted")
        except psycopg.errors.UndefinedFunction:
            pass
        # A dict or a list of dicts is not adapted without Jsonb(...) (a plain list would become a Postgres array).
        try:
            conn.execute("SELECT cdp.track_batch(%s)", ([{"uid": f"{RUN}-x", "category": "c", "action": "a"}],))
            raise Mismatch("a list of dicts was sent without Jsonb")
        except psycopg.ProgrammingError:
            conn.rollback()
        # A naive datetime is sent as a timestamp without zone and read in the session's TimeZone: 7 hours off on a
        # server in Asia/Ho_Chi_Minh. Aware datetimes mean the same instant on every connection of the pool.
        aware = datetime.now(timezone.utc).replace(microsecond=654321) - timedelta(hours=1)
        with conn.transaction():
            conn.execute("SET LOCAL TimeZone = 'Asia/Ho_Chi_Minh'")  # LOCAL: never leave a setting on a pooled conn
            naive = aware.replace(tzinfo=None)
            expect(one(conn, "SELECT %s::timestamptz", (naive,)), aware - timedelta(hours=7),
                   "a naive datetime is read in the session's TimeZone")
            expect(one(conn, "SELECT %s::timestamptz", (aware,)), aware, "an aware datetime is that instant")
    uid = f"{RUN}-precise"
    profile = track(app, uid, "pageview", "view", at=aware)
    expect([e["event_time"] for e in timeline(reader, profile)], [aware], "an aware datetime keeps its microseconds")
    step("7. pitfalls: a misspelt argument name fails (42883); dicts and lists need Jsonb(); "
         "naive datetimes are read in the session's TimeZone, aware ones keep their microseconds")


def main():
    reader_user = os.environ.get("CDP_READER_USER") or os.environ.get("PGUSER")
    reader_conninfo = make_conninfo("", user=reader_user) if reader_user else ""
    app = reader = listener = None
    try:
        # Fail fast, with libpq's own message, when the database cannot be reached or lacks the extension (a pool
        # would retry in the background until its timeout).
        with psycopg.connect("", connect_timeout=10) as probe:
            probe.execute("SELECT cdp.version()")
        # LISTEN needs a connection of its own, outside the pool (a pooled one is handed to others), in autocommit
        # mode (notifications are delivered between transactions).
        listener = psycopg.connect(reader_conninfo, autocommit=True, connect_timeout=10)
        listener.execute(f"LISTEN {FEED_CHANNEL}")
        # "" = everything from the libpq environment variables. check= tests a connection before handing it out.
        app = ConnectionPool("", min_size=1, max_size=4, name="app", open=True, check=ConnectionPool.check_connection)
        reader = ConnectionPool(reader_conninfo, min_size=1, max_size=2, name="reader", open=True)
        cursor = feed_head(reader)
        a = seed_story(app, reader)
        batch(app, reader, a)
        orders_in_own_transaction(app, reader)
        b = identify_outcomes(app)
        paging(reader, a)
        follow_feed(reader, listener, cursor, a, b)
        pitfalls(app, reader)
    except Mismatch as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    except (psycopg.Error, PoolTimeout) as e:
        sqlstate = getattr(e, "sqlstate", None)
        print(f"FAILED: {type(e).__name__}{' ' + sqlstate if sqlstate else ''}: {e}", file=sys.stderr)
        return 1
    finally:
        for closable in (listener, app, reader):
            if closable is not None:
                closable.close()
    print("python example: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
