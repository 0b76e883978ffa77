#!/usr/bin/env bash
# swim on real containers, as an operator runs it (issue 15's "must show"). Run as root:
#   deploy/test-containers.sh
# Builds the scratch image with no registry (deploy/build-image.sh), starts 5 members on a
# private Docker network and checks, printing what it measures:
#   - cold start: all 5 ready and seeing 5 alive, then HEALTHCHECK healthy;
#   - docker kill of one: the other 4 declare it dead (detection latency from the kill);
#     a real Prometheus (Debian's, started here on loopback, scraping the containers by IP,
#     with deploy/prometheus/swim-rules.yml) returns the detection-latency quantile from
#     rate(), fires SwimMemberDead, and every panel query of deploy/grafana/swim.json
#     returns data; the killed member restarts with the same name and is alive again;
#   - a partition made with nftables in one container's network namespace (a table of our
#     own): both sides declare the other dead; after the table is removed all 5 are alive
#     within HEAL_BOUND; the same once with docker network disconnect / connect --ip;
#   - docker stop of one: seen as left, exit code 0.
# The partitions last less than the tombstone timeout (120 s): a longer one does not heal yet
# (issue 17). Exits non-zero at the first check that fails, after printing every member's view.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

IMAGE="${IMAGE:-swim-node:dev}"
NET=swimtest
PREFIX=172.31.247
PROM_ADDR=127.0.0.1:19090
DETECT_BOUND=60     # s: a killed member must be seen dead by all survivors within this
PARTITION_BOUND=100 # s: both sides must see the other dead within this (< tombstone 120 s)
HEAL_BOUND=90       # s: all 5 alive again within this after a partition ends

[ "$(id -u)" = 0 ] || { echo "error: run as root (nsenter and nft act in a container's netns)" >&2; exit 1; }

need=()
command -v nft >/dev/null || need+=(nftables)
command -v nsenter >/dev/null || need+=(util-linux)
command -v prometheus >/dev/null || need+=(prometheus)
command -v python3 >/dev/null || need+=(python3)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

T0=$(date +%s.%N)
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf '[%6ss] %s\n' "$(since "$T0")" "$*"; }

work="$(mktemp -d)"
prom_pid=
names() { for i in 1 2 3 4 5; do echo "swimtest-$i"; done; }
cleanup() {
    [ -n "$prom_pid" ] && kill "$prom_pid" 2>/dev/null && wait "$prom_pid" 2>/dev/null
    docker rm -f $(names) >/dev/null 2>&1 || true
    docker network rm "$NET" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

dump() {
    for c in $(names); do
        echo "--- $c ($(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$c" 2>/dev/null))"
        docker exec "$c" /swim-node members 2>&1 || true
        docker logs --tail 15 "$c" 2>&1 | sed 's/^/    /'
    done
}
fail() { echo "FAIL: $*" >&2; dump >&2; exit 1; }

# c's view: "name state" lines (empty if it does not answer).
view() {
    docker exec "$1" /swim-node members --json 2>/dev/null |
        python3 -c 'import json,sys; [print(m["name"], m["state"]) for m in json.load(sys.stdin)]' 2>/dev/null || true
}
# Whether container $1 sees member $2 in state $3.
sees() { view "$1" | grep -qx "$2 $3"; }
alive_count() { view "$1" | awk '$2 == "alive"' | wc -l; }

# wait_for SECONDS DESCRIPTION COMMAND...: polls every 0.2 s; fails with DESCRIPTION.
wait_for() {
    local bound=$1 what=$2 start
    shift 2
    start=$(now)
    until "$@"; do
        awk -v s="$start" -v n="$(now)" -v b="$bound" 'BEGIN { exit !(n - s > b) }' &&
            fail "$what: not within $bound s"
        sleep 0.2
    done
}

all_see_5_alive() {
    for c in $(names); do [ "$(alive_count "$c")" = 5 ] || return 1; done
}

echo "== image (no registry)"
deploy/build-image.sh "$IMAGE"
log "image $IMAGE: $(docker image inspect -f '{{.Size}}' "$IMAGE") bytes"

echo "== certificates, network, 5 members"
docker rm -f $(names) >/dev/null 2>&1 || true
docker network rm "$NET" >/dev/null 2>&1 || true
mkdir -p "$work/certs"
chown 10001:10001 "$work/certs"
docker run --rm -v "$work/certs:/certs" "$IMAGE" cert cluster --out /certs \
    --names swim-1,swim-2,swim-3,swim-4,swim-5 >/dev/null
docker network create --subnet "$PREFIX.0/24" "$NET" >/dev/null

