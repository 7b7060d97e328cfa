#!/usr/bin/python3
"""tokenledger from an application's side, through psycopg 3.

Records usage from provider-shaped responses with record_usage, bulk-loads
calls with binary COPY through the driver (with binary dumpers for cost and
tokens), and reads the types back in text and binary form.  Prints TAP, so
`prove -e python3 test/client.py` runs it; connects through the libpq
environment (PGHOST, PGPORT, ...), and rolls everything back.
"""
import struct
import sys
from dataclasses import dataclass
from decimal import Decimal

import psycopg
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format
from psycopg.types import TypeInfo
from psycopg.types.json import Jsonb
from tap import check, results


NANOS = 10**9


@dataclass(frozen=True)
class Cost:
    nanos: int
    currency: str

    @classmethod
    def of(cls, amount, currency):
        return cls(int(Decimal(amount) * NANOS), currency)


@dataclass(frozen=True)
class Tokens:
    input: int
    output: int
    cache_read: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0
    reasoning: int = 0


class CostBinaryDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj):
        return struct.pack("!q3s", obj.nanos, obj.currency.encode("ascii"))


class CostBinaryLoader(Loader):
    format = Format.BINARY

    def load(self, data):
        nanos, code = struct.unpack("!q3s", bytes(data))
        return Cost(nanos, code.decode("ascii"))


class TokensBinaryDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj):
        return struct.pack("!6q", obj.input, obj.output, obj.cache_read,
                           obj.cache_write, obj.cache_write_1h, obj.reasoning)


class TokensBinaryLoader(Loader):
    format = Format.BINARY

    def load(self, data):
        return Tokens(*struct.unpack("!6q", bytes(data)))


