//! Parsing of `INFO edge` and `INFO commandstats` replies into typed samples.
//!
//! Everything here is pure (text in, plain data out) so the mapping rules can be unit
//! tested without a server. The rules are generic, because the module grows new fields
//! (federation, baselines, ...) faster than the exporter is released:
//!
//! * a numeric field ending in `_total` is a counter, any other numeric field a gauge;
//! * a dictionary of `le_<bound>=<cumulative count>` pairs is a histogram, with its
//!   `<name>_sum` and `<name>_count` siblings; one whose buckets are not a valid
//!   cumulative histogram is dropped (and reported), never exported half-right;
//! * any other dictionary becomes one labelled series per key (a counter when its name
//!   ends in `_total`, a gauge otherwise), the label being the word after `edge_`
//!   (`edge_device_views_total:TV=4` → `edge_device_views_total{device="TV"} 4`);
//! * a non-numeric field (such as `edge_cache_policy:predictive`) becomes a label of the
//!   `edge_module_info` series;
//! * a unit abbreviation in a name (`_us`, `_ms`, `_ns`) is rewritten to `_seconds` and
//!   the value scaled, since Prometheus wants base units.

use std::collections::{BTreeMap, HashSet};

/// One raw INFO value, before any Prometheus meaning is attached, so classification can
/// look at siblings (a histogram needs its `_sum` and `_count`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An integer or real field.
    Number(f64),
    /// A `k=v,k=v` field whose values are all numeric.
    Dict(Vec<(String, f64)>),
    /// Anything else (enums such as the cache policy).
    Text(String),
}

/// Splits an INFO reply into `(field, value)` pairs in reply order; comments, blank lines
/// and lines without a colon are skipped, so section headers and future formatting
/// quirks cannot break a scrape.
pub fn parse_info(text: &str) -> Vec<(String, Value)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), parse_value(v.trim())))
        .collect()
}

fn parse_value(v: &str) -> Value {
    if let Some(n) = parse_number(v) {
        return Value::Number(n);
    }
    if v.contains('=') {
        let pairs: Option<Vec<(String, f64)>> = v
            .split(',')
            .map(|p| {
                let (k, n) = p.split_once('=')?;
                let k = k.trim();
                (!k.is_empty()).then_some(())?;
                Some((k.to_owned(), parse_number(n.trim())?))
            })
            .collect();
        if let Some(pairs) = pairs {
            return Value::Dict(pairs);
        }
    }
    Value::Text(v.to_owned())
}

fn parse_number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// A single unlabelled sample, named as it will be exported.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Prometheus metric name (already unit-normalised).
    pub name: String,
    /// The INFO field it came from, so HELP text can name its source.
    pub source: String,
    /// Value in base units.
    pub value: f64,
}

/// A cumulative histogram rebuilt from the module's buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Prometheus metric name without the `_bucket`/`_sum`/`_count` suffix.
    pub name: String,
    /// The INFO dictionary it came from.
    pub source: String,
    /// `(upper bound in base units, cumulative count)`, ascending, without `+Inf`.
    pub buckets: Vec<(f64, u64)>,
    /// Sum of observations in base units.
    pub sum: f64,
    /// Number of observations (the `+Inf` bucket).
    pub count: u64,
}

/// A dictionary field exported as one series per key.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    /// Prometheus metric name.
    pub name: String,
    /// The INFO field it came from.
    pub source: String,
    /// Label that carries the dictionary key.
    pub label: String,
    /// `(key, value)` pairs.
    pub values: Vec<(String, f64)>,
}

/// Everything one `INFO edge` reply says, typed for Prometheus.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EdgeStats {
    /// Monotonic counters (`_total`).
    pub counters: Vec<Sample>,
    /// Point-in-time values.
    pub gauges: Vec<Sample>,
    /// Latency histograms.
    pub histograms: Vec<Histogram>,
    /// Labelled counters (views by device).
    pub labelled_counters: Vec<Labelled>,
    /// Labelled gauges (any other numeric dictionary).
    pub labelled_gauges: Vec<Labelled>,
    /// Non-numeric fields as `(label name, value)`, exported on `edge_module_info`.
    pub info_labels: Vec<(String, String)>,
    /// Histograms left out because their buckets were inconsistent: exporting them would
    /// make Prometheus reject the scrape or compute nonsense quantiles.
    pub dropped_histograms: Vec<DroppedHistogram>,
}

