//! Federation commands end to end: EDGE.MODEL.EXPORT / IMPORT / INFO against real servers,
//! the INFO federation section, idempotent imports, rejected blobs, RDB and replication.
//! (The federator binary's rounds are tested in `federator/tests/`.)

use std::collections::HashMap;

use edge_tests::{predict, record, Server, ServerOpts};

/// `EDGE.MODEL.INFO` (a flat array under RESP2) as a map.
fn model_info(s: &mut Server) -> HashMap<String, i64> {
    let flat: Vec<redis::Value> = s.q(&mut redis::cmd("EDGE.MODEL.INFO"));
    assert_eq!(flat.len() % 2, 0);
    flat.chunks(2)
        .map(|p| {
            let k: String = redis::from_redis_value(p[0].clone()).expect("field name");
            let v: i64 = redis::from_redis_value(p[1].clone()).expect("integer value");
            (k, v)
        })
        .collect()
}

fn export(s: &mut Server, since: Option<u64>) -> Vec<u8> {
    let mut c = redis::cmd("EDGE.MODEL.EXPORT");
    if let Some(r) = since {
        c.arg("SINCE").arg(r);
    }
    s.q(&mut c)
}

fn import(s: &mut Server, blob: &[u8]) -> i64 {
    s.q(redis::cmd("EDGE.MODEL.IMPORT").arg(blob))
}

/// Two series watched in order by a few viewers, at fixed times.
fn watch(s: &mut Server, prefix: &str, series: &str, users: usize) {
    for u in 0..users {
        for ep in 0..4 {
            record(
                s,
                &format!("{prefix}{u}"),
                &format!("{series}E{ep}"),
                1_000_000 + (u * 10 + ep) as i64,
            );
        }
    }
}

/// CRC-32 (IEEE), to forge blobs that pass the checksum but fail later checks.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn reseal(mut blob: Vec<u8>) -> Vec<u8> {
    let n = blob.len();
    let crc = crc32(&blob[..n - 4]);
    blob[n - 4..].copy_from_slice(&crc.to_le_bytes());
    blob
}

#[test]
fn export_import_info_and_idempotence() {
    let mut a = Server::start(ServerOpts::new());
    let mut b = Server::start(ServerOpts::new());
    watch(&mut a, "a", "S1", 3);
    watch(&mut b, "b", "S2", 3);
    // b never saw S1: a probe viewer of S1E0 on b gets no S1 continuation.
    record(&mut b, "probe", "S1E0", 2_000_000);
    assert!(!predict(&mut b, "probe", Some(3)).contains(&"S1E1".to_owned()));

    let info = model_info(&mut a);
    assert_eq!(info["rounds_imported"], 0);
    let round = info["export_round"];
    let full = export(&mut a, None);
    assert_eq!(&full[..4], b"EDGC");
    assert_eq!(
        model_info(&mut a)["export_round"],
        round + 1,
        "export opens a round"
    );
    // Nothing changed since: the delta is smaller than the full update.
    let quiet = export(&mut a, Some(round as u64));
    assert!(
        quiet.len() < full.len(),
        "{} vs {}",
        quiet.len(),
        full.len()
    );

    assert_eq!(import(&mut b, &full), 1);
    assert_eq!(
        predict(&mut b, "probe", Some(3))
            .first()
            .map(String::as_str),
        Some("S1E1"),
        "peers' evidence joins the scoring blend"
    );
    let after = model_info(&mut b);
    assert_eq!(after["rounds_imported"], 1);
    assert_eq!(after["last_import_bytes"], full.len() as i64);
    assert!(after["peer_transitions"] > 0 && after["peer_rows"] > 0);
    assert!(after["last_import_ms"] > 0);
    let own = after["own_transitions"];
    assert!(own > 0);

    // Replaying the same round changes nothing.
    let preds = predict(&mut b, "probe", Some(5));
    assert_eq!(import(&mut b, &full), 0);
    let replayed = model_info(&mut b);
    assert_eq!(replayed["rounds_imported"], 1);
    assert_eq!(replayed["peer_transitions"], after["peer_transitions"]);
    assert_eq!(predict(&mut b, "probe", Some(5)), preds);

    // INFO edge carries the federation section, with counters named for the exporter.
    let i = b.info("edge");
    assert_eq!(i["edge_federation_rounds_total"], "1");
    assert_eq!(
        i["edge_federation_import_bytes_total"],
        full.len().to_string()
    );
    assert_eq!(
        i["edge_peer_transitions"],
        after["peer_transitions"].to_string()
    );
    assert!(i.contains_key("edge_export_round"));
    assert_eq!(a.info("edge")["edge_federation_exports_total"], "2");
}

#[test]
fn bad_blobs_are_rejected_and_change_nothing() {
    let mut a = Server::start(ServerOpts::new());
    let mut b = Server::start(ServerOpts::new());
    watch(&mut a, "a", "S1", 2);
    watch(&mut b, "b", "S2", 2);
    let blob = export(&mut a, None);
    let before = model_info(&mut b);

    let mut flipped = blob.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x55;
    let mut wrong_version = blob.clone();
    wrong_version[5] = 9;
    let mut wrong_kind = blob.clone();
    wrong_kind[4] = 1;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (blob[..blob.len() - 1].to_vec(), "ERR invalid update blob"),
        (blob[..10].to_vec(), "ERR invalid update blob"),
        (Vec::new(), "ERR invalid update blob"),
        (b"not a blob at all".to_vec(), "ERR invalid update blob"),
        (flipped, "checksum"),
        (reseal(wrong_version), "version"),
        (reseal(wrong_kind), "ERR invalid update blob"),
    ];
    for (bad, want) in cases {
        let e = b.err(redis::cmd("EDGE.MODEL.IMPORT").arg(&bad));
        assert!(e.contains(want), "{} bytes: {e}", bad.len());
    }
    let e = b.err(&redis::cmd("EDGE.MODEL.IMPORT"));
    assert!(e.contains("wrong number"), "{e}");
    let e = b.err(redis::cmd("EDGE.MODEL.EXPORT").arg("SINCE").arg("x"));
    assert!(e.starts_with("ERR SINCE must be"), "{e}");
    assert_eq!(model_info(&mut b)["rounds_imported"], 0);
    assert_eq!(
        model_info(&mut b)["peer_transitions"],
        before["peer_transitions"]
    );
    assert_eq!(import(&mut b, &blob), 1, "the intact blob still imports");
}

