#!/usr/bin/env bash
# Runs the QUIC scenario runner inside a fresh network namespace whose loopback loses a
# share of UDP datagrams at random, by nftables (`numgen random mod 1000 < P drop`): loss
# imposed by the kernel, outside the process, instead of by the runner's impairing socket.
#
#   sudo benches/scripts/nft_loss.sh <per-mille> [quic_scenario flags...]
#   e.g. benches/scripts/nft_loss.sh 50 --members 32 --duration 600 --crash 0 --json
#
# Needs root (ip netns, nft). The runner binary is target/release/quic_scenario unless
# QUIC_SCENARIO names another.
set -euo pipefail
per_mille=${1:?loss in per mille, e.g. 50 for 5 %}
shift
bin=${QUIC_SCENARIO:-$(dirname "$0")/../../target/release/quic_scenario}
ns=swimloss$$
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" nft -f - <<NFT
table inet swim_loss {
  chain output {
    type filter hook output priority 0; policy accept;
    meta l4proto udp numgen random mod 1000 < $per_mille counter drop
  }
}
NFT
ip netns exec "$ns" "$bin" "$@"
echo "nftables drops:" >&2
ip netns exec "$ns" nft list chain inet swim_loss output | grep counter >&2
