//! Prometheus exporter for edgecache: reads the module's `INFO edge` section (and the
//! server's command statistics for `EDGE.*`) from one or more Redis servers on every
//! scrape and serves them as Prometheus metrics labelled by edge.
//!
//! The split keeps the parts that need a server apart from the parts that can be tested
//! alone: [`info`] (parsing, pure), [`catalog`] (what each metric means), [`metrics`]
//! (families and exposition, pure), [`scrape`] (Redis I/O under timeouts) and [`server`]
//! (HTTP).

pub mod catalog;
pub mod info;
pub mod metrics;
pub mod scrape;
pub mod server;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use metrics::{EdgeScrape, SelfReport};
use scrape::{ScrapeError, Target};

/// The exporter's state: what to scrape and how long an edge may take. Scrapes are
/// stateless; what is remembered between them is which bad histograms were already
/// logged, so a broken edge does not fill the log every scrape, and how many scrapes
/// failed, by edge and kind, for `edge_exporter_scrape_errors_total`.
pub struct Exporter {
    targets: Vec<Arc<Target>>,
    timeout: Duration,
    /// `(edge, INFO field)` of the invalid histograms already logged.
    warned: Mutex<HashSet<(String, String)>>,
    /// Failed scrapes since start; every edge and kind is present from the start (at 0).
    errors: Mutex<BTreeMap<(String, ScrapeError), u64>>,
}

impl Exporter {
    /// Creates an exporter; `timeout` bounds connect, each read/write, and each scrape.
    pub fn new(targets: Vec<Target>, timeout: Duration) -> Self {
        let errors = targets
            .iter()
            .flat_map(|t| ScrapeError::ALL.map(|k| ((t.name.clone(), k), 0)))
            .collect();
        Exporter {
            targets: targets.into_iter().map(Arc::new).collect(),
            timeout,
            warned: Mutex::new(HashSet::new()),
            errors: Mutex::new(errors),
        }
    }

    /// The edge labels, for startup logs and `/health` (they never carry secrets).
    pub fn edge_names(&self) -> Vec<&str> {
        self.targets.iter().map(|t| t.name.as_str()).collect()
    }

    /// Scrapes every edge now and renders the Prometheus text exposition. Blocks for up
    /// to the timeout: async callers run it on a blocking thread.
    pub fn metrics(&self) -> String {
        let start = Instant::now();
        let scrapes = scrape::scrape_all(&self.targets, self.timeout);
        for msg in self.new_dropped_histograms(&scrapes) {
            eprintln!("exporter: {msg}");
        }
        let report = SelfReport {
            scrape_seconds: start.elapsed().as_secs_f64(),
            errors: self.count_errors(&scrapes),
        };
        metrics::render(&scrapes, &report)
    }

    /// Adds the failures in `scrapes` to the totals and returns all of them.
    fn count_errors(&self, scrapes: &[EdgeScrape]) -> Vec<(String, ScrapeError, u64)> {
        let mut errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        for s in scrapes {
            if let Some(kind) = s.error {
                *errors.entry((s.edge.clone(), kind)).or_default() += 1;
            }
        }
        errors
            .iter()
            .map(|((edge, kind), n)| (edge.clone(), *kind, *n))
            .collect()
    }

    /// What to log about histograms left out of `scrapes`: each edge and field is told
    /// once, since the `edge_scrape_dropped_histograms` gauge shows it on every scrape.
    fn new_dropped_histograms(&self, scrapes: &[EdgeScrape]) -> Vec<String> {
        let mut warned = self.warned.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::new();
        for s in scrapes {
            for d in s.stats.iter().flat_map(|st| &st.dropped_histograms) {
                if warned.insert((s.edge.clone(), d.source.clone())) {
                    out.push(format!(
                        "edge {}: INFO field {} is not a valid histogram ({}); {} is left out \
                         while it stays so (logged once)",
                        s.edge, d.source, d.reason, d.name
                    ));
                }
            }
        }
        out
    }

    /// Liveness of the exporter itself. It does not touch Redis: an edge being down is
    /// reported by `edge_up`, and must not get the exporter restarted.
    pub fn health(&self) -> String {
        format!("ok\nedges: {}\n", self.edge_names().join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::info::{classify, parse_info};

    #[test]
    fn failed_scrapes_are_counted_by_edge_and_kind() {
        // Port 1 on loopback refuses at once.
        let t = Target::parse("gone=redis://127.0.0.1:1", None, None).unwrap();
        let exporter = Exporter::new(vec![t], Duration::from_millis(500));
        let line = |kind: &str, n: u32| {
            format!("edge_exporter_scrape_errors_total{{edge=\"gone\",kind=\"{kind}\"}} {n}")
        };
        let first = exporter.metrics();
        let second = exporter.metrics();
        for (page, n) in [(&first, 1), (&second, 2)] {
            assert!(page.lines().any(|l| l == line("connect", n)), "{page}");
            for other in ["timeout", "auth", "no_module", "other"] {
                assert!(page.lines().any(|l| l == line(other, 0)), "{page}");
            }
        }
        assert!(second.contains("edge_exporter_scrape_duration_seconds "));
    }

    #[test]
    fn a_dropped_histogram_is_logged_once_per_edge() {
        let exporter = Exporter::new(Vec::new(), Duration::from_secs(1));
        let bad = classify(&parse_info("edge_x_us:le_1=3,le_2=1,le_inf=3\n"));
        let scrape = |edge: &str| EdgeScrape {
            edge: edge.into(),
            up: true,
            stats: Some(bad.clone()),
            ..EdgeScrape::default()
        };
        let first = exporter.new_dropped_histograms(&[scrape("a")]);
        assert_eq!(first.len(), 1);
        assert!(
            first[0].contains("edge a: INFO field edge_x_us"),
            "{first:?}"
        );
        assert!(first[0].contains("not cumulative"), "{first:?}");
        assert!(exporter.new_dropped_histograms(&[scrape("a")]).is_empty());
        assert_eq!(
            exporter
                .new_dropped_histograms(&[scrape("a"), scrape("b")])
                .len(),
            1
        );
    }
}
