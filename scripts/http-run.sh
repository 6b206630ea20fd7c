#!/usr/bin/env bash
# The HTTP load run: a simulated log's views as GET /content/{item} through edge-server,
# (a) with the predictive cache and its prefetcher at the defaults and (b) with
# `cache-policy lru` and no prefetch, each on a fresh redis-server with the module and a
# fresh edge-server over the same origin directory of files; prints loadgen http's report
# for both (byte hit ratio, origin bytes, time to first byte by outcome).
#
#   bash scripts/http-run.sh [VIEWS]        (default 20000 views of 1,000 viewers, 2,000 titles)
#
# Environment: ITEMS_CACHED (cache size in titles, default 100), SIZE (bytes per title,
# default 65536), SEED.
set -euo pipefail
cd "$(dirname "$0")/.."
views=${1:-20000} cached=${ITEMS_CACHED:-100} size=${SIZE:-65536} seed=${SEED:-1}
cargo build --release -p edge-module -p loadgen -p edge-server
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
./target/release/loadgen simulate --users 1000 --items 2000 --events "$views" --seed "$seed" --out "$work/views.jsonl" >/dev/null
mkdir -p "$work/origin"
python3 scripts/make-origin.py "$work/views.jsonl" "$work/origin" "$size"
for mode in predictive lru; do
  rport=$(free_port) eport=$(free_port)
  mkdir -p "$work/$mode"
  args=(cache-capacity-bytes $((cached * size)) item-size-bytes "$size")
  [ "$mode" = lru ] && args+=(cache-policy lru prefetch-budget 0 prefetch-k 0)
  redis-server --port "$rport" --bind 127.0.0.1 --save "" --dir "$work/$mode" --logfile "$work/$mode/redis.log" \
    --loadmodule "$PWD/target/release/libedgecache.so" "${args[@]}" &
  pids+=($!)
  for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.05; done
  ./target/release/edge-server --redis "redis://127.0.0.1:$rport" --origin "$work/origin" --listen "127.0.0.1:$eport" >/dev/null &
  pids+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$eport/health" >/dev/null 2>&1 && break; sleep 0.05; done
  echo "== $mode: ${args[*]}"
  ./target/release/loadgen http "$work/views.jsonl" --url "http://127.0.0.1:$eport" --concurrency 8
done
