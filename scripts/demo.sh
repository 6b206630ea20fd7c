#!/usr/bin/env bash
# The main job, end to end on this machine: build the module and tools, start redis-server
# with the module on a free local port, simulate viewers through EDGE.PLAY, show a viewer's
# predictions and the edge cache's hit ratio, and serve Prometheus metrics from the exporter.
#
#   scripts/demo.sh            run, print the results, stop everything
#   scripts/demo.sh --keep     leave redis-server and the exporter running (Ctrl-C stops them)
#
# Environment: USERS, ITEMS, EVENTS, SEED size the simulation; REDIS_SERVER picks the server.
set -euo pipefail
cd "$(dirname "$0")/.."

keep=false
[ "${1:-}" = "--keep" ] && keep=true
USERS=${USERS:-500} ITEMS=${ITEMS:-300} EVENTS=${EVENTS:-50000} SEED=${SEED:-42}
server=${REDIS_SERVER:-redis-server}

command -v "$server" >/dev/null || { echo "redis-server not found: apt-get install redis-server" >&2; exit 1; }

echo "== building (release)"
cargo build --release -q -p edge-module -p loadgen -p exporter

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
mport=$(free_port)
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== starting $server on 127.0.0.1:$port with the module"
"$server" --port "$port" --bind 127.0.0.1 --save "" --dir "$work" --logfile "$work/redis.log" \
  --loadmodule "$PWD/target/release/libedgecache.so" cache-capacity-bytes 50 item-size-bytes 1 &
pids+=($!)
cli() { redis-cli -p "$port" "$@"; }
for _ in $(seq 100); do cli ping >/dev/null 2>&1 && break; sleep 0.05; done

echo "== simulating $USERS viewers, $ITEMS titles, $EVENTS views (EDGE.PLAY, pipelined)"
./target/release/loadgen simulate --users "$USERS" --items "$ITEMS" --events "$EVENTS" --seed "$SEED" \
  --redis "redis://127.0.0.1:$port" --out "$work/views.jsonl"
echo "   first views of the log:"
head -n 3 "$work/views.jsonl" | sed 's/^/     /'

user=$(head -n 1 "$work/views.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["user_id"])')
echo "== what $user watched last (EDGE.USER) and what they will watch next (EDGE.PREDICT)"
cli --json EDGE.USER "$user" | python3 -c '
import json, sys
f = json.load(sys.stdin)
f = dict(zip(f[::2], f[1::2]))
print("     records:", f["records"], " device:", f["device"], " seen items:", f["seen_items"])
print("     history, latest first:", " ".join(h[0] for h in f["history"][:8]))'
echo "     predicted next (EDGE.PREDICT $user K 5 WITHSCORES):"
cli EDGE.PREDICT "$user" K 5 WITHSCORES | paste - - | sed 's/^/       /'

echo "== edge cache (INFO edge)"
cli INFO edge | grep -E 'edge_(users|items|records_total|cache_hits_total|cache_misses_total|prefetches_total|prefetch_used_total|cache_items)' | tr -d '\r' | sed 's/^/     /'
cli INFO edge | tr -d '\r' | python3 -c '
import sys
f = dict(l.split(":", 1) for l in sys.stdin if ":" in l and not l.startswith("#"))
h, m, p = (int(f[k]) for k in ("edge_cache_hits_total", "edge_cache_misses_total", "edge_prefetches_total"))
print(f"     hit ratio {h/(h+m):.3f} with {(m+p)/(h+m):.2f} origin fetches per request")'

echo "== metrics endpoint: http://127.0.0.1:$mport/metrics"
./target/release/exporter --redis "redis://127.0.0.1:$port" --listen "127.0.0.1:$mport" &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$mport/health" >/dev/null 2>&1 && break; sleep 0.05; done
curl -s "http://127.0.0.1:$mport/metrics" | grep -E '^edge_(up|cache_hits_total|records_total|predict_latency_seconds_count)' | sed 's/^/     /'

if $keep; then
  echo "== running: redis-cli -p $port EDGE.PREDICT $user ; curl http://127.0.0.1:$mport/metrics (Ctrl-C stops)"
  wait
fi
