#!/usr/bin/env python3
"""The cost of metrics and tracing in instructions: the server's instructions per ValidateSession
with them on and off, counted by valgrind's callgrind.

    python3 bench/observability_instructions.py [--bin-dir DIR] [--calls 8000] [--keep-dumps DIR]

Rates on a shared machine drift by ±15% from run to run (bench/observability.py); instruction
counts do not, so this says what metrics and tracing add to each call, whatever the machine is
doing. "On" and "off" are as in bench/observability.py (admin listener and RUST_LOG=info, or
neither and RUST_LOG=warn), on SQLite, with ValidateSession at concurrency 64 over 4 sessions
(answered from the validation cache). The server runs under callgrind; its counters are zeroed
before, and dumped after, each of two runs of the load generator (calls/4 and calls calls, each
after a 1 s warm-up and 4 logins), each dump also says how many calls were served in it (the calls
of a function called once per validation), and the difference of the two instruction counts over
the difference of the two call counts is the cost of one call, free of start-up and logins. Callgrind runs the threads
one at a time, so what two cores contending for one cache line cost is not in these counts.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402


# Called once per ValidateSession call: its call count in a dump is the number of calls served.
ONCE_PER_CALL = "identityd::core::validation_cache::ValidationCache::get"


def dump_total(out, name):
    """The instruction total of the callgrind dump named `name`, and the ValidateSession calls in it."""
    for path in glob.glob(out + "*"):
        with open(path, errors="replace") as f:
            text = f.read()
        if re.search(rf"^desc: Trigger: .*\b{name}$", text, re.M):
            total = int(re.search(r"^(?:summary|totals): (\d+)", text, re.M).group(1))
            return total, calls_to(text, ONCE_PER_CALL)
    raise SystemExit(f"callgrind wrote no dump {name}")


def calls_to(text, function):
    """How many times the dump saw `function` called (its `calls=` lines, under compressed names)."""
    names, callee, calls = {}, None, 0
    for line in text.splitlines():
        if line.startswith(("fn=", "cfn=")):
            match = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line)
            if match and match.group(2):
                names[match.group(1)] = match.group(2).strip()
            if line.startswith("cfn=") and match:
                callee = names.get(match.group(1))
        elif line.startswith("calls=") and callee is not None:
            if callee == function:
                calls += int(line[6:].split()[0])
            callee = None
    return calls


def instructions_per_call(config, calls, tmp):
    port = bench.free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite://{tmp}/{config}.db", "IDENTITYD_LISTEN": f"127.0.0.1:{port}",
           "IDENTITYD_BOOTSTRAP_TENANT": "Bench", "IDENTITYD_BOOTSTRAP_USER": bench.ADMIN,
           "IDENTITYD_BOOTSTRAP_PASSWORD": bench.PASSWORD, "IDENTITYD_DATA_DIR": f"{tmp}/{config}-data",
           "RUST_LOG": "info" if config == "on" else "warn"}
    if config == "on":
        env["IDENTITYD_ADMIN_ADDR"] = f"127.0.0.1:{bench.free_port()}"
    out = f"{tmp}/{config}.callgrind"
    server = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", bench.SERVER],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = f"http://127.0.0.1:{port}"
    load_env = {**os.environ, "IDENTITYD_LOAD_PASSWORD": bench.PASSWORD}

    def load(scenario, requests, *extra):
        return subprocess.run([bench.LOAD, "run", "--scenario", scenario, "--target", target, "--requests",
                               str(requests), "--warmup", "1s", *extra], env=load_env, capture_output=True)

    try:
        deadline = time.time() + 300
        while load("health", 1, "--concurrency", "1", "--connections", "1").returncode:
            if time.time() > deadline or server.poll() is not None:
                raise SystemExit("the server did not start under valgrind")
            time.sleep(1)
        validate = ("--concurrency", "64", "--sessions", "4", "--user", bench.ADMIN)
        load("validate", 1000, *validate).check_returncode()  # sessions opened, caches filled
        totals = []
        for name, requests in (("short", calls // 4), ("long", calls)):
            subprocess.run(["callgrind_control", "-z", str(server.pid)], check=True, capture_output=True)
            load("validate", requests, *validate).check_returncode()
            subprocess.run(["callgrind_control", "-d", name, str(server.pid)], check=True, capture_output=True)
            deadline = time.time() + 60
            while True:
                try:
                    totals.append(dump_total(out, name))
                    break
                except SystemExit:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=120)
    (short, short_calls), (long, long_calls) = totals
    return (long - short) / (long_calls - short_calls)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", help="use these release binaries instead of building target/release")
    parser.add_argument("--calls", type=int, default=8000)
    parser.add_argument("--keep-dumps", metavar="DIR",
                        help="keep callgrind's dumps here (off.callgrind*, on.callgrind*) for callgrind_annotate")
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is needed (apt-get install valgrind)")
    if args.bin_dir:
        bench.use_binaries(args.bin_dir)
    else:
        subprocess.run(["cargo", "build", "--release", "--workspace", "--bins"], cwd=bench.ROOT, check=True)
    tmp = tempfile.mkdtemp(prefix="identityd-bench-")
    try:
        cost = {config: instructions_per_call(config, args.calls, tmp) for config in ("off", "on")}
    finally:
        if args.keep_dumps:
            os.makedirs(args.keep_dumps, exist_ok=True)
            for path in glob.glob(f"{tmp}/*.callgrind*"):
                shutil.copy(path, args.keep_dumps)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"server instructions per ValidateSession: off {cost['off']:.0f}, on {cost['on']:.0f}: "
          f"metrics and tracing add {cost['on'] - cost['off']:.0f} ({cost['on'] / cost['off'] - 1:.1%}); "
          f"off ÷ on {cost['off'] / cost['on']:.3f}")


if __name__ == "__main__":
    sys.exit(main())
