//! The HTTP serving skeleton shared by the exporter and edge-server: one accept loop, on
//! hyper's HTTP/1 server over tokio, with the limits that keep one client from hurting
//! the others (issue 12), so both servers defend themselves the same way and a fix lands
//! in both:
//!
//! * at most [`Limits::max_connections`] connections are served at once; further clients
//!   wait in the listen backlog instead of exhausting file descriptors and memory;
//! * request heads are bounded in size and header count (431 beyond), and must arrive
//!   within [`Limits::header_read_timeout`], which also ends idle keep-alive connections;
//! * request bodies are never read: neither server has a route that takes one, so a
//!   request announcing one (any `Content-Length` above 0, or chunked) gets 413 and its
//!   connection is closed, whatever length it claims;
//! * a failed `accept` (out of file descriptors) waits instead of spinning.
//!
//! Each request is answered on its own task, so a handler that waits (a scrape, an origin
//! fetch) never delays another connection's `/health`.

#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{Either, Full};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The response type every handler gives: a whole body in memory.
pub type Reply = Response<Full<Bytes>>;

/// What one server allows a client; each server picks its own numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Largest request head (request line and headers), in bytes; larger gets 431. The
    /// read buffer is capped at twice this (at least 8 KiB, hyper's minimum): one full head
    /// and a few pipelined small ones.
    pub max_header_bytes: usize,
    /// Most header lines in one request; more gets 431.
    pub max_headers: usize,
    /// Time a client has to send a whole request head, counted from when the server
    /// starts waiting for it (so it also ends idle keep-alive connections).
    pub header_read_timeout: Duration,
}

/// The smallest read buffer hyper's HTTP/1 server accepts (it panics below it).
const MIN_BUF_BYTES: usize = 8192;

/// A plain-text reply.
pub fn plain(status: StatusCode, text: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(text.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The answer to a request that announces a body: refused unread, and the connection
/// closed, because its unread body would otherwise be taken for the next request.
fn body_refused() -> Reply {
    let mut r = plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        "request bodies are not accepted\n",
    );
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Serves `handler` on `listener` under `limits` until the process ends. `name` prefixes
/// the log line of a failed accept. Client errors (bad requests, resets, timeouts)
/// concern that client only; hyper has already answered what deserved an answer. The
/// handler's replies may stream (any body of `Bytes`).
pub async fn serve<H, F, B>(
    listener: TcpListener,
    limits: Limits,
    name: &'static str,
    handler: H,
) -> std::io::Result<()>
where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        .max_buf_size((2 * limits.max_header_bytes).max(MIN_BUF_BYTES));
    let handler = Arc::new(handler);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let slot = Arc::clone(&slots)
            .acquire_owned()
            .await
            .expect("the connection semaphore is never closed");
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("{name}: accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = Arc::clone(&handler);
        let service = service_fn(move |req: Request<Incoming>| {
            let answer = (!req.body().is_end_stream()).then(body_refused);
            let reply = answer.is_none().then(|| handler(req));
            async move {
                let reply = match reply {
                    Some(f) => f.await.map(Either::Right),
                    None => answer
                        .expect("a refusal when there is no handler call")
                        .map(Either::Left),
                };
                Ok::<_, Infallible>(reply)
            }
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};

    const LIMITS: Limits = Limits {
        max_connections: 4,
        max_header_bytes: 1024,
        max_headers: 8,
        header_read_timeout: Duration::from_secs(2),
    };

    /// Serves a handler that echoes the path, and counts its calls, on a free port.
    fn start() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                serve(listener, LIMITS, "test", move |req| {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let path = req.uri().path().to_owned();
                    async move { plain(StatusCode::OK, path) }
                })
                .await
            })
        });
        (addr, calls)
    }

    fn raw(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).expect("an answer and a close");
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn bodies_are_refused_before_the_handler_and_heads_are_bounded() {
        let (addr, calls) = start();
        let ok = raw(
            addr,
            b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(
            ok.starts_with("HTTP/1.1 200 ") && ok.ends_with("/a"),
            "{ok}"
        );
        for req in [
            "GET /b HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
            "POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n7fffffff\r\n",
        ] {
            let r = raw(addr, req.as_bytes());
            assert!(r.starts_with("HTTP/1.1 413 "), "{req:?} -> {r:?}");
            assert!(r.to_ascii_lowercase().contains("connection: close"), "{r}");
        }
        let many: String = (0..=LIMITS.max_headers)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect();
        let r = raw(addr, format!("GET /c HTTP/1.1\r\n{many}\r\n").as_bytes());
        assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
        let big = format!("GET /d HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(16 * 1024));
        assert!(raw(addr, big.as_bytes()).starts_with("HTTP/1.1 431 "));
        // Only the well-formed, bodiless request reached the handler.
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