#[test]
fn the_peers_table_persists_in_rdb_and_replicates() {
    let mut a = Server::start(ServerOpts::new());
    let mut b = Server::start(ServerOpts::new());
    let mut replica = Server::replica_of(&b);
    watch(&mut a, "a", "S1", 3);
    watch(&mut b, "b", "S2", 3);
    record(&mut b, "probe", "S1E0", 2_000_000);
    let blob = export(&mut a, None);
    assert_eq!(import(&mut b, &blob), 1);
    let _: Vec<u8> = b.q(&mut redis::cmd("EDGE.MODEL.EXPORT"));
    b.wait_replicas(1);
    let want = model_info(&mut b);
    let preds = predict(&mut b, "probe", Some(5));

    // The same federation state and the same predictions as `b` had before.
    let same_as_before = |s: &mut Server, when: &str| {
        let got = model_info(s);
        for f in [
            "rounds_imported",
            "last_import_round",
            "peer_transitions",
            "peer_rows",
            "export_round",
        ] {
            assert_eq!(got[f], want[f], "{when} {f}");
        }
        assert_eq!(predict(s, "probe", Some(5)), preds);
    };
    same_as_before(&mut replica, "replica");

    let _: () = b.q(&mut redis::cmd("SAVE"));
    b.restart();
    same_as_before(&mut b, "after restart");
    assert_eq!(import(&mut b, &blob), 0, "still idempotent after a restart");
}

/// Issue 12, item 6: with a catalog of 200 items, 120 of them this edge's own, an
/// aggregate naming 5000 peer items keeps every own row and transition and every sampled
/// viewer's predictions, fills only the 80 slots own items leave, and the node reloads
/// from its RDB as it was.
#[test]
fn an_import_never_evicts_the_edges_own_items() {
    use edge_model::federation::{encode_update, Clock, Update, UpdateItem, UpdateRow};
    let mut s = Server::start(ServerOpts::new().module_arg("items-max", "200"));
    // 40 viewers, 30 views each, over 120 items: 10 views per item on average.
    for step in 0..30usize {
        for u in 0..40usize {
            let item = format!("own{}", (u * 7 + step * step + step / 3) % 120);
            record(
                &mut s,
                &format!("v{u}"),
                &item,
                ((step * 100 + u) * 1000) as i64,
            );
        }
    }
    let sampled: Vec<String> = (0..40).step_by(3).map(|u| format!("v{u}")).collect();
    let predictions = |s: &mut Server| -> Vec<Vec<String>> {
        sampled.iter().map(|u| predict(s, u, Some(5))).collect()
    };
    let before = model_info(&mut s);
    assert_eq!(before["items"], 120);
    assert!(before["own_rows"] > 0 && before["own_transitions"] > 0);
    let preds = predictions(&mut s);

    // Least important first, each with the own items' mean of 10 views (so the popularity
    // level users are damped against stays put) and popularity below theirs.
    let name = |i: usize| format!("peer{i}");
    let n = 5000;
    let blob = encode_update(&Update {
        node: "fed".into(),
        round: 1,
        since: None,
        settings: None,
        rows_clock: Clock::default(),
        items_clock: Clock::default(),
        items: (0..n)
            .map(|i| UpdateItem {
                name: name(i),
                views: 10,
                popularity: 0.5 * (i + 1) as f64 / n as f64,
            })
            .collect(),
        rows: (0..n - 1)
            .map(|i| UpdateRow {
                from: name(i),
                total: 1.0,
                entries: vec![(name(i + 1), 1.0)],
            })
            .collect(),
    });
    assert_eq!(import(&mut s, &blob), 1);
    let after = model_info(&mut s);
    assert_eq!(after["own_rows"], before["own_rows"]);
    assert_eq!(after["own_transitions"], before["own_transitions"]);
    assert_eq!(
        after["items"], 200,
        "peers fill what own items leave, no more"
    );
    assert_eq!(after["peer_views"], 80 * 10);
    assert_eq!(
        after["peer_rows"], 79,
        "the chain among the 80 admitted items"
    );
    assert_eq!(predictions(&mut s), preds);
    // The admitted ones are the most important: the top of the aggregate, not its start.
    // (A viewer with no history gets every item by popularity: own ones, then peers'.)
    let all = predict(&mut s, "fresh-viewer", Some(200));
    let peers: Vec<String> = (n - 80..n).rev().map(name).collect();
    assert_eq!(all[120..], peers[..]);

    let _: () = s.q(&mut redis::cmd("SAVE"));
    s.restart();
    // The model's fields; the `*_total` counters are this process's activity.
    let model = |mut m: HashMap<String, i64>| {
        m.retain(|k, _| !k.ends_with("_total"));
        m
    };
    assert_eq!(model(model_info(&mut s)), model(after));
    assert_eq!(predictions(&mut s), preds);
}
