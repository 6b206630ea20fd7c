//! Prequential evaluation: the module against classic predictors and caches, on the same
//! events, with one exact protocol so figures compare across tools.
//!
//! Protocol. Events are sorted by timestamp, ties kept in file order. For each event:
//! 1. every predictor gives the user's top k, items the user has already seen excluded;
//!    HR@k counts the event's item in that list, MRR@k adds 1/rank;
//! 2. the event is played: on the module, EDGE.PLAY (cache lookup → hit or miss, learning,
//!    then prefetch per the settings); the demand caches just see the request.
//!
//! There is one shared edge cache; items are unit-size unless `--cache-bytes` is used with
//! sizes. A request found in the cache is a hit. Every item brought from the origin, on a
//! miss or by a prefetch, is one origin fetch; a prefetch of a resident item costs nothing.
//! Prefetch precision is prefetched items requested before their eviction / prefetched
//! items.
//!
//! Prediction does not change the node (EDGE.PREDICT is read-only), so HR/MRR are scored
//! in the first edge run only and the other runs of the sweep just play the events.

pub mod edge;
pub mod plot;
pub mod predictors;
pub mod report;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::baselines::Policy;
use crate::error::{first_error, Error, Result};
use crate::logs::{next_use, Log};
use edge::{EdgeRun, EdgeSpec, Setting};
use report::{CacheRow, EvalReport, InputInfo, PredictorScore};

/// How cache capacities are expressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacityUnit {
    /// Every item has size 1; capacities count items.
    Items,
    /// Items have sizes in bytes (from the log, or `item_size`); capacities are bytes.
    Bytes,
}

impl CapacityUnit {
    fn name(self) -> &'static str {
        match self {
            CapacityUnit::Items => "items",
            CapacityUnit::Bytes => "bytes",
        }
    }
}

/// Settings of an evaluation.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// k of HR@k / MRR@k.
    pub k: usize,
    /// Cache capacities to evaluate.
    pub capacities: Vec<u64>,
    /// What the capacities count.
    pub unit: CapacityUnit,
    /// Size of items without one in the log (bytes mode).
    pub item_size: u64,
    /// Sweep dimensions: engine setting name → values; the edge runs cover their
    /// cartesian product at every capacity.
    pub sweep: Vec<(String, Vec<String>)>,
    /// Run the edge through this server instead of in process.
    pub redis: Option<String>,
    /// Events per pipeline round trip on the server path.
    pub pipeline: usize,
    /// Threads for in-process runs.
    pub jobs: usize,
    /// Demand policies to run.
    pub policies: Vec<Policy>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            k: 10,
            capacities: vec![50, 100, 200],
            unit: CapacityUnit::Items,
            item_size: 1 << 20,
            sweep: Vec::new(),
            redis: None,
            pipeline: 512,
            jobs: 1,
            policies: Policy::ALL.to_vec(),
        }
    }
}

/// Parses one `--sweep name=v1,v2,…` argument.
pub fn parse_sweep(s: &str) -> Result<(String, Vec<String>)> {
    let (name, values) = s.split_once('=').ok_or_else(|| {
        Error::Usage(format!(
            "--sweep {s:?}: expected name=v1,v2,… such as prefetch-k=0,1,2,3,5,8,12,20,30"
        ))
    })?;
    let values: Vec<String> = values
        .split(',')
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect();
    if name.trim().is_empty() || values.is_empty() {
        return Err(Error::Usage(format!(
            "--sweep {s:?}: needs a name and at least one value"
        )));
    }
    Ok((name.trim().to_owned(), values))
}

/// The cartesian product of the sweep dimensions (one empty point when there are none).
pub fn sweep_points(sweep: &[(String, Vec<String>)]) -> Vec<Vec<Setting>> {
    let mut points: Vec<Vec<Setting>> = vec![Vec::new()];
    for (name, values) in sweep {
        points = points
            .into_iter()
            .flat_map(|p| {
                values.iter().map(move |v| {
                    let mut q = p.clone();
                    q.push((name.clone(), v.clone()));
                    q
                })
            })
            .collect();
    }
    points
}

/// Name of an edge row: `edge` or `edge[prefetch-k=3,...]`.
pub fn edge_policy_name(settings: &[Setting]) -> String {
    if settings.is_empty() {
        return "edge".into();
    }
    let s: Vec<String> = settings.iter().map(|(n, v)| format!("{n}={v}")).collect();
    format!("edge[{}]", s.join(","))
}

