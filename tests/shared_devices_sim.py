#!/usr/bin/env python3
"""Shared computers: how well does identity tracking attribute events to people
when a family shares one computer? A simulation of a web shop's visitors,
tracked the way the web SDK of the product description tracks them
(/work/shared/seed/tracking-users.txt), fed through cdp.track_batch and
cdp.identify, then scored against the truth the simulator kept.

Usage:
    tests/shared_devices_sim.py                 full run (~600 people, 30 days)
    tests/shared_devices_sim.py --smoke         ~80 people, 7 days (under a minute)
    tests/shared_devices_sim.py --markdown FILE also write the table to FILE
    tests/shared_devices_sim.py --keep          keep the database afterwards
    tests/shared_devices_sim.py --details       show where the wrong and the missed pairs are
Environment: CDP_SIM_SEED (default 20261130) picks the population and its
behaviour; the seed is printed. Connects to the cluster of
`scripts/cluster.sh env` (CDP_CLUSTER / CDP_PGPORT choose it), creates and
drops the database cdp_sim_shared. Python 3 standard library and psql only.

THE GENERATOR'S ASSUMPTIONS (a plausible small web shop in the US; nothing
here is tuned to any identity rule):

Population (one random stream per seed, the same for every variant)
  * PEOPLE people (600; smoke 80). Time zone New York 50%, Chicago 30%,
    Los Angeles 20% (a household shares one).
  * Own devices: 1 (45%), 2 (40%) or 3 (15%); each a browser with its own UID
    cookie and its own context.device_id (a phone, a laptop, a tablet...).
    The first device is used for about half the visits, the others share the
    rest.
  * About 15% of the people live in a household with a family computer
    shared with 1-3 other people (households of 2-4, sizes equally likely).
    Such a person does 20-70% (uniform) of their visits on it when it is
    free (nobody else is on it at that moment), the rest on their own devices.
    Everybody on the family computer sends the same device id and the same
    UID cookie, until somebody logs out (the SDK's resetAnonymousUId gives the
    browser a new UID) or the cookies are lost.
  * 70% have an account; a fifth of those sign up during the simulated month
    (on a uniformly chosen day), the rest had one before. The customer id is
    md5 of the normalized email, as cdp.customer_id_for_email computes it (the
    simulator computes it in Python and checks it against the function).
  * Emails at a handful of providers (gmail 40%, with dots in the local part
    for half of the gmail users); phones are US numbers. The portals read
    national phone numbers in the US (default_phone_region).

Visits (each person's own random stream; each family computer's and device's own)
  * Visits per day: Poisson with a per-person rate from a log-normal (median
    0.25 a day, sigma 0.9, capped at 3): a few heavy users, many occasional.
  * Start time: local hour from a daytime curve peaking at 12-13 h and
    19-22 h; minute and second uniform.
  * Pages per visit: 1 + geometric (mean 6, at most 40); the gap between two
    pages exponential (mean 45 s); 4% of gaps are an idle 31-120 min, after
    which the SDK starts a new session id. Every visit gets a new
    context.session_id. Pages: page views (60%), product views (25%), searches
    (10%), add to cart (5%).
  * Cookie loss (cleared cookies, a privacy setting, a reinstall): each own
    device 1.5% a day, the family computer 1% a day; a new UID, and the site's
    login on it is gone too. The device id stays.

Accounts, sign-in, logout
  * Somebody with an account, on a browser where the site is not signed in,
    signs in during the visit with a personal propensity of 40-90% (uniform),
    at a uniformly chosen page. 25% of sign-ins are reported by the site's
    backend (cdp.identify(uid, customer_id, {name, email}, 'exact', time)
    right at sign-in; the page then tracks a plain user/sign_in), the rest by
    the page: user/sign_in with dims.customers.customer_id, name, email and
    extra.identify_id / identify_time (the SDK's local form, in
    context.timezone) / identify_event / identify_type, as the seed shows.
    A sign-up is the same with user/sign_up, from the page.
  * 3% of the page's identifying events carry a broken id: half 'undefined'
    (the script ran before the email was known; no email sent), half md5('')
    (an empty email field; email ''). The site is still signed in.
  * Signed-in pages send user/identify (the seed's "On Identified") on the
    first visit of each day, for whoever is signed in on that browser.
  * 'Remember me' on 70% of sign-ins: the login lasts 30 days; otherwise it
    ends when the browser closes (the end of the visit), without a logout:
    the UID cookie stays.
  * Logout (user/logout, then the SDK rotates the UID) at the end of a signed-in
    visit: 3% on an own device, 35% on the family computer.
  * On the family computer, when somebody else is still signed in: a person
    with an account logs them out and signs in 60% of the time; otherwise
    (and always for people without an account) they just browse, signed in as
    the other person (their events go to that person's UID, as on any real
    family computer).
  * Lead forms (newsletter, contact, back-in-stock): on 6% of the visits of
    people without an account, 2% of those with one: lead/submit with
    dims.customers of email only (55%), phone only (15%) or both (30%), no
    customer id. The email as typed: as is (70%), first letter capitalized
    (20%), trailing space (5%), upper-case domain (5%); the phone in one of
    four US formats.

Delivery
  * The SDK's messages reach the collector 0-4 minutes late (exponential,
    mean 20 s), 3% of them 1-10 minutes late (a flaky mobile network), so the
    events of a day arrive shuffled within minutes; the collector forwards
    them in arrival order in cdp.track_batch calls of at most 200 items
    (generated SQL files of whole days, about 8,000 messages each, one psql
    per file; two portals are fed at a time).
  * 1% of the messages are retried by the SDK: the same message_id again,
    5-180 s later.
  * Backend identify calls arrive at their moment, between batches.

Truth: a side table message_id -> person, kept by the simulator (nothing in
the payloads tells the extension who the person is).

Scoring: every stored event's final unified profile is
cdp.root_of(profile_id) of its cdp.events row. Over pairs of events:
precision = TP / predicted pairs, recall = TP / true pairs, where
TP = sum C(n[profile, person], 2), predicted = sum C(n[profile], 2),
true = sum C(n[person], 2); "recall among account holders" is the recall
over the pairs of events of the people who had an account by the end.

Variants, in four portals of one database:
  (a) the population with family computers: sim_rules_off, sim_rules_on
  (b) the same generator without family computers (those visits happen on
      own devices): sim_noshared_rules_off, sim_noshared_rules_on
"rules off" sets the portal setting shared_device_detection to false, "on"
to true. While the extension has no such setting (configure_portal fails
with 22023 unknown setting) only the portals without the rules run, and a
note says so.

Assertions: the feed itself (every item accepted, every event stored once,
retries counted as duplicates, customer ids as the extension derives them);
and, when the setting exists: with the rules, precision on (a) not lower than
without them; on (b) precision 1.00 and recall unchanged (at three decimals).
With --expect-goals also the issue's goals: precision >= 0.98 on (a) and
recall on (a) not lower than without the rules.
"""
import argparse
import datetime
import hashlib
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from zoneinfo import ZoneInfo

