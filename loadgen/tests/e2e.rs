//! End-to-end: every subcommand on small generated data against a real redis-server with
//! the module. Bounded in size and time (a few seconds each on a debug build).

mod common;

use common::{json, loadgen, Server, TempDir};

fn simulate(dir: &TempDir, name: &str, seed: u64, events: usize) -> std::path::PathBuf {
    let out = dir.join(name);
    loadgen(&[
        "simulate",
        "--users",
        "120",
        "--items",
        "300",
        "--events",
        &events.to_string(),
        "--seed",
        &seed.to_string(),
        "--out",
        out.to_str().unwrap(),
    ]);
    out
}

fn info_field(con: &mut redis::Connection, field: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("edge").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("{field} not in INFO edge:\n{info}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn simulate_is_deterministic_and_feeds_the_server() {
    let dir = TempDir::new("sim");
    let a = std::fs::read(simulate(&dir, "a.jsonl", 5, 1500)).unwrap();
    let b = std::fs::read(simulate(&dir, "b.jsonl", 5, 1500)).unwrap();
    let c = std::fs::read(simulate(&dir, "c.jsonl", 6, 1500)).unwrap();
    assert_eq!(a, b, "same seed, same bytes");
    assert_ne!(a, c);
    let text = String::from_utf8(a).unwrap();
    assert_eq!(text.lines().count(), 1500);
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    for f in ["user_id", "device", "content_id", "duration", "timestamp"] {
        assert!(first.get(f).is_some(), "seed schema field {f} missing");
    }
    let server = Server::start();
    let report = dir.join("sim.json");
    loadgen(&[
        "simulate",
        "--users",
        "50",
        "--items",
        "100",
        "--events",
        "800",
        "--seed",
        "1",
        "--redis",
        &server.url(),
        "--json",
        report.to_str().unwrap(),
    ]);
    let r = json(&report);
    assert_eq!(r["sent"], 800);
    assert_eq!(info_field(&mut server.con(), "edge_plays_total"), 800);
}

#[test]
fn replay_counts_what_it_sent() {
    let dir = TempDir::new("replay");
    let file = simulate(&dir, "log.jsonl", 2, 1200);
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("{\"user_id\": \"U1\"}\nnot json\n");
    std::fs::write(&file, text).unwrap();
    let server = Server::start();
    let report = dir.join("replay.json");
    let out = loadgen(&[
        "replay",
        "--format",
        "jsonl",
        file.to_str().unwrap(),
        "--redis",
        &server.url(),
        "--json",
        report.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 1201") && stderr.contains("line 1202"),
        "{stderr}"
    );
    let r = json(&report);
    assert_eq!(r["sent"], 1200);
    assert_eq!(r["ok"], 1200);
    assert_eq!(r["errors"], 0);
    assert_eq!(r["malformed"], 2);
    assert_eq!(info_field(&mut server.con(), "edge_plays_total"), 1200);
    // --strict stops at the first bad line, naming it.
    let strict = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["replay", "--strict", "--format", "jsonl"])
        .arg(&file)
        .args(["--redis", &server.url()])
        .output()
        .unwrap();
    assert!(!strict.status.success());
    assert!(String::from_utf8_lossy(&strict.stderr).contains(":1201:"));
    // MovieLens layout, record only.
    let ml = dir.join("u.data");
    std::fs::write(
        &ml,
        "1\t10\t5\t881250949\n2\t10\t3\t881250950\n1\t11\t4\t881250951\n",
    )
    .unwrap();
    let out = loadgen(&[
        "replay",
        "--format",
        "movielens",
        ml.to_str().unwrap(),
        "--command",
        "record",
        "--redis",
        &server.url(),
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("replayed 3 events"));
}

#[test]
fn eval_beats_baselines_and_both_paths_agree() {
    let dir = TempDir::new("eval");
    let file = simulate(&dir, "log.jsonl", 11, 3000);
    let server = Server::start();
    let run = |name: &str, redis: Option<&str>| {
        let report = dir.join(name);
        let plot = dir.join(&format!("{name}.svg"));
        let mut args = vec![
            "eval",
            "--format",
            "jsonl",
            file.to_str().unwrap(),
            "--cache-items",
            "20,50",
            "--sweep",
            "prefetch-k=0,3",
            "--json",
            report.to_str().unwrap(),
            "--plot",
            plot.to_str().unwrap(),
        ];
        if let Some(url) = redis {
            args.extend(["--redis", url]);
        }
        loadgen(&args);
        let svg = std::fs::read_to_string(&plot).unwrap();
        assert!(svg.contains("<svg"));
        json(&report)
    };
    let local = run("local.json", None);
    let remote = run("remote.json", Some(&server.url()));
    assert_eq!(local["edge_source"], "in-process");
    assert_eq!(remote["edge_source"], "redis");
    assert_eq!(local["events"], 3000);
    // Both paths give identical figures.
    let edge_rows = |r: &serde_json::Value| -> Vec<serde_json::Value> {
        r["caches"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["policy"].as_str().unwrap().starts_with("edge"))
            .cloned()
            .collect()
    };
    assert_eq!(edge_rows(&local).len(), 4);
    assert_eq!(edge_rows(&local), edge_rows(&remote));
    assert_eq!(local["predictors"], remote["predictors"]);
    // On structured data the module predicts better than every baseline predictor…
    let hr = |name: &str| local["predictors"][name]["hr_at_k"].as_f64().unwrap();
    for b in ["popularity", "markov", "markov_popularity"] {
        assert!(hr("edge") > hr(b), "edge {} <= {b} {}", hr("edge"), hr(b));
    }
    // …and with prefetching its cache beats LRU at the same size.
    let hit = |policy: &str, cap: u64| {
        local["caches"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["policy"] == policy && c["capacity"] == cap)
            .unwrap_or_else(|| panic!("no row {policy} {cap}"))["hit_ratio"]
            .as_f64()
            .unwrap()
    };
    for cap in [20, 50] {
        assert!(hit("edge[prefetch-k=3]", cap) > hit("lru", cap));
        assert!(hit("belady", cap) >= hit("lru", cap));
    }
    assert!(local["caches"][0]["prefetch_precision"].is_null());
}

#[test]
fn holdout_scores_the_same_events_on_both_paths() {
    let dir = TempDir::new("holdout");
    let file = simulate(&dir, "log.jsonl", 13, 4000);
    let server = Server::start();
    let run = |name: &str, redis: Option<&str>| {
        let report = dir.join(name);
        let mut args = vec![
            "holdout",
            file.to_str().unwrap(),
            "--train",
            "0.75",
            "--retrain",
            "0.85,0.95",
            "--json",
            report.to_str().unwrap(),
        ];
        if let Some(url) = redis {
            args.extend(["--redis", url]);
        }
        loadgen(&args);
        json(&report)
    };
    let local = run("local.json", None);
    let remote = run("remote.json", Some(&server.url()));
    assert_eq!(local["edge_source"], "in-process");
    assert_eq!(remote["edge_source"], "redis");
    assert_eq!(local["first_scored"], 3000);
    assert_eq!(local["scored"], 1000);
    // The module learned every event through the server, and predicted only the held-out ones.
    assert_eq!(info_field(&mut server.con(), "edge_records_total"), 4000);
    assert_eq!(
        local["models"], remote["models"],
        "both paths give identical figures"
    );
    let models = local["models"].as_array().unwrap();
    let hr = |name: &str| {
        models
            .iter()
            .find(|m| m["model"].as_str().unwrap().starts_with(name))
            .unwrap_or_else(|| panic!("no model {name} in {models:?}"))["hr_at_k"]
            .as_f64()
            .unwrap()
    };
    // Simulated viewers binge series: neighbours beat raw popularity, for both kinds of model.
    assert!(hr("item-knn (frozen)") > hr("popularity"));
    assert!(hr("edge") > hr("popularity"));
    // A hit on a first view is a hit: the first-view rate is never below the overall rate
    // (returns to seen items can never be hits).
    for m in models {
        assert!(m["hr_at_k_first_views"].as_f64().unwrap() >= m["hr_at_k"].as_f64().unwrap());
    }

    // Lists ranked elsewhere are scored by the same code: an oracle that names each held-out
    // event's own item first, then two decoys, hits every event at rank 1.
    let events = dir.join("events.txt");
    let oracle = dir.join("oracle.txt");
    let report = dir.join("oracle.json");
    loadgen(&[
        "holdout",
        file.to_str().unwrap(),
        "--train",
        "0.75",
        "--events-out",
        events.to_str().unwrap(),
    ]);
    let lines: Vec<String> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 4000, "one line per event");
    let lists: String = lines[3000..]
        .iter()
        .map(|l| format!("{} 0 1\n", l.split(' ').nth(1).unwrap()))
        .collect();
    std::fs::write(&oracle, &lists).unwrap();
    let ranks = format!("oracle={}", oracle.to_str().unwrap());
    loadgen(&[
        "holdout",
        file.to_str().unwrap(),
        "--train",
        "0.75",
        "--ranks",
        &ranks,
        "--json",
        report.to_str().unwrap(),
    ]);
    let r = json(&report);
    let o = r["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == "oracle")
        .unwrap()
        .clone();
    assert_eq!(o["hr_at_k"], 1.0);
    assert_eq!(o["mrr_at_k"], 1.0);
    // Lists for another split are refused with a message that says so.
    std::fs::write(&oracle, &lists[..lists.len() / 2]).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "holdout",
            file.to_str().unwrap(),
            "--train",
            "0.75",
            "--ranks",
            &ranks,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("held-out events"), "{err}");
}

#[test]
fn bench_produces_sane_numbers() {
    let dir = TempDir::new("bench");
    let server = Server::start();
    let report = dir.join("bench.json");
    let out = loadgen(&[
        "bench",
        "--redis",
        &server.url(),
        "--clients",
        "2",
        "--pipeline",
        "8",
        "--requests",
        "1600",
        "--users",
        "200",
        "--items",
        "500",
        "--mix",
        "record=1,predict=2,play=1",
        "--baseline",
        "get,zset,lrange",
        "--json",
        report.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("throughput edge/zset"), "{stdout}");
    let r = json(&report);
    let names: Vec<&str> = r["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["ping", "edge", "get", "zset", "edge-predict", "lrange"]
    );
    for w in r["workloads"].as_array().unwrap() {
        assert_eq!(w["ops"], 1600, "{w}");
        assert_eq!(w["errors"], 0, "{w}");
        let l = &w["latency_us"];
        let p = |k: &str| l[k].as_u64().unwrap();
        assert!(p("p50") >= 1 && p("p50") <= p("p90") && p("p90") <= p("p99"));
        assert!(p("p99") <= p("p999") && p("p999") <= p("max"), "{w}");
        assert!(w["ops_per_sec"].as_f64().unwrap() > 0.0);
    }
    for k in ["edge/get", "edge/zset", "edge-predict/lrange", "edge/ping"] {
        assert!(r["ratios"][k].as_f64().unwrap() > 0.0, "{k}");
    }
    // A target rate: coordinated-omission corrected histograms, still sane.
    let report = dir.join("rate.json");
    loadgen(&[
        "bench",
        "--redis",
        &server.url(),
        "--clients",
        "1",
        "--pipeline",
        "4",
        "--requests",
        "400",
        "--rate",
        "4000",
        "--no-ping",
        "--json",
        report.to_str().unwrap(),
    ]);
    let r = json(&report);
    let w = &r["workloads"][0];
    assert_eq!(w["name"], "edge");
    assert!(w["ops"].as_u64().unwrap() >= 400);
    assert!(
        w["elapsed_s"].as_f64().unwrap() >= 0.09,
        "the rate paces the run"
    );
}