/// Scores the baseline predictors over the log: `(name, score)` in report order.
pub fn score_predictors(log: &Log, k: usize) -> Vec<(String, PredictorScore)> {
    let mut b = predictors::Baselines::new(log.items.len(), log.users.len());
    let mut hits = [0u64; 3];
    let mut rr = [0f64; 3];
    for e in &log.events {
        for (j, list) in b.predict(e.user, k).iter().enumerate() {
            if let Some(r) = list.iter().position(|&i| i == e.item) {
                hits[j] += 1;
                rr[j] += 1.0 / (r as f64 + 1.0);
            }
        }
        b.learn(e.user, e.item);
    }
    let n = log.events.len().max(1) as f64;
    predictors::NAMES
        .iter()
        .enumerate()
        .map(|(j, name)| {
            (
                (*name).to_owned(),
                PredictorScore {
                    hr_at_k: hits[j] as f64 / n,
                    mrr_at_k: rr[j] / n,
                },
            )
        })
        .collect()
}

/// Runs one demand policy at one capacity: `(requests, hits)`.
pub fn run_demand(
    log: &Log,
    policy: Policy,
    capacity: u64,
    unit: CapacityUnit,
    item_size: u64,
    next: &Arc<[usize]>,
) -> (u64, u64) {
    let size_of = |e: &crate::logs::Event| match unit {
        CapacityUnit::Items => 1,
        CapacityUnit::Bytes => e.size.unwrap_or(item_size),
    };
    let mean = if log.events.is_empty() {
        1
    } else {
        log.events.iter().map(size_of).sum::<u64>() / log.events.len() as u64
    };
    let mut c = policy.build(capacity, log.items.len(), mean, next);
    let mut hits = 0;
    for (t, e) in log.events.iter().enumerate() {
        hits += u64::from(c.request(t, e.item, size_of(e)));
    }
    (log.events.len() as u64, hits)
}

enum Job {
    Demand(Policy, u64),
    Edge(usize),
}

enum Done {
    Demand(u64, u64),
    Edge(EdgeRun),
}

