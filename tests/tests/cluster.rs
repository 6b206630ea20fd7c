//! Redis Cluster: three masters loading the module, formed by `redis-cli --cluster create`.
//!
//! The user id is the key, so EDGE.* commands route by their user argument like any keyed
//! command: a cluster client follows MOVED, a raw connection to the wrong node gets it, and
//! every shard serves (and learns from) the users whose slots it owns. Resharding moves user
//! keys with MIGRATE (the module type's RDB serialization) while writes go on, and nothing a
//! user recorded is lost or changed by the move.
//!
//! Each shard keeps its own node model, so predictions are checked per shard, and a moved
//! user is compared by its own state (EDGE.USER, DUMP), not by predictions, which depend on
//! the destination's model.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_tests::redis::{self, Commands, Value};
use edge_tests::{error_line, Cluster, ServerOpts};

const SERIES: [&str; 3] = ["E1", "E2", "E3"];

fn record(c: &mut redis::cluster::ClusterConnection, user: &str, item: &str, ts: i64) {
    let _: () = redis::cmd("EDGE.RECORD")
        .arg(user)
        .arg(item)
        .arg("TS")
        .arg(ts)
        .query(c)
        .unwrap_or_else(|e| panic!("EDGE.RECORD {user} {item}: {e}"));
}

/// A user name on node `node`, found by trying `<prefix><n>` names.
fn user_on(c: &mut Cluster, node: usize, prefix: &str) -> String {
    (0..10_000)
        .map(|n| format!("{prefix}{n}"))
        .find(|u| c.owner(u) == node)
        .expect("some name hashes to every node")
}

