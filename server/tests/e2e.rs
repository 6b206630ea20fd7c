//! End to end: redis-server with the module, an origin (a directory, or an HTTP origin
//! served by this test), the `edge-server` binary, and a real HTTP client, all on loopback.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edge_tests::{Server, ServerOpts};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// The edge-server binary, killed on drop.
struct Edge {
    child: Child,
    addr: SocketAddr,
}

impl Edge {
    fn start(redis: &Server, origin: &str, store: &str, extra: &[&str]) -> Edge {
        let mut child = Command::new(env!("CARGO_BIN_EXE_edge-server"))
            .args(["--redis", &format!("redis://127.0.0.1:{}", redis.port())])
            .args([
                "--origin",
                origin,
                "--store",
                store,
                "--listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start edge-server");
        let addr = edge_tests::announced_addr(&mut child);
        Edge { child, addr }
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One response, read whole.
struct Resp {
    status: StatusCode,
    headers: hyper::HeaderMap,
    body: Bytes,
}

impl Resp {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map_or("", |v| v.to_str().unwrap_or(""))
    }
}

async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send
        .send_request(req.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    Resp {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn get(rt: &tokio::runtime::Runtime, edge: &Edge, path: &str, headers: &[(&str, &str)]) -> Resp {
    rt.block_on(request(edge.addr, "GET", path, headers))
}

/// A metric's value from `/metrics` (summed over label sets matching `labels`).
fn metric(rt: &tokio::runtime::Runtime, edge: &Edge, name: &str, labels: &str) -> f64 {
    let text = get(rt, edge, "/metrics", &[]).body;
    String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| l.contains(labels))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// Deterministic content of `len` bytes for an item.
fn content(item: &str, len: usize) -> Vec<u8> {
    let seed = item
        .bytes()
        .fold(7u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
    (0..len)
        .map(|i| seed.wrapping_add((i * 7 % 251) as u8))
        .collect()
}

fn origin_dir(items: &[(&str, usize)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "edge-origin-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for (item, len) in items {
        std::fs::write(dir.join(item), content(item, *len)).unwrap();
    }
    dir
}

fn rand_suffix() -> u64 {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst) as u64
}

fn redis() -> Server {
    Server::start(ServerOpts::new().module_arg("cache-capacity-bytes", "1000000"))
}

#[test]
fn misses_then_hits_serve_the_origins_bytes() {
    let rt = runtime();
    let redis = redis();
    let origin = origin_dir(&[("C1", 5000), ("C2", 300)]);
    let edge = Edge::start(&redis, origin.to_str().unwrap(), "memory", &[]);
    let first = get(&rt, &edge, "/content/C1", &[("x-viewer", "U1")]);
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("x-edge-cache"), "MISS");
    assert_eq!(&first.body[..], &content("C1", 5000)[..]);
    assert_eq!(first.header("content-length"), "5000");
    let again = get(&rt, &edge, "/content/C1?viewer=U2", &[]);
    assert_eq!(again.header("x-edge-cache"), "HIT");
    assert_eq!(again.body, first.body);
    // A streamed miss has no validator yet (the edge's is a hash of the whole object).
    assert!(first.header("etag").is_empty());
    assert!(!again.header("etag").is_empty());
    // The module heard both views, with the real size.
    let mut con = redis.connect();
    let plays: String = redis::cmd("INFO").arg("edge").query(&mut con).unwrap();
    assert!(plays.contains("edge_plays_total:2"), "{plays}");
    // Ranges, conditional requests, HEAD.
    let part = get(
        &rt,
        &edge,
        "/content/C1",
        &[("x-viewer", "U1"), ("range", "bytes=10-19")],
    );
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&part.body[..], &content("C1", 5000)[10..20]);
    assert_eq!(part.header("content-range"), "bytes 10-19/5000");
    let tail = get(
        &rt,
        &edge,
        "/content/C1",
        &[("x-viewer", "U1"), ("range", "bytes=-100")],
    );
    assert_eq!(&tail.body[..], &content("C1", 5000)[4900..]);
    let past = get(
        &rt,
        &edge,
        "/content/C1",
        &[("x-viewer", "U1"), ("range", "bytes=9000-")],
    );
    assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);
    let etag = again.header("etag").to_owned();
    let same = get(
        &rt,
        &edge,
        "/content/C1",
        &[("x-viewer", "U1"), ("if-none-match", &etag)],
    );
    assert_eq!(same.status, StatusCode::NOT_MODIFIED);
    assert!(same.body.is_empty());
    let head = rt.block_on(request(edge.addr, "HEAD", "/content/C2", &[]));
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-length"), "300");
    assert!(head.body.is_empty());
    // Bytes by source add up: one miss of 5000 from the origin, the rest from the edge.
    assert_eq!(
        metric(
            &rt,
            &edge,
            "edge_server_served_bytes_total",
            "source=\"origin\""
        ),
        5000.0
    );
    assert_eq!(
        metric(
            &rt,
            &edge,
            "edge_server_served_bytes_total",
            "source=\"edge\""
        ),
        (5000 + 10 + 100) as f64
    );
    // The metrics pass Prometheus's own lint.
    let text = get(&rt, &edge, "/metrics", &[]).body;
    let mut lint = Command::new(std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into()))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus)");
    std::io::Write::write_all(&mut lint.stdin.take().unwrap(), &text).unwrap();
    let out = lint.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(origin).unwrap();
}

