//! Prometheus exporter for edgecache: reads the module's `INFO edge` section (and the
//! server's command statistics for `EDGE.*`) from one or more Redis servers on every
//! scrape and serves them as Prometheus metrics labelled by edge.
//!
//! The split keeps the parts that need a server apart from the parts that can be tested
//! alone: [`info`] (parsing, pure), [`metrics`] (families and exposition, pure),
//! [`scrape`] (Redis I/O under timeouts) and [`server`] (HTTP).

pub mod info;
pub mod metrics;
pub mod scrape;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use scrape::Target;

/// The exporter's whole state: what to scrape and how long an edge may take. Scrapes are
/// stateless, so this is shared read-only between HTTP workers.
pub struct Exporter {
    targets: Vec<Arc<Target>>,
    timeout: Duration,
}

impl Exporter {
    /// Creates an exporter; `timeout` bounds connect, each read/write, and each scrape.
    pub fn new(targets: Vec<Target>, timeout: Duration) -> Self {
        Exporter {
            targets: targets.into_iter().map(Arc::new).collect(),
            timeout,
        }
    }

    /// The edge labels, for startup logs and `/health` (they never carry secrets).
    pub fn edge_names(&self) -> Vec<&str> {
        self.targets.iter().map(|t| t.name.as_str()).collect()
    }

    /// Scrapes every edge now and renders the Prometheus text exposition.
    pub fn metrics(&self) -> String {
        metrics::render(&scrape::scrape_all(&self.targets, self.timeout))
    }

    /// Liveness of the exporter itself. It does not touch Redis: an edge being down is
    /// reported by `edge_up`, and must not get the exporter restarted.
    pub fn health(&self) -> String {
        format!("ok\nedges: {}\n", self.edge_names().join(", "))
    }
}
