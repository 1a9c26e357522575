#!/usr/bin/env python3
"""Property/fuzz test of every public function of cdp_identity.

Generates CDP_FUZZ_CASES (default 10,000) adversarial calls from a fixed seed
(CDP_FUZZ_SEED, default 20261130) and throws them at track_event, track_batch,
identify, unmerge, forget_customer, forget_uid, export_customer, profile_of,
profile_at, explain, the other read functions, the portal functions and the
helpers: deep nesting, huge strings and keys, 200+ keys, 1e400 / -0 / 1.10 /
1e-400, zero-width, BOM, bidi, line separators, full-width letters, combining
marks, emoji, control characters, junk placeholders, wrong JSON types
everywhere, impossible, infinite, far and garbage times, NULL arguments,
unknown portals and roles without grants.

The property of every call: it succeeds, or it fails with a SQLSTATE the
README documents, never XX000 and never a crashed backend; a failed call
changed no row count of any table of the extension; track_batch's "stored" is
exactly the number of new cdp.events rows; a read changes nothing. Cases run
in chunks of 500, each chunk in two fresh portals of its own (so row counts
stay cheap and two sessions never count each other's rows); two psql sessions
run the chunks side by side, each case one statement that EXECUTEs the call in
a PL/pgSQL block catching the error and records its SQLSTATE and the row-count
deltas. A session that loses its connection is detected, the case is run once
more alone, and the chunk up to it is written as a plain replay script.

Usage: tests/fuzz.py (needs the cluster of scripts/cluster.sh; creates and
drops the database cdp_fuzz). Environment: CDP_FUZZ_SEED, CDP_FUZZ_CASES,
CDP_FUZZ_CHUNK (cases per chunk, default 500: a chunk builds its state from
empty portals), CDP_FUZZ_ONLY=17,42 (run only those cases, without the state the others
built), CDP_FUZZ_KEEP=1 (keep the database), CDP_FUZZ_VERBOSE=1 (SQLSTATEs per
function), CDP_FUZZ_DUMP=<file> (every result, one JSON line each); to test the test,
CDP_FUZZ_INJECT_CASE=<case> CDP_FUZZ_INJECT_SQL=<statement> replaces one case.
"""
import hashlib
import hmac
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from cluster_env import env_of_cluster

DB = "cdp_fuzz"
SEED = int(os.environ.get("CDP_FUZZ_SEED", "20261130"))
CASES = int(os.environ.get("CDP_FUZZ_CASES", "10000"))
ONLY = {int(x) for x in os.environ.get("CDP_FUZZ_ONLY", "").replace(" ", "").split(",") if x}
KEEP = os.environ.get("CDP_FUZZ_KEEP") == "1"
VERBOSE = os.environ.get("CDP_FUZZ_VERBOSE") == "1"
CHUNK = int(os.environ.get("CDP_FUZZ_CHUNK", "500"))
WORKERS = 2
ROLES = {"writer": "cdp_fuzz_writer", "reader": "cdp_fuzz_reader", "admin": "cdp_fuzz_admin", "nobody": "cdp_fuzz_nobody"}

# README "SQL API": the SQLSTATEs a call may fail with.
DOCUMENTED = {"22004", "22023", "22001", "22007", "22008", "54000", "42501", "55P03", "55000"}
# Functions that document more (README "Portals").
DOCUMENTED_BY_FUNCTION = {"create_portal": {"42710"}, "grant_portal": {"42704"}, "revoke_portal": {"42704"}}
# A literal PostgreSQL itself refuses before the function runs (only where the
# case built such a literal on purpose): malformed jsonb text, a number that
# overflows numeric, a time zone displacement PostgreSQL cannot represent.
LITERAL_STATES = {"json": {"22P02"}, "numeric": {"22003"}, "tzdisp": {"22009"}}
CRASH_MARKS = ("server closed the connection unexpectedly", "connection to server was lost",
               "terminating connection because of crash", "no connection to the server")


# ---------------------------------------------------------------------------
# JSON values built exactly as sent (numbers are raw tokens, objects keep
# their key order and may repeat keys).

class Num(str):
    """A raw JSON number token such as 1e400, -0 or 1.10."""


class Obj(list):
    """A JSON object as a list of (key, value) pairs."""

    def set(self, key, value):
        self.append((key, value))
        return self


def dump(v, ascii_=False):
    """JSON text of a value (strings escaped as JSON requires, optionally as \\u escapes)."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, Num):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=ascii_)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, Obj):
        return "{" + ", ".join(dump(k, ascii_) + ": " + dump(x, ascii_) for k, x in v) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(dump(x, ascii_) for x in v) + "]"
    raise TypeError(type(v))


def q(s):
    """A SQL string literal (standard_conforming_strings is on: only ' is special)."""
    assert "\x00" not in s
    return "'" + s.replace("'", "''") + "'"


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def sha256(s):
    return hashlib.sha256(s.encode()).hexdigest()


# ---------------------------------------------------------------------------
# Adversarial material.

ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u180e", "\u202e", "\u202a", "\u202d",
              "\u2066", "\u2067", "\u2069", "\u200e", "\u200f", "\u2028", "\u2029", "\u061c"]
CONTROL = [chr(c) for c in list(range(1, 32)) + [127] + list(range(0x80, 0xA0))]
SPACES = [" ", "\t", "\u00a0", "\u3000", "\u2003", "\u205f", "\u1680"]
COMBINING = ["\u0301", "\u0308", "\u0327", "\u20dd", "\u0489", "\u036f", "\u0338"]
EMOJI = ["😀", "👨‍👩‍👧‍👦", "🇻🇳", "🏳️‍🌈", "👍🏽", "𝔘𝔦𝔡", "𝟙𝟚𝟛", "🦀", "❤️", "\U0010fffd"]
EXPANDING = ["ﷺ", "ﬃ", "㍱", "ℌ", "Ⅻ", "ǅ", "ß", "İ", "ﬀ", "㌀", "…"]  # NFKC or lowercase makes them longer
WIDE = ["ＡＢＣ", "ｕｉｄ－１", "ｃ１２３", "１２３４５６７８９", "ｅｍａｉｌ＠ｅｘａｍｐｌｅ．ｃｏｍ", "ＵＮＤＥＦＩＮＥＤ", "ｎｕｌｌ"]
SCRIPTS = ["Nguyễn Văn A", "Ζεύς", "Москва", "東京都", "مرحبا", "שלום", "हिन्दी", "ไทย", "한국어", "ᚠᛇᚻ", "𐍈"]
JUNK = ["undefined", "null", "NULL", "Null", "[object Object]", '"null"', "'null'", '"undefined"', " \"None\" ", "None",
        "NaN", "nan", "nil", "0", "-1", "000", "0-0-0", "---", "true", "false", "anonymous", "guest", "unknown",
        "{{user_id}}", "${user_id}", "%user_id%", "(not set)", "n/a", "distinct_id", "not_authenticated", '""', "''",
        "``", "{}", "[]", "test", "email", md5(""), sha256(""), md5("undefined"), md5("null").upper(),
        sha256("[object Object]"), "`null`", "undefined ", "\tnull"]
SQLISH = ["'; DROP TABLE cdp.events; --", "$$", "$q$", "$fuzz$", "\\", "\\'", "%s", "%L", "%I", "\\x41", "E'\\n'",
          "' OR '1'='1", "--", "/*", ":var", ":'var'", "\\gset", "\\! echo pwned", "\"", "\\u0000", "\\\\u0041",
          "<script>alert(1)</script>", "../../etc/passwd", "%00", "${jndi:ldap://x}"]
NUMBERS = ["0", "-0", "1.10", "1e400", "-1e400", "1e-400", "-1e-400", "1E+2", "-0.0", "0e0", "0.000",
           "123456789012345678901234567890", "3.141592653589793238462643383279", "1764497709250", "-1",
           "2147483648", "9223372036854775807", "9223372036854775808", "-9223372036854775809", "1e18", "9.2e15",
           "8.64e15", "8640000000000001", "0.5", "1e-7", "1.5", "-62135596800000", "253402300799999", "1e308",
           "1.7976931348623157e309", "4.9e-325", "12", "42", "7", "1e100000"]
USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl/8.4.0", "", "Mozilla/5.0", "Mozilla/5.0 (", "Chrome/", "Version/ Safari/", "Firefox/99999999999999999999999",
    "Mozilla/5.0 (Windows NT 10.0) Edg/120.0 Chrome/120", "Opera/9.80 (J2ME/MIDP; Opera Mini/9.80)",
    "Mozilla/5.0 (iPad; CPU OS 12_0 like Mac OS X)", "(((((((((((", "Chrome/120.0.0.0" * 300,
]
TIMEZONES = ["UTC", "utc", "Asia/Ho_Chi_Minh", "America/New_York", "Europe/London", "Europe/Paris", "Australia/Lord_Howe",
             "Pacific/Chatham", "Asia/Kathmandu", "+07:00", "-0530", "+07", "+15:59", "-15:59", "+16:00", "+07:60",
             "+7", "+07:00:00", "Z", "GMT", "Etc/GMT+12", "Etc/GMT-14", "EST5EDT", "posixrules", "localtime",
             "Factory", "right/UTC", "Mars/Olympus", "../../etc/passwd", "/etc/localtime", "", " ", "Asia/", "Asia//Tokyo",
             "America/Argentina/ComodRivadavia", "US/Pacific-New", "ＵＴＣ", "UTC\u200b", "x" * 300, "Europe/../Paris",
             "\\UTC", "+٠٧:٠٠", "+0７:00"]
