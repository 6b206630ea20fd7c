//! The commands as a viewer's session uses them: record, predict, play, inspect.

use std::collections::HashSet;

use edge_tests::redis::{self, Value};
use edge_tests::{play, predict, predict_scored, record, teach_series, Server, ServerOpts};

#[test]
fn series_viewers_teach_the_next_episode() {
    let mut s = Server::start(ServerOpts::new());
    teach_series(&mut s, 20);
    // A blockbuster everyone watches once: the most popular item, but nobody's "next".
    for i in 0..30 {
        record(&mut s, &format!("casual{i}"), "Blockbuster", 50_000 + i);
    }

    record(&mut s, "newcomer", "S1E1", 100_000);
    let next = predict(&mut s, "newcomer", None);
    assert_eq!(next.first().map(String::as_str), Some("S1E2"), "{next:?}");
    assert!(
        !next.contains(&"S1E1".to_owned()),
        "seen items are excluded: {next:?}"
    );
    let with_seen: Vec<String> = s.q(redis::cmd("EDGE.PREDICT")
        .arg("newcomer")
        .arg("K")
        .arg(10)
        .arg("INCLUDESEEN"));
    assert!(with_seen.contains(&"S1E1".to_owned()), "{with_seen:?}");

    record(&mut s, "newcomer", "S1E2", 100_001);
    let next = predict(&mut s, "newcomer", Some(1));
    assert_eq!(next, ["S1E3"]);

    // Never seen: the most popular items. Blockbuster has 30 views; S1E1 and S1E2 have 21
    // each, and popularity decays, so the one watched more recently (S1E2) ranks first.
    assert_eq!(
        predict(&mut s, "stranger", Some(2)),
        ["Blockbuster", "S1E2"]
    );
    let none: Value = s.q(redis::cmd("EDGE.USER").arg("stranger"));
    assert_eq!(none, Value::Nil);
    assert_eq!(predict(&mut s, "stranger", Some(0)), Vec::<String>::new());
}

#[test]
fn withscores_is_ranked_pairs_in_resp2_and_a_map_in_resp3() {
    let mut s = Server::start(ServerOpts::new());
    teach_series(&mut s, 5);
    for (i, item) in ["Other", "Other", "Third"].iter().enumerate() {
        record(&mut s, &format!("x{i}"), "S1E1", 10 * i as i64);
        record(&mut s, &format!("x{i}"), item, 10 * i as i64 + 1);
    }
    record(&mut s, "v", "S1E1", 500);

    let plain = predict(&mut s, "v", Some(3));
    let scored = predict_scored(&mut s, "v", 3);
    assert_eq!(plain.len(), 3);
    assert_eq!(
        scored.iter().map(|(i, _)| i.clone()).collect::<Vec<_>>(),
        plain,
        "WITHSCORES keeps the ranking"
    );
    assert_eq!(plain[0], "S1E2", "5 viewers went on to S1E2, 2 to Other");
    let mut ranked = plain.clone();
    ranked.sort();
    assert_eq!(
        ranked,
        ["Other", "S1E2", "S1E3"],
        "Third (1 viewer) ranks below"
    );
    for w in scored.windows(2) {
        assert!(w[0].1 >= w[1].1, "scores descend: {scored:?}");
    }
    assert!(scored.iter().all(|(_, sc)| sc.is_finite() && *sc > 0.0));

    let mut c3 = s.connect_resp3();
    let reply: Value = redis::cmd("EDGE.PREDICT")
        .arg("v")
        .arg("K")
        .arg(3)
        .arg("WITHSCORES")
        .query(&mut c3)
        .expect("RESP3 predict");
    let Value::Map(pairs) = reply else {
        panic!("RESP3 WITHSCORES must be a map, got {reply:?}");
    };
    let resp3: Vec<(String, f64)> = pairs
        .into_iter()
        .map(|(k, v)| match (k, v) {
            (Value::BulkString(k), Value::Double(d)) => (String::from_utf8(k).unwrap(), d),
            other => panic!("expected item → double, got {other:?}"),
        })
        .collect();
    assert_eq!(
        resp3, scored,
        "same items, order and scores in both protocols"
    );
}