#[test]
fn bad_requests_get_clear_errors() {
    let rt = runtime();
    let redis = redis();
    let origin = origin_dir(&[("C1", 10)]);
    let edge = Edge::start(&redis, origin.to_str().unwrap(), "memory", &[]);
    let r = get(&rt, &edge, "/content/C1", &[]);
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&r.body).contains("X-Viewer"));
    let r = get(&rt, &edge, "/content/C1", &[("x-viewer", "a b")]);
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let long = "v".repeat(2000);
    let r = get(&rt, &edge, "/content/C1", &[("x-viewer", &long)]);
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = get(&rt, &edge, "/content/..%2fetc", &[("x-viewer", "U1")]);
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = get(&rt, &edge, "/content/NOPE", &[("x-viewer", "U1")]);
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = rt.block_on(request(edge.addr, "DELETE", "/content/C1", &[]));
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    // None of these was a view.
    let mut con = redis.connect();
    let info: String = redis::cmd("INFO").arg("edge").query(&mut con).unwrap();
    assert!(info.contains("edge_plays_total:0"), "{info}");
    std::fs::remove_dir_all(origin).unwrap();
}

/// The limits of the accept loop shared with the exporter (`edge-httpd`) hold here too: a
/// request announcing a body is refused unread and its connection closed, an oversized
/// head gets 431, neither reaches the module, and the edge keeps serving.
#[test]
fn bodies_and_oversized_heads_are_refused_before_any_view() {
    use std::io::{Read, Write};
    let rt = runtime();
    let redis = redis();
    let origin = origin_dir(&[("C1", 10)]);
    let edge = Edge::start(&redis, origin.to_str().unwrap(), "memory", &[]);
    let raw = |request: String| {
        let mut s = std::net::TcpStream::connect(edge.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).expect("an answer and a close");
        String::from_utf8_lossy(&out).into_owned()
    };
    let head = "GET /content/C1 HTTP/1.1\r\nHost: x\r\nX-Viewer: U1\r\n";
    for extra in [
        "Content-Length: 99999999999\r\n\r\n",
        "Transfer-Encoding: chunked\r\n\r\n7fffffff\r\n",
    ] {
        let r = raw(format!("{head}{extra}"));
        assert!(r.starts_with("HTTP/1.1 413 "), "{extra:?} -> {r:?}");
    }
    let big = format!("{head}X-Big: {}\r\n\r\n", "a".repeat(20 * 1024));
    let r = raw(big);
    assert!(r.starts_with("HTTP/1.1 431 "), "{r:?}");
    let mut con = redis.connect();
    let info: String = redis::cmd("INFO").arg("edge").query(&mut con).unwrap();
    assert!(info.contains("edge_plays_total:0"), "{info}");
    let r = get(&rt, &edge, "/content/C1", &[("x-viewer", "U1")]);
    assert_eq!(r.status, StatusCode::OK);
    std::fs::remove_dir_all(origin).unwrap();
}

