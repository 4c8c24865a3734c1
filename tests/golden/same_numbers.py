#!/usr/bin/env python3
"""Check that two golden JSON files hold the same numbers: the committed one, and one just written by its script.

    python3 tests/golden/same_numbers.py COMMITTED FRESH

Structure, strings and booleans must be equal; numbers within 1e-9 relative (1e-12 absolute near zero), so that a
different build of the same R or library versions may round the last digits differently. Exits 1 naming the
first difference.
"""
import json
import sys


def diff(a, b, where):
    if isinstance(a, dict) and isinstance(b, dict):
        if sorted(a) != sorted(b):
            return f"{where}: keys {sorted(a)} vs {sorted(b)}"
        for k in a:
            d = diff(a[k], b[k], f"{where}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{where}: {len(a)} vs {len(b)} values"
        for i, (x, y) in enumerate(zip(a, b)):
            d = diff(x, y, f"{where}[{i}]")
            if d:
                return d
        return None
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        if abs(a - b) <= max(1e-9 * max(abs(a), abs(b)), 1e-12):
            return None
        return f"{where}: {a!r} vs {b!r}"
    return None if a == b else f"{where}: {a!r} vs {b!r}"


def main():
    committed, fresh = (json.load(open(p)) for p in sys.argv[1:3])
    d = diff(committed, fresh, "$")
    if d:
        print(f"{sys.argv[1]} is not what its script writes now: {d}", file=sys.stderr)
        sys.exit(1)
    print(f"{sys.argv[1]}: the same numbers as a fresh run of its script")


if __name__ == "__main__":
    main()
