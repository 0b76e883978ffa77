#!/usr/bin/env python3
"""Calibration: the simulator's predictions against the real QUIC + mutual TLS runner, same
settings, same N, same seeds, members crashed at the same instant (python3 standard
library only; issue 18 §5).

    python3 benches/scripts/calibrate.py [--members 16,64] [--loss 0,0.05] [--seeds 1,2]
        [--crash 2] [--duration 60] [--crash-at 15] [--json out.json]

For each (N, loss) and each seed it runs

    quic_scenario --members N --loss L --seed S --crash K --crash-at T --duration D --json
    swim-node simulate --members N --loss L --seed S --crash K --crash-at T --duration D --json

(quic_scenario: N members in one process on loopback, joined and warmed up before its
window of D seconds opens; simulate: a converged cluster of N, D simulated seconds), pools
the crashes of every seed, and prints predicted against measured: crash → first suspicion,
first dead, dead at the median survivor and at every survivor (p50, p99 over crashes),
bytes and packets per member-second on the wire, and false suspicions per member-hour. The
real runs go one after another (CPU timing matters to them); the simulations are cheap.

The simulator does not model connection set-up, so the real bytes are shown both whole and
without handshakes (`wire_bytes_without_setup_per_member_per_s`): the crashed members' dials
are what separates the two. Builds both binaries first (`cargo build --release`).
"""

import argparse
import json
import math
import sys

from binaries import add_build_args, binaries, nums, run_json

STAGES = ["first_suspect", "first_dead", "median_dead", "all_dead"]


def quantile(values, q):
    """Nearest rank; None (not reached) sorts last and makes a quantile on it None."""
    if not values:
        return None
    v = sorted(values, key=lambda x: float("inf") if x is None else x)
    rank = max(1, min(len(v), math.ceil(q * len(v))))
    return v[rank - 1]


def pooled(runs, real):
    """Figures over several runs of one side: crashes pooled, rates averaged."""
    crashes = [c for r in runs for c in r["crashes"]]
    out = {"crashes": len(crashes)}
    for stage in STAGES:
        times = [c.get(f"{stage}_s") for c in crashes]
        out[f"{stage}_p50_s"] = quantile(times, 0.5)
        out[f"{stage}_p99_s"] = quantile(times, 0.99)
    mean = lambda key: sum(r[key] for r in runs) / len(runs)
    out["wire_bytes_per_member_per_s"] = mean("wire_bytes_per_member_per_s")
    if real:
        out["wire_bytes_without_setup_per_member_per_s"] = mean(
            "wire_bytes_without_setup_per_member_per_s"
        )
        out["packets_per_member_per_s"] = mean("wire_datagrams_per_member_per_s")
    else:
        out["wire_bytes_without_setup_per_member_per_s"] = out["wire_bytes_per_member_per_s"]
        out["packets_per_member_per_s"] = mean("wire_packets_per_member_per_s")
    member_hours = sum(r["members"] * r["duration_s"] for r in runs) / 3600.0
    out["false_suspicions_per_member_hour"] = (
        sum(r["false_suspicions"] for r in runs) / member_hours
    )
    out["false_deaths"] = sum(r["false_deaths"] for r in runs)
    return out


def fmt(x, digits=2):
    return "not reached" if x is None else f"{x:.{digits}f}"


def ratio(pred, meas):
    if pred is None or meas is None or meas == 0:
        return "–"
    return f"{pred / meas:.2f}"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", default="16,64")
    p.add_argument("--loss", default="0,0.05")
    p.add_argument("--seeds", default="1,2")
    p.add_argument("--crash", type=int, default=2)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--crash-at", type=float, default=15.0)
    p.add_argument("--json", help="write every run and the pooled figures here")
    add_build_args(p)
    a = p.parse_args()
    bins = binaries(a, ["swim-node", "quic_scenario"])
    real_bin, sim_bin = bins["quic_scenario"], bins["swim-node"]
    results = []
    for n in nums(a.members, int):
        for loss in nums(a.loss, float):
            common = ["--members", str(n), "--loss", str(loss), "--crash", str(a.crash),
                      "--crash-at", str(a.crash_at), "--duration", str(a.duration), "--json"]
            real, sim = [], []
            for seed in nums(a.seeds, int):
                s = ["--seed", str(seed)]
                print(f"N = {n}, loss {loss}, seed {seed} …", file=sys.stderr, flush=True)
                real.append(run_json([real_bin] + common + s))
                sim.append(run_json([sim_bin, "simulate"] + common + s))
            results.append({
                "members": n, "loss": loss,
                "measured": pooled(real, True), "predicted": pooled(sim, False),
                "runs": {"measured": real, "predicted": sim},
            })
    rows = [
        ("crash → first suspect p50 (s)", "first_suspect_p50_s", 2),
        ("crash → first dead p50 (s)", "first_dead_p50_s", 2),
        ("crash → median survivor dead p50 (s)", "median_dead_p50_s", 2),
        ("crash → all dead p50 (s)", "all_dead_p50_s", 2),
        ("crash → all dead p99 (s)", "all_dead_p99_s", 2),
        ("wire B/member/s", "wire_bytes_per_member_per_s", 1),
        ("wire B/member/s without connection set-up", "wire_bytes_without_setup_per_member_per_s", 1),
        ("packets/member/s", "packets_per_member_per_s", 2),
        ("false suspicions/member-hour", "false_suspicions_per_member_hour", 2),
        ("false deaths", "false_deaths", 0),
    ]
    for r in results:
        m, s = r["measured"], r["predicted"]
        print(f"\nN = {r['members']}, loss {r['loss'] * 100:g} %, "
              f"{m['crashes']} crashes measured, {s['crashes']} simulated")
        print("| figure | simulated | real QUIC | simulated ÷ real |")
        print("|---|---|---|---|")
        for label, key, digits in rows:
            print(f"| {label} | {fmt(s[key], digits)} | {fmt(m[key], digits)} | "
                  f"{ratio(s[key], m[key])} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
