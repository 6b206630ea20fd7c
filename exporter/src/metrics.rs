//! Turning per-edge scrape results into a Prometheus registry and its text exposition.
//!
//! INFO counters are absolute values owned by the module, so they cannot be mirrored with
//! the crate's `inc`-only counters; instead each scrape builds constant metric families
//! and hands them to a fresh [`Registry`] through a one-shot [`Collector`]. Every series
//! carries an `edge` label so several edges can share one exporter and one dashboard.

use std::collections::BTreeMap;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, Registry, TextEncoder};

use crate::catalog::help_for;
use crate::info::{CommandStat, EdgeStats, Labelled, Sample};
use crate::scrape::ScrapeError;

/// What one scrape of one edge produced; `stats` is `None` when the edge was down.
#[derive(Debug, Clone, Default)]
pub struct EdgeScrape {
    /// Value of the `edge` label: a given name or `host:port`, never a URL or secret.
    pub edge: String,
    /// Whether the edge answered with the module's `INFO edge` sections (a Redis without
    /// the module answers, but is not up).
    pub up: bool,
    /// Wall time spent on this edge, so slow edges show up before they time out.
    pub duration_seconds: f64,
    /// Typed `INFO edge` content.
    pub stats: Option<EdgeStats>,
    /// `INFO commandstats` for the module's commands.
    pub commands: Vec<CommandStat>,
    /// Why the edge is down, when it is.
    pub error: Option<ScrapeError>,
    /// The module's version from `INFO modules`, when the edge lets the exporter read it.
    pub module_version: Option<String>,
}

/// What the exporter says about itself next to the edges' series: how long the scrape
/// took, what failed since it started, and which build it is.
#[derive(Debug, Clone, Default)]
pub struct SelfReport {
    /// Wall time of the whole scrape (all edges, concurrently).
    pub scrape_seconds: f64,
    /// Failed scrapes since the exporter started, per edge and kind (zeros included).
    pub errors: Vec<(String, ScrapeError, u64)>,
}

/// The exporter's own version, as `edge_exporter_build_info` reports it.
pub const EXPORTER_VERSION: &str = env!("CARGO_PKG_VERSION");

fn label(name: &str, value: &str) -> LabelPair {
    let mut l = LabelPair::default();
    l.set_name(name.to_owned());
    l.set_value(value.to_owned());
    l
}

/// Collects families by name so several edges' series land in one family each.
#[derive(Default)]
struct Families(BTreeMap<String, MetricFamily>);

impl Families {
    fn push(&mut self, name: &str, help: &str, kind: MetricType, metric: Metric) {
        let mf = self.0.entry(name.to_owned()).or_insert_with(|| {
            let mut mf = MetricFamily::default();
            mf.set_name(name.to_owned());
            mf.set_help(help.to_owned());
            mf.set_field_type(kind);
            mf
        });
        // Two edges disagreeing on a type (different module versions) must not produce
        // an invalid exposition: the first type seen wins.
        if mf.get_field_type() == kind {
            mf.mut_metric().push(metric);
        }
    }

    fn value(&mut self, name: &str, help: &str, kind: MetricType, labels: Vec<LabelPair>, v: f64) {
        let mut m = Metric::from_label(labels);
        if kind == MetricType::COUNTER {
            let mut c = proto::Counter::default();
            c.set_value(v);
            m.set_counter(c);
        } else {
            let mut g = proto::Gauge::default();
            g.set_value(v);
            m.set_gauge(g);
        }
        self.push(name, help, kind, m);
    }

    fn samples(&mut self, edge: &str, samples: &[Sample], kind: MetricType, what: &str) {
        for s in samples {
            let help = help_for(&s.name, &s.source, what);
            self.value(&s.name, &help, kind, vec![label("edge", edge)], s.value);
        }
    }

    fn labelled(&mut self, edge: &str, fams: &[Labelled], kind: MetricType, what: &str) {
        for f in fams {
            let help = help_for(&f.name, &f.source, what);
            for (k, v) in &f.values {
                let labels = vec![label("edge", edge), label(&f.label, k)];
                self.value(&f.name, &help, kind, labels, *v);
            }
        }
    }
}