start_member() {
    local i=$1
    docker run -d --name "swimtest-$i" --network "$NET" --ip "$PREFIX.1$i" \
        -v "$work/certs/swim-$i:/tls:ro" \
        -e SWIM_NAME="swim-$i" -e SWIM_ADVERTISE="$PREFIX.1$i:7946" \
        -e SWIM_SEEDS=swimtest-1:7946,swimtest-2:7946 \
        -e SWIM_TLS_CA=/tls/ca.pem -e SWIM_TLS_CERT="/tls/swim-$i.pem" -e SWIM_TLS_KEY="/tls/swim-$i.key" \
        "$IMAGE" >/dev/null
}
t=$(now)
for i in 1 2 3 4 5; do start_member "$i"; done
all_ready() { for c in $(names); do docker exec "$c" /swim-node health --ready >/dev/null 2>&1 || return 1; done; }
wait_for 60 "all 5 ready" all_ready
cold_ready=$(since "$t")
wait_for 60 "all 5 see 5 alive" all_see_5_alive
cold_alive=$(since "$t")
all_healthy() {
    for c in $(names); do
        [ "$(docker inspect -f '{{.State.Health.Status}}' "$c")" = healthy ] || return 1
    done
}
wait_for 60 "HEALTHCHECK healthy on all 5" all_healthy
log "cold start: all 5 ready in ${cold_ready} s, all see 5 alive in ${cold_alive} s, HEALTHCHECK healthy in $(since "$t") s"

echo "== Prometheus (Debian's, on $PROM_ADDR) with the shipped rules"
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 2s
  evaluation_interval: 2s
rule_files:
  - $repo/deploy/prometheus/swim-rules.yml
scrape_configs:
  - job_name: swim
    static_configs:
      - targets: [$PREFIX.11:9946, $PREFIX.12:9946, $PREFIX.13:9946, $PREFIX.14:9946, $PREFIX.15:9946]
EOF
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prom-data" \
    --web.listen-address="$PROM_ADDR" >"$work/prometheus.log" 2>&1 &
prom_pid=$!
api() { curl -sfG "http://$PROM_ADDR/api/v1/$1" "${@:2}"; }
prom_ready() { curl -sf "http://$PROM_ADDR/-/ready" >/dev/null; }
wait_for 30 "Prometheus ready" prom_ready
rules_shipped=$(grep -c -- '- alert:' deploy/prometheus/swim-rules.yml)
rules_loaded=$(api rules | python3 -c 'import json,sys; print(sum(len(g["rules"]) for g in json.load(sys.stdin)["data"]["groups"]))')
[ "$rules_loaded" = "$rules_shipped" ] || fail "Prometheus loaded $rules_loaded rules, the file has $rules_shipped"
targets_up() {
    [ "$(api targets | python3 -c 'import json,sys; print(sum(t["health"] == "up" for t in json.load(sys.stdin)["data"]["activeTargets"]))')" = 5 ]
}
wait_for 30 "Prometheus scraping all 5" targets_up
log "Prometheus loaded $rules_loaded alert rules and scrapes all 5 members"
# A few scrapes before the kill, so rate() has samples on both sides of the first death.
sleep 8

# Prints the values of an instant query, one per line ("NaN" included); empty if none.
query() {
    api query --data-urlencode "query=$1" |
        python3 -c 'import json,sys; [print(r["value"][1]) for r in json.load(sys.stdin)["data"]["result"]]'
}