/// Runs the whole evaluation.
pub fn evaluate(log: &Log, input: InputInfo, opts: &EvalOptions) -> Result<EvalReport> {
    let start = Instant::now();
    if opts.capacities.is_empty() {
        return Err(Error::Usage("no cache capacity given".into()));
    }
    if opts.k == 0 || opts.k > 1000 {
        return Err(Error::Usage("--k must be 1 to 1000".into()));
    }
    let unit = opts.unit;
    let next: Arc<[usize]> = next_use(&log.events, log.items.len()).into();
    let specs: Vec<(u64, Vec<Setting>, EdgeSpec)> = opts
        .capacities
        .iter()
        .flat_map(|&cap| {
            sweep_points(&opts.sweep)
                .into_iter()
                .map(move |settings| (cap, settings))
        })
        .enumerate()
        .map(|(i, (cap, settings))| {
            let spec = EdgeSpec {
                capacity_bytes: cap,
                item_size: match unit {
                    CapacityUnit::Items => 1,
                    CapacityUnit::Bytes => opts.item_size,
                },
                use_sizes: unit == CapacityUnit::Bytes,
                settings: settings.clone(),
                k: if i == 0 { opts.k } else { 0 },
            };
            (cap, settings, spec)
        })
        .collect();
    // Fail fast on a bad sweep before any long run.
    for (_, _, spec) in &specs {
        edge::config_for(spec)?;
    }
    let mut jobs: Vec<Job> = Vec::new();
    for &cap in &opts.capacities {
        for &p in &opts.policies {
            if unit == CapacityUnit::Items || p.supports_sizes() {
                jobs.push(Job::Demand(p, cap));
            }
        }
    }
    let in_process = opts.redis.is_none();
    if in_process {
        jobs.extend((0..specs.len()).map(Job::Edge));
    }
    // Connect before any work, so that a wrong URL or a server without the module stops
    // the run at once with a message that says so.
    let mut con = match &opts.redis {
        Some(url) => Some(crate::replay::connect_node(url, true)?),
        None => None,
    };
    // The bar counts the events each pass goes through: the predictor baselines, every
    // demand cache and every edge run read the whole log once.
    let n_ev = log.events.len() as u64;
    let demand_runs = jobs.len() - if in_process { specs.len() } else { 0 };
    let passes = 1 + demand_runs + specs.len();
    let pb = crate::progress::bar(passes as u64 * n_ev, "eval", "events");
    pb.set_message(format!(
        "in {passes} passes: predictors, {demand_runs} demand caches, {} edge runs",
        specs.len()
    ));
    let results: Mutex<Vec<Option<Done>>> = Mutex::new((0..jobs.len()).map(|_| None).collect());
    let errors: Mutex<Vec<Error>> = Mutex::new(Vec::new());
    let cursor = AtomicUsize::new(0);
    let mut redis_runs: Vec<EdgeRun> = Vec::new();
    let mut predictor_scores = Vec::new();
    std::thread::scope(|s| -> Result<()> {
        let worker = || loop {
            let j = cursor.fetch_add(1, Ordering::Relaxed);
            let Some(job) = jobs.get(j) else { break };
            let done = match job {
                Job::Demand(p, cap) => {
                    let (r, h) = run_demand(log, *p, *cap, unit, opts.item_size, &next);
                    pb.inc(n_ev);
                    Done::Demand(r, h)
                }
                Job::Edge(i) => match edge::run_in_process(log, &specs[*i].2, &|n| pb.inc(n)) {
                    Ok(run) => Done::Edge(run),
                    Err(e) => {
                        errors.lock().expect("not poisoned").push(e);
                        break;
                    }
                },
            };
            results.lock().expect("not poisoned")[j] = Some(done);
        };
        let threads = opts.jobs.max(1);
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(worker)).collect();
        predictor_scores = score_predictors(log, opts.k);
        pb.inc(n_ev);
        if let Some(con) = &mut con {
            for (_, _, spec) in &specs {
                redis_runs.push(edge::run_redis(con, log, spec, opts.pipeline, &|n| {
                    pb.inc(n)
                })?);
            }
        }
        for h in handles {
            h.join().expect("worker panicked");
        }
        Ok(())
    })?;
    pb.finish_and_clear();
    first_error(errors)?;
    let results = results.into_inner().expect("not poisoned");
    let mut caches = Vec::new();
    let mut edge_runs: Vec<EdgeRun> = redis_runs;
    for (job, done) in jobs.iter().zip(results) {
        match (job, done) {
            (Job::Demand(p, cap), Some(Done::Demand(req, hits))) => caches.push(CacheRow::new(
                p.name().to_owned(),
                *cap,
                unit.name(),
                req,
                hits,
                None,
            )),
            (Job::Edge(_), Some(Done::Edge(run))) => edge_runs.push(run),
            _ => unreachable!("every job ran"),
        }
    }
    let mut predictors: BTreeMap<String, PredictorScore> = predictor_scores.into_iter().collect();
    for ((cap, settings, _), run) in specs.iter().zip(&edge_runs) {
        let mut row = CacheRow::new(
            edge_policy_name(settings),
            *cap,
            unit.name(),
            run.requests,
            run.hits,
            Some((run.prefetches, run.prefetch_used)),
        );
        row.settings = Some(settings.iter().cloned().collect());
        caches.push(row);
        if run.scored {
            let n = run.requests.max(1) as f64;
            predictors.insert(
                "edge".into(),
                PredictorScore {
                    hr_at_k: run.hr_hits as f64 / n,
                    mrr_at_k: run.rr_sum / n,
                },
            );
        }
    }
    Ok(EvalReport {
        events: log.events.len(),
        k: opts.k,
        edge_source: if in_process { "in-process" } else { "redis" },
        input,
        predictors,
        caches,
        elapsed_s: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_is_a_cartesian_product() {
        let s = vec![
            parse_sweep("prefetch-k=0,3").unwrap(),
            parse_sweep("cache-policy=lru,predictive").unwrap(),
        ];
        let p = sweep_points(&s);
        assert_eq!(p.len(), 4);
        assert_eq!(
            edge_policy_name(&p[1]),
            "edge[prefetch-k=0,cache-policy=predictive]"
        );
        assert_eq!(sweep_points(&[]), vec![Vec::<Setting>::new()]);
        assert!(parse_sweep("prefetch-k").is_err());
    }
}