/// A histogram dictionary that failed validation, kept so the exporter can say why.
#[derive(Debug, Clone, PartialEq)]
pub struct DroppedHistogram {
    /// The Prometheus name it would have had.
    pub name: String,
    /// The INFO dictionary it came from.
    pub source: String,
    /// What is wrong with it, for the log.
    pub reason: String,
}

/// Whether an `INFO edge` reply came from the edgecache module. Redis answers a section
/// it does not know with an empty reply, so a server without the module (or where it
/// failed to load) has no `edge_` field at all: such an edge cannot serve EDGE commands
/// and must not count as up.
pub fn has_module_fields(fields: &[(String, Value)]) -> bool {
    fields.iter().any(|(k, _)| k.starts_with("edge_"))
}

/// Names the exporter itself produces; INFO fields that would collide are dropped so a
/// module upgrade can never make the output invalid.
pub const RESERVED_NAMES: &[&str] = &[
    "edge_up",
    "edge_scrape_duration_seconds",
    "edge_scrape_dropped_histograms",
    "edge_module_info",
    "edge_command_calls_total",
    "edge_command_duration_seconds_total",
    "edge_command_rejected_calls_total",
    "edge_command_failed_calls_total",
    "edge_exporter_build_info",
    "edge_exporter_scrape_duration_seconds",
    "edge_exporter_scrape_errors_total",
];

/// Label names that dictionary keys and text fields must not take over (the target label,
/// the histogram's own label, and the exporter's `command`, `kind` and `version`).
const RESERVED_LABELS: &[&str] = &["edge", "le", "quantile", "command", "kind", "version"];

/// Types a parsed `INFO edge` reply. Fields not starting with `edge_`, with invalid
/// names, or colliding with the exporter's own series are skipped.
pub fn classify(fields: &[(String, Value)]) -> EdgeStats {
    let mut out = EdgeStats::default();
    let mut used = HashSet::new();
    let numbers: BTreeMap<&str, f64> = fields
        .iter()
        .filter_map(|(k, v)| match v {
            Value::Number(n) => Some((k.as_str(), *n)),
            _ => None,
        })
        .collect();

    // Histograms first: they consume their `_sum` and `_count` siblings.
    let mut consumed: HashSet<String> = HashSet::new();
    for (field, value) in fields {
        let Value::Dict(pairs) = value else { continue };
        let Some(buckets) = histogram_buckets(pairs) else {
            continue;
        };
        if !field.starts_with("edge_") {
            continue;
        }
        let (name, scale) = normalize_units(field);
        if !valid_name(&name) || reserved(&name) || !used.insert(name.clone()) {
            continue;
        }
        let sum_key = format!("{field}_sum");
        let count_key = format!("{field}_count");
        let count = numbers.get(count_key.as_str()).copied();
        let sum = numbers.get(sum_key.as_str()).map_or(0.0, |v| scale(*v));
        consumed.insert(sum_key);
        consumed.insert(count_key);
        let (bounds, count) = match check_histogram(&buckets, count) {
            Ok(checked) => checked,
            Err(reason) => {
                out.dropped_histograms.push(DroppedHistogram {
                    name,
                    source: field.clone(),
                    reason,
                });
                continue;
            }
        };
        out.histograms.push(Histogram {
            name,
            source: field.clone(),
            buckets: bounds.into_iter().map(|(b, c)| (scale(b), c)).collect(),
            sum,
            count,
        });
    }

    for (field, value) in fields {
        if !field.starts_with("edge_") || consumed.contains(field) {
            continue;
        }
        match value {
            Value::Number(n) => {
                let (name, scale) = normalize_units(field);
                if !valid_name(&name) || reserved(&name) || !used.insert(name.clone()) {
                    continue;
                }
                let s = Sample {
                    name,
                    source: field.clone(),
                    value: scale(*n),
                };
                if is_counter(&s.name) {
                    out.counters.push(s);
                } else {
                    out.gauges.push(s);
                }
            }
            Value::Dict(pairs) => {
                if histogram_buckets(pairs).is_some() {
                    continue;
                }
                let (name, scale) = normalize_units(field);
                if !valid_name(&name) || reserved(&name) || !used.insert(name.clone()) {
                    continue;
                }
                let l = Labelled {
                    label: dict_label(field),
                    name,
                    source: field.clone(),
                    values: pairs.iter().map(|(k, v)| (k.clone(), scale(*v))).collect(),
                };
                if is_counter(&l.name) {
                    out.labelled_counters.push(l);
                } else {
                    out.labelled_gauges.push(l);
                }
            }
            Value::Text(t) => {
                let label: String = field["edge_".len()..]
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                if valid_name(&label)
                    && !label.starts_with("__")
                    && !RESERVED_LABELS.contains(&label.as_str())
                    && !out.info_labels.iter().any(|(l, _)| *l == label)
                {
                    out.info_labels.push((label, t.clone()));
                }
            }
        }
    }
    out
}

