#!/usr/bin/python3
"""Seeded random hostile input for the cost, tokens and rate types.

Thousands of cases, each one round trip through psycopg 3:
- text input of the three types, from a grammar of near-valid literals and
  from random garbage, compared with a reference model of the text forms
  (SPEC section 2): what is accepted, its value, and whether a refusal is
  22P02 (malformed) or 22003 (out of range);
- binary receive, through binary bind parameters, binary COPY and arrays,
  of random, truncated and boundary bytes, compared with the binary layout:
  accepted exactly when valid, refused with 22P03 otherwise;
- jsonb::tokens over provider usage objects (SPEC section 6, and the samples
  in ../shared/data when present): clean objects normalise exactly as the
  SPEC says, mutated ones are refused with 22P02/22003 or give consistent
  counts.
The server must never crash or raise XX000, and the session stays usable.
Prints TAP; the seed is printed and can be set with FUZZ_SEED.  Connects
through the libpq environment; writes nothing but temporary tables.
"""
import json
import os
import random
import struct
import sys
import time
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path

import psycopg
from psycopg import pq

INT64_MAX = 2**63 - 1
INT64_MIN = -2**63
NANOS = 10**9

results = []


def check(ok, description, failures=()):
    results.append(bool(ok))
    print(f"{'ok' if ok else 'not ok'} {len(results)} - {description}")
    for f in list(failures)[:8]:
        f = f if len(f) <= 400 else f[:300] + f"... ({len(f)} characters)"
        print("#   " + f.replace("\n", "\\n"))
    sys.stdout.flush()


# ---------------------------------------------------------------------------
# the server side

class Server:
    """One session; every case is one statement with one parameter."""

    def __init__(self):
        self.conn = psycopg.connect("", autocommit=True)
        self.conn.execute("CREATE EXTENSION IF NOT EXISTS tokenledger")
        self.conn.execute("SET tokenledger.currency = 'USD'")
        self.conn.execute("SET statement_timeout = '10s'")
        self.oids = {}
        for t in ("cost", "tokens", "rate"):
            oid, arr = self.conn.execute(
                "SELECT oid, typarray FROM pg_type WHERE oid = %s::regtype",
                (f"tokenledger.{t}",)).fetchone()
            self.oids[t] = oid
            self.oids[t + "[]"] = arr
            self.conn.execute(f"CREATE TEMP TABLE fuzz_{t} (v tokenledger.{t})")
        self.crashes = []
        self.states = {}        # SQLSTATE -> count, over every case
        self.cases = 0

    def _result(self, res, what):
        self.cases += 1
        status = res.status
        if status == pq.ExecStatus.TUPLES_OK:
            self.states["ok"] = self.states.get("ok", 0) + 1
            value = res.get_value(0, 0)
            return "ok", value.decode() if value is not None else None
        state = res.error_field(pq.DiagnosticField.SQLSTATE)
        msg = res.error_field(pq.DiagnosticField.MESSAGE_PRIMARY)
        state = state.decode() if state else None
        msg = msg.decode("utf-8", "replace") if msg else res.error_message.decode("utf-8", "replace")
        self.states[state] = self.states.get(state, 0) + 1
        if state is None or self.conn.pgconn.status != pq.ConnStatus.OK:
            self.crashes.append(f"{what}: {msg}")
            self.reconnect()
        return state, msg

    def reconnect(self):
        try:
            self.conn.close()
        except Exception:
            pass
        crashes, states, cases = self.crashes, self.states, self.cases
        Server.__init__(self)
        self.crashes, self.states, self.cases = crashes, states, cases

    def text(self, cast, literal):
        """literal::cast (e.g. tokenledger.cost), sent as a text parameter of unknown
        type; literal is a str, or bytes that need not be UTF-8."""
        data = literal if isinstance(literal, bytes) else literal.encode()
        res = self.conn.pgconn.exec_params(
            f"SELECT $1::{cast}::text".encode(), [data], [0], [0])
        return self._result(res, f"{cast} text {literal!r}")

    def binary(self, typ, data):
        """data as a binary parameter of the type: its receive function."""
        res = self.conn.pgconn.exec_params(
            b"SELECT $1::text", [data], [self.oids[typ]], [1])
        return self._result(res, f"{typ} binary {data.hex()}")

    def copy_binary(self, typ, field):
        """one field of a binary COPY stream into a column of the type."""
        stream = (b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8 + struct.pack("!h", 1)
                  + (struct.pack("!i", len(field)) + field if field is not None
                     else struct.pack("!i", -1)) + b"\xff\xff")
        self.cases += 1
        try:
            with self.conn.cursor() as cur:
                with cur.copy(f"COPY fuzz_{typ} FROM STDIN (FORMAT binary)") as copy:
                    copy.write(stream)
            self.states["ok"] = self.states.get("ok", 0) + 1
            value = self.conn.execute(
                f"DELETE FROM fuzz_{typ} RETURNING v::text").fetchone()[0]
            return "ok", value
        except psycopg.Error as e:
            state = e.sqlstate
            self.states[state] = self.states.get(state, 0) + 1
            if state is None or self.conn.closed or self.conn.broken:
                self.crashes.append(f"{typ} COPY {field!r}: {e}")
                self.reconnect()
            return state, str(e)

    def alive(self):
        try:
            return self.conn.execute("SELECT 1").fetchone()[0] == 1
        except psycopg.Error:
            return False


