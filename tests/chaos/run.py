#!/usr/bin/env python3
"""Chaos on real processes: `swim-node run` members under nftables faults, each case in a
network namespace of its own (root, `ip netns`, `nft`; python3 standard library only).

    sudo python3 tests/chaos/run.py [--bin target/release/swim-node] [--cases abcde] [--serial]

Cases (each a fresh namespace, its members on that namespace's loopback, QUIC ports 7001..,
admin ports 8001..; faults are rules in the table `swim_chaos` of that namespace):
  a  symmetric partition of the members into two halves, 6 tombstone timeouts long, then heal
  b  one-way partition of the last member: it sends but receives nothing, heal; then it
     receives but sends nothing, heal
  c  the last member (of 8) loses 80 % of the datagrams it receives, for 5 minutes
  d  10 % of every datagram lost, every member, both directions, for 3 minutes
  e  SIGSTOP of the last member past the suspicion timeout, then SIGCONT

Every member's /members is polled every 200 ms and every member's JSON log is parsed for its
state-change events (member suspect / suspicion refuted / member dead / member up / member
left), so each observer's view of each member is known at every instant. Per case it
asserts: no healthy member declared dead by a healthy observer, the faulty member seen the
same way (in: alive or suspect; out: dead) by every healthy observer at the end of each
fault, flaps (state changes of a member in one observer's log) within bounds, and every
member alive in every view within a bound after the heal. Bounds can be changed through the
environment (see BOUNDS). Exits 1 if any assertion fails, 2 on a setup error.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

# Test timings: as the reliability tests (probe every 300 ms), so a case is short; a SWIM_*
# variable set in the environment overrides its entry here. With these, at N = 6..8 a
# suspicion lasts 0.6 s (2 · max(1, log10 N) · 300 ms) to 3.6 s (6 × that, Lifeguard's maximum).
NODE_ENV = {
    "SWIM_PROBE_INTERVAL": "300ms",
    "SWIM_PROBE_TIMEOUT": "100ms",
    "SWIM_GOSSIP_INTERVAL": "100ms",
    "SWIM_TOMBSTONE_TIMEOUT": "5s",
    "SWIM_RECONNECT_INTERVAL": "2s",
    "SWIM_PUSH_PULL_INTERVAL": "5s",
    "SWIM_LOG_FORMAT": "json",
    "RUST_LOG": "info",
}


def env_num(name, default):
    v = os.environ.get(name)
    return float(v) if v else float(default)


# Every bound, with the environment variable that overrides it. Values measured on the code
# of 2026-12-06 (see tests/chaos/README.md); each leaves margin over what it met, and each
# fails on the regression it is there for.
BOUNDS = {
    # After the heal: every member alive in every view within this many seconds.
    "converge_s": env_num("CHAOS_CONVERGE_MAX_S", 20),
    # Flaps of a healthy member, per healthy observer, per minute of the observed window.
    "healthy_flaps_per_min": env_num("CHAOS_HEALTHY_FLAPS_PER_MIN_MAX", 6),
    # Flaps of the faulty member per healthy observer during one clean fault (one-way
    # partition, SIGSTOP): removed once (alive -> suspect -> dead) and kept out.
    "faulty_flaps": env_num("CHAOS_FAULTY_FLAPS_MAX", 2),
    # Flaps of the flaky member (case c) per healthy observer during the 5 minutes. The target
    # (issue 17) is removal once (alive -> suspect -> dead: 2) and no more; measured 2 since
    # the member puts itself in quarantine (190-240 before). The bound leaves room for a few
    # suspicions it refutes before it knows it cannot hear: measured 4 in six runs at α = 2
    # since it probes at the unscaled rate while in doubt (up to 12 before); the simulator at
    # these timings, 40 seeds: at most 7 suspicions per observer, median 2.
    "flaky_flaps": env_num("CHAOS_FLAKY_FLAPS_MAX", 12),
    # Case c: flaps of a healthy member per healthy observer per minute (the flaky member's
    # accusations could make healthy members suspected, then refuted).
    "flaky_healthy_flaps_per_min": env_num("CHAOS_FLAKY_HEALTHY_FLAPS_PER_MIN_MAX", 6),
    # Case c: at the end of the fault every healthy observer holds the flaky member in, or
    # every one holds it out (1: asserted; 0: reported only).
    "flaky_consistent": env_num("CHAOS_FLAKY_ASSERT_CONSISTENT", 1),
    # Share of the fault's instants (every 250 ms) at which healthy observers disagree on
    # whether the faulty member is in (alive, suspect) or out (dead), in %.
    "disagree_pct": env_num("CHAOS_DISAGREE_MAX_PCT", 10),
    "flaky_disagree_pct": env_num("CHAOS_FLAKY_DISAGREE_MAX_PCT", 15),
    # Case d: flaps of any member per observer per minute under 10 % loss.
    "lossy_flaps_per_min": env_num("CHAOS_LOSSY_FLAPS_PER_MIN_MAX", 3),
}

DURATIONS = {
    "partition_s": env_num("CHAOS_PARTITION_S", 30),
    "oneway_s": env_num("CHAOS_ONEWAY_S", 30),
    "flaky_s": env_num("CHAOS_FLAKY_S", 300),
    "flaky_loss": env_num("CHAOS_FLAKY_LOSS", 80),
    "lossy_s": env_num("CHAOS_LOSSY_S", 180),
    "lossy_loss": env_num("CHAOS_LOSSY_LOSS", 10),
    "stop_s": env_num("CHAOS_STOP_S", 20),
    # Observation after each heal (past convergence, to see that it holds).
    "after_s": env_num("CHAOS_AFTER_S", 25),
}

CASES = {
    "a": ("symmetric partition", 6),
    "b": ("one-way partition", 6),
    "c": ("flaky member", 8),
    "d": ("loss everywhere", 6),
    "e": ("SIGSTOP", 6),
}

TABLE = "swim_chaos"
POLL_S = 0.2
GRID_S = 0.25


def die_with_parent(sig=signal.SIGKILL):
    """Linux prctl(PR_SET_PDEATHSIG): `sig` arrives when the parent dies, so nothing of a
    killed run is left behind (best effort: without libc nothing happens)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(args, stdin=None, check=True):
    r = subprocess.run(args, input=stdin, text=True, capture_output=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {r.stderr.strip()}")
    return r


# ---------------------------------------------------------------------------------------------
# Inside a namespace: one case.


def in_state(s):
    return s in ("alive", "suspect")


class Cluster:
    def __init__(self, binary, workdir, n):
        self.bin, self.dir, self.n = binary, workdir, n
        self.names = [f"node-{i}" for i in range(1, n + 1)]
        self.port = {m: 7000 + i for i, m in enumerate(self.names, 1)}
        self.admin = {m: 8000 + i for i, m in enumerate(self.names, 1)}
        self.procs = {}
        # observer -> list of (time, {member: (state, incarnation)}) for every poll answered
        self.snaps = {m: [] for m in self.names}
        self.stop = threading.Event()
        self.threads = []

    def certs(self):
        ca = os.path.join(self.dir, "ca")
        sh([self.bin, "cert", "ca", "--out", ca])
        for m in self.names:
            sh([self.bin, "cert", "node", "--ca", ca, "--name", m, "--out", os.path.join(self.dir, m)])

    def start(self):
        self.certs()
        # Seeds on both sides of case a's split: the first member and the first of the second half.
        seeds = f"127.0.0.1:{self.port[self.names[0]]},127.0.0.1:{self.port[self.names[self.n // 2]]}"
        # A SWIM_* variable in the environment wins (e.g. SWIM_PROBE_INTERVAL=1s for LAN timings).
        env = dict(NODE_ENV, **os.environ)
        for m in self.names:
            tls = os.path.join(self.dir, m)
            args = [
                self.bin, "run", "--name", m,
                "--bind", f"127.0.0.1:{self.port[m]}",
                "--admin", f"127.0.0.1:{self.admin[m]}",
                "--tls-ca", os.path.join(tls, "ca.pem"),
                "--tls-cert", os.path.join(tls, f"{m}.pem"),
                "--tls-key", os.path.join(tls, f"{m}.key"),
                "--seeds", seeds,
            ]
            with open(os.path.join(self.dir, f"{m}.log"), "w") as f:
                self.procs[m] = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=f,
                                                 preexec_fn=die_with_parent)
        for m in self.names:
            t = threading.Thread(target=self.poll, args=(m,), daemon=True)
            t.start()
            self.threads.append(t)

    def poll(self, m):
        url = f"http://127.0.0.1:{self.admin[m]}/members"
        while not self.stop.is_set():
            t0 = time.time()
            try:
                with urllib.request.urlopen(url, timeout=0.5) as r:
                    body = json.load(r)
                self.snaps[m].append((time.time(), {x["name"]: (x["state"], x["incarnation"], x.get("false_deaths", 0)) for x in body}))
            except Exception:
                pass
            self.stop.wait(max(0.0, POLL_S - (time.time() - t0)))

    def latest(self, m, at=None):
        """Observer m's view at time `at` (its last poll answered at or before it), or None."""
        s = self.snaps[m]
        if at is None:
            return s[-1] if s else None
        lo, hi = 0, len(s)
        while lo < hi:
            mid = (lo + hi) // 2
            if s[mid][0] <= at:
                lo = mid + 1
            else:
                hi = mid
        return s[lo - 1] if lo else None

    def all_alive_everywhere(self, since):
        for m in self.names:
            snap = self.latest(m)
            if snap is None or snap[0] < since:
                return False
            view = snap[1]
            if any(view.get(x, ("absent",))[0] != "alive" for x in self.names):
                return False
        return True

    def wait_converged(self, since, limit):
        """Seconds from `since` until a poll of every member, each answered after `since`, shows
        every member alive; None if not within `limit` seconds."""
        deadline = since + limit
        while time.time() < deadline:
            if self.all_alive_everywhere(since):
                # The moment: the latest of the polls that showed it.
                return max(self.latest(m)[0] for m in self.names) - since
            time.sleep(0.05)
        return None

    def shutdown(self):
        self.stop.set()
        for p in self.procs.values():
            try:
                p.send_signal(signal.SIGCONT)
                p.kill()
            except ProcessLookupError:
                pass
        for p in self.procs.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for t in self.threads:
            t.join(timeout=2)


