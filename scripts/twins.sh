#!/usr/bin/env bash
# The twin-server property test at length: SEQUENCES random command streams (default 500,
# from seed SEED, default 1000) against two servers, one made to reload after every batch
# (RDB restart, full sync, AOF rewrite or replay), compared key by key (DUMP), by model and
# cache state, by predictions and by every reply, PLAY included. CI runs a bounded
# version (tests/tests/twins.rs); REDIS_SERVER picks another server binary (Valkey).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p edge-module
TWIN_SEQUENCES="${SEQUENCES:-500}" TWIN_SEED="${SEED:-1000}" \
  cargo test -q -p edge-tests --test twins -- --nocapture 2>&1 | grep -E "twins:|test result|panicked|seed"
