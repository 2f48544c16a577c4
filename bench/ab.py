#!/usr/bin/env python3
"""Compares two builds of identityd in one run: every figure of BENCHMARKS.md's table for each,
the two builds taking turns store by store (A, B, then B, A on the next store), so that the
machine's drift falls on both alike. A build is a directory holding its release `identityd` and
`identityd-load` binaries; each build's database is seeded by its own `identityd-load` (which
writes that build's schema), and both are driven by the after build's load generator, so that the
measurements and the hashing ceiling are taken the same way.

    python3 bench/ab.py --before DIR --after DIR [--stores postgres,sqlite] [--duration 10s]

It prints both tables and, per figure, after ÷ before of the ratios (for rows where lower is
better, such as p99 or memory, a value above 1 means the after build is worse).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", required=True)
    parser.add_argument("--stores", default="postgres,sqlite")
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    builds = {"before": args.before, "after": args.after}
    results = {}
    tmp = tempfile.mkdtemp(prefix="identityd-ab-")
    try:
        for n, store in enumerate(args.stores.split(",")):
            order = ["before", "after"] if n % 2 == 0 else ["after", "before"]
            for side in order:
                print(f"=== {side} ({builds[side]})", flush=True)
                run.use_binaries(builds[side], load_dir=args.after)
                results[f"{store} {side}"] = run.bench_database(store, args.postgres, args.duration, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    run.table(results)
    print("\n| figure | " + " | ".join(f"{s} after ÷ before" for s in args.stores.split(",")) + " |")
    print("|---|" + "---|" * len(args.stores.split(",")))
    for key, label, _, _ in run.TARGETS:
        cells = []
        for store in args.stores.split(","):
            (an, ad), (bn, bd) = results[f"{store} after"][key], results[f"{store} before"][key]
            cells.append(f"{(an / ad) / (bn / bd):.2f}")
        print(f"| {label.strip()} | " + " | ".join(cells) + " |")
    json.dump(results, open(os.path.join(run.ROOT, "target/bench-ab.json"), "w"), indent=2)


if __name__ == "__main__":
    sys.exit(main())
