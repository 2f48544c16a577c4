#!/usr/bin/env python3
"""Validate p99 on one instance while another instance over the same database ends 10,000 sessions
of one user at once, for the current build and for an earlier one, in the same run (BENCHMARKS.md,
"Mass revocation").

    python3 bench/revocation.py --baseline REV [--stores sqlite,postgres] [--duration 15s] [--rounds 2]

--baseline builds the service as it was at git revision REV (from `git archive`, into the shared
target directory, so that only the service itself is compiled again) and measures it beside the
current build. For each store: a fresh database; the bench administrator and 1,000 users with
10,000 live sessions, whose tokens the validate runs use. Then, each round and for each build (in
alternating order, ABBA, as the machine drifts): a fresh pair of servers over the database, the
measured one of that build and the revoking one always of the current build (so that only the
measured instance differs); a new user seeded with 10,000 sessions; a validate run (concurrency 16
over the 10,000 tokens) with nothing else happening, then the same run during which the user, logged
in on the other instance, ends its 10,000 other sessions at once 1 s in. The measured instance
learns of them only through its revocation poll. The runs last long enough (15 s) to cover the
poll's whole look-back window after the revocation.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import LOAD, ROOT, SERVER, Server, run  # noqa: E402


def build_current():
    subprocess.run(["cargo", "build", "--release", "--workspace", "--bins"], cwd=ROOT, check=True)
    os.makedirs(os.path.join(ROOT, "target/bench"), exist_ok=True)
    binary = os.path.join(ROOT, "target/bench/identityd-current")
    shutil.copy2(SERVER, binary)
    return binary


def build_baseline(rev):
    """The service binary as of `rev`, built once and kept in target/bench/."""
    commit = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout.strip()
    binary = os.path.join(ROOT, f"target/bench/identityd-{commit}")
    if os.path.exists(binary):
        return commit, binary
    src = tempfile.mkdtemp(prefix=f"identityd-{commit}-")
    try:
        archive = subprocess.run(["git", "archive", commit], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", src], input=archive, check=True)
        env = {**os.environ, "CARGO_TARGET_DIR": os.path.join(ROOT, "target")}
        subprocess.run(["cargo", "build", "--release", "-p", "identityd", "--bin", "identityd"], cwd=src, env=env,
                       check=True)
        os.makedirs(os.path.dirname(binary), exist_ok=True)
        shutil.copy2(SERVER, binary)
    finally:
        shutil.rmtree(src, ignore_errors=True)
    return commit, binary


def seed(url, *args):
    subprocess.run([LOAD, "seed", "--database-url", url, *args], check=True, capture_output=True)


def bench_store(store, url, builds, duration, rounds, tmp):
    print(f"== {store}", flush=True)
    tokens = os.path.join(tmp, f"{store}-tokens.txt")
    users = os.path.join(tmp, f"{store}-revoking-user.txt")
    current = builds["current"]
    # The first start creates the bench administrator.
    Server(url, binary=current).stop()
    seed(url, "--users", "1000", "--sessions", "10000", "--tokens-out", tokens, "--keep-tokens", "10000")
    results = {name: {"quiet": [], "revocation": []} for name in builds}
    for r in range(rounds):
        order = list(builds) if r % 2 == 0 else list(reversed(builds))
        for name in order:
            measured = Server(url, binary=builds[name])
            revoking = Server(url, binary=current)
            try:
                seed(url, "--users", "1", "--sessions", "10000", "--keep-tokens", "0", "--users-out", users)
                user = open(users).read().split()[0]
                validate = ["--concurrency", "16", "--tokens-file", tokens]
                print(f"  {name}:", flush=True)
                quiet = run(measured, "validate", duration, *validate)
                during = run(measured, "validate", duration, *validate, "--revoke-user", user,
                             "--revoke-target", revoking.target, "--revoke-after", "1s")
                assert during["revocation"]["sessions"] == 10000, during["revocation"]
                results[name]["quiet"].append(quiet["report"])
                results[name]["revocation"].append(during["report"])
            finally:
                measured.stop()
                revoking.stop()
            # So that the next servers start with the revocation outside every poll's look-back.
            time.sleep(5)
    return results


def mean(values):
    return sum(values) / len(values)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="the git revision to compare with, e.g. 7926c53")
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--duration", default="15s")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    commit, baseline = build_baseline(args.baseline)
    builds = {commit: baseline, "current": build_current()}
    tmp = tempfile.mkdtemp(prefix="identityd-revocation-")
    results = {}
    try:
        for store in args.stores.split(","):
            if store == "postgres":
                name = f"identityd_revocation_{os.getpid()}"
                admin = f"{args.postgres}/postgres"
                subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True)
                try:
                    results[store] = bench_store(store, f"{args.postgres}/{name}", builds, args.duration,
                                                 args.rounds, tmp)
                finally:
                    subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"])
            else:
                results[store] = bench_store(store, f"sqlite://{tmp}/revocation.db", builds, args.duration,
                                             args.rounds, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n| store | build | p99 quiet | p99 during the revocation | ÷ quiet | requests/s during ÷ quiet |")
    print("|---|---|---|---|---|---|")
    for store, by_build in results.items():
        for name, runs in by_build.items():
            quiet = mean([r["p99_ms"] for r in runs["quiet"]])
            during = mean([r["p99_ms"] for r in runs["revocation"]])
            rate = mean([r["succeeded_per_second"] for r in runs["revocation"]]) / mean(
                [r["succeeded_per_second"] for r in runs["quiet"]])
            print(f"| {store} | {name} | {quiet:.2f} ms | {during:.2f} ms | {during / quiet:.2f} | {rate:.2f} |")
    for store, by_build in results.items():
        old, new = (mean([r["p99_ms"] for r in by_build[name]["revocation"]]) for name in (commit, "current"))
        print(f"{store}: p99 during the revocation, current ÷ {commit}: {new / old:.2f}")
    json.dump(results, open(os.path.join(ROOT, "target/revocation-results.json"), "w"), indent=2)


if __name__ == "__main__":
    sys.exit(main())