# ---------------------------------------------------------------------------
# reference models of the text forms (SPEC section 2)

BLANKS = " \t\n\r\f\v"            # around a cost's parts
SEPARATORS = ", \t\n\r"           # between the fields of tokens and rate
LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"
NAME_CHARS = LETTERS + DIGITS + "_"
VALID_CODES = ["USD", "EUR", "GBP", "JPY", "CHF", "CAD", "XAU", "XXX", "ZWL", "AED", "SEK"]
INVALID_CODES = ["XYZ", "ABC", "QQQ", "USX", "EUX", "ZZZ", "AAA", "UUU", "DDD", "ESD"]
SYMBOLS = {"$": "USD", "\u20ac": "EUR", "\u00a3": "GBP"}


class Unknown(Exception):
    """A currency code the model cannot judge (not in either list)."""


def code_of(run):
    up = run.upper()
    if len(up) != 3:
        return None
    if up in VALID_CODES:
        return up
    if up in INVALID_CODES:
        return None
    raise Unknown(up)


def decimal_at(s, i):
    """An unsigned decimal at s[i:] ("12", "1.5", ".5", "5."): (end, text) or None."""
    j = i
    while j < len(s) and s[j] in DIGITS:
        j += 1
    ndigits = j - i
    if j < len(s) and s[j] == ".":
        j += 1
        k = j
        while j < len(s) and s[j] in DIGITS:
            j += 1
        ndigits += j - k
    if ndigits == 0:
        return None
    return j, s[i:j]


