//! loadgen against a Redis Cluster: `--redis redis+cluster://…` (or comma-separated URLs)
//! uses the cluster client, so events are routed by viewer and every shard gets its share.

mod common;

use common::loadgen;
use edge_tests::{Cluster, ServerOpts};

#[test]
fn simulate_replay_and_bench_spread_users_over_every_shard() {
    let Some(mut cluster) = Cluster::start(3, ServerOpts::new()) else {
        return;
    };
    let url = format!("redis+cluster://{}", cluster.addrs().join(","));
    let dir = common::TempDir::new("cluster");
    let log = dir.join("views.jsonl");
    let out = loadgen(&[
        "simulate",
        "--users",
        "150",
        "--items",
        "200",
        "--events",
        "3000",
        "--seed",
        "3",
        "--out",
        log.to_str().unwrap(),
        "--redis",
        &url,
        "--pipeline",
        "256",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("(0 errors"), "{stderr}");
    let users = cluster.edge_stats("edge_users");
    let plays = cluster.edge_stats("edge_plays_total");
    assert!(users.iter().all(|&u| u > 0), "users per shard {users:?}");
    assert!(plays.iter().all(|&p| p > 0), "plays per shard {plays:?}");
    assert_eq!(plays.iter().sum::<u64>(), 3000);
    assert!(users.iter().sum::<u64>() <= 150);

    // Replay of the same log (EDGE.RECORD), given as comma-separated URLs.
    let urls = cluster.urls().join(",");
    let out = loadgen(&[
        "replay",
        "--redis",
        &urls,
        "--command",
        "record",
        log.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("3000 ok, 0 errors"), "{stdout}");
    let records: u64 = cluster.edge_stats("edge_records_total").iter().sum();
    assert_eq!(records, 6000, "plays learn too: 3000 plays + 3000 records");

    // A short bench: the edge mix is routed too (PING, which has no key, is skipped).
    let out = loadgen(&[
        "bench",
        "--redis",
        &url,
        "--clients",
        "2",
        "--pipeline",
        "8",
        "--requests",
        "2000",
        "--users",
        "300",
        "--items",
        "100",
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(!table.contains("ping"), "{table}");
    let users = cluster.edge_stats("edge_users");
    assert!(
        users.iter().all(|&u| u > 50),
        "bench users per shard {users:?}"
    );
}
