//! `loadgen http`: a log's views as HTTP requests against an `edge-server`, with the time
//! to first byte by outcome and the bytes served, so that the edge can be judged as a
//! viewer and an origin see it (byte hit ratio, origin bytes), not only as the module
//! counts it.
//!
//! Each view becomes `GET /content/{item}?viewer={user}`. Views are spread over
//! `concurrency` connections by viewer, so each viewer's views arrive in log order (what
//! the module learns from depends on it), and each connection sends its next request when
//! the previous reply is read. The time to first byte is the time from sending a request to
//! its reply's headers. The origin's side comes from the edge server's own counters
//! (`/api/stats` before and after), because prefetches fetch bytes no viewer asked for.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::logs::Log;

/// How to run.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// The edge server's base URL, `http://host:port`.
    pub url: String,
    /// Connections, each carrying a share of the viewers.
    pub concurrency: usize,
    /// Deadline of one request, headers and body.
    pub timeout: Duration,
}

/// Requests that ended one way (`HIT`, `PREFETCHED-HIT`, `MISS`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OutcomeReport {
    /// Requests.
    pub requests: u64,
    /// Body bytes received.
    pub bytes: u64,
    /// Median time to first byte, in milliseconds.
    pub ttfb_p50_ms: f64,
    /// 99th percentile time to first byte, in milliseconds.
    pub ttfb_p99_ms: f64,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HttpReport {
    /// Requests sent (one per view).
    pub requests: u64,
    /// Requests that got content, by `X-Edge-Cache`.
    pub outcomes: BTreeMap<String, OutcomeReport>,
    /// Requests answered otherwise (an HTTP status other than 200, or no reply), by what
    /// happened.
    pub errors: BTreeMap<String, u64>,
    /// Bytes served from the edge's store (hits) over all bytes served.
    pub byte_hit_ratio: f64,
    /// Bytes the edge fetched from the origin during the run, misses and prefetches.
    pub origin_bytes: u64,
    /// Of those, bytes fetched for prefetches no viewer had asked for yet.
    pub prefetch_wasted_bytes: u64,
    /// Wall time, in seconds.
    pub elapsed_s: f64,
    /// Requests per second.
    pub requests_per_sec: f64,
}

impl HttpReport {
    /// The run as a few lines of text.
    pub fn text(&self) -> String {
        let mut out = format!(
            "{} requests in {:.2} s ({:.0}/s); byte hit ratio {:.4}; origin bytes {} ({} of prefetches wasted)\n",
            self.requests,
            self.elapsed_s,
            self.requests_per_sec,
            self.byte_hit_ratio,
            self.origin_bytes,
            self.prefetch_wasted_bytes
        );
        out += "outcome          requests        bytes  ttfb p50 ms  ttfb p99 ms\n";
        for (name, o) in &self.outcomes {
            out += &format!(
                "{name:<15} {:>9} {:>12} {:>12.3} {:>12.3}\n",
                o.requests, o.bytes, o.ttfb_p50_ms, o.ttfb_p99_ms
            );
        }
        for (what, n) in &self.errors {
            out += &format!("error: {what}: {n}\n");
        }
        out
    }
}

/// One connection's tally.
#[derive(Default)]
struct Tally {
    outcomes: BTreeMap<String, (u64, u64, Option<Histogram<u64>>)>,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn ok(&mut self, outcome: String, bytes: u64, ttfb: Duration) {
        let e = self.outcomes.entry(outcome).or_default();
        e.0 += 1;
        e.1 += bytes;
        let h = e.2.get_or_insert_with(new_histogram);
        h.saturating_record(ttfb.as_micros().max(1) as u64);
    }

