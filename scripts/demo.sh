#!/usr/bin/env bash
# The main job, end to end on this machine: build the module and tools, start redis-server
# with the module on a free local port, simulate viewers through EDGE.PLAY, show a viewer's
# predictions and the edge cache's hit ratio beside demand-cache baselines (LRU and the best
# of LFU, ARC, S3-FIFO, W-TinyLFU) on the same views, serve Prometheus metrics from the
# exporter, serve real bytes through edge-server (the HTTP edge) in front of an origin of
# files, and end with commands to try next.
#
#   scripts/demo.sh            run, print the results, stop everything
#   scripts/demo.sh --keep     leave redis-server, the exporter and edge-server (with the
#                              viewer's page) running; Ctrl-C stops them
#
# Environment: USERS, ITEMS, EVENTS, SEED size the simulation; REDIS_SERVER picks the server.
set -euo pipefail
cd "$(dirname "$0")/.."

keep=false
[ "${1:-}" = "--keep" ] && keep=true
USERS=${USERS:-500} ITEMS=${ITEMS:-300} EVENTS=${EVENTS:-50000} SEED=${SEED:-42}
server=${REDIS_SERVER:-redis-server}

command -v "$server" >/dev/null || { echo "redis-server not found: apt-get install redis-server" >&2; exit 1; }

echo "== building (release; the first build takes several minutes, cargo shows its progress)"
cargo build --release -p edge-module -p loadgen -p exporter -p edge-server

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
print(f"     hit ratio {h/(h+m):.3f} with {(m+p)/(h+m):.2f} origin fetches per request")' | tee "$work/edge.txt"

echo "== the same views through demand caches of the same size (50 items; loadgen eval, in process)"
./target/release/loadgen eval "$work/views.jsonl" --cache-items 50 --jobs 1 \
  --policies lru,lfu,arc,s3fifo,w-tinylfu,belady --json "$work/eval.json" >/dev/null
python3 - "$work/eval.json" "$work/edge.txt" <<'PY'
import json, sys
rows = {c["policy"]: c for c in json.load(open(sys.argv[1]))["caches"]}
edge = open(sys.argv[2]).read().split()
demand = [c for p, c in rows.items() if p != "belady" and not p.startswith("edge")]
best = max(demand, key=lambda c: c["hit_ratio"])
def line(name, ratio, fetches):
    print(f"     {name:<44} hit ratio {ratio:.3f} with {fetches:.2f} origin fetches per request")
line("edge (this server, EDGE.PLAY)", float(edge[2]), float(edge[4]))
line("LRU", rows["lru"]["hit_ratio"], rows["lru"]["origin_fetches_per_request"])
line(f"best demand policy ({best['policy']})", best["hit_ratio"], best["origin_fetches_per_request"])
line("Belady (offline optimum: knows the future)", rows["belady"]["hit_ratio"],
     rows["belady"]["origin_fetches_per_request"])
PY

echo "== metrics endpoint: http://127.0.0.1:$mport/metrics"
./target/release/exporter --redis "redis://127.0.0.1:$port" --listen "127.0.0.1:$mport" &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$mport/health" >/dev/null 2>&1 && break; sleep 0.05; done
curl -s "http://127.0.0.1:$mport/metrics" | grep -E '^edge_(up|cache_hits_total|records_total|predict_latency_seconds_count)' | sed 's/^/     /'

# The HTTP edge on a server of its own, whose cache is measured in bytes: 50 titles' worth.
size=65536 views=${HTTP_VIEWS:-2000}
hport=$(free_port)
eport=$(free_port)
echo "== the HTTP edge: edge-server on 127.0.0.1:$eport, an origin of $ITEMS files of 64 KB, the first $views views as GET /content/{item}"
mkdir -p "$work/origin" "$work/edge"
python3 scripts/make-origin.py "$work/views.jsonl" "$work/origin" "$size"
"$server" --port "$hport" --bind 127.0.0.1 --save "" --dir "$work/edge" --logfile "$work/edge/redis.log" \
  --loadmodule "$PWD/target/release/libedgecache.so" cache-capacity-bytes $((50 * size)) item-size-bytes "$size" &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$hport" ping >/dev/null 2>&1 && break; sleep 0.05; done
./target/release/edge-server --redis "redis://127.0.0.1:$hport" --origin "$work/origin" \
  --listen "127.0.0.1:$eport" > "$work/edge-server.log" &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$eport/health" >/dev/null 2>&1 && break; sleep 0.05; done
python3 - "$work/views.jsonl" "$eport" "$views" <<'PY'
import collections, http.client, json, sys
log, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
con = http.client.HTTPConnection("127.0.0.1", port)
seen = collections.Counter()
for line in list(open(log))[:n]:
    v = json.loads(line)
    con.request("GET", f"/content/{v['content_id']}?viewer={v['user_id']}")
    r = con.getresponse()
    r.read()
    seen[r.getheader("X-Edge-Cache") if r.status == 200 else f"HTTP {r.status}"] += 1
print("     responses:", ", ".join(f"{k} {c}" for k, c in seen.most_common()))
con.request("GET", "/api/stats")
s = json.loads(con.getresponse().read())
print(f"     byte hit ratio {s['byte_hit_ratio']:.3f}: {s['edge_bytes'] / 2**20:.0f} MB from the edge, "
      f"{s['origin_fetched_bytes'] / 2**20:.0f} MB fetched from the origin "
      f"({s['prefetch_used_bytes'] / 2**20:.0f} MB of prefetches used, {s['prefetch_wasted_bytes'] / 2**20:.0f} MB wasted)")
PY
echo "     the viewer's page: http://127.0.0.1:$eport/ (stays up with --keep); its metrics: http://127.0.0.1:$eport/metrics"

cat <<NEXT
== what to try next
     scripts/demo.sh --keep           keep the servers, the exporter and edge-server running, then (PORTs as it prints):
       open http://127.0.0.1:EDGEPORT/ (the viewer's page: pick a viewer, click titles, watch the hit ratio)
       redis-cli -p PORT EDGE.PREDICT $user K 10
       ./target/release/loadgen bench --redis redis://127.0.0.1:PORT --baseline get,zset
     ./target/release/loadgen simulate --help      other workloads: --rewatch, --flash, --shift, --churn
     ./target/release/loadgen eval --format movielens DIR/u.data --cache-items 50,100,200 \\
         --sweep prefetch-budget=1,5 --plot eval.svg
                                      the README's figures on MovieLens 100K, with the trade-off plot
                                      (../shared/data/get-movielens-100k DIR downloads it)
NEXT

if $keep; then
  echo "== running: redis-cli -p $port EDGE.PREDICT $user ; curl http://127.0.0.1:$mport/metrics ; the viewer's page http://127.0.0.1:$eport/ (Ctrl-C stops)"
  wait
fi
