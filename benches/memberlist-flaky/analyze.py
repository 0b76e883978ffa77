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


def median(xs):
    xs = sorted(xs)
    k = len(xs)
    return None if not k else xs[k // 2] if k % 2 else (xs[k // 2 - 1] + xs[k // 2]) / 2


def p99(xs):
    """Nearest-rank 99th percentile (with fewer than 100 values: the maximum)."""
    xs = sorted(xs)
    return xs[max(0, -(-99 * len(xs) // 100) - 1)] if xs else None


def crash_main(d, times):
    """Crash mode (run.py --crash-every): per crash, from the kill instant t_kill,
    - first_suspect: first survivor that holds the victim suspect (state change, memberlist's
      StateChange time) or whose own probe failed ("Suspect <victim> has failed");
    - first_own_probe_suspect: the latter only;
    - first_dead: first survivor that holds it dead or left (state change or NotifyLeave);
    - all_dead: every survivor holds it dead or left (a survivor: running at t_kill, not the
      victim; one killed later before it marked the victim is left out);
    and false suspicions and deaths of members never killed, in any member's view, from the
    convergence to the end."""
    kills = times["kills"]
    killed = {k["victim"]: k["t_kill"] for k in kills}
    started = times["started"]
    t_conv, t_end = times["t_conv"], times["t_end"]
    logs = {m: load(os.path.join(d, m + ".jsonl")) for m in started}
    cfg = next(r for r in logs["node-1"] if r["kind"] == "config")

    def when(r):
        return r["change"] if r["kind"] == "state" and r.get("change", 0) > 0 else r["t"]

    def first(m, victim, t0, pred):
        ts = [when(r) for r in logs[m] if r["t"] >= t0 and r.get("node") == victim and pred(r)]
        ts += [r["t"] for r in logs[m] if r["t"] >= t0 and r["kind"] == "log" and pred(r)
               and ("Suspect %s has failed" % victim in r["line"] or "Marking %s as failed" % victim in r["line"])]
        return min(ts) if ts else None

    def is_susp(r):
        return (r["kind"] == "state" and r["to"] == "suspect") or \
               (r["kind"] == "log" and "Suspect " in r["line"] and " has failed" in r["line"])

    def is_own(r):
        return r["kind"] == "log" and "Suspect " in r["line"] and " has failed" in r["line"]

    def is_dead(r):
        return (r["kind"] == "state" and r["to"] in ("dead", "left", "reaped")) or \
               (r["kind"] == "event" and r["ev"] == "leave")

    rows = []
    for i, k in enumerate(kills):
        v, tk = k["victim"], k["t_kill"]
        surv = [m for m in started if m != v and started[m] < tk and killed.get(m, 1e300) > tk]
        held_dead_before = [m for m in surv if view_at(logs[m], tk).get(v) in ("dead", "left", None)]
        det = {m: first(m, v, tk, is_dead) for m in surv}
        # a survivor killed later before it marked the victim no longer counts
        det = {m: t for m, t in det.items() if not (m in killed and (t is None or t > killed[m]))}
        susp = [t for t in (first(m, v, tk, is_susp) for m in surv) if t is not None]
        own = [t for t in (first(m, v, tk, is_own) for m in surv) if t is not None]
        marked = sorted((r["t"], m) for m in surv for r in logs[m] if r["t"] >= tk and r["kind"] == "log"
                        and "Marking %s as failed" % v in r["line"])
        dead_ts = [t for t in det.values() if t is not None]
        missing = sorted(m for m, t in det.items() if t is None)
        row = {"crash": i + 1, "victim": v, "t_kill": tk, "survivors": len(det),
               "first_suspect_s": round(min(susp) - tk, 3) if susp else None,
               "first_own_probe_suspect_s": round(min(own) - tk, 3) if own else None,
               "first_dead_s": round(min(dead_ts) - tk, 3) if dead_ts else None,
               "all_dead_s": round(max(dead_ts) - tk, 3) if dead_ts and not missing else None,
               "survivors_that_never_marked_it": missing,
               "own_probe_suspicions": sum(1 for m in surv for r in logs[m] if r["t"] >= tk and r["kind"] == "log"
                                           and "Suspect %s has failed" % v in r["line"]),
               "suspicion_timeouts_fired": [(round(t - tk, 3), m) for t, m in marked],
               "survivors_without_victim_alive_at_kill": held_dead_before}
        rows.append(row)

    # false suspicions / deaths: members never killed, any observer, from convergence to the end
    false = []
    for o, recs in logs.items():
        last = {}
        for r in recs:
            if r["kind"] == "state":
                prev = last.get(r["node"])
                last[r["node"]] = r["to"]
                if r["node"] in killed or r["t"] < t_conv or r["to"] == "reaped":
                    continue
                if r["to"] in ("suspect", "dead", "left") and prev != r["to"]:
                    false.append({"t": round(r["t"] - t_conv, 3), "observer": o, "member": r["node"], "to": r["to"]})
                elif r.get("hidden"):
                    false.append({"t": round(r["t"] - t_conv, 3), "observer": o, "member": r["node"],
                                  "to": "%s (two changes between polls)" % r["to"]})
            elif r["kind"] == "event" and r["ev"] == "leave" and r["node"] not in killed and r["t"] >= t_conv:
                false.append({"t": round(r["t"] - t_conv, 3), "observer": o, "member": r["node"], "to": "NotifyLeave"})
            elif r["kind"] == "log" and r["t"] >= t_conv and "Suspect " in r["line"] and " has failed" in r["line"]:
                nm = r["line"].split("Suspect ", 1)[1].split(" has failed")[0]
                if nm not in killed:
                    false.append({"t": round(r["t"] - t_conv, 3), "observer": o, "member": nm, "to": "own probe failed"})

    ad = [r["all_dead_s"] for r in rows if r["all_dead_s"] is not None]
    fd = [r["first_dead_s"] for r in rows if r["first_dead_s"] is not None]
    fs = [r["first_suspect_s"] for r in rows if r["first_suspect_s"] is not None]
    fo = [r["first_own_probe_suspect_s"] for r in rows if r["first_own_probe_suspect_s"] is not None]
    s = {"mode": "crash", "members": times["members"], "timings": times["timings"], "config": cfg,
         "crash_every_s": times["crash_every"], "restart": times["restart"], "crashes": len(rows),
         "crashes_all_dead_reached": len(ad),
         "all_dead_s": {"median": median(ad), "p99": p99(ad), "max": max(ad) if ad else None, "min": min(ad) if ad else None},
         "first_dead_s": {"median": median(fd), "max": max(fd) if fd else None},
         "first_suspect_s": {"median": median(fs), "max": max(fs) if fs else None},
         "first_own_probe_suspect_s": {"median": median(fo), "max": max(fo) if fo else None},
         "false_suspicions_deaths": {"suspect": sum(1 for x in false if x["to"] == "suspect" or "between polls" in x["to"]),
                                     "own_probe_failed": sum(1 for x in false if x["to"] == "own probe failed"),
                                     "dead": sum(1 for x in false if x["to"] in ("dead", "left")),
                                     "notify_leave": sum(1 for x in false if x["to"] == "NotifyLeave"),
                                     "records": false},
         "crashes_not_converged_before": times.get("crashes_not_converged_before"),
         "loadavg_at_first_crash_end": times.get("loadavg_at_first_crash_end"),
         "per_crash": rows}
    json.dump(s, open(os.path.join(d, "summary.json"), "w"), indent=1)
    f = lambda x: "-" if x is None else "%.3f" % x
    print("| crash | victim | survivors | first suspect (s) | first own-probe suspect (s) | first dead (s) | all dead (s) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %d | %s | %d | %s | %s | %s | %s |" % (r["crash"], r["victim"], r["survivors"], f(r["first_suspect_s"]),
              f(r["first_own_probe_suspect_s"]), f(r["first_dead_s"]), f(r["all_dead_s"])))
    print("| **median** | | | %s | %s | %s | **%s** |" % (f(median(fs)), f(median(fo)), f(median(fd)), f(median(ad))))
    print("| **p99 / max** | | | | | %s | %s / %s |" % (f(max(fd) if fd else None), f(p99(ad)), f(max(ad) if ad else None)))
    print()
    print("all-dead reached in %d of %d crashes; false suspicions/deaths of members never killed (from convergence "
          "to end): %s" % (len(ad), len(rows), {k: v for k, v in s["false_suspicions_deaths"].items() if k != "records"}))


def main(d):
    times = json.load(open(os.path.join(d, "times.json")))
    if times.get("mode") == "crash":
        return crash_main(d, times)
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
