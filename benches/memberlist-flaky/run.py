#!/usr/bin/env python3
"""Flaky member under HashiCorp memberlist: the fault of the swim project's chaos case c.

8 mlflaky members on the loopback of a fresh network namespace; node-8 loses a share
(default 80 %) of the UDP datagrams and of the TCP packets sent to its port for 300 s
(nftables, output hook). Counts, per healthy observer, node-8's state changes during the
fault, its deaths, healthy members declared dead by a healthy observer, and how long after
the heal until every member holds all 8 alive. Needs root, ip, nft, the mlflaky binary.

With --crash-every S: crash mode instead (crash_main below): --members members, one SIGKILLed
every S seconds, --crashes times; analyze.py gives the detection latencies.
"""
import argparse, ctypes, json, os, signal, subprocess, sys, time

N = 8
BASE_PORT = 7001
FLAKY = "node-%d" % N


def sh(*args, check=True, inp=None):
    return subprocess.run(args, check=check, input=inp, capture_output=True, text=True)


def load(path):
    recs = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    recs.append(json.loads(line))
                except ValueError:
                    pass
    return recs


def views_at(logs, t):
    """Each observer's view {node: state} from its state records up to time t."""
    out = {}
    for obs, recs in logs.items():
        v = {}
        for r in recs:
            if r["t"] > t:
                break
            if r["kind"] == "state":
                v[r["node"]] = r["to"]
        out[obs] = v
    return out


def all_alive(v):
    return all(sum(1 for s in vv.values() if s == "alive") == N for vv in v.values()) and len(v) == N