#[test]
fn user_view_shows_history_latest_first() {
    let mut s = Server::start(ServerOpts::new());
    for (t, item) in ["A", "B", "C"].iter().enumerate() {
        let _: () = s.q(redis::cmd("EDGE.RECORD")
            .arg("alice")
            .arg(item)
            .arg("TS")
            .arg(1_000 + t as i64)
            .arg("DEVICE")
            .arg("tv")
            .arg("DURATION")
            .arg(600));
    }
    let v: Vec<Value> = s.q(redis::cmd("EDGE.USER").arg("alice"));
    let fields: Vec<String> = v
        .iter()
        .step_by(2)
        .map(|f| redis::from_redis_value_ref::<String>(f).unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "records",
            "first_seen_ms",
            "last_seen_ms",
            "device",
            "seen_items",
            "history",
            "transitions"
        ]
    );
    let get = |name: &str| v[2 * fields.iter().position(|f| f == name).unwrap() + 1].clone();
    assert_eq!(get("records"), Value::Int(3));
    assert_eq!(get("first_seen_ms"), Value::Int(1_000));
    assert_eq!(get("last_seen_ms"), Value::Int(1_002));
    assert_eq!(get("device"), Value::BulkString(b"tv".to_vec()));
    assert_eq!(get("seen_items"), Value::Int(3));
    let history: Vec<(String, i64)> = redis::from_redis_value(get("history")).unwrap();
    assert_eq!(
        history,
        [
            ("C".into(), 1_002),
            ("B".into(), 1_001),
            ("A".into(), 1_000)
        ]
    );
    let transitions: Vec<(String, String, f64)> =
        redis::from_redis_value(get("transitions")).unwrap();
    let pairs: HashSet<(String, String)> =
        transitions.into_iter().map(|(a, b, _)| (a, b)).collect();
    assert_eq!(
        pairs,
        HashSet::from([("A".into(), "B".into()), ("B".into(), "C".into())])
    );
    // DEVICE feeds INFO's device breakdown.
    let devices = s.info("edge");
    assert_eq!(devices["edge_device_views_total"], "tv=3");
}

/// A tiny LRU cache with unit sizes and no prefetching: every status is hand-computed.
#[test]
fn play_follows_lru_exactly() {
    let mut s = Server::start(
        ServerOpts::new()
            .module_arg("cache-policy", "lru")
            .module_arg("cache-capacity-bytes", "3")
            .module_arg("item-size-bytes", "1")
            .module_arg("prefetch-k", "0")
            .module_arg("prefetch-budget", "0"),
    );
    // (item, SIZE, expected status, cache afterwards, least recent first)
    let trace: &[(&str, Option<u64>, &str)] = &[
        ("a", None, "MISS"),       // [a]
        ("b", None, "MISS"),       // [a b]
        ("c", None, "MISS"),       // [a b c]
        ("a", None, "HIT"),        // [b c a]
        ("d", None, "MISS"),       // evicts b: [c a d]
        ("b", None, "MISS"),       // evicts c: [a d b]
        ("a", None, "HIT"),        // [d b a]
        ("e", Some(2), "MISS"),    // 2 bytes: evicts d and b: [a e]
        ("a", None, "HIT"),        // [e a]
        ("huge", Some(5), "MISS"), // larger than the cache: served, never admitted
        ("e", None, "HIT"),        // its size (2) is remembered: [a e]
        ("d", None, "MISS"),       // evicts a: [e d]
        ("a", None, "MISS"),       // evicts e (2 bytes): [d a]
        ("huge", None, "MISS"),    // still too big
    ];
    let got: Vec<String> = trace
        .iter()
        .enumerate()
        .map(|(t, (item, size, _))| {
            let (status, prefetched) = play(&mut s, "u", item, 1_000 + t as i64, *size);
            assert!(prefetched.is_empty(), "prefetch-k is 0");
            status
        })
        .collect();
    let want: Vec<&str> = trace.iter().map(|t| t.2).collect();
    assert_eq!(got, want);

    let info = s.info("edge");
    let hits = want.iter().filter(|w| **w == "HIT").count();
    assert_eq!(info["edge_cache_hits_total"], hits.to_string());
    assert_eq!(
        info["edge_cache_misses_total"],
        (want.len() - hits).to_string()
    );
    assert_eq!(info["edge_plays_total"], want.len().to_string());
    assert_eq!(info["edge_cache_items"], "2");
    assert_eq!(info["edge_cache_bytes"], "2");
    assert_eq!(info["edge_cache_capacity_bytes"], "3");
    assert_eq!(info["edge_cache_policy"], "lru");
    assert_eq!(info["edge_prefetches_total"], "0");
}

