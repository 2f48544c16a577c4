#!/usr/bin/env python3
"""Several replicas over one Postgres (BENCHMARKS.md, "Replicas"): ValidateSession throughput with
1, 2 and 3 identityd processes over the same database, in the same run, and the revocation
propagation p50/p99 between two instances.

    python3 bench/replicas.py [--postgres URL] [--duration 10s] [--concurrency 64] [--bin-dir DIR]

Throughput: a fresh database, 1,000 users with 10,000 live sessions (seeded), three identityd
processes started over it with the same key-encryption key; then validate runs over the seeded
tokens against the first replica, the first two and all three, the client spreading its
connections over them in turn (identityd-load --target A,B,C); then three fresh replicas through
Debian's pgbouncer in transaction mode (IDENTITYD_DATABASE_POOLER=transaction, 16 server
connections, listening straight to Postgres), over the same sessions. Each figure is a ratio to the rate
of one replica measured in the same run. On a machine with fewer cores than replicas plus
Postgres plus the client, this shows the overhead of more processes, not a speed-up.

Propagation: runs the integration test that measures it (a debug build, as `cargo test` builds it) (300 logouts on one instance, each
validated back to back on another until refused) and reports the p50 and p99 it prints.
"""
import argparse
import base64
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402


class Pgbouncer:
    """Debian's pgbouncer in transaction mode in front of the Postgres server `url` names, on a
    free port, lending up to `pool` server connections."""

    def __init__(self, url, pool):
        parsed = urllib.parse.urlparse(url)
        self.port = bench.free_port()
        self.server = f"{parsed.hostname}:{parsed.port or 5432}"
        user = parsed.username or "postgres"
        # Under /tmp itself: pgbouncer runs as postgres when we are root, and must reach its
        # directory to write its log there.
        d = self.dir = tempfile.mkdtemp(prefix="identityd-pgbouncer-")
        os.chmod(d, 0o777)
        with open(os.path.join(d, "users.txt"), "w") as f:
            f.write(f'"{user}" "{parsed.password or ""}"\n')
        with open(os.path.join(d, "pgbouncer.ini"), "w") as f:
            f.write(f"[databases]\n* = host={parsed.hostname} port={parsed.port or 5432}\n[pgbouncer]\n"
                    f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\nauth_type = trust\n"
                    f"auth_file = {d}/users.txt\npool_mode = transaction\ndefault_pool_size = {pool}\n"
                    f"max_client_conn = 1000\nlogfile = {d}/pgbouncer.log\npidfile =\n")
        user_args = ["-u", "postgres"] if os.geteuid() == 0 else []
        self.process = subprocess.Popen(["/usr/sbin/pgbouncer", *user_args, os.path.join(d, "pgbouncer.ini")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("pgbouncer did not start")
                time.sleep(0.05)

    def url_of(self, url):
        return url.replace(f"@{self.server}/", f"@127.0.0.1:{self.port}/")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


def validate(replicas, duration, concurrency, tokens):
    target = ",".join(r.target for r in replicas)
    return bench.load("run", "--target", target, "--scenario", "validate", "--duration", duration,
                      "--warmup", "2s", "--user", bench.ADMIN, "--concurrency", str(concurrency),
                      "--connections", str(3 * 2), "--tokens-file", tokens)["report"]


def throughput(url, duration, concurrency, tmp):
    tokens = os.path.join(tmp, "tokens.txt")
    key = base64.b64encode(os.urandom(32)).decode()
    # The first start creates the bench administrator; the others find it.
    replicas = [bench.Server(url, IDENTITYD_KEY_ENCRYPTION_KEY=key)]
    try:
        subprocess.run([bench.SEED, "seed", "--database-url", url, "--users", "1000", "--sessions", "10000",
                        "--tokens-out", tokens, "--keep-tokens", "10000"], check=True, capture_output=True)
        replicas += [bench.Server(url, IDENTITYD_KEY_ENCRYPTION_KEY=key) for _ in range(2)]
        rates = {}
        for n in (1, 2, 3):
            rates[str(n)] = validate(replicas[:n], duration, concurrency, tokens)
    finally:
        for r in replicas:
            r.stop()
    # The same three replicas through pgbouncer in transaction mode, listening straight to Postgres.
    pgbouncer = Pgbouncer(url, 16)
    replicas = []
    try:
        replicas = [bench.Server(pgbouncer.url_of(url), IDENTITYD_KEY_ENCRYPTION_KEY=key, DATABASE_LISTEN_URL=url,
                                 IDENTITYD_DATABASE_POOLER="transaction") for _ in range(3)]
        rates["3 through pgbouncer (transaction mode)"] = validate(replicas, duration, concurrency, tokens)
    finally:
        for r in replicas:
            r.stop()
        pgbouncer.stop()
    return rates


def propagation(url):
    env = {**os.environ, "DATABASE_URL": url}
    out = subprocess.run(["cargo", "test", "--test", "api", "--", "scale_out::a_logout"],
                         cwd=bench.ROOT, env=env, capture_output=True, text=True)
    line = re.search(r"revocation propagation over .*", out.stdout + out.stderr)
    if out.returncode != 0 or not line:
        print(out.stdout[-3000:], out.stderr[-3000:])
        raise SystemExit("the propagation test failed")
    return line.group(0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--bin-dir", help="use these binaries instead of building target/release")
    args = parser.parse_args()
    if args.bin_dir:
        bench.use_binaries(os.path.abspath(args.bin_dir))
    else:
        subprocess.run(["cargo", "build", "--release", "--workspace", "--bins"], cwd=bench.ROOT, check=True)
    name = f"identityd_bench_{os.getpid()}_{time.time_ns()}"
    admin = f"{args.postgres}/postgres"
    subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rates = throughput(f"{args.postgres}/{name}", args.duration, args.concurrency, tmp)
    finally:
        subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"])
    line = propagation(admin)
    one = rates["1"]["succeeded_per_second"]
    print(f"\n{os.cpu_count()} cores; validate over 10,000 seeded sessions, concurrency {args.concurrency}")
    print("| replicas | validations/s | ÷ 1 replica | p99 ms | errors |")
    print("|---|---|---|---|---|")
    for n, report in rates.items():
        rps = report["succeeded_per_second"]
        errors = sum(report["errors"].values())
        print(f"| {n} | {rps:.0f} | {rps / one:.2f} | {report['p99_ms']:.2f} | {errors} |")
    print(f"\n{line}")


if __name__ == "__main__":
    main()