def nft_rules(rules, scope=None):
    """Replaces this namespace's fault table with one holding `rules` (empty: heal), each
    with a counter, after a rule counting the packets that match `scope`."""
    sh(["nft", "delete", "table", "inet", TABLE], check=False)
    if not rules:
        return
    rules = [f"{scope} counter"] + [r.replace(" drop", " counter drop") for r in rules]
    body = "\n".join(f"  {r}" for r in rules)
    sh(["nft", "-f", "-"], stdin=(
        f"table inet {TABLE} {{\n chain out {{\n  type filter hook output priority 0; policy accept;\n{body}\n }}\n}}\n"))


def nft_counters():
    """Packets counted by each rule of the fault table, in order."""
    out = json.loads(sh(["nft", "-j", "list", "table", "inet", TABLE]).stdout)
    return [e["counter"]["packets"] for x in out["nftables"] if "rule" in x
            for e in x["rule"]["expr"] if "counter" in e]


TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def parse_ts(s):
    m = TS.match(s)
    if not m:
        raise ValueError(f"timestamp {s!r}")
    frac = (m.group(2) or ".0")[:7]
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.datetime.fromisoformat(m.group(1) + frac + tz).timestamp()


KIND = {
    "member suspect": "suspect",
    "suspicion refuted": "alive",
    "member dead": "dead",
    "member up": "alive",
    "member left": "left",
}


