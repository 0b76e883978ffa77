#!/usr/bin/env python3
"""Counts for one run of run.py: analyze.py RUN_DIR (prints a summary, writes summary.json)."""
import json, os, re, sys
from collections import Counter

N = 8
FLAKY = "node-%d" % N
HEALTHY = ["node-%d" % i for i in range(1, N)]
ALL = HEALTHY + [FLAKY]


def load(path):
    recs = []
    with open(path) as f:
        for line in f:
            try:
                recs.append(json.loads(line))
            except ValueError:
                pass
    return recs


def changes(recs):
    """(t, member, from, to, hidden) state changes in one observer's view. A member reaped from
    the table (dead past GossipToTheDeadTime) stays dead; 'hidden' marks a poll that found the
    same state with a new StateChange time (two changes between polls, e.g. suspect and back)."""
    last = {}
    out = []
    for r in recs:
        if r["kind"] != "state":
            continue
        m, to = r["node"], r["to"]
        if to == "reaped":
            continue
        prev = last.get(m)
        last[m] = to
        if prev is None:
            continue
        if prev == to:
            if r.get("hidden") or r["from"] == to:
                out.append((r["t"], m, prev, to, True))
            continue
        out.append((r["t"], m, prev, to, False))
    return out


def view_at(recs, t):
    v = {}
    for r in recs:
        if r["t"] > t:
            break
        if r["kind"] == "state":
            v[r["node"]] = r["to"]
    return v


def main(d):
    times = json.load(open(os.path.join(d, "times.json")))
    t0, t1, t_end = times["t0"], times["t1"], times["t_end"]
    logs = {o: load(os.path.join(d, o + ".jsonl")) for o in ALL}
    ch = {o: changes(logs[o]) for o in ALL}
    cfg = next(r for r in logs[FLAKY] if r["kind"] == "config")
    s = {"timings": times["timings"], "config": cfg, "fault_s": t1 - t0, "rules": times["rules"]}

    per = {}
    for o in HEALTHY:
        c = [x for x in ch[o] if x[1] == FLAKY and t0 <= x[0] < t1]
        kinds = Counter("%s>%s" % (x[2], x[3]) for x in c if not x[4])
        hidden = sum(1 for x in c if x[4])
        # A death and return between two polls (NotifyLeave, then NotifyJoin within 5 ms) shows in
        # the poll as X -> alive: the EventDelegate's leave is counted as one more death and change.
        leaves = [r["t"] for r in logs[o] if r["kind"] == "event" and r["ev"] == "leave"
                  and r["node"] == FLAKY and t0 <= r["t"] < t1]
        polled_deaths = [x[0] for x in c if x[3] == "dead"]
        missed = sum(1 for t in leaves if not any(t <= pt <= t + 0.1 for pt in polled_deaths))
        flaps = sum(kinds.values()) + 2 * hidden + missed
        deaths = sum(v for k, v in kinds.items() if k.endswith(">dead")) + missed
        ev = Counter(r["ev"] for r in logs[o] if r["kind"] == "event" and r.get("node") == FLAKY and t0 <= r["t"] < t1)
        own_susp = sum(1 for r in logs[o] if r["kind"] == "log" and t0 <= r["t"] < t1
                       and "Suspect %s has failed" % FLAKY in r["line"])
        marked = sum(1 for r in logs[o] if r["kind"] == "log" and t0 <= r["t"] < t1
                     and "Marking %s as failed" % FLAKY in r["line"])
        per[o] = {"flaps": flaps, "deaths": deaths, "kinds": dict(kinds), "hidden_pairs": hidden, "deaths_between_polls": missed,
                  "notify_leave": ev.get("leave", 0), "notify_join": ev.get("join", 0),
                  "own_probe_suspicions": own_susp, "own_suspicion_timeouts": marked,
                  "state_at_fault_end": view_at(logs[o], t1).get(FLAKY)}
    s["per_observer"] = per
    fl = [p["flaps"] for p in per.values()]
    de = [p["deaths"] for p in per.values()]
    s["flaky_flaps_max_mean"] = [max(fl), round(sum(fl) / len(fl), 1)]
    s["flaky_deaths_max_mean"] = [max(de), round(sum(de) / len(de), 1)]

    # healthy members declared dead by a healthy observer, from the fault's start to the end
    s["healthy_false_deaths"] = [(round(x[0] - t0, 2), o, x[1]) for o in HEALTHY for x in ch[o]
                                 if x[1] in HEALTHY and x[3] == "dead" and x[0] >= t0]
    s["healthy_false_deaths_before_fault"] = [(o, x[1]) for o in HEALTHY for x in ch[o]
                                              if x[1] in HEALTHY and x[3] == "dead" and x[0] < t0]
    # node-8's own view of the others during the fault
    c8 = [x for x in ch[FLAKY] if t0 <= x[0] < t1]
    s["flaky_own_view"] = {"deaths_of_others": sum(1 for x in c8 if x[3] == "dead"),
                           "suspicions_of_others": sum(1 for x in c8 if x[3] == "suspect") + sum(1 for x in c8 if x[4]),
                           "refutations": sum(1 for r in logs[FLAKY] if r["kind"] == "log" and t0 <= r["t"] < t1
                                              and "Refuting" in r["line"])}
    # healthy members' flaps per observer-minute, fault start to end of observation
    mins = (t_end - t0) / 60
    rates = [sum(1 if not x[4] else 2 for x in ch[o] if x[1] == m and t0 <= x[0] <= t_end) / mins
             for o in HEALTHY for m in HEALTHY if m != o]
    s["healthy_flaps_per_observer_min_max_mean"] = [round(max(rates), 2), round(sum(rates) / len(rates), 3)]

    # after the heal: first instant every member holds all 8 alive
    cand = sorted({t1} | {r["t"] for o in ALL for r in logs[o] if r["kind"] == "state" and t1 <= r["t"] <= t_end})
    conv = None
    for t in cand:
        if all(sum(1 for v in view_at(logs[o], t).values() if v == "alive") == N for o in ALL):
            conv = t - t1
            break
    s["all_alive_after_heal_s"] = None if conv is None else round(conv, 2)
    s["all_alive_at_end"] = all(sum(1 for v in view_at(logs[o], t_end).values() if v == "alive") == N for o in ALL)
    # measured drop share from the nft counters
    txt = open(os.path.join(d, "nft-counters.txt")).read()
    pk = re.findall(r"(udp|tcp)(?: dport \d+)? (numgen.*?)?counter packets (\d+)", txt)
    drop = {}
    for proto, ng, n in pk:
        drop.setdefault(proto, [0, 0])[1 if ng else 0] = int(n)
    s["nft_packets_seen_dropped"] = drop
    json.dump(s, open(os.path.join(d, "summary.json"), "w"), indent=1)
    print(json.dumps({k: v for k, v in s.items() if k not in ("config",)}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