LOCALES = ["en-US", "vi_VN", "zh-Hant-TW", "", "x" * 300, "C", "de-DE-u-co-phonebk", "..", "🏳️‍🌈"]
IPS = ["1.2.3.4", "10.0.0.1", "255.255.255.255", "0.0.0.0", "::1", "2001:db8::1", "2001:db8:85a3::8a2e:370:7334",
       "999.1.1.1", "1.2.3", "1.2.3.4/24", "::ffff:1.2.3.4", "fe80::1%eth0", "not-an-ip", "", " 1.2.3.4 ",
       "1.2.3.4, 5.6.7.8", "١.٢.٣.٤", "0x7f.1", "2001:db8::1::2", "[::1]:80"]
SCREENS = ["1920x1080", "375x812", "0x0", "-1x-1", "99999999999x1", "x", "1920×1080", "1920x", "x1080", ""]
CONSTANT_DEVICES = ["web", "00000000-0000-0000-0000-000000000000", "9774d56d682e549c", "unknown", "WEB", " web ",
                    "ffffffff-ffff-ffff-ffff-ffffffffffff", "0000000000000000"]
PHONES = ["+1 (415) 555-0100", "020 7946 0958", "+44 20 7946 0958", "00441234567890", "+84 912 345 678", "0912345678",
          "+", "+0", "00", "+999 999999999", "+1" + "9" * 20, "١٢٣٤٥٦٧٨٩٠", "１２３４５６７８９０", "+44 (0) 20 7946 0958",
          "+1-800-FLOWERS", "tel:+14155550100", "+1 415 555 0100 ext. 123", "+14155550100;ext=12", "+800 1234 5678",
          "1111111", "1234567", "+7 495 123-45-67", "+86 10 1234 5678 9999", "((((((((((1234567))))))))))",
          "+1.415.555.0100", "+1\u00a0415\u00a0555\u00a00100", "+1\u200b4155550100", "+" + "1" * 300, "+881 1234 567",
          "+979 123456789", "+1 000 000 0000", "+00 1234567", "+1-" * 50, "0" * 15, "12345678901234567", "+376 12345",
          "+882 1234 567890", "+383 44 123 456", "+599 9 123 4567", "+247 1234", "+290 8123", "+1 242 3", "+80012345678"]
REGIONS = [None, "GB", "gb", " us ", "VN", "US", "DE", "XX", "", "ZZZ", "UK", "001", "AC", "TA", "EU", "Ｇ Ｂ", "x" * 300]
IDENTIFY_TYPES = ["exact", "predict", "EXACT", " exact", "Predict", "fuzzy", "", " ", "exact\u200b", "ｅｘａｃｔ"]
SETTING_KEYS = ["max_payload_bytes", "max_batch_items", "max_merges_per_identify", "device_linking", "predict_auto_merge",
                "predict_review", "predict_prior", "predict_weights", "identity_verification", "identity_secret",
                "contact_linking", "lock_timeout", "default_timezone", "default_phone_region", "constant_device_ids",
                "clock_skew", "max_batch_bytes"]
SECRETS = ["a secret of sixteen+", "x" * 16]
SIGNALS = ["device_id", "user_agent", "ip_network", "screen", "timezone", "locale", "recent"]