from cluster_env import env_of_cluster

DB = "cdp_sim_shared"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SEED = 20261130
START = datetime.date(2026, 6, 1)  # a month without daylight-saving changes; in the past, so within clock_skew
BATCH_ITEMS = 200
CHUNK_ITEMS = 8000  # a chunk (one psql, one backend) ends at the first day boundary after this many items
WORKERS = 2
SETTING = "shared_device_detection"  # the portal setting that switches the shared-device rules

FULL = dict(people=600, days=30)
SMOKE = dict(people=80, days=7)

# Rates (see the docstring).
TIMEZONES = [("America/New_York", 0.5), ("America/Chicago", 0.3), ("America/Los_Angeles", 0.2)]
OWN_DEVICES = [(1, 0.45), (2, 0.40), (3, 0.15)]
SHARED_PEOPLE = 0.15
HOUSEHOLD_SIZES = (2, 3, 4)
SHARED_USE = (0.2, 0.7)
ACCOUNT = 0.70
SIGNUP_DURING = 0.20
RATE_MEDIAN, RATE_SIGMA, RATE_CAP = 0.25, 0.9, 3.0
PAGES_MEAN, PAGES_MAX = 6, 40
GAP_MEAN_S = 45
IDLE_GAP = 0.04
COOKIE_LOSS_OWN, COOKIE_LOSS_SHARED = 0.015, 0.01
SIGNIN_PROPENSITY = (0.4, 0.9)
BACKEND_SIGNIN = 0.25
JUNK_ID = 0.03
REMEMBER_ME, REMEMBER_DAYS = 0.70, 30
LOGOUT_OWN, LOGOUT_SHARED = 0.03, 0.35
SWITCH_USER = 0.60
LEAD_NO_ACCOUNT, LEAD_ACCOUNT = 0.06, 0.02
DELAY_MEAN_S, DELAY_CAP_S, LATE, LATE_S = 20, 240, 0.03, (60, 600)
RETRY, RETRY_S = 0.01, (5, 180)
# Local-hour weights, 0..23.
HOURS = [1, 0.5, 0.3, 0.2, 0.2, 0.4, 1, 2, 3, 4, 4, 5, 6, 6, 5, 4, 4, 5, 6, 8, 9, 8, 6, 3]
HOUR_W = [h / sum(HOURS) for h in HOURS]

FIRST = ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
         "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Chris", "Karen",
         "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Betty", "Mark", "Sandra", "Paul", "Ashley", "Steven",
         "Emily", "Andrew", "Donna", "Josh", "Michelle", "Kevin", "Carol", "Brian", "Amanda", "Nguyen", "Mai"]
LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
        "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
        "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Tran"]
PROVIDERS = [("gmail.com", 0.40), ("yahoo.com", 0.15), ("outlook.com", 0.12), ("hotmail.com", 0.08),
             ("icloud.com", 0.10), ("aol.com", 0.03), ("comcast.net", 0.05), ("example-corp.com", 0.07)]
AREA_CODES = ["212", "312", "415", "213", "617", "646", "773", "818", "305", "512", "206", "404", "713", "303"]
DEVICE_KINDS = {
    "phone": ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
              "Version/17.5 Mobile/15E148 Safari/604.1", "390x844"),
    "android": ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/126.0.0.0 Mobile Safari/537.36", "412x915"),
    "laptop": ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/126.0.0.0 Safari/537.36", "1440x900"),
    "windows": ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0", "1920x1080"),
    "tablet": ("Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
               "Version/17.5 Mobile/15E148 Safari/604.1", "820x1180"),
}
PAGES = [("pageview", "view", 0.60), ("product", "view", 0.25), ("search", "query", 0.10), ("product", "add_to_cart", 0.05)]
URLS = ["/", "/new", "/sale", "/women", "/men", "/kids", "/home", "/cart", "/help", "/stores"]
JUNK_MD5_EMPTY = hashlib.md5(b"").hexdigest()


