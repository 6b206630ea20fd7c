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
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for u in written..written + 25 {
            for t in 0..64 {
                pipe.cmd("EDGE.RECORD")
                    .arg(format!("lru{u}"))
                    .arg(format!("{u}-{t:02}-{long}"))
                    .arg("TS")
                    .arg(1_700_000_000_000 + t as i64);
            }
        }
        let replies: Vec<redis::RedisResult<Value>> = pipe.query(s.conn()).expect("pipeline");
        for r in replies {
            if let Err(e) = r {
                assert!(
                    edge_tests::error_line(&e).starts_with("OOM"),
                    "unexpected error {e}"
                );
                oom += 1;
            }
        }
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
