"""What the benchmark scripts share: list arguments, and building and running the release
binaries they drive (python3 standard library only)."""

import json
import subprocess

# The crate of each binary a script may drive.
PACKAGES = {"swim-node": "swim-node", "quic_scenario": "swim-benches", "plot": "swim-benches"}


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
        argv = ["cargo", "build", "--release", "--locked"]
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
