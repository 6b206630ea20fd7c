//! The HTTP service: content for viewers, `/metrics`, `/health`.
//!
//! `GET /content/{item}` with the viewer in `X-Viewer` (or `?viewer=`):
//! 1. the item's size comes from the store, or from the origin (`HEAD` or the file's
//!    length), so the module accounts for real bytes (`404` if the origin has no such item,
//!    and then the module hears of no view);
//! 2. the module is told of the view (`EDGE.PLAY viewer item SIZE bytes`);
//! 3. the bytes come from the store if it holds them (`HIT`, or `PREFETCHED-HIT` on the
//!    first use of a prefetch), else from the origin through one shared fetch (`MISS`),
//!    streamed to every viewer of it as it arrives and stored once it arrived whole; an
//!    origin failure is `502`, a timeout `504`, and nothing is stored;
//! 4. the items the module prefetched are fetched in the background, at most
//!    `prefetch_concurrency` at once.
//!
//! `HEAD` answers the same headers without a body and is not a view. Responses carry
//! `ETag`, `Content-Length`, `Accept-Ranges`, and honour one `Range` and `If-None-Match`.
//! If the module cannot be reached, content is still served (the view is not learned, and
//! `edge_server_errors_total{status="module"}` counts it): a viewer never waits on the
//! recommender to get bytes.

use std::sync::Arc;
use std::time::Instant;

use http_body_util::{Either, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    HeaderValue, ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    RANGE,
};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::Semaphore;

use crate::flight::{Fill, Flights, Reader};
use crate::metrics::{Metrics, Outcome};
use crate::module::{Module, ModuleError, Play};
use crate::origin::{valid_item, Origin, OriginError};
use crate::page;
use crate::range::{self, Wanted};
use crate::store::{Meta, Store};

/// Longest viewer id accepted (the module takes any key; this bounds what a URL carries).
pub const MAX_VIEWER_LEN: usize = 1024;

/// Everything a request needs, shared by all of them.
#[derive(Debug)]
pub struct Edge {
    /// The module.
    pub module: Arc<Module>,
    /// The origin.
    pub origin: Origin,
    /// The store.
    pub store: Store,
    /// Origin fetches in flight.
    pub flights: Flights,
    /// The metric families.
    pub metrics: Metrics,
    /// Permits for background prefetch fetches.
    pub prefetch_permits: Arc<Semaphore>,
    /// Items with a prefetch fetch queued or running, and whether the module dropped the
    /// item meanwhile (its bytes are then not stored). Bounded by the prefetches in
    /// flight, and it keeps one item from being prefetched twice at once.
    prefetching: std::sync::Mutex<std::collections::HashMap<String, bool>>,
}

impl Edge {
    /// Builds the shared state.
    pub fn new(
        module: Arc<Module>,
        origin: Origin,
        store: Store,
        prefetch_concurrency: usize,
    ) -> Edge {
        Edge {
            module,
            origin,
            store,
            flights: Flights::default(),
            metrics: Metrics::new(),
            prefetch_permits: Arc::new(Semaphore::new(prefetch_concurrency.max(1))),
            prefetching: Default::default(),
        }
    }

