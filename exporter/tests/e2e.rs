//! End to end: redis-server started from the repository's `redis.conf` with the built
//! module, the exporter binary in front of it (with AUTH), and a real Prometheus scraping
//! the exporter with a config derived from `monitoring/prometheus.yml`. A workload goes in
//! through the redis crate; the assertions read Prometheus' HTTP API, lint `/metrics` with
//! promtool, run every dashboard expression, validate the compose file, and finally kill
//! Redis to see `edge_up` drop while the exporter keeps serving.
//!
//! Environment: `EDGE_MODULE` (the module .so; default `<target>/debug/libedgecache.so`
//! next to this test's `deps/` directory), `REDIS_SERVER`, `PROMETHEUS`, `PROMTOOL`.
//! Everything listens on 127.0.0.1; every wait is bounded; processes die with the test.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use edge_tests::{free_port, module_path, TempDir};
use serde_json::Value;

const PASSWORD: &str = "e2e-Secret-7f3a";

/// A child process killed and reaped on drop, with its log printed if the test failed.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &'static str, mut cmd: Command, log: PathBuf) -> Proc {
        let out = fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc { name, child, log }
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("--- last lines of {} log ---", self.name);
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn tool(env: &str, default: &str) -> String {
    std::env::var(env).unwrap_or_else(|_| default.to_owned())
}

fn on_path(bin: &str) -> bool {
    Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Polls `f` every 100 ms until it returns `Some`, or panics after `limit`.
fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        sleep(Duration::from_millis(100));
    }
}

/// A minimal HTTP/1.0 GET (no chunking, connection closes): returns status and body.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs an instant query; returns the result vector (empty on no data).
fn prom_query(port: u16, expr: &str) -> Vec<Value> {
    let (status, body) = http_get(port, &format!("/api/v1/query?query={}", urlencode(expr)))
        .unwrap_or_else(|| panic!("Prometheus did not answer for {expr}"));
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(status, 200, "query {expr} failed: {body}");
    assert_eq!(v["status"], "success", "{body}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// The single value of an instant query, if it has exactly one series.
fn prom_value(port: u16, expr: &str) -> Option<f64> {
    let r = prom_query(port, expr);
    if r.len() != 1 {
        return None;
    }
    r[0]["value"][1].as_str()?.parse().ok()
}

/// Waits until Prometheus reports `expr == want`.
fn wait_value(port: u16, expr: &str, want: f64) {
    let mut last = None;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        last = prom_value(port, expr);
        if last == Some(want) {
            return;
        }
        sleep(Duration::from_millis(200));
    }
    panic!("{expr}: wanted {want}, Prometheus last said {last:?}");
}

/// A redis-server with the committed `redis.conf` (which loads the module under test).
fn start_redis(dir: &Path) -> (Proc, u16) {
    // redis.conf loads ./target/release/libedgecache.so relative to its data dir: point
    // that path at the module under test, and use the file exactly as committed.
    let rel = dir.join("target/release");
    fs::create_dir_all(&rel).unwrap();
    let link = rel.join("libedgecache.so");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(module_path(), &link).unwrap();
    spawn_redis(dir, Some(&repo_root().join("redis.conf")), "redis-server")
}

/// A redis-server on a free loopback port with AUTH, from `config` if given, retried on
/// another port if the first was taken.
fn spawn_redis(dir: &Path, config: Option<&Path>, what: &'static str) -> (Proc, u16) {
    for _attempt in 0..3 {
        let port = free_port();
        let mut cmd = Command::new(tool("REDIS_SERVER", "redis-server"));
        cmd.current_dir(dir);
        if let Some(c) = config {
            cmd.arg(c);
        }
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir)
            .args(["--save", "", "--appendonly", "no"])
            .args(["--requirepass", PASSWORD]);
        let mut p = Proc::spawn(what, cmd, dir.join("redis.log"));
        let up = wait_for(what, Duration::from_secs(10), || {
            if !p.alive() {
                return Some(false);
            }
            let url = format!("redis://:{PASSWORD}@127.0.0.1:{port}");
            let mut c = redis::Client::open(url).ok()?.get_connection().ok()?;
            redis::cmd("PING").query::<String>(&mut c).ok()?;
            Some(true)
        });
        if up {
            return (p, port);
        }
        let log = p.log();
        assert!(
            log.contains("Address already in use"),
            "{what} failed to start:\n{log}"
        );
    }
    panic!("no free port for {what}");
}

