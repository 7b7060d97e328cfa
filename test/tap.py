"""TAP output for the test scripts: numbered checks and their diagnostics.

The scripts run from test/ (prove -e /usr/bin/python3 test/<name>.py), so
this module is found beside them.
"""
import sys

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
