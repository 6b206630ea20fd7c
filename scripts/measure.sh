#!/usr/bin/env bash
# Reruns the figures the README and docs/ quote, each with the command the docs give for it,
# so that no figure in the docs lacks a command that regenerates it.
#
#   bash scripts/measure.sh ML100K_DIR [SECTION ...]
#
# ML100K_DIR holds MovieLens 100K (`../shared/data/get-movielens-100k DIR` fetches it; it
# is never committed). SECTIONs (default: all but `suite`, which takes about 5 minutes
# more): `eval` (HR@10, MRR and the cache on MovieLens, docs/prediction.md and
# docs/cache.md), `holdout` (against offline models, docs/prediction.md), `federation`
# (docs/federation.md), `perf` (throughput against plain Redis on a fresh local server,
# docs/performance.md), `suite` (scripts/cache-suite.sh, docs/cache.md). Every output is
# also kept under $OUT (default /tmp/edge-measure).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
dir=$1; shift
[ -s "$dir/u.data" ] || { echo "measure.sh: $dir/u.data not found: run ../shared/data/get-movielens-100k $dir first" >&2; exit 2; }
sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(eval holdout federation perf)
out=${OUT:-/tmp/edge-measure}
mkdir -p "$out"

echo "== building (release)" >&2
cargo build --release -p edge-module -p loadgen -p federator
bin=./target/release

run() { # name, command...: prints the command, runs it, keeps its output
  local name=$1; shift
  echo "== $name: $*"
  "$@" 2>&1 | tee "$out/$name.txt"
}

perf() {
  local server=${REDIS_SERVER:-redis-server}
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$server" --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --loadmodule "$PWD/target/release/libedgecache.so" >"$out/redis.log" 2>&1 &
  local pid=$!
  trap 'kill $pid 2>/dev/null || true' RETURN
  for _ in $(seq 50); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.1; done
  local url=redis://127.0.0.1:$port
  run perf-record "$bin/loadgen" bench --redis "$url" --clients 4 --pipeline 16 --duration 5 \
    --mix record=1 --baseline get,zset
  run perf-predict "$bin/loadgen" bench --redis "$url" --clients 4 --pipeline 16 --duration 5 \
    --mix predict=1 --baseline lrange,zset
}

for s in "${sections[@]}"; do
  case $s in
    eval) run eval "$bin/loadgen" eval --format movielens "$dir/u.data" \
            --cache-items 50,100,200 --sweep prefetch-budget=1,5 --jobs 2 ;;
    holdout) run holdout "$bin/loadgen" holdout --format movielens "$dir/u.data" ;;
    federation) run federation "$bin/federator" eval --movielens "$dir" --edges 3 --round-every 5000 ;;
    perf) perf ;;
    suite) # cache-suite.sh adds /tmp/ml100k by itself when it is there
      extra=()
      [ "$(realpath "$dir")" = /tmp/ml100k ] || extra=("ml100k=movielens:$dir/u.data")
      run suite bash scripts/cache-suite.sh "$out/suite" -- "${extra[@]}" ;;
    *) echo "measure.sh: unknown section '$s' (eval, holdout, federation, perf, suite)" >&2; exit 2 ;;
  esac
done
echo "== outputs in $out" >&2