fn start_exporter(dir: &Path, redis_port: u16) -> (Proc, u16) {
    let ghost = free_port(); // nothing listens there: an edge that is down from the start
    let targets = format!("e2e=redis://127.0.0.1:{redis_port},ghost=redis://127.0.0.1:{ghost}");
    spawn_exporter(dir, &targets, 1)
}

/// Starts the exporter binary on a free port in front of `targets` (the `REDIS_ADDR`
/// list) with `--timeout timeout_secs`, and waits until `/health` answers.
fn spawn_exporter(dir: &Path, targets: &str, timeout_secs: u32) -> (Proc, u16) {
    for _attempt in 0..3 {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_exporter"));
        cmd.args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--timeout", &timeout_secs.to_string()])
            .env("REDIS_ADDR", targets)
            .env("REDIS_PASSWORD", PASSWORD)
            .env_remove("REDIS_USER")
            .env_remove("EXPORTER_LISTEN");
        let mut p = Proc::spawn("exporter", cmd, dir.join("exporter.log"));
        let ok = wait_for("exporter /health", Duration::from_secs(10), || {
            if !p.alive() {
                return Some(false);
            }
            http_get(port, "/health").filter(|(s, _)| *s == 200)?;
            Some(true)
        });
        if ok {
            return (p, port);
        }
    }
    panic!("exporter did not start");
}

fn start_prometheus(dir: &Path, exporter_port: u16) -> (Proc, u16) {
    let monitoring = repo_root().join("monitoring");
    let config = fs::read_to_string(monitoring.join("prometheus.yml")).unwrap();
    for needle in [
        "exporter:19121",
        "scrape_interval: 5s",
        "scrape_timeout: 4s",
    ] {
        assert!(config.contains(needle), "prometheus.yml lost {needle:?}");
    }
    let config = config
        .replace("exporter:19121", &format!("127.0.0.1:{exporter_port}"))
        .replace("scrape_interval: 5s", "scrape_interval: 1s")
        .replace("scrape_timeout: 4s", "scrape_timeout: 1s");
    fs::write(dir.join("prometheus.yml"), config).unwrap();
    fs::copy(monitoring.join("rules.yml"), dir.join("rules.yml")).unwrap();
    for _attempt in 0..3 {
        let port = free_port();
        let mut cmd = Command::new(tool("PROMETHEUS", "prometheus"));
        cmd.arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn");
        let mut p = Proc::spawn("prometheus", cmd, dir.join("prometheus.log"));
        let ok = wait_for("prometheus ready", Duration::from_secs(30), || {
            if !p.alive() {
                return Some(false);
            }
            http_get(port, "/-/ready").filter(|(s, _)| *s == 200)?;
            Some(true)
        });
        if ok {
            return (p, port);
        }
    }
    panic!("prometheus did not start");
}

fn dashboard_exprs() -> Vec<String> {
    let path = repo_root().join("monitoring/grafana/dashboards/edgecache.json");
    let d: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(d["uid"], "edgecache-overview");
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        if p["type"] == "row" || p["type"] == "text" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "edge-prometheus", "{}", p["title"]);
        assert!(p["gridPos"]["w"].as_u64().unwrap() > 0);
        // Every panel says what its numbers are, and a second axis says it too.
        let unit = p["fieldConfig"]["defaults"]["unit"].as_str();
        assert!(
            unit.is_some_and(|u| !u.is_empty()),
            "panel {} has no unit",
            p["title"]
        );
        for o in p["fieldConfig"]["overrides"].as_array().unwrap() {
            let props = o["properties"].as_array().unwrap();
            let has = |id: &str| props.iter().any(|q| q["id"] == id);
            if has("custom.axisPlacement") {
                assert!(
                    has("unit"),
                    "panel {}: a right axis without a unit",
                    p["title"]
                );
            }
        }
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            // Grafana variables, substituted as Grafana would for "All" and a short range.
            let e = t["expr"].as_str().unwrap();
            out.push(e.replace("$edge", ".*").replace("$__rate_interval", "30s"));
        }
    }
    out
}