/// Builds all metric families for one scrape, sorted by name.
pub fn families(scrapes: &[EdgeScrape], report: &SelfReport) -> Vec<MetricFamily> {
    use MetricType::{COUNTER, GAUGE, HISTOGRAM};
    let mut f = Families::default();
    f.value(
        "edge_exporter_build_info",
        "The exporter's version as a label; always 1. Compare with edge_module_info's version when an upgrade misbehaves.",
        GAUGE,
        vec![label("version", EXPORTER_VERSION)],
        1.0,
    );
    f.value(
        "edge_exporter_scrape_duration_seconds",
        "Wall time of the scrape that produced this page, all edges together: it must stay below Prometheus' scrape_timeout.",
        GAUGE,
        Vec::new(),
        report.scrape_seconds,
    );
    for (edge, kind, n) in &report.errors {
        f.value(
            "edge_exporter_scrape_errors_total",
            "Scrapes of an edge that failed since the exporter started, by kind: connect (nothing listens), timeout, auth (credentials refused), no_module (Redis without edgecache), other.",
            COUNTER,
            vec![label("edge", edge), label("kind", kind.as_str())],
            *n as f64,
        );
    }
    for s in scrapes {
        let edge = s.edge.as_str();
        let e = || vec![label("edge", edge)];
        f.value(
            "edge_up",
            "Whether this edge answered the last scrape with the edgecache module's INFO (1) or not (0: unreachable, timed out, or the module is not loaded).",
            GAUGE,
            e(),
            if s.up { 1.0 } else { 0.0 },
        );
        f.value(
            "edge_scrape_duration_seconds",
            "Time the exporter spent scraping this edge.",
            GAUGE,
            e(),
            s.duration_seconds,
        );
        if let Some(st) = &s.stats {
            f.value(
                "edge_scrape_dropped_histograms",
                "Histograms in this edge's INFO left out of the last scrape because their buckets were not a valid cumulative histogram (the exporter log says why).",
                GAUGE,
                e(),
                st.dropped_histograms.len() as f64,
            );
            f.samples(edge, &st.counters, COUNTER, "Counter");
            f.samples(edge, &st.gauges, GAUGE, "Gauge");
            f.labelled(edge, &st.labelled_counters, COUNTER, "Counter");
            f.labelled(edge, &st.labelled_gauges, GAUGE, "Gauge");
            for h in &st.histograms {
                let mut ph = proto::Histogram::default();
                ph.set_sample_count(h.count);
                ph.set_sample_sum(h.sum);
                ph.set_bucket(
                    h.buckets
                        .iter()
                        .map(|(le, c)| {
                            let mut b = proto::Bucket::default();
                            b.set_upper_bound(*le);
                            b.set_cumulative_count(*c);
                            b
                        })
                        .collect(),
                );
                let mut m = Metric::from_label(e());
                m.set_histogram(ph);
                let help = help_for(&h.name, &h.source, "Histogram");
                f.push(&h.name, &help, HISTOGRAM, m);
            }
            let mut labels = e();
            labels.extend(st.info_labels.iter().map(|(k, v)| label(k, v)));
            if let Some(v) = &s.module_version {
                labels.push(label("version", v));
            }
            f.value(
                "edge_module_info",
                "The module's version (from INFO modules) and its non-numeric INFO edge fields (such as the cache policy) as labels; always 1.",
                GAUGE,
                labels,
                1.0,
            );
        }
        for c in &s.commands {
            let labels = || vec![label("edge", edge), label("command", &c.command)];
            let per_cmd: [(&str, &str, f64); 4] = [
                (
                    "edge_command_calls_total",
                    "Calls of each EDGE.* command (INFO commandstats).",
                    c.calls,
                ),
                (
                    "edge_command_duration_seconds_total",
                    "Time spent in each EDGE.* command, in seconds (INFO commandstats).",
                    c.seconds,
                ),
                (
                    "edge_command_rejected_calls_total",
                    "EDGE.* calls rejected before running (INFO commandstats).",
                    c.rejected_calls,
                ),
                (
                    "edge_command_failed_calls_total",
                    "EDGE.* calls that returned an error (INFO commandstats).",
                    c.failed_calls,
                ),
            ];
            for (name, help, v) in per_cmd {
                f.value(name, help, COUNTER, labels(), v);
            }
        }
    }
    f.0.into_values().collect()
}

