//! Round trips and refusals of the persisted formats.

use super::node::{encode_dropped, encode_learning, encode_rows, encode_window_use};
use super::*;
use crate::config::Config;
use crate::engine::Engine;
use crate::engine::View;
use crate::error::CodecError;
use crate::hash::fingerprint;
use crate::user::{UserBounds, UserState};
use crate::wire::{Kind, Reader, Writer, MAX_COUNTER, MAX_WEIGHT};
use crate::wire::{HEADER_LEN, TRAILER_LEN};

fn bounds() -> UserBounds {
    Config::default().user_bounds()
}

fn trained() -> (Engine, Vec<UserState>) {
    let cfg = Config {
        cache_capacity_bytes: 8,
        default_item_size: 1,
        ..Config::default()
    };
    let mut e = Engine::new(cfg).unwrap();
    let mut users = vec![UserState::default(); 5];
    for t in 0..200i64 {
        let u = &mut users[(t % 5) as usize];
        let item = format!("C{}", (t * 7) % 23);
        let v = View {
            item: &item,
            ts_ms: t * 1000,
            duration_s: Some(40),
            device: Some("TV"),
        };
        e.play(u, &v, None);
    }
    (e, users)
}

#[test]
fn user_round_trips() {
    let (_, users) = trained();
    for u in &users {
        let blob = encode_user(u);
        assert_eq!(&decode_user(&blob, bounds()).unwrap(), u);
    }
}

#[test]
fn node_round_trips_to_identical_predictions() {
    let (mut e, users) = trained();
    let blob = encode_node(&mut e);
    let mut d = decode_node(&blob, e.config().clone()).unwrap();
    assert_eq!(encode_node(&mut d), blob);
    for u in &users {
        assert_eq!(d.predict(Some(u), 10, false), e.predict(Some(u), 10, false));
    }
    assert_eq!(d.cache().entries(), e.cache().entries());
}

/// A reloaded node answers every later play as the node that never stopped: the cache's
/// learned split, both ghosts and the controller's window travel with it.
/// Drops logged between plays (a lowered capacity) survive a reload: the next play
/// reports the same delta on the reloaded node as on its twin.
#[test]
fn pending_drops_survive_a_reload() {
    let (mut e, mut users) = trained();
    let mut c = e.config().clone();
    c.cache_capacity_bytes = 3;
    e.set_config(c).unwrap();
    let pending = e.cache().dropped().0.len();
    assert!(pending > 0, "the lowered capacity evicted");
    let blob = encode_node(&mut e);
    let mut twin = decode_node(&blob, e.config().clone()).unwrap();
    assert_eq!(encode_node(&mut twin), blob, "re-encodes byte for byte");
    let mut other = users.clone();
    let v = View {
        item: "C3",
        ts_ms: 10_000_000,
        duration_s: None,
        device: None,
    };
    let a = e.play(&mut users[0], &v, None);
    let b = twin.play(&mut other[0], &v, None);
    assert_eq!(a, b);
    assert!(a.dropped.len() >= pending);
}

#[test]
fn a_reloaded_node_plays_on_exactly_as_its_twin() {
    let cfg = Config {
        cache_capacity_bytes: 40,
        default_item_size: 1,
        prefetch_budget: 2.0,
        ..Config::default()
    };
    let mut e = Engine::new(cfg.clone()).unwrap();
    let mut users = vec![UserState::default(); 30];
    // A fixed pseudo-random walk: viewers with tastes, items of several popularities.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut step = |t: i64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let u = (x % 30) as usize;
        let item = format!(
            "C{}",
            (x >> 8) % (20 + 60 * ((x >> 20) % 2)) + (u as u64 % 3) * 7
        );
        (u, item, t * 1000)
    };
    let plays: Vec<_> = (0..6000).map(&mut step).collect();
    for (u, item, ts) in &plays[..3000] {
        let v = View {
            item,
            ts_ms: *ts,
            duration_s: Some(40),
            device: None,
        };
        e.play(&mut users[*u], &v, None);
    }
    assert_ne!(
        e.cache().prefetch_share(),
        cfg.share_mode().start(),
        "the split has learned something"
    );
    let blob = encode_node(&mut e);
    let mut d = decode_node(&blob, cfg).unwrap();
    assert!(
        encode_node(&mut d) == blob,
        "the reload re-encodes to its blob"
    );
    let mut twin_users = users.clone();
    for (n, (u, item, ts)) in plays[3000..].iter().enumerate() {
        let v = View {
            item,
            ts_ms: *ts,
            duration_s: Some(40),
            device: None,
        };
        let a = e.play(&mut users[*u], &v, None);
        let b = d.play(&mut twin_users[*u], &v, None);
        assert_eq!(a, b, "play {n} after the reload");
    }
    assert_eq!(e.cache().stats(), d.cache().stats());
    assert!(
        encode_node(&mut d) == encode_node(&mut e),
        "the twins hold the same node"
    );
}

