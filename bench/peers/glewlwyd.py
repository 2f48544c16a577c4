#!/usr/bin/env python3
"""Glewlwyd from Debian's package, with SQLite.

    python3 bench/peers/glewlwyd.py [--duration 10s] [--concurrency 64]

Installs the glewlwyd package (apt-get, as root) when missing, creates a fresh SQLite database in a
temporary directory from the package's sqlite3 scheme, starts glewlwyd on a free port with a
configuration derived from the package's, adds a user "bench" through the administration API,
measures, stops it and removes the directory.

The operations:
  login      POST /api/auth/ {"username", "password"}: the password check of the core user
             backend (database module, PBKDF2-SHA256) and a new session, returned as the
             GLEWLWYD2_SESSION_ID cookie (200)
  validate   GET /api/profile_list with that cookie (one of 64 sessions from 64 logins): the
             session is looked up and the user's profile returned (200)
"""
import argparse
import base64
import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

SCHEME = "/usr/share/dbconfig-common/data/glewlwyd/install/sqlite3"
PACKAGE_CONF = "/etc/glewlwyd/glewlwyd.conf"
COOKIE = "GLEWLWYD2_SESSION_ID"
# The administrator the package's scheme creates, with the password its documentation gives; the
# instance listens on loopback only and is removed after the run.
ADMIN, ADMIN_PASSWORD = "admin", "password"
USER, PASSWORD = "bench", "seven quiet benches"


def ensure_installed():
    if shutil.which("glewlwyd") and os.path.exists(SCHEME) and os.path.exists(PACKAGE_CONF):
        return
    if os.geteuid() != 0:
        common.fail("glewlwyd is not installed, and installing it (apt-get install glewlwyd) needs root")
    print("== installing glewlwyd from Debian", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "glewlwyd"], check=True, env=env)
    if not (shutil.which("glewlwyd") and os.path.exists(SCHEME)):
        common.fail("glewlwyd or its sqlite3 scheme is missing after apt-get install")


def package_version():
    return subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "glewlwyd"], capture_output=True, text=True,
                          check=True).stdout.strip()