def weighted(rng, pairs):
    x, acc = rng.random(), 0.0
    for value, w in pairs:
        acc += w
        if x < acc:
            return value
    return pairs[-1][0]


def poisson(rng, lam):
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def uuid_of(rng):
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:32]}"


def normalize_email(email):
    """cdp.normalize_email for the ASCII addresses the simulator makes."""
    local, _, domain = email.strip().lower().rpartition("@")
    if domain == "googlemail.com":
        domain = "gmail.com"
    if domain == "gmail.com":
        local = local.split("+", 1)[0].replace(".", "")
    return f"{local}@{domain}"


def customer_id_for_email(email):
    return hashlib.md5(normalize_email(email).encode()).hexdigest()


# ---------------------------------------------------------------- population

class Person:
    def __init__(self, pid):
        self.pid = pid


class Device:
    def __init__(self, did, kind, owner):
        self.did, self.kind, self.owner = did, kind, owner  # owner None: a family computer
        self.ua, self.screen = DEVICE_KINDS[kind]


def make_population(seed, people):
    rng = random.Random(f"{seed}/population")
    persons = []
    used_emails = set()
    for i in range(people):
        p = Person(f"p{i:04d}")
        p.first, p.last = rng.choice(FIRST), rng.choice(LAST)
        provider = weighted(rng, PROVIDERS)
        sep = rng.choice([".", "", "_"]) if provider != "gmail.com" else rng.choice([".", ""])
        while True:
            local = f"{p.first.lower()}{sep}{p.last.lower()}{rng.choice(['', str(rng.randint(1, 99)), str(rng.randint(1960, 2006))])}"
            email = f"{local}@{provider}"
            if normalize_email(email) not in used_emails:
                break
        used_emails.add(normalize_email(email))
        p.email, p.name = email, f"{p.first} {p.last}"
        p.phone_digits = f"{rng.choice(AREA_CODES)}{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(0, 9)}{rng.randint(0, 9999):04d}"
        p.tz = weighted(rng, TIMEZONES)
        p.rate = min(RATE_CAP, RATE_MEDIAN * math.exp(rng.gauss(0, RATE_SIGMA)))
        p.has_account = rng.random() < ACCOUNT
        p.signup_day = None
        p.signup_fraction = rng.random() if p.has_account and rng.random() < SIGNUP_DURING else None
        p.signin_propensity = rng.uniform(*SIGNIN_PROPENSITY)
        p.shared_use = rng.uniform(*SHARED_USE)
        p.ip_home = f"{rng.choice([24, 67, 73, 98, 174])}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(2, 254)}"
        p.ip_mobile = f"172.{rng.randint(32, 63)}.{rng.randint(0, 255)}.{rng.randint(2, 254)}"
        n_devices = weighted(rng, OWN_DEVICES)
        kinds = rng.sample(["phone", "android", "laptop", "windows", "tablet"], n_devices)
        p.devices = [Device(uuid_of(rng), k, p) for k in kinds]
        p.device_weights = [0.5] + [0.5 / (n_devices - 1)] * (n_devices - 1) if n_devices > 1 else [1.0]
        p.household = None
        persons.append(p)
    # Households around a family computer: about 15% of the people, in groups of 2-4.
    pool = rng.sample(persons, round(SHARED_PEOPLE * people))
    households = []
    while len(pool) >= 2:
        size = min(rng.choice(HOUSEHOLD_SIZES), len(pool))
        if len(pool) - size == 1:
            size += 1 if size < 4 else -1
        members, pool = pool[:size], pool[size:]
        computer = Device(uuid_of(rng), rng.choice(["windows", "laptop"]), None)
        tz, ip = members[0].tz, members[0].ip_home
        for m in members:
            m.household, m.tz, m.ip_home = computer, tz, ip
        computer.members, computer.tz = members, tz
        households.append(computer)
    return persons, households


# ---------------------------------------------------------------- simulation

