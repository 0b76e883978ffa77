#!/usr/bin/env python3
"""Simulator sweeps with SVG charts: what capacity planners read (python3 standard library
only; charts drawn by the `plot` binary of swim-benches, issue 16 §6).

    python3 benches/scripts/sim_sweep.py [--out benches/plots] [--sizes 1000,10000,100000]
        [--losses 0,0.01,0.05,0.1,0.2] [--loss-members 1000] [--loss-duration 600]
        [--seeds 1] [--no-build]

Two sweeps, each point one `swim-node simulate --json` process (so peak RSS is that run's):

- size: `--members N --loss 0.01 --crash 1 --duration 60` for each N → `scale.svg` (wall
  time and peak memory against N) and `bytes_per_member.svg` (SWIM payload and the modelled
  QUIC + TLS wire per member-second against N);
- loss: `--members M --loss P --crash 0 --duration D` for each P → `false_positives.svg`
  (false suspicions and false deaths per member-hour against loss; false suspicions are
  those a node's own failed probe raised about a running member).

and once `--members 1000 --loss 0.01 --crash 20 --duration 120 --plot detection_cdf.svg`
(the detection-latency CDF `simulate --plot` draws). Every figure is also written to
`sweep.json` in the output directory.
"""

import argparse
import json
import os
import sys

from binaries import add_build_args, binaries, chart, nums, run_json


def simulate(bin_, args):
    return run_json([bin_, "simulate", "--json"] + args)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benches/plots")
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--losses", default="0,0.01,0.05,0.1,0.2")
    p.add_argument("--loss-members", type=int, default=1000)
    p.add_argument("--loss-duration", type=float, default=600.0)
    p.add_argument("--seeds", default="1")
    add_build_args(p)
    a = p.parse_args()
    bins = binaries(a, ["swim-node", "plot"])
    sim_bin, plot_bin = bins["swim-node"], bins["plot"]
    os.makedirs(a.out, exist_ok=True)
    seeds = nums(a.seeds, int)
    mean = lambda runs, key: sum(r[key] for r in runs) / len(runs)

    size_runs = {}
    for n in nums(a.sizes, int):
        size_runs[n] = []
        for seed in seeds:
            print(f"size {n}, seed {seed} …", file=sys.stderr, flush=True)
            size_runs[n].append(simulate(sim_bin, ["--members", str(n), "--loss", "0.01",
                                                   "--crash", "1", "--duration", "60",
                                                   "--seed", str(seed)]))
    sizes = sorted(size_runs)
    loss_runs = {}
    for loss in nums(a.losses, float):
        loss_runs[loss] = []
        for seed in seeds:
            print(f"loss {loss}, seed {seed} …", file=sys.stderr, flush=True)
            loss_runs[loss].append(simulate(sim_bin, [
                "--members", str(a.loss_members), "--loss", str(loss), "--crash", "0",
                "--duration", str(a.loss_duration), "--seed", str(seed)]))
    losses = sorted(loss_runs)
    cdf = simulate(sim_bin, ["--members", "1000", "--loss", "0.01", "--crash", "20",
                             "--duration", "120", "--seed", str(seeds[0]),
                             "--plot", os.path.join(a.out, "detection_cdf.svg")])
    print(f"wrote {os.path.join(a.out, 'detection_cdf.svg')}", file=sys.stderr)

    chart(plot_bin, os.path.join(a.out, "scale.svg"), [
        ("wall time (s)", [[n, mean(size_runs[n], "wall_s")] for n in sizes]),
        # `peak_rss_bytes` is null where /proc/self/status is not readable.
        ("peak RSS (MiB)", [[n, mean(size_runs[n], "peak_rss_bytes") / 2**20] for n in sizes
                            if all(r["peak_rss_bytes"] for r in size_runs[n])]),
        ("simulated time (s)", [[n, 60] for n in sizes]),
    ], "simulate, 60 s at 1 % loss, one crash: cost against cluster size",
        "members", "wall seconds / MiB", log_x=True, log_y=True)
    chart(plot_bin, os.path.join(a.out, "bytes_per_member.svg"), [
        ("SWIM payload", [[n, mean(size_runs[n], "bytes_per_member_per_s")] for n in sizes]),
        ("QUIC + TLS wire (modelled)",
         [[n, mean(size_runs[n], "wire_bytes_per_member_per_s")] for n in sizes]),
    ], "bytes per member-second against cluster size (1 % loss, one crash in 60 s)",
        "members", "B per member-second", log_x=True)
    member_hours = lambda runs: sum(r["members"] * r["duration_s"] for r in runs) / 3600.0
    chart(plot_bin, os.path.join(a.out, "false_positives.svg"), [
        ("false suspicions", [[l * 100, sum(r["false_suspicions"] for r in loss_runs[l])
                               / member_hours(loss_runs[l])] for l in losses]),
        ("false deaths", [[l * 100, sum(r["false_deaths"] for r in loss_runs[l])
                           / member_hours(loss_runs[l])] for l in losses]),
    ], f"false positives against datagram loss ({a.loss_members} members, nobody failing)",
        "loss (%)", "per member-hour")

    with open(os.path.join(a.out, "sweep.json"), "w") as f:
        strip = lambda r: {k: v for k, v in r.items() if k not in ("crashes", "config")}
        json.dump({
            "sizes": {n: [strip(r) for r in runs] for n, runs in size_runs.items()},
            "losses": {l: [strip(r) for r in runs] for l, runs in loss_runs.items()},
            "detection_cdf_run": strip(cdf),
        }, f, indent=1)
    for n in sizes:
        r = size_runs[n]
        rss = [x["peak_rss_bytes"] for x in r]
        rss = f"{sum(rss) / len(rss) / 2**20:.0f} MiB" if all(rss) else "unknown"
        print(f"N {n}: wall {mean(r, 'wall_s'):.1f} s, peak RSS {rss}, payload "
              f"{mean(r, 'bytes_per_member_per_s'):.1f} B/member/s, wire "
              f"{mean(r, 'wire_bytes_per_member_per_s'):.1f}")
    for l in losses:
        r = loss_runs[l]
        print(f"loss {l * 100:g} %: false suspicions {sum(x['false_suspicions'] for x in r)}, "
              f"false deaths {sum(x['false_deaths'] for x in r)} in "
              f"{member_hours(r):.0f} member-hours")


if __name__ == "__main__":
    main()