    fn merge(&mut self, other: Tally) {
        for (k, (n, b, h)) in other.outcomes {
            let e = self.outcomes.entry(k).or_default();
            e.0 += n;
            e.1 += b;
            if let Some(h) = h {
                let mine = e.2.get_or_insert_with(new_histogram);
                mine.add(&h).expect("histograms of one shape add");
            }
        }
        for (k, n) in other.errors {
            *self.errors.entry(k).or_default() += n;
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // Microseconds from 1 to an hour, three significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

/// The host and port of an `http://` URL.
fn authority(url: &str) -> Result<String> {
    let bad = |reason: &str| Error::BadUrl {
        url: url.into(),
        reason: reason.into(),
    };
    let uri: Uri = url
        .trim_end_matches('/')
        .parse()
        .map_err(|_| bad("not a URL: give the edge server's base, e.g. http://127.0.0.1:8080"))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad("only http:// URLs are supported"));
    }
    let host = uri.host().ok_or_else(|| bad("no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    Ok(format!("{host}:{port}"))
}

async fn connect(addr: &str) -> std::io::Result<SendRequest<Empty<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    Ok(send)
}

/// One GET; its status, `X-Edge-Cache`, body length and time to first byte.
async fn get(
    send: &mut SendRequest<Empty<Bytes>>,
    host: &str,
    path: &str,
) -> std::result::Result<(u16, Option<String>, Bytes, Duration), String> {
    let req = Request::get(path)
        .header("host", host)
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    let ttfb = started.elapsed();
    let status = resp.status().as_u16();
    let outcome = resp
        .headers()
        .get("x-edge-cache")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, outcome, body, ttfb))
}

/// The edge server's counters that the report needs: `(origin bytes, prefetch waste)`.
async fn counters(addr: &str, host: &str) -> Result<(u64, u64)> {
    let not_edge = |why: String| {
        Error::Protocol(format!(
            "http://{host}/api/stats: {why} (is it an edge-server?)"
        ))
    };
    let mut send = connect(addr)
        .await
        .map_err(|e| not_edge(format!("cannot connect: {e}")))?;
    let (status, _, body, _) = get(&mut send, host, "/api/stats").await.map_err(not_edge)?;
    if status != 200 {
        return Err(not_edge(format!("HTTP {status}")));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| not_edge(format!("not JSON: {e}")))?;
    let field = |k: &str| {
        v[k].as_u64()
            .ok_or_else(|| not_edge(format!("no field {k}")))
    };
    Ok((
        field("origin_fetched_bytes")?,
        field("prefetch_wasted_bytes")?,
    ))
}

/// Sends every view of `log` and measures what came back.
pub fn run(log: &Log, o: &HttpOptions) -> Result<HttpReport> {
    if o.concurrency == 0 {
        return Err(Error::Usage("--concurrency must be at least 1".into()));
    }
    let addr = authority(&o.url)?;
    let host = addr.clone();
    // Each viewer's views on one connection, in log order.
    let mut shares: Vec<Vec<String>> = vec![Vec::new(); o.concurrency];
    for e in &log.events {
        let item = &log.items[e.item as usize];
        let user = &log.users[e.user as usize];
        shares[e.user as usize % o.concurrency].push(format!(
            "/content/{}?viewer={}",
            encode(item),
            encode(user)
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::io("the HTTP client's runtime", e))?;
    runtime.block_on(async {
        let before = counters(&addr, &host).await?;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for share in shares {
            let (addr, host, timeout) = (addr.clone(), host.clone(), o.timeout);
            tasks.push(tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut send = None;
                for path in share {
                    if send.is_none() {
                        match connect(&addr).await {
                            Ok(s) => send = Some(s),
                            Err(e) => {
                                *tally.errors.entry(format!("connect: {e}")).or_default() += 1;
                                continue;
                            }
                        }
                    }
                    let s = send.as_mut().expect("connected above");
                    match tokio::time::timeout(timeout, get(s, &host, &path)).await {
                        Ok(Ok((200, outcome, body, ttfb))) => tally.ok(
                            outcome.unwrap_or_else(|| "no X-Edge-Cache".into()),
                            body.len() as u64,
                            ttfb,
                        ),
                        Ok(Ok((status, ..))) => {
                            *tally.errors.entry(format!("HTTP {status}")).or_default() += 1
                        }
                        Ok(Err(e)) => {
                            *tally.errors.entry(e).or_default() += 1;
                            send = None;
                        }
                        Err(_) => {
                            *tally.errors.entry("timeout".into()).or_default() += 1;
                            send = None;
                        }
                    }
                }
                tally
            }));
        }
        let mut tally = Tally::default();
        for t in tasks {
            tally.merge(t.await.expect("a request task does not panic"));
        }
        let elapsed = started.elapsed().as_secs_f64();
        let after = counters(&addr, &host).await?;
        Ok(report(
            tally,
            log.events.len() as u64,
            elapsed,
            before,
            after,
        ))
    })
}