echo "== docker kill swimtest-5"
t=$(now)
docker kill swimtest-5 >/dev/null
declare -A seen=()
while [ ${#seen[@]} -lt 4 ]; do
    for i in 1 2 3 4; do
        [ -n "${seen[$i]:-}" ] && continue
        sees "swimtest-$i" swim-5 dead && seen[$i]=$(since "$t")
    done
    awk -v s="$t" -v n="$(now)" -v b="$DETECT_BOUND" 'BEGIN { exit !(n - s > b) }' &&
        fail "swim-5 not seen dead by all 4 within $DETECT_BOUND s (seen: ${!seen[*]})"
    sleep 0.2
done
log "swim-5 killed; seen dead (s after the kill): swim-1 ${seen[1]}, swim-2 ${seen[2]}, swim-3 ${seen[3]}, swim-4 ${seen[4]}; all 4 by $(since "$t") s"

Q_P99='histogram_quantile(0.99, sum by (le) (rate(swim_detection_latency_seconds_bucket{job="swim"}[1m])))'
Q_P50='histogram_quantile(0.5, sum by (le) (rate(swim_detection_latency_seconds_bucket{job="swim"}[1m])))'
quantile_known() { query "$Q_P99" | grep -Eq '^[0-9.]+$'; }
wait_for 30 "the detection-latency quantile from rate() over Prometheus' API" quantile_known
log "Prometheus: detection latency (last heard alive -> dead) p50 $(query "$Q_P50") s, p99 $(query "$Q_P99") s (rate over 1m)"
dead_alert_firing() {
    api alerts | python3 -c 'import json,sys; sys.exit(not any(a["labels"]["alertname"] == "SwimMemberDead" and a["state"] == "firing" for a in json.load(sys.stdin)["data"]["alerts"]))'
}
wait_for 40 "alert SwimMemberDead firing" dead_alert_firing
log "Prometheus: alert SwimMemberDead is firing"

echo "== every dashboard panel query returns data"
if ! python3 - "$PROM_ADDR" deploy/grafana/swim.json <<'EOF'
import json, sys, urllib.parse, urllib.request
addr, path = sys.argv[1], sys.argv[2]
bad = 0
for panel in json.load(open(path))["panels"]:
    for t in panel["targets"]:
        expr = t["expr"].replace("$__rate_interval", "1m")
        url = f"http://{addr}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        res = json.load(urllib.request.urlopen(url))["data"]["result"]
        status = f"{len(res)} series" if res else "NO DATA"
        bad += not res
        print(f"  {status:>10}  {panel['title']} [{t['refId']}]")
sys.exit(1 if bad else 0)
EOF
then
    fail "a dashboard query returned no data"
fi

rss=$(query 'max(process_resident_memory_bytes{job="swim"}) / 1048576')
cpu=$(query 'max(rate(process_cpu_seconds_total{job="swim"}[1m])) * 1000')
log "Prometheus: largest member RSS $(printf '%.1f' "$rss") MiB, CPU $(printf '%.1f' "$cpu") millicores (1 min rate, whole seconds counted)"

echo "== restart swimtest-5 (same name, new process)"
t=$(now)
docker start swimtest-5 >/dev/null
wait_for 60 "all 5 alive after the restart" all_see_5_alive
log "swim-5 restarted: all 5 see 5 alive after $(since "$t") s"

# cut_both_ways C NAME: C sees the other 4 dead, and the other 4 see NAME dead.
cut_both_ways() {
    local c=$1 name=$2 n
    n=$(view "$c" | grep -v "^$name " | awk '$2 == "dead"' | wc -l)
    [ "$n" = 4 ] || return 1
    for o in $(names); do
        [ "$o" = "$c" ] && continue
        sees "$o" "$name" dead || return 1
    done
}

echo "== partition: nftables in swimtest-1's network namespace"
pid=$(docker inspect -f '{{.State.Pid}}' swimtest-1)
others="$PREFIX.12, $PREFIX.13, $PREFIX.14, $PREFIX.15"
t=$(now)
nsenter -t "$pid" -n nft -f - <<EOF
table inet swimtest_partition {
    chain input { type filter hook input priority 0; policy accept; ip saddr { $others } drop; }
    chain output { type filter hook output priority 0; policy accept; ip daddr { $others } drop; }
}
EOF
wait_for "$PARTITION_BOUND" "both sides of the nftables partition see the other dead" cut_both_ways swimtest-1 swim-1
log "nftables partition: swim-1 and the other 4 see each other dead after $(since "$t") s"
nsenter -t "$pid" -n nft delete table inet swimtest_partition
t=$(now)
wait_for "$HEAL_BOUND" "all 5 alive after the nftables partition ended" all_see_5_alive
log "nftables partition removed: all 5 see 5 alive after $(since "$t") s (bound $HEAL_BOUND s)"

echo "== partition: docker network disconnect swimtest-2"
t=$(now)
docker network disconnect "$NET" swimtest-2
wait_for "$PARTITION_BOUND" "both sides of the disconnect see the other dead" cut_both_ways swimtest-2 swim-2
log "disconnect: swim-2 and the other 4 see each other dead after $(since "$t") s"
docker network connect --ip "$PREFIX.12" "$NET" swimtest-2
t=$(now)
wait_for "$HEAL_BOUND" "all 5 alive after connect --ip" all_see_5_alive
log "reconnected with its address: all 5 see 5 alive after $(since "$t") s (bound $HEAL_BOUND s)"

echo "== docker stop swimtest-3"
t=$(now)
docker stop swimtest-3 >/dev/null
code=$(docker inspect -f '{{.State.ExitCode}}' swimtest-3)
[ "$code" = 0 ] || fail "swimtest-3 exited with $code after SIGTERM"
all_see_left() { for i in 1 2 4 5; do sees "swimtest-$i" swim-3 left || return 1; done; }
wait_for 30 "swim-3 seen as left by the other 4" all_see_left
log "docker stop: exit code 0 after $(since "$t") s; the other 4 see swim-3 left (not dead)"

echo "PASS: deploy/test-containers.sh"
