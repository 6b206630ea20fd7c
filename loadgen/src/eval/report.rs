//! The evaluation report: the JSON contract, the stdout table.
//!
//! JSON contract (documented in the README):
//! `{"events": N, "k": 10, "edge_source": "in-process"|"redis",
//!   "predictors": {"edge": {"hr_at_k": …, "mrr_at_k": …}, "popularity": {…}, "markov": {…},
//!                  "markov_popularity": {…}},
//!   "caches": [{"policy": "lru", "capacity": 100, "capacity_unit": "items",
//!               "hit_ratio": …, "origin_fetches_per_request": …, "prefetch_precision": null,
//!               "requests": …, "hits": …, "prefetches": …, "settings": null}, …]}`
//! Rows of the module's cache have policies starting with `edge` (one per capacity and
//! sweep point, with their `settings`); demand baselines have `prefetch_precision: null`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::logs::Malformed;

/// HR@k and MRR@k of one predictor.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct PredictorScore {
    /// Fraction of events whose item was in the top k.
    pub hr_at_k: f64,
    /// Mean reciprocal rank of the item within the top k (0 when absent).
    pub mrr_at_k: f64,
}

/// One cache at one capacity (and, for the edge, one sweep point).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CacheRow {
    /// `lru`, `lfu`, `arc`, `s3fifo`, `w-tinylfu`, `belady`, or `edge…` for the module.
    pub policy: String,
    /// Capacity in `capacity_unit`.
    pub capacity: u64,
    /// `items` (unit-size items) or `bytes`.
    pub capacity_unit: &'static str,
    /// Requests served from the cache / requests.
    pub hit_ratio: f64,
    /// (Misses + prefetched items) / requests.
    pub origin_fetches_per_request: f64,
    /// Prefetched items used before eviction / prefetched items; `null` for demand caches
    /// and for edge runs that prefetched nothing.
    pub prefetch_precision: Option<f64>,
    /// Requests played.
    pub requests: u64,
    /// Hits.
    pub hits: u64,
    /// Items fetched by prefetches.
    pub prefetches: u64,
    /// The engine settings of an edge row (`null` for baselines).
    pub settings: Option<BTreeMap<String, String>>,
}

impl CacheRow {
    /// Builds a row from raw counts.
    pub fn new(
        policy: String,
        capacity: u64,
        capacity_unit: &'static str,
        requests: u64,
        hits: u64,
        prefetches: Option<(u64, u64)>,
    ) -> Self {
        let n = requests.max(1) as f64;
        let (pf, used) = prefetches.unwrap_or((0, 0));
        CacheRow {
            policy,
            capacity,
            capacity_unit,
            hit_ratio: hits as f64 / n,
            origin_fetches_per_request: ((requests - hits) + pf) as f64 / n,
            prefetch_precision: prefetches.and_then(|_| (pf > 0).then(|| used as f64 / pf as f64)),
            requests,
            hits,
            prefetches: pf,
            settings: None,
        }
    }

    /// Whether this row is the module's cache.
    pub fn is_edge(&self) -> bool {
        self.policy.starts_with("edge")
    }
}

/// What was read.
#[derive(Debug, Clone, Serialize)]
pub struct InputInfo {
    /// The file.
    pub file: String,
    /// Its format.
    pub format: crate::logs::Format,
    /// Distinct users.
    pub users: usize,
    /// Distinct items.
    pub items: usize,
    /// Malformed lines skipped.
    pub malformed: u64,
    /// The first few malformed lines.
    pub malformed_examples: Vec<Malformed>,
}

/// The whole evaluation report.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Events evaluated.
    pub events: usize,
    /// The k of HR@k and MRR@k.
    pub k: usize,
    /// Where the edge rows came from: `redis` (a real server) or `in-process` (the same
    /// model crate, linked in).
    pub edge_source: &'static str,
    /// The input.
    pub input: InputInfo,
    /// Prediction quality per predictor.
    pub predictors: BTreeMap<String, PredictorScore>,
    /// Cache rows: demand baselines, then the edge rows.
    pub caches: Vec<CacheRow>,
    /// Wall-clock seconds the evaluation took.
    pub elapsed_s: f64,
}

impl EvalReport {
    /// The human-readable table printed on stdout.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} events, {} users, {} items; edge rows from {}",
            self.events, self.input.users, self.input.items, self.edge_source
        );
        let _ = writeln!(
            s,
            "\n{:<20} {:>8} {:>8}",
            "predictor",
            format!("HR@{}", self.k),
            format!("MRR@{}", self.k)
        );
        for (name, p) in &self.predictors {
            let _ = writeln!(s, "{name:<20} {:>8.4} {:>8.4}", p.hr_at_k, p.mrr_at_k);
        }
        let _ = writeln!(
            s,
            "\n{:<44} {:>9} {:>9} {:>12} {:>10}",
            "cache", "capacity", "hit ratio", "fetches/req", "pf prec."
        );
        for r in &self.caches {
            let _ = writeln!(
                s,
                "{:<44} {:>9} {:>9.4} {:>12.4} {:>10}",
                r.policy,
                r.capacity,
                r.hit_ratio,
                r.origin_fetches_per_request,
                r.prefetch_precision
                    .map_or_else(|| "-".to_owned(), |p| format!("{p:.4}"))
            );
        }
        s
    }

    /// Writes the JSON report.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("report serializes");
        std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))
    }
}