fn is_counter(name: &str) -> bool {
    name.ends_with("_total")
}

fn reserved(name: &str) -> bool {
    RESERVED_NAMES.contains(&name)
        || ["_bucket", "_sum", "_count"]
            .iter()
            .any(|s| name.ends_with(s))
}

/// The `(bound, count)` buckets of a `le_*` dictionary in reply order, `le_inf` as +∞,
/// unchecked; `None` when the dictionary is not a histogram (a key without `le_` or with
/// a bound that is not a number).
fn histogram_buckets(pairs: &[(String, f64)]) -> Option<Vec<(f64, f64)>> {
    if pairs.is_empty() {
        return None;
    }
    pairs
        .iter()
        .map(|(k, v)| {
            let b = k.strip_prefix("le_")?;
            let le = if b == "inf" {
                f64::INFINITY
            } else {
                parse_number(b)?
            };
            Some((le, *v))
        })
        .collect()
}

/// Largest count taken as exact: an `f64` holds every whole number up to 2^53.
const MAX_EXACT_COUNT: f64 = 9_007_199_254_740_992.0;

fn whole_count(v: f64) -> Option<u64> {
    (v >= 0.0 && v.fract() == 0.0 && v <= MAX_EXACT_COUNT).then_some(v as u64)
}

/// Checks that `buckets` (from [`histogram_buckets`]) and the `_count` field form a valid
/// cumulative histogram, the only kind Prometheus accepts: bounds strictly increasing in
/// reply order (`le_inf` last), counts whole and non-decreasing, `_count` equal to
/// `le_inf` when both are given and never below the last bucket. Returns the finite
/// buckets and the count, or why the histogram must be dropped.
fn check_histogram(
    buckets: &[(f64, f64)],
    count: Option<f64>,
) -> Result<(Vec<(f64, u64)>, u64), String> {
    let mut out: Vec<(f64, u64)> = Vec::with_capacity(buckets.len());
    let mut inf = None;
    let mut prev: Option<(f64, u64)> = None;
    for &(le, v) in buckets {
        let c = whole_count(v)
            .ok_or_else(|| format!("bucket le={le} has count {v}, not a whole number >= 0"))?;
        if let Some((ple, pc)) = prev {
            if le <= ple {
                return Err(format!(
                    "bucket bounds are not increasing (le={ple} then le={le})"
                ));
            }
            if c < pc {
                return Err(format!(
                    "bucket counts are not cumulative (le={ple} has {pc}, le={le} has {c})"
                ));
            }
        }
        prev = Some((le, c));
        if le == f64::INFINITY {
            inf = Some(c);
        } else {
            out.push((le, c));
        }
    }
    let last = out.last().map_or(0, |b| b.1);
    let count = match count {
        Some(v) => {
            whole_count(v).ok_or_else(|| format!("_count is {v}, not a whole number >= 0"))?
        }
        None => inf.unwrap_or(last),
    };
    if let Some(i) = inf.filter(|&i| i != count) {
        return Err(format!("_count {count} differs from le_inf {i}"));
    }
    if count < last {
        return Err(format!("_count {count} is below the last bucket's {last}"));
    }
    Ok((out, count))
}

/// The label a dictionary's keys go into: `device` for `edge_device_views_total`, and in
/// general the first word after `edge_` (`edge_peer_syncs_total` → `peer`).
fn dict_label(field: &str) -> String {
    let rest = field.strip_prefix("edge_").unwrap_or(field);
    let word = rest.split('_').next().unwrap_or("key");
    if valid_name(word) && !RESERVED_LABELS.contains(&word) {
        word.to_owned()
    } else {
        "key".to_owned()
    }
}

/// Rewrites a unit abbreviation word to `seconds` and returns the scale to base units.
/// Division by a power of ten keeps `25 µs` printing as `0.000025`, not `2.4999e-5`.
fn normalize_units(field: &str) -> (String, fn(f64) -> f64) {
    let words: Vec<&str> = field.split('_').collect();
    for (i, w) in words.iter().enumerate() {
        let scale: fn(f64) -> f64 = match *w {
            "us" => |v| v / 1e6,
            "ms" => |v| v / 1e3,
            "ns" => |v| v / 1e9,
            _ => continue,
        };
        let mut renamed = words.clone();
        renamed[i] = "seconds";
        return (renamed.join("_"), scale);
    }
    (field.to_owned(), |v| v)
}

