"""CPU and memory of one `swim-node run` process in a cluster of separate processes (issue 16
§1: what a Kubernetes resource request needs), idle and busy (python3 standard library only).

    python3 benches/scripts/process_cpu.py [--bin target/release/swim-node] [--members 32]
        [--warmup 60] [--window 120] [--churn-every 30] [--json out.json]

Starts node-1..node-N on 127.0.0.1 (QUIC ports 37001.., admin ports 38001..; node-1 the
seed; default LAN timings; QUIC + mutual TLS with certificates from `swim-node cert`), waits
until every member's /members shows N alive, lets `--warmup` pass, then measures two windows
of `--window` seconds each:

- idle: nobody fails; every process's user + system CPU (from /proc/PID/stat) over the window;
- busy: every `--churn-every` seconds the next member of the upper half is killed (SIGKILL)
  and the one killed before restarts (same name, certificate, port); the figures are those
  of the lower half, which runs throughout.

Nothing polls the members during a window (an HTTP poll costs the process CPU); /members is
read before and after each one to check that the cluster is whole. Prints one JSON object:
per window, CPU in milliseconds per second of one process (median, p90, max over the
processes measured) and RSS (median, max). The environment reaches the processes, so
`TOKIO_WORKER_THREADS=1` measures the runtime with one worker.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request

from members import log, make_certs, start_member

QUIC_BASE, ADMIN_BASE = 37000, 38000
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    """User + system CPU seconds of a process (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def quantile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


class Cluster:
    def __init__(self, binary, workdir, n):
        self.bin, self.dir, self.n = binary, workdir, n
        self.names = [f"node-{i}" for i in range(1, n + 1)]
        self.procs = {}

    def certs(self):
        make_certs(self.bin, self.dir, self.names)

    def start(self, m):
        i = self.names.index(m) + 1
        self.procs[m] = start_member(self.bin, self.dir, m, QUIC_BASE + i, ADMIN_BASE + i,
                                     QUIC_BASE + 1)

    def kill(self, m):
        p = self.procs.pop(m)
        p.kill()
        p.wait()

    def alive_counts(self):
        """How many members each running process shows alive."""
        counts = {}
        for m in self.procs:
            i = self.names.index(m) + 1
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ADMIN_BASE + i}/members",
                                            timeout=2) as r:
                    counts[m] = sum(1 for x in json.load(r) if x["state"] == "alive")
            except Exception:
                counts[m] = 0
        return counts

    def wait_whole(self, limit):
        end = time.time() + limit
        while time.time() < end:
            if all(c == self.n for c in self.alive_counts().values()):
                return True
            time.sleep(1)
        return False

    def stop_all(self):
        for m in list(self.procs):
            self.kill(m)


def window(cluster, seconds, measured, churn_every=None):
    """CPU ms per second of each process in `measured` over `seconds` (with churn: the next
    member of the upper half killed, the previous one restarted, every `churn_every` s)."""
    pids = {m: cluster.procs[m].pid for m in measured}
    before = {m: cpu_s(p) for m, p in pids.items()}
    t0 = time.time()
    victims = cluster.names[cluster.n // 2:]
    killed, k = None, 0
    while time.time() - t0 < seconds:
        if churn_every:
            time.sleep(min(churn_every, seconds - (time.time() - t0)))
            if time.time() - t0 >= seconds:
                break
            if killed:
                cluster.start(killed)
            killed = victims[k % len(victims)]
            k += 1
            cluster.kill(killed)
        else:
            time.sleep(seconds)
    elapsed = time.time() - t0
    after = {m: cpu_s(p) for m, p in pids.items()}
    rss = [rss_mib(p) for p in pids.values()]
    if killed:
        cluster.start(killed)
    per = [1000 * (after[m] - before[m]) / elapsed for m in measured]
    return {
        "seconds": round(elapsed, 1),
        "processes": len(per),
        "kills": k,
        "cpu_ms_per_s_median": round(statistics.median(per), 3),
        "cpu_ms_per_s_p90": round(quantile(per, 0.9), 3),
        "cpu_ms_per_s_max": round(max(per), 3),
        "rss_mib_median": round(statistics.median(rss), 1),
        "rss_mib_max": round(max(rss), 1),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="target/release/swim-node")
    ap.add_argument("--members", type=int, default=32)
    ap.add_argument("--warmup", type=float, default=60)
    ap.add_argument("--window", type=float, default=120)
    ap.add_argument("--churn-every", type=float, default=30)
    ap.add_argument("--json")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="swim-cpu-")
    c = Cluster(os.path.abspath(args.bin), work, args.members)
    try:
        c.certs()
        for m in c.names:
            c.start(m)
        if not c.wait_whole(60):
            log(f"the cluster did not form within 60 s (logs in {work})")
            return 2
        log(f"{args.members} members formed; warm-up {args.warmup:.0f} s")
        time.sleep(args.warmup)
        out = {"members": args.members, "tokio_worker_threads_env": os.environ.get("TOKIO_WORKER_THREADS")}
        out["idle"] = window(c, args.window, c.names)
        whole = c.wait_whole(30)
        out["idle"]["whole_after"] = whole
        lower = c.names[: args.members // 2]
        out["busy"] = window(c, args.window, lower, churn_every=args.churn_every)
        out["busy"]["whole_after"] = c.wait_whole(60)
        print(json.dumps(out))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(out, f, indent=1)
        return 0 if whole and out["busy"]["whole_after"] else 1
    finally:
        c.stop_all()


if __name__ == "__main__":
    sys.exit(main())