/// Parses every expression with PyPI's promql-parser when it is installed.
fn check_promql_parses(exprs: &[String]) {
    let probe = Command::new("python3")
        .args(["-c", "import promql_parser"])
        .stderr(Stdio::null())
        .status();
    if !matches!(probe, Ok(s) if s.success()) {
        println!("NOTICE: python3 with promql_parser not found; skipping the PromQL parse check");
        return;
    }
    let script = concat!(
        "import sys, promql_parser\n",
        "for e in sys.stdin.read().split(chr(0)):\n",
        "    if not e: continue\n",
        "    try: promql_parser.parse(e)\n",
        "    except Exception as x: sys.exit(f'{e}: {x}')\n",
    );
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exprs.join("\0").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "a dashboard expression does not parse: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check_compose_file() {
    let bin = "check-jsonschema";
    if !on_path(bin) {
        println!("NOTICE: check-jsonschema not on PATH; skipping the docker-compose.yml check");
        return;
    }
    let out = Command::new(bin)
        .args(["--builtin-schema", "vendor.compose-spec"])
        .arg(repo_root().join("docker-compose.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker-compose.yml is not valid: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn promtool_check_metrics(text: &str) {
    let mut child = Command::new(tool("PROMTOOL", "promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}"
    );
}

#[test]
fn exporter_prometheus_and_dashboard_end_to_end() {
    let tmp = TempDir::new("e2e");
    let (redis_dir, exp_dir, prom_dir) = (
        tmp.0.join("redis"),
        tmp.0.join("exporter"),
        tmp.0.join("prom"),
    );
    for d in [&redis_dir, &exp_dir, &prom_dir] {
        fs::create_dir_all(d).unwrap();
    }
    let (mut redis_proc, redis_port) = start_redis(&redis_dir);
    let (mut exporter, exp_port) = start_exporter(&exp_dir, redis_port);
    let (_prom, prom_port) = start_prometheus(&prom_dir, exp_port);

    // Static checks that need no data, while the first scrapes happen.
    let out = Command::new(tool("PROMTOOL", "promtool"))
        .args(["check", "config"])
        .arg(repo_root().join("monitoring/prometheus.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_compose_file();
    let exprs = dashboard_exprs();
    check_promql_parses(&exprs);

    // Prometheus sees the edge before any traffic: the baseline is zero.
    wait_value(prom_port, r#"edge_up{edge="e2e"}"#, 1.0);
    wait_value(prom_port, r#"edge_up{edge="ghost"}"#, 0.0);
    assert_eq!(
        prom_value(prom_port, r#"edge_records_total{edge="e2e"}"#),
        Some(0.0)
    );

    // The workload: 3 viewers × 8 recorded views, 4 plays, 5 explicit predictions.
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{redis_port}");
    let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
    let (mut records, mut tv) = (0, 0);
    for u in 0..3 {
        for i in 0..8 {
            let device = if i % 2 == 0 { "TV" } else { "phone" };
            tv += usize::from(device == "TV");
            let _: redis::Value = redis::cmd("EDGE.RECORD")
                .arg(format!("viewer:{u}"))
                .arg(format!("item:{}", (i + u) % 6))
                .arg("DURATION")
                .arg(600)
                .arg("DEVICE")
                .arg(device)
                .query(&mut c)
                .unwrap();
            records += 1;
        }
    }
    for p in 0..4 {
        let _: redis::Value = redis::cmd("EDGE.PLAY")
            .arg(format!("viewer:{}", p % 3))
            .arg(format!("item:{}", p + 1))
            .arg("DEVICE")
            .arg("TV")
            .query(&mut c)
            .unwrap();
        tv += 1;
    }
    for p in 0..5 {
        let _: redis::Value = redis::cmd("EDGE.PREDICT")
            .arg(format!("viewer:{}", p % 3))
            .arg("K")
            .arg(3)
            .query(&mut c)
            .unwrap();
    }

    // Counters moved by exactly the workload (a play also records a view, and may predict
    // for its prefetches, so predictions are at least the explicit ones).
    let e = r#"{edge="e2e"}"#;
    wait_value(
        prom_port,
        &format!("edge_records_total{e}"),
        (records + 4) as f64,
    );
    wait_value(prom_port, &format!("edge_plays_total{e}"), 4.0);
    wait_value(
        prom_port,
        &format!("edge_cache_hits_total{e} + edge_cache_misses_total{e}"),
        4.0,
    );
    wait_value(
        prom_port,
        r#"edge_device_views_total{edge="e2e",device="TV"}"#,
        tv as f64,
    );
    wait_value(
        prom_port,
        r#"edge_command_calls_total{edge="e2e",command="edge.record"}"#,
        records as f64,
    );
    wait_value(
        prom_port,
        r#"edge_command_calls_total{edge="e2e",command="edge.predict"}"#,
        5.0,
    );
    let predictions = prom_value(prom_port, &format!("edge_predictions_total{e}")).unwrap();
    assert!(predictions >= 5.0, "predictions {predictions}");
    wait_value(
        prom_port,
        &format!("edge_predict_latency_seconds_count{e}"),
        predictions,
    );
    assert_eq!(prom_value(prom_port, &format!("edge_users{e}")), Some(3.0));
    assert_eq!(prom_value(prom_port, &format!("edge_items{e}")), Some(6.0));
    assert!(prom_value(prom_port, &format!("edge_model_memory_bytes{e}")).unwrap() > 0.0);
    assert_eq!(
        prom_value(
            prom_port,
            r#"edge_module_info{edge="e2e",cache_policy="predictive"}"#
        ),
        Some(1.0)
    );
    // A p99 in seconds, below the top bucket (10 ms).
    let p99 = prom_value(
        prom_port,
        r#"histogram_quantile(0.99, sum by (le) (edge_predict_latency_seconds_bucket{edge="e2e"}))"#,
    )
    .unwrap();
    assert!(p99 > 0.0 && p99 <= 0.01, "p99 {p99}");

    // The exposition itself is lint-clean, and every family the live module gives has
    // its catalogued HELP, not the stand-in a field newer than the catalog gets.
    let (status, metrics) = http_get(exp_port, "/metrics").unwrap();
    assert_eq!(status, 200);
    promtool_check_metrics(&metrics);
    let helps: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("# HELP "))
        .collect();
    assert!(helps.len() > 40, "{metrics}");
    for help in helps {
        assert!(
            !help.contains(exporter::catalog::UNDOCUMENTED),
            "a metric without real help: {help}"
        );
    }
    // The import time is a timestamp (0: never imported), under its timestamp name.
    assert!(
        metrics
            .lines()
            .any(|l| l == "edge_federation_last_import_timestamp_seconds{edge=\"e2e\"} 0"),
        "{metrics}"
    );
    assert!(!metrics.contains("edge_federation_last_import_seconds"));
    // Self-metrics: the build, the module's version, and failures by kind (the ghost
    // edge refuses every connection; the live one never fails).
    let build = format!(
        r#"edge_exporter_build_info{{version="{}"}}"#,
        exporter::metrics::EXPORTER_VERSION
    );
    assert_eq!(prom_value(prom_port, &build), Some(1.0));
    assert_eq!(
        prom_value(
            prom_port,
            r#"edge_module_info{edge="e2e",cache_policy="predictive",version="1"}"#
        ),
        Some(1.0)
    );
    let refused = r#"edge_exporter_scrape_errors_total{edge="ghost",kind="connect"}"#;
    assert!(prom_value(prom_port, refused).unwrap() >= 1.0);
    assert_eq!(
        prom_value(
            prom_port,
            r#"sum(edge_exporter_scrape_errors_total{edge="e2e"})"#
        ),
        Some(0.0)
    );
    assert!(prom_value(prom_port, "edge_exporter_scrape_duration_seconds").unwrap() > 0.0);

    // Every dashboard expression returns data from the live Prometheus (after a few more
    // scrapes, so the rate windows hold at least two samples of the new values).
    sleep(Duration::from_secs(2));
    for expr in &exprs {
        let r = prom_query(prom_port, expr);
        assert!(!r.is_empty(), "dashboard query returned no data: {expr}");
    }

    // Killing Redis flips edge_up to 0; the exporter keeps serving.
    redis_proc.kill();
    wait_for("edge_up 0 on /metrics", Duration::from_secs(10), || {
        let (s, m) = http_get(exp_port, "/metrics")?;
        (s == 200 && m.contains("edge_up{edge=\"e2e\"} 0")).then_some(())
    });
    wait_value(prom_port, r#"edge_up{edge="e2e"}"#, 0.0);
    let (status, health) = http_get(exp_port, "/health").unwrap();
    assert_eq!(status, 200);
    let (status, metrics) = http_get(exp_port, "/metrics").unwrap();
    assert_eq!(status, 200);
    promtool_check_metrics(&metrics);
    assert!(exporter.alive(), "exporter died when Redis went away");

    // The password never leaves the exporter.
    for (what, text) in [
        ("/metrics", metrics),
        ("/health", health),
        ("exporter log", exporter.log()),
    ] {
        assert!(!text.contains(PASSWORD), "password leaked in {what}");
    }
}

/// `rediss://` with AUTH against a TLS-only redis-server whose self-signed certificate is
/// trusted through `--tls-ca-cert` (skipped without the openssl CLI).
#[test]
fn tls_target_with_private_ca() {
    if !on_path("openssl") {
        println!("NOTICE: openssl CLI not found; skipping the TLS test");
        return;
    }
    let tmp = TempDir::new("tls");
    let dir = &tmp.0;
    // A private CA and a server certificate it signs (webpki refuses a self-signed leaf).
    fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         extendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: [Vec<&str>; 3] = [
        [
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca-key.pem", "-out", "ca.pem"],
        ]
        .concat(),
        [
            &["req"][..],
            &ec,
            &["-keyout", "key.pem", "-out", "req.pem"],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "req.pem",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-extfile",
            "ext.cnf",
        ],
    ];
    for (i, args) in steps.iter().enumerate() {
        let subj = if i == 0 {
            "/CN=edge-test-ca"
        } else {
            "/CN=127.0.0.1"
        };
        let mut cmd = Command::new("openssl");
        cmd.current_dir(dir).args(args).args(["-days", "1"]);
        if i < 2 {
            cmd.args(["-subj", subj]);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut started = None;
    for _attempt in 0..3 {
        let port = free_port();
        let mut cmd = Command::new(tool("REDIS_SERVER", "redis-server"));
        cmd.current_dir(dir)
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--tls-cert-file", "cert.pem", "--tls-key-file", "key.pem"])
            .args(["--tls-auth-clients", "no", "--requirepass", PASSWORD])
            .arg("--loadmodule")
            .arg(module_path());
        let mut p = Proc::spawn("redis-server (TLS)", cmd, dir.join("redis.log"));
        sleep(Duration::from_millis(300));
        let log_ready = wait_for("TLS redis-server", Duration::from_secs(10), || {
            if !p.alive() {
                return Some(false);
            }
            p.log().contains("Ready to accept").then_some(true)
        });
        if log_ready {
            started = Some((p, port));
            break;
        }
    }
    let (_redis, port) = started.expect("TLS redis-server did not start");
    let exp_port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_exporter"));
    cmd.args(["--listen", &format!("127.0.0.1:{exp_port}")])
        .args(["--redis", &format!("tls=rediss://127.0.0.1:{port}")])
        .arg("--tls-ca-cert")
        .arg(dir.join("ca.pem"))
        .env("REDIS_PASSWORD", PASSWORD)
        .env_remove("REDIS_ADDR")
        .env_remove("REDIS_USER");
    let mut exporter = Proc::spawn("exporter (TLS)", cmd, dir.join("exporter.log"));
    let metrics = wait_for("edge_up 1 over TLS", Duration::from_secs(15), || {
        assert!(exporter.alive(), "exporter exited");
        let (s, m) = http_get(exp_port, "/metrics")?;
        (s == 200 && m.contains("edge_up{edge=\"tls\"} 1")).then_some(m)
    });
    assert!(metrics.contains("edge_users{edge=\"tls\"} 0"), "{metrics}");
    assert!(!metrics.contains(PASSWORD));
    assert!(!exporter.log().contains(PASSWORD));
}

/// A plain redis-server (same AUTH, no module): what an edge looks like when the module
/// failed to load or the exporter points at the wrong Redis.
fn start_plain_redis(dir: &Path) -> (Proc, u16) {
    spawn_redis(dir, None, "redis-server (no module)")
}

/// The status code of a raw HTTP response, if it has a status line.
fn status_of(response: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(response);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// Issue 12: a request announcing a 100 GB body made tiny_http try to allocate it after
/// answering, and the abort took the whole exporter down. The body must be refused
/// without being buffered, and the exporter must keep serving.
#[test]
fn a_huge_content_length_does_not_kill_the_exporter() {
    let tmp = TempDir::new("cl");
    let ghost = free_port();
    let (mut exporter, port) =
        spawn_exporter(&tmp.0, &format!("ghost=redis://127.0.0.1:{ghost}"), 1);

    let requests: [&[u8]; 3] = [
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999999999\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999999999\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffff\r\n",
    ];
    for raw in requests {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(raw).unwrap();
        let mut answer = Vec::new();
        // The exporter answers and closes; a timeout here means it kept waiting for a body.
        let read = s.read_to_end(&mut answer);
        sleep(Duration::from_millis(200));
        assert!(
            exporter.alive(),
            "the exporter died after {:?}",
            String::from_utf8_lossy(raw)
        );
        assert!(
            read.is_ok(),
            "no close after {:?}: {read:?}",
            String::from_utf8_lossy(raw)
        );
        assert_eq!(
            status_of(&answer),
            Some(413),
            "{:?} → {:?}",
            String::from_utf8_lossy(raw),
            String::from_utf8_lossy(&answer)
        );
    }
    let (status, body) = http_get(port, "/health").expect("/health after the huge bodies");
    assert_eq!(status, 200);
    assert!(body.starts_with("ok\n"), "{body}");
    assert!(exporter.alive());
}

/// Issue 12: with 40 scrapes of a hung edge in flight, `/health` took 22 s. Liveness
/// probes must never queue behind scrapes.
#[test]
fn health_answers_within_a_second_while_scrapes_of_a_hung_edge_are_in_flight() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let tmp = TempDir::new("hung");
    // An "edge" that accepts connections and never answers, held open for at most 30 s.
    let hung = TcpListener::bind("127.0.0.1:0").unwrap();
    let hung_addr = hung.local_addr().unwrap();
    hung.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let holder = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut held = Vec::new();
            while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(30) {
                match hung.accept() {
                    Ok((c, _)) => held.push(c),
                    Err(_) => sleep(Duration::from_millis(5)),
                }
            }
            held.len()
        })
    };
    let (mut exporter, port) = spawn_exporter(&tmp.0, &format!("hung=redis://{hung_addr}"), 4);

    let scrapes: Vec<_> = (0..40)
        .map(|_| std::thread::spawn(move || http_get(port, "/metrics")))
        .collect();
    sleep(Duration::from_millis(500)); // all 40 are now waiting on the hung edge
    for _ in 0..3 {
        let start = Instant::now();
        let (status, body) = http_get(port, "/health").expect("/health answers");
        let took = start.elapsed();
        assert_eq!(status, 200, "{body}");
        assert!(
            took < Duration::from_secs(1),
            "/health took {took:?} behind scrapes"
        );
        sleep(Duration::from_millis(300));
    }
    for s in scrapes {
        let (status, metrics) = s.join().unwrap().expect("every scrape is answered");
        assert_eq!(status, 200);
        assert!(
            metrics.contains("edge_up{edge=\"hung\"} 0"),
            "a hung edge is down:\n{metrics}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    assert!(
        holder.join().unwrap() >= 1,
        "the exporter never reached the edge"
    );
    assert!(exporter.alive());
}

/// Issue 12: a Redis without the module answered `INFO edge` with nothing, and that
/// counted as up, so `EdgeDown` never fired for an edge that cannot serve EDGE commands.
#[test]
fn a_redis_without_the_module_is_down() {
    let tmp = TempDir::new("plain");
    let (redis_dir, exp_dir) = (tmp.0.join("redis"), tmp.0.join("exporter"));
    for d in [&redis_dir, &exp_dir] {
        fs::create_dir_all(d).unwrap();
    }
    let (_redis, redis_port) = start_plain_redis(&redis_dir);
    let (exporter, port) = spawn_exporter(
        &exp_dir,
        &format!("plain=redis://127.0.0.1:{redis_port}"),
        1,
    );
    let (status, metrics) = http_get(port, "/metrics").expect("/metrics answers");
    assert_eq!(status, 200);
    assert!(
        metrics.lines().any(|l| l == "edge_up{edge=\"plain\"} 0"),
        "a Redis without the module must be down:\n{metrics}"
    );
    assert!(!metrics.contains("edge_module_info{"), "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l == "edge_exporter_scrape_errors_total{edge=\"plain\",kind=\"no_module\"} 1"),
        "the failure counts as no_module:\n{metrics}"
    );
    promtool_check_metrics(&metrics);
    assert!(
        exporter.log().contains("module"),
        "the log should say why the edge is down:\n{}",
        exporter.log()
    );
    assert!(!exporter.log().contains(PASSWORD));
}

/// A `--listen` address that cannot be bound is reported by `main`, which exits with 1
/// before serving anything.
#[test]
fn a_listen_address_in_use_is_reported_before_serving() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_exporter"))
        .args(["--listen", &addr.to_string()])
        .args(["--redis", "redis://127.0.0.1:1"])
        .env_remove("REDIS_ADDR")
        .env_remove("EXPORTER_LISTEN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(!err.contains("serving"), "{err}");
}
