//! A fixed federated import, for measuring what `EDGE.MODEL.IMPORT` of a large aggregate
//! costs and where: an edge that learned views of its own imports a generated aggregate of
//! `rows` rows of `entries` neighbours each over `items` items (the issue's 45 MB blob is
//! about 50,000 rows of 128), then a second round of it (the steady state: a peers' table
//! is already there).
//!
//! ```text
//! cargo build --release -p edge-model --example import_cost
//! target/release/examples/import_cost [rows] [entries] [items] [--out blob.bin]
//! valgrind --tool=callgrind --toggle-collect='*Engine::import_packed*' \
//!     target/release/examples/import_cost 5000 128 20000
//! ```
//!
//! It prints the blob size, the time of decoding and of each import, and a digest of the
//! node the imports leave (its persisted blob), which must match between builds that keep
//! the results. `--out` writes the first round's blob, to send to a server
//! (`redis-cli -x EDGE.MODEL.IMPORT < blob.bin`).

use std::time::Instant;

use edge_model::federation::{decode_packed, encode_update, Clock, Update, UpdateItem, UpdateRow};
use edge_model::{Config, Engine, UserState, View};

#[path = "../benches/support/workload.rs"]
mod workload;

use workload::{next_item, Rng};

/// The aggregate of round `round`: deterministic in its arguments.
fn aggregate(round: u64, rows: usize, entries: usize, items: u64) -> Update {
    let mut rng = Rng(round * 7919 + 1);
    let name = |i: u64| format!("C{i}");
    let day = 86_400_000;
    let clock = Clock {
        landmark_ms: 1_700_000_000_000,
        half_life_ms: 7 * day,
    };
    Update {
        node: "federator".into(),
        round,
        since: None,
        rows_clock: clock,
        items_clock: Clock {
            half_life_ms: 30 * day,
            ..clock
        },
        settings: None,
        items: (0..items)
            .map(|i| UpdateItem {
                name: name(i),
                views: 1 + rng.next() % 1000,
                popularity: (rng.next() % 100_000) as f64 / 100.0,
            })
            .collect(),
        rows: (0..rows as u64)
            .map(|r| {
                let from = r * items / rows as u64;
                let mut seen = std::collections::HashSet::new();
                let mut e = Vec::with_capacity(entries);
                while e.len() < entries.min(items as usize - 1) {
                    let to = (from + 1 + rng.zipf(items - 1)) % items;
                    if seen.insert(to) {
                        e.push((name(to), 1.0 + (rng.next() % 10_000) as f32 / 100.0));
                    }
                }
                UpdateRow {
                    from: name(from),
                    total: e.iter().map(|x| x.1).sum::<f32>() * 1.5,
                    entries: e,
                }
            })
            .collect(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1).cloned());
    let nums: Vec<u64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let arg = |i: usize, default: u64| nums.get(i).copied().unwrap_or(default);
    let (rows, entries, items) = (
        arg(0, 50_000) as usize,
        arg(1, 128) as usize,
        arg(2, 100_000),
    );

    let config = Config {
        learner_thread: false,
        ..Config::default()
    };
    let mut engine = Engine::new(config).expect("valid defaults");
    // Own evidence: 2,000 viewers over the same names, so own and peer items overlap.
    let mut rng = Rng(7);
    let mut viewers = vec![UserState::default(); 2_000];
    let mut last: Vec<Option<u64>> = vec![None; viewers.len()];
    let mut ts = 1_700_000_000_000i64;
    for _ in 0..10 {
        for (u, viewer) in viewers.iter_mut().enumerate() {
            let i = next_item(&mut rng, last[u], items);
            last[u] = Some(i);
            ts += 10;
            let item = format!("C{i}");
            let v = View {
                item: &item,
                ts_ms: ts,
                duration_s: None,
                device: None,
            };
            engine.record(viewer, &v);
        }
    }

    for round in 1..=2 {
        let blob = encode_update(&aggregate(round, rows, entries, items));
        if round == 1 {
            if let Some(path) = &out {
                std::fs::write(path, &blob).expect("blob written");
            }
        }
        let t = Instant::now();
        let u = decode_packed(&blob).expect("a valid blob");
        let decode = t.elapsed();
        let t = Instant::now();
        let imported = engine.import_packed(&u, ts, blob.len());
        let import = t.elapsed();
        assert!(imported.applied);
        println!(
            "round {round}: blob {} bytes, decode {:.1} ms, import {:.1} ms ({} rows, {} items)",
            blob.len(),
            decode.as_secs_f64() * 1e3,
            import.as_secs_f64() * 1e3,
            imported.rows,
            imported.items,
        );
    }
    let node = edge_model::codec::encode_node(&mut engine);
    let digest = node.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    println!("node blob {} bytes, digest {digest:016x}", node.len());
}
