#!/bin/bash
# One federation round on MovieLens 100K split by region (first digit of the zip code, as
# `federator eval`) over three real servers each, side by side: plain (--edge), in-process
# --secure, and agents (`federator agent` beside each edge, `federator --agent`). Prints each
# round's bytes and wall time and every edge's peers' table size (docs/federation.md).
# Usage: scripts/agents-round.sh [ML100K_DIR]  (needs release builds of edge-module,
# loadgen and federator; uses loopback ports 7411-7443).
set -e
cd "$(dirname "$0")/.."
ML=${1:-/tmp/ml100k}
B=$(mktemp -d); SO=$PWD/target/release/libedgecache.so; F=$PWD/target/release/federator
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$B"; }
trap cleanup EXIT
python3 - "$ML" "$B" <<'PY'
import sys
ml, out = sys.argv[1], sys.argv[2]
region = {}
for l in open(f"{ml}/u.user", encoding="latin-1"):
    f = l.rstrip("\n").split("|")
    d = f[4][:1]
    region[f[0]] = 2 if not d.isdigit() else (0 if d in "0123" else 1 if d in "456" else 2)
files = [open(f"{out}/e{i}.data", "w") for i in range(3)]
for l in open(f"{ml}/u.data"):
    files[region[l.split("\t")[0]]].write(l)
PY
start3() { # $1: base port
  for i in 0 1 2; do
    p=$(( $1 + i ))
    redis-server --port $p --bind 127.0.0.1 --save "" --appendonly no --loadmodule $SO > $B/redis-$p.log 2>&1 &
    pids+=($!)
  done
  sleep 1
  for i in 0 1 2; do
    ./target/release/loadgen replay --format movielens --redis redis://127.0.0.1:$(( $1 + i )) $B/e$i.data > /dev/null 2>&1
  done
}
start3 7411; start3 7421; start3 7431
edges() { echo --edge a=redis://127.0.0.1:$1 --edge b=redis://127.0.0.1:$(( $1 + 1 )) --edge c=redis://127.0.0.1:$(( $1 + 2 )); }
$F $(edges 7411) --rounds 1 --timeout 60s --json $B/plain.json > /dev/null 2> $B/plain.err
$F $(edges 7421) --rounds 1 --timeout 60s --secure --json $B/secure.json > /dev/null 2> $B/secure.err
for i in 0 1 2; do
  $F agent --redis redis://127.0.0.1:$(( 7431 + i )) --listen 127.0.0.1:$(( 7441 + i )) --name e$i --timeout 60s 2> $B/agent-$i.err &
  pids+=($!)
done
sleep 1
$F --agent a=127.0.0.1:7441 --agent b=127.0.0.1:7442 --agent c=127.0.0.1:7443 --rounds 1 --timeout 60s --json $B/agents.json > /dev/null 2> $B/agents.err
cat $B/plain.err $B/secure.err $B/agents.err
for m in plain secure agents; do
  python3 -c "import json,sys; r=json.load(open('$B/$m.json'))['rounds'][0]; print('$m', r['answered'], 'pushed', r['pushed'], 'bytes_in', r['bytes_in'], 'bytes_out', r['bytes_out'], 'ms', round(r['duration_ms'],1))"
done
for p in 7411 7421 7431; do
  for i in 0 1 2; do echo -n "$(( p + i )) "; redis-cli -p $(( p + i )) EDGE.MODEL.INFO | paste -sd' ' | grep -oE "rounds_imported [0-9]+|peer_rows [0-9]+|peer_transitions [0-9]+" | paste -sd' '; done
done