def log_events(path):
    """(time, member, new state) for each state-change event in one member's JSON log."""
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            fields = rec.get("fields", {})
            kind = KIND.get(fields.get("message"))
            if kind and "member" in fields:
                out.append((parse_ts(rec["timestamp"]), fields["member"], kind))
    return out


class Case:
    def __init__(self, key, binary, workdir):
        self.key = key
        self.title, n = CASES[key]
        self.c = Cluster(binary, workdir, n)
        self.names = self.c.names
        self.faulty = self.names[-1]
        self.faults = []  # (label, start, end) of each fault window
        self.heals = []  # (label, heal time, seconds to converge or None)
        self.failures = []
        self.figures = {}
        self.dropped = []  # per fault: packets dropped (share of those in the fault's scope)

    def check(self, ok, msg):
        if not ok:
            self.failures.append(msg)

    def form(self):
        self.c.start()
        t0 = time.time()
        took = self.c.wait_converged(t0, 40)
        if took is None:
            raise RuntimeError(f"the cluster of {self.c.n} did not form within 40 s")
        time.sleep(3)
        self.formed = time.time()
        log(f"case {self.key}: {self.c.n} members formed in {took:.1f} s")

    def fault(self, label, rules=None, stop=None, seconds=0.0, scope=None):
        start = time.time()
        if stop:
            pid = self.c.procs[stop].pid
            self.c.procs[stop].send_signal(signal.SIGSTOP)
            time.sleep(0.2)
            with open(f"/proc/{pid}/stat") as f:
                st = f.read().rsplit(")", 1)[1].split()[0]
            self.check(st == "T", f"'{label}': {stop} is not stopped (state {st})")
        else:
            nft_rules(rules, scope or "udp dport " + "{ " + ", ".join(str(x) for x in self.c.port.values()) + " }")
        log(f"case {self.key}: fault '{label}' for {seconds:.0f} s")
        time.sleep(seconds)
        end = time.time()
        self.end_views = {m: self.c.latest(m, end) for m in self.names}
        if stop:
            self.c.procs[stop].send_signal(signal.SIGCONT)
        else:
            counts = nft_counters()
            nft_rules([])
            dropped = sum(counts[1:])
            self.dropped.append(f"{dropped} ({100.0 * dropped / max(1, counts[0]):.0f} %)")
            self.check(dropped > 0, f"'{label}': the fault's rules dropped no packet")
        self.faults.append((label, start, end))
        took = self.c.wait_converged(end, BOUNDS["converge_s"])
        self.heals.append((label, end, took))
        log(f"case {self.key}: healed '{label}'; converged in {'-' if took is None else f'{took:.1f} s'}")
        self.check(took is not None,
                   f"after '{label}': not every member alive in every view {BOUNDS['converge_s']:.0f} s after the heal")
        time.sleep(max(0.0, DURATIONS["after_s"] - (time.time() - end)))

    def metric(self, m, series):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.c.admin[m]}/metrics", timeout=2) as r:
                for line in r.read().decode().splitlines():
                    if line.startswith(series + " "):
                        return float(line.rsplit(" ", 1)[1])
        except OSError:
            pass
        return 0.0

    # --- the cases

    def run(self):
        d = DURATIONS
        self.form()
        p = self.c.port
        ports = lambda ms: "{ " + ", ".join(str(p[m]) for m in ms) + " }"
        if self.key == "a":
            half = self.c.n // 2
            self.sides = (self.names[:half], self.names[half:])
            a, b = ports(self.sides[0]), ports(self.sides[1])
            self.fault("split", [f"udp sport {a} udp dport {b} drop", f"udp sport {b} udp dport {a} drop"],
                       seconds=d["partition_s"])
            # The sides forgot nothing and merged by contacting their dead (the reconnect path).
            self.reconnects = sum(self.metric(m, 'swim_reconnects_total{to="dead"}') for m in self.names)
        elif self.key == "b":
            self.fault("deaf (sends, receives nothing)", [f"udp dport {p[self.faulty]} drop"],
                       seconds=d["oneway_s"], scope=f"udp dport {p[self.faulty]}")
            self.fault("mute (receives, sends nothing)", [f"udp sport {p[self.faulty]} drop"],
                       seconds=d["oneway_s"], scope=f"udp sport {p[self.faulty]}")
        elif self.key == "c":
            self.fault(f"flaky ({d['flaky_loss']:.0f} % ingress loss)",
                       [f"udp dport {p[self.faulty]} numgen random mod 100 < {int(d['flaky_loss'])} drop"],
                       seconds=d["flaky_s"], scope=f"udp dport {p[self.faulty]}")
        elif self.key == "d":
            self.fault(f"{d['lossy_loss']:.0f} % loss everywhere",
                       [f"udp dport {ports(self.names)} numgen random mod 100 < {int(d['lossy_loss'])} drop"],
                       seconds=d["lossy_s"])
        elif self.key == "e":
            self.fault("SIGSTOP", stop=self.faulty, seconds=d["stop_s"])
        self.ended = time.time()

    # --- the figures

    def healthy(self):
        """Members not under a fault (case a: all; what counts there is the side)."""
        if self.key in ("a", "d"):
            return list(self.names)
        return [m for m in self.names if m != self.faulty]

    def expected_out(self, obs, member):
        """Whether obs declaring member dead is the fault doing its job."""
        if self.key == "a":
            return (obs in self.sides[0]) != (member in self.sides[0])
        return False

    def analyse(self):
        start, end = self.faults[0][1], self.ended
        minutes = (end - start) / 60
        all_events = {m: log_events(os.path.join(self.c.dir, f"{m}.log")) for m in self.names}
        # The logs are read: each member logged every other coming up when the cluster formed.
        unseen = [(m, x) for m in self.names for x in self.names
                  if x != m and not any(e[1] == x and e[2] == "alive" for e in all_events[m])]
        self.check(not unseen, f"no 'member up' in the JSON logs for (observer, member) {unseen}: "
                               "is the log format still parsed?")
        events = {m: [e for e in evs if e[0] >= self.formed] for m, evs in all_events.items()}
        # State changes per (observer, member), from the logs.
        changes = {}
        for obs, evs in events.items():
            state = {}
            for t, member, new in evs:
                if member == obs:
                    continue
                old = state.get(member, "alive")
                if new != old:
                    changes.setdefault((obs, member), []).append((t, old, new))
                    state[member] = new
        healthy = self.healthy()

        # (1) healthy members declared dead by healthy observers: logs, polls, false_deaths.
        false_deaths = set()
        for (obs, member), ch in changes.items():
            if obs in healthy and member in healthy and not self.expected_out(obs, member):
                for t, _, new in ch:
                    if new == "dead":
                        false_deaths.add((obs, member, round(t, 1), "log"))
        for obs in healthy:
            prev = {}
            for t, view in self.c.snaps[obs]:
                if t < self.formed:
                    continue
                for member, (st, _, fd) in view.items():
                    if member in healthy and member != obs and not self.expected_out(obs, member):
                        if st == "dead" and prev.get(member) != "dead":
                            false_deaths.add((obs, member, round(t, 1), "poll"))
                        if fd > 0:
                            false_deaths.add((obs, member, None, f"false_deaths={fd}"))
                    prev[member] = st
        log_deaths = sum(1 for x in false_deaths if x[3] == "log")
        pairs = sorted({(o, m) for o, m, _, _ in false_deaths})
        self.figures["healthy_dead"] = len(pairs)
        self.check(not pairs, f"healthy members declared dead by healthy observers (observer, member): {pairs}; "
                              f"{log_deaths} death events in the logs")

        # Faulty member's own accusations (judged separately: reported).
        if self.key in ("b", "c", "e"):
            acc = [(m, new) for (o, m), ch in changes.items() if o == self.faulty for _, _, new in ch]
            self.figures["faulty_sees_dead"] = sum(1 for _, s in acc if s == "dead")
            self.figures["faulty_sees_suspect"] = sum(1 for _, s in acc if s == "suspect")

        # (2) the faulty member (or side) in every healthy view at the end of each fault, and
        # how often healthy observers disagreed during it.
        if self.key == "a":
            end_t = self.faults[0][2]
            bad = []
            for obs in self.names:
                snap = self.end_views[obs]
                for member in self.names:
                    if member == obs:
                        continue
                    st = snap[1].get(member, ("absent",))[0] if snap else "unpolled"
                    want_out = self.expected_out(obs, member)
                    if want_out == in_state(st):
                        bad.append((obs, member, st))
            self.figures["end_of_fault"] = "each side: other dead" if not bad else f"{len(bad)} views off"
            self.check(not bad, f"at the end of the split not every member saw exactly the other side dead: {bad}")
            self.figures["cross_side_deaths"] = sum(1 for (o, m), ch in changes.items()
                                                    if self.expected_out(o, m) for _, _, n in ch if n == "dead")
            self.check(self.figures["cross_side_deaths"] > 0, "the split was not seen in the logs (no cross-side death)")
            self.figures["reconnects_to_dead"] = int(self.reconnects)
            self.check(self.reconnects > 0, "no member counted a reconnect to a dead member (swim_reconnects_total)")
        elif self.key in ("b", "c", "e"):
            ends, disagree = [], []
            for label, fs, fe in self.faults:
                # The polls taken around the end of this fault (the fault's last views).
                views = []
                for obs in healthy:
                    snap = self.c.latest(obs, fe)
                    views.append(snap[1].get(self.faulty, ("absent",))[0] if snap and snap[0] > fe - 2 else "unpolled")
                ins = sum(1 for v in views if in_state(v))
                outs = sum(1 for v in views if v in ("dead", "absent", "left"))
                consistent = ins == len(views) or outs == len(views)
                ends.append("in" if ins == len(views) else "out" if outs == len(views) else f"{ins} in/{outs} out")
                if self.key != "c" or BOUNDS["flaky_consistent"]:
                    self.check(consistent,
                               f"'{label}': at its end the healthy observers disagree on {self.faulty}: {views}")
                grid, split = 0, 0
                t = fs + 0.5
                while t < fe:
                    vs = []
                    for obs in healthy:
                        snap = self.c.latest(obs, t)
                        if snap and snap[0] > t - 1:
                            vs.append(in_state(snap[1].get(self.faulty, ("absent",))[0]))
                    if len(vs) >= 2:
                        grid += 1
                        split += len(set(vs)) > 1
                    t += GRID_S
                disagree.append(100.0 * split / grid if grid else float("nan"))
                bound, var = ((BOUNDS["flaky_disagree_pct"], "CHAOS_FLAKY_DISAGREE_MAX_PCT") if self.key == "c"
                              else (BOUNDS["disagree_pct"], "CHAOS_DISAGREE_MAX_PCT"))
                self.check(grid > 0 and disagree[-1] <= bound,
                           f"'{label}': healthy observers disagreed on {self.faulty} at {disagree[-1]:.1f} % of "
                           f"its instants (bound {bound:g} %, {var})")
            self.figures["end_of_fault"] = ", ".join(ends)
            self.figures["disagree_pct"] = ", ".join(f"{x:.1f}" for x in disagree)
            if self.key in ("b", "e"):
                # A member that cannot answer a probe (deaf, mute, stopped) is removed.
                for (label, _, _), end_state in zip(self.faults, ends):
                    self.check(end_state == "out", f"'{label}': {self.faulty} was not declared dead by all: {end_state}")
            if self.key == "e":
                # Back as the same process (same boot id): a false death in every healthy
                # view's count, not a restart.
                counted = {o: self.c.latest(o)[1].get(self.faulty, (0, 0, 0))[2] if self.c.latest(o) else 0
                           for o in healthy}
                self.figures["stopped_member_false_deaths"] = min(counted.values())
                self.check(min(counted.values()) >= 1,
                           f"the stopped member's return is not counted as a false death in every view: {counted}")

        # (3) flaps: state changes per observer.
        if self.key in ("b", "c", "e"):
            per_fault = []
            for label, fs, fe in self.faults:
                counts = [sum(1 for t, _, _ in changes.get((obs, self.faulty), []) if fs <= t < fe) for obs in healthy]
                deaths = [sum(1 for t, _, n in changes.get((obs, self.faulty), []) if fs <= t < fe and n == "dead")
                          for obs in healthy]
                per_fault.append((label, counts, deaths, (fe - fs) / 60))
                bound = BOUNDS["flaky_flaps"] if self.key == "c" else BOUNDS["faulty_flaps"]
                var = "CHAOS_FLAKY_FLAPS_MAX" if self.key == "c" else "CHAOS_FAULTY_FLAPS_MAX"
                self.check(max(counts) <= bound,
                           f"'{label}': {self.faulty} changed state up to {max(counts)} times in one healthy view "
                           f"(bound {bound:.0f}, {var}): {dict(zip(healthy, counts))}")
            self.figures["by_observer"] = {label: {o: [c, d] for o, c, d in zip(healthy, cs, ds)}
                                           for label, cs, ds, _ in per_fault}
            self.figures["faulty_flaps"] = "; ".join(
                f"{max(c)}/{sum(c) / len(c):.1f}" for _, c, _, _ in per_fault)
            self.figures["faulty_flaps_per_min"] = "; ".join(
                f"{max(c) / mins:.1f}" for _, c, _, mins in per_fault)
            self.figures["faulty_deaths"] = "; ".join(f"{max(d)}/{sum(d) / len(d):.1f}" for _, _, d, _ in per_fault)
        rates = []
        for obs in healthy:
            for member in healthy:
                if member == obs or self.expected_out(obs, member):
                    continue
                n = sum(1 for t, _, _ in changes.get((obs, member), []) if start <= t <= end)
                rates.append(n / minutes)
        worst = max(rates, default=0.0)
        self.figures["healthy_flaps_per_min"] = f"{worst:.2f}/{sum(rates) / max(1, len(rates)):.3f}"
        bound, var = {
            "c": (BOUNDS["flaky_healthy_flaps_per_min"], "CHAOS_FLAKY_HEALTHY_FLAPS_PER_MIN_MAX"),
            "d": (BOUNDS["lossy_flaps_per_min"], "CHAOS_LOSSY_FLAPS_PER_MIN_MAX"),
        }.get(self.key, (BOUNDS["healthy_flaps_per_min"], "CHAOS_HEALTHY_FLAPS_PER_MIN_MAX"))
        self.check(worst <= bound, f"a healthy member flapped {worst:.2f} times a minute in a healthy view "
                                   f"(bound {bound:g}, {var})")
        if self.dropped:
            self.figures["dropped"] = ", ".join(self.dropped)
        # (4) convergence after each heal.
        self.figures["converge_s"] = ", ".join("-" if t is None else f"{t:.1f}" for _, _, t in self.heals)


