#!/usr/bin/env python3
"""swim, foca and memberlist CPU per member-second, N members in one process each, run in
the same sitting (issue 16 §1; python3 standard library only).

    python3 benches/scripts/cpu_side_by_side.py [--rounds 3] [--members 32] [--duration 120]
        [--warmup S] [--seed 1] [--runtime multi|current]
        [--out benches/results/cpu_side_by_side.json] [--no-build]

Builds `quic_scenario` and `foca_udp` (cargo, --locked, into --target-dir, which defaults to
$CARGO_TARGET_DIR) and benches/cpu-peers (memberlist 0.2.2 from Debian's
golang-github-hashicorp-memberlist-dev, offline in GOPATH mode, as memberlist-flaky/run.sh
does; needs golang-go). Then, each round, runs the three one at a time, never together, in an
order that rotates from round to round:

- swim: `quic_scenario --crash 0` — QUIC + mutual TLS on loopback, swim's defaults;
- foca: `foca_udp` — foca 2.0 with `Config::new_lan(N)`, plaintext UDP on loopback;
- memberlist: `cpu-peers` — `DefaultLANConfig()`, plaintext UDP + TCP on loopback.

Each joins through member 0, waits until everyone sees everyone, warms up (the same --warmup
for all three: by default quic_scenario's own, 2·N probe periods and at least 30 s), then
measures a window of --duration seconds: process CPU (user + system) over the window divided by
members × window seconds. With --runtime multi (the default) the Rust peers run 2 tokio worker
threads and memberlist GOMAXPROCS=2; with --runtime current, one thread each (a tokio
current-thread runtime, as `swim-node run` runs a member; GOMAXPROCS=1).
Prints a markdown table (medians over rounds) and the ratios against issue 16's targets, and
writes every run's JSON to --out.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

from binaries import add_build_args, binaries

HERE = os.path.dirname(os.path.abspath(__file__))
GO_SOURCE = os.path.join(HERE, "..", "cpu-peers", "main.go")
NAMES = ["swim", "foca", "memberlist"]
# Issue 16 §1: swim's CPU per member-second at most this share of each peer's.
TARGETS = {"foca": 1.5, "memberlist": 0.5}


def build_go(build, no_build):
    """Builds benches/cpu-peers against Debian's memberlist; nothing is downloaded."""
    binary = os.path.join(build, "cpu-peers")
    if no_build:
        return binary
    src = os.path.join(build, "gopath", "src", "cpupeers")
    os.makedirs(src, exist_ok=True)
    shutil.copy(GO_SOURCE, src)
    env = dict(os.environ, GO111MODULE="off", GOFLAGS="",
               GOPATH=f"{build}/gopath:/usr/share/gocode", GOCACHE=f"{build}/gocache")
    subprocess.run(["go", "build", "-o", binary, "."], cwd=src, env=env, check=True)
    return binary


