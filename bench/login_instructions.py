#!/usr/bin/env python3
"""The CPU work of one password login, counted in instructions: what the login-rate row cannot
show on a busy machine. Each build's server runs under `valgrind --tool=callgrind` with argon2 at
its smallest cost (8 KiB, one pass), so that what is left is the work around the hash; the counters
are zeroed after a warm-up and dumped after a fixed number of logins (concurrency 1), and the
instructions spent inside argon2 are reported apart. Instruction counts repeat for the same binary
and input whatever else the machine is doing.

    python3 bench/login_instructions.py --build before=DIR --build after=DIR [--stores sqlite,postgres]

Only the identityd process is counted: on Postgres the database server's own work is not in the
figure (its share shows in the login-rate rows of BENCHMARKS.md).
"""
import argparse
import glob
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402

CHEAP_HASHING = {"IDENTITYD_ARGON2_MEMORY_KIB": "8", "IDENTITYD_ARGON2_ITERATIONS": "1",
                 "IDENTITYD_HASHING_CONCURRENCY": "1"}


def wait_until_serving(target):
    deadline = time.time() + 300
    while subprocess.run([run.LOAD, "run", "--scenario", "health", "--target", target, "--requests", "1",
                          "--warmup", "1s", "--concurrency", "1", "--connections", "1"],
                         capture_output=True).returncode != 0:
        if time.time() > deadline:
            raise SystemExit("the server did not start under valgrind")
        time.sleep(0.5)


def logins(target, count):
    report = run.load("run", "--target", target, "--scenario", "login-password", "--requests", str(count),
                      "--warmup", "1s", "--concurrency", "1", "--connections", "1", "--user", run.ADMIN)
    if report["report"]["errors"]:
        raise SystemExit(f"logins failed: {report['report']['errors']}")


def sessions(url):
    """How many sessions the database holds: the logins made, warm-ups included, counted exactly."""
    if url.startswith("sqlite://"):
        with sqlite3.connect(url.removeprefix("sqlite://")) as db:
            return db.execute("SELECT count(*) FROM sessions").fetchone()[0]
    out = subprocess.run(["psql", url, "-tAc", "SELECT count(*) FROM sessions"], check=True, capture_output=True,
                         text=True).stdout
    return int(out.strip())


def instructions(dump):
    """Total instructions of a callgrind dump, and those inside argon2's block fill."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", dump],
                         check=True, capture_output=True, text=True).stdout
    total = int(re.search(r"^([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", out, re.M).group(1).replace(",", ""))
    # argon2's work is all but a few thousand instructions inside its block fill (inclusive).
    argon2 = 0
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([\d.]+%\)\s+\S*?:(\S+)", line)
        if m and m.group(2) == "argon2::Argon2::fill_blocks":
            argon2 = int(m.group(1).replace(",", ""))
    return total, argon2


def measure(bin_dir, url, count, tmp, hashing):
    run.use_binaries(bin_dir)
    port = run.free_port()
    target = f"http://127.0.0.1:{port}"
    out = os.path.join(tmp, f"callgrind.{time.time_ns()}")
    env = {**os.environ, **hashing, "DATABASE_URL": url, "IDENTITYD_LISTEN": f"127.0.0.1:{port}",
           "IDENTITYD_BOOTSTRAP_TENANT": "Bench", "IDENTITYD_BOOTSTRAP_USER": run.ADMIN,
           "IDENTITYD_BOOTSTRAP_PASSWORD": run.PASSWORD, "RUST_LOG": "warn"}
    server = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p",
                               run.SERVER], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_serving(target)
        logins(target, 50)  # warm-up: pools, caches, first-use allocations
        before = sessions(url)
        subprocess.run(["callgrind_control", "-z", str(server.pid)], check=True, capture_output=True)
        logins(target, count)
        subprocess.run(["callgrind_control", "-d", str(server.pid)], check=True, capture_output=True)
        made = sessions(url) - before
    finally:
        server.terminate()
        server.wait(timeout=120)
    dumps = sorted(glob.glob(f"{out}.{server.pid}.*"), key=os.path.getmtime)
    total, argon2 = instructions(dumps[-1])
    return total / made, argon2 / made


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", action="append", required=True, help="NAME=DIR with identityd and identityd-load")
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--logins", type=int, default=300)
    parser.add_argument("--real-hashing", action="store_true",
                        help="argon2 at the configured default cost instead of the smallest")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="identityd-login-instructions-")
    print("| store | build | instructions per login | of which argon2's block fill | the rest |")
    print("|---|---|---|---|---|")
    for store in args.stores.split(","):
        for name, bin_dir in (b.split("=", 1) for b in args.build):
            db = f"identityd_login_ir_{os.getpid()}_{time.time_ns()}"
            if store == "postgres":
                subprocess.run(["psql", f"{args.postgres}/postgres", "-qc", f"CREATE DATABASE {db}"], check=True)
                url = f"{args.postgres}/{db}"
            else:
                url = f"sqlite://{tmp}/{db}.db"
            try:
                per_login, argon2 = measure(bin_dir, url, args.logins, tmp,
                                          {} if args.real_hashing else CHEAP_HASHING)
            finally:
                if store == "postgres":
                    subprocess.run(["psql", f"{args.postgres}/postgres", "-qc",
                                    f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"])
            print(f"| {store} | {name} | {per_login:,.0f} | {argon2:,.0f} | {per_login - argon2:,.0f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