fn report(
    tally: Tally,
    requests: u64,
    elapsed_s: f64,
    before: (u64, u64),
    after: (u64, u64),
) -> HttpReport {
    let mut outcomes = BTreeMap::new();
    let (mut edge_bytes, mut all_bytes) = (0u64, 0u64);
    for (name, (n, bytes, h)) in tally.outcomes {
        all_bytes += bytes;
        if name == "HIT" || name == "PREFETCHED-HIT" {
            edge_bytes += bytes;
        }
        let q = |p: f64| {
            h.as_ref()
                .map_or(0.0, |h| h.value_at_quantile(p) as f64 / 1000.0)
        };
        outcomes.insert(
            name,
            OutcomeReport {
                requests: n,
                bytes,
                ttfb_p50_ms: q(0.5),
                ttfb_p99_ms: q(0.99),
            },
        );
    }
    HttpReport {
        requests,
        outcomes,
        errors: tally.errors,
        byte_hit_ratio: if all_bytes == 0 {
            0.0
        } else {
            edge_bytes as f64 / all_bytes as f64
        },
        origin_bytes: after.0.saturating_sub(before.0),
        prefetch_wasted_bytes: after.1.saturating_sub(before.1),
        elapsed_s,
        requests_per_sec: if elapsed_s > 0.0 {
            requests as f64 / elapsed_s
        } else {
            0.0
        },
    }
}

/// `s` as one URL path segment or query value: unreserved characters as they are, every
/// other byte percent-encoded.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_ids_encoded() {
        assert_eq!(
            authority("http://127.0.0.1:8080/").unwrap(),
            "127.0.0.1:8080"
        );
        assert_eq!(authority("http://localhost").unwrap(), "localhost:80");
        assert!(authority("https://x:1").is_err());
        assert!(authority("127.0.0.1:8080").is_err());
        assert_eq!(encode("C12"), "C12");
        assert_eq!(encode("a b/c?"), "a%20b%2Fc%3F");
    }

    #[test]
    fn the_report_counts_hits_bytes_against_all_bytes_and_the_origin_by_difference() {
        let mut t = Tally::default();
        t.ok("MISS".into(), 300, Duration::from_millis(4));
        t.ok("HIT".into(), 100, Duration::from_millis(1));
        let mut other = Tally::default();
        other.ok("PREFETCHED-HIT".into(), 200, Duration::from_millis(1));
        other.errors.insert("HTTP 502".into(), 2);
        t.merge(other);
        let r = report(t, 5, 2.0, (1000, 10), (1900, 60));
        assert!((r.byte_hit_ratio - 0.5).abs() < 1e-12);
        assert_eq!(r.origin_bytes, 900);
        assert_eq!(r.prefetch_wasted_bytes, 50);
        assert_eq!(r.outcomes["MISS"].requests, 1);
        assert!((r.outcomes["MISS"].ttfb_p50_ms - 4.0).abs() < 0.01);
        assert_eq!(r.errors["HTTP 502"], 2);
        assert!((r.requests_per_sec - 2.5).abs() < 1e-12);
    }
}
