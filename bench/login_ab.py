#!/usr/bin/env python3
"""Row 2 alone for two builds, in alternating rounds: the password-login rate of each build as a
ratio to the hashing ceiling measured right around its own run, several rounds per store (A, B,
B, A, ...), so that the machine's drift falls on both builds alike. Shorter and steadier than
ab.py's whole table when only the login path changed.

    python3 bench/login_ab.py --before DIR --after DIR [--rounds 4] [--duration 10s]

Each build serves its own fresh database, created by its own first start (which also creates the
bench administrator); both are driven by the after build's load generator.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402


def one_round(build, load_dir, url, duration):
    run.use_binaries(build, load_dir=load_dir)
    server = run.Server(url)
    try:
        before = run.load("hash-ceiling", "--duration", "5s")["hashes_per_second"]
        logins = run.run(server, "login-password", duration, "--concurrency", "8")["report"]
        after = run.load("hash-ceiling", "--duration", "5s")["hashes_per_second"]
    finally:
        server.stop()
    if logins["errors"]:
        raise SystemExit(f"login run with errors: {logins['errors']}")
    return logins["succeeded_per_second"] / ((before + after) / 2)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", required=True)
    parser.add_argument("--stores", default="postgres,sqlite")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    builds = {"before": args.before, "after": args.after}
    tmp = tempfile.mkdtemp(prefix="identityd-login-ab-")
    print("| store | before: logins ÷ ceiling, per round | after | median after ÷ median before |")
    print("|---|---|---|---|")
    for store in args.stores.split(","):
        ratios = {"before": [], "after": []}
        for n in range(args.rounds):
            for side in (["before", "after"] if n % 2 == 0 else ["after", "before"]):
                name = f"identityd_login_ab_{os.getpid()}_{time.time_ns()}"
                if store == "postgres":
                    subprocess.run(["psql", f"{args.postgres}/postgres", "-qc", f"CREATE DATABASE {name}"], check=True)
                    url = f"{args.postgres}/{name}"
                else:
                    url = f"sqlite://{tmp}/{name}.db"
                try:
                    ratios[side].append(one_round(builds[side], args.after, url, args.duration))
                finally:
                    if store == "postgres":
                        subprocess.run(["psql", f"{args.postgres}/postgres", "-qc",
                                        f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"])
        b, a = (statistics.median(ratios[s]) for s in ("before", "after"))
        cells = [" ".join(f"{r:.2f}" for r in ratios[s]) for s in ("before", "after")]
        print(f"| {store} | {cells[0]} | {cells[1]} | {a / b:.2f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
