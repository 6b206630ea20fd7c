//! Twins: two servers fed the same random command stream, one of them made to reload after
//! every batch. Whatever the stream holds (views and plays with odd times, crafted and
//! mutated blobs, hostile aggregates, settings changes, forgets, expiries, flushes), the
//! reloaded one must start, hold what its twin holds (the same keys, the same `DUMP` of
//! each, the same model and cache state, the same predictions) and give the same reply to
//! every later command, PLAY and PREFETCH included.
//!
//! Each sequence reloads one way, by its number: an RDB save and restart alternating with a
//! full sync to a new replica that is then promoted; an AOF rewrite without and with an RDB
//! preamble, then a restart; or a restart that replays the whole AOF as it was written.
//! Settings changed with `CONFIG SET` also reach the reloaded server's next start (as an
//! operator keeps the config file in step), except in the replayed-AOF sequences: an AOF
//! holds commands, not settings, so a replay from the first command runs them all under
//! the last settings, as Redis does for its own settings.
//!
//! CI runs a bounded number of sequences; `TWIN_SEQUENCES=500 cargo test -p edge-tests
//! --test twins -- --nocapture` runs a longer search (`TWIN_SEED` picks the first seed),
//! and every run prints how many sequences and commands it checked.

use edge_model::codec::{encode_user, USER_VERSION};
use edge_model::federation::{decode_update, encode_update, Clock, Update, UpdateItem, UpdateRow};
use edge_model::wire::{Kind, Writer};
use edge_model::{Config, Engine, UserState, View};
use edge_tests::redis::{self, Value};
use edge_tests::{
    keys_snapshot, node_blob, wait_background_done, Server, ServerOpts, PERSISTED_FIELDS,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// A fixed "now" for every TS, far from the servers' clock, so replies never depend on it.
const T0: i64 = 1_700_000_000_000;

/// Settings the stream changes, with the values it picks from: bounds lowered and raised,
/// clocks rebased, the cache resized and re-filed.
const SETTINGS: &[(&str, &[&str])] = &[
    ("cache-capacity-bytes", &["5000", "20000", "40kb"]),
    ("cache-policy", &["lru", "predictive"]),
    ("prefetch-budget", &["0", "1", "2.5"]),
    ("prefetch-share-pct", &["0", "30"]),
    ("cache-memory", &["0", "10", "100"]),
    ("half-life-secs", &["0", "3600", "86400"]),
    ("popularity-half-life-secs", &["0", "3600"]),
    ("successors-max", &["2", "8", "64"]),
    ("items-max", &["16", "30", "1000"]),
    ("row-norm", &["0", "1"]),
    ("learn-window", &["1", "5"]),
    ("weight-federated", &["0", "1"]),
    ("dp-clip", &["0", "2", "5"]),
];

/// How a sequence makes its server reload.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reload {
    /// `SAVE`, then a restart from the RDB.
    Restart,
    /// A new replica syncs from it and is promoted in its place.
    FullSync,
    /// `BGREWRITEAOF`, then a restart from the AOF.
    AofRewrite,
    /// A restart that replays the AOF from its first command.
    AofReplay,
}

/// Sequence `seq`'s reloads (taken in turn, one per batch), its server options, and
/// whether its stream may change settings.
fn plan(seq: u64) -> (&'static [Reload], ServerOpts, bool) {
    // A small cache (20 items of the stream's 1000 bytes), so plays evict and prefetches
    // compete; the learned split moves quickly.
    let opts = ServerOpts::new().module_arg("cache-capacity-bytes", "20000");
    // `appendfsync always`: under `everysec` the server may reply before it writes the
    // AOF (while a background fsync runs), and the stop here is a SIGKILL.
    let aof = |preamble: &str| {
        opts.clone()
            .config("appendonly", "yes")
            .config("appendfsync", "always")
            .config("aof-use-rdb-preamble", preamble)
    };
    match seq % 4 {
        0 => (&[Reload::Restart, Reload::FullSync], opts, true),
        1 => (&[Reload::AofRewrite], aof("no"), true),
        2 => (&[Reload::AofRewrite], aof("yes"), true),
        _ => (&[Reload::AofReplay], aof("no"), false),
    }
}

/// Makes `s` reload as `how` says; returns the server that now stands in its place.
fn reload(s: Server, how: Reload) -> Server {
    let mut s = s;
    match how {
        Reload::Restart => {
            let _: () = s.q(&mut redis::cmd("SAVE"));
            s.restart();
        }
        Reload::FullSync => {
            let mut r = Server::replica_of(&s);
            let _: () = r.q(redis::cmd("REPLICAOF").arg("NO").arg("ONE"));
            return r;
        }
        Reload::AofRewrite => {
            let _: String = s.q(&mut redis::cmd("BGREWRITEAOF"));
            wait_background_done(&mut s);
            s.restart();
        }
        Reload::AofReplay => s.restart(),
    }
    s
}

/// One command, as sent to both twins.
type Cmd = Vec<Vec<u8>>;

