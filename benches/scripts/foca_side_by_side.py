#!/usr/bin/env python3
"""swim and foca in the same simulated network (issue 18 §2; python3 standard library only).

    python3 benches/scripts/foca_side_by_side.py [--sizes 1000,10000] [--losses 0,0.01,0.05]
        [--crash 10] [--duration 120] [--seeds 1] [--swim-config FILE]
        [--out benches/results/foca_side_by_side.json] [--no-build]

For each size, loss and seed: `swim-node simulate --json` and `foca_sim` (foca 2.0.0 with its
own `Config::new_lan(N)`, run on swim's simulated network) with the same flags — the same
latency, jitter, loss and seed-derived random stream (different traffic draws from it
differently), the same members crashed at the same instant. Each
run is one process; its peak RSS is read from the kernel (wait4's ru_maxrss) for both. Prints a
markdown table (per size and loss: medians over seeds of each run's figures) and writes every
run's JSON to --out.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from binaries import add_build_args, binaries, nums


def run(argv):
    """Runs a binary that prints one JSON line; adds its own peak RSS and wall time."""
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as out:
        child = subprocess.Popen(argv, stdout=out)
        # wait4: this child's own resource usage, not the largest of every child so far.
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            raise subprocess.CalledProcessError(child.returncode, argv)
        out.seek(0)
        v = json.loads(out.read().strip().splitlines()[-1])
    v["process_wall_s"] = time.monotonic() - started
    v["process_peak_rss_mib"] = usage.ru_maxrss / 1024  # KiB on Linux
    return v


def per_member_hour(v, key):
    return v[key] / v["members"] / (v["duration_s"] / 3600)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits=2):
    return "not reached" if x is None else f"{x:.{digits}f}"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,10000")
    p.add_argument("--losses", default="0,0.01,0.05")
    p.add_argument("--crash", type=int, default=10)
    p.add_argument("--duration", type=float, default=120.0)
    p.add_argument("--seeds", default="1")
    p.add_argument("--swim-config", help="a swim-node config file for swim's members")
    p.add_argument("--out", default="benches/results/foca_side_by_side.json")
    p.add_argument("--table-from", metavar="FILE,...",
                   help="run nothing: print the table of these --out files (e.g. parts of a "
                        "sweep run side by side), and write them together to --out")
    add_build_args(p)
    a = p.parse_args()
    if a.table_from:
        runs = [r for f in a.table_from.split(",") for r in json.load(open(f))]
    else:
        runs = sweep(a)
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(runs, f, indent=1)
    print(f"wrote {a.out}", file=sys.stderr)
    table(runs)


def sweep(a):
    bins = binaries(a, ["swim-node", "foca_sim"])
    runs = []
    for n in nums(a.sizes, int):
        for loss in nums(a.losses, float):
            for seed in nums(a.seeds, int):
                common = ["--members", str(n), "--loss", str(loss), "--crash", str(a.crash),
                          "--duration", str(a.duration), "--seed", str(seed)]
                swim_argv = [bins["swim-node"], "simulate", "--json"] + common
                if a.swim_config:
                    swim_argv += ["--config", a.swim_config]
                for name, argv in [("swim", swim_argv), ("foca", [bins["foca_sim"]] + common)]:
                    print(f"{name}: N={n} loss={loss} seed={seed} …", file=sys.stderr, flush=True)
                    v = run(argv)
                    print(f"  all dead p50 {fmt(v['detect_all_dead_p50_s'])} s, "
                          f"{v['process_wall_s']:.1f} s wall", file=sys.stderr, flush=True)
                    runs.append({"protocol": name, "members": n, "loss": loss, "seed": seed,
                                 "argv": [os.path.basename(argv[0])] + argv[1:], "result": v})
    return runs


def table(runs):
    """Per size and loss, the median over seeds of each run's figures, swim then foca."""
    sizes = sorted({r["members"] for r in runs})
    losses = sorted({r["loss"] for r in runs})

    print("| N | loss | protocol | crash → all dead p50 / p99 (s) | first suspicion p50 (s) "
          "| all-dead ratio swim/foca | false suspicions / member-h | false deaths "
          "(own timer / views / forced rejoins) | payload B/member/s | wire B/member/s "
          "| wall s | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        for loss in losses:
            cell = {}
            for name in ["swim", "foca"]:
                rs = [r["result"] for r in runs
                      if r["protocol"] == name and r["members"] == n and r["loss"] == loss]
                cell[name] = {k: median([r.get(k) for r in rs]) for k in [
                    "detect_all_dead_p50_s", "detect_all_dead_p99_s",
                    "detect_first_suspect_p50_s", "false_deaths", "false_death_views",
                    "forced_rejoins", "bytes_per_member_per_s", "wire_bytes_per_member_per_s",
                    "process_wall_s", "process_peak_rss_mib"]}
                cell[name]["fs"] = median([per_member_hour(r, "false_suspicions") for r in rs])
            s, f = cell["swim"]["detect_all_dead_p50_s"], cell["foca"]["detect_all_dead_p50_s"]
            ratio = fmt(s / f) if s is not None and f else "—"
            for name in ["swim", "foca"]:
                c = cell[name]
                deaths = (f"{fmt(c['false_deaths'], 0)} / {fmt(c['false_death_views'], 0)}"
                          + (f" / {fmt(c['forced_rejoins'], 0)}" if name == "foca" else ""))
                print(f"| {n} | {loss * 100:g} % | {name} | {fmt(c['detect_all_dead_p50_s'])} / "
                      f"{fmt(c['detect_all_dead_p99_s'])} | {fmt(c['detect_first_suspect_p50_s'])} "
                      f"| {ratio if name == 'swim' else ''} | {fmt(c['fs'])} | {deaths} "
                      f"| {fmt(c['bytes_per_member_per_s'], 1)} "
                      f"| {fmt(c['wire_bytes_per_member_per_s'], 1)} "
                      f"| {fmt(c['process_wall_s'], 1)} | {fmt(c['process_peak_rss_mib'], 0)} |")


if __name__ == "__main__":
    main()