class Gen:
    """Everything one run generates, from one seeded random stream."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        # Small pools, so that within a chunk UIDs, customers, devices, emails and
        # message ids meet again: merges, shared browsers, retries, erasures of real things.
        self.uids = [f"u{n}" for n in range(80)]
        self.cids = [f"c{n}" for n in range(40)]
        self.emails = [f"p{n}@example.com" for n in range(30)] + ["Ann.B+shop@Gmail.com", "annb@gmail.com",
                                                                    "ana@bücher.de", "ANA@XN--BCHER-KVA.DE"]
        self.devices = [f"d{n}" for n in range(20)]
        self.messages = [f"m{n}" for n in range(200)]
        self.literal = set()  # kinds of literals PostgreSQL may refuse, for the case being built
        self.last_cid = "c0"

    # -- small choices ------------------------------------------------------
    def p(self, x):
        return self.rng.random() < x

    def pick(self, seq):
        return seq[self.rng.randrange(len(seq))]

    def soup(self, n):
        """Random characters from many planes (no surrogates, no NUL)."""
        ranges = [(0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF),
                  (0x900, 0x97F), (0x1100, 0x11FF), (0x2000, 0x206F), (0x20A0, 0x20CF), (0x2100, 0x214F),
                  (0x3000, 0x30FF), (0x4E00, 0x4E80), (0xFB00, 0xFB4F), (0xFDF0, 0xFDFF), (0xFE00, 0xFE0F),
                  (0xFF00, 0xFFEF), (0xFFF0, 0xFFFF), (0x1D400, 0x1D4FF), (0x1F300, 0x1F6FF), (0xE0000, 0xE007F),
                  (0x10FFF0, 0x10FFFF)]
        out = []
        for _ in range(n):
            lo, hi = self.pick(ranges)
            out.append(chr(self.rng.randint(lo, hi)))
        return "".join(out)

    def adversarial(self, base="x"):
        """A hostile variant of `base` or a hostile value of its own."""
        r = self.rng.randrange(26)
        if r == 0:
            return self.pick(JUNK)
        if r == 1:
            return self.pick(["", " ", "   ", "\t", "\u00a0", "\u3000", "\n", " \u200b "])
        if r == 2:
            i = self.rng.randint(0, len(base))
            return base[:i] + self.pick(CONTROL) + base[i:]
        if r == 3:
            i = self.rng.randint(0, len(base))
            return base[:i] + self.pick(ZERO_WIDTH) + base[i:]
        if r == 4:
            return self.pick(WIDE)
        if r == 5:
            return base + "".join(self.pick(COMBINING) for _ in range(self.rng.choice([1, 3, 60, 300])))
        if r == 6:
            return base + self.pick(EMOJI)
        if r == 7:
            return self.pick(EXPANDING) * self.rng.choice([1, 15, 52, 85, 86, 128, 255])
        if r == 8:
            return self.pick("uxé😀ﬃ") * self.rng.choice([254, 255, 256, 257])
        if r == 9:
            return "x" * self.rng.choice([1000, 4096, 10000])
        if r == 10:
            return self.soup(self.rng.randint(1, 40))
        if r == 11:
            return self.pick(SQLISH)
        if r == 12:
            return self.pick(NUMBERS)
        if r == 13:
            return self.pick(SPACES) + base + self.pick(SPACES)
        if r == 14:
            return base.upper()
        if r == 15:
            return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in base)  # full-width
        if r == 16:
            return self.pick(SCRIPTS)
        if r == 17:
            return self.pick(ZERO_WIDTH) * self.rng.randint(1, 5)
        if r == 18:
            return base + "\u2400"  # the visible symbol for NUL, never a NUL
        if r == 19:
            return self.pick(CONTROL) * self.rng.randint(1, 3)
        if r == 20:
            return "e\u0301" + base  # decomposed é: NFKC composes it
        if r == 21:
            return base + "\ufffd\uffff\ufffe"
        if r == 22:
            return self.pick(["\u2028", "\u2029", "\u0085", "\r\n"]).join([base, base])
        if r == 23:
            return self.pick(JUNK).upper() + self.pick(ZERO_WIDTH)
        if r == 24:
            return base * self.rng.randint(20, 60)
        return self.pick(EMOJI) * self.rng.randint(1, 70)

    def maybe(self, good, bad_rate=0.25, base=None):
        return self.adversarial(base if base is not None else good) if self.p(bad_rate) else good

    def uid(self, bad_rate=0.2):
        return self.maybe(self.pick(self.uids), bad_rate)

    def cid(self, bad_rate=0.2):
        if self.p(0.15):
            self.last_cid = md5(self.pick(self.emails).lower())
        else:
            self.last_cid = self.maybe(self.pick(self.cids), bad_rate)
        return self.last_cid

    def email(self):
        r = self.rng.random()
        if r < 0.7:
            return self.pick(self.emails)
        return self.pick(["@", "a@", "@b.com", "a@b", "a@@b.com", "a@xn--", "a@" + "x" * 300 + ".com", "a@-.com",
                          "a@\u200b.com", "a@ß.de", "a@٠١٢.com", "a@😀.com", "a@xn--zz.com", "a@.", "a@..", "a@a..b",
                          "x" * 250 + "@example.com", "A@B.C", " a@b.co ", "a b@c.de", "a\u2400@b.c",
                          "undefined@example.com", "null@gmail.com", "+tag@gmail.com", "...@gmail.com", "a@b.c\u202e",
                          "a@" + "é" * 70 + ".com", "a@" + ".".join(["x" * 63] * 5), "a@xn--" + "a" * 60 + ".com",
                          "\ufeffbom@example.com", "a@b.c@d.e", "a@[127.0.0.1]", "a@localhost", "ǅ@ǅ.ǅ", "a@ﬃ.com",
                          "a@" + "\u0301" * 10 + ".com", "\"q\"@example.com", "a@exa mple.com"])

    def phone(self):
        if self.p(0.3):
            return "".join(self.pick("0123456789 +-().") for _ in range(self.rng.randint(0, 25)))
        return self.pick(PHONES)

    # -- JSON values ----------------------------------------------------------
    def number(self):
        r = self.rng.random()
        if r < 0.5:
            return Num(self.pick(NUMBERS))
        if r < 0.8:
            return self.rng.randint(-10 ** 6, 10 ** 6)
        return Num(repr(self.rng.uniform(-1e6, 1e6)))

    def scalar(self):
        r = self.rng.randrange(6)
        if r == 0:
            return self.number()
        if r == 1:
            return self.maybe("v" + str(self.rng.randrange(100)), 0.5)
        if r == 2:
            return self.p(0.5)
        if r == 3:
            return None
        if r == 4:
            return self.pick(JUNK)
        return self.adversarial("val")

    def key(self):
        r = self.rng.random()
        if r < 0.6:
            return self.pick(["name", "age", "plan", "city", "vip", "score", "tags", "k" + str(self.rng.randrange(40))])
        if r < 0.7:
            return self.pick(["customer_id", "email", "phone", "identify_id", "uid", "__proto__", "constructor"])
        if r < 0.8:
            return self.pick(["", " ", "k" * 255, "k" * 256, "k" * 10000, "é" * 255, "😀" * 256])
        return self.adversarial("key")

    def value(self, depth=0):
        if depth > 4 or self.p(0.55):
            return self.scalar()
        if self.p(0.5):
            return [self.value(depth + 1) for _ in range(self.rng.randint(0, 4))]
        return Obj((self.key(), self.value(depth + 1)) for _ in range(self.rng.randint(0, 4)))

    def deep(self, levels):
        """`levels` nested containers (arrays and objects mixed)."""
        v = self.scalar()
        for _ in range(levels):
            v = [v] if self.p(0.5) else Obj([(self.pick(["a", "b", "dims", "context"]), v)])
        return v

    def deep_levels(self):
        return self.rng.choice([2, 30, 31, 32, 33, 40, 100, 200, self.rng.randint(1, 300)])

    def wrong_type(self, expected):
        """Any JSON value that is not of the expected kind."""
        choices = {"object": [[], [1, 2], "text", 0, Num("1e400"), True, None, [Obj()]],
                   "string": [Obj(), [], 12, Num("-0"), Num("1.10"), True, False, [""], Obj([("a", "b")])],
                   "array": [Obj(), "[]", 0, True, Obj([("0", 1)])]}[expected]
        return self.pick(choices)

    def many_keys(self):
        n = self.rng.choice([199, 200, 201, 250, 300])
        return Obj((f"k{i}", self.scalar() if self.p(0.3) else i) for i in range(n))

    def json_time(self):
        """A time as JSON sends it: text, epoch millis, or something else."""
        r = self.rng.random()
        if r < 0.35:
            y, mo, d = self.rng.randint(2020, 2026), self.rng.randint(1, 12), self.rng.randint(1, 28)
            if y == 2026 and mo > 10:
                mo = 10
            hh, mm, ss = self.rng.randint(0, 23), self.rng.randint(0, 59), self.rng.randint(0, 59)
            sep = self.pick(["T", " "])
            frac = self.pick(["", ".250", ".5", ".123456", ".1234567", ".9999995", ".000000001", "."])
            zone = self.pick(["Z", "z", "+07:00", "-0530", "+07", "", "", "+15:59", "+16:00", "-24:00", " UTC", "+7",
                              "+07:0", "Z ", "+07:00Z", "GMT"])
            return f"{y:04d}-{mo:02d}-{d:02d}{sep}{hh:02d}:{mm:02d}:{ss:02d}{frac}{zone}"
        if r < 0.55:
            return self.pick(["2026-11-30T10:15:09.250Z", "2026-11-30 17:15:09+07:00", "2026-03-08 02:30:00",
                              "2026-10-25 01:30:00", "2026-03-29 02:30:00", "2026-02-30 10:00:00", "2026-13-01T00:00:00Z",
                              "0000-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.9999999Z",
                              "1970-01-01T00:00:00Z", "1900-02-29T00:00:00Z", "2024-02-29T23:59:59.9999995",
                              "2025-12-31 23:59:59.9999995", "2026-11-30T24:00:00Z", "2026-11-30T23:60:00Z",
                              "2026-11-30T23:59:60Z", "infinity", "-infinity", "+Infinity", " infinity ", "now", "epoch",
                              "today", "yesterday", "tomorrow", "allballs", "", " ", "garbage", "2026", "2026-11-30",
                              "2026-11-30T10:15", "30/11/2026 10:15:09", "Mon, 30 Nov 2026 10:15:09 GMT",
                              "２０２６-１１-３０ １０:１５:０９", "2026-11-30Té5:09:00", "2026-11-30T10:15:09é",
                              "2026-11-30\u200bT10:15:09Z", "2099-01-01T00:00:00Z", "2026-11-30T10:15:09+99:99",
                              "2026-11-30T10:15:09-00:00", "2026-11-30T10:15:09.Z", "2026-11-30T10:15:09,250Z",
                              "-2026-11-30T10:15:09Z", "+2026-11-30T10:15:09Z", "12026-11-30T10:15:09Z",
                              "2026-11-30T10:15:09.250Z" + "0" * 10000, "2026-11-30 10:15:09 BC",
                              "2026-11-30T10:15:09+07:00[Asia/Ho_Chi_Minh]", "1e400"])
        if r < 0.75:
            return Num(self.pick(["1764497709250", "1700000000000", "0", "-0", "1e400", "-1e400", "1e-400", "1.5",
                                  "-1.5e-7", "8.64e15", "9.2e15", "9.3e15", "1e18", "-1e18", "-210866803200000",
                                  "-210866803200001", "-9223372036854775808", "9223372036854775807", "1.10",
                                  "1764497709250.9999", "17644977092500000", "4102444800000", "1e100000"]))
        if r < 0.9:
            return self.wrong_type("string")
        return self.adversarial("2026-11-30T10:15:09Z")

    # -- SDK payloads -----------------------------------------------------------
    def attributes(self, with_id=False):
        a = Obj()
        if with_id:
            r = self.rng.random()
            a.set("customer_id", self.cid() if r < 0.8 else self.number() if r < 0.88 else self.wrong_type("string"))
        if self.p(0.5):
            a.set("email", self.email() if self.p(0.9) else self.wrong_type("string"))
        if self.p(0.3):
            a.set("phone", self.phone() if self.p(0.9) else self.number())
        if self.p(0.3):
            a.set("name", self.maybe("Ann", 0.4))
        for _ in range(self.rng.choice([0, 0, 1, 2, 4])):
            a.set(self.key(), self.value())
        if self.p(0.04):
            a.extend(self.many_keys())
        if self.p(0.03):
            a.set("nested", self.deep(self.deep_levels()))
        return a

    def context(self):
        c = Obj()
        fields = {
            "device_id": lambda: self.pick(self.devices) if self.p(0.8) else self.pick(CONSTANT_DEVICES) if self.p(0.5) else self.adversarial("dev"),
            "session_id": lambda: self.maybe("s" + str(self.rng.randrange(50)), 0.2),
            "message_id": lambda: self.pick(self.messages) if self.p(0.85) else self.adversarial("msg"),
            "user_agent": lambda: self.pick(USER_AGENTS) if self.p(0.8) else self.adversarial("Mozilla/5.0"),
            "ip": lambda: self.pick(IPS),
            "page_url": lambda: self.maybe("https://shop.example/p/" + str(self.rng.randrange(9)), 0.3),
            "referrer": lambda: self.maybe("https://google.com/?q=x", 0.3),
            "page_title": lambda: self.maybe("Shop", 0.4),
            "timezone": lambda: self.pick(TIMEZONES),
            "locale": lambda: self.pick(LOCALES),
            "screen": lambda: self.pick(SCREENS),
        }
        for name, make in fields.items():
            if self.p(0.35):
                r = self.rng.random()
                c.set(name, make() if r < 0.9 else self.number() if r < 0.94 else None if r < 0.96 else self.wrong_type("string"))
        if self.p(0.1):
            c.set(self.key(), self.value())
        return c

    def extra(self, claim):
        e = Obj()
        if claim or self.p(0.2):
            e.set("identify_id", self.cid() if self.p(0.9) else self.wrong_type("string") if self.p(0.5) else self.number())
        if self.p(0.4):
            e.set("identify_type", self.pick(IDENTIFY_TYPES) if self.p(0.9) else self.wrong_type("string"))
        if self.p(0.4):
            e.set("identify_time", self.json_time())
        if self.p(0.15):
            e.set("identify_hash", self.pick(["0" * 64, "f" * 64, "z" * 64, "a" * 63, "é" * 32, "", "A" * 64, sha256("x")]))
        elif self.p(0.3):
            # The right hash under one of the secrets the portal may have (verified identity).
            valid = hmac.new(self.pick(SECRETS).encode(), self.last_cid.encode(), hashlib.sha256).hexdigest()
            e.set("identify_hash", valid.upper() if self.p(0.1) else " " + valid if self.p(0.05) else valid)
        if self.p(0.3):
            e.set("identify_event", self.pick(["user_sign_in", "user_sign_up", "", "x" * 300]))
        if self.p(0.1):
            e.set(self.key(), self.value())
        return e

    def payload(self):
        """A payload as the SDK sends it, mutated: a JSON value."""
        if self.p(0.04):
            return self.pick([[], [Obj()], "text", Num("1e400"), True, None, 0, [1, [2, [3]]]])
        p = Obj()
        if self.p(0.6):
            p.set("context", self.context() if self.p(0.94) else self.wrong_type("object"))
        claim = self.p(0.25)
        if claim or self.p(0.25):
            if self.p(0.94):
                dims = Obj()
                if claim or self.p(0.5):
                    dims.set("customers", self.attributes(with_id=claim) if self.p(0.94) else self.wrong_type("object"))
                if self.p(0.2):
                    dims.set("users", self.attributes() if self.p(0.9) else self.wrong_type("object"))
                if self.p(0.1):
                    dims.set("products", self.value())
                p.set("dims", dims)
            else:
                p.set("dims", self.wrong_type("object"))
        if self.p(0.35):
            p.set("extra", self.extra(claim and self.p(0.3)) if self.p(0.94) else self.wrong_type("object"))
        if self.p(0.15):
            p.set("items", [Obj([("sku", self.maybe("sku-1", 0.3)), ("price", self.number())]) for _ in range(self.rng.randint(0, 5))])
        if self.p(0.1):
            p.set(self.key(), self.value())
        if self.p(0.02):
            p.set(self.pick(["deep", "context", "dims"]), self.deep(self.deep_levels()))
        if self.p(0.01):
            p.extend(self.many_keys())
        if self.p(0.004):
            p.set("big", "x" * self.rng.choice([1_048_000, 1_100_000]))
        if self.p(0.05):
            p.set("blob", self.adversarial("x" * 2000))
        if self.p(0.02) and p:
            p.append(p[0])  # a repeated key: jsonb keeps the last one
        return p

    def jsonb_literal(self, value):
        """SQL text of a jsonb argument: a literal (sometimes malformed), NULL or a built value."""
        r = self.rng.random()
        if r < 0.03:
            return "NULL"
        if r < 0.05:
            return "NULL::jsonb"
        text = dump(value, ascii_=self.p(0.2))
        if self.p(0.015):
            self.literal.add("json")
            text = self.malformed(text)
        elif "1e100000" not in text and self.p(0.004):
            self.literal.add("numeric")
            text = "[1e131072]" if self.p(0.5) else text.replace("1e400", "1e999999") if "1e400" in text else "{\"n\": -1e200000}"
        return q(text) + self.pick(["::jsonb", "", "::jsonb"])

    def malformed(self, text):
        r = self.rng.randrange(10)
        if r == 0:
            return text[: max(0, len(text) - self.rng.randint(1, 5))] or "{"
        if r == 1:
            return text + ","
        if r == 2:
            return "{'uid': 'x'}"
        if r == 3:
            return "[NaN, Infinity, -Infinity]"
        if r == 4:
            return '{"a": "\\ud800"}'
        if r == 5:
            return '{"a": "\\u12"}'
        if r == 6:
            return '{"a": "line\nbreak"}'
        if r == 7:
            return "{uid: 1}"
        if r == 8:
            return "[1, 2,]"
        return "{" * 5000

    # -- SQL arguments -------------------------------------------------------
    def text_arg(self, value, null_rate=0.03):
        if self.p(null_rate):
            return self.pick(["NULL", "NULL::text"])
        return q(value)

    def ts_arg(self, null_rate=0.05):
        """SQL text of a timestamptz argument."""
        r = self.rng.random()
        if r < null_rate:
            return "NULL"
        if r < 0.35:
            return self.pick(["now()", "now() - interval '1 minute'", f"now() - interval '{self.rng.randint(1, 5000)} hours'",
                              f"now() - interval '{self.rng.randint(1, 400)} days'", "now() + interval '23 hours'",
                              "now() + interval '25 hours'", "now() + interval '100 years'", "clock_timestamp()",
                              "statement_timestamp()", "'-infinity'::timestamptz", "'infinity'::timestamptz",
                              "'epoch'::timestamptz", "to_timestamp(0)", "to_timestamp(1764497709.25)",
                              "'4713-11-24 00:00:00+00 BC'::timestamptz", "'294276-12-31 23:59:59+00'::timestamptz",
                              "now() - interval '2000 years'", "'2026-11-30 10:15:09.999999+00'::timestamptz"])
        if r < 0.75:
            y, mo, d = self.rng.randint(2019, 2026), self.rng.randint(1, 12), self.rng.randint(1, 28)
            if y == 2026 and mo > 10:
                mo = 10
            zone = self.pick(["+00", "+07", "-05:30", " UTC", " Asia/Ho_Chi_Minh", "", "Z", " America/New_York"])
            hh, mm, ss = self.rng.randint(0, 23), self.rng.randint(0, 59), self.rng.randint(0, 59)
            return q(f"{y:04d}-{mo:02d}-{d:02d} {hh:02d}:{mm:02d}:{ss:02d}{zone}") + self.pick(["", "::timestamptz"])
        self.literal.add("tzdisp")
        return q(self.pick(["garbage", "", "infinity", "-infinity", "now", "today", "yesterday", "allballs",
                            "2026-02-30 10:00", "2026-13-01", "294277-01-01", "4714-11-24 00:00:00+00 BC",
                            "2026-11-30 10:00 Mars/Olympus", "2026-11-30 10:00+25:00", "J2451187", "1e400",
                            "2026-11-30 25:00", "2026-11-30 10:00:60.5", "January 8, 99 BC", "2026-11-30\u200b10:00",
                            "2026-03-08 02:30 America/New_York", "epoch", "2026-11-30T10:15:09.9999995Z",
                            "２０２６-１１-３０", "x" * 300, "2026-11-30 10:00 +07:00:00:00"])) + "::timestamptz"

    def bigint_arg(self, subquery):
        r = self.rng.random()
        if r < 0.04:
            return "NULL"
        if r < 0.5:
            return subquery.format(k=self.pick([0, 0, 0, 0, 1, 1, 2, 3, 5, 10]))
        return str(self.pick([0, -1, 1, 2, 3, 9223372036854775807, -9223372036854775808, self.rng.randint(1, 20000),
                              self.rng.randint(1, 400), -self.rng.randint(1, 10 ** 12), 2 ** 31, 2 ** 32 + 1]))


# Subqueries that find rows of the session's portal (deterministic, given the state).
SUB_MERGE = ("(SELECT merge_id FROM cdp.merges WHERE portal = current_setting('cdp.portal') "
             "ORDER BY merge_id DESC OFFSET {k} LIMIT 1)")
SUB_PROFILE = ("(SELECT profile_id FROM cdp.profiles WHERE portal = current_setting('cdp.portal') "
               "ORDER BY profile_id DESC OFFSET {k} LIMIT 1)")
SUB_CUSTOMER = ("(SELECT profile_id FROM cdp.profiles WHERE portal = current_setting('cdp.portal') "
                "AND customer_id IS NOT NULL ORDER BY profile_id DESC OFFSET {k} LIMIT 1)")
SUB_SUGGESTION = ("(SELECT suggestion_id FROM cdp.match_suggestions WHERE portal = current_setting('cdp.portal') "
                  "ORDER BY suggestion_id DESC OFFSET {k} LIMIT 1)")
SUB_OPEN_SUGGESTION = ("(SELECT suggestion_id FROM cdp.match_suggestions WHERE portal = current_setting('cdp.portal') "
                       "AND status = 'open' ORDER BY suggestion_id DESC OFFSET {k} LIMIT 1)")
SUB_CID = ("(SELECT customer_id FROM cdp.profiles WHERE portal = current_setting('cdp.portal') "
           "AND customer_id IS NOT NULL ORDER BY profile_id DESC OFFSET {k} LIMIT 1)")
SUB_UID = ("(SELECT uid FROM cdp.uids WHERE portal = current_setting('cdp.portal') "
           "ORDER BY uid DESC OFFSET {k} LIMIT 1)")


# How often each function is called (relative weights).
WEIGHTS = {"track_event": 24, "track_batch": 12, "identify": 14, "identify_outcome": 3, "unmerge": 5, "forget_customer": 3,
           "forget_uid": 3, "profile_at": 4, "explain": 4, "export_customer": 3, "profile_of": 2, "profile": 2,
           "customer_profile": 2, "events_of": 1.5, "root_of": 1, "family_of": 1, "configure_portal": 4, "create_portal": 1,
           "grant_portal": 1, "revoke_portal": 1, "accept_suggestion": 1, "reject_suggestion": 1, "normalize_email": 2,
           "normalize_phone": 2, "customer_id_for_email": 1, "junk_reason": 1, "md5": 1, "sha256": 1, "identity_hash": 1,
           "changes_since": 1, "feed_page": 0.3, "prune_changes": 0.5, "unmerged_profiles_about": 0.5, "clear_shared": 1,
           "record_decision": 0.3, "record_suggestion_accepted": 0.3,
           "misc": 1}
# Functions that only read: a successful call changes no row count either.
READS = {"profile_at", "explain", "export_customer", "profile_of", "profile", "customer_profile", "events_of", "root_of",
         "family_of", "normalize_email", "normalize_phone", "customer_id_for_email", "junk_reason", "md5", "sha256",
         "identity_hash", "changes_since", "feed_page", "unmerged_profiles_about", "misc"}
# Functions of schema cdp the "misc" cases call.
MISC_FUNCTIONS = {"current_portal", "usable_portals", "version", "new_uid"}


class Case:
    __slots__ = ("i", "chunk", "fn", "sql", "portal", "role", "extra")

    def __init__(self, i, chunk, fn, sql, portal, role, extra):
        self.i, self.chunk, self.fn, self.sql, self.portal, self.role, self.extra = i, chunk, fn, sql, portal, role, extra

    @property
    def worker(self):
        return self.chunk % WORKERS

    def replay_sql(self):
        lines = [f"SET cdp.portal = {q(self.portal if self.portal is not None else portal_of(self.chunk))};"]
        if self.role:
            lines.append(f"SET ROLE {self.role};")
        lines.append(self.sql + ";")
        return "\n".join(lines)


def portal_of(chunk):
    """The portal of a chunk's cases (each chunk starts from empty portals of its own,
    so counting its rows stays cheap and two sessions never count each other's)."""
    return f"fz{chunk:04d}"


