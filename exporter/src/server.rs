//! The HTTP side: `/metrics`, `/health` (and `/healthz`) and a landing page, served by
//! the accept loop shared with edge-server ([`edge_httpd`]) on a small tokio runtime.
//!
//! What keeps one client from hurting the others (issue 12):
//!
//! * requests are answered on async tasks that never block: a scrape runs on tokio's
//!   blocking pool, so `/health` answers at once however many scrapes are in flight;
//! * `/metrics` requests that arrive while a scrape is running share its result instead
//!   of starting their own, so a burst of requests costs one connection per edge, not
//!   one per request, and can neither pile threads up nor hammer a slow edge;
//! * request bodies are never read: a request that announces one is refused with 413
//!   and its connection closed, whatever length it claims;
//! * request heads are bounded in size ([`MAX_HEADER_BYTES`], [`MAX_HEADERS`]) and must
//!   arrive within [`HEADER_READ_TIMEOUT`], which also closes idle keep-alive connections;
//! * at most [`MAX_CONNECTIONS`] connections are served at once; further clients wait in
//!   the listen backlog.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use edge_httpd::plain;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::watch;

use crate::Exporter;

/// Connections served at once. Prometheus keeps one per scraper; the limit only stops a
/// flood of clients from exhausting file descriptors and memory.
pub const MAX_CONNECTIONS: usize = 256;

/// Largest request head (request line and headers) accepted, in bytes; larger ones get
/// 431. Scrapers send a few hundred bytes.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Most header lines accepted in one request; more get 431.
pub const MAX_HEADERS: usize = 64;

/// Time a client has to send a whole request head, counted from when the server starts
/// waiting for it (so it also ends idle keep-alive connections). Slow-header clients
/// cannot hold connection slots for long.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Tokio worker threads: they only parse requests and copy bytes, so two are plenty on
/// the small machines the exporter runs on.
const WORKERS: usize = 2;

/// Blocking threads for scrapes. Scrapes are shared, so one runs at a time; the spare
/// ones cover a new scrape starting while a finished one's thread winds down.
const BLOCKING_THREADS: usize = 4;

/// A bound HTTP listener; binding is separate from serving so `main` can report a bad
/// `--listen` address before anything else happens.
pub struct HttpServer {
    listener: TcpListener,
    addr: SocketAddr,
}

impl HttpServer {
    /// Binds the listener (`host:port`; port 0 picks a free port).
    pub fn bind(listen: &str) -> io::Result<Self> {
        let listener = TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        Ok(HttpServer { listener, addr })
    }

    /// The bound address, useful when listening on port 0.
    pub fn local_addr(&self) -> String {
        self.addr.to_string()
    }

    /// Serves requests until the process ends; returns only if the runtime cannot start.
    pub fn serve(self, exporter: Arc<Exporter>) -> io::Result<()> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .max_blocking_threads(BLOCKING_THREADS)
            .thread_name("exporter-http")
            .enable_io()
            .enable_time()
            .build()?;
        runtime.block_on(accept_loop(self.listener, exporter))
    }
}

/// What a client may send, enforced by the shared accept loop ([`edge_httpd::serve`]).
const LIMITS: edge_httpd::Limits = edge_httpd::Limits {
    max_connections: MAX_CONNECTIONS,
    max_header_bytes: MAX_HEADER_BYTES,
    max_headers: MAX_HEADERS,
    header_read_timeout: HEADER_READ_TIMEOUT,
};

async fn accept_loop(listener: TcpListener, exporter: Arc<Exporter>) -> io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let app = Arc::new(App {
        exporter,
        scrape: Arc::new(SharedScrape::default()),
    });
    edge_httpd::serve(listener, LIMITS, "exporter", move |req| {
        let app = Arc::clone(&app);
        async move { app.handle(req).await }
    })
    .await
}

/// What one in-flight scrape will publish: `None` until it finishes.
type ScrapeResult = Option<Bytes>;

/// The scrape currently running, if any, so concurrent `/metrics` requests share it.
#[derive(Default)]
struct SharedScrape {
    running: Mutex<Option<watch::Receiver<ScrapeResult>>>,
}

/// Empties the shared slot when a scrape ends, even by a panic, so the next request
/// starts a fresh scrape.
struct EndOfScrape(Arc<SharedScrape>);