/// The version 7 and 8 sections of `e`'s blob.
fn window_use_section(e: &mut Engine) -> Vec<u8> {
    let mut w = Writer::default();
    encode_window_use(&mut w, e.parts().1);
    encode_dropped(&mut w, e.parts().1);
    w.into_bytes()
}

/// A version 6 node (before the controller counted its window's prefetch uses) loads
/// with the same model and cache, the counts started afresh.
#[test]
fn a_version_6_node_still_loads() {
    let (mut e, users) = trained();
    let blob = encode_node(&mut e);
    let v7 = window_use_section(&mut e).len();
    let mut w = Writer::frame(Kind::Node, 6);
    w.raw(&blob[HEADER_LEN..blob.len() - TRAILER_LEN - v7]);
    let mut old = decode_node(&w.finish(), e.config().clone()).expect("version 6 loads");
    for u in &users {
        assert_eq!(
            old.predict(Some(u), 10, false),
            e.predict(Some(u), 10, false)
        );
    }
    assert_eq!(old.cache().entries(), e.cache().entries());
    let (a, b) = (old.cache().budget().parts(), e.cache().budget().parts());
    assert_eq!((a.window_prefetches, a.window_used), (0, 0));
    assert_eq!((a.price, a.credit), (b.price, b.credit));
}

/// The version 4 to 7 sections of `e`'s blob: the board's slots, the cache's learning,
/// the local-only rows, the controller's window use.
fn sections_after_demand(e: &mut Engine) -> Vec<u8> {
    let mut w = Writer::default();
    let (g, cache, _) = e.parts();
    w.varint(g.board.items().len() as u64);
    for r in g.board.items() {
        w.varint(u64::from(r.slot));
    }
    encode_learning(&mut w, cache);
    encode_rows(&mut w, &g.local);
    encode_window_use(&mut w, cache);
    encode_dropped(&mut w, cache);
    w.into_bytes()
}

/// A version 2 node (before the cache's demand clock) loads with the same model and
/// cache contents, its cache frequencies started afresh.
#[test]
fn a_version_2_node_still_loads() {
    let (mut e, users) = trained();
    let blob = encode_node(&mut e);
    let later = sections_after_demand(&mut e).len();
    let (g, _, _) = e.parts();
    let mut tail = Writer::default();
    tail.varint(g.demand_ticks);
    tail.varint(g.demand_decay.half_life());
    tail.ivarint(g.demand_decay.landmark());
    let live = g.catalog.slots().filter(|(_, i)| i.is_some()).count();
    // Rebuild the frame around the payload without the version 3 to 6 sections.
    let end = blob.len() - TRAILER_LEN - later;
    let payload = &blob[HEADER_LEN..end - tail.len() - 8 * live];
    let mut w = Writer::frame(Kind::Node, 2);
    w.raw(payload);
    let mut old = decode_node(&w.finish(), e.config().clone()).expect("version 2 loads");
    for u in &users {
        assert_eq!(
            old.predict(Some(u), 10, false),
            e.predict(Some(u), 10, false)
        );
    }
    let keys = |c: &crate::cache::EdgeCache| {
        let mut k: Vec<String> = c.entries().into_iter().map(|i| i.key).collect();
        k.sort();
        k
    };
    assert_eq!(keys(old.cache()), keys(e.cache()));
    assert!(old.cache().entries().iter().all(|i| i.freq == 0.0));
    assert!(old.catalog().iter().all(|(_, i)| i.demand == 0.0));
}

/// A demand clock ahead of the node's own count of views is refused: it would weigh
/// every new request 0 for good.
#[test]
fn a_demand_clock_from_the_future_is_refused() {
    let (mut e, _) = trained();
    let blob = encode_node(&mut e);
    let later = sections_after_demand(&mut e).len();
    let (g, _, _) = e.parts();
    let live = g.catalog.slots().filter(|(_, i)| i.is_some()).count();
    let mut tail = Writer::default();
    tail.varint(g.demand_ticks);
    tail.varint(g.demand_decay.half_life());
    tail.ivarint(g.demand_decay.landmark());
    let cut = blob.len() - TRAILER_LEN - later - tail.len() - 8 * live;
    let mut w = Writer::frame(Kind::Node, NODE_VERSION);
    w.raw(&blob[HEADER_LEN..cut]);
    w.varint(g.demand_ticks);
    w.varint(g.demand_decay.half_life());
    w.ivarint(g.demand_ticks as i64 + 1);
    w.raw(&blob[blob.len() - TRAILER_LEN - later - 8 * live..blob.len() - TRAILER_LEN]);
    assert_eq!(
        decode_node(&w.finish(), e.config().clone()).err(),
        Some(CodecError::Invalid("demand clock out of range"))
    );
}

