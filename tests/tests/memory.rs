//! Bounded memory: whatever the traffic, the node model stays within what its settings
//! allow, and user keys are ordinary Redis keys that expire and are evicted.

use std::time::{Duration, Instant};

use edge_tests::redis::{self, Value};
use edge_tests::{record, Server, ServerOpts};

const ITEMS_MAX: u64 = 1000;
const SUCCESSORS_MAX: u64 = 16;
const SEEN_MAX: u64 = 64;
const HISTORY_LEN: u64 = 10;

/// The most `edge_model_memory_bytes` may report under the settings above, derived from
/// them (generously, since vectors grow by doubling):
///
/// - catalog: per item slot, the item record (name pointer, fingerprint, popularity, views,
///   durations, size: < 128 B), its name (< 32 B here) and its index entries (< 32 B);
/// - co-occurrence: per item, one row (header < 64 B) of at most `successors-max` entries
///   of < 32 B (item reference, count, error);
/// - the learning buffer: at most `FLUSH_AT` (8192) pending links plus one view's worth,
///   and as much scratch for sorting them, < 16 B each;
/// - the popularity board: 1024 references plus a position per slot;
/// - the edge cache: empty here (EDGE.RECORD never fills it).
///
/// Doubling slack then takes the whole to twice that.
fn model_bound() -> u64 {
    let per_item = 128 + 32 + 32 + 64 + SUCCESSORS_MAX * 32;
    let learning = 2 * (8192 + 64) * 16;
    let board = 1024 * 8 + ITEMS_MAX * 4;
    2 * (ITEMS_MAX * per_item + learning + board)
}

fn bounded() -> ServerOpts {
    ServerOpts::new()
        .module_arg("items-max", &ITEMS_MAX.to_string())
        .module_arg("successors-max", &SUCCESSORS_MAX.to_string())
        .module_arg("seen-max", &SEEN_MAX.to_string())
        .module_arg("history-len", &HISTORY_LEN.to_string())
}

/// EDGE.USER's field `name`.
fn user_field(s: &mut Server, user: &str, name: &str) -> Value {
    let v: Vec<Value> = s.q(redis::cmd("EDGE.USER").arg(user));
    let i = v
        .iter()
        .position(|f| matches!(f, Value::SimpleString(n) if n == name))
        .unwrap_or_else(|| panic!("EDGE.USER has no {name}"));
    v[i + 1].clone()
}

#[test]
fn a_flood_of_distinct_items_keeps_the_model_within_its_settings() {
    let started = Instant::now();
    let mut s = Server::start(bounded());
    let (users, per_user) = (20_000u64, 10u64);
    let mut peak = 0;
    let mut item = 0u64;
    for chunk in 0..(users / 500) {
        let mut pipe = redis::pipe();
        for u in chunk * 500..(chunk + 1) * 500 {
            for t in 0..per_user {
                item += 1;
                pipe.cmd("EDGE.RECORD")
                    .arg(format!("u{u}"))
                    .arg(format!("item{item}"))
                    .arg("TS")
                    .arg(1_700_000_000_000 + (item as i64) * 10 + t as i64)
                    .ignore();
            }
        }
        let () = pipe.query(s.conn()).expect("pipelined EDGE.RECORD");
        if chunk % 8 == 0 {
            assert!(s.edge_stat("edge_items") <= ITEMS_MAX);
            peak = peak.max(s.edge_stat("edge_model_memory_bytes"));
        }
    }
    assert_eq!(item, 200_000, "distinct items sent");
    assert_eq!(s.edge_stat("edge_records_total"), 200_000);
    assert_eq!(s.edge_stat("edge_users"), users);
    let items = s.edge_stat("edge_items");
    let memory = s.edge_stat("edge_model_memory_bytes");
    peak = peak.max(memory);
    eprintln!(
        "items {items}, transitions {}, model memory {memory} B (peak {peak} B, bound {} B)",
        s.edge_stat("edge_transitions"),
        model_bound()
    );
    assert!(items <= ITEMS_MAX, "edge_items {items}");
    assert!(
        peak <= model_bound(),
        "model memory {peak} > {}",
        model_bound()
    );
    // Each row holds at most successors-max entries.
    assert!(s.edge_stat("edge_transitions") <= ITEMS_MAX * SUCCESSORS_MAX);

    // Per user: at most history-len views and seen-max seen items, whatever was sent.
    let mut big = redis::pipe();
    for t in 0..200 {
        big.cmd("EDGE.RECORD")
            .arg("heavy")
            .arg(format!("h{t}"))
            .arg("TS")
            .arg(1_800_000_000_000i64 + t)
            .ignore();
    }
    let () = big.query(s.conn()).unwrap();
    let Value::Array(history) = user_field(&mut s, "heavy", "history") else {
        panic!("history is an array");
    };
    assert_eq!(history.len() as u64, HISTORY_LEN);
    assert_eq!(
        user_field(&mut s, "heavy", "seen_items"),
        Value::Int(SEEN_MAX as i64)
    );
    let usage: u64 = s.q(redis::cmd("MEMORY").arg("USAGE").arg("heavy"));
    assert!(usage < 4096, "MEMORY USAGE heavy = {usage}");

    // Healthy: answers, predicts, and its log has no warning from the module.
    let pong: String = s.q(&mut redis::cmd("PING"));
    assert_eq!(pong, "PONG");
    let top: Vec<String> = s.q(redis::cmd("EDGE.PREDICT").arg("u0").arg("K").arg(5));
    assert!(top.len() <= 5);
    eprintln!("took {:?}", started.elapsed());
}