    fn prefetching(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, bool>> {
        self.prefetching
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Follows the module's drops: removes the bytes, counting unused prefetches as waste.
    fn apply_drops(&self, items: &[String]) {
        if items.is_empty() {
            return;
        }
        let mut prefetching = self.prefetching();
        for item in items {
            if let Some(dropped) = prefetching.get_mut(item) {
                *dropped = true;
            }
            match self.store.remove(item) {
                Ok(Some(m)) if m.prefetched => self.metrics.prefetch_wasted_bytes.inc_by(m.len),
                Ok(_) => {}
                Err(e) => eprintln!("edge-server: could not drop {item}: {e}"),
            }
        }
    }
}

use edge_httpd::Reply;

/// A plain-text reply of one line.
fn plain(status: StatusCode, text: impl Into<String>) -> Reply {
    edge_httpd::plain(status, text.into() + "\n")
}

/// The body of a reply: whole bytes, or an object streamed as it comes from the origin.
pub type Body = Either<Full<Bytes>, Streaming>;

/// Answers one request.
pub async fn handle(edge: Arc<Edge>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    if path.starts_with("/content/") {
        return content_request(edge, req, &path).await;
    }
    match (req.method(), path.as_str()) {
        (&Method::GET, "/metrics") => {
            edge.metrics.store_bytes.set(edge.store.bytes() as i64);
            edge.metrics.store_items.set(edge.store.len() as i64);
            let mut r = Response::new(Full::new(Bytes::from(edge.metrics.render())));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        (&Method::GET, "/health") => plain(StatusCode::OK, "ok"),
        (&Method::GET, "/") => {
            let mut r = Response::new(Full::new(Bytes::from_static(page::PAGE.as_bytes())));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
        (&Method::GET, "/api/catalog") => api::catalog(&edge, req.uri().query()).await,
        (&Method::GET, "/api/next") => api::next(&edge, &req).await,
        (&Method::GET, "/api/stats") => json_reply(&api::stats(&edge)),
        _ => plain(
            StatusCode::NOT_FOUND,
            "no such path: content is under /content/{item}, the viewer's page at /",
        ),
    }
    .map(Either::Left)
}

/// `GET` or `HEAD /content/{item}`, timed to its first byte by outcome.
async fn content_request(edge: Arc<Edge>, req: Request<Incoming>, p: &str) -> Response<Body> {
    let m = req.method();
    if m != Method::GET && m != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD");
        r.headers_mut()
            .insert(hyper::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r.map(Either::Left);
    }
    let started = Instant::now();
    match content(&edge, &req, &p["/content/".len()..]).await {
        Ok((r, outcome)) => {
            edge.metrics
                .ttfb
                .with_label_values(&[outcome.as_str()])
                .observe(started.elapsed().as_secs_f64());
            r
        }
        Err(r) => {
            edge.metrics.errors.with_label_values(&[r.0.as_str()]).inc();
            r.reply().map(Either::Left)
        }
    }
}

/// A JSON reply.
fn json_reply(value: &impl serde::Serialize) -> Reply {
    let body = serde_json::to_vec(value).expect("plain data serializes");
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// The JSON endpoints the viewer's page reads ([`page`]).
mod api {
    use super::*;

    /// `/api/catalog`: the origin's listing, or the cache's contents for an HTTP origin.
    pub async fn catalog(edge: &Arc<Edge>, query: Option<&str>) -> Reply {
        let limit =
            match page::count_param(query, "limit", page::DEFAULT_CATALOG, page::MAX_CATALOG) {
                Ok(n) => n,
                Err(e) => return plain(StatusCode::BAD_REQUEST, e),
            };
        let listed = match edge.origin.list(limit).await {
            Some(Ok(items)) => Ok(page::Catalog {
                source: "origin",
                items,
            }),
            Some(Err(e)) => Err(origin_failure(&e)),
            None => {
                let module = Arc::clone(&edge.module);
                match tokio::task::spawn_blocking(move || module.cache_page(limit)).await {
                    Ok(Ok(items)) => Ok(page::Catalog {
                        source: "edge-cache",
                        items,
                    }),
                    Ok(Err(e)) => Err(Refusal::new(StatusCode::BAD_GATEWAY, e.to_string())),
                    Err(e) => Err(Refusal::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        e.to_string(),
                    )),
                }
            }
        };
        listed.map_or_else(Refusal::reply, |c| json_reply(&c))
    }

    /// `/api/next?viewer=v[&k=n]`: the viewer's predictions.
    pub async fn next(edge: &Arc<Edge>, req: &Request<Incoming>) -> Reply {
        let viewer = match viewer_of(req) {
            Ok(v) => v,
            Err(r) => return r.reply(),
        };
        let k = match page::count_param(req.uri().query(), "k", 10, page::MAX_NEXT) {
            Ok(n) => n,
            Err(e) => return plain(StatusCode::BAD_REQUEST, e),
        };
        let module = Arc::clone(&edge.module);
        let who = viewer.clone();
        match tokio::task::spawn_blocking(move || module.predict(&who, k)).await {
            Ok(Ok(items)) => json_reply(&page::Next { viewer, items }),
            Ok(Err(e)) => plain(StatusCode::BAD_GATEWAY, e.to_string()),
            Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }

    /// `/api/stats`: the live counters.
    pub fn stats(edge: &Edge) -> page::Stats {
        let m = &edge.metrics;
        let requests = |o: Outcome| m.requests.with_label_values(&[o.as_str()]).get();
        let served = |s: &str| m.served_bytes.with_label_values(&[s]).get();
        let fetched = |r: &str| m.origin_bytes.with_label_values(&[r]).get();
        let prefetched_hits = requests(Outcome::PrefetchedHit);
        let (edge_bytes, origin_served_bytes) = (served("edge"), served("origin"));
        let total = edge_bytes + origin_served_bytes;
        page::Stats {
            hits: requests(Outcome::Hit) + prefetched_hits,
            prefetched_hits,
            misses: requests(Outcome::Miss),
            edge_bytes,
            origin_served_bytes,
            origin_fetched_bytes: fetched("miss") + fetched("prefetch"),
            prefetch_used_bytes: m.prefetch_used_bytes.get(),
            prefetch_wasted_bytes: m.prefetch_wasted_bytes.get(),
            store_bytes: edge.store.bytes(),
            store_items: edge.store.len() as u64,
            byte_hit_ratio: if total == 0 {
                0.0
            } else {
                edge_bytes as f64 / total as f64
            },
        }
    }
}

/// A request the edge refuses: the status and the text the client gets.
#[derive(Debug)]
struct Refusal(StatusCode, String);

impl Refusal {
    fn new(status: StatusCode, text: impl Into<String>) -> Refusal {
        Refusal(status, text.into())
    }

    fn reply(self) -> Reply {
        plain(self.0, self.1)
    }
}

fn viewer_of(req: &Request<Incoming>) -> Result<String, Refusal> {
    let from_header = req
        .headers()
        .get("x-viewer")
        .map(|v| v.to_str().map(str::to_owned));
    let from_query = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("viewer="))
            .map(|v| Ok(v.to_owned()))
    });
    let viewer = match from_header.or(from_query) {
        None => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "no viewer: send the viewer's id in X-Viewer or ?viewer=",
            ))
        }
        Some(Err(_)) => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "X-Viewer is not visible ASCII",
            ))
        }
        Some(Ok(v)) => v,
    };
    if viewer.is_empty()
        || viewer.len() > MAX_VIEWER_LEN
        || !viewer.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("viewer id must be 1 to {MAX_VIEWER_LEN} visible ASCII characters"),
        ));
    }
    Ok(viewer)
}

