//! Twins: two servers fed the same random command stream, one of them saved and restarted
//! after every batch. Whatever the stream holds (views with odd times, crafted and mutated
//! blobs, hostile aggregates, settings changes, forgets, expiries, flushes), the restarted
//! one must start, and hold what its twin holds: the same keys, the same `DUMP` of each,
//! the same model state and the same predictions.
//!
//! CI runs a bounded number of sequences; `TWIN_SEQUENCES=500 cargo test -p edge-tests
//! --test twins -- --nocapture` runs a longer search (`TWIN_SEED` picks the first seed),
//! and every run prints how many sequences and commands it checked.
//!
//! Not compared yet (issue 12): PLAY and PREFETCH replies, because the edge cache's learned
//! prefetch share and ghost lists are not persisted (item 5); and settings changed with
//! CONFIG SET, which a restart does not keep (a restart takes its settings from its
//! configuration, and rebasing a decay clock then happens at another moment).

use edge_model::codec::{encode_user, Kind, Writer, USER_VERSION};
use edge_model::federated::{decode_update, encode_update, Clock, Update, UpdateItem, UpdateRow};
use edge_model::{Config, Engine, UserState, View};
use edge_tests::redis::{self, Value};
use edge_tests::{Server, ServerOpts};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// A fixed "now" for every TS, far from the servers' clock, so replies never depend on it.
const T0: i64 = 1_700_000_000_000;

/// INFO edge fields that hold model state (not process counters or cache internals).
const STATE_FIELDS: &[&str] = &[
    "edge_users",
    "edge_items",
    "edge_transitions",
    "edge_peer_transitions",
    "edge_export_round",
];

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
        rows_clock: clock,
        items_clock: clock,
        items,
        rows,
    })
}

/// A random command stream of `n` commands over a small world of users and items.
fn stream(rng: &mut StdRng, n: usize, ts: &mut i64, round: &mut u64) -> Vec<Cmd> {
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
            40..=64 => words(&["EDGE.PLAY", &user, &item, "TS", &t, "SIZE", "1000"]),
            65..=69 => words(&["EDGE.PREFETCH", &user, "K", "2"]),
            70..=72 => words(&["EDGE.FORGET", &user]),
            73..=74 => words(&["EXPIRE", &user, "100000"]),
            75..=78 => {
                let mut c = words(&["EDGE.RESTORE", &user]);
                c.push(crafted_user(rng));
                c
            }
            79..=83 => {
                let mut c = words(&["EDGE.MODEL.IMPORT"]);
                c.push(crafted_update(rng, round));
                c
            }
            84..=86 => words(&["EDGE.MODEL.EXPORT"]),
            87 => words(&["FLUSHALL"]),
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

/// Everything a reload must keep: keys and their DUMPs, model state, predictions.
fn snapshot(s: &mut Server) -> Vec<String> {
    let mut keys: Vec<String> = s.q(redis::cmd("KEYS").arg("*"));
    keys.sort();
    let mut out = vec![format!("keys {keys:?}")];
    for k in &keys {
        let dump: Vec<u8> = s.q(redis::cmd("DUMP").arg(k));
        let top: Vec<String> = s.q(redis::cmd("EDGE.PREDICT").arg(k).arg("K").arg(10));
        out.push(format!("{k}: dump {dump:?} predict {top:?}"));
    }
    let info = s.info("edge");
    for f in STATE_FIELDS {
        out.push(format!("{f} {:?}", info.get(*f)));
    }
    let model: Vec<(String, i64)> = s.q(&mut redis::cmd("EDGE.MODEL.INFO"));
    for (f, v) in model {
        if !f.ends_with("_total") && f != "last_import_ms" {
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
        let opts = ServerOpts::new();
        let (mut twin, mut reloaded) = (Server::start(opts.clone()), Server::start(opts));
        for batch in 0..batches {
            for cmd in stream(&mut rng, per_batch, &mut ts, &mut round) {
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
                if !cmd[0].starts_with(b"EDGE.PLAY") && !cmd[0].starts_with(b"EDGE.PREFETCH") {
                    assert_eq!(
                        show(&a),
                        show(&b),
                        "seed {seq}, batch {batch}: {:?}",
                        String::from_utf8_lossy(&cmd[0])
                    );
                }
                sent += 1;
            }
            let _: () = reloaded.q(&mut redis::cmd("SAVE"));
            reloaded.restart();
            let (after, expected) = (snapshot(&mut reloaded), snapshot(&mut twin));
            let differ: Vec<String> = after
                .iter()
                .zip(&expected)
                .filter(|(a, b)| a != b)
                .map(|(a, b)| format!("reloaded {a}\n    twin {b}"))
                .collect();
            assert!(
                differ.is_empty() && after.len() == expected.len(),
                "seed {seq}: after batch {batch} and a restart:\n{}",
                differ.join("\n")
            );
        }
    }
    sent
}

#[test]
fn a_restarted_server_holds_what_its_twin_holds() {
    let sequences = std::env::var("TWIN_SEQUENCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let seed = std::env::var("TWIN_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let sent = run(seed, sequences, 4, 150);
    eprintln!("twins: {sequences} sequences from seed {seed}, {sent} commands, every batch restarted and compared");
}