#[test]
fn user_keys_expire_like_any_key() {
    let mut s = Server::start(ServerOpts::new());
    for u in 0..50 {
        record(&mut s, &format!("t{u}"), "C1", 1);
        let _: i64 = s.q(redis::cmd("PEXPIRE").arg(format!("t{u}")).arg(100));
    }
    record(&mut s, "keeper", "C1", 1);
    assert_eq!(s.edge_stat("edge_users"), 51);
    let ttl: i64 = s.q(redis::cmd("PTTL").arg("t0"));
    assert!(ttl > 0 && ttl <= 100);
    // Active expiry removes them without any access; the module's count follows.
    s.wait_for("expired users to go", |s| s.edge_stat("edge_users") == 1);
    let n: i64 = s.q(&mut redis::cmd("DBSIZE"));
    assert_eq!(n, 1);
    let gone: Value = s.q(redis::cmd("EDGE.USER").arg("t0"));
    assert_eq!(gone, Value::Nil);
}

#[test]
fn allkeys_lru_evicts_user_keys_under_a_flood() {
    let mut s = Server::start(
        ServerOpts::new()
            .module_arg("history-len", "64")
            .module_arg("items-max", "1000")
            .config("maxmemory", "64mb")
            .config("maxmemory-policy", "allkeys-lru"),
    );
    // Users made heavy by long item names of their own: a history shares a name with the
    // catalog while the item is tracked, and keeps it alone once `items-max` (a small model)
    // evicts the item. About 64 KiB each, so some 1000 users fill 64 MiB.
    let long = "x".repeat(1000);
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut written, mut oom) = (0u64, 0u64);
    // Until evictions start, then 100 users more.
    let mut until = u64::MAX;
    while written < until {
        if until == u64::MAX && s.info("stats")["evicted_keys"] != "0" {
            until = written + 100;
        }
        assert!(
            Instant::now() < deadline,
            "no eviction after {written} users"
        );
        assert!(written < 4000, "no eviction after {written} users");
        let long = &long;
        let views = (written..written + 25).flat_map(|u| {
            (0..64).map(move |t| (format!("lru{u}"), format!("{u}-{t:02}-{long}"), t))
        });
        oom += record_all(&mut s, views);
        written += 25;
    }
    let evicted: u64 = s.info("stats")["evicted_keys"].parse().unwrap();
    // Evicted values may be freed in the background (lazy eviction): let the count settle.
    s.wait_for("the user count to follow the evictions", |s| {
        let keys: u64 = s.q(&mut redis::cmd("DBSIZE"));
        s.edge_stat("edge_users") == keys
    });
    let users = s.edge_stat("edge_users");
    let keys: u64 = s.q(&mut redis::cmd("DBSIZE"));
    eprintln!("{written} users written, {users} left, {evicted} evicted, {oom} OOM replies");
    assert!(evicted > 0);
    assert!(users < written, "edge_users {users} of {written}");
    assert_eq!(users, keys, "the module's count follows evictions");
    let used: u64 = s.info("memory")["used_memory"].parse().unwrap();
    assert!(used < 80 << 20, "used_memory {used}");
    // Still healthy and still learning.
    record(&mut s, "after", "C1", 1);
    let pong: String = s.q(&mut redis::cmd("PING"));
    assert_eq!(pong, "PONG");
}

/// Records every `(user, item, ts offset)` in one pipeline; returns how many replies were
/// OOM errors (any other error fails the test).
fn record_all(s: &mut Server, views: impl Iterator<Item = (String, String, i64)>) -> u64 {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for (user, item, t) in views {
        pipe.cmd("EDGE.RECORD")
            .arg(user)
            .arg(item)
            .arg("TS")
            .arg(1_700_000_000_000 + t);
    }
    let replies: Vec<redis::RedisResult<Value>> = pipe.query(s.conn()).expect("pipeline");
    let mut oom = 0;
    for r in replies {
        if let Err(e) = r {
            let line = edge_tests::error_line(&e);
            assert!(line.starts_with("OOM"), "unexpected error {line}");
            oom += 1;
        }
    }
    oom
}

/// Records `n` distinct items `{prefix}{i}` spread over `users` viewers, 1000 per
/// pipeline; returns the OOM replies.
fn flood(s: &mut Server, prefix: &str, n: u64, users: u64) -> u64 {
    (0..n)
        .step_by(1000)
        .map(|chunk| {
            let views = (chunk..(chunk + 1000).min(n)).map(|i| {
                (
                    format!("{prefix}u{}", i % users),
                    format!("{prefix}{i}"),
                    i as i64,
                )
            });
            record_all(s, views)
        })
        .sum()
}

