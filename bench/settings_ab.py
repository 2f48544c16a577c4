#!/usr/bin/env python3
"""Rows 1 (its 10,000-session line), 2 and 3 of bench/run.py for several settings or builds, side
by side.

Each variant is a name, optionally the directory of the build it runs (`NAME@DIR`; else
--bin-dir's), and the environment settings the server starts with; the variants take turns,
round after round, on one store seeded once (1,000 users, 10,000 sessions), so that the machine's
drift falls on all of them alike. Per variant and round it prints row 1's second line
(validate over the 10,000 sessions ÷ health, concurrency 64), row 3 (validate p99 during a login
storm ÷ without, open load, as bench/run.py measures it) and row 2 (password logins ÷ the hashing
ceiling measured before and after), then the medians. `--rows 2` measures row 2 alone.

    python3 bench/settings_ab.py --bin-dir target/release --store sqlite --rounds 3 \\
        --variant nice15:IDENTITYD_HASHING_NICE=15 --variant idle:IDENTITYD_HASHING_NICE=idle
    python3 bench/settings_ab.py --bin-dir target/release --rows 2 \\
        --variant before@/tmp/before-build: --variant after:
"""

import argparse
import collections
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402


Variant = collections.namedtuple("Variant", "name binary settings")


def parse_variant(text):
    """`NAME[@DIR]:KEY=VALUE,KEY=VALUE` (the settings may be empty: the defaults; without a
    directory the variant runs --bin-dir's build)."""
    name, _, settings = text.partition(":")
    name, _, bin_dir = name.partition("@")
    binary = os.path.join(bin_dir, "identityd") if bin_dir else None
    return Variant(name, binary, dict(pair.split("=", 1) for pair in settings.split(",") if pair))


def measure_logins(server, duration):
    """Row 2: password logins ÷ the hashing ceiling measured before and after."""
    before = bench.load("hash-ceiling", "--duration", "5s")["hashes_per_second"]
    logins = bench.run(server, "login-password", duration, "--concurrency", "8")["report"]
    after = bench.load("hash-ceiling", "--duration", "5s")["hashes_per_second"]
    return {"row2": logins["succeeded_per_second"] / ((before + after) / 2),
            "logins_per_second": logins["succeeded_per_second"]}


def measure(url, tokens, duration, variant, logins_only=False):
    server = bench.Server(url, variant.binary, **variant.settings)
    try:
        if logins_only:
            return measure_logins(server, duration)
        health_before = bench.run(server, "health", duration, "--concurrency", "64")["report"]
        validate = bench.run(server, "validate", duration, "--concurrency", "64", "--tokens-file", tokens)["report"]
        health_after = bench.run(server, "health", duration, "--concurrency", "64")["report"]
        capacity = bench.run(server, "validate", duration, "--concurrency", "16", "--tokens-file", tokens)["report"]
        open_load = ("--concurrency", "16", "--tokens-file", tokens,
                     "--rate", f"{capacity['succeeded_per_second'] / 4:.0f}")
        quiet = bench.run(server, "validate", duration, *open_load)["report"]
        storm = bench.run(server, "validate", duration, *open_load, "--storm", "8")
        quiet_after = bench.run(server, "validate", duration, *open_load)["report"]
        logins = measure_logins(server, duration)
    finally:
        server.stop()
    quiet_p99 = (quiet["p99_ms"] + quiet_after["p99_ms"]) / 2
    health = (health_before["succeeded_per_second"] + health_after["succeeded_per_second"]) / 2
    return {
        "row1_10k": validate["succeeded_per_second"] / health,
        "validate_10k_per_second": validate["succeeded_per_second"],
        "row3": storm["report"]["p99_ms"] / quiet_p99,
        "storm_p99_ms": storm["report"]["p99_ms"],
        "quiet_p99_ms": quiet_p99,
        "storm_logins_per_second": storm["storm"]["succeeded_per_second"],
        **logins,
    }


def common_arguments(parser, store):
    """The arguments every same-build comparison takes."""
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default=store)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variant", action="append", required=True, type=parse_variant)


@contextlib.contextmanager
def seeded_store(store, postgres, tmp):
    """A fresh database with the bench administrator, 1,000 users and 10,000 sessions: its URL
    and the file of the sessions' tokens. A Postgres database is dropped afterwards."""
    database = None
    if store == "sqlite":
        url = f"sqlite://{tmp}/ab.db"
    else:
        database = f"identityd_ab_{os.getpid()}_{time.time_ns()}"
        subprocess.run(["psql", f"{postgres}/postgres", "-qc", f"CREATE DATABASE {database}"], check=True)
        url = f"{postgres}/{database}"
    try:
        tokens = os.path.join(tmp, "tokens.txt")
        bench.Server(url).stop()  # the first start creates the bench administrator
        subprocess.run([bench.SEED, "seed", "--database-url", url, "--users", "1000", "--sessions", "10000",
                        "--tokens-out", tokens, "--keep-tokens", "10000"], check=True)
        yield url, tokens
    finally:
        if database:
            subprocess.run(["psql", f"{postgres}/postgres", "-qc", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common_arguments(parser, store="sqlite")
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--rows", choices=("all", "2"), default="all",
                        help="every row, or row 2 (password logins) alone")
    args = parser.parse_args()
    logins_only = args.rows == "2"
    bench.use_binaries(args.bin_dir)

    with tempfile.TemporaryDirectory(prefix="identityd-ab-") as tmp, \
            seeded_store(args.store, args.postgres, tmp) as (url, tokens):
        results = {variant.name: [] for variant in args.variant}
        for round_ in range(args.rounds):
            for variant in args.variant:
                r = measure(url, tokens, args.duration, variant, logins_only)
                results[variant.name].append(r)
                if logins_only:
                    print(f"## {variant.name}, round {round_ + 1}: row 2 {r['row2']:.2f} "
                          f"({r['logins_per_second']:.1f} logins/s)", flush=True)
                    continue
                print(f"## {variant.name}, round {round_ + 1}: row 1 (10k) {r['row1_10k']:.2f} "
                      f"({r['validate_10k_per_second']:.0f}/s), row 3 {r['row3']:.2f} ({r['storm_p99_ms']:.1f} / "
                      f"{r['quiet_p99_ms']:.1f} ms, {r['storm_logins_per_second']:.0f} logins/s in the storm), "
                      f"row 2 {r['row2']:.2f}", flush=True)

    if logins_only:
        print(f"\n| variant ({args.store}, {args.rounds} rounds) | row 2, median | logins/s, median |")
        print("|---|---|---|")
        for name, runs in results.items():
            print(f"| {name} | {statistics.median(r['row2'] for r in runs):.2f} "
                  f"| {statistics.median(r['logins_per_second'] for r in runs):.1f} |")
        return
    print(f"\n| variant ({args.store}, {args.rounds} rounds) | row 1 (10k), median | row 3, median "
          "| storm p99, median (worst) | row 2, median |")
    print("|---|---|---|---|---|")
    for name, runs in results.items():
        print(f"| {name} | {statistics.median(r['row1_10k'] for r in runs):.2f} "
              f"| {statistics.median(r['row3'] for r in runs):.2f} "
              f"| {statistics.median(r['storm_p99_ms'] for r in runs):.1f} ms "
              f"({max(r['storm_p99_ms'] for r in runs):.1f} ms) "
              f"| {statistics.median(r['row2'] for r in runs):.2f} |")


if __name__ == "__main__":
    main()