fn origin_failure(e: &OriginError) -> Refusal {
    match e {
        OriginError::NotFound => Refusal::new(StatusCode::NOT_FOUND, "no such item at the origin"),
        OriginError::Timeout => Refusal::new(StatusCode::GATEWAY_TIMEOUT, e.to_string()),
        OriginError::Failed(_) | OriginError::TooLarge(_) => {
            Refusal::new(StatusCode::BAD_GATEWAY, e.to_string())
        }
    }
}

async fn content(
    edge: &Arc<Edge>,
    req: &Request<Incoming>,
    item: &str,
) -> Result<(Response<Body>, Outcome), Refusal> {
    if !valid_item(item) {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "item ids are 1 to 1024 characters of A-Z a-z 0-9 - _ . ~ : @",
        ));
    }
    let head = req.method() == Method::HEAD;
    let viewer = if head { None } else { Some(viewer_of(req)?) };
    let size = match edge.store.meta(item) {
        Some(m) => m.len,
        None => edge
            .origin
            .size(item)
            .await
            .map_err(|e| origin_failure(&e))?,
    };
    if head {
        let meta = edge.store.meta(item);
        let mut r = Response::new(Full::new(Bytes::new()));
        r.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(size));
        r.headers_mut()
            .insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        let outcome = if meta.is_some() {
            Outcome::Hit
        } else {
            Outcome::Miss
        };
        if let Some(m) = meta {
            r.headers_mut()
                .insert(ETAG, HeaderValue::from_str(&m.etag).expect("ascii etag"));
        }
        r.headers_mut()
            .insert("x-edge-cache", HeaderValue::from_static(outcome.as_str()));
        return Ok((r.map(Either::Left), outcome));
    }
    let play = play(edge, viewer.as_deref().unwrap_or_default(), item, size).await?;
    if let Some(p) = &play {
        edge.apply_drops(&p.drop);
        if p.resync {
            spawn_resync(edge);
        }
    }
    // The store keeps a miss exactly when the module's cache admitted it (without the
    // module, by its own bound).
    // A module hit the store lacks (its fetch failed earlier) is kept too, so the store
    // catches up with the module instead of missing that item until it is evicted.
    let keep = play
        .as_ref()
        .is_none_or(|p| p.hit || p.fetch.iter().any(|f| f == item));
    let (body, outcome) = match edge.store.get(item) {
        Some((bytes, meta)) => {
            let outcome = if meta.prefetched {
                edge.metrics.prefetch_used_bytes.inc_by(meta.len);
                Outcome::PrefetchedHit
            } else {
                Outcome::Hit
            };
            (Served::Stored(bytes, meta), outcome)
        }
        None => {
            let mut reader = fill(edge, item, false, keep);
            let len = reader.head().await.map_err(|e| origin_failure(&e))?;
            (Served::Streamed(reader, len), Outcome::Miss)
        }
    };
    let prefetched = play.map(|p| p.prefetched).unwrap_or_default();
    for next in &prefetched {
        spawn_prefetch(edge, next.clone());
    }
    edge.metrics
        .requests
        .with_label_values(&[outcome.as_str()])
        .inc();
    let mut r = match body {
        Served::Stored(bytes, meta) => respond(req, &bytes, &meta, outcome, edge).map(Either::Left),
        Served::Streamed(reader, len) => stream(req, reader, len, edge),
    };
    // What the module prefetched after this view (item ids are header-safe: `valid_item`).
    let named: Vec<&str> = prefetched
        .iter()
        .map(String::as_str)
        .filter(|i| valid_item(i))
        .collect();
    if let Ok(v) = HeaderValue::from_str(&named.join(",")) {
        r.headers_mut().insert("x-edge-prefetched", v);
    }
    Ok((r, outcome))
}