#[test]
fn edge_commands_shard_by_user_and_survive_resharding() {
    let started = Instant::now();
    let Some(mut cluster) = Cluster::start(3, ServerOpts::new()) else {
        return;
    };
    let mut cc = cluster.client();

    // Series fans (E1 → E2 → E3) and catalogue viewers, through the cluster client; the
    // viewers go through a cluster pipeline, which splits by node.
    let fans: Vec<String> = (0..90).map(|i| format!("fan{i}")).collect();
    for (i, u) in fans.iter().enumerate() {
        for (t, ep) in SERIES.iter().enumerate() {
            record(&mut cc, u, ep, 1_000 * i as i64 + t as i64);
        }
    }
    let viewers: Vec<String> = (0..300).map(|i| format!("viewer{i}")).collect();
    let mut pipe = redis::cluster::cluster_pipe();
    for (i, u) in viewers.iter().enumerate() {
        for t in 0..5 {
            pipe.cmd("EDGE.PLAY")
                .arg(u)
                .arg(format!("C{}", (i * 7 + t * 3) % 20))
                .arg("TS")
                .arg(200_000 + 10 * i as i64 + t as i64)
                .arg("SIZE")
                .arg(1000)
                .ignore();
        }
    }
    let () = pipe.query(&mut cc).expect("pipelined EDGE.PLAY");

    // Every key lives on the node that owns its slot, and only there.
    let mut per_node = [0usize; 3];
    for u in fans.iter().chain(&viewers) {
        let o = cluster.owner(u);
        let exists: i64 = cluster.nodes[o].q(redis::cmd("EXISTS").arg(u));
        assert_eq!(exists, 1, "{u} is not on its owner, node {o}");
        per_node[o] += 1;
    }
    assert!(
        per_node.iter().all(|&n| n > 0),
        "users per node: {per_node:?}"
    );
    assert_eq!(cluster.edge_stats("edge_users"), per_node.map(|n| n as u64));
    for (i, r) in cluster.edge_stats("edge_records_total").iter().enumerate() {
        assert!(*r > 0, "node {i} learned nothing");
    }
    for (i, p) in cluster.edge_stats("edge_plays_total").iter().enumerate() {
        assert!(*p > 0, "node {i} served no play");
    }

    // A raw connection to a node that does not own the user gets MOVED to the owner, for
    // writes and reads alike: Redis routes by the declared key before the module runs.
    let owner = cluster.owner("fan0");
    let wrong = (owner + 1) % 3;
    let slot = cluster.slot("fan0");
    let moved = format!("MOVED {slot} 127.0.0.1:{}", cluster.nodes[owner].port());
    for cmd in [
        redis::cmd("EDGE.RECORD").arg("fan0").arg("E9").clone(),
        redis::cmd("EDGE.PREDICT").arg("fan0").clone(),
        redis::cmd("EDGE.PLAY").arg("fan0").arg("E9").clone(),
        redis::cmd("EDGE.USER").arg("fan0").clone(),
        redis::cmd("EDGE.FORGET").arg("fan0").clone(),
    ] {
        assert_eq!(cluster.nodes[wrong].err(&cmd), moved);
    }

    // Each shard learned the series from its own fans: a new viewer of E1 on any shard
    // gets E2 first.
    for node in 0..3 {
        let u = user_on(&mut cluster, node, &format!("new{node}-"));
        record(&mut cc, &u, "E1", 900_000);
        let top: Vec<String> = redis::cmd("EDGE.PREDICT")
            .arg(&u)
            .arg("K")
            .arg(3)
            .query(&mut cc)
            .expect("EDGE.PREDICT");
        assert_eq!(
            top.first().map(String::as_str),
            Some("E2"),
            "node {node}: {top:?}"
        );
        assert_eq!(cluster.owner(&u), node);
    }

    // Resharding. Users whose slots are among node 0's lowest (which `--cluster reshard`
    // moves first): some quiet ones to compare, some busy ones written during the move.
    let first = cluster.first_slot(0);
    let in_moved_range = |c: &mut Cluster, u: &str| {
        let s = c.slot(u);
        s >= first && s < first + 300
    };
    let mut quiet = Vec::new();
    let mut busy = Vec::new();
    for n in 0..20_000 {
        let u = format!("mover{n}");
        if in_moved_range(&mut cluster, &u) {
            if quiet.len() < 8 {
                quiet.push(u);
            } else if busy.len() < 4 {
                busy.push(u);
            } else {
                break;
            }
        }
    }
    assert_eq!(
        (quiet.len(), busy.len()),
        (8, 4),
        "names in the moved range"
    );
    let mut before: HashMap<String, (Value, Vec<u8>)> = HashMap::new();
    for (i, u) in quiet.iter().enumerate() {
        for (t, item) in ["E1", "C3", "E2", "C7", "C3"].iter().enumerate() {
            record(&mut cc, u, item, 1_000_000 + 100 * i as i64 + t as i64);
        }
        let view: Value = redis::cmd("EDGE.USER").arg(u).query(&mut cc).unwrap();
        let dump: Vec<u8> = redis::cmd("DUMP").arg(u).query(&mut cc).unwrap();
        before.insert(u.clone(), (view, dump));
    }
    for u in quiet.iter().chain(&busy) {
        assert_eq!(cluster.owner(u), 0);
    }
    // The busy users are created by the writer below.
    let total_users = cluster.edge_stats("edge_users").iter().sum::<u64>() + busy.len() as u64;

    // Writes go on, through their own cluster connection, for the whole move.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        let busy = busy.clone();
        let mut c = cluster.client();
        std::thread::spawn(move || {
            let mut acked: HashMap<String, u64> = HashMap::new();
            let mut errors = Vec::new();
            let mut ts = 2_000_000i64;
            let deadline = Instant::now() + Duration::from_secs(20);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                for u in &busy {
                    ts += 1;
                    let r: redis::RedisResult<()> = redis::cmd("EDGE.RECORD")
                        .arg(u)
                        .arg(format!("C{}", ts % 20))
                        .arg("TS")
                        .arg(ts)
                        .query(&mut c);
                    match r {
                        Ok(()) => *acked.entry(u.clone()).or_default() += 1,
                        Err(e) => errors.push(format!("{u}: {}", error_line(&e))),
                    }
                }
            }
            (acked, errors)
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let (from, to) = (cluster.node_id(0), cluster.node_id(1));
    let addr = cluster.addrs()[0].clone();
    cluster.cli([
        "--cluster",
        "reshard",
        &addr,
        "--cluster-from",
        &from,
        "--cluster-to",
        &to,
        "--cluster-slots",
        "500",
        "--cluster-yes",
    ]);
    cluster.wait_ok();
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let (acked, errors) = writer.join().expect("writer thread");
    assert!(
        errors.is_empty(),
        "writes failed during the move: {errors:?}"
    );

    // The moved users live on node 1 now, byte for byte what they were.
    for u in &quiet {
        assert_eq!(cluster.owner(u), 1, "{u} did not move");
        let view: Value = redis::cmd("EDGE.USER").arg(u).query(&mut cc).unwrap();
        let dump: Vec<u8> = redis::cmd("DUMP").arg(u).query(&mut cc).unwrap();
        let (v0, d0) = &before[u];
        assert_eq!(&view, v0, "EDGE.USER {u} changed in the move");
        assert_eq!(&dump, d0, "DUMP {u} changed in the move");
        let direct: Value = cluster.nodes[1].q(redis::cmd("EDGE.USER").arg(u));
        assert_eq!(&direct, v0);
    }
    // The busy users lost no write: every acknowledged EDGE.RECORD is in their count.
    for u in &busy {
        assert_eq!(cluster.owner(u), 1, "{u} did not move");
        let n = acked.get(u).copied().unwrap_or(0);
        assert!(n > 0, "no write for {u} was acknowledged");
        let view: Vec<Value> = redis::cmd("EDGE.USER").arg(u).query(&mut cc).unwrap();
        assert_eq!(
            view[1],
            Value::Int(n as i64),
            "{u}: records vs acknowledged writes"
        );
    }
    // User counts followed the keys: none lost or counted twice.
    let users = cluster.edge_stats("edge_users");
    assert_eq!(users.iter().sum::<u64>(), total_users, "{users:?}");
    let keys: Vec<u64> = cluster
        .nodes
        .iter_mut()
        .map(|s| s.q(&mut redis::cmd("DBSIZE")))
        .collect();
    assert_eq!(users, keys);

    // The cluster client still reads the moved users' keys like any other.
    let exists: bool = cc.exists(&quiet[0]).unwrap();
    assert!(exists);
    eprintln!("took {:?}", started.elapsed());
}