def build_case(g, i, chunk):
    """Case number i: a call of one public function with generated arguments."""
    g.literal = set()
    own, own_b = portal_of(chunk), portal_of(chunk) + ".b"
    fn = g.rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
    sql = BUILDERS[fn](g, chunk, own, own_b)
    portal = role = None
    if g.p(0.03):
        portal = g.pick([own_b, own_b, "nope", "", " ", own.upper(), own + " ", own + "\u200b", "x" * 300,
                         g.adversarial(own), own + ".missing"])
    if g.p(0.08):
        role = g.pick([ROLES["writer"], ROLES["writer"], ROLES["reader"], ROLES["nobody"], ROLES["admin"]])
    extra = set()
    for kind in g.literal:
        extra |= LITERAL_STATES[kind]
    return Case(i, chunk, fn, sql, portal, role, frozenset(extra))


def b_track_event(g, w, own, own_b):
    uid = g.text_arg(g.uid(0.12))
    cat = g.text_arg(g.maybe(g.pick(["pageview", "cart", "user", "form", "order"]), 0.08))
    act = g.text_arg(g.maybe(g.pick(["view", "add", "sign_in", "submit", "paid"]), 0.08))
    args = [uid, cat, act]
    shape = g.rng.random()
    if shape < 0.12:
        return f"SELECT cdp.track_event({', '.join(args)})"
    payload = g.jsonb_literal(g.payload())
    if shape < 0.35:
        return f"SELECT cdp.track_event({', '.join(args + [payload])})"
    if shape < 0.45:
        named = [f"uid => {uid}", f"category => {cat}", f"action => {act}", f"event_time => {g.ts_arg()}"]
        if g.p(0.7):
            named.append(f"payload => {payload}")
        g.rng.shuffle(named)
        return f"SELECT cdp.track_event({', '.join(named)})"
    return f"SELECT cdp.track_event({', '.join(args + [payload, g.ts_arg()])})"