/// Whether `s` is a valid Prometheus metric or label name (without colons, which are
/// reserved for recording rules).
pub fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Redis' per-command statistics for one module command.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandStat {
    /// Lower-case command name, e.g. `edge.record`.
    pub command: String,
    /// Calls since the last `CONFIG RESETSTAT`.
    pub calls: f64,
    /// Time spent in the command, in seconds.
    pub seconds: f64,
    /// Calls refused before running (ACL, OOM, arity...).
    pub rejected_calls: f64,
    /// Calls that ran and returned an error.
    pub failed_calls: f64,
}

/// Picks the commands starting with `prefix` (case-insensitive, e.g. `edge.`) out of an
/// `INFO commandstats` reply, so the module's commands can be told from the server's.
pub fn parse_commandstats(text: &str, prefix: &str) -> Vec<CommandStat> {
    let prefix = prefix.to_ascii_lowercase();
    let mut out: Vec<CommandStat> = parse_info(text)
        .into_iter()
        .filter_map(|(k, v)| {
            let cmd = k.strip_prefix("cmdstat_")?.to_ascii_lowercase();
            if !cmd.starts_with(&prefix) {
                return None;
            }
            let Value::Dict(pairs) = v else { return None };
            let get = |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| k == name)
                    .map_or(0.0, |(_, v)| *v)
            };
            Some(CommandStat {
                command: cmd,
                calls: get("calls"),
                seconds: get("usec") / 1e6,
                rejected_calls: get("rejected_calls"),
                failed_calls: get("failed_calls"),
            })
        })
        .collect();
    out.sort_by(|a, b| a.command.cmp(&b.command));
    out
}

