"""What the benchmark scripts share: list arguments, and building and running the release
binaries they drive (python3 standard library only)."""

import json
import os
import subprocess
import sys
import tempfile

# The crate of each binary a script may drive.
PACKAGES = {"swim-node": "swim-node", "quic_scenario": "swim-benches", "plot": "swim-benches",
            "foca_sim": "swim-benches", "foca_udp": "swim-benches"}


def nums(text, kind):
    """A comma-separated list argument: "16,64" → [16, 64]."""
    return [kind(x) for x in text.split(",") if x]


def add_build_args(parser):
    parser.add_argument("--target-dir", default="target")
    parser.add_argument("--no-build", action="store_true",
                        help="use the binaries already in --target-dir/release")


def binaries(args, names):
    """Builds `names` (unless --no-build) and returns {name: path}."""
    if not args.no_build:
        argv = ["cargo", "build", "--release", "--locked", "--target-dir", args.target_dir]
        for pkg in sorted({PACKAGES[n] for n in names}):
            argv += ["-p", pkg]
        for n in names:
            argv += ["--bin", n]
        subprocess.run(argv, check=True)
    return {n: f"{args.target_dir}/release/{n}" for n in names}


def run_json(argv):
    """Runs a binary that prints one JSON object (last line of its output)."""
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def chart(plot_bin, out, series, title, x_desc, y_desc, log_x=False, log_y=False):
    """Draws `series` ([(name, [[x, y], ...]), ...]) as an SVG line chart at `out`."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump([{"name": n, "points": p} for n, p in series], f)
    argv = [plot_bin, "--out", out, "--title", title, "--x-desc", x_desc, "--y-desc", y_desc]
    argv += ["--log-x"] if log_x else []
    argv += ["--log-y"] if log_y else []
    try:
        subprocess.run(argv + [f.name], check=True)
    finally:
        os.unlink(f.name)
    print(f"wrote {out}", file=sys.stderr)