def batch_item(g):
    r = g.rng.random()
    if r < 0.06:
        return g.pick([Num("1"), "event", None, [], [Obj([("uid", "u1")])], True, Num("1e400")])
    item = Obj()
    fields = [("uid", lambda: g.uid(0.12)), ("category", lambda: g.maybe("pageview", 0.06)),
              ("action", lambda: g.maybe("view", 0.06))]
    for name, make in fields:
        x = g.rng.random()
        if x < 0.9:
            item.set(name, make())
        elif x < 0.93:
            pass  # missing
        elif x < 0.96:
            item.set(name, g.number())  # numbers as uids
        else:
            item.set(name, g.wrong_type("string"))
    if g.p(0.7):
        item.set("payload", g.payload() if g.p(0.95) else g.wrong_type("object"))
    if g.p(0.5):
        item.set("event_time", g.json_time())
    if g.p(0.05):
        item.set(g.key(), g.value())
    if g.p(0.03):
        g.rng.shuffle(item)
    return item


def b_track_batch(g, w, own, own_b):
    r = g.rng.random()
    if r < 0.03:
        return "SELECT cdp.track_batch(NULL)::text"
    if r < 0.08:
        value = g.pick([Obj([("uid", "u1"), ("category", "a"), ("action", "b")]), "text", Num("0"), None, True, Obj()])
    elif r < 0.09:
        value = [Obj([("uid", g.uid(0)), ("category", "pageview"), ("action", "view")])] * g.rng.choice([10001, 1200])
    else:
        n = g.rng.choice([0, 1, 1, 2, 3, 5, 8, 13, 20, 30, g.rng.randint(1, 60)])
        value = [batch_item(g) for _ in range(n)]
        if g.p(0.02):
            value = [value]  # an array of arrays
    return f"SELECT cdp.track_batch({g.jsonb_literal(value)})::text"


def b_identify(g, w, own, own_b):
    uid = g.text_arg(g.uid(0.12))
    cid = g.text_arg(g.cid(0.12))
    if g.p(0.1):
        return f"SELECT cdp.identify({uid}, {cid})"
    attrs = g.attributes() if g.p(0.92) else g.wrong_type("object")
    attrs_sql = g.jsonb_literal(attrs)
    itype = g.text_arg(g.pick(IDENTIFY_TYPES[:2]) if g.p(0.8) else g.pick(IDENTIFY_TYPES), 0.05)
    if g.p(0.15):
        named = [f"uid => {uid}", f"customer_id => {cid}", f"identify_type => {itype}", f"identify_time => {g.ts_arg()}"]
        if g.p(0.7):
            named.append(f"attributes => {attrs_sql}")
        g.rng.shuffle(named)
        return f"SELECT cdp.identify({', '.join(named)})"
    if g.p(0.2):
        return f"SELECT cdp.identify({uid}, {cid}, {attrs_sql})"
    return f"SELECT cdp.identify({uid}, {cid}, {attrs_sql}, {itype}, {g.ts_arg()})"


def b_identify_outcome(g, w, own, own_b):
    return b_identify(g, w, own, own_b).replace("SELECT cdp.identify(", "SELECT cdp.identify_outcome(", 1) + "::text"


def b_unmerge(g, w, own, own_b):
    mid = g.bigint_arg(SUB_MERGE)
    r = g.rng.random()
    if r < 0.3:
        return f"SELECT cdp.unmerge({mid})::text"
    casc = g.pick(["true", "false", "NULL"])
    if r < 0.4:
        return f"SELECT cdp.unmerge(merge_id => {mid}, cascade => {casc})::text"
    return f"SELECT cdp.unmerge({mid}, {casc})::text"


def b_clear_shared(g, w, own, own_b):
    kind = g.pick(["device_id", "device_id", "uid", "uid", "DEVICE_ID", "email", "", g.adversarial("uid")])
    value = g.pick(g.devices) if kind.startswith("d") and g.p(0.8) else g.uid(0.3)
    if g.p(0.15):
        value = g.pick(CONSTANT_DEVICES)
    return f"SELECT cdp.clear_shared({g.text_arg(kind, 0.05)}, {g.text_arg(value, 0.05)})"


def b_forget_customer(g, w, own, own_b):
    arg = SUB_CID.format(k=g.rng.randint(0, 8)) if g.p(0.3) else g.text_arg(g.cid(0.3), 0.05)
    return f"SELECT cdp.forget_customer({arg})::text"


def b_forget_uid(g, w, own, own_b):
    arg = SUB_UID.format(k=g.rng.randint(0, 30)) if g.p(0.2) else g.text_arg(g.uid(0.3), 0.05)
    return f"SELECT cdp.forget_uid({arg})::text"


def b_profile_at(g, w, own, own_b):
    return f"SELECT cdp.profile_at({g.text_arg(g.uid(0.3), 0.05)}, {g.ts_arg(0.08)})"


def b_explain(g, w, own, own_b):
    return f"SELECT cdp.explain({g.bigint_arg(g.pick([SUB_PROFILE, SUB_CUSTOMER]))})::text"


def b_export_customer(g, w, own, own_b):
    arg = SUB_CID.format(k=g.rng.randint(0, 8)) if g.p(0.3) else g.text_arg(g.cid(0.3), 0.05)
    return f"SELECT md5(cdp.export_customer({arg})::text)"


def b_profile_of(g, w, own, own_b):
    return f"SELECT cdp.profile_of({g.text_arg(g.uid(0.3), 0.05)})"


def b_profile(g, w, own, own_b):
    return f"SELECT cdp.profile({g.bigint_arg(g.pick([SUB_PROFILE, SUB_CUSTOMER]))})::text"


def b_customer_profile(g, w, own, own_b):
    return f"SELECT cdp.customer_profile({g.text_arg(g.cid(0.3), 0.05)})::text"


def b_events_of(g, w, own, own_b):
    args = [g.bigint_arg(SUB_CUSTOMER)]
    if g.p(0.5):
        args += [g.pick(["NULL", "0", "-1", "9223372036854775807", str(g.rng.randint(1, 30000)),
                         "(SELECT max(event_id) FROM cdp.events WHERE portal = current_setting('cdp.portal'))"]),
                 g.pick(["NULL", "0", "1", "5", "-1", "2147483647", "-2147483648"]),
                 g.pick(["true", "false", "NULL"])]
    return f"SELECT count(*) || ' ' || coalesce(md5(string_agg(e::text, ',')), '') FROM cdp.events_of({', '.join(args)}) e"


def cursor_arg(g):
    return g.pick(["0", "0", "-1", "NULL", "1", str(g.rng.randint(1, 10 ** 7)), "9223372036854775807", "-9223372036854775808",
                   "(SELECT max(cursor) FROM cdp.changes_since(0, 100000))", "pg_current_xact_id()::text::bigint",
                   "txid_current()", "(SELECT min(cursor) FROM cdp.changes_since(0, 3))"])


def rows_arg(g):
    return g.pick(["1", "10", "1000", "100000", "100001", "0", "-1", "NULL", "2147483647"])


def b_changes_since(g, w, own, own_b):
    r = g.rng.random()
    args = "" if r < 0.1 else cursor_arg(g) if r < 0.3 else f"{cursor_arg(g)}, {rows_arg(g)}"
    return f"SELECT count(*) || ' ' || coalesce(max(c.cursor)::text, '') FROM cdp.changes_since({args}) c"


def b_feed_page(g, w, own, own_b):
    return f"SELECT count(*) FROM cdp.feed_page({cursor_arg(g)}, {rows_arg(g)})"


def b_prune_changes(g, w, own, own_b):
    return f"SELECT cdp.prune_changes({cursor_arg(g)})"


def b_record_decision(g, w, own, own_b):
    # internal (granted to nobody): the change feed row of a decision
    portal = g.pick([own, own, own_b, "nope", g.adversarial(own)])
    return f"SELECT cdp.record_decision({g.text_arg(portal, 0.05)}, {g.bigint_arg(SUB_MERGE)}, {g.pick(['true', 'false', 'NULL'])})::text"


def b_record_suggestion_accepted(g, w, own, own_b):
    portal = g.pick([own, own, own_b, "nope", g.adversarial(own)])
    return f"SELECT cdp.record_suggestion_accepted({g.text_arg(portal, 0.05)}, {g.bigint_arg(SUB_SUGGESTION)})::text"


def b_unmerged_profiles_about(g, w, own, own_b):
    portal = g.pick([own, own, own_b, "nope", "", portal_of(0), g.adversarial(own)])
    return f"SELECT string_agg(x::text, ',') FROM cdp.unmerged_profiles_about({g.text_arg(portal, 0.05)}, {g.bigint_arg(SUB_CUSTOMER)}) x"


def b_customer_id_for_email(g, w, own, own_b):
    v = g.email() if g.p(0.7) else g.adversarial(g.email())
    return f"SELECT cdp.customer_id_for_email({g.text_arg(v)})"


def b_root_of(g, w, own, own_b):
    return f"SELECT cdp.root_of({g.bigint_arg(SUB_PROFILE)})"


def b_family_of(g, w, own, own_b):
    return f"SELECT string_agg(f::text, ',') FROM cdp.family_of({g.bigint_arg(SUB_CUSTOMER)}) f"