/// Tells the module of the view; `None` (and an error counted) if it cannot be reached.
/// A Cluster node that does not own the viewer's slot answers `MOVED`: this edge holds
/// the cache of its `--redis` node only, so the viewer gets `421` naming the node that
/// owns them (whose edge-server must serve them) instead of bytes the store would not
/// follow.
async fn play(
    edge: &Arc<Edge>,
    viewer: &str,
    item: &str,
    size: u64,
) -> Result<Option<Play>, Refusal> {
    let module = Arc::clone(&edge.module);
    let viewer_name = viewer.to_owned();
    let (viewer, item) = (viewer.to_owned(), item.to_owned());
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || module.play(&viewer, &item, size)).await;
    edge.metrics
        .play_seconds
        .observe(started.elapsed().as_secs_f64());
    Ok(match out {
        Ok(Ok(p)) => Some(p),
        Ok(Err(ModuleError::Redis(e))) if e.redirect_node().is_some() => {
            let (node, slot) = e.redirect_node().expect("checked");
            return Err(Refusal::new(
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "viewer {viewer:?} belongs to the Redis Cluster node {node} (slot {slot}): \
                     this edge-server serves the viewers of its --redis node only; \
                     send them to the edge-server of {node}",
                    viewer = viewer_name,
                ),
            ));
        }
        Ok(Err(e)) => {
            eprintln!("edge-server: EDGE.PLAY failed, serving without it: {e}");
            edge.metrics.errors.with_label_values(&["module"]).inc();
            None
        }
        Err(e) => {
            eprintln!("edge-server: EDGE.PLAY task failed: {e}");
            edge.metrics.errors.with_label_values(&["module"]).inc();
            None
        }
    })
}