impl Drop for EndOfScrape {
    fn drop(&mut self) {
        *self
            .0
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl SharedScrape {
    /// The exposition of the running scrape, or of a new one started now. `None` if the
    /// scrape panicked.
    async fn metrics(self: &Arc<Self>, exporter: &Arc<Exporter>) -> Option<Bytes> {
        let (mut rx, start) = {
            let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            match running.as_ref() {
                Some(rx) => (rx.clone(), None),
                None => {
                    let (tx, rx) = watch::channel(None);
                    *running = Some(rx.clone());
                    (rx, Some(tx))
                }
            }
        };
        // Started outside the lock: a task dropped unrun (at runtime shutdown) runs
        // `EndOfScrape::drop`, which takes the lock.
        if let Some(tx) = start {
            let end = EndOfScrape(Arc::clone(self));
            let exporter = Arc::clone(exporter);
            tokio::task::spawn_blocking(move || {
                let text = exporter.metrics();
                // Free the slot first: a request arriving from now on gets a fresh
                // scrape, and those already waiting get this one.
                drop(end);
                let _ = tx.send(Some(Bytes::from(text)));
            });
        }
        let done = rx.wait_for(Option::is_some).await.ok()?;
        done.clone()
    }
}

/// Routes requests; shared by every connection.
struct App {
    exporter: Arc<Exporter>,
    scrape: Arc<SharedScrape>,
}

const PLAIN: &str = "text/plain; charset=utf-8";
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";
const LANDING: &str = "<html><head><title>edgecache exporter</title></head><body>\
     <h1>edgecache exporter</h1><p><a href=\"/metrics\">/metrics</a> \
     <a href=\"/health\">/health</a></p></body></html>\n";

fn reply(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

impl App {
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        // Requests with a body never get here: the shared accept loop refuses them.
        // HEAD gets the GET headers; hyper leaves the body out.
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        match req.uri().path() {
            "/metrics" => match self.scrape.metrics(&self.exporter).await {
                Some(text) => reply(StatusCode::OK, EXPOSITION, text),
                None => plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the scrape failed; see the exporter log\n",
                ),
            },
            "/health" | "/healthz" => {
                reply(StatusCode::OK, PLAIN, Bytes::from(self.exporter.health()))
            }
            "/" => reply(
                StatusCode::OK,
                "text/html; charset=utf-8",
                Bytes::from_static(LANDING.as_bytes()),
            ),
            _ => plain(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::Target;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::thread;
    use std::time::Instant;

    /// Serves `exporter` on a free loopback port from a background thread.
    fn start(exporter: Exporter) -> SocketAddr {
        let server = HttpServer::bind("127.0.0.1:0").unwrap();
        let addr: SocketAddr = server.local_addr().parse().unwrap();
        assert_ne!(addr.port(), 0);
        thread::spawn(move || server.serve(Arc::new(exporter)));
        addr
    }

    /// An exporter whose one edge refuses connections at once.
    fn down_edge() -> Exporter {
        let t = Target::parse("down=redis://127.0.0.1:1", None, None).unwrap();
        Exporter::new(vec![t], Duration::from_millis(500))
    }

    /// Sends raw bytes and reads until the server closes (or 15 s pass).
    fn raw(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.write_all(request).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out)
            .unwrap_or_else(|e| panic!("no answer and close: {e}"));
        String::from_utf8_lossy(&out).into_owned()
    }

    /// `(status, lower-case head, body)` of a request that asks the server to close.
    fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
        let r = raw(
            addr,
            format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        let (head, body) = r.split_once("\r\n\r\n").expect("a full response");
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, head.to_ascii_lowercase(), body.to_owned())
    }

    #[test]
    fn routes_methods_and_head() {
        let addr = start(down_edge());
        let (s, head, body) = request(addr, "GET", "/health");
        assert_eq!(s, 200);
        assert_eq!(body, "ok\nedges: down\n");
        assert!(
            head.contains("content-type: text/plain; charset=utf-8"),
            "{head}"
        );
        assert_eq!(request(addr, "GET", "/healthz?probe=1").0, 200);
        let (s, head, body) = request(addr, "GET", "/");
        assert_eq!(s, 200);
        assert!(head.contains("text/html"));
        assert!(body.contains("/metrics"));
        let (s, head, body) = request(addr, "GET", "/metrics");
        assert_eq!(s, 200);
        assert!(head.contains("version=0.0.4"), "{head}");
        assert!(body.contains("edge_up{edge=\"down\"} 0"), "{body}");
        assert_eq!(request(addr, "GET", "/nope").0, 404);
        let (s, head, _) = request(addr, "DELETE", "/metrics");
        assert_eq!(s, 405);
        assert!(head.contains("allow: get, head"), "{head}");
        // HEAD: the GET headers (with the GET length), no body.
        let (s, head, body) = request(addr, "HEAD", "/health");
        assert_eq!(s, 200);
        assert!(head.contains("content-length: 15"), "{head}");
        assert_eq!(body, "");
    }

    #[test]
    fn bodies_are_refused_unread_and_the_server_lives_on() {
        let addr = start(down_edge());
        for req in [
            "GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
            "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            "GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n7fffffff\r\n",
        ] {
            // `raw` reads to the end: the connection must be closed, not kept waiting.
            let r = raw(addr, req.as_bytes());
            assert!(r.starts_with("HTTP/1.1 413 "), "{req:?} → {r:?}");
        }
        // A length hyper cannot represent is already refused while parsing the head.
        let r = raw(
            addr,
            b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551615\r\n\r\n",
        );
        assert!(r.starts_with("HTTP/1.1 4"), "{r:?}");
        // An empty body (Content-Length: 0) is no body.
        let r = raw(
            addr,
            b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        assert!(r.starts_with("HTTP/1.1 200 "), "{r:?}");
        assert_eq!(request(addr, "GET", "/health").0, 200);
    }

    #[test]
    fn oversized_request_heads_are_refused() {
        let addr = start(down_edge());
        let big = format!(
            "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(MAX_HEADER_BYTES)
        );
        let r = raw(addr, big.as_bytes());
        assert!(r.starts_with("HTTP/1.1 431 "), "{r:?}");
        let many: String = (0..=MAX_HEADERS)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect();
        let r = raw(
            addr,
            format!("GET /health HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
        );
        assert!(r.starts_with("HTTP/1.1 431 "), "{r:?}");
        assert_eq!(request(addr, "GET", "/health").0, 200);
    }

    #[test]
    fn a_client_that_never_finishes_its_head_is_dropped() {
        let addr = start(down_edge());
        let start = Instant::now();
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(HEADER_READ_TIMEOUT + Duration::from_secs(5)))
            .unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out)
            .expect("the server closes the connection before the client's timeout");
        let took = start.elapsed();
        assert!(
            took >= HEADER_READ_TIMEOUT - Duration::from_secs(1),
            "closed after {took:?}"
        );
        assert!(!String::from_utf8_lossy(&out).contains(" 200 "));
    }

    #[test]
    fn health_does_not_wait_for_scrapes_and_scrapes_are_shared() {
        // An edge that accepts connections and never answers, for at most 20 s.
        let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let hung_addr = hung.local_addr().unwrap();
        hung.set_nonblocking(true).unwrap();
        let holder = thread::spawn(move || {
            let start = Instant::now();
            let mut held = Vec::new();
            while start.elapsed() < Duration::from_secs(6) {
                match hung.accept() {
                    Ok((c, _)) => held.push(c),
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
            held.len()
        });
        let t = Target::parse(&format!("hung=redis://{hung_addr}"), None, None).unwrap();
        let addr = start(Exporter::new(vec![t], Duration::from_secs(2)));
        let scrapes: Vec<_> = (0..12)
            .map(|_| thread::spawn(move || request(addr, "GET", "/metrics")))
            .collect();
        thread::sleep(Duration::from_millis(300));
        let begin = Instant::now();
        assert_eq!(request(addr, "GET", "/health").0, 200);
        assert!(
            begin.elapsed() < Duration::from_secs(1),
            "{:?}",
            begin.elapsed()
        );
        for s in scrapes {
            let (status, _, body) = s.join().unwrap();
            assert_eq!(status, 200);
            assert!(body.contains("edge_up{edge=\"hung\"} 0"), "{body}");
        }
        // Twelve requests in flight together cost the edge one connection.
        assert_eq!(holder.join().unwrap(), 1);
    }
}
