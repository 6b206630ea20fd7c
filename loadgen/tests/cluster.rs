//! loadgen against a Redis Cluster: `--redis redis+cluster://…` (or comma-separated URLs)
//! uses the cluster client, so events are routed by viewer and every shard gets its share.

mod common;

use std::time::{Duration, Instant};

use common::loadgen;
use edge_tests::redis;
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

/// Moves hash slots between the masters with CLUSTER SETSLOT and MIGRATE, as
/// `redis-cli --cluster reshard` does, one slot at a time, while a test's client writes.
struct SlotMover {
    conns: Vec<redis::Connection>,
    ids: Vec<String>,
    ports: Vec<u16>,
}

impl SlotMover {
    fn new(cluster: &mut Cluster) -> Self {
        SlotMover {
            conns: cluster.nodes.iter().map(|n| n.connect()).collect(),
            ids: (0..cluster.nodes.len())
                .map(|i| cluster.node_id(i))
                .collect(),
            ports: cluster.nodes.iter().map(|n| n.port()).collect(),
        }
    }

    fn setslot(&mut self, node: usize, slot: u16, state: &str, id: usize) {
        let r: redis::RedisResult<()> = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(state)
            .arg(&self.ids[id])
            .query(&mut self.conns[node]);
        r.unwrap_or_else(|e| panic!("SETSLOT {slot} {state} on node {node}: {e}"));
    }

    /// Opens the move of `slot` from `from` to `to`: from now on the source answers ASK for
    /// keys it does not hold.
    fn open(&mut self, slot: u16, from: usize, to: usize) {
        self.setslot(to, slot, "IMPORTING", from);
        self.setslot(from, slot, "MIGRATING", to);
    }

    /// Migrates the slot's keys and hands the slot to `to` on every node (MOVED from then on).
    fn finish(&mut self, slot: u16, from: usize, to: usize) {
        loop {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(100)
                .query(&mut self.conns[from])
                .expect("GETKEYSINSLOT");
            if keys.is_empty() {
                break;
            }
            let () = redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(self.ports[to])
                .arg("")
                .arg(0)
                .arg(10_000)
                .arg("KEYS")
                .arg(&keys)
                .query(&mut self.conns[from])
                .unwrap_or_else(|e| panic!("MIGRATE slot {slot}: {e}"));
        }
        for node in [to, from] {
            self.setslot(node, slot, "NODE", to);
        }
        let third = 3 - from - to;
        self.setslot(third, slot, "NODE", to);
    }

    /// The node every master names as the owner of the slot of `key`: the one that serves
    /// it while the others answer MOVED to it; `None` while they disagree.
    fn agreed_owner(&mut self, key: &str) -> Option<usize> {
        let mut owner = None;
        let mut pointed = Vec::new();
        for (i, c) in self.conns.iter_mut().enumerate() {
            match redis::cmd("EXISTS").arg(key).query::<i64>(c) {
                Ok(_) if owner.is_none() => owner = Some(i),
                Ok(_) => return None,
                Err(e) => pointed.push(e.redirect_node()?.0.to_owned()),
            }
        }
        let o = owner?;
        let addr = format!("127.0.0.1:{}", self.ports[o]);
        pointed.iter().all(|p| *p == addr).then_some(o)
    }

