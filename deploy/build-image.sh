#!/usr/bin/env bash
# Builds the swim-node container image with no registry: a statically linked swim-node built
# on this machine, copied into `FROM scratch` (deploy/Dockerfile.scratch), with Docker's legacy
# builder. Usage: deploy/build-image.sh [TAG]   (default swim-node:dev)
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-swim-node:dev}"
target=x86_64-unknown-linux-gnu
target_dir="${CARGO_TARGET_DIR:-target}"

echo "== static swim-node ($target, crt-static)"
RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --locked --target "$target" -p swim-node
bin="$target_dir/$target/release/swim-node"
# A scratch image has no dynamic loader: refuse a binary that needs one.
if readelf -l "$bin" | grep -q 'Requesting program interpreter'; then
    echo "error: $bin is dynamically linked; it cannot run in a scratch image" >&2
    exit 1
fi

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp "$bin" "$context/swim-node"
strip "$context/swim-node" 2>/dev/null || true
cp deploy/Dockerfile.scratch "$context/Dockerfile"
mkdir "$context/certs"
echo "== docker build -t $tag (legacy builder, nothing pulled)"
DOCKER_BUILDKIT=0 docker build --quiet -t "$tag" "$context" >/dev/null
docker image inspect "$tag" --format "built $tag: {{.Size}} bytes, user {{.Config.User}}"