def settings_value(g, key):
    weights_good = Obj([(s, [Num(str(round(g.rng.uniform(0.5, 0.99), 3))), Num(str(round(g.rng.uniform(0.001, 0.2), 3)))])
                        for s in SIGNALS if g.p(0.6)])
    values = {
        "max_payload_bytes": [1023, 1024, 2048, 65536, 1048576, 0, -1, 2147483647, 2147483648, "1MB", Num("1.5"), Num("1e400"), True],
        "max_batch_items": [0, 1, 2, 5, 10000, 1000000, 1000001, -5, "ten", Num("2.5"), Num("1e1")],
        "max_merges_per_identify": [0, 1, 2, 50, 100000, 100001, Num("-0")],
        "device_linking": [True, False, "on", 1, "false"],
        "predict_auto_merge": [Num("0.95"), Num("0.5"), 1, 0, Num("1.0000001"), "x", Num("1e-400"), Num("0.99"), Num("0.1")],
        "predict_review": [Num("0.6"), Num("0.96"), Num("0.0001"), 1, Num("-0"), "0.6", Num("0.999999999999999999999")],
        "predict_prior": [Num("0.01"), Num("0.5"), Num("1e-300"), 0, 1, Num("0.999")],
        "predict_weights": [weights_good, weights_good, Obj(), Obj([("user_agent", [1, 0])]), Obj([("x", [0.5, 0.5])]),
                            [Num("0.9"), Num("0.1")], "w", Obj([("device_id", [Num("0.5")])]),
                            Obj([("ip_network", [Num("1e400"), Num("0.1")])]), Obj([("recent", [0, 0])]),
                            Obj([("screen", ["a", "b"])]), Obj([("locale", [Num("0.5"), Num("0.5")])]),
                            Obj([("timezone", [Num("0.9"), Num("1e-400")])]), g.deep(g.deep_levels()),
                            Obj([("user_agent", [Num("0.9"), Num("0.02"), Num("0.1")])])],
        "identity_verification": ["off", "required", "REQUIRED", "", 1],
        "identity_secret": ["x" * 15, SECRETS[0], SECRETS[0], SECRETS[1], "é" * 16, "😀" * 8, "s" * 10000, "", 123,
                            " " * 16, g.adversarial("a secret of sixteen+")],
        "contact_linking": ["merge", "suggest", "off", "Merge", []],
        "lock_timeout": [0, 1, 100, 5000, 600000, 600001, -1],
        "default_timezone": TIMEZONES,
        "default_phone_region": [r for r in REGIONS if r is not None] + [1],
        "constant_device_ids": [["kiosk-7"], [], ["x" * 256], ["a"] * 1001, [1], "kiosk", [g.adversarial("dev")],
                                ["d1", "d2"], [None]],
        "clock_skew": [0, 1, 86400, 2147483647, 2147483648, -1, 3600],
        "max_batch_bytes": [1023, 1024, 4096, 1000000, "1kB"],
    }[key]
    return g.pick(values)


def settings_object(g):
    if g.p(0.05):
        return g.wrong_type("object")
    s = Obj()
    if g.p(0.35):  # back to the server defaults, sometimes with one new value
        for k in SETTING_KEYS:
            s.set(k, None)
        if g.p(0.3):
            k = g.pick(SETTING_KEYS)
            s.set(k, settings_value(g, k))
        return s
    for _ in range(g.rng.choice([0, 1, 1, 2, 3])):
        k = g.pick(SETTING_KEYS) if g.p(0.9) else g.pick(["max_payloadbytes", "", "cdp.portal", "MAX_BATCH_ITEMS", g.key()])
        s.set(k, settings_value(g, k) if k in SETTING_KEYS else g.scalar())
    return s


def b_configure_portal(g, w, own, own_b):
    portal = g.pick([own] * 6 + [own_b, own_b, own + ".missing", "", "default ", "x" * 300, own.upper(), g.adversarial(own)])
    if g.p(0.03):
        return f"SELECT cdp.configure_portal(NULL, {g.jsonb_literal(settings_object(g))})::text"
    return f"SELECT cdp.configure_portal({q(portal)}, {g.jsonb_literal(settings_object(g))})::text"


def b_create_portal(g, w, own, own_b):
    r = g.rng.random()
    if r < 0.5:
        name = own + "." + "".join(g.pick("abcxyz019._:-") for _ in range(g.rng.randint(0, 60)))
    elif r < 0.6:
        name = g.pick([own, own_b])  # exists: 42710
    else:
        name = g.pick([own + " x", own + "/x", own + "é", "", " ", own + "." + "x" * 64, own + "\u200b", own + "\n",
                       "zz portal", "ünï", "a" * 64, own + "😀"])
    settings = "" if g.p(0.3) else ", " + g.jsonb_literal(settings_object(g))
    return f"SELECT cdp.create_portal({g.text_arg(name, 0.03)}{settings})::text"


def grant_args(g, own, own_b):
    role = g.pick(list(ROLES.values()) + ["cdp_writer", "cdp_reader", "cdp_admin", "no_such_role_x", "", "PUBLIC",
                                          "public", "postgres", '"cdp_writer"', "CDP_WRITER", g.adversarial("role")])
    portal = g.pick([own, own, own_b, own + ".missing", "", g.adversarial(own)])
    return g.text_arg(role, 0.04), g.text_arg(portal, 0.04)


def b_grant_portal(g, w, own, own_b):
    role, portal = grant_args(g, own, own_b)
    return f"SELECT cdp.grant_portal({role}, {portal})"


def b_revoke_portal(g, w, own, own_b):
    role, portal = grant_args(g, own, own_b)
    return f"SELECT cdp.revoke_portal({role}, {portal})"


def b_accept_suggestion(g, w, own, own_b):
    return f"SELECT cdp.accept_suggestion({g.bigint_arg(g.pick([SUB_SUGGESTION, SUB_OPEN_SUGGESTION]))})::text"


def b_reject_suggestion(g, w, own, own_b):
    return f"SELECT cdp.reject_suggestion({g.bigint_arg(g.pick([SUB_SUGGESTION, SUB_OPEN_SUGGESTION]))})::text"


def b_normalize_email(g, w, own, own_b):
    v = g.email() if g.p(0.7) else g.adversarial(g.email())
    return f"SELECT cdp.normalize_email({g.text_arg(v)})"


def b_normalize_phone(g, w, own, own_b):
    v = g.phone() if g.p(0.8) else g.adversarial(g.phone())
    region = g.pick(REGIONS)
    if region is None and g.p(0.5):
        return f"SELECT cdp.normalize_phone({g.text_arg(v)})"
    return f"SELECT cdp.normalize_phone({g.text_arg(v)}, {g.text_arg(region) if region is not None else 'NULL'})"


def b_junk_reason(g, w, own, own_b):
    return f"SELECT cdp.junk_reason({g.text_arg(g.pick(JUNK) if g.p(0.5) else g.adversarial(g.pick(JUNK)))})"


def b_md5(g, w, own, own_b):
    return f"SELECT cdp.md5({g.text_arg(g.adversarial('ann@example.com'))})"


def b_sha256(g, w, own, own_b):
    return f"SELECT cdp.sha256({g.text_arg(g.adversarial('ann@example.com'))})"


def b_identity_hash(g, w, own, own_b):
    return f"SELECT cdp.identity_hash({g.text_arg(g.cid(0.3))})"


def b_misc(g, w, own, own_b):
    return g.pick(["SELECT cdp.current_portal()", "SELECT string_agg(p, ',' ORDER BY p) FROM cdp.usable_portals() p",
                   "SELECT cdp.version()::text", "SELECT length(cdp.new_uid())",
                   "SELECT count(*) FROM cdp.customers", "SELECT count(*) FROM cdp.anonymous_profiles",
                   "SELECT count(*) FROM cdp.portals"])


BUILDERS = {name[2:]: fn for name, fn in globals().items() if name.startswith("b_")}


# ---------------------------------------------------------------------------
# The database side.

SETUP_SQL = r"""
CREATE EXTENSION cdp_identity;
CREATE SCHEMA fuzz;
-- Row counts of every table of the extension (found in the catalog, as
-- t.row_counts does), of the rows of one chunk's portals: the portal named
-- `prefix` and those named `prefix.<anything>` (so two sessions fuzzing side
-- by side never count each other's writes, and a count reads few rows,
-- by index: every key of the extension leads with the portal).
DO $do$
DECLARE
    parts text[] := '{}';
    tbl record;
BEGIN
    FOR tbl IN SELECT c.oid::regclass AS rel, c.relname,
                      EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'portal' AND NOT a.attisdropped) AS by_portal
               FROM pg_class c WHERE c.relnamespace = 'cdp'::regnamespace AND c.relkind IN ('r', 'p') ORDER BY c.relname LOOP
        parts := parts || format('%L, (SELECT count(*) FROM %s%s)', tbl.relname, tbl.rel,
                                 CASE WHEN tbl.by_portal THEN ' WHERE portal = ANY (ports)' ELSE '' END);
    END LOOP;
    EXECUTE format('CREATE FUNCTION fuzz.counts(prefix text) RETURNS jsonb LANGUAGE plpgsql VOLATILE AS %L',
                   'DECLARE ports text[] := ARRAY(SELECT portal FROM cdp.portal_settings WHERE portal = prefix '
                   'OR left(portal, length(prefix) + 1) = prefix || ''.''); '
                   'BEGIN RETURN jsonb_build_object(' || array_to_string(parts, ', ') || '); END');
END
$do$;

CREATE FUNCTION fuzz.begin(prefix text) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
    PERFORM set_config('fuzz.prefix', prefix, false);
    PERFORM set_config('fuzz.counts', fuzz.counts(prefix)::text, false);
END
$f$;

-- One case: run the statement (in the portal and role given, if any),
-- catch any error, and answer one line: SQLSTATE, message, row-count deltas.
CREATE FUNCTION fuzz.run(id int, fn text, stmt text, portal text, role text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
    prefix text := current_setting('fuzz.prefix');
    before jsonb := current_setting('fuzz.counts')::jsonb;
    after jsonb;
    delta jsonb;
    state text;
    msg text;
    result text;
    started timestamptz := clock_timestamp();
    ms numeric;
BEGIN
    BEGIN
        IF portal IS NOT NULL THEN
            PERFORM set_config('cdp.portal', portal, true);
        END IF;
        IF role IS NOT NULL THEN
            PERFORM set_config('role', role, true);
        END IF;
        EXECUTE stmt INTO result;
        IF role IS NOT NULL THEN
            PERFORM set_config('role', 'none', true);
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    END;
    ms := round(extract(epoch FROM clock_timestamp() - started)::numeric * 1000, 1);
    after := fuzz.counts(prefix);
    PERFORM set_config('fuzz.counts', after::text, false);
    SELECT jsonb_object_agg(k, (after->>k)::bigint - coalesce((before->>k)::bigint, 0)) INTO delta
    FROM jsonb_object_keys(after) k WHERE after->k IS DISTINCT FROM before->k;
    RETURN jsonb_build_object('i', id, 's', state, 'm', left(msg, 300), 'd', delta, 'ms', ms, 'r', left(result, 120),
                              'stored', CASE WHEN fn = 'track_batch' AND state IS NULL THEN result::jsonb->'stored' END)::text;
END
$f$;
"""


