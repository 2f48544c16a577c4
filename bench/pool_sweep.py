#!/usr/bin/env python3
"""How the database pool size (IDENTITYD_DB_MAX_CONNECTIONS; for SQLite, the reader connections)
changes the uncached validate rate, to choose its default by measurement.

    python3 bench/pool_sweep.py [--stores postgres,sqlite] [--sizes 2,4,8,16,32] [--duration 10s]

Each size gets a freshly started server with the validation cache off, validating 10,000 seeded
sessions at concurrency 64; the rate is shown as a ratio to the health ceiling of the same server.
"""
import argparse
import os
import shutil
import subprocess
import tempfile

import run as bench


def sweep(store, url, sizes, duration, tmp):
    tokens = os.path.join(tmp, f"{store}-tokens.txt")
    bench.Server(url).stop()  # creates the schema and the bench administrator
    subprocess.run([bench.LOAD, "seed", "--database-url", url, "--users", "1000", "--sessions", "10000",
                    "--tokens-out", tokens, "--keep-tokens", "10000"], check=True)
    rows = []
    for size in sizes:
        server = bench.Server(url, IDENTITYD_VALIDATION_CACHE_TTL="0s", IDENTITYD_DB_MAX_CONNECTIONS=str(size))
        try:
            health = bench.run(server, "health", duration, "--concurrency", "64")["report"]
            validate = bench.run(server, "validate", duration, "--concurrency", "64", "--tokens-file", tokens)["report"]
        finally:
            server.stop()
        rows.append((size, validate["succeeded_per_second"] / health["succeeded_per_second"],
                     validate["succeeded_per_second"], validate["p99_ms"]))
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--stores", default="postgres,sqlite")
    parser.add_argument("--sizes", default="2,4,8,16,32")
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release", "--workspace", "--bins"], cwd=bench.ROOT, check=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    tmp = tempfile.mkdtemp(prefix="identityd-bench-")
    results = {}
    try:
        for store in args.stores.split(","):
            if store == "postgres":
                name = f"identityd_bench_pool_{os.getpid()}"
                admin = f"{args.postgres}/postgres"
                subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True)
                try:
                    results[store] = sweep(store, f"{args.postgres}/{name}", sizes, args.duration, tmp)
                finally:
                    subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"])
            else:
                results[store] = sweep(store, f"sqlite://{tmp}/pool.db", sizes, args.duration, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n| store | pool size | validate ÷ health | validate req/s | p99 ms |")
    print("|---|---|---|---|---|")
    for store, rows in results.items():
        for size, ratio, rate, p99 in rows:
            print(f"| {store} | {size} | {ratio:.2f} | {rate:.0f} | {p99:.1f} |")


if __name__ == "__main__":
    main()
