#!/usr/bin/env python3
"""identityd itself, measured as the peers are: SQLite, k6, the same operations and concurrency.

    python3 bench/peers/identityd.py --bin-dir DIR [--duration 10s] [--concurrency 64]

DIR holds release builds of identityd and identityd-load. The server runs with its defaults on a
fresh SQLite file in a temporary directory (bench/run.py's Server: the bootstrap administrator
bench-admin is the user that logs in).

The operations, each over REST (HTTP/1.1, the AgileApps resources) and over gRPC:
  login      REST: POST /networking/rest/login, <platform><login><userName/><password/></login></platform>
             (200, the session token in <sessionId> and the session cookie);
             gRPC: identity.v1.LoginService/Login with user_name and password.
             Both: an argon2id check and a new session row.
  validate   REST: GET /networking/rest/user/isSessionValid with the cookie identityd_session=<token>
             (200, <is_session_valid>true</is_session_valid>);
             gRPC: identity.v1.SessionService/ValidateSession with session_token.
             Both over the same 64 sessions from 64 REST logins; the service's validation cache
             (2 s) is on, as by default.
identityd-load's own gRPC figures (its generated client, 4 HTTP/2 connections) are taken beside k6's.
"""
import argparse
import os
import re
import shutil
import sqlite3
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import common  # noqa: E402
import run as bench  # noqa: E402  (bench/run.py)

SESSION_COOKIE = "identityd_session"


class Identityd:
    name = "identityd"

    def __init__(self, bin_dir):
        for binary in ("identityd", "identityd-load"):
            if not os.access(os.path.join(bin_dir, binary), os.X_OK):
                common.fail(f"no executable {binary} in {bin_dir}")
        bench.use_binaries(bin_dir)
        self.bin_dir = bin_dir
        self.dir = tempfile.mkdtemp(prefix="peers-identityd-")
        self.db = os.path.join(self.dir, "identityd.db")
        self.server = None

    def start(self):
        print(f"== identityd {self.version()} in {self.dir}", flush=True)
        self.server = bench.Server(f"sqlite://{self.db}")
        self.url = self.server.target
        self.session()  # fails loudly when the REST layer is not built in

    def login_xml(self):
        return (f"<platform><login><userName>{bench.ADMIN}</userName><password>{bench.PASSWORD}</password>"
                f"</login></platform>").encode()

    def session(self, _=None):
        status, _, body = common.request("POST", f"{self.url}/networking/rest/login", self.login_xml(),
                                         headers={"Content-Type": "application/xml"})
        found = re.search(rb"<sessionId>([^<]+)</sessionId>", body)
        if status != 200 or not found:
            common.fail(f"identityd's REST login answered {status} {body[:300]!r}")
        return found.group(1).decode()

    def hash_cost(self):
        """The cost as stored: the PHC string's parameters."""
        db = sqlite3.connect(self.db)
        stored = db.execute("SELECT password_hash FROM users WHERE user_name = ?", (bench.ADMIN,)).fetchone()[0]
        db.close()
        found = re.match(r"\$(argon2id)\$v=(\d+)\$(m=\d+,t=\d+,p=\d+)\$", stored)
        if not found:
            common.fail("identityd's stored hash is not an argon2id PHC string")
        return f"argon2id {found.group(3)} (m in KiB; from the stored PHC string)"

    def hash_ceiling(self):
        """argon2id hashes per second on every core through the service's own hasher, at its
        parameters (identityd-load hash-ceiling)."""
        with common.bench_lock():
            return bench.load("hash-ceiling", "--duration", "5s")["hashes_per_second"]

    def measure(self, duration, concurrency, login_concurrency, warmup):
        body = common.write_secret(self.dir, "login.xml", self.login_xml().decode())
        password = common.write_secret(self.dir, "password.txt", bench.PASSWORD)
        target = self.url.removeprefix("http://")
        results = {}
        results["rest"] = {"login": common.k6("http.js", {
            "METHOD": "POST", "URL": f"{self.url}/networking/rest/login", "BODY": body,
            "HEADERS": '{"Content-Type": "application/xml"}', "EXPECT_STATUS": "200", "EXPECT_BODY": "<sessionId>",
        }, login_concurrency, duration, warmup)}
        results["grpc"] = {"login": common.k6("grpc.js", {
            "TARGET": target, "OPERATION": "login", "USER": bench.ADMIN, "PASSWORD_FILE": password,
        }, login_concurrency, duration, warmup)}
        sessions = common.parallel(64, self.session)
        tokens = common.write_secret(self.dir, "sessions.txt", "\n".join(sessions) + "\n")
        results["rest"]["validate"] = common.k6("http.js", {
            "METHOD": "GET", "URL": f"{self.url}/networking/rest/user/isSessionValid", "TOKENS": tokens,
            "TOKEN_HEADER": "Cookie", "TOKEN_FORMAT": f"{SESSION_COOKIE}={{}}", "EXPECT_STATUS": "200",
            "EXPECT_BODY": "<is_session_valid>true</is_session_valid>",
        }, concurrency, duration, warmup)
        results["grpc"]["validate"] = common.k6("grpc.js", {
            "TARGET": target, "OPERATION": "validate", "TOKENS": tokens,
        }, concurrency, duration, warmup)
        # identityd-load, the project's own generator, over the same kind of load
        own = {}
        with common.bench_lock():
            report = bench.run(self.server, "login-password", duration, "--concurrency", str(login_concurrency))["report"]
        own["login"] = {"per_second": report["succeeded_per_second"], "p99_ms": report["p99_ms"]}
        with common.bench_lock():
            report = bench.run(self.server, "validate", duration, "--concurrency", str(concurrency),
                               "--tokens-file", tokens)["report"]
        own["validate"] = {"per_second": report["succeeded_per_second"], "p99_ms": report["p99_ms"]}
        results["grpc_own"] = own
        return results

    def version(self):
        out = common.subprocess.run([os.path.join(self.bin_dir, "identityd"), "--version"], capture_output=True,
                                    text=True, timeout=10)
        return out.stdout.strip().removeprefix("identityd ") or "(no --version)"

    @staticmethod
    def commit():
        return common.subprocess.run(["git", "-C", common.ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                     text=True).stdout.strip()

    def versions(self):
        lock = open(os.path.join(common.ROOT, "Cargo.lock")).read()
        found = re.search(r'name = "libsqlite3-sys"\nversion = "([^"]+)"', lock)
        return {"identityd": self.version(), "commit": self.commit(),
                "libsqlite3-sys (bundled SQLite)": found.group(1) if found else "?"}

    def stop(self):
        if self.server:
            self.server.stop()
        self.server = None

    def teardown(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", required=True)
    args = common.measurement_arguments(parser).parse_args()
    common.ensure_venv()  # for k6
    common.measure_alone(Identityd(args.bin_dir), args)


if __name__ == "__main__":
    sys.exit(main())
