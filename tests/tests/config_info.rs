//! Settings (load arguments and CONFIG SET) and the INFO edge sections.

use std::collections::HashMap;

use edge_tests::redis;
use edge_tests::{play, predict, record, teach_series, Server, ServerOpts};

fn config_get(s: &mut Server, name: &str) -> String {
    let pair: HashMap<String, String> = s.q(redis::cmd("CONFIG").arg("GET").arg(name));
    pair.get(name)
        .cloned()
        .unwrap_or_else(|| panic!("CONFIG GET {name}: {pair:?}"))
}

fn config_set(s: &mut Server, name: &str, value: &str) {
    let _: () = s.q(redis::cmd("CONFIG").arg("SET").arg(name).arg(value));
}

/// Thirty items with distinct popularity, so an unknown user's list is as long as `k`.
fn many_items(s: &mut Server) {
    for i in 0..30 {
        for v in 0..=i {
            record(s, &format!("v{v}"), &format!("item{i:02}"), 100 * i + v);
        }
    }
}

#[test]
fn load_arguments_become_settings() {
    let mut s = Server::start(
        ServerOpts::new()
            .module_arg("default-k", "5")
            .module_arg("cache-policy", "lru")
            .module_arg("cache-capacity-bytes", "3")
            .module_arg("item-size-bytes", "1")
            .module_arg("score-decay", "0.5"),
    );
    assert_eq!(config_get(&mut s, "edge.default-k"), "5");
    assert_eq!(config_get(&mut s, "edge.cache-policy"), "lru");
    assert_eq!(config_get(&mut s, "edge.cache-capacity-bytes"), "3");
    assert_eq!(config_get(&mut s, "edge.item-size-bytes"), "1");
    assert_eq!(config_get(&mut s, "edge.score-decay"), "0.5");
    assert_eq!(
        config_get(&mut s, "edge.prefetch-k"),
        "3",
        "untouched default"
    );
    let info = s.info("edge");
    assert_eq!(info["edge_cache_policy"], "lru");
    assert_eq!(info["edge_cache_capacity_bytes"], "3");
    many_items(&mut s);
    assert_eq!(predict(&mut s, "stranger", None).len(), 5);
}

#[test]
fn config_set_changes_behaviour() {
    let mut s = Server::start(
        ServerOpts::new()
            .module_arg("prefetch-k", "0")
            .module_arg("prefetch-budget", "0"),
    );
    many_items(&mut s);
    assert_eq!(
        predict(&mut s, "stranger", None).len(),
        10,
        "default-k is 10"
    );
    config_set(&mut s, "edge.default-k", "7");
    let top7 = predict(&mut s, "stranger", None);
    assert_eq!(top7.len(), 7);
    assert_eq!(top7[0], "item29", "most popular first");
    assert_eq!(predict(&mut s, "stranger", Some(2)).len(), 2, "K overrides");

    // Shrinking the cache evicts at once (LRU: the least recently played go first).
    config_set(&mut s, "edge.cache-policy", "lru");
    config_set(&mut s, "edge.item-size-bytes", "10");
    for (t, item) in ["item01", "item02", "item03"].iter().enumerate() {
        assert_eq!(play(&mut s, "p", item, 10_000 + t as i64, None).0, "MISS");
    }
    assert_eq!(s.edge_stat("edge_cache_items"), 3);
    assert_eq!(s.edge_stat("edge_cache_bytes"), 30);
    config_set(&mut s, "edge.cache-capacity-bytes", "15");
    assert_eq!(s.edge_stat("edge_cache_items"), 1);
    assert_eq!(s.edge_stat("edge_cache_bytes"), 10);
    assert_eq!(s.edge_stat("edge_cache_capacity_bytes"), 15);
    assert_eq!(play(&mut s, "p", "item03", 10_010, None).0, "HIT");
    assert_eq!(play(&mut s, "p", "item01", 10_011, None).0, "MISS");
    assert_eq!(s.info("edge")["edge_cache_policy"], "lru");
    // A model bound below what an empty model takes is refused, saying what is allowed.
    let e = s.err(
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("edge.model-memory-max")
            .arg("1000"),
    );
    assert!(
        e.contains("model-memory-max must be 0 (unbounded) or 1048576..=2^50 bytes"),
        "{e}"
    );
    config_set(&mut s, "edge.model-memory-max", "1048576");
    assert_eq!(s.edge_stat("edge_model_memory_max_bytes"), 1 << 20);

    // The weights steer scoring: with only popularity left, a follower of the series is
    // offered the most popular item instead of the next episode.
    teach_series(&mut s, 3);
    record(&mut s, "f", "S1E1", 20_000);
    assert_eq!(predict(&mut s, "f", Some(1)), ["S1E2"]);
    config_set(&mut s, "edge.weight-global", "0");
    config_set(&mut s, "edge.weight-personal", "0");
    assert_eq!(predict(&mut s, "f", Some(1)), ["item29"]);
    assert_eq!(config_get(&mut s, "edge.weight-global"), "0");
}