/// What a content reply sends: stored bytes, or a fill followed as it arrives (with the
/// object's length if the origin gave it).
enum Served {
    Stored(Bytes, Meta),
    Streamed(Reader, Option<u64>),
}

/// A reader of the one shared fetch of `item`, started if none runs. The fetch runs in
/// its own task (a viewer who leaves does not cut it short), counts what it brings, and
/// stores the object only once it arrived whole, within the deadline and at the length
/// the origin announced ([`run_fill`]).
fn fill(edge: &Arc<Edge>, item: &str, prefetch: bool, keep: bool) -> Reader {
    let (fill, new) = edge.flights.join(item);
    let reader = fill.reader();
    if new {
        let edge = Arc::clone(edge);
        let item = item.to_owned();
        tokio::spawn(async move {
            run_fill(&edge, &item, &fill, prefetch, keep).await;
            edge.flights.done(&item, &fill);
        });
    }
    reader
}

async fn run_fill(edge: &Arc<Edge>, item: &str, fill: &Fill, prefetch: bool, keep: bool) {
    // A request that missed just before another's fill ended finds the bytes stored.
    if let Some((bytes, _)) = edge.store.peek(item) {
        fill.head(Ok(Some(bytes.len() as u64)));
        fill.push(bytes);
        fill.end(Ok(()));
        return;
    }
    let reason = if prefetch { "prefetch" } else { "miss" };
    let work = async {
        let (len, mut chunks) = edge.origin.open(item).await?;
        fill.head(Ok(len));
        edge.metrics
            .origin_fetches
            .with_label_values(&[reason])
            .inc();
        let mut got = 0u64;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            got += chunk.len() as u64;
            edge.metrics
                .origin_bytes
                .with_label_values(&[reason])
                .inc_by(chunk.len() as u64);
            if got > edge.origin.max_object_bytes {
                return Err(OriginError::TooLarge(got));
            }
            if len.is_some_and(|n| got > n) {
                return Err(OriginError::Failed(
                    "the origin sent more than its Content-Length".into(),
                ));
            }
            fill.push(chunk);
        }
        match len {
            Some(n) if n != got => Err(OriginError::Failed(format!(
                "the origin sent {got} of {n} bytes"
            ))),
            _ => Ok(()),
        }
    };
    let result = tokio::time::timeout(edge.origin.timeout, work)
        .await
        .unwrap_or(Err(OriginError::Timeout));
    // The object is stored before the readers' bodies end: a viewer whose reply completed
    // can count on the store holding what the module admitted (a restart right after
    // finds it). Until then the fill stays joinable, so a request finds either the fill or
    // the stored object.
    let stale = prefetch && edge.prefetching().get(item) == Some(&true);
    if result.is_ok() && keep && !stale {
        match edge.store.put(item, &fill.bytes(), prefetch) {
            Ok(put) => {
                for (_, len, unused_prefetch) in put.dropped {
                    if unused_prefetch {
                        edge.metrics.prefetch_wasted_bytes.inc_by(len);
                    }
                }
            }
            Err(e) => eprintln!("edge-server: could not store {item}: {e}"),
        }
    }
    fill.end(result);
}

/// Drops what the module's cache no longer holds, from its listing (after the module
/// dropped more than it could log).
fn spawn_resync(edge: &Arc<Edge>) {
    let edge = Arc::clone(edge);
    tokio::task::spawn_blocking(move || match edge.module.cache_listing() {
        Ok(held) => match edge.store.retain(|item| held.contains(item)) {
            Ok(gone) => eprintln!("edge-server: resynchronised: dropped {} items", gone.len()),
            Err(e) => eprintln!("edge-server: resynchronising the store failed: {e}"),
        },
        Err(e) => eprintln!("edge-server: could not list the module's cache: {e}"),
    });
}