#[test]
fn every_corruption_is_an_error_not_a_panic() {
    let (mut e, users) = trained();
    for blob in [encode_user(&users[0]), encode_node(&mut e)] {
        for cut in 0..blob.len() {
            assert!(decode_user(&blob[..cut], bounds()).is_err());
            assert!(decode_node(&blob[..cut], Config::default()).is_err());
        }
        for i in 0..blob.len() {
            let mut b = blob.clone();
            b[i] ^= 0x5a;
            assert!(decode_user(&b, bounds()).is_err() || i < 4);
            assert!(decode_node(&b, Config::default()).is_err() || i < 4);
        }
    }
    assert_eq!(
        decode_user(b"nonsense-blob-x", bounds()),
        Err(CodecError::BadMagic)
    );
}

#[test]
fn hostile_counts_do_not_allocate() {
    // A well-framed payload announcing 2^60 history entries.
    let mut w = Writer::frame(Kind::User, USER_VERSION);
    w.varint(1);
    w.ivarint(0);
    w.u8(0);
    w.varint(1 << 60);
    let blob = w.finish();
    assert_eq!(
        decode_user(&blob, bounds()),
        Err(CodecError::Invalid("count exceeds the data present"))
    );
    let mut b = encode_user(&UserState::default());
    b[5] = 9;
    let n = b.len();
    let crc = crc32fast::hash(&b[..n - 4]);
    b[n - 4..].copy_from_slice(&crc.to_le_bytes());
    assert!(matches!(
        decode_user(&b, bounds()),
        Err(CodecError::UnsupportedVersion { found: 9, .. })
    ));
}

/// A user blob with `n` views of distinct items, each weighing `weight`, and `records`.
/// Written in version 1's layout (no clipped flags), which still loads.
fn big_user(n: usize, weight: f32, records: u64) -> Vec<u8> {
    let mut w = Writer::frame(Kind::User, 1);
    w.varint(records);
    w.ivarint(1);
    w.u8(0);
    w.varint(n as u64);
    for i in 0..n {
        w.str(&format!("I{i}"));
        w.ivarint(i as i64);
        w.f32(weight);
    }
    w.varint(n as u64);
    for i in 0..n {
        w.u64(fingerprint(format!("I{i}").as_bytes()));
    }
    w.varint(n as u64 - 1);
    for i in 1..n {
        w.u64(fingerprint(format!("I{}", i - 1).as_bytes()));
        w.u64(fingerprint(format!("I{i}").as_bytes()));
        w.f32(weight * i as f32);
    }
    w.f32(0.0);
    w.varint(0);
    w.varint(0);
    w.finish()
}

/// Every per-user bound applies at decode, as learning applies it: the latest views and
/// seen items, the heaviest own transitions. A blob far over the bounds loads bounded.
#[test]
fn decoding_applies_the_user_bounds() {
    let b = UserBounds {
        history_len: 3,
        seen_max: 5,
        personal_max: 2,
    };
    let u = decode_user(&big_user(1000, 1.0, 1000), b).unwrap();
    let h: Vec<&str> = u.history().iter().map(|h| &*h.item).collect();
    assert_eq!(h, ["I997", "I998", "I999"]);
    let seen: Vec<u64> = u.seen().collect();
    let latest: Vec<u64> = (995..1000)
        .map(|i| fingerprint(format!("I{i}").as_bytes()))
        .collect();
    assert_eq!(seen, latest);
    assert!(u.has_seen(latest[0]) && !u.has_seen(fingerprint(b"I994")));
    let weights: Vec<f32> = u.personal().map(|t| t.weight).collect();
    assert_eq!(weights, [998.0, 999.0]);
    assert_eq!(u.records(), 1000);
    // What it holds re-encodes to a blob that decodes to the same user.
    assert_eq!(decode_user(&encode_user(&u), b).unwrap(), u);
}

