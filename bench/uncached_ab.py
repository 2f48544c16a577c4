#!/usr/bin/env python3
"""Validation with the cache off, for several settings or builds (`NAME@DIR`, as in
bench/settings_ab.py), side by side.

Every validation reads the store: validate over the 10,000 seeded sessions at concurrency 64,
÷ the health rate measured just before and after on the same server (row 1's second line, but
with `IDENTITYD_VALIDATION_CACHE_TTL=0s`, so that none is answered from memory). The variants
take turns, round after round, on one store seeded once, each on a freshly started server.

    python3 bench/uncached_ab.py --bin-dir target/release --store postgres --rounds 3 \\
        --variant one-by-one:IDENTITYD_SESSION_LOOKUPS_IN_FLIGHT=1000 --variant default:
"""

import argparse
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402
import settings_ab  # noqa: E402


def measure(url, tokens, duration, variant):
    server = bench.Server(url, variant.binary, **{"IDENTITYD_VALIDATION_CACHE_TTL": "0s", **variant.settings})
    try:
        before = bench.run(server, "health", duration, "--concurrency", "64")["report"]
        validate = bench.run(server, "validate", duration, "--concurrency", "64", "--tokens-file", tokens)["report"]
        after = bench.run(server, "health", duration, "--concurrency", "64")["report"]
    finally:
        server.stop()
    health = (before["succeeded_per_second"] + after["succeeded_per_second"]) / 2
    return {
        "ratio": validate["succeeded_per_second"] / health,
        "per_second": validate["succeeded_per_second"],
        "p99_ms": validate["p99_ms"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    settings_ab.common_arguments(parser, store="postgres")
    parser.add_argument("--duration", default="8s")
    args = parser.parse_args()
    bench.use_binaries(args.bin_dir)

    with tempfile.TemporaryDirectory(prefix="identityd-ab-") as tmp, \
            settings_ab.seeded_store(args.store, args.postgres, tmp) as (url, tokens):
        results = {variant.name: [] for variant in args.variant}
        for round_ in range(args.rounds):
            for variant in args.variant:
                r = measure(url, tokens, args.duration, variant)
                results[variant.name].append(r)
                print(f"## {variant.name}, round {round_ + 1}: {r['ratio']:.2f} of health "
                      f"({r['per_second']:.0f}/s, p99 {r['p99_ms']:.1f} ms)", flush=True)

    print(f"\n| variant ({args.store}, {args.rounds} rounds, no cache) | validate ÷ health, median "
          "| validations/s, median | p99, median |")
    print("|---|---|---|---|")
    for name, runs in results.items():
        print(f"| {name} | {statistics.median(r['ratio'] for r in runs):.2f} "
              f"| {statistics.median(r['per_second'] for r in runs):.0f} "
              f"| {statistics.median(r['p99_ms'] for r in runs):.1f} ms |")


if __name__ == "__main__":
    main()
