"""TAP output for the test scripts: numbered checks and their diagnostics.

The scripts run from test/ (prove -e /usr/bin/python3 test/<name>.py), so
this module is found beside them.
"""
import sys

import psycopg

results = []


def check(ok, description, details=()):
    """Record and print one check.  On failure print its details: a string
    whole, line by line; an iterable of lines, the first 20."""
    results.append(bool(ok))
    print(f"{'ok' if ok else 'not ok'} {len(results)} - {description}")
    if not ok and details:
        lines = details.rstrip("\n").split("\n") if isinstance(details, str) else list(details)[:20]
        for line in lines:
            print(f"#   {line}")
    sys.stdout.flush()


def comment(text):
    """Print text as TAP comments."""
    for line in str(text).splitlines():
        print(f"# {line}")
    sys.stdout.flush()


class Failed(Exception):
    """A step the rest depends on failed (and was reported)."""


def step(description, fn, *args):
    """Run a step the rest depends on: a database error is reported as a
    failed check and raised again as Failed."""
    try:
        return fn(*args)
    except psycopg.Error as e:
        check(False, description, f"{type(e).__name__}: {e}")
        raise Failed() from e