def psql(sql, db=DB, check=True, timeout=600):
    out = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db], input=sql, capture_output=True,
                         text=True, env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning"), timeout=timeout)
    if check and out.returncode != 0:
        sys.exit(f"fuzz: psql failed: {out.stderr.strip()}")
    return out


def setup(chunks):
    roles = "".join(f"DROP ROLE IF EXISTS {r};" for r in ROLES.values())
    psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE);\n{roles}\nCREATE DATABASE {DB};", db="postgres")
    psql(SETUP_SQL)
    lines = [f"CREATE ROLE {ROLES['writer']} NOLOGIN IN ROLE cdp_writer;",
             f"CREATE ROLE {ROLES['reader']} NOLOGIN IN ROLE cdp_reader;",
             f"CREATE ROLE {ROLES['admin']} NOLOGIN IN ROLE cdp_admin;",
             f"CREATE ROLE {ROLES['nobody']} NOLOGIN;"]
    for chunk in chunks:
        for portal, settings in chunk_portals(chunk):
            lines.append(f"SELECT cdp.create_portal({q(portal)}, {q(json.dumps(settings))});")
            lines += [f"SELECT cdp.grant_portal({q(ROLES[r])}, {q(portal)});" for r in ("writer", "reader")]
    psql("\n".join(lines))


def teardown():
    if KEEP:
        print(f"fuzz: database {DB} kept")
        return
    roles = "".join(f"DROP ROLE IF EXISTS {r};" for r in ROLES.values())
    psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE);\n{roles}", db="postgres", check=False)


def server_log():
    """The postmaster's log file, if this machine can read it (scripts/cluster.sh writes it beside the data directory)."""
    out = psql("SELECT current_setting('data_directory') || '|' || coalesce(pg_current_logfile(), '')", db="postgres", check=False)
    data, _, current = out.stdout.strip().partition("|")
    candidates = [os.path.join(data, current)] if current else []
    candidates.append(os.path.join(os.path.dirname(data), "server.log"))
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.R_OK):
            return path
    return None


def wait_for_server(limit=90):
    deadline = time.time() + limit
    while time.time() < deadline:
        if subprocess.run(["psql", "-X", "-q", "-d", DB, "-c", "SELECT 1"], capture_output=True).returncode == 0:
            return True
        time.sleep(0.5)
    return False


def chunk_portals(chunk):
    """A chunk's two portals and their settings at the start: the chunks take turns
    with the defaults, suggestions and tight predict thresholds, verified identity
    with zones and phone regions, and low limits (configure_portal cases change them)."""
    own = portal_of(chunk)
    settings = [{},
                {"contact_linking": "suggest", "predict_review": 0.3, "predict_auto_merge": 0.99, "max_merges_per_identify": 3},
                {"identity_verification": "required", "identity_secret": SECRETS[0], "default_timezone": "Asia/Ho_Chi_Minh",
                 "default_phone_region": "GB"},
                {"device_linking": False, "contact_linking": "off", "clock_skew": 3600, "max_batch_items": 25,
                 "max_payload_bytes": 4096, "constant_device_ids": ["d1", "d2"]}][chunk % 4]
    return [(own, settings), (own + ".b", {"contact_linking": "suggest", "identity_secret": SECRETS[1]})]


def chunk_script(cases):
    """The psql script of cases (of one chunk or of several in a row): for each
    chunk its portal and a fresh row-count baseline, then one statement per case."""
    lines = ["SET client_min_messages = warning;", "SET standard_conforming_strings = on;", "SET statement_timeout = '120s';"]
    chunk = None
    for c in cases:
        if c.chunk != chunk:
            chunk, own = c.chunk, portal_of(c.chunk)
            lines += [f"-- chunk {chunk}", f"SET cdp.portal = {q(own)};", f"SELECT 'pid ' || pg_backend_pid() FROM fuzz.begin({q(own)});"]
        lines.append(f"SELECT fuzz.run({c.i}, {q(c.fn)}, {q(c.sql)}, {q(c.portal) if c.portal is not None else 'NULL'}, "
                     f"{q(c.role) if c.role else 'NULL'});")
    return "\n".join(lines) + "\n"


def replay_script(cases):
    """A plain psql script that replays cases against a database of their own (no
    wrapper: each case is one transaction), to bisect a crash by hand."""
    lines = [f"-- cdp_identity fuzz replay: seed {SEED}, cases {cases[0].i}..{cases[-1].i}",
             f"-- psql -X -v ON_ERROR_STOP=0 -d <a scratch database> -f <this file>",
             "SET client_min_messages = warning;", "SET standard_conforming_strings = on;",
             "CREATE EXTENSION IF NOT EXISTS cdp_identity;"]
    for r in ROLES.values():
        lines.append(f"DO $$ BEGIN CREATE ROLE {r} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;")
    lines += [f"GRANT cdp_writer TO {ROLES['writer']};", f"GRANT cdp_reader TO {ROLES['reader']};", f"GRANT cdp_admin TO {ROLES['admin']};"]
    for chunk in sorted({c.chunk for c in cases}):
        for portal, settings in chunk_portals(chunk):
            lines.append(f"SELECT cdp.create_portal({q(portal)}, {q(json.dumps(settings))}) "
                         f"WHERE NOT EXISTS (SELECT FROM cdp.portal_settings WHERE portal = {q(portal)});")
            lines += [f"SELECT cdp.grant_portal({q(ROLES[r])}, {q(portal)});" for r in ("writer", "reader")]
    for c in cases:
        lines += [f"-- case {c.i} ({c.fn})", "BEGIN;",
                  f"SET LOCAL cdp.portal = {q(c.portal if c.portal is not None else portal_of(c.chunk))};"]
        if c.role:
            lines.append(f"SET LOCAL ROLE {c.role};")
        lines += [c.sql + ";", "COMMIT;"]
    path = os.path.join(tempfile.gettempdir(), f"cdp_fuzz_{SEED}_replay_{cases[-1].i}.sql")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def run_session(cases):
    """Runs cases in one psql session. Returns ({case: result}, returncode, stderr, backend pids)."""
    script = chunk_script(cases)
    limit = 600 + len(cases) // 2
    try:
        out = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=0", "-d", DB], input=script,
                             capture_output=True, text=True, timeout=limit)
        stdout, stderr, code = out.stdout, out.stderr, out.returncode
    except subprocess.TimeoutExpired as e:
        decode = lambda b: b.decode(errors="replace") if isinstance(b, bytes) else (b or "")
        stdout, stderr, code = decode(e.stdout), decode(e.stderr) + f"\nERROR: the session timed out after {limit} s", -1
    results, pids = {}, set()
    for line in stdout.split("\n"):
        if line.startswith("{"):
            r = json.loads(line)
            results[r["i"]] = r
        elif line.startswith("pid "):
            pids.add(int(line[4:]))
    return results, code, stderr, pids


class Runner:
    """Runs one worker's cases (its chunks, in order) in one psql session; when
    the session loses its connection, pins the case down and goes on after it."""

    def __init__(self, log_path, log_start):
        self.results = {}
        self.crashes = []  # (case, how, stderr, replay file)
        self.unanswered = []  # (case, stderr)
        self.pids = set()  # backends of our sessions (to read their crashes in the server log)
        self.log_path, self.log_start = log_path, log_start
        self.lock = threading.Lock()
        self.crash_lock = threading.Lock()

    def died_by_signal(self, pids):
        """Whether the server log says one of these backends died (None: no log to read)."""
        if not self.log_path:
            return None
        return bool(crashes_in_log(self.log_path, self.log_start, pids))

    def run_worker(self, cases):
        pending = cases
        while pending:
            results, code, stderr, pids = run_session(pending)
            with self.lock:
                self.results.update(results)
                self.pids |= pids
            missing = [c for c in pending if c.i not in results]
            if not missing:
                return
            lost = code == 2 or any(m in stderr for m in CRASH_MARKS)
            if not lost:
                with self.lock:
                    self.unanswered += [(c, stderr) for c in missing]
                return
            suspect = missing[0]
            with self.crash_lock:
                wait_for_server()
                ours = self.died_by_signal(pids)
                if ours is None:
                    ours = "crash of another server process" not in stderr
                # Once more, alone in a fresh session: a crash again pins the case down.
                again, _, stderr2, pids2 = run_session([suspect])
                with self.lock:
                    self.pids |= pids2
                if suspect.i not in again:
                    how, ours, stderr = "the backend died while it ran, and again when run alone", True, stderr2 or stderr
                    wait_for_server()
                else:
                    with self.lock:
                        self.results.update(again)
                    how = "the backend died while it ran (not again when run alone, after the chunk's earlier cases)"
                if ours:
                    # The chunk's cases up to this one, as a plain script to bisect with.
                    chunk_cases = [c for c in cases if c.chunk == suspect.chunk and c.i <= suspect.i]
                    self.crashes.append((suspect, how, stderr, replay_script(chunk_cases)))
                # else: another session's backend crashed and took this one with it; that one reports it.
            pending = missing[1:]