class Sim:
    """One variant's simulated month: the messages in arrival order and the truth."""

    def __init__(self, seed, persons, households, days, shared):
        self.seed, self.persons, self.households, self.days, self.shared = seed, persons, households, days, shared
        variant = "shared" if shared else "noshared"
        self.ids = random.Random(f"{seed}/ids/{variant}")
        self.delivery = random.Random(f"{seed}/delivery/{variant}")
        self.truth = {}                   # message_id -> person id
        self.uid_people = defaultdict(set)
        self.event_uid = {}               # message_id -> uid
        self.messages = []                # (arrival, seq, kind, data)
        self.seq = 0
        self.stats = Counter()
        self.account_holders = set()
        self.state = {}                   # device id -> browser state
        self.prng = {p.pid: random.Random(f"{seed}/person/{p.pid}") for p in persons}
        for p in persons:
            if p.signup_fraction is not None:
                p.signup_day = min(days - 1, int(p.signup_fraction * days))
        devices = [d for p in persons for d in p.devices] + (households if shared else [])
        for d in devices:
            rng = random.Random(f"{seed}/device/{d.did}")
            st = dict(rng=rng, uid=uuid_of(self.ids), login=None, until=None, remember=False, identified_day=None, busy=None)
            # At the start, some browsers are still signed in from before (remember me).
            owners = [d.owner] if d.owner else d.members
            holders = [o for o in owners if o.has_account and o.signup_day is None]
            if holders and rng.random() < 0.5:
                st.update(login=rng.choice(holders), until=self.at(0, 0, d.owner.tz if d.owner else d.tz) + datetime.timedelta(days=rng.randint(1, REMEMBER_DAYS)), remember=True)
            self.state[d.did] = st
        self.devices = {d.did: d for d in devices}

    @staticmethod
    def at(day, seconds, tz):
        local = datetime.datetime.combine(START + datetime.timedelta(days=day), datetime.time(0), ZoneInfo(tz))
        return (local + datetime.timedelta(seconds=seconds)).astimezone(datetime.timezone.utc)

    def run(self):
        for day in range(self.days):
            for did, st in self.state.items():
                if st["rng"].random() < (COOKIE_LOSS_OWN if self.devices[did].owner else COOKIE_LOSS_SHARED):
                    self.rotate(st)
                    self.stats["cookie losses"] += 1
            visits = []
            for p in self.persons:
                rng = self.prng[p.pid]
                for _ in range(poisson(rng, p.rate)):
                    hour = weighted(rng, list(enumerate(HOUR_W)))
                    start = self.at(day, hour * 3600 + rng.randrange(3600), p.tz)
                    visits.append((start, p.pid, p))
            visits.sort(key=lambda v: (v[0], v[1]))
            for start, _, p in visits:
                self.visit(p, start, day)
        self.messages.sort(key=lambda m: (m[0], m[1]))
        for p in self.persons:
            if p.has_account and (p.signup_day is None or p.pid in self.account_holders):
                self.account_holders.add(p.pid)
        return self

    def rotate(self, st):
        st.update(uid=uuid_of(self.ids), login=None, until=None, remember=False, identified_day=None)

    def visit(self, p, start, day):
        rng = self.prng[p.pid]
        self.stats["visits"] += 1
        # Which browser: the family computer when free, else an own device.
        on_shared = rng.random() < p.shared_use
        own = rng.choices(p.devices, weights=p.device_weights)[0]
        dev = own
        if self.shared and p.household is not None and on_shared:
            st = self.state[p.household.did]
            if st["busy"] is None or st["busy"] <= start:
                dev = p.household
        st = self.state[dev.did]
        shared_dev = dev.owner is None
        if shared_dev:
            self.stats["visits on a family computer"] += 1
        if st["login"] is not None and st["until"] is not None and st["until"] <= start:
            st.update(login=None, until=None)
        account_now = p.has_account and (p.signup_day is None or p.pid in self.account_holders)
        signup_now = p.has_account and p.signup_day is not None and day >= p.signup_day and p.pid not in self.account_holders
        wants_signin = account_now and rng.random() < p.signin_propensity
        lead = rng.random() < (LEAD_ACCOUNT if account_now else LEAD_NO_ACCOUNT)
        n_pages = min(PAGES_MAX, 1 + self.geometric(rng, PAGES_MEAN - 1))
        signin_at = rng.randrange(n_pages)
        lead_at = rng.randrange(n_pages)
        ip = p.ip_home if dev.kind in ("laptop", "windows", "tablet") or shared_dev else p.ip_mobile
        ctx = dict(device_id=dev.did, user_agent=dev.ua, ip=ip, timezone=p.tz, locale="en-US", screen=dev.screen)
        session = uuid_of(self.ids)
        t = start
        first_page = True

        def send(category, action, dims=None, extra=None, url=None):
            nonlocal first_page
            context = dict(ctx, session_id=session, message_id=uuid_of(self.ids), page_url="https://shop.example.com" + (url or rng.choice(URLS)))
            if first_page:
                context["referrer"] = rng.choice(["https://www.google.com/", "https://www.facebook.com/", "", "https://mail.example.net/"])
                first_page = False
            payload = {"context": context}
            if dims:
                payload["dims"] = dims
            if extra:
                payload["extra"] = extra
            self.event(p, st["uid"], category, action, payload, t)

        def identifying(category, action, who, identify_event):
            cid, email = customer_id_for_email(who.email), who.email
            if rng.random() < JUNK_ID:
                if rng.random() < 0.5:
                    cid, email = "undefined", None
                else:
                    cid, email = JUNK_MD5_EMPTY, ""
                self.stats["identifying events with a junk id"] += 1
            customers = {"customer_id": cid, "name": who.name}
            if email is not None:
                customers["email"] = email
            local = t.astimezone(ZoneInfo(p.tz)).strftime("%Y-%m-%d %H:%M:%S")
            extra = {"identify_id": cid, "identify_time": local, "identify_event": identify_event, "identify_type": "exact"}
            send(category, action, {"customers": customers}, extra, url="/account")

        def sign_in():
            if rng.random() < BACKEND_SIGNIN:
                self.backend_identify(st["uid"], customer_id_for_email(p.email), {"name": p.name, "email": p.email}, t)
                send("user", "sign_in", url="/account")
                self.stats["sign-ins by the backend"] += 1
            else:
                identifying("user", "sign_in", p, "user_sign_in")
                self.stats["sign-ins by the page"] += 1
            remember = rng.random() < REMEMBER_ME
            st.update(login=p, remember=remember, identified_day=day,
                      until=t + datetime.timedelta(days=REMEMBER_DAYS) if remember else None)

        # Somebody else still signed in on the family computer.
        if st["login"] is not None and st["login"] is not p:
            if (account_now or signup_now) and rng.random() < SWITCH_USER:
                send("user", "logout", url="/account")
                self.rotate(st)
                self.stats["logouts"] += 1
                wants_signin = account_now
                signin_at = min(signin_at, 1)
            else:
                self.stats["visits signed in as somebody else"] += 1
        for i in range(n_pages):
            if i > 0:
                gap = rng.expovariate(1 / GAP_MEAN_S)
                if rng.random() < IDLE_GAP:
                    gap = rng.uniform(31 * 60, 120 * 60)
                    session = uuid_of(self.ids)
                    first_page = True
                t += datetime.timedelta(seconds=gap)
            if st["login"] is not None and st["identified_day"] != day:
                identifying("user", "identify", st["login"], "user_identify")
                st["identified_day"] = day
                t += datetime.timedelta(seconds=rng.uniform(0.2, 2))
            if i == signin_at and st["login"] is None:
                if signup_now:
                    identifying("user", "sign_up", p, "user_sign_up")
                    self.account_holders.add(p.pid)
                    self.stats["sign-ups"] += 1
                    remember = rng.random() < REMEMBER_ME
                    st.update(login=p, remember=remember, identified_day=day,
                              until=t + datetime.timedelta(days=REMEMBER_DAYS) if remember else None)
                    t += datetime.timedelta(seconds=rng.uniform(1, 5))
                elif wants_signin:
                    sign_in()
                    t += datetime.timedelta(seconds=rng.uniform(1, 5))
            if i == lead_at and lead:
                customers = {}
                kind = weighted(rng, [("email", 0.55), ("phone", 0.15), ("both", 0.30)])
                if kind in ("email", "both"):
                    customers["email"] = self.typed_email(rng, p.email)
                if kind in ("phone", "both"):
                    customers["phone"] = self.typed_phone(rng, p.phone_digits)
                if rng.random() < 0.5:
                    customers["name"] = p.first
                send("lead", "submit", {"customers": customers}, url="/newsletter")
                self.stats["lead forms"] += 1
                t += datetime.timedelta(seconds=rng.uniform(1, 5))
            category, action = weighted(rng, [((c, a), w) for c, a, w in PAGES])
            send(category, action)
        # The end of the visit: logout, or the browser closes.
        if st["login"] is p:
            if rng.random() < (LOGOUT_SHARED if shared_dev else LOGOUT_OWN):
                t += datetime.timedelta(seconds=rng.uniform(2, 30))
                send("user", "logout", url="/account")
                self.rotate(st)
                self.stats["logouts"] += 1
            elif not st["remember"]:
                st.update(login=None, until=None)
        st["busy"] = t + datetime.timedelta(minutes=2)

    @staticmethod
    def geometric(rng, mean):
        if mean <= 0:
            return 0
        q = mean / (mean + 1)
        return int(math.log(1 - rng.random()) / math.log(q))

    @staticmethod
    def typed_email(rng, email):
        local, _, domain = email.partition("@")
        style = weighted(rng, [("as is", 0.70), ("capital", 0.20), ("space", 0.05), ("domain", 0.05)])
        if style == "capital":
            return local[:1].upper() + local[1:] + "@" + domain
        if style == "space":
            return email + " "
        if style == "domain":
            return local + "@" + domain.upper()
        return email

    @staticmethod
    def typed_phone(rng, d):
        return rng.choice([f"({d[:3]}) {d[3:6]}-{d[6:]}", f"{d[:3]}-{d[3:6]}-{d[6:]}", f"+1 {d[:3]} {d[3:6]} {d[6:]}", d])

    def event(self, p, uid, category, action, payload, t):
        mid = payload["context"]["message_id"]
        self.truth[mid] = p.pid
        self.event_uid[mid] = uid
        self.uid_people[uid].add(p.pid)
        item = {"uid": uid, "category": category, "action": action, "payload": payload,
                "event_time": t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"}
        text = json.dumps(item, separators=(",", ":"))
        d = self.delivery
        delay = min(DELAY_CAP_S, d.expovariate(1 / DELAY_MEAN_S))
        if d.random() < LATE:
            delay += d.uniform(*LATE_S)
        arrival = t + datetime.timedelta(seconds=delay)
        self.push(arrival, "event", text)
        self.stats["events"] += 1
        if d.random() < RETRY:
            self.push(arrival + datetime.timedelta(seconds=d.uniform(*RETRY_S)), "event", text)
            self.stats["retries"] += 1

    def backend_identify(self, uid, cid, attributes, t):
        self.push(t, "identify", (uid, cid, json.dumps(attributes), t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"))

    def push(self, arrival, kind, data):
        self.seq += 1
        self.messages.append((arrival, self.seq, kind, data))


# ---------------------------------------------------------------- database


def psql(sql=None, db=DB, path=None, check=True):
    cmd = ["psql", "-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose", "-d", db]
    if path:
        cmd += ["-f", path]
    env = dict(os.environ, PGOPTIONS="-c client_min_messages=warning")
    out = subprocess.run(cmd, input=sql, capture_output=True, text=True, env=env)
    if check and out.returncode != 0:
        sys.exit(f"shared devices: psql failed:\n{(sql or path)[:400]}\n{out.stderr[-2000:]}")
    return out


def literal(s):
    return "'" + s.replace("'", "''") + "'"


def dollar(s):
    tag = "$cdpsim$"
    assert tag not in s
    return f"{tag}{s}{tag}"


def chunks_of(sim, portal, workdir):
    """The messages as SQL files of whole UTC days of arrival (about
    CHUNK_ITEMS messages each), batches of at most BATCH_ITEMS between the
    backend's identify calls."""
    files, lines, batch, day = [], [], [], None

    def flush_batch():
        if batch:
            lines.append(f"SELECT 'B', r->>'stored', r->>'duplicates', r->>'accepted', r->'rejected' FROM cdp.track_batch({dollar('[' + ','.join(batch) + ']')}::jsonb) r;")
            batch.clear()

    def flush_file():
        flush_batch()
        if lines:
            path = os.path.join(workdir, f"{portal}-{len(files):03d}.sql")
            with open(path, "w") as f:
                f.write(f"SET cdp.portal = {literal(portal)};\n" + "\n".join(lines) + "\n")
            files.append(path)
            lines.clear()

    items = 0
    for arrival, _, kind, data in sim.messages:
        if day is not None and arrival.date() != day and items >= CHUNK_ITEMS:
            flush_file()
            items = 0
        day = arrival.date()
        items += 1
        if kind == "event":
            batch.append(data)
            if len(batch) >= BATCH_ITEMS:
                flush_batch()
        else:
            flush_batch()
            uid, cid, attrs, at = data
            lines.append(f"SELECT 'I', cdp.identify({literal(uid)}, {literal(cid)}, {dollar(attrs)}::jsonb, 'exact', {literal(at)});")
    flush_file()
    return files


def feed(portal, files):
    """Runs a portal's chunks in order, one psql each; returns the counts."""
    counts = Counter()
    for path in files:
        out = psql(path=path)
        for line in out.stdout.splitlines():
            parts = line.split("|", 4)
            if parts[0] == "B":
                counts["stored"] += int(parts[1])
                counts["duplicates"] += int(parts[2])
                counts["accepted"] += int(parts[3])
                rejected = json.loads(parts[4])
                counts["rejected"] += len(rejected)
                if rejected and counts["rejected"] == len(rejected):
                    print(f"  {portal}: rejected items, first: {rejected[0]}")
                counts["batches"] += 1
            elif parts[0] == "I":
                counts["identifies"] += 1
    return counts


def measure(sim, portal, details=False):
    out = psql(f"SET cdp.portal = {literal(portal)};\n"
               f"SELECT message_id, cdp.root_of(profile_id) FROM cdp.events WHERE portal = {literal(portal)};").stdout
    rows = [line.split("|") for line in out.splitlines() if line]
    merges = psql(f"SELECT kind || coalesce(' ' || reason, ''), count(*) FROM cdp.merges WHERE portal = {literal(portal)} AND undone_at IS NULL GROUP BY 1 ORDER BY 1").stdout
    customers = psql(f"SELECT count(*) FROM cdp.customers WHERE portal = {literal(portal)}").stdout.strip()
    events = [(mid, int(root), sim.truth[mid]) for mid, root in rows]
    scores = score(events, sim.account_holders)
    single = [e for e in events if len(sim.uid_people[sim.event_uid[e[0]]]) == 1]
    scores["precision on single-person UIDs"] = score(single, sim.account_holders)["precision"]
    scores["merges"] = ", ".join(f"{k} {v}" for k, v in (line.split("|") for line in merges.splitlines() if line)) or "none"
    scores["customers"] = int(customers)
    scores["rows"] = len(rows)
    scores["unknown"] = len([1 for mid, _ in rows if mid not in sim.truth])
    if details:
        print_details(sim, portal, events)
    return scores


def print_details(sim, portal, events, top=6):
    """The profiles holding the most pairs of different people, and the
    people whose events are spread over the most profiles, with why."""
    def c2(n):
        return n * (n - 1) // 2
    cell = Counter((root, person) for _, root, person in events)
    by_profile = Counter(root for _, root, _ in events)
    people = {p.pid: p for p in sim.persons}
    uids_of = defaultdict(Counter)
    for mid, root, _ in events:
        uids_of[root][sim.event_uid[mid]] += 1

    def who(pid):
        p = people[pid]
        return f"{pid}{'+account' if pid in sim.account_holders else ''}{'+family' if p.household and sim.shared else ''}"
    false = {root: c2(n) - sum(c2(m) for (r, _), m in cell.items() if r == root) for root, n in by_profile.items()}
    # Where the wrong pairs are: between members of a household whose family
    # computer saw two or more account holders, one or none, or elsewhere.
    members = defaultdict(list)
    for (root, pid), m in cell.items():
        members[root].append((pid, m))
    kinds = Counter()
    for root, ms in members.items():
        for i, (a, na) in enumerate(ms):
            for b, nb in ms[i + 1:]:
                ha, hb = people[a].household, people[b].household
                if sim.shared and ha is not None and ha is hb:
                    holders = sum(1 for x in ha.members if x.pid in sim.account_holders)
                    kinds["family, 2+ account holders" if holders >= 2 else "family, 0-1 account holder"] += na * nb
                else:
                    kinds["not a family"] += na * nb
    if kinds:
        print(f"  {portal}: pairs of different people in one profile: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    worst = sorted((f, root) for root, f in false.items() if f)[-top:][::-1]
    if worst:
        print(f"  {portal}: profiles with the most pairs of different people:")
    for f, root in worst:
        why = psql(f"SELECT coalesce(string_agg(kind || ' ' || coalesce(reason, '') || ' ' || coalesce(evidence, '') || ' from ' || from_profile, '; ' ORDER BY merge_id), '-') "
                   f"FROM cdp.merges WHERE portal = {literal(portal)} AND into_profile = {root} AND undone_at IS NULL").stdout.strip()
        cid = psql(f"SELECT coalesce(customer_id, 'anonymous') FROM cdp.profiles WHERE portal = {literal(portal)} AND profile_id = {root}").stdout.strip()
        mix = ", ".join(f"{who(pid)}: {m}" for (r, pid), m in sorted(cell.items(), key=lambda x: -x[1]) if r == root)
        print(f"    profile {root} ({cid[:8]}), {f} false pairs; events of {mix}; {len(uids_of[root])} UIDs; merges: {why[:600]}")
    by_person = Counter(person for _, _, person in events)
    missed = sorted(((c2(n) - sum(c2(m) for (_, pid), m in cell.items() if pid == person), person)
                     for person, n in by_person.items()), reverse=True)[:top]
    if missed and missed[0][0]:
        print(f"  {portal}: people spread over the most profiles:")
    for f, person in missed:
        if f:
            spread = ", ".join(f"{r}: {m}" for (r, pid), m in sorted(cell.items(), key=lambda x: -x[1]) if pid == person)
            print(f"    {who(person)}, {f} missed pairs; events per profile {spread[:400]}")


def score(events, account_holders):
    def c2(n):
        return n * (n - 1) // 2
    cell = Counter((root, person) for _, root, person in events)
    by_profile = Counter(root for _, root, _ in events)
    by_person = Counter(person for _, _, person in events)
    tp = sum(c2(n) for n in cell.values())
    predicted = sum(c2(n) for n in by_profile.values())
    true = sum(c2(n) for n in by_person.values())
    tp_acc = sum(c2(n) for (_, person), n in cell.items() if person in account_holders)
    true_acc = sum(c2(n) for person, n in by_person.items() if person in account_holders)
    return dict(precision=tp / predicted if predicted else 1.0, recall=tp / true if true else 1.0,
                recall_accounts=tp_acc / true_acc if true_acc else 1.0, profiles=len(by_profile), events=len(events),
                people=len(by_person), tp=tp, predicted=predicted, true=true)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="a small population, 7 days")
    ap.add_argument("--markdown", metavar="FILE", help="also write the table to FILE")
    ap.add_argument("--keep", action="store_true", help="keep the database " + DB)
    ap.add_argument("--expect-goals", action="store_true", help="also assert the issue's goals on (a): precision >= 0.98, recall not lower")
    ap.add_argument("--details", action="store_true", help="print the profiles holding the most pairs of different people")
    args = ap.parse_args()
    size = SMOKE if args.smoke else FULL
    seed = int(os.environ.get("CDP_SIM_SEED", DEFAULT_SEED))
    t0 = time.time()
    print(f"shared devices: seed {seed} (CDP_SIM_SEED overrides), {size['people']} people, {size['days']} days"
          f"{' (smoke)' if args.smoke else ''}")
    env_of_cluster()

    persons, households = make_population(seed, size["people"])
    sims = {"a": Sim(seed, persons, households, size["days"], shared=True).run(),
            "b": Sim(seed, persons, households, size["days"], shared=False).run()}
    on_shared = sum(len(h.members) for h in households)
    with_account = sum(p.has_account for p in persons)
    print(f"population: {len(persons)} people ({with_account} with an account), {sum(len(p.devices) for p in persons)} own devices, "
          f"{len(households)} family computers used by {on_shared} people")
    for key, sim in sims.items():
        st = sim.stats
        shared_uid_events = sum(1 for mid in sim.truth if len(sim.uid_people[sim.event_uid[mid]]) > 1)
        print(f"({key}) {st['events']} events in {st['visits']} visits ({st['visits on a family computer']} on a family computer), "
              f"{st['sign-ins by the page']} sign-ins by the page, {st['sign-ins by the backend']} by the backend, {st['sign-ups']} sign-ups, "
              f"{st['identifying events with a junk id']} junk ids, {st['lead forms']} lead forms, {st['logouts']} logouts, "
              f"{st['cookie losses']} cookie losses, {st['retries']} retries, {st['visits signed in as somebody else']} visits signed in as "
              f"somebody else; {shared_uid_events} events ({shared_uid_events / max(1, st['events']):.1%}) on UIDs more than one person used")
    print(f"generated in {time.time() - t0:.1f} s")

    passed = failed = 0

    def check(ok, label):
        nonlocal passed, failed
        passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
        print(("ok " if ok else "FAILED ") + label)

    psql("SELECT 1", db="postgres")
    subprocess.run(["psql", "-X", "-q", "-d", "postgres", "-c", f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)", "-c", f"CREATE DATABASE {DB}"],
                   check=True, capture_output=True)
    psql("CREATE EXTENSION cdp_identity;")
    version = psql("SELECT cdp.version()->>'library'").stdout.strip()
    portals = {("a", "off"): "sim_rules_off", ("a", "on"): "sim_rules_on",
               ("b", "off"): "sim_noshared_rules_off", ("b", "on"): "sim_noshared_rules_on"}
    for portal in portals.values():
        psql(f"SELECT cdp.create_portal({literal(portal)}, '{{\"default_phone_region\": \"US\"}}');")
    probe = psql(f"SELECT cdp.configure_portal('sim_rules_off', '{{\"{SETTING}\": false}}');", check=False)
    if probe.returncode == 0:
        rules = True
        for (key, mode), portal in portals.items():
            value = "true" if mode == "on" else "false"
            psql(f"SELECT cdp.configure_portal({literal(portal)}, '{{\"{SETTING}\": {value}}}');")
    elif "22023" in probe.stderr and SETTING in probe.stderr:
        rules = False
        print(f"note: the shared-device rules are not available yet (configure_portal: unknown setting {SETTING}); "
              "running the variants without them only, their goals are not checked")
    else:
        sys.exit(f"shared devices: configure_portal failed unexpectedly:\n{probe.stderr}")
    runs = [k for k in portals if rules or k[1] == "off"]

    # Customer ids: the simulator's md5 of the normalized email is the extension's.
    emails = [p.email for p in persons]
    theirs = psql("SELECT cdp.customer_id_for_email(e) FROM unnest(ARRAY[" + ",".join(literal(e) for e in emails) + "]) WITH ORDINALITY AS t(e, i) ORDER BY i").stdout.split()
    check(theirs == [customer_id_for_email(e) for e in emails], "customer ids computed by the simulator equal cdp.customer_id_for_email")

    t1 = time.time()
    with tempfile.TemporaryDirectory(prefix="cdp_sim_") as workdir:
        files = {k: chunks_of(sims[k[0]], portals[k], workdir) for k in runs}
        with ThreadPoolExecutor(WORKERS) as pool:
            fed = dict(zip(runs, pool.map(lambda k: feed(portals[k], files[k]), runs)))
    t_feed = time.time() - t1
    print(f"fed in {t_feed:.1f} s ({sum(c['accepted'] for c in fed.values())} items, "
          f"{sum(c['identifies'] for c in fed.values())} backend identifies, {sum(c['batches'] for c in fed.values())} batches)")

    results = {}
    for k in runs:
        sim, c = sims[k[0]], fed[k]
        label = f"({k[0]}) rules {k[1]}"
        check(c["rejected"] == 0, f"{label}: every item accepted ({c['accepted']} items, {c['rejected']} rejected)")
        check(c["stored"] == len(sim.truth) and c["duplicates"] == sim.stats["retries"],
              f"{label}: every event stored once ({c['stored']} of {len(sim.truth)}), retries counted as duplicates "
              f"({c['duplicates']} of {sim.stats['retries']})")
        results[k] = r = measure(sim, portals[k], args.details)
        check(r["rows"] == len(sim.truth) and r["unknown"] == 0, f"{label}: cdp.events holds exactly the simulated events ({r['rows']} rows)")
        print(f"  {label}: {r['customers']} customers; merges: {r['merges']}; "
              f"precision on events of UIDs only one person used {r['precision on single-person UIDs']:.4f}")

    def row(k):
        r = results[k]
        population = (f"(a) {len(persons)} people, {on_shared} of them on {len(households)} family computers" if k[0] == "a"
                      else f"(b) the same {len(persons)} people, no family computer")
        return (f"| {population} | {'with' if k[1] == 'on' else 'without'} | {r['precision']:.3f} | {r['recall']:.3f} | "
                f"{r['recall_accounts']:.3f} | {r['profiles']:,} | {r['events']:,} |")

    table = [f"## Accuracy on shared computers (seed {seed})", "",
             "| population | rules | pairwise precision | recall | recall among account holders | profiles | events |",
             "|---|---|---|---|---|---|---|"] + [row(k) for k in runs]
    if not rules:
        table += ["", f"The shared-device rules are not available in this build ({version}): only the runs without them."]
    sim_a = sims["a"]
    on_shared_uids = sum(1 for mid in sim_a.truth if len(sim_a.uid_people[sim_a.event_uid[mid]]) > 1)
    table += ["", f"{size['days']} simulated days{' (smoke)' if args.smoke else ''}, {sim_a.stats['visits']:,} visits in (a), "
              f"{sim_a.stats['visits on a family computer']:,} of them on a family computer; {on_shared_uids / max(1, len(sim_a.truth)):.1%} "
              "of the events of (a) were sent on a UID cookie that more than one person used. Generator and its assumptions: "
              "`tests/shared_devices_sim.py`. Over pairs of events: precision = pairs in one profile that are one person / "
              "pairs in one profile; recall = pairs of one person in one profile / pairs of one person."]
    print()
    print("\n".join(table))
    print()
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("\n".join(table) + "\n")

    if rules:
        a_on, a_off, b_on, b_off = results[("a", "on")], results[("a", "off")], results[("b", "on")], results[("b", "off")]
        # What the rules guarantee: they never make the shared population worse on precision, and
        # change nothing where no computer is shared.
        check(round(a_on["precision"], 3) >= round(a_off["precision"], 3),
              f"(a) with the rules: precision {a_on['precision']:.3f} not lower than without ({a_off['precision']:.3f})")
        if args.expect_goals:  # the goals, not reached yet (see README, Shared computers)
            check(a_on["precision"] >= 0.98, f"goal: (a) with the rules: precision {a_on['precision']:.3f} >= 0.98")
            check(round(a_on["recall"], 3) >= round(a_off["recall"], 3),
                  f"goal: (a) with the rules: recall {a_on['recall']:.3f} not lower than without ({a_off['recall']:.3f})")
        check(round(b_on["precision"], 3) >= 1.0, f"(b) with the rules: precision {b_on['precision']:.3f} = 1.00")
        check(round(b_on["recall"], 3) == round(b_off["recall"], 3),
              f"(b) with the rules: recall {b_on['recall']:.3f} unchanged ({b_off['recall']:.3f} without)")
    if not args.keep:
        subprocess.run(["psql", "-X", "-q", "-d", "postgres", "-c", f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)"], capture_output=True)
    print(f"runtime {time.time() - t0:.0f} s")
    print(f"shared devices: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