/// Issue 12, item 9: lowering `items-max` used to evict everything inside `CONFIG SET`
/// (and lowering `successors-max` to trim every row there)
/// (seconds on a large model) and return no memory (the catalog's slots, emptied, stayed
/// allocated and were written to the RDB). Now the setting returns at once, the shrink comes
/// in steps of at most 2,048 evictions between event-loop cycles, and its end compacts the
/// catalog: memory follows the 16 items kept, and a reload brings back no empty slot.
#[test]
fn lowering_items_max_shrinks_in_steps_and_returns_memory() {
    const STEP: u64 = 2048;
    let mut s = Server::start(ServerOpts::new().debug());
    let n = 10 * STEP + 500;
    assert_eq!(flood(&mut s, "i", n, 50), 0);
    assert_eq!(s.edge_stat("edge_items"), n);
    // A lowered row bound is also applied in steps, after the setting returned.
    assert!(s.edge_stat("edge_transitions") > 2 * n);
    let _: () = s.q(redis::cmd("CONFIG")
        .arg("SET")
        .arg("edge.successors-max")
        .arg("2"));
    s.wait_for("rows within the lowered bound", |s| {
        s.edge_stat("edge_transitions") <= 2 * n
    });
    let before = s.edge_stat("edge_model_memory_bytes");
    let steps_before = s.edge_stat("edge_maintenance_steps_total");
    let _: () = s.q(redis::cmd("CONFIG")
        .arg("SET")
        .arg("edge.items-max")
        .arg("16"));
    s.wait_for("the shrink to end", |s| {
        s.edge_stat("edge_items") == 16 && s.edge_stat("edge_compactions_total") >= 1
    });
    let steps = s.edge_stat("edge_maintenance_steps_total") - steps_before;
    assert_eq!(s.edge_stat("edge_maintenance_evictions_total"), n - 16);
    assert!(
        steps >= (n - 16).div_ceil(STEP),
        "{} evictions in {steps} steps",
        n - 16
    );
    let after = s.edge_stat("edge_model_memory_bytes");
    assert!(after * 10 < before, "model memory {before} -> {after} B");
    // The kept items are what a reload brings back, and nothing more.
    let ok: String = s.q(redis::cmd("DEBUG").arg("RELOAD"));
    assert_eq!(ok, "OK");
    assert_eq!(s.edge_stat("edge_items"), 16);
    let reloaded = s.edge_stat("edge_model_memory_bytes");
    assert!(
        reloaded * 10 < before,
        "model memory after reload {reloaded} B"
    );
    // Still learning and predicting, from the items kept.
    record(&mut s, "iu1", "fresh", 1_800_000_000_000);
    let p: Vec<String> = s.q(redis::cmd("EDGE.PREDICT").arg("iu1"));
    assert!(!p.is_empty() && p.len() <= 10, "{p:?}");
}

/// Issue 12, item 10: with `maxmemory` below what an unbounded model grows to and
/// `allkeys-lru`, Redis evicted every user key and then refused `EDGE.RECORD` with OOM for
/// good, since the model never shrinks. `model-memory-max` gives the model a bound of its
/// own: past it, the least popular items are evicted in bounded steps until it fits.
#[test]
fn the_model_keeps_its_memory_bound_under_maxmemory() {
    let max = 4u64 << 20;
    let mut s = Server::start(
        ServerOpts::new()
            .module_arg("model-memory-max", &max.to_string())
            .config("maxmemory", "24mb")
            .config("maxmemory-policy", "allkeys-lru"),
    );
    let info = s.info("edge");
    assert_eq!(info["edge_model_memory_max_bytes"], max.to_string());
    // An unbounded model of these items takes some 30 MB.
    let mut oom = 0;
    for round in 0..6 {
        oom += flood(&mut s, &format!("r{round}-"), 10_000, 40);
    }
    s.wait_for("the model to fit its bound", |s| {
        s.edge_stat("edge_model_memory_bytes") <= max
    });
    let bound = s.edge_stat("edge_items_bound");
    let items = s.edge_stat("edge_items");
    assert!(
        items <= bound && bound < 60_000,
        "items {items}, bound {bound}"
    );
    assert!(s.edge_stat("edge_maintenance_evictions_total") > 0);
    eprintln!("{items} items kept (bound {bound}), {oom} OOM replies during the flood");
    // The server accepts writes again, and the viewers are still there.
    assert_eq!(flood(&mut s, "after-", 100, 10), 0);
    let keys: u64 = s.q(&mut redis::cmd("DBSIZE"));
    assert!(keys >= 40, "{keys} user keys left");
    // Lifting the bound lets the catalog grow back.
    let _: () = s.q(redis::cmd("CONFIG")
        .arg("SET")
        .arg("edge.model-memory-max")
        .arg("0"));
    s.wait_for("the allowance to go", |s| {
        s.edge_stat("edge_items_bound") == 1_000_000
    });
}
