//! The federator binary against three real redis-servers with the module: rounds converge
//! to what one server seeing everything predicts, a dead edge does not stop a round and
//! catches up when it comes back from its RDB, and secure aggregation pushes the same model.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use edge_tests::{predict, record, run_bounded, Server, ServerOpts};

mod support;
use support::{info, url, watch, PLAN};

const FEDERATOR: &str = env!("CARGO_BIN_EXE_federator");

/// `--edge NAME=URL` for each named server.
fn edge_args(edges: &[(&str, String)]) -> Vec<String> {
    edges
        .iter()
        .flat_map(|(n, u)| ["--edge".to_owned(), format!("{n}={u}")])
        .collect()
}

/// Runs the federator to completion (bounded); returns its stderr+stdout.
fn federate(edges: &[(&str, String)], extra: &[&str]) -> String {
    let mut cmd = Command::new(FEDERATOR);
    cmd.args(edge_args(edges))
        .args(["--timeout", "2s"])
        .args(extra);
    let (ok, out) = run_bounded(&mut cmd, Duration::from_secs(20));
    assert!(ok, "federator failed: {out}");
    out
}

/// A federator running as a service, killed on drop.
struct Service {
    child: Child,
    json: PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.json);
    }
}

/// Polls `cond` every 50 ms for at most 10 s.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(50));
    }
}

#[test]
fn rounds_converge_to_the_centralized_model() {
    let mut edges: Vec<Server> = (0..3).map(|_| Server::start(ServerOpts::new())).collect();
    let mut central = Server::start(ServerOpts::new());
    // Each region watches its own series, and some of the others'.
    for (k, (prefix, series, e)) in PLAN.iter().enumerate() {
        let t0 = 1_000_000 + k as i64 * 1000;
        watch(&mut edges[*e], prefix, series, 4, t0);
        watch(&mut central, prefix, series, 4, t0);
    }
    let named: Vec<(&str, String)> = ["a", "b", "c"]
        .into_iter()
        .zip(edges.iter().map(url))
        .collect();
    let out = federate(&named, &["--rounds", "2"]);
    assert!(out.contains("answered 3/3"), "{out}");
    assert!(!out.contains("round skipped"), "{out}");

    let probe = |s: &mut Server, item: &str, user: &str| {
        record(s, user, item, 9_000_000);
        predict(s, user, Some(5))
    };
    for (i, e) in edges.iter_mut().enumerate() {
        assert_eq!(info(e, "rounds_imported"), 2);
        for item in ["S0E1", "S1E2", "S2E0"] {
            let user = format!("probe{i}{item}");
            let want = probe(&mut central, item, &user);
            assert!(!want.is_empty());
            assert_eq!(probe(e, item, &user), want, "edge {i}, probe {item}");
        }
    }

    // Secure aggregation pushes the same model (fixed point to 1/256 keeps the ranking).
    let out = federate(&named, &["--rounds", "1", "--secure"]);
    assert!(out.contains("answered 3/3"), "{out}");
    for (i, e) in edges.iter_mut().enumerate() {
        assert_eq!(info(e, "rounds_imported"), 3);
        for item in ["S0E2", "S1E3"] {
            let user = format!("secure{i}{item}");
            assert_eq!(
                probe(e, item, &user),
                probe(&mut central, item, &user),
                "edge {i}"
            );
        }
    }
}

