#!/usr/bin/env python3
"""The cost of metrics and tracing: ValidateSession's rate with them on ÷ off, in the same run.

    python3 bench/observability.py [--store sqlite|postgres] [--duration 10s] [--rounds 2] [--bin-dir DIR]

"On" is a server with the admin listener (IDENTITYD_ADMIN_ADDR: the Prometheus recorder records
every call) and RUST_LOG=info (the per-call `rpc` span is made and entered for every call); "off"
is the same binary without the admin listener (metrics go to the no-op recorder) and with
RUST_LOG=warn (the span is disabled). Both serve the same database, one after the other, in the
order off, on, on, off for each round, so that the machine's drift falls on both alike; the /metrics
endpoint is scraped after each "on" run, as Prometheus would, to check it counted the calls.
"""
import argparse
import os
import shutil
import socket
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


def measure(url, on, duration):
    settings = {"RUST_LOG": "info" if on else "warn"}
    admin = None
    if on:
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
        return report["requests_per_second"]
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", default="sqlite")
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--bin-dir", help="use these release binaries instead of building target/release")
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
    rates = {False: [], True: []}
    try:
        for _ in range(args.rounds):
            for on in (False, True, True, False):
                print(f"== metrics and tracing {'on' if on else 'off'}", flush=True)
                rates[on].append(measure(url, on, args.duration))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if args.store == "postgres":
            subprocess.run(["psql", f"{args.postgres}/postgres", "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"])
    on, off = sum(rates[True]) / len(rates[True]), sum(rates[False]) / len(rates[False])
    print(f"\nvalidate rate, metrics and tracing on ÷ off ({args.store}, concurrency 64, 64 sessions): "
          f"{on / off:.3f} ({on:.0f} / {off:.0f} requests/s; on {[round(r) for r in rates[True]]}, "
          f"off {[round(r) for r in rates[False]]})")


if __name__ == "__main__":
    sys.exit(main())
