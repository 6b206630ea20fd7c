//! A large `EDGE.MODEL.IMPORT` is decoded off the event loop (issue 12, item 9): the
//! client waits, other clients are served, and the import takes effect between two
//! commands, where it is also replicated. Every copy must then agree: the master, its
//! replica, its AOF replayed, a rewritten AOF and its RDB reloaded.

use edge_model::federation::{encode_update, Clock, Update, UpdateItem, UpdateRow};
use edge_tests::redis::{self, Value};
use edge_tests::{aof_commands, keys_snapshot, node_blob, record, Server, ServerOpts};

const ITEMS: u64 = 3000;

/// An aggregate of round `round` over items `C0..C2999` (names the edges also watch), of
/// 4,000 rows of 60 entries: about 1.5 MB, past the size that goes off the event loop.
fn big_aggregate(round: u64) -> Vec<u8> {
    let name = |i: u64| format!("C{}", i % ITEMS);
    let blob = encode_update(&Update {
        node: "federator".into(),
        round,
        since: None,
        settings: None,
        rows_clock: Clock::default(),
        items_clock: Clock::default(),
        items: (0..ITEMS)
            .map(|i| UpdateItem {
                name: name(i),
                views: 1 + (i * 7 + round) % 50,
                popularity: ((i * 13 + round) % 100) as f64,
            })
            .collect(),
        rows: (0..4000u64)
            .map(|r| UpdateRow {
                from: name(r),
                total: 500.0,
                entries: (1..=60u64)
                    .map(|k| (name(r + k * k), (60 - k) as f32 + round as f32))
                    .collect(),
            })
            .collect(),
    });
    assert!(blob.len() >= 1 << 20, "{} bytes", blob.len());
    blob
}

fn views(s: &mut Server, from: usize, n: usize) {
    for v in from..from + n {
        let user = format!("u{}", v % 23);
        let item = format!("C{}", (v * 37) % 400);
        record(s, &user, &item, 1_000_000 + v as i64 * 10);
    }
}

/// Imports `blob` on a connection of its own while this one keeps recording views and
/// pinging, so that writes arrive while the blob decodes; returns the import's reply and
/// how many views were sent meanwhile.
fn import_while_writing(
    s: &mut Server,
    blob: Vec<u8>,
    from: usize,
) -> (redis::RedisResult<Value>, usize) {
    let mut other = s.connect();
    let t = std::thread::spawn(move || {
        redis::cmd("EDGE.MODEL.IMPORT")
            .arg(blob)
            .query::<Value>(&mut other)
    });
    let mut n = 0;
    while !t.is_finished() {
        views(s, from + n, 1);
        let pong: String = s.q(&mut redis::cmd("PING"));
        assert_eq!(pong, "PONG");
        n += 1;
    }
    (t.join().expect("the importing client"), n)
}

/// Keys with their DUMPs and predictions, the model's state, and with `blob` the node
/// blob itself (last; taking it rewrites the AOF).
fn snapshot(s: &mut Server, blob: bool) -> Vec<String> {
    let mut out = keys_snapshot(s);
    let model: Vec<(String, i64)> = s.q(&mut redis::cmd("EDGE.MODEL.INFO"));
    out.extend(
        model
            .into_iter()
            .filter(|(f, _)| !f.ends_with("_total"))
            .map(|(f, v)| format!("{f} {v}")),
    );
    if blob {
        let b = node_blob(s);
        out.push(format!(
            "node blob {} bytes, crc {:08x}",
            b.len(),
            crc32fast::hash(&b)
        ));
    }
    out
}

fn assert_same(got: &[String], want: &[String], what: &str) {
    let differ: Vec<String> = got
        .iter()
        .zip(want)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("{what} {a}\n  replica {b}"))
        .collect();
    assert!(
        differ.is_empty() && got.len() == want.len(),
        "{}",
        differ.join("\n")
    );
}

