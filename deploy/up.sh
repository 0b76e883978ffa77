#!/usr/bin/env bash
# One command from a clean checkout to 5 swim members scraped by Prometheus:
#   deploy/up.sh          (deploy/up.sh down   stops them and deletes their volumes)
# Builds swim-node:dev (deploy/build-image.sh) and, when the official Prometheus image is
# neither present nor pullable (no registry), swim-prometheus:local from Debian's
# `prometheus` package on this machine; then `docker-compose up -d` and waits until all 5
# members are healthy.
set -euo pipefail
cd "$(dirname "$0")"
compose=(docker-compose -f compose.yaml -p swim)
if ! command -v docker-compose >/dev/null && docker compose version >/dev/null 2>&1; then
    compose=(docker compose -f compose.yaml -p swim)
fi
if [ "${1:-}" = down ]; then
    "${compose[@]}" down -v
    exit 0
fi

./build-image.sh swim-node:dev

prom_image="${PROMETHEUS_IMAGE:-prom/prometheus:v2.53.0}"
if ! docker image inspect "$prom_image" >/dev/null 2>&1 && ! docker pull -q "$prom_image" >/dev/null 2>&1; then
    if [ ! -x /usr/bin/prometheus ]; then
        echo "error: cannot pull $prom_image and no /usr/bin/prometheus to build one from;" >&2
        echo "       install Debian's package (apt-get install prometheus) or set PROMETHEUS_IMAGE" >&2
        exit 1
    fi
    echo "== $prom_image cannot be pulled: building swim-prometheus:local from /usr/bin/prometheus"
    ctx="$(mktemp -d)"
    trap 'rm -rf "$ctx"' EXIT
    mkdir -p "$ctx/bin" "$ctx/lib" "$ctx/prometheus"
    cp /usr/bin/prometheus "$ctx/bin/prometheus"
    # Debian's prometheus links only libc: bring it and its loader along.
    ldd /usr/bin/prometheus | awk '$3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | while read -r lib; do
        mkdir -p "$ctx/lib$(dirname "$lib")"
        cp -L "$lib" "$ctx/lib$lib"
    done
    cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY lib/ /
COPY bin/prometheus /bin/prometheus
COPY --chown=65534:65534 prometheus /prometheus
USER 65534:65534
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
DOCKERFILE
    DOCKER_BUILDKIT=0 docker build -q -t swim-prometheus:local "$ctx" >/dev/null
    prom_image=swim-prometheus:local
fi
export PROMETHEUS_IMAGE="$prom_image"

start=$(date +%s)
"${compose[@]}" up -d
echo "== waiting for 5 healthy members"
for _ in $(seq 1 60); do
    healthy=0
    for i in 1 2 3 4 5; do
        id="$("${compose[@]}" ps -q "swim-$i")"
        [ "$(docker inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null)" = healthy ] && healthy=$((healthy + 1))
    done
    prom="$("${compose[@]}" ps -q prometheus)"
    if [ "$(docker inspect -f '{{.State.Status}}' "$prom")" != running ]; then
        echo "error: Prometheus is not running:" >&2
        "${compose[@]}" logs --tail 20 prometheus >&2
        exit 1
    fi
    if [ "$healthy" = 5 ]; then
        echo "5 members healthy after $(($(date +%s) - start)) s"
        echo "Prometheus: http://127.0.0.1:9090   swim-1 admin: 127.0.0.1:9946"
        echo "  docker run --rm --network host swim-node:dev members --admin 127.0.0.1:9946"
        exit 0
    fi
    sleep 2
done
echo "error: not all members healthy after 120 s:" >&2
"${compose[@]}" ps >&2
exit 1