def to_nanos(text):
    """Digits past the ninth decimal round half away from zero."""
    with localcontext() as ctx:
        ctx.prec = len(text) + 20
        d = Decimal(text if text != "." else "0")
        return int((d * NANOS).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_nanos(nanos, min_decimals):
    sign = "-" if nanos < 0 else ""
    units, frac = divmod(abs(nanos), NANOS)
    digits = f"{frac:09d}"
    nd = 9
    while nd > min_decimals and digits[nd - 1] == "0":
        nd -= 1
    return f"{sign}{units}" + (f".{digits[:nd]}" if nd > 0 else "")


def model_cost(s):
    """('ok', text) | ('22P02',) | ('22003',); raises Unknown."""
    n = len(s)

    def skip(i):
        while i < n and s[i] in BLANKS:
            i += 1
        return i

    def letters(i):
        while i < n and s[i] in LETTERS:
            i += 1
        return i

    bad = ("22P02",)
    i = skip(0)
    code = None
    code_first = False
    j = letters(i)
    if j > i:
        code = code_of(s[i:j])
        if code is None:
            return bad
        code_first = True
        i = skip(j)
    neg = False
    have_sign = False
    if i < n and s[i] in "+-":
        neg, have_sign = s[i] == "-", True
        i += 1
    if i < n and s[i] in SYMBOLS:
        if code is not None and code != SYMBOLS[s[i]]:
            return bad
        code = SYMBOLS[s[i]]
        i += 1
        if i < n and s[i] in "+-":
            if have_sign:
                return bad
            neg = s[i] == "-"
            i += 1
    i = skip(i)
    num = decimal_at(s, i)
    if num is None:
        return bad
    i, text = num
    if i < n and s[i] in "eE":
        return bad
    i = skip(i)
    j = letters(i)
    if j > i:
        other = code_of(s[i:j])
        if other is None or code_first:
            return bad
        if code is not None and code != other:
            return bad
        code = other
        i = skip(j)
    if i < n:
        return bad
    nanos = to_nanos(text)
    if nanos > INT64_MAX:
        return ("22003",)
    return ("ok", f"{format_nanos(-nanos if neg else nanos, 2)} {code or 'USD'}")


TOKEN_FIELDS = ["in", "out", "cache_read", "cache_write", "cache_write_1h", "reasoning"]
TOKEN_NAMES = {"in": 0, "input": 0, "out": 1, "output": 1, "cache_read": 2, "cache_write": 3,
               "cache_write_1h": 4, "reasoning": 5}


def format_tokens(v):
    out = f"in={v[0]} out={v[1]}"
    for i in range(2, 6):
        if v[i]:
            out += f" {TOKEN_FIELDS[i]}={v[i]}"
    return out


def model_tokens(s):
    n = len(s)
    bad = ("22P02",)
    v = [0] * 6
    seen = set()
    i = 0
    while True:
        while i < n and s[i] in SEPARATORS:
            i += 1
        if i == n:
            break
        j = i
        while j < n and s[j] in NAME_CHARS:
            j += 1
        if j == i:
            return bad
        idx = TOKEN_NAMES.get(s[i:j].lower())
        if idx is None or idx in seen:
            return bad
        seen.add(idx)
        i = j
        while i < n and s[i] in " \t":
            i += 1
        if i == n or s[i] != "=":
            return bad
        i += 1
        while i < n and s[i] in " \t":
            i += 1
        neg = False
        if i < n and s[i] in "+-":
            neg = s[i] == "-"
            i += 1
        j = i
        while j < n and s[j] in DIGITS:
            j += 1
        if j == i:
            return bad
        val = int(s[i:j])
        i = j
        if i < n and s[i] not in SEPARATORS:
            return bad
        if neg and val != 0:
            return bad
        if val > INT64_MAX:
            return ("22003",)
        v[idx] = val
    if not seen or v[5] > v[1]:
        return bad
    return ("ok", format_tokens(v))


PRICE_FIELDS = ["in", "out", "cache_read", "cache_write", "cache_write_1h"]
PRICE_NAMES = {"in": 0, "input": 0, "out": 1, "output": 1, "cache_read": 2, "cache_write": 3,
               "cache_write_1h": 4}


def format_rate(p, code):
    out = f"in={format_nanos(p[0], 0)} out={format_nanos(p[1], 0)}"
    for i in range(2, 5):
        if p[i]:
            out += f" {PRICE_FIELDS[i]}={format_nanos(p[i], 0)}"
    return f"{out} {code}/1M"


def model_rate(s):
    n = len(s)
    bad = ("22P02",)
    p = [0] * 5
    seen = set()
    code = "USD"
    i = 0
    while True:
        while i < n and s[i] in SEPARATORS:
            i += 1
        if i == n:
            break
        j = i
        while j < n and s[j] in NAME_CHARS:
            j += 1
        if j == i:
            return bad
        name = s[i:j]
        eq = j
        while eq < n and s[eq] in " \t":
            eq += 1
        if eq == n or s[eq] != "=":
            # the currency, last
            if name.lower() in PRICE_NAMES:
                return bad
            if any(c not in LETTERS for c in name):
                return bad
            c = code_of(name)
            if c is None:
                return bad
            q = j
            if s[q:q + 3].lower() == "/1m":
                q += 3
            while q < n and s[q] in SEPARATORS:
                q += 1
            if q < n:
                return bad
            code = c
            break
        idx = PRICE_NAMES.get(name.lower())
        if idx is None or idx in seen:
            return bad
        seen.add(idx)
        i = eq + 1
        while i < n and s[i] in " \t":
            i += 1
        neg = False
        if i < n and s[i] in "+-":
            neg = s[i] == "-"
            i += 1
        num = decimal_at(s, i)
        if num is None:
            return bad
        i, text = num
        if i < n and s[i] not in SEPARATORS:
            return bad
        nanos = to_nanos(text)
        if neg and nanos != 0:
            return bad
        if nanos > INT64_MAX:
            return ("22003",)
        p[idx] = nanos
    if not seen:
        return bad
    return ("ok", format_rate(p, code))


MODELS = {"cost": model_cost, "tokens": model_tokens, "rate": model_rate}


# ---------------------------------------------------------------------------
# generators of text literals

def rnd_count(r):
    return r.choice([
        lambda: str(r.randrange(0, 10**6)), lambda: "0", lambda: "-0", lambda: "+7",
        lambda: str(INT64_MAX), lambda: str(INT64_MAX + 1), lambda: str(2**64),
        lambda: "9" * r.randrange(1, 40), lambda: "-" + str(r.randrange(1, 10**6)),
        lambda: "0" * r.randrange(1, 30) + "1", lambda: f"{r.randrange(10)}.{r.randrange(10)}",
        lambda: "1e3", lambda: "NaN", lambda: "", lambda: "--1", lambda: "0x1f",
        lambda: str(r.randrange(0, 10**19)),
    ])()


def rnd_decimal(r):
    return r.choice([
        lambda: str(r.randrange(0, 10**4)), lambda: f"{r.randrange(0, 10**4)}.{r.randrange(0, 10**12)}",
        lambda: "." + str(r.randrange(10**9)), lambda: str(r.randrange(100)) + ".",
        lambda: "9223372036.854775807", lambda: "9223372036.854775808",
        lambda: "9223372036.8547758074", lambda: "9223372036.8547758075",
        lambda: "0.0000000005", lambda: "0.0000000004999", lambda: "-0", lambda: "0",
        lambda: "1" + "0" * r.randrange(8, 14), lambda: "1." + "9" * r.randrange(8, 40),
        lambda: "1e400", lambda: "Infinity", lambda: ".", lambda: "1.2.3", lambda: "",
        lambda: str(r.randrange(0, 10**11)) + "." + str(r.randrange(0, 10**10)),
    ])()


def rnd_code(r):
    return r.choice([
        lambda: r.choice(VALID_CODES), lambda: r.choice(VALID_CODES).lower(),
        lambda: r.choice(VALID_CODES).title(), lambda: r.choice(INVALID_CODES),
        lambda: "US", lambda: "USDX",
    ])()


def rnd_blank(r, chars=BLANKS):
    return "".join(r.choice(chars) for _ in range(r.choice([0, 0, 0, 1, 1, 2])))


NOISE = ["\x01", "\x07", "\x1b", "\x7f", "\u00a0", "\u2003", "\uff15", "\u0665", "\u00e9",
         "\u20ac", "\u00a3", "\u00a5", ";", "|", "/", "=", "e", "E", "_", "(", ")", "'", "\"",
         "\\", "\U0001f4b8", "\ufeff", "\u200b"]


def mutate(r, s):
    """A few random edits: insert noise, delete, duplicate, swap."""
    s = list(s)
    for _ in range(r.choice([0, 1, 1, 2, 3])):
        op = r.randrange(4)
        pos = r.randrange(len(s) + 1)
        if op == 0:
            s.insert(pos, r.choice(NOISE + list("0123456789.-+$ ,=")))
        elif op == 1 and s:
            del s[min(pos, len(s) - 1)]
        elif op == 2 and s:
            a = r.randrange(len(s))
            s[a:a] = s[a:a + r.randrange(1, 6)]
        elif op == 3 and len(s) > 1:
            a, b = r.randrange(len(s)), r.randrange(len(s))
            s[a], s[b] = s[b], s[a]
    return "".join(s)


def gen_cost(r):
    parts = []
    if r.random() < 0.3:
        parts.append(rnd_code(r) + rnd_blank(r))
    if r.random() < 0.3:
        parts.append(r.choice("+-"))
    if r.random() < 0.25:
        parts.append(r.choice(list(SYMBOLS)))
        if r.random() < 0.2:
            parts.append(r.choice("+-"))
    parts.append(rnd_blank(r) + rnd_decimal(r))
    if r.random() < 0.6:
        parts.append(rnd_blank(r) + rnd_code(r))
    s = rnd_blank(r) + "".join(parts) + rnd_blank(r)
    return mutate(r, s) if r.random() < 0.35 else s


def gen_fields(r, names, value):
    k = r.choice([0, 1, 2, 2, 3, 4, 5, 6])
    fields = []
    for _ in range(k):
        name = r.choice(names)
        name = r.choice([name, name.upper(), name.title()]) if r.random() < 0.15 else name
        eq = r.choice(["=", "=", "=", " = ", "\t=", "= "])
        fields.append(name + eq + value(r))
    sep = lambda: r.choice([" ", " ", ",", ", ", "\t", "\n", " ,\r", ";", ""])
    return rnd_blank(r, SEPARATORS) + "".join(f + sep() for f in fields).rstrip(";") \
        if fields else rnd_blank(r, SEPARATORS)


def gen_tokens(r):
    names = list(TOKEN_NAMES) + ["cached", "total", "foo", "in_", "reasoning_tokens"]
    s = gen_fields(r, names, rnd_count)
    return mutate(r, s) if r.random() < 0.35 else s


def gen_rate(r):
    names = list(PRICE_NAMES) + ["reasoning", "foo", "price"]
    s = gen_fields(r, names, lambda r: r.choice(["", "", "+", "-"]) + rnd_decimal(r))
    if r.random() < 0.6:
        s += " " + rnd_code(r) + r.choice(["", "/1M", "/1m", "/1K", "/1M/1M", " /1M", "/"])
    return mutate(r, s) if r.random() < 0.35 else s


GARBAGE = (list("0123456789.-+$=, \t\n_/eE") + ["USD", "eur", "in", "out", "cache_read",
           "reasoning", "/1M", "\u20ac", "\u00a3"] + NOISE)


def gen_garbage(r):
    return "".join(r.choice(GARBAGE) for _ in range(r.randrange(0, 12)))


GENERATORS = {"cost": gen_cost, "tokens": gen_tokens, "rate": gen_rate}


# ---------------------------------------------------------------------------
# binary layouts

BINARY_LEN = {"cost": 11, "tokens": 48, "rate": 43}


def model_binary(typ, data):
    """('ok', text) | ('22P03',); raises Unknown for an unlisted code of letters."""
    if len(data) != BINARY_LEN[typ]:
        return ("22P03",)
    if typ == "tokens":
        v = struct.unpack("!6q", data)
        if min(v) < 0 or v[5] > v[1]:
            return ("22P03",)
        return ("ok", format_tokens(v))
    if typ == "cost":
        (nanos,), code = struct.unpack("!q", data[:8]), data[8:]
        if nanos == INT64_MIN:
            return ("22P03",)
    else:
        prices, code = struct.unpack("!5q", data[:40]), data[40:]
        if min(prices) < 0:
            return ("22P03",)
    if not all(65 <= b <= 90 for b in code):
        return ("22P03",)
    c = code.decode()
    if c not in VALID_CODES:
        if c in INVALID_CODES:
            return ("22P03",)
        raise Unknown(c)
    if typ == "cost":
        return ("ok", f"{format_nanos(nanos, 2)} {c}")
    return ("ok", format_rate(prices, c))


def rnd_int64(r):
    return r.choice([
        lambda: r.randrange(0, 10**12), lambda: 0, lambda: -1, lambda: INT64_MAX, lambda: INT64_MIN,
        lambda: INT64_MIN + 1, lambda: r.randrange(INT64_MIN, INT64_MAX + 1), lambda: 1,
    ])()


def rnd_code_bytes(r):
    return r.choice([
        lambda: r.choice(VALID_CODES).encode(), lambda: r.choice(VALID_CODES).encode(),
        lambda: r.choice(VALID_CODES).lower().encode(), lambda: r.choice(INVALID_CODES).encode(),
        lambda: bytes(r.randrange(256) for _ in range(3)), lambda: b"\x00\x00\x00",
        lambda: "\u20ac".encode(), lambda: b"US\x00",
    ])()


def gen_binary(r, typ):
    if typ == "cost":
        data = struct.pack("!q", rnd_int64(r)) + rnd_code_bytes(r)
    elif typ == "tokens":
        v = [abs(rnd_int64(r)) % (INT64_MAX + 1) if r.random() < 0.8 else rnd_int64(r)
             for _ in range(6)]
        if r.random() < 0.7:
            v[5] = min(v[5], v[1])
        data = struct.pack("!6q", *v)
    else:
        p = [abs(rnd_int64(r)) % (INT64_MAX + 1) if r.random() < 0.85 else rnd_int64(r)
             for _ in range(5)]
        data = struct.pack("!5q", *p) + rnd_code_bytes(r)
    roll = r.random()
    if roll < 0.15:
        data = data[:r.randrange(len(data))]                        # truncated
    elif roll < 0.25:
        data = data + bytes(r.randrange(256) for _ in range(r.randrange(1, 9)))   # trailing
    elif roll < 0.35:
        data = bytes(r.randrange(256) for _ in range(r.randrange(0, 64)))         # random
    elif roll < 0.45:
        data = bytearray(data)                                      # a flipped bit
        if data:
            data[r.randrange(len(data))] ^= 1 << r.randrange(8)
        data = bytes(data)
    return data


# ---------------------------------------------------------------------------
# usage objects (SPEC section 6)

class Raw:
    """A JSON number written as is (1e400, -0, 1.0)."""

    def __init__(self, text):
        self.text = text


def dumps(v):
    if isinstance(v, Raw):
        return v.text
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {dumps(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(dumps(x) for x in v) + "]"
    return json.dumps(v)


def small(r, hi=10**6):
    return r.randrange(0, hi)


def shape_chat(r):
    p, o = small(r), small(r)
    c = r.randrange(0, p + 1)
    w = r.randrange(0, p - c + 1) if r.random() < 0.3 else 0
    q = r.randrange(0, o + 1)
    u = {"prompt_tokens": p, "completion_tokens": o, "total_tokens": p + o,
         "prompt_tokens_details": {"cached_tokens": c, "audio_tokens": 0},
         "completion_tokens_details": {"reasoning_tokens": q, "audio_tokens": 0}}
    if w:
        u["prompt_tokens_details"]["cache_write_tokens"] = w
    body = r.choice([u, {"id": "chatcmpl-1", "object": "chat.completion", "usage": u}])
    return body, [p - c - w, o, c, w, 0, q]


def shape_responses(r):
    i, o = small(r), small(r)
    c = r.randrange(0, i + 1)
    w = r.randrange(0, i - c + 1)
    q = r.randrange(0, o + 1)
    u = {"input_tokens": i, "input_tokens_details": {"cached_tokens": c, "cache_write_tokens": w},
         "output_tokens": o, "output_tokens_details": {"reasoning_tokens": q}, "total_tokens": i + o}
    body = r.choice([u, {"object": "response", "usage": u},
                     {"type": "response.completed", "response": {"id": "resp_1", "usage": u}}])
    return body, [i - c - w, o, c, w, 0, q]


def shape_org(r):
    i, o = small(r), small(r)
    c = r.randrange(0, i + 1)
    w = r.randrange(0, i - c + 1)
    u = {"object": "organization.usage.completions.result", "input_tokens": i,
         "input_cached_tokens": c, "input_cache_write_tokens": w, "output_tokens": o,
         "num_model_requests": r.randrange(1, 100), "model": "gpt-4o"}
    if r.random() < 0.5:
        u["input_uncached_tokens"] = i - c - w
    return u, [i - c - w, o, c, w, 0, 0]


def shape_anthropic(r):
    i, o, cr = small(r), small(r), small(r)
    x, y = small(r), small(r)
    t = r.randrange(0, o + 1)
    u = {"input_tokens": i, "cache_read_input_tokens": cr, "cache_creation_input_tokens": x + y,
         "cache_creation": {"ephemeral_5m_input_tokens": x, "ephemeral_1h_input_tokens": y},
         "output_tokens": o, "service_tier": "standard"}
    if r.random() < 0.3:
        del u["cache_creation_input_tokens"]
    if r.random() < 0.3:
        u["output_tokens_details"] = {"thinking_tokens": t}
    else:
        t = 0
    body = r.choice([u, {"type": "message", "usage": u},
                     {"type": "message_start", "message": {"id": "msg_1", "usage": u}}])
    return body, [i, o, cr, x, y, t]


def shape_gemini(r):
    p, k, t, tool = small(r), small(r), small(r), small(r)
    c = r.randrange(0, p + 1)
    u = {"promptTokenCount": p, "cachedContentTokenCount": c, "candidatesTokenCount": k,
         "thoughtsTokenCount": t, "toolUsePromptTokenCount": tool,
         "totalTokenCount": p + k + t + tool,
         "promptTokensDetails": [{"modality": "TEXT", "tokenCount": p}]}
    body = r.choice([u, {"candidates": [], "usageMetadata": u, "modelVersion": "gemini-2.5-pro"}])
    return body, [p - c + tool, k + t, c, 0, 0, t]


def shape_bedrock(r):
    i, o, cr, cw = small(r), small(r), small(r), small(r)
    u = {"inputTokens": i, "outputTokens": o, "totalTokens": i + o + cr + cw,
         "cacheReadInputTokens": cr, "cacheWriteInputTokens": cw}
    if r.random() < 0.5:
        u["cacheReadInputTokenCount"] = cr
        u["cacheWriteInputTokenCount"] = cw
    body = r.choice([u, {"output": {}, "stopReason": "end_turn", "usage": u}])
    return body, [i, o, cr, cw, 0, 0]


def shape_otel(r):
    i, o = small(r), small(r)
    cr = r.randrange(0, i + 1)
    cw = r.randrange(0, i - cr + 1)
    q = r.randrange(0, o + 1)
    u = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
         "gen_ai.usage.input_tokens": i, "gen_ai.usage.output_tokens": o,
         "gen_ai.usage.cache_read.input_tokens": cr, "gen_ai.usage.cache_creation.input_tokens": cw,
         "gen_ai.usage.reasoning.output_tokens": q}
    return u, [i - cr - cw, o, cr, cw, 0, q]


def shape_canonical(r):
    v = [small(r) for _ in range(6)]
    v[5] = r.randrange(0, v[1] + 1)
    u = {k: x for k, x in zip(["input", "output", "cache_read", "cache_write", "cache_write_1h",
                               "reasoning"], v) if x or r.random() < 0.5}
    if not u:
        u = {"input": 0}
    return u, v


SHAPES = [shape_chat, shape_responses, shape_org, shape_anthropic, shape_gemini, shape_bedrock,
          shape_otel, shape_canonical]

HOSTILE_VALUES = [
    lambda r: -1, lambda r: Raw("-0"), lambda r: Raw("1.5"), lambda r: Raw("1e400"),
    lambda r: Raw("1e2"), lambda r: Raw("0.0"), lambda r: Raw("-1e-400"), lambda r: "5",
    lambda r: True, lambda r: None, lambda r: {}, lambda r: [], lambda r: [1, 2],
    lambda r: INT64_MAX, lambda r: INT64_MAX + 1, lambda r: 2**64, lambda r: -2**63,
    lambda r: Raw("9" * 50), lambda r: small(r), lambda r: {"tokens": small(r)},
    lambda r: "\U0001f4b8",
]
FOREIGN_KEYS = ["prompt_tokens", "completion_tokens", "input_tokens", "output_tokens",
                "promptTokenCount", "candidatesTokenCount", "inputTokens", "outputTokens",
                "input", "output", "reasoning", "gen_ai.usage.input_tokens", "gen_ai.system",
                "usage", "usageMetadata", "response", "message", "object", "cache_read_input_tokens",
                "input_uncached_tokens", "num_model_requests", "thoughtsTokenCount", "cache_creation",
                "input_tokens_details", "output_tokens_details", "", "\u00e9", "x" * 300]


def containers(v, path=()):
    """Every object and array inside v, with its path."""
    if isinstance(v, (dict, list)):
        yield path, v
        items = v.items() if isinstance(v, dict) else enumerate(v)
        for k, x in items:
            yield from containers(x, path + (k,))


def mutate_json(r, body):
    for _ in range(r.choice([1, 1, 2, 3])):
        op = r.randrange(7)
        conts = [c for _, c in containers(body)]
        if op == 6 or not conts:
            body = r.choice([[body], body, 17, "usage", None, {"usage": body}, {"data": [body]}])
            continue
        c = r.choice(conts)
        if isinstance(c, list):
            if c and r.random() < 0.5:
                c[r.randrange(len(c))] = r.choice(HOSTILE_VALUES)(r)
            else:
                c.append(r.choice(HOSTILE_VALUES)(r))
            continue
        keys = list(c)
        if op in (0, 1, 2) and keys:
            c[r.choice(keys)] = r.choice(HOSTILE_VALUES)(r)
        elif op == 3 and keys:
            del c[r.choice(keys)]
        elif op == 4:
            c[r.choice(FOREIGN_KEYS)] = r.choice(HOSTILE_VALUES)(r)
        else:
            deep = r.choice(HOSTILE_VALUES)(r)
            for _ in range(r.randrange(1, 30)):
                deep = {r.choice(FOREIGN_KEYS): deep}
            c[r.choice(FOREIGN_KEYS)] = deep
    return body


def sample_bodies():
    path = Path(__file__).resolve().parent.parent.parent / "shared/data/provider_usage_samples.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["usage"] for line in path.read_text().splitlines() if line.strip()]


def parse_tokens_text(text):
    v = [0] * 6
    for part in text.split():
        name, val = part.split("=")
        v[TOKEN_FIELDS.index(name)] = int(val)
    return v


# ---------------------------------------------------------------------------

def main():
    seed = int(os.environ.get("FUZZ_SEED") or random.SystemRandom().randrange(10**9))
    r = random.Random(seed)
    print("1..9")
    print(f"# seed {seed} (set FUZZ_SEED={seed} to repeat)")
    started = time.monotonic()
    srv = Server()
    allowed_text = {"22P02", "22003"}
    unexpected = []         # a SQLSTATE outside the README's list for the input
    counts = {}

    # 1-3. text input against the models
    for typ in ("cost", "tokens", "rate"):
        disagree = []
        n = 0
        for k in range(1000):
            lit = gen_garbage(r) if k % 4 == 3 else GENERATORS[typ](r)
            lit = lit.replace("\x00", "")
            if k % 100 == 50:           # long: the same literal repeated
                lit = lit * r.randrange(1000, 20000)
            sent = lit
            if k % 20 == 19:            # bytes that are not UTF-8, where the encoding layer
                raw = bytearray(lit.encode())   # refuses them (22021) before the type
                raw.insert(r.randrange(len(raw) + 1), r.choice([0x80, 0xc0, 0xe2, 0xf5, 0xff]))
                sent = bytes(raw)
            got = srv.text(f"tokenledger.{typ}", sent)
            n += 1
            if isinstance(sent, bytes):
                try:
                    lit = sent.decode()
                except UnicodeDecodeError:
                    if got[0] != "22021":
                        disagree.append(f"{sent!r}: server {got}, not UTF-8 so 22021")
                    continue
            if got[0] not in allowed_text and got[0] != "ok":
                unexpected.append(f"{typ} text {lit!r}: {got[0]} {got[1]}")
            try:
                want = MODELS[typ](lit)
            except Unknown:
                if got[0] == "ok":          # accepted: its output reads back the same
                    again = srv.text(f"tokenledger.{typ}", got[1])
                    if again != ("ok", got[1]):
                        disagree.append(f"{lit!r}: {got} reads back as {again}")
                continue
            if got[0] != want[0] or (want[0] == "ok" and got[1] != want[1]):
                disagree.append(f"{lit!r}: server {got}, model {want}")
        counts[f"{typ} text"] = n
        check(not disagree,
              f"{typ} text input: {n} literals agree with the model of SPEC section 2 "
              f"(accepted value, 22P02 or 22003; 22021 for bytes that are not UTF-8)", disagree)

    def binary_against_model(typ, data, got, how, label, disagree):
        """One binary value the server received ("how": a bind parameter or a
        COPY field) against the model: 22P03 or the model's value."""
        if got[0] not in ("ok", "22P03"):
            unexpected.append(f"{typ} {how} {data.hex()}: {got[0]} {got[1]}")
        try:
            want = model_binary(typ, data)
        except Unknown:
            return
        if got[0] != want[0] or (want[0] == "ok" and got[1] != want[1]):
            disagree.append(f"{typ} {label}{data.hex()}: server {got}, model {want}")

    # 4. binary receive through bind parameters
    disagree = []
    n = 0
    for typ in ("cost", "tokens", "rate"):
        for _ in range(400):
            data = gen_binary(r, typ)
            binary_against_model(typ, data, srv.binary(typ, data), "binary", "", disagree)
            n += 1
    counts["binary parameters"] = n
    check(not disagree, f"binary receive of {n} parameters: valid values accepted exactly, "
                        f"the rest refused with 22P03", disagree)

    # 5. binary COPY fields and array elements
    disagree = []
    n = 0
    for typ in ("cost", "tokens", "rate"):
        for _ in range(60):
            data = gen_binary(r, typ)
            binary_against_model(typ, data, srv.copy_binary(typ, data), "COPY", "COPY ", disagree)
            n += 1
        for _ in range(60):
            elems = [gen_binary(r, typ) for _ in range(r.randrange(1, 5))]
            data = struct.pack("!iiiii", 1, 0, srv.oids[typ], len(elems), 1) + b"".join(
                struct.pack("!i", len(e)) + e for e in elems)
            got = srv.binary(typ + "[]", data)
            n += 1
            if got[0] not in ("ok", "22P03"):
                unexpected.append(f"{typ}[] binary {data.hex()}: {got[0]} {got[1]}")
            try:
                wants = [model_binary(typ, e) for e in elems]
            except Unknown:
                continue
            valid = all(w[0] == "ok" for w in wants)
            if (got[0] == "ok") != valid:
                disagree.append(f"{typ}[] {data.hex()}: server {got}, elements {wants}")
    counts["binary COPY and arrays"] = n
    check(not disagree, f"binary COPY fields and array elements ({n}): accepted exactly when "
                        f"valid, else 22P03", disagree)

    # 6-7. jsonb::tokens
    samples = sample_bodies()
    wrong = []
    inconsistent = []
    clean = hostile = 0
    for k in range(1000):
        if samples and k % 5 == 4:
            body, want = json.loads(json.dumps(r.choice(samples))), None
        else:
            body, want = r.choice(SHAPES)(r)
        if k % 2 == 1:
            body, want = mutate_json(r, body), None
        text = dumps(body)
        got = srv.text("jsonb::tokenledger.tokens", text)
        if got[0] not in ("ok", "22P02", "22003"):
            unexpected.append(f"jsonb {text[:300]}: {got[0]} {got[1]}")
        if want is not None:
            clean += 1
            expect = ("22003",) if max(want) > INT64_MAX else ("ok", format_tokens(want))
            if got[0] != expect[0] or (got[0] == "ok" and got[1] != expect[1]):
                wrong.append(f"{text[:300]}: server {got}, SPEC {expect}")
        else:
            hostile += 1
            if got[0] == "ok":
                v = parse_tokens_text(got[1])
                if min(v) < 0 or v[5] > v[1]:
                    inconsistent.append(f"{text[:300]}: {got[1]}")
    counts["jsonb"] = clean + hostile
    check(not wrong, f"jsonb::tokens: {clean} clean usage objects of the eight shapes "
                     f"normalised as SPEC section 6 says", wrong)
    check(not inconsistent, f"jsonb::tokens: {hostile} mutated usage objects refused or "
                            f"read into consistent counts", inconsistent)

    # 8-9. what the server did
    check(not unexpected and "XX000" not in srv.states,
          "no refusal outside the README's SQLSTATEs for the input (22P02, 22003, 22P03), no XX000",
          unexpected)
    fresh_ok = False
    try:
        with psycopg.connect("") as fresh:
            fresh_ok = fresh.execute("SELECT 1").fetchone()[0] == 1
    except psycopg.Error:
        pass
    check(not srv.crashes and srv.alive() and fresh_ok,
          f"the server never lost the session over {srv.cases} cases, and takes new ones",
          srv.crashes)

    elapsed = time.monotonic() - started
    print(f"# {srv.cases} cases in {elapsed:.1f} s: "
          + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print("# outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(srv.states.items(),
                                                                      key=lambda kv: str(kv[0]))))
    return 0 if all(results) and len(results) == 9 else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # a crash of the test is a failure, with its reason
        print(f"not ok {len(results) + 1} - fuzz test crashed: {e!r}")
        sys.exit(1)