def first_all_alive(logs, t_from, t_to):
    times = sorted({t_from} | {r["t"] for recs in logs.values() for r in recs
                               if r["kind"] == "state" and t_from <= r["t"] <= t_to})
    for t in times:
        if all_alive(views_at(logs, t)):
            return t
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "mlflaky"))
    ap.add_argument("--timings", default="test", choices=["test", "lan"])
    ap.add_argument("--fault-s", type=float, default=300)
    ap.add_argument("--loss", type=int, default=80)
    ap.add_argument("--after-s", type=float, default=25)
    ap.add_argument("--warmup-s", type=float, default=15)
    ap.add_argument("--no-tcp", action="store_true", help="drop UDP only")
    ap.add_argument("--hook", default="input", choices=["input", "output"],
                    help="nftables hook of the drop rules: output makes the sender's sendto() fail with EPERM, "
                         "which memberlist takes as a local error and ends the probe without suspecting")
    ap.add_argument("--isolate", action="store_true",
                    help="node-8 in a namespace of its own behind a veth pair, and the rules drop that share of "
                         "every UDP and TCP packet it receives (also replies on connections it opened), not only "
                         "those to its port")
    ap.add_argument("--rejoin", default="0", help="members' -rejoin (e.g. 2s); 0: join once at start")
    ap.add_argument("--out", default="/tmp/ml-flaky/run")
    ap.add_argument("--crash-every", type=float, default=0,
                    help="crash mode: after convergence and --warmup-s, SIGKILL one member every this many seconds "
                         "(no flaky fault); 0: the flaky-member fault (default)")
    ap.add_argument("--crashes", type=int, default=10, help="crash mode: how many members are killed")
    ap.add_argument("--members", type=int, default=N, help="crash mode: number of members (the flaky mode has 8)")
    ap.add_argument("--seed", type=int, default=1, help="crash mode: seed of the (deterministic) choice of victims")
    ap.add_argument("--no-restart", action="store_true",
                    help="crash mode: do not replace a killed member by a fresh one (new name and port) "
                         "half-way to the next crash")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root")
    if a.crash_every > 0:
        return crash_main(a)
    if a.members != N:
        sys.exit("the flaky mode has %d members; --members is for --crash-every" % N)
    os.makedirs(a.out, exist_ok=True)
    ns = "mlflaky%d" % os.getpid()
    ns8 = ns + "b" if a.isolate else ns
    sh("ip", "netns", "add", ns)
    if a.isolate:
        sh("ip", "netns", "add", ns8)
    procs = []
    counters = ""
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        addr = addr8 = "127.0.0.1"
        if a.isolate:
            addr, addr8 = "10.88.0.1", "10.88.0.2"
            sh("ip", "-n", ns8, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "add", "mlv0", "type", "veth", "peer", "name", "mlv1", "netns", ns8)
            sh("ip", "-n", ns, "addr", "add", addr + "/24", "dev", "mlv0")
            sh("ip", "-n", ns8, "addr", "add", addr8 + "/24", "dev", "mlv1")
            sh("ip", "-n", ns, "link", "set", "mlv0", "up")
            sh("ip", "-n", ns8, "link", "set", "mlv1", "up")
        seeds = "%s:%d,%s:%d" % (addr, BASE_PORT, addr, BASE_PORT + N // 2)
        libc = ctypes.CDLL("libc.so.6", use_errno=True)

        def pdeathsig():
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

        for i in range(1, N + 1):
            cmd = ["ip", "netns", "exec", ns8 if i == N else ns, "nice", "-n", "5", a.bin, "-name", "node-%d" % i,
                   "-bind", addr8 if i == N else addr,
                   "-port", str(BASE_PORT + i - 1), "-seeds", seeds, "-timings", a.timings, "-rejoin", a.rejoin,
                   "-out", os.path.join(a.out, "node-%d.jsonl" % i)]
            procs.append(subprocess.Popen(cmd, preexec_fn=pdeathsig, stdout=subprocess.DEVNULL,
                                          stderr=open(os.path.join(a.out, "node-%d.stderr" % i), "w")))
            time.sleep(0.1)
        # converge, then warm up
        t_start = time.time()
        while True:
            time.sleep(1)
            logs = {"node-%d" % i: load(os.path.join(a.out, "node-%d.jsonl" % i)) for i in range(1, N + 1)}
            if all_alive(views_at(logs, time.time())):
                break
            if time.time() - t_start > 60:
                sys.exit("members did not converge in 60 s")
        print("converged in %.1f s; warm-up %.0f s" % (time.time() - t_start, a.warmup_s), flush=True)
        time.sleep(a.warmup_s)

        port = BASE_PORT + N - 1
        rules = ["udp dport %d counter" % port,
                 "udp dport %d numgen random mod 100 < %d counter drop" % (port, a.loss)]
        if a.isolate:
            rules = [r.replace("udp dport %d" % port, "meta l4proto udp") for r in rules]
        if not a.no_tcp:
            rules += ["tcp dport %d counter" % port,
                      "tcp dport %d numgen random mod 100 < %d counter drop" % (port, a.loss)]
            if a.isolate:
                rules = [r.replace("tcp dport %d" % port, "meta l4proto tcp") for r in rules]
        table = "table inet mlflaky {\n chain out {\n  type filter hook %s priority 0; policy accept;\n  %s\n }\n}\n" % (a.hook, "\n  ".join(rules))
        sh("ip", "netns", "exec", ns8, "nft", "-f", "-", inp=table)
        t0 = time.time()
        load0 = open("/proc/loadavg").read().split()[:3]
        print("fault on at %.3f: %s" % (t0, "; ".join(rules)), flush=True)
        time.sleep(a.fault_s)
        counters = sh("ip", "netns", "exec", ns8, "nft", "list", "table", "inet", "mlflaky").stdout
        sh("ip", "netns", "exec", ns8, "nft", "delete", "table", "inet", "mlflaky")
        t1 = time.time()
        load1 = open("/proc/loadavg").read().split()[:3]
        print("fault off at %.3f" % t1, flush=True)
        with open(os.path.join(a.out, "nft-counters.txt"), "w") as f:
            f.write(counters)
        time.sleep(a.after_s)
        t_end = time.time()
        with open(os.path.join(a.out, "times.json"), "w") as f:
            json.dump({"t0": t0, "t1": t1, "t_end": t_end, "timings": a.timings, "loss": a.loss,
                       "fault_s": a.fault_s, "tcp": not a.no_tcp, "hook": a.hook, "isolate": a.isolate, "rejoin": a.rejoin, "rules": rules,
                       "loadavg_at_fault_start_end": [load0, load1]}, f)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        sh("ip", "netns", "delete", ns, check=False)
        if a.isolate:
            sh("ip", "netns", "delete", ns8, check=False)
    print(counters)
    subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "analyze.py"), a.out])


class Tail:
    """Incremental reader of one member's JSON-lines log: its current view {node: state}."""

    def __init__(self, path):
        self.path, self.off, self.buf, self.view = path, 0, "", {}

    def poll(self):
        try:
            with open(self.path) as f:
                f.seek(self.off)
                data = f.read()
                self.off = f.tell()
        except FileNotFoundError:
            return self.view
        self.buf += data
        lines = self.buf.split("\n")
        self.buf = lines.pop()
        for line in lines:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if r.get("kind") == "state":
                if r["to"] == "reaped":
                    self.view.pop(r["node"], None)
                else:
                    self.view[r["node"]] = r["to"]
        return self.view


