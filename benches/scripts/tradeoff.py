#!/usr/bin/env python3
"""The detection trade-off of the setting operators touch most, Lifeguard's α
(`suspicion_mult`: the minimum suspicion timeout is α·log10(N)·probe interval), in the
simulator: crash → dead at every survivor against false suspicions, false deaths and bytes,
at several losses (python3 standard library only; issue 18 §1).

    python3 benches/scripts/tradeoff.py [--members 32] [--mults 1,2,3,4]
        [--losses 0,0.05,0.1] [--seeds 1,2,…,20] [--crash 2] [--duration 1800]
        [--out benches/plots] [--no-build]

Each point is `swim-node simulate --members N --suspicion-mult A --loss P --crash K
--crash-at D/2 --duration D --seed S --json` over the seeds: K crashes per seed at half time
(their all-dead p50 over every seed's crashes), and false suspicions and deaths per
member-hour over the whole runs (so over live members mostly). And the price: for each α,
the shortest time a member may hear nothing (`--fault deaf@60s+P`, P in 0.5 s steps: a GC
pause, a stalled host) before it is declared dead in any seed's run. Writes `tradeoff.svg`
(all-dead p50), `tradeoff_false.svg` (false deaths and suspicions), `tradeoff_pause.svg`
(pause tolerance beside detection) and `tradeoff.json`.
The simulator's detection is within 15 % of the real QUIC runner's at these settings (see
`calibrate.py`); its false positives come from its loss model, independent per datagram.
"""

import argparse
import json
import math
import os
import sys

from binaries import add_build_args, binaries, chart, nums, run_json


def p50(values):
    v = sorted(float("inf") if x is None else x for x in values)
    if not v:
        return None
    x = v[max(1, math.ceil(0.5 * len(v))) - 1]
    return None if math.isinf(x) else x


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=32)
    p.add_argument("--mults", default="1,2,3,4")
    p.add_argument("--losses", default="0,0.05,0.1")
    p.add_argument("--seeds", default=",".join(str(s) for s in range(1, 21)))
    p.add_argument("--crash", type=int, default=2)
    p.add_argument("--duration", type=float, default=1800.0)
    p.add_argument("--out", default="benches/plots")
    add_build_args(p)
    a = p.parse_args()
    bins = binaries(a, ["swim-node", "plot"])
    os.makedirs(a.out, exist_ok=True)
    points = []
    for loss in nums(a.losses, float):
        for mult in nums(a.mults, int):
            runs = [run_json([bins["swim-node"], "simulate", "--json",
                              "--members", str(a.members), "--suspicion-mult", str(mult),
                              "--loss", str(loss), "--crash", str(a.crash),
                              "--crash-at", str(a.duration / 2), "--duration", str(a.duration),
                              "--seed", str(seed)])
                    for seed in nums(a.seeds, int)]
            member_hours = sum(r["members"] * r["duration_s"] for r in runs) / 3600.0
            point = {
                "loss": loss, "suspicion_mult": mult, "runs": len(runs),
                "crashes": sum(len(r["crashes"]) for r in runs),
                "all_dead_p50_s": p50(c["all_dead_s"] for r in runs for c in r["crashes"]),
                "first_suspect_p50_s": p50(c["first_suspect_s"] for r in runs
                                           for c in r["crashes"]),
                "false_suspicions_per_member_hour":
                    sum(r["false_suspicions"] for r in runs) / member_hours,
                "false_deaths_per_member_hour":
                    sum(r["false_deaths"] for r in runs) / member_hours,
                "wire_bytes_per_member_per_s":
                    sum(r["wire_bytes_per_member_per_s"] for r in runs) / len(runs),
            }
            points.append(point)
            print(json.dumps(point), flush=True)
    # Pause tolerance: the shortest stretch a member may hear nothing (a GC pause, a stalled
    # host: `--fault deaf@60s+P`) before some seed's run declares it dead.
    pauses = [x / 2 for x in range(2, 41)]
    tolerance = []
    for mult in nums(a.mults, int):
        killed = None
        for pause in pauses:
            runs = [run_json([bins["swim-node"], "simulate", "--json",
                              "--members", str(a.members), "--suspicion-mult", str(mult),
                              "--crash", "0", "--fault", f"deaf@60s+{pause}s",
                              "--duration", "120", "--seed", str(seed)])
                    for seed in nums(a.seeds, int)]
            if any(r["faulty_deaths_per_observer_max"] > 0 for r in runs):
                killed = pause
                break
        tolerance.append({"suspicion_mult": mult, "shortest_fatal_pause_s": killed})
        print(json.dumps(tolerance[-1]), flush=True)
    losses = sorted({pt["loss"] for pt in points})
    series = lambda key, label: [
        (label(l), [[pt["suspicion_mult"], pt[key]] for pt in points
                    if pt["loss"] == l and pt[key] is not None]) for l in losses]
    title = f"{a.members} members, 1 s probe interval"
    chart(bins["plot"], os.path.join(a.out, "tradeoff.svg"),
          series("all_dead_p50_s", lambda l: f"{l * 100:g} % loss"),
          f"crash → dead at every survivor (p50) against Lifeguard α ({title})",
          "suspicion_mult α", "seconds")
    chart(bins["plot"], os.path.join(a.out, "tradeoff_false.svg"),
          series("false_deaths_per_member_hour", lambda l: f"false deaths, {l * 100:g} % loss")
          + series("false_suspicions_per_member_hour",
                   lambda l: f"false suspicions, {l * 100:g} % loss"),
          f"false positives against Lifeguard α ({title})",
          "suspicion_mult α", "per member-hour")
    chart(bins["plot"], os.path.join(a.out, "tradeoff_pause.svg"),
          [("shortest pause that gets a member declared dead",
            [[t["suspicion_mult"], t["shortest_fatal_pause_s"]] for t in tolerance
             if t["shortest_fatal_pause_s"] is not None]),
           (f"detection: crash → dead at every survivor, p50, {losses[0] * 100:g} % loss",
            [[pt["suspicion_mult"], pt["all_dead_p50_s"]] for pt in points
             if pt["loss"] == losses[0] and pt["all_dead_p50_s"] is not None])],
          f"what α buys: pause tolerance against detection time ({title})",
          "suspicion_mult α", "seconds")
    with open(os.path.join(a.out, "tradeoff.json"), "w") as f:
        json.dump({"points": points, "pause_tolerance": tolerance}, f, indent=1)
    print(f"wrote {os.path.join(a.out, 'tradeoff.json')}", file=sys.stderr)


if __name__ == "__main__":
    main()