/// An HTTP origin: objects by path, a delay before each answer, failures on demand, and a
/// count of GETs by path.
#[derive(Default)]
struct TestOrigin {
    objects: HashMap<String, Bytes>,
    delay: Duration,
    fail: Vec<String>,
    gets: Mutex<HashMap<String, usize>>,
}

impl TestOrigin {
    fn gets(&self, item: &str) -> usize {
        self.gets.lock().unwrap().get(item).copied().unwrap_or(0)
    }
}

fn serve_origin(rt: &tokio::runtime::Runtime, origin: Arc<TestOrigin>) -> SocketAddr {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let origin = Arc::clone(&origin);
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let origin = Arc::clone(&origin);
                async move {
                    let item = req.uri().path().trim_start_matches('/').to_owned();
                    if req.method() == hyper::Method::GET {
                        *origin.gets.lock().unwrap().entry(item.clone()).or_default() += 1;
                    }
                    tokio::time::sleep(origin.delay).await;
                    let mut resp = Response::new(Full::new(Bytes::new()));
                    if origin.fail.contains(&item) {
                        *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                    } else if let Some(b) = origin.objects.get(&item) {
                        resp.headers_mut().insert("content-length", b.len().into());
                        if req.method() == hyper::Method::GET {
                            *resp.body_mut() = Full::new(b.clone());
                        }
                    } else {
                        *resp.status_mut() = StatusCode::NOT_FOUND;
                    }
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

#[test]
fn concurrent_misses_of_one_item_fetch_it_once_and_failures_store_nothing() {
    let rt = runtime();
    let redis = redis();
    let mut o = TestOrigin {
        delay: Duration::from_millis(300),
        fail: vec!["BROKEN".into()],
        ..TestOrigin::default()
    };
    o.objects
        .insert("HOT".into(), Bytes::from(content("HOT", 20_000)));
    let origin = Arc::new(o);
    let addr = serve_origin(&rt, Arc::clone(&origin));
    let edge = Edge::start(
        &redis,
        &format!("http://{addr}"),
        "memory",
        &["--origin-timeout-ms", "2000"],
    );
    let replies: Vec<Resp> = rt.block_on(async {
        let tasks: Vec<_> = (0..12)
            .map(|v| {
                let a = edge.addr;
                tokio::spawn(async move {
                    request(a, "GET", &format!("/content/HOT?viewer=V{v}"), &[]).await
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    for r in &replies {
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(&r.body[..], &content("HOT", 20_000)[..]);
    }
    assert_eq!(
        origin.gets("HOT"),
        1,
        "one origin fetch for twelve concurrent misses"
    );
    let r = get(&rt, &edge, "/content/BROKEN", &[("x-viewer", "U1")]);
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(String::from_utf8_lossy(&r.body).contains("origin"));
    assert_eq!(
        metric(&rt, &edge, "edge_server_store_items", ""),
        1.0,
        "only HOT is stored"
    );
    drop(edge);
    // An origin slower than the deadline: 504, and nothing stored.
    let edge = Edge::start(
        &redis,
        &format!("http://{addr}"),
        "memory",
        &["--origin-timeout-ms", "50"],
    );
    let r = get(&rt, &edge, "/content/HOT", &[("x-viewer", "U1")]);
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(metric(&rt, &edge, "edge_server_store_items", ""), 0.0);
}

#[test]
fn prefetches_are_fetched_in_the_background_and_a_directory_store_survives_a_restart() {
    let rt = runtime();
    // A fixed prefetch of the top 3 after every view (no budget controller to warm up);
    // items the module has not seen a size for are taken as 1000 bytes.
    let mut redis = Server::start(
        ServerOpts::new()
            .module_arg("cache-capacity-bytes", "1000000")
            .module_arg("item-size-bytes", "1000")
            .module_arg("prefetch-budget", "0"),
    );
    let items: Vec<(String, usize)> = (0..12).map(|i| (format!("S{i}"), 1000 + i)).collect();
    let refs: Vec<(&str, usize)> = items.iter().map(|(n, l)| (n.as_str(), *l)).collect();
    let origin = origin_dir(&refs);
    let store = origin.with_extension("store");
    // Viewers watched the series in order elsewhere: the module learned S{i} -> S{i+1}.
    for v in 0..8 {
        for (item, _) in &items {
            redis.q::<()>(redis::cmd("EDGE.RECORD").arg(format!("W{v}")).arg(item));
        }
    }
    let edge = Edge::start(
        &redis,
        origin.to_str().unwrap(),
        store.to_str().unwrap(),
        &[],
    );
    let r = get(&rt, &edge, "/content/S0", &[("x-viewer", "V1")]);
    assert_eq!(r.header("x-edge-cache"), "MISS");
    // The module prefetched what follows S0; the server fetches it in the background.
    let fetched = (0..200).find_map(|_| {
        std::thread::sleep(Duration::from_millis(20));
        let n = metric(
            &rt,
            &edge,
            "edge_server_origin_fetches_total",
            "reason=\"prefetch\"",
        );
        (n > 0.0).then_some(n)
    });
    assert!(fetched.is_some(), "no prefetch reached the store");
    let next = get(&rt, &edge, "/content/S1", &[("x-viewer", "V1")]);
    assert_eq!(next.header("x-edge-cache"), "PREFETCHED-HIT");
    assert_eq!(&next.body[..], &content("S1", 1001)[..]);
    assert_eq!(
        metric(&rt, &edge, "edge_server_prefetch_used_bytes_total", ""),
        1001.0
    );
    assert_eq!(
        metric(
            &rt,
            &edge,
            "edge_server_origin_fetches_total",
            "reason=\"miss\""
        ),
        1.0
    );
    let held = stored(&store);
    assert!(held.iter().any(|(i, _)| i == "S0") && held.iter().any(|(i, _)| i == "S1"));
    drop(edge);
    // A restarted server finds what it held: a hit, with no origin fetch.
    let edge = Edge::start(
        &redis,
        origin.to_str().unwrap(),
        store.to_str().unwrap(),
        &[],
    );
    let r = get(&rt, &edge, "/content/S0", &[("x-viewer", "V9")]);
    assert_eq!(r.header("x-edge-cache"), "HIT");
    assert_eq!(&r.body[..], &content("S0", 1000)[..]);
    assert_eq!(
        metric(&rt, &edge, "edge_server_origin_fetches_total", ""),
        0.0
    );
    drop(edge);
    std::fs::remove_dir_all(origin).unwrap();
    std::fs::remove_dir_all(store).unwrap();
}

fn stored(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn the_store_keeps_its_byte_bound() {
    let rt = runtime();
    let redis = redis();
    let items: Vec<(String, usize)> = (0..20).map(|i| (format!("B{i}"), 1000)).collect();
    let refs: Vec<(&str, usize)> = items.iter().map(|(n, l)| (n.as_str(), *l)).collect();
    let origin = origin_dir(&refs);
    let edge = Edge::start(
        &redis,
        origin.to_str().unwrap(),
        "memory",
        &["--max-store-bytes", "5000"],
    );
    for (item, _) in &items {
        let r = get(
            &rt,
            &edge,
            &format!("/content/{item}"),
            &[("x-viewer", "U1")],
        );
        assert_eq!(r.status, StatusCode::OK);
        assert!(metric(&rt, &edge, "edge_server_store_bytes", "") <= 5000.0);
    }
    assert_eq!(metric(&rt, &edge, "edge_server_store_items", ""), 5.0);
    std::fs::remove_dir_all(origin).unwrap();
}

#[test]
fn the_store_holds_what_the_modules_cache_holds() {
    let rt = runtime();
    // A cache of about six objects, so the module evicts all the time.
    let mut redis = Server::start(
        ServerOpts::new()
            .module_arg("cache-capacity-bytes", "6000")
            .module_arg("item-size-bytes", "1000")
            .module_arg("prefetch-budget", "2"),
    );
    let items: Vec<(String, usize)> = (0..30).map(|i| (format!("K{i}"), 900 + 7 * i)).collect();
    let refs: Vec<(&str, usize)> = items.iter().map(|(n, l)| (n.as_str(), *l)).collect();
    let origin = origin_dir(&refs);
    let edge = Edge::start(
        &redis,
        origin.to_str().unwrap(),
        "memory",
        &["--max-store-bytes", "1000000"],
    );
    let mut rng = 11u64;
    for _ in 0..300 {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let item = &items[((rng >> 33) % 12 + (rng >> 50) % 19) as usize % 30].0;
        let viewer = format!("V{}", (rng >> 20) % 9);
        let r = get(
            &rt,
            &edge,
            &format!("/content/{item}"),
            &[("x-viewer", &viewer)],
        );
        assert_eq!(r.status, StatusCode::OK);
        // Let the background prefetches of this view land, as a viewer's think time would.
        let mut last = -1.0;
        for _ in 0..50 {
            let n = metric(&rt, &edge, "edge_server_origin_fetches_total", "");
            if n == last {
                break;
            }
            last = n;
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let cache_items = redis.edge_stat("edge_cache_items");
    let cache_bytes = redis.edge_stat("edge_cache_bytes");
    assert!(
        cache_items >= 3,
        "the module's cache holds {cache_items} items"
    );
    assert_eq!(
        metric(&rt, &edge, "edge_server_store_items", "") as u64,
        cache_items
    );
    assert_eq!(
        metric(&rt, &edge, "edge_server_store_bytes", "") as u64,
        cache_bytes
    );
    assert!(
        metric(
            &rt,
            &edge,
            "edge_server_origin_fetches_total",
            "reason=\"prefetch\""
        ) > 0.0
    );
    std::fs::remove_dir_all(origin).unwrap();
}

#[test]
fn a_restarted_store_keeps_only_what_the_modules_cache_holds() {
    let rt = runtime();
    let redis = redis();
    let origin = origin_dir(&[("A1", 100), ("A2", 200)]);
    let store = origin.with_extension("resync");
    let edge = Edge::start(
        &redis,
        origin.to_str().unwrap(),
        store.to_str().unwrap(),
        &[],
    );
    assert_eq!(
        get(&rt, &edge, "/content/A1", &[("x-viewer", "U1")]).status,
        StatusCode::OK
    );
    drop(edge);
    // Bytes the module never decided to keep (left by another run, or dropped while the
    // server was down) are dropped at start; what the module's cache holds stays.
    std::fs::write(store.join("GHOST"), b"stale").unwrap();
    let edge = Edge::start(
        &redis,
        origin.to_str().unwrap(),
        store.to_str().unwrap(),
        &[],
    );
    assert_eq!(stored(&store), vec![("A1".to_owned(), 100)]);
    let r = get(&rt, &edge, "/content/A1", &[("x-viewer", "U2")]);
    assert_eq!(r.header("x-edge-cache"), "HIT");
    drop(edge);
    std::fs::remove_dir_all(origin).unwrap();
    std::fs::remove_dir_all(store).unwrap();
}

fn json_of(resp: &Resp) -> serde_json::Value {
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    assert_eq!(resp.header("content-type"), "application/json");
    serde_json::from_slice(&resp.body).expect("JSON body")
}

#[test]
fn the_viewers_page_lists_titles_predicts_and_reports_what_the_edge_served() {
    let rt = runtime();
    let redis = redis();
    let items: Vec<(String, usize)> = (1..=8).map(|i| (format!("C{i}"), 1000 * i)).collect();
    let refs: Vec<(&str, usize)> = items.iter().map(|(n, l)| (n.as_str(), *l)).collect();
    let origin = origin_dir(&refs);
    std::fs::create_dir(origin.join("not-a-title")).unwrap();
    let edge = Edge::start(&redis, origin.to_str().unwrap(), "memory", &[]);

    let page = get(&rt, &edge, "/", &[]);
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.header("content-type"), "text/html; charset=utf-8");
    let html = String::from_utf8_lossy(&page.body);
    assert!(
        html.contains("Up next for you") && html.contains("/api/next"),
        "{html}"
    );

    // The catalog is the origin's files in name order (directories left out), bounded.
    let all = json_of(&get(&rt, &edge, "/api/catalog", &[]));
    assert_eq!(all["source"], "origin");
    let names: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(names, ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8"]);
    let two = json_of(&get(&rt, &edge, "/api/catalog?limit=2", &[]));
    assert_eq!(two["items"], serde_json::json!(["C1", "C2"]));
    for bad in [
        "/api/catalog?limit=0",
        "/api/catalog?limit=x",
        "/api/next",
        "/api/next?viewer=U1&k=0",
    ] {
        assert_eq!(
            get(&rt, &edge, bad, &[]).status,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }

    // Viewers who watch C3 go on to C4: a new viewer of C3 is predicted C4 next, as the
    // module itself predicts.
    for v in 0..20 {
        for item in ["C3", "C4"] {
            let r = get(&rt, &edge, &format!("/content/{item}?viewer=V{v}"), &[]);
            assert_eq!(r.status, StatusCode::OK);
            let named = r.header("x-edge-prefetched");
            assert!(
                named
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .all(|s| names.contains(&s)),
                "prefetched {named:?}"
            );
            assert!(r.headers.contains_key("x-edge-prefetched"));
        }
    }
    let watched = get(&rt, &edge, "/content/C3?viewer=NEW", &[]);
    assert_eq!(watched.status, StatusCode::OK);
    let next = json_of(&get(&rt, &edge, "/api/next?viewer=NEW&k=3", &[]));
    assert_eq!(next["viewer"], "NEW");
    let mut con = redis.connect();
    let module: Vec<String> = redis::cmd("EDGE.PREDICT")
        .arg("NEW")
        .arg("K")
        .arg(3)
        .query(&mut con)
        .unwrap();
    assert_eq!(next["items"], serde_json::json!(module));
    assert_eq!(module.first().map(String::as_str), Some("C4"));

    // The live counters are /metrics' own.
    let stats = json_of(&get(&rt, &edge, "/api/stats", &[]));
    let edge_bytes = metric(
        &rt,
        &edge,
        "edge_server_served_bytes_total",
        "source=\"edge\"",
    );
    let origin_bytes = metric(
        &rt,
        &edge,
        "edge_server_served_bytes_total",
        "source=\"origin\"",
    );
    assert_eq!(stats["edge_bytes"].as_f64().unwrap(), edge_bytes);
    assert_eq!(stats["origin_served_bytes"].as_f64().unwrap(), origin_bytes);
    assert!(edge_bytes > 0.0 && origin_bytes > 0.0);
    let ratio = stats["byte_hit_ratio"].as_f64().unwrap();
    assert!((ratio - edge_bytes / (edge_bytes + origin_bytes)).abs() < 1e-12);
    let requests = stats["hits"].as_u64().unwrap() + stats["misses"].as_u64().unwrap();
    assert_eq!(requests, 41);
}

/// An origin that streams: for `GET /{item}` it announces `len` bytes, sends the first
/// half, waits `pause`, then sends the rest, or (for items starting with `CUT`) closes
/// the connection instead. Counts GETs by item. Raw TCP, because it must be able to lie
/// about its length.
fn slow_origin(
    rt: &tokio::runtime::Runtime,
    len: usize,
    pause: Duration,
) -> (SocketAddr, Arc<Mutex<HashMap<String, usize>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let gets = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let counted = Arc::clone(&gets);
    rt.spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let gets = Arc::clone(&counted);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&head).into_owned();
                let mut words = line.split_whitespace();
                let method = words.next().unwrap_or("").to_owned();
                let item = words
                    .next()
                    .unwrap_or("/")
                    .trim_start_matches('/')
                    .to_owned();
                let body = content(&item, len);
                let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
                let _ = stream.write_all(reply.as_bytes()).await;
                if method != "GET" {
                    return;
                }
                *gets.lock().unwrap().entry(item.clone()).or_default() += 1;
                let _ = stream.write_all(&body[..len / 2]).await;
                let _ = stream.flush().await;
                tokio::time::sleep(pause).await;
                if !item.starts_with("CUT") {
                    let _ = stream.write_all(&body[len / 2..]).await;
                }
            });
        }
    });
    (addr, gets)
}

/// The body of `GET path`, or the error that ended it.
async fn body_of(a: SocketAddr, path: &str) -> Result<Bytes, hyper::Error> {
    let stream = tokio::net::TcpStream::connect(a).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", a.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    Ok(send
        .send_request(req)
        .await?
        .into_body()
        .collect()
        .await?
        .to_bytes())
}

#[test]
fn a_miss_streams_while_it_is_stored_and_a_cut_fetch_stores_nothing() {
    const LEN: usize = 200_000;
    let pause = Duration::from_millis(800);
    let rt = runtime();
    let redis = redis();
    let (addr, gets) = slow_origin(&rt, LEN, pause);
    let edge = Edge::start(&redis, &format!("http://{addr}"), "memory", &[]);
    let a = edge.addr;
    let (first_byte, whole, joiner, ranged, joined_at) = rt.block_on(async move {
        let started = std::time::Instant::now();
        let stream = tokio::net::TcpStream::connect(a).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = Request::get("/content/S1?viewer=U1")
            .header("host", a.to_string())
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["x-edge-cache"], "MISS");
        assert_eq!(resp.headers()["content-length"], LEN.to_string().as_str());
        let mut body = resp.into_body();
        let mut got = Vec::new();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        let first_byte = started.elapsed();
        got.extend_from_slice(&first);
        // A second viewer, and a ranged one, join while the origin is paused mid-body.
        let joined_at = started.elapsed();
        let joiner =
            tokio::spawn(async move { request(a, "GET", "/content/S1?viewer=U2", &[]).await });
        let ranged = tokio::spawn(async move {
            request(
                a,
                "GET",
                "/content/S1?viewer=U3",
                &[("range", "bytes=150000-150009")],
            )
            .await
        });
        while let Some(f) = body.frame().await {
            got.extend_from_slice(&f.unwrap().into_data().unwrap());
        }
        (
            first_byte,
            got,
            joiner.await.unwrap(),
            ranged.await.unwrap(),
            joined_at,
        )
    });
    assert!(
        first_byte < pause,
        "the first bytes arrive before the origin is done ({first_byte:?})"
    );
    assert!(
        joined_at < pause,
        "the joiners came mid-fetch ({joined_at:?})"
    );
    assert_eq!(&whole[..], &content("S1", LEN)[..]);
    assert_eq!(joiner.header("x-edge-cache"), "MISS");
    assert_eq!(
        &joiner.body[..],
        &content("S1", LEN)[..],
        "a joiner gets every byte"
    );
    assert_eq!(ranged.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&ranged.body[..], &content("S1", LEN)[150_000..150_010]);
    assert_eq!(ranged.header("content-range"), "bytes 150000-150009/200000");
    assert_eq!(
        gets.lock().unwrap().get("S1"),
        Some(&1),
        "one origin fetch for three viewers"
    );
    let hit = get(&rt, &edge, "/content/S1?viewer=U4", &[]);
    assert_eq!(hit.header("x-edge-cache"), "HIT");
    assert_eq!(&hit.body[..], &content("S1", LEN)[..]);
    assert_eq!(
        metric(&rt, &edge, "edge_server_store_bytes", ""),
        LEN as f64
    );

    // The origin cuts the body halfway: the viewer gets a short body and an error, never
    // a whole-looking one, nothing is stored, and the next viewer fetches again.
    let cut = rt.block_on(body_of(a, "/content/CUT1?viewer=U1"));
    assert!(
        cut.is_err(),
        "a cut fetch ends the viewer's body in an error"
    );
    assert_eq!(
        metric(&rt, &edge, "edge_server_store_items", ""),
        1.0,
        "CUT1 not stored"
    );
    assert!(rt.block_on(body_of(a, "/content/CUT1?viewer=U2")).is_err());
    assert_eq!(
        gets.lock().unwrap().get("CUT1"),
        Some(&2),
        "a failed fill leaves no entry"
    );

    // A viewer who leaves mid-stream does not cut the fetch: the object is stored whole.
    rt.block_on(async move {
        let stream = tokio::net::TcpStream::connect(a).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        let driver = tokio::spawn(conn);
        let req = Request::get("/content/S2?viewer=U5")
            .header("host", a.to_string())
            .body(Empty::<Bytes>::new())
            .unwrap();
        let mut body = send.send_request(req).await.unwrap().into_body();
        body.frame().await.unwrap().unwrap();
        drop(body);
        driver.abort();
    });
    std::thread::sleep(pause + Duration::from_millis(700));
    assert_eq!(
        metric(&rt, &edge, "edge_server_store_bytes", ""),
        (2 * LEN) as f64
    );
    let s2 = get(&rt, &edge, "/content/S2?viewer=U6", &[]);
    assert_eq!(s2.header("x-edge-cache"), "HIT");
    assert_eq!(&s2.body[..], &content("S2", LEN)[..]);
    assert_eq!(gets.lock().unwrap().get("S2"), Some(&1));
}

#[test]
fn against_a_cluster_node_an_edge_serves_that_nodes_viewers_and_names_the_owner_of_others() {
    let Some(mut cluster) = edge_tests::Cluster::start(
        3,
        ServerOpts::new().module_arg("cache-capacity-bytes", "1000000"),
    ) else {
        assert!(
            !edge_tests::cluster_cli_available(),
            "redis-cli can make clusters, yet none started"
        );
        return;
    };
    let origin = origin_dir(&[("C1", 700)]);
    let edge = Edge::start(&cluster.nodes[0], origin.to_str().unwrap(), "memory", &[]);
    let rt = runtime();
    let addrs = cluster.addrs();
    let (mut served, mut sent_on) = (0, 0);
    for v in 0..30 {
        let viewer = format!("V{v}");
        let owner = cluster.owner(&viewer);
        let r = get(&rt, &edge, &format!("/content/C1?viewer={viewer}"), &[]);
        let text = String::from_utf8_lossy(&r.body).into_owned();
        if owner == 0 {
            assert_eq!(r.status, StatusCode::OK, "{viewer}: {text}");
            assert_eq!(&r.body[..], &content("C1", 700)[..]);
            served += 1;
        } else {
            assert_eq!(
                r.status,
                StatusCode::MISDIRECTED_REQUEST,
                "{viewer}: {text}"
            );
            assert!(
                text.contains(&addrs[owner]),
                "{viewer} names {}: {text}",
                addrs[owner]
            );
            sent_on += 1;
        }
    }
    assert!(
        served > 0 && sent_on > 0,
        "{served} served, {sent_on} sent on"
    );
    // Node 0 heard exactly the views it owns; the store holds exactly node 0's cache.
    let mut con = cluster.nodes[0].connect();
    let info: String = redis::cmd("INFO").arg("edge").query(&mut con).unwrap();
    assert!(
        info.contains(&format!("edge_plays_total:{served}\r")),
        "{info}"
    );
    assert_eq!(metric(&rt, &edge, "edge_server_store_items", ""), 1.0);
    std::fs::remove_dir_all(origin).unwrap();
}
