#!/usr/bin/env python3
"""Starts a throwaway identityd for the client examples, runs a command against it, and stops it.

    python3 examples/serve.py -- COMMAND [ARG...]   run COMMAND against a fresh server, then stop it
    python3 examples/serve.py                       start a fresh server and keep it until Ctrl-C

The server is the real binary ($IDENTITYD_BIN, or target/debug/identityd built with `cargo build`)
on a port the kernel picks, over a SQLite file in a temporary directory, with a first administrator
whose password is generated here. It is made easy to overload (one hashing thread, no queue) so that
the examples can show RESOURCE_EXHAUSTED / OVERLOADED and their retry, and each user may hold only a
few access tokens so that they can show TOKEN_LIMIT_REACHED.

COMMAND gets the server in its environment: IDENTITYD_TARGET (host:port), DEMO_USER and
DEMO_PASSWORD (the administrator). It runs once the server's health is SERVING; afterwards the
server gets SIGTERM and must exit 0. The exit status is the command's, or 1 if the server failed.

Needs grpcio (examples/python/requirements.txt) for the health check.
"""

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
# Failure guards, never waits standing in for synchronisation.
START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 60
ACCESS_TOKENS_PER_USER = 5


class Server:
    """One identityd process and what it printed."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.password = secrets.token_urlsafe(18)
        self.address = None
        self.log_path = workdir / "identityd.log"
        self._listening = threading.Event()
        self.process = None

    def start(self, binary: Path):
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("IDENTITYD_") and key != "DATABASE_URL"
        }
        env.update(
            {
                "DATABASE_URL": f"sqlite://{self.workdir / 'identityd.db'}",
                "IDENTITYD_LISTEN": "127.0.0.1:0",
                "IDENTITYD_LOG_FORMAT": "json",
                "IDENTITYD_BOOTSTRAP_TENANT": "Example",
                "IDENTITYD_BOOTSTRAP_USER": "admin",
                "IDENTITYD_BOOTSTRAP_PASSWORD": self.password,
                "IDENTITYD_HASHING_CONCURRENCY": "1",
                "IDENTITYD_HASHING_QUEUE": "0",
                "IDENTITYD_MAX_ACCESS_TOKENS_PER_USER": str(ACCESS_TOKENS_PER_USER),
            }
        )
        self.process = subprocess.Popen(
            [str(binary)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read_output, daemon=True).start()
        if not self._listening.wait(START_TIMEOUT_S) or self.address is None:
            raise RuntimeError("identityd did not report its address")
        self._wait_until_serving()

    def _read_output(self):
        with open(self.log_path, "w", encoding="utf-8") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("message") == "serving gRPC" and "address" in event:
                    self.address = event["address"]
                    self._listening.set()
        # The process ended: wake a waiter that would otherwise wait for an address in vain.
        self._listening.set()

    def _wait_until_serving(self):
        """Follows grpc.health.v1.Health/Watch for the whole server until it says SERVING."""
        serving = b"\x08\x01"  # HealthCheckResponse{status: SERVING}
        with grpc.insecure_channel(self.address) as channel:
            watch = channel.unary_stream(
                "/grpc.health.v1.Health/Watch",
                request_serializer=lambda raw: raw,
                response_deserializer=lambda raw: raw,
            )
            for status in watch(b"", timeout=START_TIMEOUT_S, wait_for_ready=True):
                if status == serving:
                    return
        raise RuntimeError("identityd's health never became SERVING")

    def stop(self) -> int:
        """SIGTERM, then the exit status (a kill after the guard counts as a failure)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                return -1
        return self.process.returncode

    def show_log(self):
        sys.stderr.write(f"--- identityd's log ({self.log_path})\n")
        sys.stderr.write(self.log_path.read_text(encoding="utf-8", errors="replace"))


def identityd_binary() -> Path:
    if os.environ.get("IDENTITYD_BIN"):
        return Path(os.environ["IDENTITYD_BIN"])
    subprocess.run(["cargo", "build", "--quiet", "--bin", "identityd"], cwd=ROOT, check=True)
    return ROOT / "target" / "debug" / "identityd"


def main(argv):
    if argv and argv[0] == "--":
        argv = argv[1:]
    binary = identityd_binary()
    with tempfile.TemporaryDirectory(prefix="identityd-example-") as tmp:
        server = Server(Path(tmp))
        try:
            server.start(binary)
        except (RuntimeError, grpc.RpcError) as error:
            server.stop()
            server.show_log()
            print(f"serve.py: {error}", file=sys.stderr)
            return 1
        env = dict(os.environ)
        env.update(
            {
                "IDENTITYD_TARGET": server.address,
                "DEMO_USER": "admin",
                "DEMO_PASSWORD": server.password,
            }
        )
        status = 0
        try:
            if argv:
                status = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL).returncode
            else:
                print(f"identityd serves on {server.address}; log: {server.log_path}")
                print(f"export IDENTITYD_TARGET={server.address} DEMO_USER=admin DEMO_PASSWORD={server.password}")
                print("Ctrl-C stops it.", flush=True)
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
                signal.sigwait({signal.SIGINT, signal.SIGTERM})
        except KeyboardInterrupt:
            status = 130
        finally:
            stopped = server.stop()
        if stopped != 0:
            server.show_log()
            print(f"serve.py: identityd exited with {stopped} after SIGTERM", file=sys.stderr)
            return status or 1
        if status != 0:
            server.show_log()
        return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