/// The sample from the module's current build (issue #4).
#[cfg(test)]
pub(crate) const SAMPLE: &str = "# edge_stats\r\n\
edge_users:5\r\n\
edge_items:3\r\n\
edge_transitions:3\r\n\
edge_records_total:15\r\n\
edge_skips_total:0\r\n\
edge_predictions_total:5\r\n\
edge_plays_total:2\r\n\
edge_forgets_total:0\r\n\
edge_cache_hits_total:1\r\n\
edge_cache_misses_total:1\r\n\
edge_prefetches_total:1\r\n\
edge_prefetch_used_total:1\r\n\
edge_prefetch_unused_evicted_total:0\r\n\
edge_cache_evictions_total:0\r\n\
edge_cache_items:2\r\n\
edge_cache_bytes:2097152\r\n\
edge_cache_capacity_bytes:1073741824\r\n\
edge_cache_policy:predictive\r\n\
edge_model_memory_bytes:784\r\n\
\r\n\
# edge_latency\r\n\
edge_predict_latency_us:le_1=0,le_2=0,le_5=0,le_10=1,le_25=3,le_50=5,le_100=5,le_250=5,le_500=5,le_1000=5,le_2500=5,le_10000=5,le_inf=5\r\n\
edge_predict_latency_us_sum:104\r\n\
edge_predict_latency_us_count:5\r\n\
\r\n\
# edge_devices\r\n\
edge_device_views_total:TV=4\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(v: &'a [Sample], name: &str) -> &'a Sample {
        v.iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} missing from {v:?}"))
    }

    #[test]
    fn parses_values_of_every_shape() {
        let f = parse_info(SAMPLE);
        assert_eq!(f[0], ("edge_users".into(), Value::Number(5.0)));
        assert!(f.contains(&("edge_cache_policy".into(), Value::Text("predictive".into()))));
        assert!(f.contains(&(
            "edge_device_views_total".into(),
            Value::Dict(vec![("TV".into(), 4.0)])
        )));
        assert_eq!(f.len(), 23);
    }

    #[test]
    fn junk_lines_and_odd_values_do_not_break_parsing() {
        let f = parse_info("garbage\n# c\n\nedge_x:a=1,b\nedge_y:=3\nedge_z:nan\nedge_w: 7 \n");
        assert_eq!(
            f,
            vec![
                ("edge_x".into(), Value::Text("a=1,b".into())),
                ("edge_y".into(), Value::Text("=3".into())),
                ("edge_z".into(), Value::Text("nan".into())),
                ("edge_w".into(), Value::Number(7.0)),
            ]
        );
    }

    #[test]
    fn classifies_the_sample() {
        let s = classify(&parse_info(SAMPLE));
        assert_eq!(find(&s.counters, "edge_records_total").value, 15.0);
        assert_eq!(find(&s.counters, "edge_prefetch_used_total").value, 1.0);
        assert_eq!(s.counters.len(), 11);
        assert_eq!(find(&s.gauges, "edge_cache_bytes").value, 2097152.0);
        assert_eq!(find(&s.gauges, "edge_model_memory_bytes").value, 784.0);
        let gauges: Vec<&str> = s.gauges.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(
            gauges,
            [
                "edge_users",
                "edge_items",
                "edge_transitions",
                "edge_cache_items",
                "edge_cache_bytes",
                "edge_cache_capacity_bytes",
                "edge_model_memory_bytes"
            ]
        );
        assert_eq!(
            s.info_labels,
            [("cache_policy".into(), "predictive".into())]
        );
        assert_eq!(
            s.labelled_counters,
            [Labelled {
                name: "edge_device_views_total".into(),
                source: "edge_device_views_total".into(),
                label: "device".into(),
                values: vec![("TV".into(), 4.0)],
            }]
        );
        assert!(s.labelled_gauges.is_empty());
    }

    #[test]
    fn latency_buckets_become_a_histogram_in_seconds() {
        let s = classify(&parse_info(SAMPLE));
        assert_eq!(s.histograms.len(), 1);
        let h = &s.histograms[0];
        assert_eq!(h.name, "edge_predict_latency_seconds");
        assert_eq!(h.count, 5);
        assert_eq!(h.sum, 0.000104);
        assert_eq!(h.buckets.len(), 12);
        assert_eq!(h.buckets[0], (0.000001, 0));
        assert_eq!(h.buckets[3], (0.00001, 1));
        assert_eq!(h.buckets[4], (0.000025, 3));
        assert_eq!(h.buckets[11], (0.01, 5));
        assert_eq!(h.buckets[4].0.to_string(), "0.000025");
        // The _sum and _count fields are consumed, not re-exported as gauges.
        assert!(!s.gauges.iter().any(|g| g.name.contains("latency")));
    }

    #[test]
    fn unknown_fields_are_typed_generically() {
        let text = "edge_federation_peers:3\n\
edge_federation_merges_total:9\n\
edge_sync_lag_ms:1500\n\
edge_peer_pushes_total:a=1,b=2\n\
edge_queue_depth:hi=3,lo=4\n\
edge_mode:leader\n\
edge_up:1\n\
edge_weird-name:2\n\
redis_version:7.0\n\
edge_merge_latency_ms:le_1=1,le_10=2,le_inf=3\n";
        let s = classify(&parse_info(text));
        assert_eq!(find(&s.gauges, "edge_federation_peers").value, 3.0);
        assert_eq!(find(&s.gauges, "edge_sync_lag_seconds").value, 1.5);
        assert_eq!(find(&s.counters, "edge_federation_merges_total").value, 9.0);
        assert_eq!(s.labelled_counters[0].label, "peer");
        assert_eq!(s.labelled_gauges[0].name, "edge_queue_depth");
        assert_eq!(s.labelled_gauges[0].label, "queue");
        assert_eq!(s.info_labels, [("mode".into(), "leader".into())]);
        // Reserved, invalid and foreign names are dropped.
        assert!(!s.gauges.iter().any(|g| g.name == "edge_up"));
        assert!(!s.gauges.iter().any(|g| g.name.contains("weird")));
        assert!(!s.gauges.iter().any(|g| g.name.starts_with("redis")));
        // Histogram without _sum/_count: count from le_inf, sum unknown (0).
        let h = &s.histograms[0];
        assert_eq!(h.name, "edge_merge_latency_seconds");
        assert_eq!(h.buckets, [(0.001, 1), (0.01, 2)]);
        assert_eq!(h.count, 3);
    }

    #[test]
    fn inconsistent_histograms_are_dropped_with_a_reason() {
        let bad = [
            // Not cumulative: a later bucket holds fewer observations.
            ("le_1=0,le_10=5,le_100=3,le_inf=5", None, "not cumulative"),
            // Bounds out of order, or repeated.
            ("le_10=1,le_1=2,le_inf=2", None, "not increasing"),
            ("le_1=1,le_1=1,le_inf=1", None, "not increasing"),
            ("le_1=1,le_inf=1,le_10=1", None, "not increasing"),
            // +Inf below the last finite bucket.
            ("le_1=1,le_10=4,le_inf=3", None, "not cumulative"),
            // _count below the last bucket, or disagreeing with le_inf.
            ("le_1=1,le_10=4", Some("3"), "below the last bucket"),
            ("le_1=1,le_10=4,le_inf=4", Some("5"), "differs from le_inf"),
            // Counts that are not whole numbers.
            ("le_1=-1,le_inf=0", None, "not a whole number"),
            ("le_1=0.5,le_inf=1", None, "not a whole number"),
            ("le_1=1,le_inf=1", Some("1.5"), "not a whole number"),
        ];
        for (dict, count, why) in bad {
            let mut text = format!("edge_work_latency_us:{dict}\nedge_work_latency_us_sum:7\n");
            if let Some(c) = count {
                text.push_str(&format!("edge_work_latency_us_count:{c}\n"));
            }
            text.push_str("edge_users:2\n");
            let s = classify(&parse_info(&text));
            assert!(s.histograms.is_empty(), "{dict} kept: {:?}", s.histograms);
            assert_eq!(s.dropped_histograms.len(), 1, "{dict}");
            let d = &s.dropped_histograms[0];
            assert_eq!(d.name, "edge_work_latency_seconds");
            assert_eq!(d.source, "edge_work_latency_us");
            assert!(d.reason.contains(why), "{dict}: {}", d.reason);
            // Its siblings are not re-exported as gauges; the rest of the reply is kept.
            let gauges: Vec<&str> = s.gauges.iter().map(|g| g.name.as_str()).collect();
            assert_eq!(gauges, ["edge_users"], "{dict}");
        }
    }

    #[test]
    fn consistent_histograms_pass_the_checks() {
        let ok = [
            ("le_1=0,le_10=0,le_inf=0", None, 0),
            ("le_1=2,le_10=2,le_inf=5", Some("5"), 5),
            ("le_1=2,le_10=3", None, 3),
            ("le_1=2,le_10=3", Some("9"), 9),
        ];
        for (dict, count, want) in ok {
            let mut text = format!("edge_work_latency_us:{dict}\n");
            if let Some(c) = count {
                text.push_str(&format!("edge_work_latency_us_count:{c}\n"));
            }
            let s = classify(&parse_info(&text));
            assert!(
                s.dropped_histograms.is_empty(),
                "{dict}: {:?}",
                s.dropped_histograms
            );
            assert_eq!(s.histograms.len(), 1, "{dict}");
            assert_eq!(s.histograms[0].count, want, "{dict}");
        }
        // The module's own sample is valid.
        assert!(classify(&parse_info(SAMPLE)).dropped_histograms.is_empty());
    }

    #[test]
    fn only_replies_with_edge_fields_come_from_the_module() {
        assert!(has_module_fields(&parse_info(SAMPLE)));
        // What Redis without the module answers to `INFO edge`: nothing.
        assert!(!has_module_fields(&parse_info("")));
        assert!(!has_module_fields(&parse_info("\r\n")));
        // Another section's fields do not count either.
        assert!(!has_module_fields(&parse_info(
            "# Server\r\nredis_version:7.0.15\r\n"
        )));
    }

    #[test]
    fn commandstats_keeps_only_module_commands() {
        let text = "# Commandstats\r\n\
cmdstat_info:calls=3,usec=300,usec_per_call=100.00,rejected_calls=0,failed_calls=0\r\n\
cmdstat_edge.record:calls=15,usec=150,usec_per_call=10.00,rejected_calls=1,failed_calls=2\r\n\
cmdstat_EDGE.PREDICT:calls=5,usec=50,usec_per_call=10.00,rejected_calls=0,failed_calls=0\r\n";
        let c = parse_commandstats(text, "edge.");
        assert_eq!(c.len(), 2);
        assert_eq!(
            c[1],
            CommandStat {
                command: "edge.record".into(),
                calls: 15.0,
                seconds: 0.00015,
                rejected_calls: 1.0,
                failed_calls: 2.0,
            }
        );
        assert_eq!(c[0].command, "edge.predict");
    }

    #[test]
    fn names_are_validated() {
        assert!(valid_name("edge_users"));
        assert!(valid_name("_x1"));
        assert!(!valid_name("1x"));
        assert!(!valid_name("a:b"));
        assert!(!valid_name(""));
        assert!(!valid_name("a-b"));
    }
}