def run_case(key, binary, workdir, result_path):
    case = Case(key, binary, workdir)
    stopping = []

    def on_signal(sig, _frame):
        stopping.append(sig)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    result = {"case": key, "title": case.title, "members": case.c.n}
    try:
        case.run()
        # Each member's metrics at the end, beside its log (for whoever reads a failure).
        for m in case.names:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{case.c.admin[m]}/metrics", timeout=2) as r:
                    with open(os.path.join(workdir, f"{m}.metrics"), "wb") as f:
                        f.write(r.read())
            except OSError:
                pass
        case.c.stop.set()
        for t in case.c.threads:
            t.join(timeout=2)
        case.analyse()
        result.update(figures=case.figures, failures=case.failures)
    except KeyboardInterrupt:
        result.update(figures=case.figures, failures=["interrupted"])
    except Exception as e:  # a setup error: reported as such
        result.update(figures=case.figures, failures=[f"error: {e}"], error=True)
    finally:
        case.c.shutdown()
        nft_rules([])
    with open(result_path, "w") as f:
        json.dump(result, f)
    return 0


# ---------------------------------------------------------------------------------------------
# Outside: namespaces, one process per case, the table.

COLUMNS = [
    ("healthy_dead", "healthy dead"),
    ("end_of_fault", "faulty at end"),
    ("disagree_pct", "disagree %"),
    ("faulty_flaps", "faulty flaps max/mean"),
    ("faulty_flaps_per_min", "faulty flaps/min"),
    ("faulty_deaths", "faulty deaths max/mean"),
    ("faulty_sees_dead", "faulty's deaths of others"),
    ("healthy_flaps_per_min", "healthy flaps/min max/mean"),
    ("converge_s", "converged s"),
    ("dropped", "dropped (of scope)"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=None, help="swim-node binary (default: target/release/swim-node, "
                                                "or under $CARGO_TARGET_DIR)")
    ap.add_argument("--cases", default="abcde")
    ap.add_argument("--serial", action="store_true", help="one case after another (default: all at once)")
    ap.add_argument("--keep", default=None, help="directory for the logs (default: a temporary one, "
                                                 "kept when a case fails)")
    ap.add_argument("--inside", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.inside:
        # The run was killed without its cleanup: this case cleans up its members.
        die_with_parent(signal.SIGTERM)
        if os.getppid() == 1:
            return 2
        return run_case(args.inside, args.bin, args.keep, args.result)

    binary = args.bin
    if binary is None:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
        binary = os.path.join(target, "release", "swim-node")
    binary = os.path.abspath(binary)
    problems = []
    if os.geteuid() != 0:
        problems.append("not root")
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            problems.append(f"no {tool}")
    if not os.access(binary, os.X_OK):
        problems.append(f"no binary at {binary} (build it: cargo build --release -p swim-node)")
    bad = set(args.cases) - set(CASES)
    if bad:
        problems.append(f"unknown cases {sorted(bad)}")
    if problems:
        print("chaos: cannot run: " + "; ".join(problems), file=sys.stderr)
        return 2

    base = args.keep or tempfile.mkdtemp(prefix="swim-chaos-")
    os.makedirs(base, exist_ok=True)
    log(f"chaos: {binary}; logs in {base}; bounds {BOUNDS}; durations {DURATIONS}")
    tag = f"swimchaos{os.getpid()}"
    # Namespaces of earlier runs killed before their cleanup (their process is gone).
    for line in sh(["ip", "netns", "list"]).stdout.splitlines():
        m = re.match(r"swimchaos(\d+)[a-e]\b", line)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            sh(["ip", "netns", "delete", line.split()[0]], check=False)
    running = {}  # key -> (netns, Popen)
    made = []

    def cleanup():
        for key, (ns, p) in running.items():
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                    p.wait(timeout=15)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for ns in made:
            sh(["ip", "netns", "delete", ns], check=False)

    def on_signal(sig, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    started = time.time()
    results = {}
    try:
        def launch(key):
            ns = f"{tag}{key}"
            sh(["ip", "netns", "add", ns])
            made.append(ns)
            sh(["ip", "-n", ns, "link", "set", "lo", "up"])
            work = os.path.join(base, key)
            os.makedirs(work, exist_ok=True)
            res = os.path.join(work, "result.json")
            out = open(os.path.join(work, "case.log"), "w")
            p = subprocess.Popen(
                ["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__), "--inside", key,
                 "--bin", binary, "--keep", work, "--result", res],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            running[key] = (ns, p)
            return res

        if args.serial:
            for key in args.cases:
                res = launch(key)
                running[key][1].wait()
                results[key] = res
        else:
            for key in args.cases:
                results[key] = launch(key)
            for key in args.cases:
                running[key][1].wait()
    except KeyboardInterrupt:
        log("chaos: interrupted; cleaning up")
        cleanup()
        return 130
    finally:
        cleanup()

    wall = time.time() - started
    failed, rows = [], []
    for key in args.cases:
        try:
            with open(results[key]) as f:
                r = json.load(f)
        except (OSError, ValueError):
            r = {"case": key, "title": CASES[key][0], "members": CASES[key][1], "figures": {},
                 "failures": [f"no result (see {os.path.join(base, key, 'case.log')})"]}
        rows.append(r)
        for msg in r["failures"]:
            failed.append(f"case {key} ({r['title']}): {msg}")
    head = ["case", "N"] + [c[1] for c in COLUMNS] + ["result"]
    table = [head]
    for r in rows:
        f = r["figures"]
        table.append([f"{r['case']} {r['title']}", str(r["members"])] +
                     [str(f.get(k, "")) for k, _ in COLUMNS] + ["FAIL" if r["failures"] else "ok"])
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    print()
    for row in table:
        print(" | ".join(x.ljust(w) for x, w in zip(row, widths)))
    kept = bool(failed or args.keep)
    print(f"\nwall time {wall:.0f} s ({'serial' if args.serial else 'concurrent'}); "
          f"{'logs in ' + base if kept else 'logs removed (all passed; --keep DIR keeps them)'}")
    if failed:
        print("\nFAILED:", file=sys.stderr)
        for msg in failed:
            print(f"  {msg}", file=sys.stderr)
        return 1
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