/// A collector that hands out one scrape's prebuilt families exactly as built.
struct Snapshot(Vec<MetricFamily>);

impl Collector for Snapshot {
    fn desc(&self) -> Vec<&Desc> {
        Vec::new()
    }
    fn collect(&self) -> Vec<MetricFamily> {
        self.0.clone()
    }
}

/// A registry holding one scrape, so callers can gather it the standard way (and the
/// registry's sorting and merging rules apply).
pub fn build_registry(scrapes: &[EdgeScrape], report: &SelfReport) -> Registry {
    let r = Registry::new();
    r.register(Box::new(Snapshot(families(scrapes, report))))
        .expect("a fresh registry accepts one collector");
    r
}

/// The Prometheus text exposition of one scrape.
pub fn render(scrapes: &[EdgeScrape], report: &SelfReport) -> String {
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&build_registry(scrapes, report).gather(), &mut buf)
        .expect("families built here always have a name and metrics");
    String::from_utf8(buf).expect("text encoder writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::info::{classify, parse_commandstats, parse_info, SAMPLE};

    fn sample_scrape(edge: &str) -> EdgeScrape {
        EdgeScrape {
            edge: edge.into(),
            up: true,
            duration_seconds: 0.002,
            stats: Some(classify(&parse_info(SAMPLE))),
            commands: parse_commandstats(
                "cmdstat_edge.record:calls=15,usec=150,usec_per_call=10.00,rejected_calls=0,failed_calls=1\n",
                "edge.",
            ),
            error: None,
            module_version: Some("1".into()),
        }
    }

    fn has_line(text: &str, line: &str) {
        assert!(
            text.lines().any(|l| l == line),
            "missing line {line:?} in:\n{text}"
        );
    }

    #[test]
    fn renders_the_sample() {
        let t = render(&[sample_scrape("edge-a")], &SelfReport::default());
        has_line(&t, "# TYPE edge_records_total counter");
        has_line(&t, "edge_records_total{edge=\"edge-a\"} 15");
        has_line(&t, "# TYPE edge_users gauge");
        has_line(&t, "edge_users{edge=\"edge-a\"} 5");
        has_line(&t, "edge_cache_capacity_bytes{edge=\"edge-a\"} 1073741824");
        has_line(&t, "# TYPE edge_predict_latency_seconds histogram");
        has_line(
            &t,
            "edge_predict_latency_seconds_bucket{edge=\"edge-a\",le=\"0.000025\"} 3",
        );
        has_line(
            &t,
            "edge_predict_latency_seconds_bucket{edge=\"edge-a\",le=\"+Inf\"} 5",
        );
        has_line(
            &t,
            "edge_predict_latency_seconds_sum{edge=\"edge-a\"} 0.000104",
        );
        has_line(&t, "edge_predict_latency_seconds_count{edge=\"edge-a\"} 5");
        has_line(
            &t,
            "edge_device_views_total{edge=\"edge-a\",device=\"TV\"} 4",
        );
        has_line(
            &t,
            "edge_module_info{edge=\"edge-a\",cache_policy=\"predictive\",version=\"1\"} 1",
        );
        has_line(
            &t,
            "edge_command_calls_total{edge=\"edge-a\",command=\"edge.record\"} 15",
        );
        has_line(
            &t,
            "edge_command_duration_seconds_total{edge=\"edge-a\",command=\"edge.record\"} 0.00015",
        );
        has_line(&t, "edge_up{edge=\"edge-a\"} 1");
        // Every family has HELP and TYPE.
        let helps = t.lines().filter(|l| l.starts_with("# HELP ")).count();
        let types = t.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(helps, types);
        assert!(helps > 20);
    }

    #[test]
    fn every_sample_field_has_real_help() {
        let t = render(&[sample_scrape("a")], &SelfReport::default());
        for help in t.lines().filter(|l| l.starts_with("# HELP ")) {
            assert!(!help.contains(crate::catalog::UNDOCUMENTED), "{help}");
            assert!(!help.contains("from INFO edge field"), "{help}");
        }
    }

    #[test]
    fn the_exporter_reports_on_itself() {
        let report = SelfReport {
            scrape_seconds: 0.25,
            errors: vec![
                ("a".into(), ScrapeError::Connect, 0),
                ("b".into(), ScrapeError::Connect, 3),
                ("b".into(), ScrapeError::Timeout, 1),
            ],
        };
        let t = render(&[sample_scrape("a")], &report);
        has_line(
            &t,
            &format!("edge_exporter_build_info{{version=\"{EXPORTER_VERSION}\"}} 1"),
        );
        has_line(&t, "edge_exporter_scrape_duration_seconds 0.25");
        has_line(
            &t,
            "edge_exporter_scrape_errors_total{edge=\"a\",kind=\"connect\"} 0",
        );
        has_line(
            &t,
            "edge_exporter_scrape_errors_total{edge=\"b\",kind=\"connect\"} 3",
        );
        has_line(
            &t,
            "edge_exporter_scrape_errors_total{edge=\"b\",kind=\"timeout\"} 1",
        );
        has_line(&t, "# TYPE edge_exporter_scrape_errors_total counter");
    }

    #[test]
    fn a_down_edge_still_reports_up_zero_next_to_a_live_one() {
        let down = EdgeScrape {
            edge: "10.0.0.9:6379".into(),
            ..EdgeScrape::default()
        };
        let t = render(&[sample_scrape("a"), down], &SelfReport::default());
        has_line(&t, "edge_up{edge=\"a\"} 1");
        has_line(&t, "edge_up{edge=\"10.0.0.9:6379\"} 0");
        assert_eq!(t.matches("# TYPE edge_up gauge").count(), 1);
        assert!(!t.contains("edge_users{edge=\"10.0.0.9:6379\"}"));
    }

    #[test]
    fn families_merge_edges_and_are_sorted() {
        let fams = families(
            &[sample_scrape("a"), sample_scrape("b")],
            &SelfReport::default(),
        );
        let names: Vec<&str> = fams.iter().map(|f| f.name()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        let up = fams.iter().find(|f| f.name() == "edge_up").unwrap();
        assert_eq!(up.get_metric().len(), 2);
        assert!(fams.iter().all(|f| !f.help().is_empty()));
    }

    #[test]
    fn a_non_cumulative_histogram_is_left_out() {
        // The second bucket holds fewer observations than the first: Prometheus would
        // reject (or mis-compute) it, so the family must not appear at all.
        let text = "edge_users:5\n\
edge_predict_latency_us:le_1=0,le_10=4,le_100=2,le_inf=4\n\
edge_predict_latency_us_sum:104\n\
edge_predict_latency_us_count:4\n";
        let s = EdgeScrape {
            edge: "a".into(),
            up: true,
            stats: Some(classify(&parse_info(text))),
            ..EdgeScrape::default()
        };
        let t = render(&[s, sample_scrape("b")], &SelfReport::default());
        assert!(
            !t.contains("edge_predict_latency_seconds_bucket{edge=\"a\""),
            "{t}"
        );
        assert!(!t.contains("edge_predict_latency_seconds_count{edge=\"a\"}"));
        assert!(!t.contains("edge_predict_latency_seconds_sum{edge=\"a\"}"));
        assert!(!t.contains("edge_predict_latency_us"), "{t}");
        has_line(&t, "edge_scrape_dropped_histograms{edge=\"a\"} 1");
        has_line(&t, "edge_users{edge=\"a\"} 5");
        // The other edge's valid histogram is still there.
        has_line(&t, "edge_predict_latency_seconds_count{edge=\"b\"} 5");
        has_line(&t, "edge_scrape_dropped_histograms{edge=\"b\"} 0");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut s = sample_scrape("a");
        let st = s.stats.as_mut().unwrap();
        st.labelled_counters[0].values = vec![("Smart \"TV\"\n".into(), 1.0)];
        let t = render(&[s], &SelfReport::default());
        has_line(
            &t,
            "edge_device_views_total{edge=\"a\",device=\"Smart \\\"TV\\\"\\n\"} 1",
        );
    }
}