#[test]
fn a_large_import_decodes_off_the_loop_and_every_copy_agrees() {
    let opts = ServerOpts::new()
        .debug()
        .config("appendonly", "yes")
        .config("appendfsync", "always")
        .config("aof-use-rdb-preamble", "no");
    let mut m = Server::start(opts);
    let mut r = Server::replica_of(&m);
    views(&mut m, 0, 300);

    let (reply, _) = import_while_writing(&mut m, big_aggregate(1), 300);
    assert_eq!(reply.expect("the import applies"), Value::Int(1));
    assert_eq!(
        m.edge_stat("edge_import_decodes_total"),
        1,
        "decoded off the loop"
    );
    assert_eq!(m.edge_stat("edge_import_decodes_pending"), 0);
    assert!(m.edge_stat("edge_import_apply_max_us") > 0);
    let info: Vec<(String, i64)> = m.q(&mut redis::cmd("EDGE.MODEL.INFO"));
    let field = |f: &str| info.iter().find(|(n, _)| n == f).map(|p| p.1);
    assert_eq!(field("last_import_round"), Some(1));
    assert!(field("peer_transitions").unwrap_or(0) > 100_000, "{info:?}");

    // The same round again: 0, nothing changes (through the same path).
    let (reply, _) = import_while_writing(&mut m, big_aggregate(1), 10_000);
    assert_eq!(
        reply.expect("an import of a round already held"),
        Value::Int(0)
    );
    assert_eq!(m.edge_stat("edge_import_decodes_total"), 2);

    // A corrupted large blob: refused with the codec's error, nothing applied or sent on.
    let mut bad = big_aggregate(2);
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    let federation = |s: &mut Server| {
        let all: Vec<(String, i64)> = s.q(&mut redis::cmd("EDGE.MODEL.INFO"));
        all.into_iter()
            .filter(|(f, _)| f.starts_with("peer") || f.contains("import"))
            .collect::<Vec<_>>()
    };
    let before = federation(&mut m);
    let (reply, _) = import_while_writing(&mut m, bad, 20_000);
    let e = reply.expect_err("a corrupted blob is refused");
    assert!(e.to_string().contains("invalid update blob"), "{e}");
    assert_eq!(m.edge_stat("edge_import_decodes_total"), 3);
    assert_eq!(federation(&mut m), before, "a refused blob changes nothing");

    // Round 2 lands, with views before, during and after it.
    let (reply, _) = import_while_writing(&mut m, big_aggregate(2), 30_000);
    assert_eq!(reply.expect("round 2 applies"), Value::Int(1));
    views(&mut m, 40_000, 50);

    // What reached the AOF: each applied or idempotent import once, where it took effect,
    // with its TS explicit; the refused blob never.
    let imports: Vec<Vec<Vec<u8>>> = aof_commands(m.dir())
        .into_iter()
        .filter(|c| c[0].eq_ignore_ascii_case(b"EDGE.MODEL.IMPORT"))
        .collect();
    assert_eq!(imports.len(), 3, "two rounds and the repeat");
    assert!(imports.iter().all(|c| c.len() == 4 && c[2] == b"TS"));

    m.wait_replicas(1);
    let want = snapshot(&mut r, true);
    assert_same(&snapshot(&mut m, false), &want[..want.len() - 1], "master");
    // The AOF as the commands wrote it, replayed; then the same after a rewrite (the node
    // model as EDGE.NODE.RESTORE), then from the RDB.
    m.restart();
    assert_same(&snapshot(&mut m, true), &want, "after replaying the AOF");
    m.restart();
    assert_same(&snapshot(&mut m, true), &want, "after a rewritten AOF");
    let _: Value = m.q(redis::cmd("DEBUG").arg("RELOAD"));
    assert_same(&snapshot(&mut m, true), &want, "after DEBUG RELOAD");
}

/// Inside MULTI a client cannot be blocked: a large import applies in place, in order.
#[test]
fn a_large_import_in_multi_applies_in_place() {
    let mut s = Server::start(ServerOpts::new());
    views(&mut s, 0, 100);
    let (a, b): (i64, Vec<String>) = redis::pipe()
        .atomic()
        .cmd("EDGE.MODEL.IMPORT")
        .arg(big_aggregate(1))
        .cmd("EDGE.PREDICT")
        .arg("u1")
        .arg("K")
        .arg(3)
        .query(s.conn())
        .expect("MULTI/EXEC");
    assert_eq!(a, 1);
    assert_eq!(b.len(), 3);
    assert_eq!(
        s.edge_stat("edge_import_decodes_total"),
        0,
        "not sent to the thread"
    );
    let info: Vec<(String, i64)> = s.q(&mut redis::cmd("EDGE.MODEL.INFO"));
    assert!(info.contains(&("last_import_round".to_owned(), 1)));
}
