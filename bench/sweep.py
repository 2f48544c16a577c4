#!/usr/bin/env python3
"""The retention sweep's cost (BENCHMARKS.md, "Session retention sweep"): how many expired sessions
it deletes per second, and validate p99 on one instance while another instance over the same
database sweeps, divided by the p99 of the same run without a sweep.

    python3 bench/sweep.py [--stores sqlite,postgres] [--old 300000] [--duration 10s] [--rounds 2]

For each store: a fresh database; the bench administrator and 1,000 users with 10,000 live
sessions, whose tokens the validate runs use. Each round: `--old` sessions seeded as opened 40 days
ago (so long expired, past the 30-day retention); a fresh measured server whose retention is a
century (its own sweep deletes nothing); a validate run (concurrency 16 over the 10,000 tokens)
with nothing else happening; then the same run during which a second server starts over the same
database 1 s into the measurement, with the default retention: its first sweep, at start, deletes
the old sessions in batches of 500 (the default). The sweeping server logs how many it deleted and
how long that took; rows/s is their quotient. A sweep shorter than the run dilutes the p99 "during",
so the table also says how much of the measured window the sweep covered.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import ADMIN, LOAD, PASSWORD, ROOT, SERVER, Server, free_port, run  # noqa: E402

# The measured server keeps everything: its own sweep (every instance runs one) finds nothing.
KEEP_ALL = {"IDENTITYD_SESSION_RETENTION": "36500d"}


def seed(url, *args):
    subprocess.run([LOAD, "seed", "--database-url", url, *args], check=True, capture_output=True)


def sweeping_server(url, log_path):
    """Starts a server with the default retention whose JSON log goes to `log_path`; its sweep runs
    at once. Answers the process (not waited for: the sweep runs while it starts serving)."""
    env = {**os.environ, "DATABASE_URL": url, "IDENTITYD_LISTEN": f"127.0.0.1:{free_port()}",
           "IDENTITYD_LOG_FORMAT": "json", "RUST_LOG": "warn,identityd::core::session_sweep=info"}
    return subprocess.Popen([SERVER], env=env, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)


def sweep_report(log_path, deadline):
    """The sweep's log line: how many sessions it deleted and how long it took."""
    while time.time() < deadline:
        for line in open(log_path):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("message") == "deleted sessions past their retention":
                return event["deleted"], event["elapsed_ms"] / 1000
        time.sleep(0.2)
    raise SystemExit(f"no sweep reported in {log_path}")


def bench_store(store, url, old, duration, rounds, tmp):
    print(f"== {store}", flush=True)
    tokens = os.path.join(tmp, f"{store}-tokens.txt")
    Server(url).stop()  # the first start creates the bench administrator
    seed(url, "--users", "1000", "--sessions", "10000", "--tokens-out", tokens, "--keep-tokens", "10000")
    validate = ["--concurrency", "16", "--tokens-file", tokens]
    results = []
    for r in range(rounds):
        seed(url, "--users", "1", "--sessions", str(old), "--keep-tokens", "0", "--age", "40d")
        measured = Server(url, **KEEP_ALL)
        log_path = os.path.join(tmp, f"{store}-sweep-{r}.log")
        sweeper = None
        try:
            quiet = run(measured, "validate", duration, *validate)["report"]
            # The run warms up for 2 s; the sweeper starts 1 s into the measured window.
            def start_sweeper():
                nonlocal sweeper
                time.sleep(3)
                sweeper = sweeping_server(url, log_path)
            starter = threading.Thread(target=start_sweeper)
            starter.start()
            during = run(measured, "validate", duration, *validate)["report"]
            starter.join()
            deleted, seconds = sweep_report(log_path, time.time() + 600)
        finally:
            measured.stop()
            if sweeper:
                sweeper.terminate()
                sweeper.wait(timeout=30)
        window = float(duration.rstrip("s")) - 1
        results.append({"quiet": quiet, "during": during, "deleted": deleted, "seconds": seconds,
                        "covered": min(seconds / window, 1.0)})
        print(f"  round {r + 1}: deleted {deleted} in {seconds:.2f} s ({deleted / seconds:,.0f}/s); "
              f"p99 {quiet['p99_ms']:.2f} ms quiet, {during['p99_ms']:.2f} ms during", flush=True)
    return results


def mean(values):
    return sum(values) / len(values)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--old", type=int, default=300_000, help="expired sessions to sweep each round")
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--no-build", action="store_true", help="use target/release as it is")
    args = parser.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--workspace", "--bins"], cwd=ROOT, check=True)
    tmp = tempfile.mkdtemp(prefix="identityd-sweep-")
    results = {}
    try:
        for store in args.stores.split(","):
            if store == "postgres":
                name = f"identityd_sweep_{os.getpid()}"
                admin = f"{args.postgres}/postgres"
                subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True)
                try:
                    results[store] = bench_store(store, f"{args.postgres}/{name}", args.old, args.duration,
                                                 args.rounds, tmp)
                finally:
                    subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"])
            else:
                results[store] = bench_store(store, f"sqlite://{tmp}/sweep.db", args.old, args.duration,
                                             args.rounds, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n| store | sessions deleted per second | sweep ÷ measured window | p99 quiet | p99 during the sweep "
          "| ÷ quiet | validations/s during ÷ quiet |")
    print("|---|---|---|---|---|---|---|")
    for store, runs in results.items():
        rate = mean([r["deleted"] / r["seconds"] for r in runs])
        covered = mean([r["covered"] for r in runs])
        quiet = mean([r["quiet"]["p99_ms"] for r in runs])
        during = mean([r["during"]["p99_ms"] for r in runs])
        throughput = mean([r["during"]["succeeded_per_second"] for r in runs]) / mean(
            [r["quiet"]["succeeded_per_second"] for r in runs])
        print(f"| {store} | {rate:,.0f} | {covered:.2f} | {quiet:.2f} ms | {during:.2f} ms | {during / quiet:.2f} "
              f"| {throughput:.2f} |")
    json.dump(results, open(os.path.join(ROOT, "target/sweep-results.json"), "w"), indent=2)


if __name__ == "__main__":
    sys.exit(main())