fn spawn_prefetch(edge: &Arc<Edge>, item: String) {
    if !valid_item(&item) || edge.store.meta(&item).is_some() {
        return;
    }
    if edge.prefetching().insert(item.clone(), false).is_some() {
        return;
    }
    let edge = Arc::clone(edge);
    tokio::spawn(async move {
        if let Ok(_permit) = Arc::clone(&edge.prefetch_permits).acquire_owned().await {
            if edge.store.meta(&item).is_none() {
                if let Err(e) = fill(&edge, &item, true, true).whole().await {
                    eprintln!("edge-server: prefetch of {item} failed: {e}");
                }
            }
        }
        edge.prefetching().remove(&item);
    });
}

fn respond(
    req: &Request<Incoming>,
    bytes: &Bytes,
    meta: &Meta,
    outcome: Outcome,
    edge: &Edge,
) -> Reply {
    let source = if outcome == Outcome::Miss {
        "origin"
    } else {
        "edge"
    };
    let not_modified = req
        .headers()
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == meta.etag || t.trim() == "*")
        });
    let (status, body, range) = if not_modified {
        (StatusCode::NOT_MODIFIED, Bytes::new(), None)
    } else {
        let cut = Span::of(req, bytes.len() as u64);
        let body = bytes.slice(cut.start as usize..(cut.start + cut.count) as usize);
        (cut.status, body, cut.content_range)
    };
    edge.metrics
        .served_bytes
        .with_label_values(&[source])
        .inc_by(body.len() as u64);
    let mut r = Response::new(Full::new(body.clone()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    content_headers(h, outcome, Some(body.len() as u64), range);
    h.insert(ETAG, HeaderValue::from_str(&meta.etag).expect("ascii etag"));
    r
}

/// The part of an object of `len` bytes that one `Range` header asks for: the status, the
/// bytes `start .. start + count`, and the `Content-Range` that says so. Stored hits and
/// streamed misses cut the same way.
struct Span {
    status: StatusCode,
    start: u64,
    count: u64,
    content_range: Option<String>,
}

impl Span {
    fn of(req: &Request<Incoming>, len: u64) -> Span {
        let (status, start, count, content_range) =
            match range::parse(req.headers().get(RANGE).and_then(|v| v.to_str().ok()), len) {
                Wanted::All => (StatusCode::OK, 0, len, None),
                Wanted::Part { start, end } => (
                    StatusCode::PARTIAL_CONTENT,
                    start,
                    end + 1 - start,
                    Some(format!("bytes {start}-{end}/{len}")),
                ),
                Wanted::Unsatisfiable => (
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    0,
                    0,
                    Some(format!("bytes */{len}")),
                ),
            };
        Span {
            status,
            start,
            count,
            content_range,
        }
    }
}

/// The headers every content reply carries: its length when known (with
/// `Accept-Ranges`, since a known length can be cut), type, outcome and `Content-Range`.
fn content_headers(
    h: &mut hyper::HeaderMap,
    outcome: Outcome,
    len: Option<u64>,
    content_range: Option<String>,
) {
    if let Some(n) = len {
        h.insert(CONTENT_LENGTH, HeaderValue::from(n));
        h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert("x-edge-cache", HeaderValue::from_static(outcome.as_str()));
    if let Some(cr) = content_range {
        h.insert(
            CONTENT_RANGE,
            HeaderValue::from_str(&cr).expect("ascii range"),
        );
    }
}

/// A miss's reply: the fill's bytes as they arrive, `Content-Length` and one `Range` when
/// the origin gave the object's length (without it, the whole object, chunked). No
/// `ETag` yet: the edge's validator is a hash of the whole object, known once stored.
/// If the fetch fails midway the body ends in an error and hyper cuts the connection, so
/// the viewer sees a short body, never a wrong one.
fn stream(
    req: &Request<Incoming>,
    mut reader: Reader,
    len: Option<u64>,
    edge: &Arc<Edge>,
) -> Response<Body> {
    let cut = len.map(|len| Span::of(req, len));
    if let Some(cut) = cut
        .as_ref()
        .filter(|c| c.status == StatusCode::RANGE_NOT_SATISFIABLE)
    {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = cut.status;
        content_headers(
            r.headers_mut(),
            Outcome::Miss,
            Some(0),
            cut.content_range.clone(),
        );
        return r.map(Either::Left);
    }
    let (status, start, count, content_range) = match cut {
        None => (StatusCode::OK, 0, None, None),
        Some(c) => (c.status, c.start, Some(c.count), c.content_range),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(STREAM_CHUNKS_AHEAD);
    let edge_ = Arc::clone(edge);
    tokio::spawn(async move {
        // The last part is held back until the fill has ended well (and so stored the
        // object): hyper ends a reply once its Content-Length is sent, so a viewer whose
        // reply completed could otherwise race the store, and a failed fetch must never
        // reach a viewer as a whole reply.
        let (mut skip, mut left) = (start, count.unwrap_or(u64::MAX));
        let mut held: Option<Bytes> = None;
        let send = |part: Bytes| {
            edge_
                .metrics
                .served_bytes
                .with_label_values(&["origin"])
                .inc_by(part.len() as u64);
            tx.send(Ok(part))
        };
        loop {
            let chunk = match reader.next().await {
                None => break,
                Some(Err(e)) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
                Some(Ok(c)) => c,
            };
            let n = chunk.len() as u64;
            if left == 0 || skip >= n {
                skip = skip.saturating_sub(n);
                continue;
            }
            let part = chunk.slice(skip as usize..(skip + left).min(n) as usize);
            skip = 0;
            left -= part.len() as u64;
            // The viewer left: stop following (the fill itself goes on and is stored).
            if let Some(prev) = held.replace(part) {
                if send(prev).await.is_err() {
                    return;
                }
            }
        }
        if let Some(last) = held {
            let _ = send(last).await;
        }
    });
    let mut r = Response::new(Either::Right(Streaming { rx, len: count }));
    *r.status_mut() = status;
    content_headers(r.headers_mut(), Outcome::Miss, count, content_range);
    r
}

/// Chunks a streamed reply may hold ahead of a slow viewer (the fill holds the rest).
const STREAM_CHUNKS_AHEAD: usize = 4;

/// The body of a streamed miss: chunks handed over by the task following the fill.
#[derive(Debug)]
pub struct Streaming {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    len: Option<u64>,
}

impl hyper::body::Body for Streaming {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::io::Result<hyper::body::Frame<Bytes>>>> {
        self.rx
            .poll_recv(cx)
            .map(|c| c.map(|r| r.map(hyper::body::Frame::data)))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.len.map_or_else(
            hyper::body::SizeHint::default,
            hyper::body::SizeHint::with_exact,
        )
    }
}

/// Connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 1024;

/// Largest request head accepted (request line and headers), in bytes.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Most header lines in one request (hyper's default, which the edge always had).
pub const MAX_HEADERS: usize = 100;

/// Time a client has to send a request head (also ends idle keep-alive connections).
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What a client may send, enforced by the accept loop shared with the exporter.
const LIMITS: edge_httpd::Limits = edge_httpd::Limits {
    max_connections: MAX_CONNECTIONS,
    max_header_bytes: MAX_HEADER_BYTES,
    max_headers: MAX_HEADERS,
    header_read_timeout: HEADER_READ_TIMEOUT,
};

/// Serves `edge` on `listener` until the process ends. Request bodies are never read: the
/// edge has no use for them, and a request announcing one gets `413` ([`edge_httpd`]).
pub async fn serve(listener: tokio::net::TcpListener, edge: Arc<Edge>) -> std::io::Result<()> {
    edge_httpd::serve(listener, LIMITS, "edge-server", move |req| {
        handle(Arc::clone(&edge), req)
    })
    .await
}
