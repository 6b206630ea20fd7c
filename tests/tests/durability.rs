//! Durability against hostile or careless input: whatever a client, a tenant or a peer can
//! send, the server saves a state it can load again, and loads it to the same answers.
//!
//! Each test here reproduces a way an earlier build could be made unable to restart (the
//! RDB written after the input was refused at load, and Redis aborted) or made to hold more
//! than its settings allow, and checks it through a real save and restart.

use edge_model::codec::{encode_user, USER_VERSION};
use edge_model::federation::{encode_update, Clock, Update, UpdateItem};
use edge_model::wire::{Kind, Writer, MAX_COUNTER};
use edge_model::UserState;
use edge_tests::redis::{self, Value};
use edge_tests::{predict, record, Server, ServerOpts};

/// `EDGE.MODEL.INFO` as (field, value) pairs, for before/after comparisons: the model's
/// state, without the process's counters (`*_total`), which restart with it.
fn model_info(s: &mut Server) -> Vec<(String, i64)> {
    let all: Vec<(String, i64)> = s.q(&mut redis::cmd("EDGE.MODEL.INFO"));
    all.into_iter()
        .filter(|(f, _)| !f.ends_with("_total"))
        .collect()
}

/// Saves, restarts from the RDB (the server must start), and returns the restarted server.
fn save_and_restart(s: &mut Server) {
    let _: () = s.q(&mut redis::cmd("SAVE"));
    s.restart();
}

fn aggregate(round: u64, views: u64) -> Vec<u8> {
    encode_update(&Update {
        node: "federator".into(),
        round,
        since: None,
        settings: None,
        rows_clock: Clock::default(),
        items_clock: Clock::default(),
        items: vec![UpdateItem {
            name: "C1".into(),
            views,
            popularity: 1.0,
        }],
        rows: vec![],
    })
}

/// An aggregate naming round 2^60 is refused (nothing changes); one claiming 2^60 views is
/// held to what a node persists. Either way the node saves, restarts and answers alike.
#[test]
fn crafted_aggregates_cannot_make_the_rdb_unloadable() {
    let mut s = Server::start(ServerOpts::new());
    for (i, item) in ["C1", "C2", "C3", "C1", "C2"].iter().enumerate() {
        record(&mut s, "U1", item, 1_000 + i as i64);
    }
    let before = model_info(&mut s);
    let e = s.err(redis::cmd("EDGE.MODEL.IMPORT").arg(aggregate(1 << 60, 1)));
    assert!(e.contains("round or id out of range"), "{e}");
    assert_eq!(model_info(&mut s), before, "a refused blob changes nothing");
    let applied: i64 = s.q(redis::cmd("EDGE.MODEL.IMPORT").arg(aggregate(1, 1 << 60)));
    assert_eq!(applied, 1);
    let info = model_info(&mut s);
    let predicted = predict(&mut s, "U1", Some(5));
    save_and_restart(&mut s);
    assert_eq!(model_info(&mut s), info);
    assert_eq!(predict(&mut s, "U1", Some(5)), predicted);
}

/// The real federator path with no crafted bytes: two edges with a one-hour half-life,
/// one recording at now + 1 h and the other at now + 200 h. Importing the second's export
/// once scaled counts by 2^199 (f32 infinity) and the first edge would not restart.
#[test]
fn a_peer_far_ahead_in_time_cannot_stop_a_restart() {
    let opts = ServerOpts::new()
        .module_arg("half-life-secs", "3600")
        .module_arg("popularity-half-life-secs", "3600");
    let (mut near, mut far) = (Server::start(opts.clone()), Server::start(opts));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let hour = 3_600_000;
    for (s, at) in [(&mut near, now + hour), (&mut far, now + 200 * hour)] {
        for (i, item) in ["A", "B", "C", "A", "B", "C"].iter().enumerate() {
            record(s, &format!("U{}", i % 2), item, at + i as i64);
        }
    }
    let export: Vec<u8> = far.q(&mut redis::cmd("EDGE.MODEL.EXPORT"));
    let applied: i64 = near.q(redis::cmd("EDGE.MODEL.IMPORT").arg(export));
    assert_eq!(applied, 1);
    let info = model_info(&mut near);
    let predicted = predict(&mut near, "U0", Some(5));
    save_and_restart(&mut near);
    assert_eq!(model_info(&mut near), info);
    assert_eq!(predict(&mut near, "U0", Some(5)), predicted);
}

/// A user blob like the empty user's, but claiming `records` views.
fn user_with_records(records: u64) -> Vec<u8> {
    let blob = encode_user(&UserState::default());
    let payload = &blob[11..blob.len() - 4];
    let first = payload.iter().position(|b| b & 0x80 == 0).unwrap() + 1;
    let mut w = Writer::frame(Kind::User, USER_VERSION);
    w.varint(records);
    for &b in &payload[first..] {
        w.u8(b);
    }
    w.finish()
}

