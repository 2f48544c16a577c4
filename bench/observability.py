#!/usr/bin/env python3
"""The cost of metrics and tracing: ValidateSession's rate with them on ÷ off, in the same run.

    python3 bench/observability.py [--store sqlite|postgres] [--duration 10s] [--rounds 2] [--bin-dir DIR] [--split]

"On" is a server with the admin listener (IDENTITYD_ADMIN_ADDR: the Prometheus recorder records
every call) and RUST_LOG=info (the per-call `rpc` span is made and entered for every call); "off"
is the same binary without the admin listener (metrics go to the no-op recorder) and with
RUST_LOG=warn (the span is disabled). Both serve the same database, one after the other, in the
order off, on, on, off for each round, so that the machine's drift falls on both alike; the /metrics
endpoint is scraped after each "on" run, as Prometheus would, to check it counted the calls.
With --split, metrics alone and tracing alone are measured too (order off, metrics, tracing, on,
then the reverse), to say which one costs. Each round gives its own ratio (its two "on" runs over
its two "off" runs); the figure is the median of the rounds' ratios, the ratio of the means beside.
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(url, config, duration):
    metrics, tracing = {"off": (False, False), "metrics": (True, False), "tracing": (False, True),
                        "on": (True, True)}[config]
    settings = {"RUST_LOG": "info" if tracing else "warn"}
    admin = None
    if metrics:
        admin = f"127.0.0.1:{free_port()}"
        settings["IDENTITYD_ADMIN_ADDR"] = admin
    server = bench.Server(url, **settings)
    try:
        report = bench.run(server, "validate", duration, "--concurrency", "64", "--sessions", "64")["report"]
        if admin:
            body = urllib.request.urlopen(f"http://{admin}/metrics").read().decode()
            line = next(l for l in body.splitlines()
                        if l.startswith("identityd_rpc_requests_total") and 'method="ValidateSession"' in l
                        and 'code="OK"' in l)
            counted = float(line.rsplit(" ", 1)[1])
            print(f"      /metrics counted {counted:.0f} ValidateSession calls", flush=True)
        return report["succeeded_per_second"]
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", default="sqlite")
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--bin-dir", help="use these release binaries instead of building target/release")
    parser.add_argument("--split", action="store_true", help="measure metrics alone and tracing alone too")
    args = parser.parse_args()
    if args.bin_dir:
        bench.use_binaries(args.bin_dir)
    else:
        subprocess.run(["cargo", "build", "--release", "--workspace", "--bins"], cwd=bench.ROOT, check=True)
    tmp = tempfile.mkdtemp(prefix="identityd-bench-")
    name = f"identityd_bench_{os.getpid()}_{time.time_ns()}"
    if args.store == "postgres":
        subprocess.run(["psql", f"{args.postgres}/postgres", "-qc", f"CREATE DATABASE {name}"], check=True)
        url = f"{args.postgres}/{name}"
    else:
        url = f"sqlite://{tmp}/bench.db"
    configs = ["off", "metrics", "tracing", "on"] if args.split else ["off", "on"]
    rates = {config: [] for config in configs}
    try:
        for _ in range(args.rounds):
            for config in configs + configs[::-1]:
                print(f"== {config}", flush=True)
                rates[config].append(measure(url, config, args.duration))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if args.store == "postgres":
            subprocess.run(["psql", f"{args.postgres}/postgres", "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"])
    mean = {config: sum(r) / len(r) for config, r in rates.items()}
    print()
    for config in configs[1:]:
        label = "metrics and tracing on" if config == "on" else f"{config} alone"
        # Each round's own ratio (its two runs of each, next to each other in time): on a machine
        # whose speed drifts, the median of these is steadier than the ratio of the means.
        per_round = sorted(sum(rates[config][2 * i:2 * i + 2]) / sum(rates["off"][2 * i:2 * i + 2])
                           for i in range(args.rounds))
        median = statistics.median(per_round)
        print(f"validate rate, {label} ÷ off ({args.store}, concurrency 64, 64 sessions): "
              f"median of {args.rounds} rounds {median:.3f} (rounds {[round(r, 3) for r in per_round]}); "
              f"ratio of the means {mean[config] / mean['off']:.3f} ({mean[config]:.0f} / {mean['off']:.0f} requests/s; "
              f"{config} {[round(r) for r in rates[config]]}, off {[round(r) for r in rates['off']]})")


if __name__ == "__main__":
    sys.exit(main())
