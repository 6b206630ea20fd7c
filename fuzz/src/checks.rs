//! The properties each fuzz target checks, shared by the libFuzzer targets (`fuzz/`) and the
//! stable corpus replay (`tests/tests/fuzz_corpus.rs`, which `#[path]`-includes this file).
//! Depends on `edge_model` only.
//!
//! Blob inputs start with a mode byte. An even mode feeds the rest to the decoder as is, so
//! the frame checks (magic, kind, length, CRC) are fuzzed. An odd mode wraps the rest in a
//! valid frame first: without that, almost every mutation would die at the CRC and the
//! payload parser behind it would never be explored. Mode 1 frames the payload at the
//! version most of the committed corpus was written in (node version 3), so those inputs
//! keep exploring what they found as the format grows; mode 3 frames it at the current
//! version, as new seeds are written.

use edge_model::codec;
use edge_model::engine::View;
use edge_model::federation;
use edge_model::request;
use edge_model::wire::{self, Kind, Writer};
use edge_model::{Config, Engine, UserState};

/// The node version the corpus's mode-1 inputs were written in (see the module doc).
const CORPUS_NODE_VERSION: u16 = 3;

/// The decoder input for `data`: raw (even mode byte) or framed as `kind` (odd).
pub fn blob_of(kind: Kind, data: &[u8]) -> Vec<u8> {
    let Some((&mode, rest)) = data.split_first() else {
        return Vec::new();
    };
    if mode & 1 == 0 {
        return rest.to_vec();
    }
    let version = match (kind, mode & 2 == 0) {
        (Kind::Node, true) => CORPUS_NODE_VERSION,
        (Kind::User, _) => codec::USER_VERSION,
        (Kind::Node, false) => codec::NODE_VERSION,
        (Kind::Update, _) => federation::UPDATE_VERSION,
    };
    let mut w = Writer::frame(kind, version);
    for &b in rest {
        w.u8(b);
    }
    w.finish()
}

/// The seed-corpus form of a real blob: mode 3 (the current version) and its payload (header and CRC stripped),
/// so mutations land in the payload and are re-framed.
pub fn seed_of_blob(blob: &[u8]) -> Vec<u8> {
    let payload = &blob[11..blob.len() - 4];
    let mut s = vec![3];
    s.extend_from_slice(payload);
    s
}

/// Arguments from bytes: split on spaces, as a shell would (empty arguments kept).
pub fn args_of(data: &[u8]) -> Vec<&[u8]> {
    if data.is_empty() {
        return Vec::new();
    }
    data.split(|&b| b == b' ').collect()
}

/// Every parser of the EDGE.* grammar on the same arguments: none may panic, and what one
/// accepts must be consistent with the others.
pub fn request(data: &[u8]) {
    let args = args_of(data);
    let rec = request::record(&args);
    let play = request::play(&args);
    if let Ok(r) = &rec {
        // EDGE.PLAY's grammar is EDGE.RECORD's plus SIZE.
        let p = play.as_ref().expect("PLAY accepts whatever RECORD accepts");
        assert_eq!(p.opts.size, None);
        assert_eq!((p.user, p.item), (r.user, r.item));
    }
    for r in [rec.ok(), play.ok()].into_iter().flatten() {
        assert_eq!(r.user, args[0]);
        assert_eq!(r.item.as_bytes(), args[1]);
        let v = r.view(1_700_000_000_000);
        assert!(v.ts_ms >= 0 && v.ts_ms <= request::MAX_TS_MS);
        assert!(i64::from(v.duration_s.unwrap_or(0)) <= request::MAX_DURATION_S);
        assert!(r
            .opts
            .size
            .is_none_or(|s| s >= 1 && s as i64 <= request::MAX_SIZE));
        assert!(r
            .opts
            .device
            .is_none_or(|d| d.len() <= request::MAX_DEVICE_LEN));
    }
    if let Ok(p) = request::predict(&args) {
        assert_eq!(p.user, args[0]);
    }
    if let Ok((user, k)) = request::prefetch(&args) {
        assert_eq!(user, args[0]);
        let _ = k;
    }
    if request::user_only(&args).is_ok() {
        assert_eq!(args.len(), 1);
    }
    let _ = request::blob(&args, true);
    let _ = request::blob(&args, false);
    for a in &args {
        if let Ok(s) = request::id(a, "user") {
            assert!(!s.is_empty() && s.len() <= wire::MAX_NAME_LEN);
        }
        // Every error renders (the module sends it to the client).
        if let Err(e) = request::record(std::slice::from_ref(a)) {
            let _ = e.to_string();
        }
    }
}

