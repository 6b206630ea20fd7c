//! Writes the seed corpora from real blobs: a trained engine and its users, encoded by the
//! model's own codec, both raw (mode 0, so the frame is fuzzed) and as payloads (mode 1,
//! re-framed by the target), plus typical EDGE.* argument lists.
//!
//! `cargo run --example seeds` (from `fuzz/`), then `cargo fuzz cmin <target>` keeps it small.

use std::fs;
use std::path::Path;

use edge_fuzz::checks::seed_of_blob;
use edge_model::codec::{encode_node, encode_user};
use edge_model::federation::encode_update;
use edge_model::{Config, Engine, UserState, View};

fn write(target: &str, name: &str, data: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&dir).expect("create corpus dir");
    fs::write(dir.join(name), data).expect("write seed");
}

/// Seeds `target` with blob number `i`: raw (mode 0) and as a payload (mode 1).
fn write_blob(target: &str, i: usize, blob: &[u8]) {
    write(target, &format!("raw-{i}"), &[&[0u8][..], blob].concat());
    write(target, &format!("payload-{i}"), &seed_of_blob(blob));
}

fn main() {
    let cfg = Config {
        cache_capacity_bytes: 8,
        default_item_size: 1,
        ..Config::default()
    };
    let mut e = Engine::new(cfg).expect("valid config");
    let mut users = vec![UserState::default(); 4];
    for t in 0..120i64 {
        let u = &mut users[(t % 4) as usize];
        let item = format!("S{}E{}", t % 3, (t / 4) % 5);
        let device = ["TV", "phone", "web"][(t % 3) as usize];
        let v = View {
            item: &item,
            ts_ms: 1_700_000_000_000 + t * 60_000,
            duration_s: Some(if t % 7 == 0 { 3 } else { 1500 }),
            device: Some(device),
        };
        e.play(u, &v, None);
    }
    let mut empty = Engine::new(Config::default()).expect("valid config");
    for (i, blob) in [encode_node(&mut e), encode_node(&mut empty)]
        .iter()
        .enumerate()
    {
        write_blob("codec_node", i, blob);
    }
    let updates = [
        e.export_update("edge-a", None),
        e.export_update("edge-a", Some(0)),
        empty.export_update("edge-b", None),
    ];
    for (i, u) in updates.iter().enumerate() {
        write_blob("codec_update", i, &encode_update(u));
    }
    users.push(UserState::default());
    for (i, u) in users.iter().enumerate() {
        write_blob("codec_user", i, &encode_user(u));
    }
    for (i, line) in [
        "U1 C9 DURATION 1800 TS 1700000000000 DEVICE TV",
        "U1 C9 ts 5 device phone SIZE 1048576 duration 3",
        "U1 K 5 WITHSCORES INCLUDESEEN",
        "U1 K 1000",
        "U1",
        "U1 blob",
        "U1 C9 TS -1",
        "U1 C9 FOO",
    ]
    .iter()
    .enumerate()
    {
        write("request", &format!("seed-{i}"), line.as_bytes());
    }
}
