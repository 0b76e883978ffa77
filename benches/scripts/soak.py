#!/usr/bin/env python3
"""Soak on real processes: N `swim-node run` members on loopback (default LAN timings), one
killed (SIGKILL) and restarted every `--churn-every` seconds, for `--duration` seconds; the
memory of every member that is never killed sampled all along (python3 standard library only).

    python3 benches/scripts/soak.py [--bin target/release/swim-node] [--members 64]
        [--duration 1800] [--churn-every 30] [--json out.json]

Members node-1..node-N on 127.0.0.1, QUIC ports 27001.., admin ports 28001..; node-1 is the
seed. Only the upper half (node-N/2+1 .. node-N) is churned, in turn, so the lower half runs
for the whole soak: its resident memory (VmRSS) is sampled every 10 s and its slope fitted
(least squares, MiB per minute) over the whole run and over the second half. A victim comes
back (same name, certificate and port, a new process) when the next one is killed.

Every member's /members is polled every second. Each kill is *detected* when every running
member that was up before the kill shows the victim dead (the time from the kill is
reported); a *false death* is a member shown dead by any observer while it runs and has
been running for more than 30 s (a fresh restart may still be shown as its dead
predecessor while its own claim spreads). Exits 1 if a kill goes undetected before the next
one or if any false death is seen, 2 on a setup error.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from members import log, make_certs, start_member

QUIC_BASE, ADMIN_BASE = 27000, 28000
POLL_S = 1.0
RSS_EVERY_S = 10.0
SETTLE_S = 30.0


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def slope_mib_per_min(points):
    """Least-squares slope of (seconds, KiB) points, in MiB per minute."""
    if len(points) < 2:
        return None
    xs = [t / 60 for t, _ in points]
    ys = [k / 1024 for _, k in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else None


class Soak:
    def __init__(self, binary, workdir, n):
        self.bin, self.dir, self.n = binary, workdir, n
        self.names = [f"node-{i}" for i in range(1, n + 1)]
        self.procs = {}
        self.started = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        # observer -> {member: state} of its last answered poll, and when
        self.views = {}
        self.false_deaths = set()
        self.polls = 0

    def port(self, m):
        return QUIC_BASE + self.names.index(m) + 1

    def admin(self, m):
        return ADMIN_BASE + self.names.index(m) + 1

    def certs(self):
        make_certs(self.bin, self.dir, self.names)

    def start(self, m):
        p = start_member(self.bin, self.dir, m, self.port(m), self.admin(m),
                         self.port(self.names[0]))
        with self.lock:
            self.procs[m], self.started[m] = p, time.time()

    def kill(self, m):
        with self.lock:
            p = self.procs.pop(m)
            self.views.pop(m, None)
        p.kill()
        p.wait()

    def poll_one(self, m):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin(m)}/members", timeout=2) as r:
                body = json.load(r)
        except Exception:
            return
        now = time.time()
        view = {x["name"]: x["state"] for x in body}
        with self.lock:
            if m not in self.procs:
                return
            self.views[m] = (now, view)
            self.polls += 1
            for member, state in view.items():
                up_since = self.started.get(member)
                if (state == "dead" and member in self.procs and up_since is not None
                        and now - up_since > SETTLE_S):
                    self.false_deaths.add((m, member, round(up_since)))

    def poll(self):
        with ThreadPoolExecutor(max_workers=16) as pool:
            while not self.stop.is_set():
                t0 = time.time()
                with self.lock:
                    running = list(self.procs)
                list(pool.map(self.poll_one, running))
                self.stop.wait(max(0.0, POLL_S - (time.time() - t0)))

    def seen_dead_by_all(self, victim, observers, since):
        with self.lock:
            for o in observers:
                at, view = self.views.get(o, (0, {}))
                if at < since or view.get(victim) != "dead":
                    return False
        return True

    def shutdown(self):
        self.stop.set()
        with self.lock:
            procs = list(self.procs.values())
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="target/release/swim-node")
    ap.add_argument("--members", type=int, default=64)
    ap.add_argument("--duration", type=float, default=1800)
    ap.add_argument("--churn-every", type=float, default=30)
    ap.add_argument("--json")
    args = ap.parse_args()
    if not os.path.exists(args.bin):
        log(f"no binary at {args.bin}: cargo build --release -p swim-node")
        return 2
    n = args.members
    workdir = tempfile.mkdtemp(prefix="swim-soak-")
    soak = Soak(os.path.abspath(args.bin), workdir, n)
    soak.certs()
    for m in soak.names:
        soak.start(m)
    poller = threading.Thread(target=soak.poll, daemon=True)
    poller.start()
    log(f"{n} members started in {workdir}; waiting for all to see all")
    deadline = time.time() + 120
    while time.time() < deadline:
        with soak.lock:
            views = dict(soak.views)
        if len(views) == n and all(
                sum(s == "alive" for s in v.values()) == n for _, v in views.values()):
            break
        time.sleep(1)
    else:
        log("the cluster did not converge within 120 s")
        soak.shutdown()
        return 2
    t0 = time.time()
    log("converged; soak starts")
    steady = soak.names[: n // 2]
    churned = soak.names[n // 2:][::-1]
    rss = {m: [] for m in steady}
    kills, detections, undetected = [], [], []
    down, k, next_rss = None, 0, t0
    next_kill = t0 + args.churn_every / 2
    pending = None  # (victim, observers, killed at)
    try:
        while time.time() < t0 + args.duration:
            now = time.time()
            if now >= next_rss:
                for m in steady:
                    kib = rss_kib(soak.procs[m].pid)
                    if kib is not None:
                        rss[m].append((now - t0, kib))
                next_rss += RSS_EVERY_S
            if pending and soak.seen_dead_by_all(*pending):
                victim, _, at = pending
                detections.append(time.time() - at)
                pending = None
            if now >= next_kill and now + args.churn_every / 2 <= t0 + args.duration:
                if pending:
                    undetected.append(pending[0])
                    log(f"{pending[0]} not seen dead by every member before the next kill")
                if down:
                    soak.start(down)
                victim = churned[k % len(churned)]
                k += 1
                with soak.lock:
                    observers = [m for m in soak.procs if m != victim
                                 and now - soak.started[m] > SETTLE_S]
                soak.kill(victim)
                at = time.time()
                kills.append(at - t0)
                pending, down = (victim, observers, at), victim
                next_kill += args.churn_every
            time.sleep(0.1)
        if pending:
            # The last kill had at least half a period; give it the rest of one.
            end = pending[2] + args.churn_every
            while time.time() < end and not soak.seen_dead_by_all(*pending):
                time.sleep(0.2)
            if soak.seen_dead_by_all(*pending):
                detections.append(time.time() - pending[2])
            else:
                undetected.append(pending[0])
    finally:
        soak.shutdown()

    half = args.duration / 2
    whole = [slope_mib_per_min(p) for p in rss.values()]
    second = [slope_mib_per_min([x for x in p if x[0] >= half]) for p in rss.values()]
    first_mib = [p[0][1] / 1024 for p in rss.values() if p]
    last_mib = [p[-1][1] / 1024 for p in rss.values() if p]
    det = sorted(detections)
    result = {
        "members": n,
        "duration_s": args.duration,
        "churn_every_s": args.churn_every,
        "kills": len(kills),
        "detected": len(detections),
        "undetected": undetected,
        "detection_s_median": statistics.median(det) if det else None,
        "detection_s_max": det[-1] if det else None,
        "false_deaths": sorted(f"{o} saw {m} dead" for o, m, _ in soak.false_deaths),
        "polls": soak.polls,
        "steady_members": len(steady),
        "rss_mib_start_median": statistics.median(first_mib),
        "rss_mib_end_median": statistics.median(last_mib),
        "rss_mib_end_max": max(last_mib),
        "rss_slope_mib_per_min_median": statistics.median(whole),
        "rss_slope_mib_per_min_max": max(whole),
        "rss_slope_second_half_mib_per_min_median": statistics.median(second),
        "rss_slope_second_half_mib_per_min_max": max(second),
        "rss_series_node_1": rss[steady[0]],
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)
    ok = not undetected and not soak.false_deaths and len(detections) == len(kills)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