class Glewlwyd(common.ServerPeer):
    name = "Glewlwyd"

    def __init__(self):
        ensure_installed()
        self.dir = tempfile.mkdtemp(prefix="peers-glewlwyd-")
        self.port = common.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = os.path.join(self.dir, "glewlwyd.db")
        self.conf = os.path.join(self.dir, "glewlwyd.conf")
        self.process = None
        self.log = open(os.path.join(self.dir, "glewlwyd.log"), "w")

    def configure(self):
        db = sqlite3.connect(self.db)
        db.executescript(open(SCHEME).read())
        db.close()
        conf = open(PACKAGE_CONF).read()
        replacements = [
            (r"(?m)^port=.*$", f"port={self.port}"),
            (r"(?m)^external_url=.*$", f'external_url="{self.url}/"'),
            (r"(?m)^log_mode=.*$", 'log_mode="console"'),
            (r"(?m)^log_level=.*$", 'log_level="ERROR"'),
            (r'(?m)^@include "/etc/glewlwyd/glewlwyd-db.conf"$',
             f'database =\n{{\n  type = "sqlite3"\n  path = "{self.db}"\n}};'),
        ]
        for pattern, value in replacements:
            conf, count = re.subn(pattern, value, conf)
            if count != 1:
                common.fail(f"{PACKAGE_CONF} has no single line matching {pattern}: cannot derive a configuration")
        with open(self.conf, "w") as f:
            f.write(conf)

    def start(self):
        print(f"== Glewlwyd {package_version()} in {self.dir}", flush=True)
        self.configure()
        self.process = subprocess.Popen(["glewlwyd", "--config-file", self.conf], stdout=self.log, stderr=self.log)
        common.wait_http(f"{self.url}/api/", self.process)
        admin = self.session(ADMIN, ADMIN_PASSWORD)
        status, _, body = common.request("POST", f"{self.url}/api/user/", {
            "username": USER, "name": "Bench", "password": PASSWORD, "scope": ["g_profile"], "enabled": True,
        }, headers={"Cookie": f"{COOKIE}={admin}"})
        if status != 200:
            common.fail(f"Glewlwyd refused to create the bench user: {status} {body[:300]!r}")
        sid = self.session(USER, PASSWORD)
        status, _, body = common.request("GET", f"{self.url}/api/profile_list", headers={"Cookie": f"{COOKIE}={sid}"})
        if status != 200 or USER.encode() not in body:
            common.fail(f"Glewlwyd's profile_list with a fresh session answered {status} {body[:300]!r}")

    def session(self, user, password):
        status, headers, body = common.request("POST", f"{self.url}/api/auth/", {"username": user, "password": password})
        if status != 200:
            common.fail(f"Glewlwyd login of {user} answered {status} {body[:300]!r}")
        for cookie in headers.get_all("Set-Cookie") or []:
            name, _, rest = cookie.partition("=")
            if name == COOKIE:
                return rest.split(";", 1)[0]
        common.fail("Glewlwyd's login set no session cookie")

    def hash_cost(self):
        """The cost as stored for the bench user: base64(hash ‖ salt),iterations; checked by
        recomputing PBKDF2-SHA256 with that salt and count."""
        db = sqlite3.connect(self.db)
        stored = db.execute("SELECT guw_password FROM g_user_password JOIN g_user USING (gu_id) WHERE gu_username = ?",
                            (USER,)).fetchone()[0]
        db.close()
        encoded, _, iterations = stored.partition(",")
        raw = base64.b64decode(encoded)
        iterations = int(iterations)
        self.iterations = iterations
        if hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), raw[32:], iterations) != raw[:32]:
            common.fail("Glewlwyd's stored hash is not PBKDF2-SHA256 of the password as read")
        return f"PBKDF2-HMAC-SHA256, {iterations} iterations ({len(raw) - 32}-byte salt; checked against the stored hash)"

    def hash_ceiling(self):
        """PBKDF2-HMAC-SHA256 derivations per second on every core at the stored iteration count,
        with the function Glewlwyd's database backend calls (nettle_pbkdf2_hmac_sha256 of the
        system's libnettle, through ctypes)."""
        setup = ("import ctypes, ctypes.util\n"
                 "nettle = ctypes.CDLL(ctypes.util.find_library('nettle'))\n"
                 "key, salt, out = b'seven quiet benches', b'0123456789abcdef', ctypes.create_string_buffer(32)")
        return common.python_hash_ceiling(
            sys.executable, setup,
            f"nettle.nettle_pbkdf2_hmac_sha256(len(key), key, {self.iterations}, len(salt), salt, 32, out)")

    def measure(self, duration, concurrency, login_concurrency, warmup):
        body = common.write_secret(self.dir, "login.json", f'{{"username": "{USER}", "password": "{PASSWORD}"}}')
        login = common.k6("http.js", {
            "METHOD": "POST", "URL": f"{self.url}/api/auth/", "BODY": body,
            "HEADERS": '{"Content-Type": "application/json"}', "EXPECT_STATUS": "200",
        }, login_concurrency, duration, warmup)
        sessions = common.parallel(64, lambda _: self.session(USER, PASSWORD))
        tokens = common.write_secret(self.dir, "sessions.txt", "\n".join(sessions) + "\n")
        validate = common.k6("http.js", {
            "METHOD": "GET", "URL": f"{self.url}/api/profile_list", "TOKENS": tokens, "TOKEN_HEADER": "Cookie",
            "TOKEN_FORMAT": f"{COOKIE}={{}}", "EXPECT_STATUS": "200", "EXPECT_BODY": f'"username":"{USER}"',
        }, concurrency, duration, warmup)
        return {"login": login, "validate": validate}

    def versions(self):
        sqlite = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "libsqlite3-0"], capture_output=True,
                                text=True).stdout.strip()
        return {"glewlwyd": package_version(), "libsqlite3": sqlite or "?"}


def main():
    parser = common.measurement_arguments(argparse.ArgumentParser())
    parser.add_argument("--keep", action="store_true", help="leave the directory (with its log) in place")
    args = parser.parse_args()
    common.ensure_venv()  # for k6
    common.measure_alone(Glewlwyd(), args, keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
