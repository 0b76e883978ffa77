#!/usr/bin/env bash
# Build the memberlist member (offline, from Debian's Go packages) and run the flaky-member
# fault once: sudo benches/memberlist-flaky/run.sh [run.py flags], e.g. --timings lan --out DIR;
# or the crash mode: --crash-every 30 --crashes 12 --members 32 --timings lan --out DIR.
# Needs root (network namespaces, nftables), golang-go, golang-github-hashicorp-memberlist-dev.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${MLFLAKY_BUILD:-/tmp/mlflaky-build}"
mkdir -p "$build/gopath/src/mlflaky"
cp "$here/main.go" "$build/gopath/src/mlflaky/"
# GOPATH mode: memberlist 0.2.2 and its dependencies come from /usr/share/gocode, nothing is
# downloaded.
(cd "$build/gopath/src/mlflaky" &&
    GO111MODULE=off GOFLAGS= GOPATH="$build/gopath:/usr/share/gocode" GOCACHE="$build/gocache" \
        nice -n 5 go build -o "$build/mlflaky" .)
exec nice -n 5 python3 "$here/run.py" --bin "$build/mlflaky" "$@"