/// One prefetch, then demand churn from other viewers: LRU flushes the prefetch before it
/// is used; the predictive policy keeps it, so the viewer's next play is a hit.
#[test]
fn predictive_cache_protects_prefetches_from_churn() {
    for (policy, expect_next, hits, unused_evicted) in
        [("lru", "MISS", 0, 1), ("predictive", "HIT", 1, 0)]
    {
        let mut s = Server::start(
            ServerOpts::new()
                .module_arg("cache-policy", policy)
                .module_arg("cache-capacity-bytes", "3")
                .module_arg("item-size-bytes", "1")
                .module_arg("prefetch-k", "0")
                .module_arg("prefetch-budget", "0")
                // One of the three bytes is the predictive policy's prefetch segment.
                .module_arg("prefetch-share-pct", "34"),
        );
        teach_series(&mut s, 10);
        assert_eq!(play(&mut s, "v", "S1E1", 5_000, None).0, "MISS");
        let fetched: Vec<String> = s.q(redis::cmd("EDGE.PREFETCH").arg("v").arg("K").arg(1));
        assert_eq!(fetched, ["S1E2"], "{policy}");
        for (i, churn) in ["X1", "X2", "X3"].iter().enumerate() {
            let who = format!("churn{i}");
            assert_eq!(play(&mut s, &who, churn, 5_002 + i as i64, None).0, "MISS");
        }
        let (status, _) = play(&mut s, "v", "S1E2", 6_000, None);
        assert_eq!(status, expect_next, "policy {policy}");

        let info = s.info("edge");
        assert_eq!(info["edge_cache_policy"], policy);
        assert_eq!(info["edge_cache_hits_total"], hits.to_string(), "{policy}");
        assert_eq!(info["edge_cache_misses_total"], (5 - hits).to_string());
        assert_eq!(info["edge_prefetches_total"], "1");
        assert_eq!(info["edge_prefetch_used_total"], hits.to_string());
        assert_eq!(
            info["edge_prefetch_unused_evicted_total"],
            unused_evicted.to_string()
        );
    }
}

/// With a cache large enough that nothing is evicted, a client can track exactly what is
/// cached from the replies alone; the module's statuses and INFO counters must agree.
/// A budget of two fetches per request leaves one for prefetching even while every request
/// misses (at one, a cold cache's misses spend it all).
#[test]
fn play_replies_and_info_counters_agree() {
    let mut s = Server::start(ServerOpts::new().module_arg("prefetch-budget", "2"));
    teach_series(&mut s, 10);
    let mut cached: HashSet<String> = HashSet::new();
    let mut unused: HashSet<String> = HashSet::new();
    let (mut hits, mut misses, mut prefetches, mut used) = (0, 0, 0, 0);
    let mut ts = 10_000;
    for viewer in ["p1", "p2", "p3"] {
        for ep in ["S1E1", "S1E2", "S1E3", "Special"] {
            ts += 1;
            let (status, fetched) = play(&mut s, viewer, ep, ts, None);
            let expect = if cached.contains(ep) { "HIT" } else { "MISS" };
            assert_eq!(status, expect, "{viewer} plays {ep}");
            if status == "HIT" {
                hits += 1;
                used += u64::from(unused.remove(ep));
            } else {
                misses += 1;
                cached.insert(ep.to_owned());
            }
            for f in fetched {
                assert!(
                    cached.insert(f.clone()),
                    "{f} was reported newly fetched twice"
                );
                unused.insert(f);
                prefetches += 1;
            }
        }
    }
    assert!(
        prefetches > 0 && used > 0,
        "the series should prefetch and use"
    );
    let info = s.info("edge");
    assert_eq!(info["edge_cache_hits_total"], hits.to_string());
    assert_eq!(info["edge_cache_misses_total"], misses.to_string());
    assert_eq!(info["edge_prefetches_total"], prefetches.to_string());
    assert_eq!(info["edge_prefetch_used_total"], used.to_string());
    assert_eq!(info["edge_cache_items"], cached.len().to_string());
    assert_eq!(info["edge_plays_total"], "12");
}

