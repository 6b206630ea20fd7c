//! The fuzz corpus (`fuzz/corpus/<target>/`) replayed through the fuzz targets' own checks
//! on stable Rust, so every `cargo test` re-runs what the fuzzer found interesting, and the
//! crashes it found (`fuzz/regressions/<target>/`) stay as regression tests.
//!
//! The checks are `fuzz/src/checks.rs`, included here by path: one copy of the properties
//! for both the fuzzer and this test.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use edge_model::codec::{decode_user, encode_user, Kind, Writer, USER_VERSION};
use edge_model::UserState;
use edge_tests::redis::{self, Value};
use edge_tests::{Server, ServerOpts};

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
/// view overflowed `records += 1`. Counters in blobs are now held to 2^53 and counting
/// saturates.
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

/// A user blob like `u`'s, but claiming `records` views (the first payload field).
fn with_records(u: &UserState, records: u64) -> Vec<u8> {
    let blob = encode_user(u);
    let payload = &blob[11..blob.len() - 4];
    let mut w = Writer::frame(Kind::User, USER_VERSION);
    w.varint(records);
    let first_varint_len = payload.iter().position(|b| b & 0x80 == 0).unwrap() + 1;
    for &b in &payload[first_varint_len..] {
        w.u8(b);
    }
    w.finish()
}

/// The same bug through the server: a user blob claiming more than 2^53 views is refused
/// by EDGE.RESTORE, and one at the limit keeps counting without wrapping.
#[test]
fn restored_user_at_the_record_limit_keeps_the_server_up() {
    let mut s = Server::start(ServerOpts::new());
    let over = with_records(&UserState::default(), u64::MAX);
    let refused: redis::RedisResult<()> = redis::cmd("EDGE.RESTORE")
        .arg("maxed")
        .arg(over)
        .query(s.conn());
    let err = refused.expect_err("a counter past 2^53 is refused");
    assert!(err.to_string().contains("counter out of range"), "{err}");
    let limit = 1u64 << 53;
    let blob = with_records(&UserState::default(), limit);
    assert_eq!(decode_user(&blob).unwrap().records(), limit);
    let _: () = s.q(redis::cmd("EDGE.RESTORE").arg("maxed").arg(blob));
    let _: () = s.q(redis::cmd("EDGE.RECORD")
        .arg("maxed")
        .arg("C1")
        .arg("TS")
        .arg(1));
    let alive = redis::cmd("PING").query::<String>(&mut s.connect());
    assert!(alive.is_ok(), "server died after EDGE.RECORD");
    let view: Vec<Value> = s.q(redis::cmd("EDGE.USER").arg("maxed"));
    assert_eq!(
        view[1],
        Value::Int(limit as i64 + 1),
        "record count neither wrapped nor stuck"
    );
}