def main():
    conn = psycopg.connect("")
    conn.execute("CREATE EXTENSION IF NOT EXISTS tokenledger")
    oids = {}
    for name, dumper, loader, cls in (
        ("tokenledger.cost", CostBinaryDumper, CostBinaryLoader, Cost),
        ("tokenledger.tokens", TokensBinaryDumper, TokensBinaryLoader, Tokens),
    ):
        info = TypeInfo.fetch(conn, name)
        info.register(conn)
        oids[name] = info.oid
        dumper.oid = info.oid
        conn.adapters.register_dumper(cls, dumper)
        conn.adapters.register_loader(info.oid, loader)
    # cursors take the adapters registered before they are made
    cur = conn.cursor()

    # 1. provider responses, as the SDKs return them
    openai_response = {
        "id": "chatcmpl-client-1", "object": "chat.completion", "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}}],
        "usage": {"prompt_tokens": 2006, "completion_tokens": 300,
                  "prompt_tokens_details": {"cached_tokens": 1920},
                  "completion_tokens_details": {"reasoning_tokens": 0}},
    }
    anthropic_response = {
        "id": "msg_client_1", "type": "message", "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "Hi"}],
        "usage": {"input_tokens": 472, "cache_creation_input_tokens": 3000,
                  "cache_read_input_tokens": 20000,
                  "cache_creation": {"ephemeral_5m_input_tokens": 1000,
                                     "ephemeral_1h_input_tokens": 2000},
                  "output_tokens": 310},
    }
    gemini_response = {
        "candidates": [], "modelVersion": "gemini-2.5-flash",
        "usageMetadata": {"promptTokenCount": 1844, "cachedContentTokenCount": 901,
                          "candidatesTokenCount": 432, "thoughtsTokenCount": 91,
                          "toolUsePromptTokenCount": 1934, "totalTokenCount": 4301},
    }
    ids = {}
    for provider, model, body in (
        ("openai", openai_response["model"], openai_response),
        ("anthropic", anthropic_response["model"], anthropic_response),
        ("google", gemini_response["modelVersion"], gemini_response),
    ):
        cur.execute(
            "SELECT tokenledger.record_usage(%s, %s, %s, request_id => %s, app => 'psycopg-client')",
            (provider, model, Jsonb(body), body.get("id", "gemini-client-1")))
        ids[provider] = cur.fetchone()[0]
    check(len(set(ids.values())) == 3, "record_usage returns an id per call")

    cur.execute("SELECT provider, tokens::text, cost::text FROM tokenledger.usage "
                "WHERE app = 'psycopg-client' ORDER BY id")
    rows = cur.fetchall()
    check(rows[0] == ("openai", "in=86 out=300 cache_read=1920", "0.005615 USD"),
          f"OpenAI response normalised and priced: {rows[0]}")
    check(rows[1] == ("anthropic", "in=472 out=310 cache_read=20000 cache_write=1000 cache_write_1h=2000",
                      "0.027816 USD"),
          f"Anthropic response normalised and priced: {rows[1]}")
    check(rows[2] == ("google", "in=2877 out=523 cache_read=901 reasoning=91", "0.00219763 USD"),
          f"Gemini response normalised and priced: {rows[2]}")

    cur.execute("SELECT tokenledger.record_usage('openai', %s, %s, request_id => %s)",
                (openai_response["model"], Jsonb(openai_response), openai_response["id"]))
    check(cur.fetchone()[0] == ids["openai"], "a replayed response returns the existing id")
    conn.execute("SAVEPOINT replay")
    try:
        changed = dict(openai_response, usage=dict(openai_response["usage"], completion_tokens=301))
        cur.execute("SELECT tokenledger.record_usage('openai', %s, %s, request_id => %s)",
                    (openai_response["model"], Jsonb(changed), openai_response["id"]))
        check(False, "a replay with different tokens is refused")
    except psycopg.errors.UniqueViolation as e:
        check("chatcmpl-client-1" in str(e), "a replay with different tokens is refused with 23505 naming the key")
    conn.execute("ROLLBACK TO SAVEPOINT replay")

    # 2. bulk load with binary COPY through the driver
    calls = [(f"copy-{i}", "anthropic", "claude-haiku-4-5",
              Tokens(1000 + i, 100 + i % 50, 5000, 0, 0, i % 20),
              Cost.of("0.001", "USD") if i % 10 == 0 else None)
             for i in range(1000)]
    with cur.copy("COPY tokenledger.usage (request_id, provider, model, tokens, cost) "
                  "FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["text", "text", "text", oids["tokenledger.tokens"], oids["tokenledger.cost"]])
        for row in calls:
            copy.write_row(row)
    cur.execute("SELECT count(*), count(cost), count(price_id), tokenledger.sum(tokens)::text "
                "FROM tokenledger.usage WHERE request_id LIKE 'copy-%'")
    count, priced, by_catalog, total = cur.fetchone()
    check(count == 1000 and priced == 1000, f"binary COPY of 1000 calls: {count} rows, {priced} priced")
    check(by_catalog == 900, "given costs are kept, the others are priced from the catalog")
    expected_total = Tokens(sum(c[3].input for c in calls), sum(c[3].output for c in calls),
                            5000 * 1000, 0, 0, sum(c[3].reasoning for c in calls))
    check(total == f"in={expected_total.input} out={expected_total.output} "
                   f"cache_read={expected_total.cache_read} reasoning={expected_total.reasoning}",
          f"sum(tokens) over the copied rows: {total}")

    # 3. the types back, binary and text
    cur.execute("SELECT tokens, cost FROM tokenledger.usage WHERE request_id = 'copy-10'", binary=True)
    tokens, cost = cur.fetchone()
    check(tokens == calls[10][3], f"tokens read back in binary: {tokens}")
    check(cost == Cost.of("0.001", "USD"), f"a given cost read back in binary: {cost}")
    cur.execute("SELECT tokens, cost FROM tokenledger.usage WHERE request_id = 'copy-11'", binary=True)
    tokens, cost = cur.fetchone()
    expected = (1011 * 1 + 111 * 5 + 5000 * Decimal("0.1")) / 10**6
    check(cost == Cost.of(expected, "USD"), f"a catalog cost read back in binary: {cost}")
    cur.execute("SELECT %s::tokenledger.cost::text, %s::tokenledger.tokens::text",
                (Cost.of("12.5", "EUR"), Tokens(1, 2, 3)))
    check(cur.fetchone() == ("12.50 EUR", "in=1 out=2 cache_read=3"), "values sent as binary parameters")

    conn.execute("SAVEPOINT bad")
    try:
        cur.execute("SELECT '12.5 XX'::tokenledger.cost")
        check(False, "bad cost text is refused")
    except psycopg.errors.InvalidTextRepresentation as e:
        check('"12.5 XX"' in str(e), "bad cost text is refused with 22P02 naming the value")
    conn.execute("ROLLBACK TO SAVEPOINT bad")

    conn.rollback()
    conn.close()


if __name__ == "__main__":
    print("1..14")
    try:
        main()
    except Exception as e:  # a crash is a failure, with its reason
        print(f"not ok {len(results) + 1} - client test crashed: {e!r}")
        sys.exit(1)
    sys.exit(0 if all(results) and len(results) == 14 else 1)
