//! What the edge server reports on `/metrics`, in Prometheus's text format.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// How a request was served, as `X-Edge-Cache` and the `outcome` label say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// From the store.
    Hit,
    /// From the store, brought there by a prefetch this is the first use of.
    PrefetchedHit,
    /// From the origin.
    Miss,
}

impl Outcome {
    /// The header value and label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "HIT",
            Outcome::PrefetchedHit => "PREFETCHED-HIT",
            Outcome::Miss => "MISS",
        }
    }
}

/// The server's metric families.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests by outcome.
    pub requests: IntCounterVec,
    /// Requests answered with an error, by HTTP status.
    pub errors: IntCounterVec,
    /// Body bytes sent to viewers, by where they came from (`edge`, `origin`).
    pub served_bytes: IntCounterVec,
    /// Origin fetches, by why (`miss`, `prefetch`).
    pub origin_fetches: IntCounterVec,
    /// Bytes fetched from the origin, by why.
    pub origin_bytes: IntCounterVec,
    /// Prefetched bytes later requested.
    pub prefetch_used_bytes: IntCounter,
    /// Prefetched bytes dropped before any request.
    pub prefetch_wasted_bytes: IntCounter,
    /// Time to first byte, by outcome.
    pub ttfb: HistogramVec,
    /// Latency of EDGE.PLAY as the server sees it.
    pub play_seconds: Histogram,
    /// Bytes held by the store.
    pub store_bytes: IntGauge,
    /// Items held by the store.
    pub store_items: IntGauge,
}

impl Metrics {
    /// Registers every family.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, label: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let buckets = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ];
        let ttfb = HistogramVec::new(
            HistogramOpts::new(
                "edge_server_time_to_first_byte_seconds",
                "Time from a request to the first byte of its answer, by outcome.",
            )
            .buckets(buckets.clone()),
            &["outcome"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(ttfb.clone()))
            .expect("unique metric");
        let play_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "edge_server_play_seconds",
                "Round trip of EDGE.PLAY to the module, as the server sees it.",
            )
            .buckets(buckets),
        )
        .expect("valid metric");
        registry
            .register(Box::new(play_seconds.clone()))
            .expect("unique metric");
        Metrics {
            requests: counter_vec(
                "edge_server_requests_total",
                "Content requests served, by outcome.",
                "outcome",
            ),
            errors: counter_vec(
                "edge_server_errors_total",
                "Content requests answered with an error, by HTTP status.",
                "status",
            ),
            served_bytes: counter_vec(
                "edge_server_served_bytes_total",
                "Body bytes sent to viewers, by where they came from.",
                "source",
            ),
            origin_fetches: counter_vec(
                "edge_server_origin_fetches_total",
                "Objects fetched from the origin, by why.",
                "reason",
            ),
            origin_bytes: counter_vec(
                "edge_server_origin_bytes_total",
                "Bytes fetched from the origin, by why.",
                "reason",
            ),
            prefetch_used_bytes: counter(
                "edge_server_prefetch_used_bytes_total",
                "Prefetched bytes later requested by a viewer.",
            ),
            prefetch_wasted_bytes: counter(
                "edge_server_prefetch_wasted_bytes_total",
                "Prefetched bytes dropped from the store before any request.",
            ),
            store_bytes: gauge("edge_server_store_bytes", "Bytes the store holds."),
            store_items: gauge("edge_server_store_items", "Items the store holds."),
            ttfb,
            play_seconds,
            registry,
        }
    }

    /// The text exposition.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding never fails");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