    /// Waits (bounded) until every master agrees that `to` owns the slot of `key`, so the
    /// next move starts from a settled cluster, as `redis-cli --cluster reshard` would.
    fn settle(&mut self, key: &str, to: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.agreed_owner(key) != Some(to) {
            assert!(
                Instant::now() < deadline,
                "masters disagree on the owner of {key}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// `EDGE.USER` without its transitions, whose weights depend on the shard's node model (a
/// skip is judged against the item's usual watch time there): records, first and last
/// view, device, seen items and the recent history, all of which only this viewer's
/// views, and their order, decide. `Nil` for a viewer without views.
fn viewer_state(v: redis::Value) -> redis::Value {
    match v {
        redis::Value::Array(mut fields) => {
            fields.truncate(12);
            redis::Value::Array(fields)
        }
        other => other,
    }
}

#[test]
fn replay_while_slots_move_back_and_forth_loses_and_reorders_nothing() {
    let started = Instant::now();
    let Some(mut cluster) = Cluster::start(3, ServerOpts::new()) else {
        return;
    };
    let dir = common::TempDir::new("cluster-moves");
    let log_path = dir.join("views.jsonl");
    let events = 40_000;
    let w = loadgen::simulate::generate(&loadgen::simulate::SimOptions {
        users: 500,
        items: 300,
        events,
        seed: 11,
        ..Default::default()
    })
    .expect("workload");
    loadgen::simulate::write_jsonl(&w.log, &log_path).expect("write the log");

    // The reference: one server that receives the same log.
    let mut single = edge_tests::Server::start(ServerOpts::new());
    let out = loadgen(&[
        "replay",
        "--redis",
        &format!("redis://127.0.0.1:{}", single.port()),
        log_path.to_str().unwrap(),
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("{events} ok, 0 errors")),
        "{out:?}"
    );

    // The busiest viewer's slot is left half moved (MIGRATING) until a quarter of the log
    // is in, so ASK is certain, then handed over (MOVED from then on). Meanwhile and until
    // the replay ends, `redis-cli --cluster reshard` moves node 0's lowest slots to node 1
    // and back (node 1's lowest are then those it just received), 100 slots at a time so
    // that several moves fit in the replay.
    let mut per_user = vec![0usize; w.log.users.len()];
    for e in &w.log.events {
        per_user[e.user as usize] += 1;
    }
    let busiest = (0..per_user.len())
        .max_by_key(|&u| (per_user[u], std::cmp::Reverse(u)))
        .map(|u| w.log.users[u].clone())
        .expect("viewers");
    let slot = cluster.slot(&busiest);
    let from = cluster.owner(&busiest);
    let to = (from + 1) % 3;
    let mut mover = SlotMover::new(&mut cluster);
    mover.open(slot, from, to);

    let url = format!("redis+cluster://{}", cluster.addrs().join(","));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["replay", "--redis", &url, "--pipeline", "64"])
        .arg(&log_path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run loadgen");
    let deadline = Instant::now() + Duration::from_secs(90);
    while cluster.edge_stats("edge_plays_total").iter().sum::<u64>() < events as u64 / 4 {
        assert!(Instant::now() < deadline, "the replay does not progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    mover.finish(slot, from, to);
    mover.settle(&busiest, to);
    let ids = [cluster.node_id(0), cluster.node_id(1)];
    let addr = cluster.addrs()[0].clone();
    let mut reshards = 0;
    while child.try_wait().expect("loadgen status").is_none() {
        assert!(
            Instant::now() < deadline,
            "the replay did not finish in time"
        );
        let (src, dst) = (&ids[reshards % 2], &ids[(reshards + 1) % 2]);
        cluster.cli([
            "--cluster",
            "reshard",
            &addr,
            "--cluster-from",
            src,
            "--cluster-to",
            dst,
            "--cluster-slots",
            "100",
            "--cluster-pipeline",
            "20",
            "--cluster-yes",
        ]);
        cluster.wait_ok();
        reshards += 1;
    }
    assert!(
        reshards >= 2,
        "only {reshards} reshard ran during the replay: slots did not move back"
    );
    let out = child.wait_with_output().expect("loadgen output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("{events} ok, 0 errors")),
        "{stdout}"
    );
    // The moves did reach the client: it followed both kinds of redirect.
    let resent = stdout
        .lines()
        .find(|l| l.starts_with("cluster: re-sent"))
        .unwrap_or_else(|| panic!("no command was re-sent:\n{stdout}"));
    assert!(
        resent.contains("ASK") && resent.contains("MOVED"),
        "{resent}"
    );
    cluster.wait_ok();

    // Nothing lost or applied twice, and every viewer as on the single server.
    let plays = cluster.edge_stats("edge_plays_total");
    assert_eq!(plays.iter().sum::<u64>(), events as u64, "{plays:?}");
    let users: u64 = cluster.edge_stats("edge_users").iter().sum();
    assert_eq!(users, single.edge_stat("edge_users"));
    let mut cc = cluster.client();
    let mut reference = single.connect();
    for user in &w.log.users {
        let on_cluster: redis::Value = redis::cmd("EDGE.USER").arg(user).query(&mut cc).unwrap();
        let alone: redis::Value = redis::cmd("EDGE.USER")
            .arg(user)
            .query(&mut reference)
            .unwrap();
        assert_eq!(
            viewer_state(on_cluster),
            viewer_state(alone),
            "viewer {user} differs from the single server's"
        );
    }
    eprintln!(
        "{reshards} reshards of 100 slots; {resent}; took {:?}",
        started.elapsed()
    );
}
