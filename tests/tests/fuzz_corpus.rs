//! The fuzz corpus (`fuzz/corpus/<target>/`) replayed through the fuzz targets' own checks
//! on stable Rust, so every `cargo test` re-runs what the fuzzer found interesting, and the
//! crashes it found (`fuzz/regressions/<target>/`) stay as regression tests.
//!
//! The checks are `fuzz/src/checks.rs`, included here by path: one copy of the properties
//! for both the fuzzer and this test.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[path = "../../fuzz/src/checks.rs"]
#[allow(dead_code)]
mod checks;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every file under `fuzz/<dir>/<target>/`, with its name.
fn inputs(dir: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let path = fuzz_dir().join(dir).join(target);
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read input"))
        })
        .collect();
    v.sort();
    v
}

/// Runs `check` on every input, collecting (not stopping at) the ones that panic.
fn replay(dir: &str, target: &str, check: fn(&[u8])) {
    let all = inputs(dir, target);
    assert!(!all.is_empty(), "no inputs in fuzz/{dir}/{target}");
    let failed: Vec<&str> = all
        .iter()
        .filter(|(_, data)| catch_unwind(AssertUnwindSafe(|| check(data))).is_err())
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(failed.is_empty(), "fuzz/{dir}/{target}: {failed:?} panic");
}

#[test]
fn request_corpus_never_panics() {
    replay("corpus", "request", checks::request);
}

#[test]
fn codec_user_corpus_round_trips() {
    replay("corpus", "codec_user", checks::codec_user);
}

#[test]
fn codec_node_corpus_round_trips() {
    replay("corpus", "codec_node", checks::codec_node);
}

#[test]
fn codec_update_corpus_imports_into_a_node_that_reloads() {
    replay("corpus", "codec_update", checks::codec_update);
}

/// Runs the check on the named inputs of `fuzz/regressions/<target>/`.
fn regression(target: &str, names: &[&str], check: fn(&[u8])) {
    let all = inputs("regressions", target);
    for name in names {
        let (_, data) = all
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no fuzz/regressions/{target}/{name}"));
        check(data);
    }
}

/// Found by `codec_user`: `decode_user` accepted a record count of `u64::MAX`, and the next
/// view overflowed `records += 1`. Counters in blobs saturate at 2^53 and counting stops
/// there (through a real server: `durability::a_tenant_cannot_make_the_rdb_unloadable`).
#[test]
fn regression_user_record_count_overflow() {
    regression("codec_user", &["records-overflow"], checks::codec_user);
}

/// Found by `codec_node`: a node (popularity half-life 125 ms, landmarks far apart) whose
/// re-basing in `Engine::from_parts` made a popularity non-finite, so it re-encoded to a
/// blob `decode_node` refuses. Re-basing now never moves a landmark back (factor ≤ 1).
#[test]
fn regression_node_reencodes_to_a_refused_blob() {
    regression("codec_node", &["non-finite-popularity"], checks::codec_node);
}

/// Found by `codec_node`: `decode_node` accepted u64 counters at the limit, which then
/// overflowed in `decode_node` itself (`views + peer_views`), in `mean_ln_views`
/// (`views_total + peers.views_total`), and on the next view (`views_total += 1`, the
/// cache's `tick += 1` and `misses += 1`). Counters in blobs are now held to 2^53.
#[test]
fn regression_node_counters_at_the_limit_overflow() {
    regression(
        "codec_node",
        &[
            "decode-item-views-overflow",
            "mean-ln-views-overflow",
            "views-total-overflow",
            "cache-tick-overflow",
            "cache-misses-overflow",
        ],
        checks::codec_node,
    );
}

/// Found by `codec_node` (CI's fuzz smoke): once decoding saturated counters at 2^53
/// instead of refusing them, a node whose counters sat at the limit counted one past it
/// while it was being loaded, and re-encoded to another blob. Every persisted counter now
/// stops at 2^53 (`wire::bump`).
#[test]
fn regression_node_counter_past_the_limit() {
    regression(
        "codec_node",
        &["counter-past-the-limit"],
        checks::codec_node,
    );
}
