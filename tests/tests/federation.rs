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