def run(argv):
    """Runs a binary that prints one JSON line; adds its wall time and whole-process CPU."""
    started = time.monotonic()
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    out = child.stdout.read()
    # wait4: this child's own resource usage, not that of every child so far.
    _, status, usage = os.wait4(child.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    child.returncode = code
    if code != 0:
        raise subprocess.CalledProcessError(code, argv)
    v = json.loads(out.strip().splitlines()[-1])
    v["process_wall_s"] = time.monotonic() - started
    v["process_cpu_s"] = usage.ru_utime + usage.ru_stime
    return v


def figures(name, v):
    """The compared figures: CPU µs, bytes and datagrams sent, per member-second. swim's
    bytes are its whole UDP payload (QUIC and TLS included), as the peers' are."""
    if name == "swim":
        b, p = v["wire_bytes_per_member_per_s"], v["wire_datagrams_per_member_per_s"]
    else:
        b, p = v["bytes_per_member_per_s"], v["packets_per_member_per_s"]
    return {"cpu_us": v["cpu_s_per_member_per_s"] * 1e6, "bytes": b, "packets": p}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--members", type=int, default=32)
    p.add_argument("--duration", type=float, default=120.0)
    p.add_argument("--warmup", type=float,
                   help="seconds [default: max(30, 2·members), quic_scenario's own at 1 s "
                        "probes]")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--runtime", choices=["multi", "current"], default="multi",
                   help="the Rust runners' tokio runtime (and memberlist's GOMAXPROCS 2 or 1)")
    p.add_argument("--out", default="benches/results/cpu_side_by_side.json")
    p.add_argument("--go-build", default="/tmp/cpu-peers-build",
                   help="where the Go member is built")
    add_build_args(p)
    p.set_defaults(target_dir=os.environ.get("CARGO_TARGET_DIR") or "target")
    a = p.parse_args()
    warmup = a.warmup if a.warmup is not None else max(30.0, 2.0 * a.members)

    bins = binaries(a, ["quic_scenario", "foca_udp"])
    go = build_go(a.go_build, a.no_build)
    n, d, w = str(a.members), str(a.duration), str(warmup)
    argv = {
        "swim": [bins["quic_scenario"], "--members", n, "--duration", d, "--warmup", w,
                 "--crash", "0", "--seed", str(a.seed), "--runtime", a.runtime, "--json"],
        "foca": [bins["foca_udp"], "--members", n, "--duration", d, "--warmup", w,
                 "--seed", str(a.seed), "--runtime", a.runtime],
        "memberlist": [go, "-members", n, "-duration", d, "-warmup", w,
                       "-procs", "2" if a.runtime == "multi" else "1"],
    }
    started = time.monotonic()
    runs = []
    for r in range(a.rounds):
        order = NAMES[r % 3:] + NAMES[:r % 3]
        for name in order:
            print(f"round {r + 1}/{a.rounds}: {name} …", file=sys.stderr, flush=True)
            v = run(argv[name])
            f = figures(name, v)
            print(f"  {f['cpu_us']:.0f} µs CPU, {f['bytes']:.0f} B, {f['packets']:.2f} "
                  f"datagrams per member-second; {v['process_wall_s']:.0f} s wall",
                  file=sys.stderr, flush=True)
            runs.append({"implementation": name, "round": r + 1,
                         "argv": [os.path.basename(argv[name][0])] + argv[name][1:],
                         "figures": f, "result": v})
    print(f"{len(runs)} runs in {time.monotonic() - started:.0f} s", file=sys.stderr)
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(runs, f, indent=1)
    print(f"wrote {a.out}", file=sys.stderr)
    table(runs, a.members, a.duration, warmup)


def table(runs, members, duration, warmup):
    print(f"N = {members}, {warmup:g} s warm-up, {duration:g} s window; medians over rounds\n")
    print("| implementation | CPU µs / member-s | runs (µs) | B sent / member-s "
          "| datagrams / member-s |")
    print("|---|---|---|---|---|")
    med = {}
    for name in NAMES:
        fs = [r["figures"] for r in runs if r["implementation"] == name]
        if not fs:
            continue
        med[name] = {k: statistics.median(f[k] for f in fs) for k in fs[0]}
        each = ", ".join(f"{f['cpu_us']:.0f}" for f in fs)
        print(f"| {name} | {med[name]['cpu_us']:.0f} | {each} | {med[name]['bytes']:.0f} "
              f"| {med[name]['packets']:.2f} |")
    print("\n| ratio | measured | issue 16 target | met |")
    print("|---|---|---|---|")
    for peer, target in TARGETS.items():
        if "swim" in med and peer in med and med[peer]["cpu_us"] > 0:
            x = med["swim"]["cpu_us"] / med[peer]["cpu_us"]
            print(f"| swim / {peer} | {x:.2f}× | ≤ {target}× | {'yes' if x <= target else 'no'} |")


if __name__ == "__main__":
    main()