/// `cache-memory` decides how long the cache's frequencies last, counted in views: with
/// no decay an item asked for 20 times keeps the one-item cache from a newcomer asked for
/// ten times; with a memory of one view the newcomer's recent requests win it.
#[test]
fn cache_memory_sets_how_long_requests_count() {
    let mut s = Server::start(
        ServerOpts::new()
            .module_arg("cache-capacity-bytes", "1")
            .module_arg("item-size-bytes", "1")
            .module_arg("prefetch-budget", "0")
            .module_arg("prefetch-k", "0")
            .module_arg("cache-memory", "0"),
    );
    assert_eq!(config_get(&mut s, "edge.cache-memory"), "0");
    let mut t = 0;
    let mut play_at = |s: &mut Server, item: &str| {
        t += 1;
        play(s, "v", item, t, None).0
    };
    for _ in 0..20 {
        play_at(&mut s, "old");
    }
    assert_eq!(play_at(&mut s, "old"), "HIT");
    for _ in 0..4 {
        assert_eq!(
            play_at(&mut s, "new"),
            "MISS",
            "never forgotten: old keeps the cache"
        );
    }
    config_set(&mut s, "edge.cache-memory", "1");
    // Each new request now weighs twice the one before: the fifth outweighs old's 21.
    let outcomes: Vec<String> = (0..6).map(|_| play_at(&mut s, "new")).collect();
    assert_eq!(outcomes, ["MISS", "MISS", "MISS", "MISS", "MISS", "HIT"]);
}

#[test]
fn bad_load_arguments_refuse_the_module() {
    for (args, why) in [
        (
            vec!["no-such-setting", "1"],
            "unknown module argument 'no-such-setting'",
        ),
        (
            vec!["default-k"],
            "module arguments must be 'name value' pairs",
        ),
        (
            vec!["default-k", "0"],
            "default-k must be an integer between 1 and 1000",
        ),
        (
            vec!["cache-policy", "fifo"],
            "cache-policy must be one of lru, predictive",
        ),
    ] {
        let mut opts = ServerOpts::new();
        for a in &args {
            opts = opts.module_arg_raw(a);
        }
        let err = match Server::try_start(opts) {
            Ok(_) => panic!("{args:?} must refuse to load"),
            Err(e) => e,
        };
        assert!(err.reason.contains("exited"), "{args:?}: {}", err.reason);
        assert!(
            err.log.contains(why),
            "{args:?}: log lacks {why:?}:\n{}",
            err.log
        );
        assert!(err.log.contains("Module "), "{}", err.log);
    }
}