fn words(ws: &[&str]) -> Cmd {
    ws.iter().map(|w| w.as_bytes().to_vec()).collect()
}

/// A user blob from a real user that watched a few items, sometimes with counts, weights
/// or times past any range, sometimes with a byte flipped (the CRC fixed up or not).
fn crafted_user(rng: &mut StdRng) -> Vec<u8> {
    let mut e = Engine::new(Config::default()).expect("defaults");
    let mut u = UserState::default();
    for i in 0..rng.random_range(0..8) {
        let item = format!("C{}", rng.random_range(0..40));
        e.record(
            &mut u,
            &View {
                item: &item,
                ts_ms: T0 + i,
                duration_s: None,
                device: Some("TV"),
            },
        );
    }
    let mut blob = encode_user(&u);
    match rng.random_range(0..4) {
        0 => blob,
        1 => {
            // The record count (the first payload field) at or past the limit.
            let payload = blob[11..blob.len() - 4].to_vec();
            let first = payload.iter().position(|b| b & 0x80 == 0).unwrap() + 1;
            let mut w = Writer::frame(Kind::User, USER_VERSION);
            w.varint([1 << 53, u64::MAX][rng.random_range(0..2)]);
            payload[first..].iter().for_each(|&b| w.u8(b));
            w.finish()
        }
        m => {
            let i = rng.random_range(11..blob.len() - 4);
            blob[i] ^= 1 << rng.random_range(0..8);
            if m == 2 {
                let n = blob.len();
                let crc = crc32fast::hash(&blob[..n - 4]);
                blob[n - 4..].copy_from_slice(&crc.to_le_bytes());
            }
            blob
        }
    }
}

/// An aggregate with random rounds, clocks (some far ahead or behind), counts and weights.
fn crafted_update(rng: &mut StdRng, round: &mut u64) -> Vec<u8> {
    *round += rng.random_range(0..3);
    let far = [0i64, 3_600_000, 200 * 3_600_000, -200 * 3_600_000, 1 << 52][rng.random_range(0..5)];
    let half_life = [0u64, 3_600_000, 1, 1 << 40][rng.random_range(0..4)];
    let clock = Clock {
        landmark_ms: T0 + far,
        half_life_ms: half_life,
    };
    let weight = |rng: &mut StdRng| [1.0f32, 0.5, 3e38, 1e-30][rng.random_range(0..4)];
    let items = (0..rng.random_range(0..6))
        .map(|i| UpdateItem {
            name: format!("C{}", i * 7 % 40),
            views: [1u64, 100, 1 << 60][rng.random_range(0..3)],
            popularity: f64::from(weight(rng)),
        })
        .collect();
    let rows = (0..rng.random_range(0..4))
        .map(|i| UpdateRow {
            from: format!("C{}", i * 3 % 40),
            total: weight(rng),
            entries: vec![(format!("C{}", (i * 3 + 1) % 40), weight(rng))],
        })
        .collect();
    encode_update(&Update {
        node: "fed".into(),
        round: *round,
        since: None,
        settings: None,
        rows_clock: clock,
        items_clock: clock,
        items,
        rows,
    })
}

/// A random command stream of `n` commands over a small world of users and items;
/// `settings` allows `CONFIG SET`.
fn stream(rng: &mut StdRng, n: usize, ts: &mut i64, round: &mut u64, settings: bool) -> Vec<Cmd> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let user = format!("U{}", rng.random_range(0..12));
        let item = format!("C{}", rng.random_range(0..40));
        *ts += rng.random_range(0..120_000);
        let t = match rng.random_range(0..40) {
            0 => 1 << 53,
            1 => 0,
            _ => *ts,
        }
        .to_string();
        let cmd = match rng.random_range(0..100) {
            0..=39 => words(&["EDGE.RECORD", &user, &item, "TS", &t, "DURATION", "1200"]),
            40..=52 => words(&["EDGE.PLAY", &user, &item, "TS", &t, "SIZE", "1000"]),
            // DELTA replies carry the drops logged since the last play: a reload must keep them.
            53..=64 => words(&["EDGE.PLAY", &user, &item, "TS", &t, "SIZE", "1000", "DELTA"]),
            65..=69 => words(&["EDGE.PREFETCH", &user, "K", "2"]),
            70..=72 => words(&["EDGE.FORGET", &user]),
            73..=74 => words(&["EXPIRE", &user, "100000"]),
            75..=78 => {
                let mut c = words(&["EDGE.RESTORE", &user]);
                c.push(crafted_user(rng));
                c
            }
            79..=83 => {
                // With the stream's time as the import's present: both twins merge at the
                // same moment (replicas and the AOF get it as TS when a client gives none).
                let mut c = words(&["EDGE.MODEL.IMPORT"]);
                c.push(crafted_update(rng, round));
                c.extend(words(&["TS", &ts.to_string()]));
                c
            }
            84..=86 => words(&["EDGE.MODEL.EXPORT"]),
            87 => words(&["FLUSHALL"]),
            88..=90 if settings => {
                let (name, values) = SETTINGS[rng.random_range(0..SETTINGS.len())];
                let value = values[rng.random_range(0..values.len())];
                words(&["CONFIG", "SET", &format!("edge.{name}"), value])
            }
            _ => words(&["EDGE.PREDICT", &user, "K", "5"]),
        };
        out.push(cmd);
    }
    out
}