/// Weights past the model's range are held to it: a view weighs at most 1, a
/// transition at most MAX_WEIGHT, and scoring the user stays finite.
#[test]
fn huge_weights_are_held_to_the_models_range() {
    let mut u = decode_user(&big_user(10, 3e38, 10), bounds()).unwrap();
    assert!(u.history().iter().all(|h| h.weight == 1.0));
    assert!(u.personal().all(|t| t.weight <= MAX_WEIGHT));
    let (mut e, _) = trained();
    let v = View {
        item: "I3",
        ts_ms: 100,
        duration_s: None,
        device: None,
    };
    e.record(&mut u, &v);
    let p = e.predict(Some(&u), 10, true);
    assert!(
        !p.is_empty() && p.iter().all(|p| p.score.is_finite()),
        "{p:?}"
    );
    assert_eq!(decode_user(&encode_user(&u), bounds()).unwrap(), u);
}

/// A user restored at the counter limit keeps counting at it: the state it reaches
/// re-encodes to a blob that decodes to the same user (a tenant could otherwise make
/// the RDB unloadable with a crafted blob and one more view). Larger counts saturate.
#[test]
fn a_user_at_the_counter_limit_reloads() {
    for claimed in [MAX_COUNTER, u64::MAX] {
        let mut u = decode_user(&big_user(2, 1.0, claimed), bounds()).unwrap();
        assert_eq!(u.records(), MAX_COUNTER);
        let (mut e, _) = trained();
        let v = View {
            item: "C2",
            ts_ms: 5,
            duration_s: None,
            device: None,
        };
        e.record(&mut u, &v);
        let again = decode_user(&encode_user(&u), bounds()).expect("reloads");
        assert_eq!(again, u);
        assert_eq!(again.records(), MAX_COUNTER);
    }
}

/// Repeated seen items or transitions are structure no writer produces: refused.
#[test]
fn repeated_entries_are_refused() {
    let mut w = Writer::frame(Kind::User, USER_VERSION);
    w.varint(1);
    w.ivarint(0);
    w.u8(0);
    w.varint(0);
    w.varint(2);
    w.u64(7);
    w.u64(7);
    w.varint(0);
    w.f32(0.0);
    w.varint(0);
    w.varint(0);
    assert_eq!(
        decode_user(&w.finish(), bounds()),
        Err(CodecError::Invalid("repeated seen item"))
    );
}

/// The writer never emits a non-finite float, whatever it is handed.
#[test]
fn non_finite_floats_are_written_finite() {
    let mut w = Writer::frame(Kind::User, USER_VERSION);
    for v in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
        w.f32(v);
    }
    w.f64(f64::INFINITY);
    let blob = w.finish();
    let (mut r, _) = Reader::open(&blob, Kind::User, USER_VERSION).unwrap();
    assert_eq!(r.f32().unwrap(), f32::MAX);
    assert_eq!(r.f32().unwrap(), f32::MIN);
    assert_eq!(r.f32().unwrap(), 0.0);
    assert_eq!(r.f64().unwrap(), f64::MAX);
}

/// A node restored under live users (EDGE.NODE.RESTORE in an AOF) reuses slot numbers
/// and generations for other items: a user's remembered hints must not carry over, or
/// a viewer of A2 is scored as a viewer of whatever now sits in A2's slot.
#[test]
fn hints_do_not_outlive_their_catalog() {
    let cfg = Config::default();
    let node = |prefix: &str, viewer: &mut UserState| {
        let mut e = Engine::new(cfg.clone()).unwrap();
        let mut u = UserState::default();
        for t in 0..60i64 {
            let item = format!("{prefix}{}", t % 6);
            let v = View {
                item: &item,
                ts_ms: t * 1000,
                duration_s: None,
                device: None,
            };
            e.record(&mut u, &v);
        }
        let item = format!("{prefix}2");
        let v = View {
            item: &item,
            ts_ms: 100_000,
            duration_s: None,
            device: None,
        };
        e.record(viewer, &v);
        e
    };
    let mut viewer = UserState::default();
    let _a = node("A", &mut viewer);
    let mut b = node("B", &mut UserState::default());
    let mut restored = decode_node(&encode_node(&mut b), cfg.clone()).unwrap();
    let unhinted = decode_user(&encode_user(&viewer), bounds()).unwrap();
    let names =
        |p: Vec<crate::scoring::Prediction>| p.into_iter().map(|p| p.item).collect::<Vec<_>>();
    assert_eq!(
        names(restored.predict(Some(&viewer), 5, false)),
        names(restored.predict(Some(&unhinted), 5, false)),
    );
}