#[test]
fn info_edge_is_complete_and_consistent() {
    let mut s = Server::start(ServerOpts::new());
    teach_series(&mut s, 5);
    let _: () = s.q(redis::cmd("EDGE.RECORD")
        .arg("d")
        .arg("S1E1")
        .arg("DEVICE")
        .arg("tv"));
    for t in 0..3 {
        play(
            &mut s,
            "p",
            ["S1E1", "S1E2", "S1E3"][t],
            9_000 + t as i64,
            None,
        );
    }
    for _ in 0..4 {
        predict(&mut s, "p", None);
    }

    let text: String = s.q(redis::cmd("INFO").arg("edge"));
    for header in ["# edge_stats", "# edge_latency", "# edge_devices"] {
        assert!(text.contains(header), "missing {header}:\n{text}");
    }
    let info = s.info("edge");
    for f in [
        "edge_users",
        "edge_items",
        "edge_transitions",
        "edge_records_total",
        "edge_predictions_total",
        "edge_plays_total",
        "edge_cache_hits_total",
        "edge_cache_misses_total",
        "edge_prefetches_total",
        "edge_prefetch_used_total",
        "edge_prefetch_unused_evicted_total",
        "edge_cache_items",
        "edge_cache_bytes",
        "edge_cache_capacity_bytes",
        "edge_cache_policy",
        "edge_model_memory_bytes",
        "edge_model_memory_max_bytes",
        "edge_items_bound",
        "edge_maintenance_steps_total",
        "edge_maintenance_evictions_total",
        "edge_compactions_total",
        "edge_maintenance_step_max_us",
        "edge_learner_batches_total",
        "edge_learner_fork_waits_total",
        "edge_prefetch_budget",
        "edge_prefetch_price",
        "edge_prefetch_depth",
        "edge_prefetch_credit",
        "edge_predict_latency_us",
        "edge_predict_latency_us_sum",
        "edge_predict_latency_us_count",
        "edge_device_views_total",
    ] {
        assert!(info.contains_key(f), "INFO edge lacks {f}:\n{text}");
    }
    let n = |f: &str| -> u64 { info[f].parse().unwrap_or_else(|_| panic!("{f}")) };
    assert_eq!(n("edge_users"), 7, "5 fans, d and p");
    assert_eq!(n("edge_items"), 3);
    assert_eq!(n("edge_records_total"), 15 + 1 + 3, "plays record too");
    assert_eq!(n("edge_plays_total"), 3);
    assert_eq!(n("edge_cache_hits_total") + n("edge_cache_misses_total"), 3);
    assert!(n("edge_prefetch_used_total") <= n("edge_prefetches_total"));
    assert!(n("edge_cache_bytes") <= n("edge_cache_capacity_bytes"));
    assert!(n("edge_model_memory_bytes") > 0);
    assert_eq!(n("edge_model_memory_max_bytes"), 0, "unbounded by default");
    assert_eq!(n("edge_items_bound"), 1_000_000, "items-max alone");
    // A few dozen links never fill a batch: readers applied them on the main thread.
    assert_eq!(n("edge_learner_batches_total"), 0);
    assert_eq!(info["edge_cache_policy"], "predictive");
    // The default budget: one fetch per request, spent on predictions above a price.
    let g = |f: &str| -> f64 { info[f].parse().unwrap_or_else(|_| panic!("{f}")) };
    assert_eq!(g("edge_prefetch_budget"), 1.0);
    assert!((0.0..=1.0).contains(&g("edge_prefetch_price")));
    assert!(n("edge_prefetch_depth") >= 1);
    assert!(g("edge_prefetch_credit").abs() <= 3.0);
    assert_eq!(info["edge_device_views_total"], "tv=1");

    // The latency histogram: cumulative buckets ending in le_inf = count = predictions
    // (each PLAY predicts once for its prefetch, plus the 4 direct calls).
    let buckets: Vec<(String, u64)> = info["edge_predict_latency_us"]
        .split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("le_x=n");
            (k.to_owned(), v.parse().expect("count"))
        })
        .collect();
    assert_eq!(buckets.first().map(|b| b.0.as_str()), Some("le_1"));
    assert_eq!(buckets.last().map(|b| b.0.as_str()), Some("le_inf"));
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    let count = n("edge_predict_latency_us_count");
    assert_eq!(buckets.last().unwrap().1, count);
    assert_eq!(count, n("edge_predictions_total"));
    assert_eq!(count, 3 + 4);
}

/// Every declared range, at its edges, through CONFIG SET on a real server: both edges are
/// accepted and read back, one step beyond either is refused and changes nothing.
#[test]
fn config_set_enforces_every_declared_range_at_its_edges() {
    use edge_model::config::settings::{Kind, SETTINGS};
    let mut s = Server::start(ServerOpts::new());
    for setting in SETTINGS {
        let name = format!("edge.{}", setting.name);
        let (inside, outside): (Vec<String>, Vec<String>) = match setting.kind {
            Kind::Int { min, max } | Kind::Bytes { min, max } => (
                vec![min.to_string(), max.to_string()],
                vec![(min - 1).to_string(), (max + 1).to_string()],
            ),
            Kind::Float { min, max } => (
                vec![min.to_string(), max.to_string()],
                vec![
                    (min - min.abs().max(1e-9) * 0.5).to_string(),
                    (max * 1.5).to_string(),
                ],
            ),
            Kind::Choice(words) => (words.iter().map(|w| w.to_string()).collect(), vec![]),
        };
        let before = config_get(&mut s, &name);
        for v in &inside {
            config_set(&mut s, &name, v);
            let got = config_get(&mut s, &name);
            assert_eq!(
                got.parse::<f64>().ok(),
                v.parse::<f64>().ok(),
                "{name} {v} -> {got}"
            );
            if got.parse::<f64>().is_err() {
                assert_eq!(got, *v, "{name}");
            }
            config_set(&mut s, &name, &before);
        }
        for v in &outside {
            let e = s.err(redis::cmd("CONFIG").arg("SET").arg(&name).arg(v));
            assert!(e.contains(setting.name), "{name} {v}: {e}");
            assert_eq!(config_get(&mut s, &name), before, "{name} {v} changed it");
        }
    }
    // A value between the range's edges that the declaration alone cannot refuse.
    let e = s.err(
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("edge.model-memory-max")
            .arg("1048575"),
    );
    assert!(e.contains("model-memory-max must be 0 (unbounded)"), "{e}");
}
