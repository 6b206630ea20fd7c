#!/usr/bin/env bash
# The cache suite of issue 13: the edge cache at prefetch budgets 0, 1 and 5 against every
# demand policy, on the simulated regimes that stress a cache and on any real logs given.
#
#   bash scripts/cache-suite.sh [OUT_DIR] [-- NAME=FORMAT:PATH ...]
#
# OUT_DIR (default /tmp/edge-suite) receives the generated logs and one eval JSON per log
# and budget; nothing is committed. Real logs are added as NAME=FORMAT:PATH, for example
# `ml100k=movielens:/tmp/ml100k/u.data` (MovieLens is added by default when that file
# exists). Prints one table per log and capacity (50/100/200 items) with hit ratio,
# fetches per request and prefetch precision, and checks the done criteria of issue 13:
# dominance (edge, budget 1 >= best demand - 0.005), thrift (extra fetches over the best
# demand policy <= 5 x extra hit + 0.02) and monotonicity (budget 5 >= budget 1 - 0.005).
# Budget 0 is the edge without prefetching (prefetch-budget=0, prefetch-k=0).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/edge-suite}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
mkdir -p "$out"
bin=./target/release/loadgen
[ -x "$bin" ] || cargo build --release -p loadgen
jobs=${JOBS:-2}

sim() { # name, extra simulate flags
  local name=$1; shift
  [ -s "$out/$name.jsonl" ] ||
    "$bin" simulate --users 1000 --items 2000 --events 100000 --seed 1 "$@" \
      --out "$out/$name.jsonl" 2>/dev/null
  logs+=("$name=jsonl:$out/$name.jsonl")
}
logs=()
sim default
sim rewatch --rewatch 0.6
sim flash --flash 0.3
sim shift --shift 0.7
sim churn --churn 3
[ -s /tmp/ml100k/u.data ] && logs+=("ml100k=movielens:/tmp/ml100k/u.data")
logs+=("$@")

for spec in "${logs[@]}"; do
  name=${spec%%=*}; rest=${spec#*=}; format=${rest%%:*}; path=${rest#*:}
  "$bin" eval --format "$format" "$path" --cache-items 50,100,200 --jobs "$jobs" \
    --sweep prefetch-budget=1,5 --json "$out/$name.b15.json" >/dev/null
  "$bin" eval --format "$format" "$path" --cache-items 50,100,200 --jobs "$jobs" \
    --sweep prefetch-budget=0 --sweep prefetch-k=0 --json "$out/$name.b0.json" >/dev/null
done

python3 - "$out" "${logs[@]}" <<'PY'
import json, sys
out, specs = sys.argv[1], sys.argv[2:]
DEMAND = ["lru", "lfu", "arc", "s3fifo", "w-tinylfu"]
failed = 0
for spec in specs:
    name = spec.split("=", 1)[0]
    rows = json.load(open(f"{out}/{name}.b15.json"))["caches"]
    rows += [r for r in json.load(open(f"{out}/{name}.b0.json"))["caches"] if r["policy"].startswith("edge")]
    for cap in sorted({r["capacity"] for r in rows}):
        at = {}
        for r in rows:
            if r["capacity"] != cap:
                continue
            s = r.get("settings") or {}
            key = r["policy"] if not r["policy"].startswith("edge") else "edge b" + s.get("prefetch-budget", "?")
            at[key] = r
        best = max(DEMAND, key=lambda p: at[p]["hit_ratio"])
        print(f"\n{name}, {cap} items")
        print(f"  {'cache':<12} {'hit':>7} {'fetch/req':>9} {'pf prec':>8}")
        for key in ["edge b0", "edge b1", "edge b5"] + DEMAND + ["belady"]:
            r = at[key]
            p = r["prefetch_precision"]
            mark = " *" if key == best else ""
            print(f"  {key:<12} {r['hit_ratio']:7.4f} {r['origin_fetches_per_request']:9.3f} "
                  f"{'-' if p is None else f'{p:.3f}':>8}{mark}")
        b, e1, e5 = at[best], at["edge b1"], at["edge b5"]
        checks = []
        for label, e in [("b1", e1), ("b5", e5)]:
            extra_hit = e["hit_ratio"] - b["hit_ratio"]
            extra_fetch = e["origin_fetches_per_request"] - b["origin_fetches_per_request"]
            checks.append((f"dominance {label}", extra_hit >= -0.005, f"{extra_hit:+.4f}"))
            checks.append((f"thrift {label}", extra_fetch <= 5 * extra_hit + 0.02,
                           f"{extra_fetch:+.3f} fetches for {extra_hit:+.4f} hit"))
        checks.append(("monotone", e5["hit_ratio"] >= e1["hit_ratio"] - 0.005,
                       f"{e5['hit_ratio'] - e1['hit_ratio']:+.4f}"))
        for label, ok, why in checks:
            failed += not ok
            print(f"  {'ok  ' if ok else 'FAIL'} {label}: {why}")
print(f"\n{failed} check(s) failed")
PY
