#!/usr/bin/env bash
# Short fuzz run of every cargo-fuzz target (fuzz/), seeded with the committed corpus:
# catches a new panic in the EDGE.* grammar or the blob codec early. The committed corpus
# is never modified (new inputs go to a scratch directory). A crash fails the run and is
# left in fuzz/artifacts/<target>/.
#
# cargo-fuzz needs nightly compiler flags (-Zsanitizer); on a stable toolchain
# RUSTC_BOOTSTRAP=1 allows them. FUZZ_SECS sets the time per target (default 20).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --quiet
fi
export RUSTC_BOOTSTRAP=1
secs="${FUZZ_SECS:-20}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

cargo fuzz build
for target in request codec_user codec_node codec_update; do
  mkdir -p "$scratch/$target"
  dict=()
  if [ "$target" = request ]; then dict=(-dict=request.dict); fi
  echo "fuzz-smoke: $target for ${secs}s"
  cargo fuzz run "$target" "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$secs" "${dict[@]}" -print_final_stats=1 2>&1 | tail -n 12
done
echo "fuzz-smoke: 4 passed, 0 failed"