def crashes_in_log(path, start, pids):
    """Lines of the server log (from byte `start`) that report one of our backends dying."""
    if not path:
        return []
    with open(path, "rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
    found = []
    for line in text.split("\n"):
        if "terminated by signal" in line or "was terminated by exception" in line or "PANIC:" in line:
            if any(f"PID {pid})" in line or f"[{pid}]" in line for pid in pids):
                found.append(line.strip())
    return found


class Report:
    """The checks, each one "ok <label>" or "FAILED <label>" with the cases that broke it."""

    def __init__(self):
        self.passed = self.failed = 0

    def line(self, ok, label, details=()):
        if ok:
            self.passed += 1
            print(f"ok {label}")
        else:
            self.failed += 1
            print(f"FAILED {label}")
            for d in details:
                print("    " + d)

    def cases(self, bad, label):
        """A check over cases: `bad` lists (case, what went wrong)."""
        self.line(not bad, label if not bad else f"{label}: {len(bad)} case(s)")
        for case, what in bad[:15]:
            print(f"    case {case.i} ({case.fn}, chunk {case.chunk}): {what}")
            text = case.replay_sql()
            if len(text) <= 4000:
                print("      " + text.replace("\n", "\n      "))
            else:
                path = os.path.join(tempfile.gettempdir(), f"cdp_fuzz_{SEED}_case_{case.i}.sql")
                with open(path, "w") as f:
                    f.write(text + "\n")
                print(f"      ({len(text)} characters, the exact SQL is in {path}) " + text[:300].replace("\n", " ") + " ...")
        if len(bad) > 15:
            print(f"    ... and {len(bad) - 15} more")


def first_error(stderr):
    lines = stderr.strip().splitlines()
    return next((x for x in lines if "ERROR" in x or "FATAL" in x), " | ".join(lines[-2:]))[:400]


def evaluate(cases, runner, installed, skipped, log_crashes, log_path):
    report = Report()
    by_id = {c.i: c for c in cases}
    answered = [(by_id[i], r) for i, r in sorted(runner.results.items())]
    xx000, undocumented, wrote, read_wrote, batch_bad, track_bad = [], [], [], [], [], []
    for c, r in answered:
        st, delta = r.get("s"), r.get("d") or {}
        if st == "XX000":
            xx000.append((c, f"XX000: {r.get('m')}"))
        elif st is not None and st not in DOCUMENTED | DOCUMENTED_BY_FUNCTION.get(c.fn, set()) | c.extra:
            undocumented.append((c, f"{st}: {r.get('m')}"))
        if st is not None and any(delta.values()):
            wrote.append((c, f"failed with {st} ({r.get('m')}) but changed row counts {delta}"))
        if st is None and c.fn in READS and any(delta.values()):
            read_wrote.append((c, f"a read changed row counts {delta}"))
        if c.fn == "track_batch" and st is None and r.get("stored") != delta.get("events", 0):
            batch_bad.append((c, f"reported stored {r.get('stored')}, {delta.get('events', 0)} new cdp.events rows"))
        if c.fn == "track_event" and st is None:
            new_events = delta.get("events", 0)
            if new_events not in (0, 1) or (r.get("r") is None and new_events != 0):
                track_bad.append((c, f"answered {r.get('r')} and added {new_events} cdp.events rows"))

    report.cases(xx000, f"no call raised XX000 ({len(answered)} calls)")
    report.cases(undocumented, "every error has a documented SQLSTATE")
    report.cases(wrote, "failed calls wrote nothing (row counts of every extension table unchanged)")
    report.cases(read_wrote, "read functions wrote nothing either")
    n_batches = sum(1 for c, r in answered if c.fn == "track_batch" and r.get("s") is None)
    report.cases(batch_bad, f"track_batch: new cdp.events rows equal the reported \"stored\" ({n_batches} batches)")
    report.cases(track_bad, "track_event: at most one new event, none when it answers NULL")
    report.cases([(c, f"{how}: {' | '.join(err.strip().splitlines()[-3:])}; the chunk up to this case, to bisect: {path}")
                  for c, how, err, path in runner.crashes], "no backend crashed (no session lost its connection)")
    if log_path:
        report.line(not log_crashes, f"the server log shows no crashed backend of ours ({log_path})", log_crashes[:10])
    else:
        report.line(True, "the server log shows no crashed backend (log not readable here; lost connections are checked above)")
    report.cases([(c, "no answer: " + first_error(err)) for c, err in runner.unanswered],
                 f"every case answered ({len(answered)} of {len(cases)})")

    # The run exercised what it was meant to: every function called, the main
    # ones both succeeding and failing (generation never drifts into input
    # that is only ever rejected), and no function of the extension unknown here.
    stats = {}
    for c, r in answered:
        stats.setdefault(c.fn, [0, 0])[0 if r.get("s") is None else 1] += 1
    if len(cases) >= 5000 and not ONLY:
        main_fns = ["track_event", "track_batch", "identify", "unmerge", "forget_customer", "forget_uid", "profile_at",
                    "explain", "export_customer", "configure_portal"]
        thin = [f for f in BUILDERS if f not in stats and f not in skipped]
        thin += [f for f in main_fns if f in stats and 0 in stats[f]]
        label = "coverage: every function called, " + ", ".join(f"{f} {stats[f][0]} ok/{stats[f][1]} failed" for f in main_fns[:3] if f in stats)
        report.line(not thin, label if not thin else f"{label}: not exercised both ways: {', '.join(thin)}")
    unknown = sorted(installed - set(BUILDERS) - MISC_FUNCTIONS)
    report.line(not unknown, f"every function of schema cdp is fuzzed ({len(installed)} functions)" if not unknown
                else f"every function of schema cdp is fuzzed: tests/fuzz.py does not know {', '.join(unknown)}")

    hist = {}
    for c, r in answered:
        hist[r.get("s") or "ok"] = hist.get(r.get("s") or "ok", 0) + 1
    print("sqlstates: " + ", ".join(f"{k} {v}" for k, v in sorted(hist.items(), key=lambda kv: (-kv[1], kv[0]))))
    if VERBOSE:
        per_fn = {}
        for c, r in answered:
            h = per_fn.setdefault(c.fn, {})
            h[r.get("s") or "ok"] = h.get(r.get("s") or "ok", 0) + 1
        for fn, h in sorted(per_fn.items()):
            print(f"  {fn}: " + ", ".join(f"{k} {v}" for k, v in sorted(h.items(), key=lambda kv: -kv[1])))
    slow = sorted(answered, key=lambda cr: -(cr[1].get("ms") or 0))[:3]
    print("slowest calls: " + ", ".join(f"case {c.i} {c.fn} {r.get('ms')} ms" for c, r in slow))
    if os.environ.get("CDP_FUZZ_DUMP"):
        with open(os.environ["CDP_FUZZ_DUMP"], "w") as f:
            for c, r in answered:
                f.write(json.dumps(dict(r, fn=c.fn, sql=c.sql[:2000], portal=c.portal, role=c.role), ensure_ascii=False) + "\n")
    return report


def main():
    env_of_cluster()
    t0 = time.time()
    print(f"fuzz: seed {SEED}, {CASES} cases" + (f" (only {sorted(ONLY)})" if ONLY else ""))
    g = Gen(SEED)
    cases = [build_case(g, i, i // CHUNK) for i in range(CASES)]
    if os.environ.get("CDP_FUZZ_INJECT_CASE"):
        # Testing the test: case N runs the given statement instead (an XX000, a
        # crash via COPY TO PROGRAM 'kill -SEGV <backend pid>', ...).
        c = cases[int(os.environ["CDP_FUZZ_INJECT_CASE"])]
        c.sql, c.portal, c.role = os.environ["CDP_FUZZ_INJECT_SQL"], None, None
    if ONLY:
        cases = [c for c in cases if c.i in ONLY]
    setup(sorted({c.chunk for c in cases}))
    # The functions this build has (the extension grows: a function the build
    # lacks is skipped, one this file does not know fails a check).
    installed = set(psql("SELECT DISTINCT proname FROM pg_proc WHERE pronamespace = 'cdp'::regnamespace "
                         "AND prorettype <> 'trigger'::regtype").stdout.split())
    skipped = sorted({c.fn for c in cases if c.fn != "misc" and c.fn not in installed})
    cases = [c for c in cases if c.fn == "misc" or c.fn in installed]
    if skipped:
        print(f"fuzz: not in this build, skipped: {', '.join(skipped)}")
    log_path = server_log()
    log_start = os.path.getsize(log_path) if log_path else 0

    runner = Runner(log_path, log_start)
    with ThreadPoolExecutor(WORKERS) as pool:
        for f in [pool.submit(runner.run_worker, [c for c in cases if c.worker == w]) for w in range(WORKERS)]:
            f.result()
    elapsed = time.time() - t0

    report = evaluate(cases, runner, installed, skipped, crashes_in_log(log_path, log_start, runner.pids), log_path)
    if report.failed:
        print(f"replay: CDP_FUZZ_SEED={SEED} CDP_FUZZ_CASES={CASES} python3 tests/fuzz.py "
              f"(one case alone: CDP_FUZZ_ONLY=<case>, without the state the earlier cases of its chunk built)")
    teardown()
    print(f"fuzz: {len(cases)} cases in {elapsed:.0f} s")
    print(f"fuzz: {report.passed} passed, {report.failed} failed")
    sys.exit(1 if report.failed else 0)


if __name__ == "__main__":
    main()
