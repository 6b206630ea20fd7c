//! End to end for `loadgen http`: the real binary against a real edge-server (over a
//! directory origin) in front of a real redis-server with the module, all on loopback.
//! The edge-server binary comes from the same target directory (`cargo build -p
//! edge-server` first, or `$EDGE_SERVER`), as the module's `.so` does.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use common::{json, loadgen, TempDir};

/// Bytes of every title in the origin.
const SIZE: usize = 4096;

/// `$EDGE_SERVER`, else `edge-server` beside the module in this test's target profile.
fn edge_server_path() -> PathBuf {
    if let Some(p) = std::env::var_os("EDGE_SERVER") {
        return PathBuf::from(p);
    }
    let bin = common::module_path().with_file_name("edge-server");
    assert!(
        bin.exists(),
        "edge-server not found at {}: run `cargo build -p edge-server` first (or set EDGE_SERVER)",
        bin.display()
    );
    bin
}

/// The edge-server process, killed on drop.
struct Edge {
    child: Child,
    addr: SocketAddr,
}

impl Edge {
    fn start(redis: &edge_tests::Server, origin: &std::path::Path) -> Edge {
        let mut child = Command::new(edge_server_path())
            .args(["--redis", &redis.url(), "--origin"])
            .arg(origin)
            .args(["--store", "memory", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start edge-server");
        let addr = edge_tests::announced_addr(&mut child);
        Edge { child, addr }
    }

    /// The edge's `/api/stats`.
    fn stats(&self) -> serde_json::Value {
        let mut s = TcpStream::connect(self.addr).unwrap();
        write!(
            s,
            "GET /api/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let body = out.split_once("\r\n\r\n").expect("a reply with a body").1;
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {out}"))
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `loadgen http` without asserting success.
fn http(log: &std::path::Path, url: &str, report: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("http")
        .arg(log)
        .args([
            "--url",
            url,
            "--concurrency",
            "4",
            "--timeout-ms",
            "5000",
            "--json",
        ])
        .arg(report)
        .output()
        .expect("run loadgen")
}

/// The log's content ids, one per view.
fn views(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["content_id"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn u(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn loadgen_http_reports_what_the_edge_served_and_fails_when_it_cannot() {
    let dir = TempDir::new("http");
    let log = dir.join("views.jsonl");
    loadgen(&[
        "simulate",
        "--users",
        "60",
        "--items",
        "150",
        "--events",
        "1200",
        "--seed",
        "3",
        "--out",
        log.to_str().unwrap(),
    ]);
    let viewed = views(&log);
    let origin = dir.join("origin");
    std::fs::create_dir_all(&origin).unwrap();
    for item in &viewed {
        std::fs::write(origin.join(item), vec![b'x'; SIZE]).unwrap();
    }
    // The cache holds 30 titles: some views hit, some miss.
    let redis = edge_tests::Server::start(
        edge_tests::ServerOpts::new()
            .module_arg("cache-capacity-bytes", &(30 * SIZE).to_string())
            .module_arg("item-size-bytes", &SIZE.to_string()),
    );
    let edge = Edge::start(&redis, &origin);
    let url = format!("http://{}", edge.addr);
    let report_path = dir.join("report.json");
    let out = http(&log, &url, &report_path);
    assert!(
        out.status.success(),
        "loadgen http failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&report_path);
    let stats = edge.stats();
    let n = viewed.len() as u64;
    assert_eq!(u(&report["requests"]), n, "one request per view");
    let outcomes = report["outcomes"].as_object().unwrap();
    let count = |k: &str| outcomes.get(k).map_or(0, |o| u(&o["requests"]));
    let (hit, pre, miss) = (count("HIT"), count("PREFETCHED-HIT"), count("MISS"));
    assert_eq!(hit + pre + miss, n, "every view got content: {report}");
    assert!(report["errors"].as_object().unwrap().is_empty());
    let bytes: u64 = outcomes.values().map(|o| u(&o["bytes"])).sum();
    assert_eq!(bytes, n * SIZE as u64, "every body whole");
    // The edge counted the same requests and outcomes.
    assert_eq!(u(&stats["misses"]), miss, "{stats}");
    assert_eq!(u(&stats["hits"]), hit + pre, "{stats}");
    assert_eq!(u(&stats["prefetched_hits"]), pre, "{stats}");
    assert!(
        hit + pre > 0 && miss > 0,
        "a mix of hits and misses: {report}"
    );
    // The byte hit ratio is the edge's own, and the origin bytes are what it fetched.
    let edge_bytes = u(&stats["edge_bytes"]);
    let origin_served = u(&stats["origin_served_bytes"]);
    assert_eq!(edge_bytes + origin_served, bytes);
    let ratio = report["byte_hit_ratio"].as_f64().unwrap();
    assert!(
        (ratio - edge_bytes as f64 / bytes as f64).abs() < 1e-9,
        "{ratio} vs the edge's {edge_bytes}/{bytes}"
    );
    assert!((ratio - stats["byte_hit_ratio"].as_f64().unwrap()).abs() < 1e-9);
    assert_eq!(
        u(&report["origin_bytes"]),
        u(&stats["origin_fetched_bytes"])
    );
    assert!(u(&report["origin_bytes"]) >= miss * SIZE as u64);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("byte hit ratio"),
        "a text report too"
    );

    // A title the origin lost: those views fail, are listed, and the run exits non-zero.
    let lost = &viewed[0];
    std::fs::remove_file(origin.join(lost)).unwrap();
    let lost_views = viewed.iter().filter(|i| *i == lost).count() as u64;
    let out = http(&log, &url, &report_path);
    let report = json(&report_path);
    let errors = report["errors"].as_object().unwrap();
    assert!(!out.status.success(), "failed requests make a failed run");
    // A view of the lost title that the edge still holds is a hit; the rest are 404s.
    let not_found = errors.get("HTTP 404").map_or(0, u);
    assert!(
        not_found >= 1 && not_found <= lost_views,
        "{not_found} of {lost_views}: {report}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("got no content"));

    // No edge at all: a clear error and a non-zero exit, not a report of zeros.
    let port = edge.addr.port();
    drop(edge);
    let out = http(
        &log,
        &format!("http://127.0.0.1:{port}"),
        &dir.join("none.json"),
    );
    assert!(!out.status.success(), "a run against nothing must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("api/stats"), "{err}");
}