def crash_main(a):
    """Crash mode: a.members members; once every member holds all alive and after a.warmup_s,
    every a.crash_every s one member is killed with SIGKILL (seeds never; each victim a different
    original member, in an order fixed by a.seed). Unless a.no_restart, the victim is replaced
    a.crash_every / 2 s later by a fresh process with a new name and port (node-<n+1>, ...), so
    that every crash happens among a.members running members. a.after_s of observation after the
    last crash. Kill and start instants are time.time(), the clock of the members' logs."""
    import random
    n = a.members
    if n < 4 or a.crashes < 1 or a.crashes > n - 2:
        sys.exit("need --members >= 4 and 1 <= --crashes <= members - 2")
    os.makedirs(a.out, exist_ok=True)
    ns = "mlflaky%d" % os.getpid()
    addr = "127.0.0.1"
    seed_names = ["node-1", "node-%d" % (n // 2 + 1)]
    seeds = "%s:%d,%s:%d" % (addr, BASE_PORT, addr, BASE_PORT + n // 2)
    victims = random.Random(a.seed).sample(["node-%d" % i for i in range(1, n + 1)
                                            if "node-%d" % i not in seed_names], a.crashes)
    libc = ctypes.CDLL("libc.so.6", use_errno=True)

    def pdeathsig():
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    procs, tails, started, kills, restarts, late = {}, {}, {}, [], [], []

    def start(i):
        name = "node-%d" % i
        path = os.path.join(a.out, name + ".jsonl")
        cmd = ["ip", "netns", "exec", ns, "nice", "-n", "5", a.bin, "-name", name, "-bind", addr,
               "-port", str(BASE_PORT + i - 1), "-seeds", seeds, "-timings", a.timings, "-rejoin", a.rejoin,
               "-out", path]
        started[name] = time.time()
        procs[name] = subprocess.Popen(cmd, preexec_fn=pdeathsig, stdout=subprocess.DEVNULL,
                                       stderr=open(os.path.join(a.out, name + ".stderr"), "w"))
        tails[name] = Tail(path)
        return name

    def converged():
        running = {m for m, p in procs.items() if p.poll() is None}
        return all({k for k, v in tails[m].poll().items() if v == "alive"} == running for m in running)

    def wait_converged(limit):
        t = time.time()
        while time.time() - t < limit:
            if converged():
                return time.time()
            time.sleep(0.5)
        return None

    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        for i in range(1, n + 1):
            start(i)
            time.sleep(0.1)
        t_start = time.time()
        t_conv = wait_converged(90)
        if t_conv is None:
            sys.exit("members did not converge in 90 s")
        print("%d members converged in %.1f s; warm-up %.0f s; victims in order: %s"
              % (n, t_conv - t_start, a.warmup_s, " ".join(victims)), flush=True)
        time.sleep(a.warmup_s)
        load0 = open("/proc/loadavg").read().split()[:3]
        t_first = time.time()
        nxt = n + 1
        for k, v in enumerate(victims):
            t_k = t_first + k * a.crash_every
            time.sleep(max(0.0, t_k - time.time()))
            if not converged():
                late.append(k)
                print("crash %d: not every running member holds every other alive" % (k + 1), flush=True)
            p = procs[v]
            exe = os.readlink("/proc/%d/exe" % p.pid)
            assert os.path.basename(exe) == os.path.basename(a.bin), exe  # ip netns exec and nice exec, not fork
            t_kill = time.time()
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
            kills.append({"victim": v, "t_kill": t_kill, "pid": p.pid})
            print("crash %d at %.3f: SIGKILL %s (pid %d)" % (k + 1, t_kill, v, p.pid), flush=True)
            if not a.no_restart and k + 1 < len(victims):
                time.sleep(max(0.0, t_kill + a.crash_every / 2 - time.time()))
                name = start(nxt)
                nxt += 1
                restarts.append({"name": name, "replaces": v, "t_start": started[name]})
                print("  started %s at %.3f" % (name, started[name]), flush=True)
        time.sleep(max(0.0, kills[-1]["t_kill"] + a.after_s - time.time()))
        t_end = time.time()
        load1 = open("/proc/loadavg").read().split()[:3]
        with open(os.path.join(a.out, "times.json"), "w") as f:
            json.dump({"mode": "crash", "members": n, "timings": a.timings, "crash_every": a.crash_every,
                       "seed": a.seed, "restart": not a.no_restart, "rejoin": a.rejoin, "seeds": seed_names,
                       "t_start": t_start, "t_conv": t_conv, "t_first_crash": t_first, "t_end": t_end,
                       "started": started, "kills": kills, "restarts": restarts,
                       "crashes_not_converged_before": [k + 1 for k in late],
                       "loadavg_at_first_crash_end": [load0, load1]}, f, indent=1)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        sh("ip", "netns", "delete", ns, check=False)
    subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "analyze.py"), a.out])


if __name__ == "__main__":
    main()
