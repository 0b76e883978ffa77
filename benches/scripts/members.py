"""What the scripts that run `swim-node run` processes share: certificates for a cluster,
starting one member, and a log line (python3 standard library only)."""

import os
import signal
import subprocess
import sys
import time


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def die_with_parent():
    """Linux prctl(PR_SET_PDEATHSIG): the member is killed when the script dies."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def make_certs(binary, workdir, names):
    """A CA in workdir/ca and, for each name, its certificate and key in workdir/NAME."""
    ca = os.path.join(workdir, "ca")
    subprocess.run([binary, "cert", "ca", "--out", ca], check=True, capture_output=True)
    for m in names:
        subprocess.run([binary, "cert", "node", "--ca", ca, "--name", m,
                        "--out", os.path.join(workdir, m)], check=True, capture_output=True)


def start_member(binary, workdir, name, port, admin, seed_port):
    """Starts `swim-node run` for `name` on 127.0.0.1 (QUIC `port`, admin `admin`), joining
    through `seed_port`; its log goes to workdir/NAME.log (RUST_LOG defaults to warn)."""
    tls = os.path.join(workdir, name)
    args = [
        binary, "run", "--name", name,
        "--bind", f"127.0.0.1:{port}",
        "--admin", f"127.0.0.1:{admin}",
        "--tls-ca", os.path.join(tls, "ca.pem"),
        "--tls-cert", os.path.join(tls, f"{name}.pem"),
        "--tls-key", os.path.join(tls, f"{name}.key"),
        "--seeds", f"127.0.0.1:{seed_port}",
    ]
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
    with open(os.path.join(workdir, f"{name}.log"), "a") as f:
        return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=f,
                                preexec_fn=die_with_parent)
