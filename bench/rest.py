#!/usr/bin/env python3
"""Row 6 of BENCHMARKS.md alone: the REST layer's AgileApps isSessionValid rate against the gRPC
ValidateSession rate, both at concurrency 64 over 64 live sessions, on one server in one run
(bench/run.py measures it too, among the other rows).

    python3 bench/rest.py [--stores postgres,sqlite] [--duration 10s] [--rounds 3] [--postgres URL]

The two runs alternate for --rounds rounds, so that drift of the machine falls on both.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402


def measure(store, url, duration, rounds):
    server = bench.Server(url)
    grpc, rest = [], []
    try:
        for _ in range(rounds):
            grpc.append(bench.run(server, "validate", duration, "--concurrency", "64", "--sessions", "64")["report"]["succeeded_per_second"])
            rest.append(bench.run(server, "rest-validate", duration, "--concurrency", "64", "--sessions", "64")["report"]["succeeded_per_second"])
    finally:
        server.stop()
    g, r = sum(grpc) / len(grpc), sum(rest) / len(rest)
    print(f"| {store} | {r / g:.2f} ({r:.0f} / {g:.0f} req/s) |", flush=True)
    return r / g


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--stores", default="postgres,sqlite")
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--no-build", action="store_true", help="use the release binaries already built")
    args = parser.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--workspace", "--bins"], cwd=bench.ROOT, check=True)
    tmp = tempfile.mkdtemp(prefix="identityd-bench-rest-")
    for store in args.stores.split(","):
        if store == "postgres":
            name = f"identityd_bench_rest_{os.getpid()}_{time.time_ns()}"
            admin = f"{args.postgres}/postgres"
            subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True)
            try:
                measure(store, f"{args.postgres}/{name}", args.duration, args.rounds)
            finally:
                subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"])
        else:
            measure(store, f"sqlite://{tmp}/bench-rest.db", args.duration, args.rounds)


if __name__ == "__main__":
    sys.exit(main())
