//! A replica learns exactly what its master learned, through the command stream and
//! through a full sync.

use edge_tests::redis;
use edge_tests::{play, predict_scored, record, teach_series, Server, ServerOpts};

const USERS: [&str; 6] = ["fan0", "fan3", "clock", "player", "prefetcher", "stranger"];

fn scored_all(s: &mut Server) -> Vec<Vec<(String, f64)>> {
    USERS.iter().map(|u| predict_scored(s, u, 5)).collect()
}

/// Writes of every kind, half of them without TS so the master's clock must be
/// propagated rather than re-read on the replica.
fn write_mix(m: &mut Server) {
    teach_series(m, 8);
    for item in ["S1E1", "Doc", "S1E2"] {
        let _: () = m.q(redis::cmd("EDGE.RECORD")
            .arg("clock")
            .arg(item)
            .arg("DEVICE")
            .arg("web"));
    }
    play(m, "player", "S1E1", 40_000, None);
    let _: (String, Vec<String>) = m.q(redis::cmd("EDGE.PLAY")
        .arg("player")
        .arg("S1E2")
        .arg("SIZE")
        .arg(1000));
    let _: Vec<String> = m.q(redis::cmd("EDGE.PREFETCH")
        .arg("prefetcher")
        .arg("K")
        .arg(2));
    let _: Vec<String> = m.q(redis::cmd("EDGE.PREFETCH").arg("fan0"));
}

fn assert_same_state(m: &mut Server, r: &mut Server) {
    m.wait_replicas(1);
    assert_eq!(
        scored_all(r),
        scored_all(m),
        "replica predicts as the master"
    );
    for u in USERS {
        let on_master: redis::Value = m.q(redis::cmd("EDGE.USER").arg(u));
        let on_replica: redis::Value = r.q(redis::cmd("EDGE.USER").arg(u));
        assert_eq!(on_replica, on_master, "EDGE.USER {u}");
    }
    for f in [
        "edge_users",
        "edge_items",
        "edge_transitions",
        "edge_records_total",
        "edge_cache_items",
        "edge_cache_bytes",
        "edge_prefetches_total",
    ] {
        assert_eq!(r.edge_stat(f), m.edge_stat(f), "{f}");
    }
}

#[test]
fn replica_follows_the_command_stream() {
    let mut m = Server::start(ServerOpts::new());
    let mut r = Server::replica_of(&m);
    write_mix(&mut m);
    assert_same_state(&mut m, &mut r);

    let refused = r.err(redis::cmd("EDGE.RECORD").arg("fan0").arg("S1E3"));
    assert!(refused.starts_with("READONLY"), "{refused}");
    let refused = r.err(redis::cmd("EDGE.PLAY").arg("fan0").arg("S1E3"));
    assert!(refused.starts_with("READONLY"), "{refused}");

    // Erasing on the master erases on the replica.
    let _: i64 = m.q(redis::cmd("EDGE.FORGET").arg("fan3"));
    m.wait_replicas(1);
    assert_eq!(r.q::<i64>(redis::cmd("EXISTS").arg("fan3")), 0);
}

#[test]
fn full_sync_carries_existing_data() {
    let mut m = Server::start(ServerOpts::new());
    write_mix(&mut m);
    record(&mut m, "fan3", "Doc", 50_000);
    let mut r = Server::replica_of(&m);
    assert_same_state(&mut m, &mut r);
    // And the stream continues after the sync.
    play(&mut m, "fan3", "S1E3", 50_001, None);
    assert_same_state(&mut m, &mut r);
    let e = r.err(redis::cmd("EDGE.FORGET").arg("fan3"));
    assert!(e.starts_with("READONLY"), "{}", e);
}

/// An import takes "now" from the server clock when a peer's clock is ahead of this node;
/// the replica receives that moment as `TS` and merges exactly as its master did, however
/// much later the command reaches it.
#[test]
fn an_import_merges_alike_on_the_replica() {
    use edge_model::federation::{encode_update, Clock, Update, UpdateItem, UpdateRow};
    // Raw co-occurrence scores (row-norm 0), so the scale of the merged rows shows.
    let opts = ServerOpts::new()
        .module_arg("half-life-secs", "3600")
        .module_arg("popularity-half-life-secs", "3600")
        .module_arg("row-norm", "0")
        .debug();
    let mut m = Server::start(opts.clone());
    let mut r = Server::replica_of(&m);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for (i, item) in ["S1E1", "S1E2", "Doc", "S1E1", "S1E3"].iter().enumerate() {
        record(&mut m, USERS[i % 2], item, now - 3_600_000 + i as i64);
    }
    let ahead = Clock {
        landmark_ms: now + 200 * 3_600_000,
        half_life_ms: 3_600_000,
    };
    let blob = encode_update(&Update {
        node: "federator".into(),
        round: 1,
        since: None,
        settings: None,
        rows_clock: ahead,
        items_clock: ahead,
        items: ["S1E1", "Doc", "Film"]
            .iter()
            .map(|n| UpdateItem {
                name: n.to_string(),
                views: 10,
                popularity: 3.0,
            })
            .collect(),
        rows: vec![UpdateRow {
            from: "S1E1".into(),
            total: 4.0,
            entries: vec![("Film".into(), 4.0), ("Doc".into(), 1.0)],
        }],
    });
    // The replica is busy for a second while the master imports, so a replica re-reading
    // its own clock would merge at another moment.
    let mut busy = r.connect();
    let sleeper = std::thread::spawn(move || {
        let _: () = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(1)
            .query(&mut busy)
            .unwrap();
    });
    std::thread::sleep(std::time::Duration::from_millis(100));
    let applied: i64 = m.q(redis::cmd("EDGE.MODEL.IMPORT").arg(blob));
    assert_eq!(applied, 1);
    sleeper.join().unwrap();
    m.wait_replicas(1);
    assert_eq!(scored_all(&mut r), scored_all(&mut m));
}