#[test]
fn a_dead_edge_does_not_stop_a_round_and_catches_up_from_its_rdb() {
    let mut a = Server::start(ServerOpts::new());
    let mut b = Server::start(ServerOpts::new());
    let mut c = Server::start(ServerOpts::new());
    watch(&mut a, "a", "S0", 3, 1_000_000);
    watch(&mut b, "b", "S1", 3, 1_000_000);
    watch(&mut c, "c", "S2", 3, 1_000_000);
    let json = std::env::temp_dir().join(format!("federator-e2e-{}.json", std::process::id()));
    let named = vec![("a", url(&a)), ("b", url(&b)), ("c", url(&c))];
    let child = Command::new(FEDERATOR)
        .args(edge_args(&named))
        .args([
            "--interval",
            "200ms",
            "--rounds",
            "150",
            "--timeout",
            "500ms",
        ])
        .args(["--min-edges", "2", "--json"])
        .arg(&json)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the federator");
    let service = Service { child, json };
    eventually("a first round everywhere", || {
        [&mut a, &mut b, &mut c]
            .into_iter()
            .all(|s| info(s, "rounds_imported") >= 1)
    });

    // c goes down (its RDB saved first); a learns a new series meanwhile.
    let _: () = c.q(&mut redis::cmd("SAVE"));
    let saved_rounds = info(&mut c, "rounds_imported");
    let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query::<()>(c.conn());
    watch(&mut a, "a2", "NEW", 3, 2_000_000);
    eventually("b learns a's new series without c", || {
        record(&mut b, "probe-b", "NEWE0", 3_000_000);
        predict(&mut b, "probe-b", Some(3))
            .first()
            .map(String::as_str)
            == Some("NEWE1")
    });

    // c comes back from its RDB and catches up, and its own news reach the others.
    c.restart();
    assert!(info(&mut c, "rounds_imported") >= saved_rounds);
    watch(&mut c, "c2", "CNEW", 3, 2_500_000);
    eventually("c catches up with a's series", || {
        record(&mut c, "probe-c", "NEWE2", 3_000_000);
        predict(&mut c, "probe-c", Some(3))
            .first()
            .map(String::as_str)
            == Some("NEWE3")
    });
    eventually("a learns c's new series", || {
        record(&mut a, "probe-a", "CNEWE0", 3_000_000);
        predict(&mut a, "probe-a", Some(3))
            .first()
            .map(String::as_str)
            == Some("CNEWE1")
    });

    let read = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&service.json).unwrap_or_default())
            .unwrap_or(serde_json::Value::Null)
    };
    let answered = |r: &serde_json::Value| r["answered"].as_array().map_or(0, Vec::len);
    // The summary is rewritten after each round: wait for one written after c's return.
    eventually("a summary whose last round has all three edges", || {
        read()["rounds"]
            .as_array()
            .and_then(|r| r.last())
            .is_some_and(|r| answered(r) == 3)
    });
    let summary = read();
    let rounds = summary["rounds"].as_array().expect("rounds");
    let r = rounds
        .iter()
        .find(|r| r["skipped"] == false && answered(r) == 2)
        .expect("a round ran without c");
    assert!(r["missing"]["c"].is_string(), "{r}");
    assert_eq!(r["pushed"].as_array().map(Vec::len), Some(2), "{r}");
    assert!(r["duration_ms"].as_f64().unwrap() < 2000.0, "{r}");
    drop(service);
}

