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

use crate::info::{CommandStat, EdgeStats, Labelled, Sample};

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
}

/// HELP text for the fields the module exposes today; unknown fields get a generic text
/// naming their INFO source, so a new module field still passes `promtool check metrics`.
fn known_help(name: &str) -> Option<&'static str> {
    Some(match name {
        "edge_users" => "Viewers with a model key on this edge.",
        "edge_items" => "Items in the global catalog.",
        "edge_transitions" => "Item-to-item transitions held by the global model.",
        "edge_records_total" => "Viewing events recorded (EDGE.RECORD).",
        "edge_skips_total" => "Recorded views short enough to count as skips.",
        "edge_predictions_total" => "Prediction requests answered (EDGE.PREDICT).",
        "edge_plays_total" => "Play requests served through the edge cache (EDGE.PLAY).",
        "edge_forgets_total" => "Viewers whose history was forgotten.",
        "edge_cache_hits_total" => "Plays served from the edge cache.",
        "edge_cache_misses_total" => "Plays that missed the edge cache.",
        "edge_prefetches_total" => "Items prefetched into the cache from predictions.",
        "edge_prefetch_used_total" => "Prefetched items later played from the cache.",
        "edge_prefetch_unused_evicted_total" => "Prefetched items evicted without being played.",
        "edge_cache_evictions_total" => "Items evicted from the edge cache.",
        "edge_cache_items" => "Items currently in the edge cache.",
        "edge_cache_bytes" => "Bytes currently held by the edge cache.",
        "edge_cache_capacity_bytes" => "Configured edge cache capacity in bytes.",
        "edge_model_memory_bytes" => "Approximate memory used by the prediction model.",
        "edge_learner_batches_total" => "Batches of row updates applied on the learner thread, off the server's main thread.",
        "edge_learner_fork_waits_total" => "Forks (BGSAVE, AOF rewrite, full sync) that waited for a batch on the learner thread.",
        "edge_prefetch_budget" => "Origin fetches per request the prefetcher may spend (0: fixed prefetch-k).",
        "edge_prefetch_price" => "Confidence a prediction needs to be prefetched, set by the budget controller.",
        "edge_prefetch_depth" => "Predictions the prefetcher looks at per play.",
        "edge_prefetch_credit" => "Origin fetches the budget controller can spend now (negative: overspent).",
        "edge_predict_latency_seconds" => "Time spent computing EDGE.PREDICT answers, in seconds (memoized answers count as under a microsecond).",
        "edge_device_views_total" => "Viewing events recorded, by device.",
        _ => return None,
    })
}

fn help_for(name: &str, source: &str, kind: &str) -> String {
    known_help(name).map_or_else(
        || format!("{kind} from INFO edge field {source}."),
        str::to_owned,
    )
}

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
pub fn families(scrapes: &[EdgeScrape]) -> Vec<MetricFamily> {
    use MetricType::{COUNTER, GAUGE, HISTOGRAM};
    let mut f = Families::default();
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
            f.value(
                "edge_module_info",
                "Non-numeric INFO edge fields (such as the cache policy) as labels; always 1.",
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
pub fn build_registry(scrapes: &[EdgeScrape]) -> Registry {
    let r = Registry::new();
    r.register(Box::new(Snapshot(families(scrapes))))
        .expect("a fresh registry accepts one collector");
    r
}

/// The Prometheus text exposition of one scrape.
pub fn render(scrapes: &[EdgeScrape]) -> String {
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&build_registry(scrapes).gather(), &mut buf)
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
        let t = render(&[sample_scrape("edge-a")]);
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
            "edge_module_info{edge=\"edge-a\",cache_policy=\"predictive\"} 1",
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
    fn a_down_edge_still_reports_up_zero_next_to_a_live_one() {
        let down = EdgeScrape {
            edge: "10.0.0.9:6379".into(),
            ..EdgeScrape::default()
        };
        let t = render(&[sample_scrape("a"), down]);
        has_line(&t, "edge_up{edge=\"a\"} 1");
        has_line(&t, "edge_up{edge=\"10.0.0.9:6379\"} 0");
        assert_eq!(t.matches("# TYPE edge_up gauge").count(), 1);
        assert!(!t.contains("edge_users{edge=\"10.0.0.9:6379\"}"));
    }

    #[test]
    fn families_merge_edges_and_are_sorted() {
        let fams = families(&[sample_scrape("a"), sample_scrape("b")]);
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
        let t = render(&[s, sample_scrape("b")]);
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
        let t = render(&[s]);
        has_line(
            &t,
            "edge_device_views_total{edge=\"a\",device=\"Smart \\\"TV\\\"\\n\"} 1",
        );
    }
}