/// `EDGE.PLAY … DELTA` names exactly what a store must fetch and drop, and
/// `EDGE.CACHE.LIST` pages through what the cache holds, on an LRU trace whose every
/// eviction is known.
#[test]
fn play_deltas_and_the_cache_listing_follow_lru_exactly() {
    let mut s = Server::start(
        ServerOpts::new()
            .module_arg("cache-policy", "lru")
            .module_arg("cache-capacity-bytes", "3")
            .module_arg("item-size-bytes", "1")
            .module_arg("prefetch-k", "0")
            .module_arg("prefetch-budget", "0"),
    );
    /// One play: item, SIZE, status, what to fetch, what to drop.
    type Step<'a> = (&'a str, Option<u64>, &'a str, &'a [&'a str], &'a [&'a str]);
    let trace: &[Step] = &[
        ("a", None, "MISS", &["a"], &[]),
        ("b", None, "MISS", &["b"], &[]),
        ("c", None, "MISS", &["c"], &[]),
        ("a", None, "HIT", &[], &[]),
        ("d", None, "MISS", &["d"], &["b"]),
        ("b", None, "MISS", &["b"], &["c"]),
        ("a", None, "HIT", &[], &[]),
        ("e", Some(2), "MISS", &["e"], &["d", "b"]),
        ("a", None, "HIT", &[], &[]),
        ("huge", Some(5), "MISS", &[], &[]),
        ("e", None, "HIT", &[], &[]),
        ("d", None, "MISS", &["d"], &["a"]),
        ("a", None, "MISS", &["a"], &["e"]),
    ];
    for (t, (item, size, status, fetch, drop)) in trace.iter().enumerate() {
        let mut c = redis::cmd("EDGE.PLAY");
        c.arg("u").arg(*item).arg("TS").arg(1_000 + t as i64);
        if let Some(n) = size {
            c.arg("SIZE").arg(*n);
        }
        c.arg("DELTA");
        let (st, prefetched, f, d, resync): (String, Vec<String>, Vec<String>, Vec<String>, i64) =
            s.q(&mut c);
        assert_eq!(
            (st.as_str(), f, d, resync),
            (
                *status,
                fetch.iter().map(|x| x.to_string()).collect(),
                drop.iter().map(|x| x.to_string()).collect(),
                0
            ),
            "play {t} of {item}"
        );
        assert!(prefetched.is_empty());
    }
    // Without DELTA the reply is today's two elements.
    let plain: Vec<redis::Value> = s.q(redis::cmd("EDGE.PLAY")
        .arg("u")
        .arg("d")
        .arg("TS")
        .arg(99_999));
    assert_eq!(plain.len(), 2);
    // The cache holds [d a]; pages of one walk it in id order.
    let page = |s: &mut Server, after: Option<&str>| -> (String, Vec<(String, u64)>) {
        let mut c = redis::cmd("EDGE.CACHE.LIST");
        if let Some(a) = after {
            c.arg("AFTER").arg(a);
        }
        c.arg("COUNT").arg(1);
        let (next, flat): (String, Vec<redis::Value>) = s.q(&mut c);
        let items = flat
            .chunks(2)
            .map(|p| {
                let k: String = redis::from_redis_value(p[0].clone()).unwrap();
                let n: u64 = redis::from_redis_value(p[1].clone()).unwrap();
                (k, n)
            })
            .collect();
        (next, items)
    };
    assert_eq!(page(&mut s, None), ("a".into(), vec![("a".into(), 1)]));
    assert_eq!(page(&mut s, Some("a")), ("d".into(), vec![("d".into(), 1)]));
    assert_eq!(page(&mut s, Some("d")), (String::new(), vec![]));
    let all: (String, Vec<redis::Value>) = s.q(&mut redis::cmd("EDGE.CACHE.LIST"));
    assert_eq!((all.0.as_str(), all.1.len()), ("", 4), "one page, the end");
    for bad in [
        &["COUNT", "0"][..],
        &["COUNT", "x"],
        &["AFTER"],
        &["LIMIT", "1"],
    ] {
        let mut c = redis::cmd("EDGE.CACHE.LIST");
        c.arg(bad);
        assert!(s.err(&c).starts_with("ERR"), "{bad:?}");
    }
}