#[test]
fn a_round_below_min_edges_is_skipped_and_logged() {
    let mut a = Server::start(ServerOpts::new());
    watch(&mut a, "a", "S0", 2, 1_000_000);
    // Nothing listens on the second edge's port.
    let dead = format!("b=redis://127.0.0.1:{}", edge_tests::free_port());
    let mut cmd = Command::new(FEDERATOR);
    cmd.args(["--edge", &format!("a={}", url(&a)), "--edge", &dead])
        .args(["--rounds", "1", "--min-edges", "2", "--timeout", "1s"]);
    let started = Instant::now();
    let (ok, out) = run_bounded(&mut cmd, Duration::from_secs(20));
    assert!(ok, "{out}");
    assert!(out.contains("round skipped: answered 1/2"), "{out}");
    assert!(out.contains("\"rounds_skipped\": 1"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(info(&mut a, "rounds_imported"), 0);
}

/// Privacy is enforced by live edges and the noise follows what they report: a viewer over
/// the edges' `dp-clip` reaches the export exactly as a viewer of the clip alone does; the
/// federator sizes the noise from the edges' reported settings (`learn-window 20` needs more
/// than the default window); edges that disagree, or clip looser than `--dp-clip`, get a
/// refused round, logged, with nothing pushed.
#[test]
fn dp_noise_follows_what_the_edges_report_and_disagreeing_edges_are_refused() {
    use edge_model::federation::decode_update;
    let opts = || {
        ServerOpts::new()
            .module_arg("dp-clip", "3")
            .module_arg("learn-window", "20")
    };
    let (mut a, mut b, mut only) = (
        Server::start(opts()),
        Server::start(opts()),
        Server::start(opts()),
    );
    for t in 0..8 {
        let item = format!("I{}", t % 5);
        record(&mut a, "heavy", &item, 1_000_000 + t * 60_000);
        if t < 3 {
            record(&mut only, "heavy", &item, 1_000_000 + t * 60_000);
        }
    }
    assert_eq!(a.edge_stat("edge_dp_clipped_total"), 5);
    let export = |s: &mut Server| {
        let blob: Vec<u8> = s.q(&mut redis::cmd("EDGE.MODEL.EXPORT"));
        let mut u = decode_update(&blob).expect("an export decodes");
        u.node.clear();
        u
    };
    let (ua, uo) = (export(&mut a), export(&mut only));
    assert_eq!(ua, uo, "the heavy viewer contributes exactly the clip");
    assert_eq!(
        ua.settings.map(|s| (s.learning.window, s.dp_clip)),
        Some((20, 3))
    );
    assert_eq!(ua.items.iter().map(|i| i.views).sum::<u64>(), 3);
    watch(&mut b, "b", "S1", 3, 1_000_000);

    let json = std::env::temp_dir().join(format!("federator-e2e-dp-{}.json", std::process::id()));
    let named = vec![("a", url(&a)), ("b", url(&b))];
    let json_arg = json.to_string_lossy().into_owned();
    let dp = |clip: &str| {
        federate(
            &named,
            &[
                "--rounds",
                "1",
                "--dp-epsilon",
                "2",
                "--dp-clip",
                clip,
                "--json",
                &json_arg,
            ],
        )
    };
    let out = dp("5");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the summary")).unwrap();
    let round = &summary["rounds"][0];
    let wide = edge_model::config::Learning {
        window: 20,
        ..edge_model::Config::default().learning
    };
    let want = federator::dp::sensitivity(3, federator::dp::LearnBound::of(&wide));
    let default = federator::dp::sensitivity(
        3,
        federator::dp::LearnBound::of(&edge_model::Config::default().learning),
    );
    assert!(want > default, "{want} vs {default}");
    assert!(
        (round["sensitivity"].as_f64().unwrap() - want).abs() < 1e-9,
        "{round}"
    );
    assert!(
        (round["laplace_scale"].as_f64().unwrap() - want / 2.0).abs() < 1e-9,
        "{round}"
    );
    assert_eq!(summary["dp"]["edge_clip"], 3, "{summary}");
    assert!(out.contains("laplace scale"), "{out}");
    assert_eq!(info(&mut a, "rounds_imported"), 1);

    // Looser than --dp-clip: refused.
    let out = dp("2");
    assert!(
        out.contains("round refused") && out.contains("dp-clip 3 but --dp-clip is 2"),
        "{out}"
    );
    // b now learns with another window: the edges disagree, with or without DP.
    let _: () = b.q(redis::cmd("CONFIG")
        .arg("SET")
        .arg("edge.learn-window")
        .arg("10"));
    for extra in [vec![], vec!["--dp-epsilon", "2", "--dp-clip", "5"]] {
        let mut args = vec!["--rounds", "1"];
        args.extend(extra);
        let out = federate(&named, &args);
        assert!(
            out.contains("round refused (edges learn under different settings"),
            "{out}"
        );
        assert!(
            out.contains("learn-window 20") && out.contains("learn-window 10"),
            "{out}"
        );
    }
    for s in [&mut a, &mut b] {
        assert_eq!(
            info(s, "rounds_imported"),
            1,
            "a refused round pushes nothing"
        );
    }
    let _ = std::fs::remove_file(&json);
}
