//! The viewer's page: `GET /` pretends to be the streaming service, over three small JSON
//! endpoints the page calls (plain HTML and a little JavaScript, no build step).
//!
//! - `GET /api/catalog[?limit=n]`: titles to pick from, `{"source", "items"}`: the origin's
//!   files in name order for a directory origin, else what the edge's cache holds now
//!   (an HTTP origin has no listing);
//! - `GET /api/next?viewer=v[&k=n]`: "Up next for you", `{"viewer", "items"}`, from
//!   `EDGE.PREDICT v K n` (a new viewer gets the popular titles);
//! - `GET /api/stats`: the edge's live counters, `{"requests", "served_bytes", …,
//!   "byte_hit_ratio"}`, the same numbers `/metrics` reports.
//!
//! Watching a title is `GET /content/{item}?viewer=v` itself: the page reads
//! `X-Edge-Cache` and `X-Edge-Prefetched` from the reply.

use serde::Serialize;

/// The page, served as it is.
pub const PAGE: &str = include_str!("../assets/index.html");

/// Most titles `/api/catalog` lists.
pub const MAX_CATALOG: usize = 1000;

/// Titles listed when the page gives no `limit`.
pub const DEFAULT_CATALOG: usize = 60;

/// Most predictions `/api/next` asks for.
pub const MAX_NEXT: usize = 50;

/// `/api/catalog`'s reply.
#[derive(Debug, Serialize)]
pub struct Catalog {
    /// `origin` (a directory's listing) or `edge-cache` (what the cache holds).
    pub source: &'static str,
    /// Item ids.
    pub items: Vec<String>,
}

/// `/api/next`'s reply.
#[derive(Debug, Serialize)]
pub struct Next {
    /// The viewer.
    pub viewer: String,
    /// Predicted items, best first.
    pub items: Vec<String>,
}

/// `/api/stats`'s reply: counters since the server started.
#[derive(Debug, Serialize, PartialEq)]
pub struct Stats {
    /// Content requests answered from the store.
    pub hits: u64,
    /// Of those, first uses of a prefetch.
    pub prefetched_hits: u64,
    /// Content requests answered from the origin.
    pub misses: u64,
    /// Body bytes sent from the store.
    pub edge_bytes: u64,
    /// Body bytes sent from the origin.
    pub origin_served_bytes: u64,
    /// Bytes fetched from the origin, misses and prefetches.
    pub origin_fetched_bytes: u64,
    /// Prefetched bytes later requested.
    pub prefetch_used_bytes: u64,
    /// Prefetched bytes dropped before any request.
    pub prefetch_wasted_bytes: u64,
    /// Bytes in the store.
    pub store_bytes: u64,
    /// Items in the store.
    pub store_items: u64,
    /// Edge bytes over all bytes served (0 before any).
    pub byte_hit_ratio: f64,
}

/// The value of `name` in a query string (`a=1&b=2`), if present.
pub fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

/// A count from the query: `default` when absent, an error text when not a number in
/// `1..=max`.
pub fn count_param(
    query: Option<&str>,
    name: &str,
    default: usize,
    max: usize,
) -> Result<usize, String> {
    match query_param(query, name) {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(format!("{name} must be a whole number from 1 to {max}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_found_by_name_and_counts_checked() {
        let q = Some("viewer=U1&k=5&flag");
        assert_eq!(query_param(q, "viewer"), Some("U1"));
        assert_eq!(query_param(q, "flag"), Some(""));
        assert_eq!(query_param(q, "view"), None);
        assert_eq!(query_param(None, "k"), None);
        assert_eq!(count_param(q, "k", 10, 50), Ok(5));
        assert_eq!(count_param(q, "limit", 60, 100), Ok(60));
        assert!(count_param(Some("k=0"), "k", 10, 50).is_err());
        assert!(count_param(Some("k=51"), "k", 10, 50).is_err());
        assert!(count_param(Some("k=-1"), "k", 10, 50).is_err());
        assert!(count_param(Some("k=x"), "k", 10, 50).is_err());
    }

    #[test]
    fn the_page_calls_every_endpoint_it_needs() {
        for needle in [
            "/api/catalog",
            "/api/next",
            "/api/stats",
            "/content/",
            "x-edge-cache",
            "x-edge-prefetched",
        ] {
            assert!(PAGE.contains(needle), "the page does not use {needle}");
        }
    }
}