fn send(s: &mut Server, cmd: &Cmd) -> redis::RedisResult<Value> {
    let mut c = redis::cmd(std::str::from_utf8(&cmd[0]).expect("command names are text"));
    for a in &cmd[1..] {
        c.arg(a.as_slice());
    }
    c.query(s.conn())
}

/// Everything a reload must keep: keys and their DUMPs, model state, predictions. A
/// replayed AOF holds writes only, so `replayed` leaves out the count of predictions (reads).
fn snapshot(s: &mut Server, replayed: bool) -> Vec<String> {
    s.wait_lazy_frees();
    let mut out = keys_snapshot(s);
    let info = s.info("edge");
    for f in PERSISTED_FIELDS {
        if !(replayed && *f == "edge_predictions_total") {
            out.push(format!("{f} {:?}", info.get(*f)));
        }
    }
    let model: Vec<(String, i64)> = s.q(&mut redis::cmd("EDGE.MODEL.INFO"));
    for (f, v) in model {
        if !f.ends_with("_total") {
            out.push(format!("{f} {v}"));
        }
    }
    let popular: Vec<String> = s.q(redis::cmd("EDGE.PREDICT").arg("nobody").arg("K").arg(10));
    out.push(format!("popular {popular:?}"));
    out
}

/// Runs `sequences` sequences of `batches` batches from `seed` on; returns the commands sent.
fn run(seed: u64, sequences: u64, batches: usize, per_batch: usize) -> usize {
    let mut sent = 0;
    for seq in seed..seed + sequences {
        let mut rng = StdRng::seed_from_u64(seq);
        let (mut ts, mut round) = (T0, 0u64);
        let (reloads, opts, settings) = plan(seq);
        let node_blobs = seq % 4 == 1;
        let (mut twin, mut reloaded) = (Server::start(opts.clone()), Server::start(opts));
        for batch in 0..batches {
            for cmd in stream(&mut rng, per_batch, &mut ts, &mut round, settings) {
                let (a, b) = (send(&mut twin, &cmd), send(&mut reloaded, &cmd));
                let show = |r: &redis::RedisResult<Value>| match r {
                    // An export names its node (the server's run id): compare the rest.
                    Ok(Value::BulkString(b)) if cmd[0] == b"EDGE.MODEL.EXPORT" => {
                        let mut u = decode_update(b).expect("an export decodes");
                        u.node.clear();
                        format!("{u:?}")
                    }
                    Ok(v) => format!("{v:?}"),
                    Err(e) => format!("error {e}"),
                };
                assert_eq!(
                    show(&a),
                    show(&b),
                    "seed {seq}, batch {batch}: {:?}",
                    cmd.iter()
                        .take(4)
                        .map(|w| String::from_utf8_lossy(w))
                        .collect::<Vec<_>>()
                );
                if cmd[0] == b"CONFIG" && a.is_ok() {
                    let name = String::from_utf8_lossy(&cmd[2]);
                    let value = String::from_utf8_lossy(&cmd[3]);
                    reloaded.set_module_arg(name.trim_start_matches("edge."), &value);
                }
                sent += 1;
            }
            let how = reloads[batch % reloads.len()];
            reloaded = reload(reloaded, how);
            let replayed = how == Reload::AofReplay;
            let mut after = snapshot(&mut reloaded, replayed);
            let mut expected = snapshot(&mut twin, replayed);
            if node_blobs {
                // The whole node model, byte for byte, as the next rewrite would keep it.
                let (a, b) = (node_blob(&mut reloaded), node_blob(&mut twin));
                if a != b {
                    let at = a.iter().zip(&b).position(|(x, y)| x != y);
                    after.push(format!(
                        "node blob of {} bytes, first difference at {at:?}",
                        a.len()
                    ));
                    expected.push(format!("node blob of {} bytes", b.len()));
                }
            }
            let differ: Vec<String> = after
                .iter()
                .zip(&expected)
                .filter(|(a, b)| a != b)
                .map(|(a, b)| format!("reloaded {a}\n    twin {b}"))
                .collect();
            assert!(
                differ.is_empty() && after.len() == expected.len(),
                "seed {seq}: after batch {batch} and a reload ({how:?}):\n{}",
                differ.join("\n")
            );
        }
    }
    sent
}

#[test]
fn a_reloaded_server_answers_as_its_twin() {
    let sequences = std::env::var("TWIN_SEQUENCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let seed = std::env::var("TWIN_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let sent = run(seed, sequences, 4, 150);
    eprintln!("twins: {sequences} sequences from seed {seed}, {sent} commands, every batch reloaded and compared");
}