/// A tenant confined to its own keys (`~user:*`, no dangerous commands) restores a user
/// at the counter limit and records one more view: the RDB still loads, with the same
/// user in it.
#[test]
fn a_tenant_cannot_make_the_rdb_unloadable() {
    let mut s = Server::start(ServerOpts::new());
    let _: () = s.q(redis::cmd("ACL").arg("SETUSER").arg(&[
        "tenant",
        "on",
        ">pw",
        "+@all",
        "-@dangerous",
        "~user:*",
    ]));
    let mut tenant = redis::Client::open(format!("redis://tenant:pw@127.0.0.1:{}/", s.port()))
        .and_then(|c| c.get_connection())
        .expect("tenant logs in");
    for records in [MAX_COUNTER, u64::MAX] {
        let _: () = redis::cmd("EDGE.RESTORE")
            .arg("user:evil")
            .arg(user_with_records(records))
            .query(&mut tenant)
            .expect("a well-formed blob is accepted");
        let _: () = redis::cmd("EDGE.RECORD")
            .arg("user:evil")
            .arg("C2")
            .query(&mut tenant)
            .unwrap();
    }
    let view: Vec<Value> = s.q(redis::cmd("EDGE.USER").arg("user:evil"));
    assert_eq!(
        view[1],
        Value::Int(MAX_COUNTER as i64),
        "counting stops at the limit"
    );
    save_and_restart(&mut s);
    let again: Vec<Value> = s.q(redis::cmd("EDGE.USER").arg("user:evil"));
    assert_eq!(again, view);
}

/// A restored user holds no more than the settings allow, however large its blob: 200,000
/// seen items load as the latest `seen-max`, and `MEMORY USAGE` says so.
#[test]
fn restored_users_are_held_to_the_per_user_bounds() {
    let mut s = Server::start(ServerOpts::new().module_arg("seen-max", "100"));
    let n = 200_000u64;
    let mut w = Writer::frame(Kind::User, USER_VERSION);
    w.varint(n);
    w.ivarint(1);
    w.u8(0);
    w.varint(0);
    w.varint(n);
    for i in 0..n {
        w.u64(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    }
    w.varint(0);
    w.f32(0.0);
    w.varint(0);
    w.varint(0);
    let blob = w.finish();
    assert!(blob.len() > 1_600_000);
    let _: () = s.q(redis::cmd("EDGE.RESTORE").arg("big").arg(blob));
    let view: Vec<Value> = s.q(redis::cmd("EDGE.USER").arg("big"));
    assert_eq!(view[9], Value::Int(100), "seen_items: {view:?}");
    let bytes: i64 = s.q(redis::cmd("MEMORY").arg("USAGE").arg("big"));
    assert!(bytes < 20_000, "MEMORY USAGE {bytes}");
}

/// `EDGE.NODE.RESTORE` replaces the whole node model: only an AOF being loaded may run it.
#[test]
fn node_restore_is_refused_from_clients() {
    let mut s = Server::start(ServerOpts::new());
    record(&mut s, "U1", "C1", 1);
    let before = model_info(&mut s);
    let e = s.err(redis::cmd("EDGE.NODE.RESTORE").arg("x"));
    assert!(e.contains("only runs while an AOF is loading"), "{e}");
    assert_eq!(model_info(&mut s), before);
}

/// Counts are parsed strictly: a sign or a leading zero is not a number a client meant.
#[test]
fn numbers_are_parsed_strictly() {
    let mut s = Server::start(ServerOpts::new());
    record(&mut s, "U1", "C1", 1);
    for k in ["+5", "05", " 5", "5 ", "0x5"] {
        let e = s.err(redis::cmd("EDGE.PREDICT").arg("U1").arg("K").arg(k));
        assert!(e.starts_with("ERR"), "K {k:?}: {e}");
    }
}

/// The edge cache survives a reload exactly: after `DEBUG RELOAD` the cache holds what it
/// held (a learned prefetch share kept entries that the starting share would not fit), and
/// the next plays get the same replies as on a twin that never reloaded.
#[test]
fn the_cache_plays_on_after_a_reload_as_its_twin() {
    let opts = ServerOpts::new()
        .debug()
        .module_arg("cache-capacity-bytes", "40mb")
        .module_arg("prefetch-budget", "2");
    let (mut twin, mut reloaded) = (Server::start(opts.clone()), Server::start(opts));
    // A fixed walk: 150 viewers, 400 items, each viewer mostly within a neighbourhood.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let plays: Vec<(String, String)> = (0..8000)
        .map(|_| {
            let (u, r) = (next() % 150, next());
            let item = (u * 3 + r % 12 + (r >> 8) % 2 * (r >> 16) % 400) % 400;
            (format!("U{u}"), format!("C{item}"))
        })
        .collect();
    let play = |s: &mut Server, i: usize| -> Value {
        let (u, item) = &plays[i];
        s.q(redis::cmd("EDGE.PLAY")
            .arg(u)
            .arg(item)
            .arg("TS")
            .arg(1_000_000 + 1000 * i as i64))
    };
    let cache = |s: &mut Server| {
        let info = s.info("edge");
        [
            "edge_cache_items",
            "edge_cache_bytes",
            "edge_cache_hits_total",
            "edge_prefetches_total",
            "edge_prefetch_depth",
            "edge_prefetch_price",
        ]
        .map(|f| format!("{f}={:?}", info.get(f)))
    };
    for i in 0..5000 {
        assert_eq!(play(&mut twin, i), play(&mut reloaded, i), "play {i}");
    }
    let before = cache(&mut reloaded);
    let _: () = reloaded.q(redis::cmd("DEBUG").arg("RELOAD"));
    assert_eq!(cache(&mut reloaded), before, "the reload kept the cache");
    for i in 5000..plays.len() {
        assert_eq!(play(&mut twin, i), play(&mut reloaded, i), "play {i}");
    }
    assert_eq!(cache(&mut reloaded), cache(&mut twin));
}