/// `decode_user` never panics; what it accepts re-encodes to a blob that decodes to the same
/// encoding (compared as bytes, so NaN weights compare equal), and the engine can use it:
/// EDGE.RESTORE installs exactly such a user, and the next EDGE.PREDICT or EDGE.PLAY runs it.
pub fn codec_user(data: &[u8]) {
    let blob = blob_of(Kind::User, data);
    let bounds = Config::default().user_bounds();
    let Ok(mut u) = codec::decode_user(&blob, bounds) else {
        return;
    };
    let once = codec::encode_user(&u);
    let again = codec::decode_user(&once, bounds).expect("a re-encoded user decodes");
    assert_eq!(codec::encode_user(&again), once, "user encoding is stable");
    let mut e = Engine::new(Config::default()).expect("default config is valid");
    let _ = e.predict(Some(&u), 10, false);
    let _ = e.predict(Some(&u), 10, true);
    let v = View {
        item: "C1",
        ts_ms: 1_700_000_000_000,
        duration_s: Some(30),
        device: Some("TV"),
    };
    let _ = e.play(&mut u, &v, None);
    let _ = e.predict(Some(&u), 10, false);
    let after = codec::encode_user(&u);
    let reloaded = codec::decode_user(&after, bounds).expect("a user after a view reloads");
    assert_eq!(reloaded, u, "a user after a view reloads to itself");
    assert_node_reloads(&mut e);
}

/// The node re-encodes to a blob that decodes, and stably: what SAVE and a restart need.
fn assert_node_reloads(e: &mut Engine) {
    let blob = codec::encode_node(e);
    let mut d = codec::decode_node(&blob, e.config().clone()).expect("the node reloads");
    assert_eq!(codec::encode_node(&mut d), blob, "node encoding is stable");
}

/// An engine with a one-hour half-life on both clocks and a few views at `ts_ms`: imports
/// meet decaying weights and a landmark that is not 0.
fn decaying_engine(ts_ms: i64) -> Engine {
    let cfg = Config {
        half_life_ms: 3_600_000,
        popularity_half_life_ms: 3_600_000,
        ..Config::default()
    };
    let mut e = Engine::new(cfg).expect("valid config");
    let mut u = UserState::default();
    for (i, item) in ["C1", "C2", "C3", "C1"].iter().enumerate() {
        let v = View {
            item,
            ts_ms: ts_ms + i as i64,
            duration_s: None,
            device: None,
        };
        e.record(&mut u, &v);
    }
    e
}

/// `decode_update` never panics, and an update it accepts, imported by EDGE.MODEL.IMPORT
/// into a fresh node or a node with decaying counts, leaves a node that still reloads and
/// predicts: no peer can make an edge unable to restart.
pub fn codec_update(data: &[u8]) {
    let blob = blob_of(Kind::Update, data);
    let Ok(update) = federation::decode_update(&blob) else {
        return;
    };
    let again = federation::decode_update(&federation::encode_update(&update))
        .expect("a re-encoded update decodes");
    assert_eq!(again, update, "update encoding round-trips");
    let now = 1_700_000_000_000;
    for mut e in [
        Engine::new(Config::default()).expect("valid config"),
        decaying_engine(now),
    ] {
        let _ = e.import_update(&update, now, blob.len());
        let _ = e.predict(None, 10, false);
        let mut u = UserState::default();
        let v = View {
            item: "C2",
            ts_ms: now + 10,
            duration_s: None,
            device: None,
        };
        let _ = e.play(&mut u, &v, None);
        assert!(e
            .predict(Some(&u), 10, true)
            .iter()
            .all(|p| p.score.is_finite()));
        assert_node_reloads(&mut e);
    }
}

/// `decode_node` with the default settings never panics; what it accepts re-encodes
/// stably and serves predictions, plays and a round of learning.
pub fn codec_node(data: &[u8]) {
    let blob = blob_of(Kind::Node, data);
    let Ok(mut e) = codec::decode_node(&blob, Config::default()) else {
        return;
    };
    assert_node_reloads(&mut e);
    let mut u = UserState::default();
    let _ = e.predict(None, 10, false);
    for (t, item) in ["C1", "C2", "C1", "C3"].iter().enumerate() {
        let v = View {
            item,
            ts_ms: 1_700_000_000_000 + t as i64,
            duration_s: Some(30),
            device: None,
        };
        let _ = e.play(&mut u, &v, Some(1));
    }
    let _ = e.predict(Some(&u), 10, false);
    let _ = e.prefetch(Some(&u), 3);
    let _ = e.memory_bytes();
    assert_node_reloads(&mut e);
}
