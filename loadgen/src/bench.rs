//! Load benchmarks: throughput and latency of the EDGE.* commands, next to plain Redis
//! doing comparable work on the same server in the same run.
//!
//! Each workload runs `clients` threads, one connection each, sending pipelines of
//! `pipeline` commands. Latency is the round trip of the pipeline a command travelled in,
//! recorded per command in an HDR histogram per thread; the histograms are merged. With
//! `--rate`, pipelines are scheduled at fixed intervals and `record_correct` back-fills
//! the samples a stalled server would have delayed (coordinated omission).
//!
//! Workloads: `edge` (the `--mix` of EDGE.RECORD / EDGE.PREDICT / EDGE.PLAY), and the
//! baselines: `get` (SET for writes, GET for reads), `zset` (the same record and predict
//! job done with sorted sets: ZINCRBY per view, ZREVRANGE 0 9 per prediction), `lrange`
//! (a 10-item LRANGE, against `edge-predict`, which is EDGE.PREDICT K 10 only), and
//! `ping`, the ceiling of loadgen itself on this machine.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde::Serialize;

use crate::error::{first_error, Error, Result};
use crate::replay::{connect, ErrorTally};

/// A plain-Redis comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Baseline {
    /// SET for record/play, GET for predict.
    Get,
    /// ZINCRBY for record/play, ZREVRANGE 0 9 for predict.
    Zset,
    /// LRANGE 0 9 on a 10-item list, against EDGE.PREDICT K 10 alone.
    Lrange,
}

/// The command mix, as relative weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Mix {
    /// EDGE.RECORD weight.
    pub record: u32,
    /// EDGE.PREDICT weight.
    pub predict: u32,
    /// EDGE.PLAY weight.
    pub play: u32,
}

impl std::str::FromStr for Mix {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let mut m = Mix {
            record: 0,
            predict: 0,
            play: 0,
        };
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected name=weight"))?;
            let v: u32 = v
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: weight must be a whole number"))?;
            match k.trim() {
                "record" => m.record = v,
                "predict" => m.predict = v,
                "play" => m.play = v,
                other => return Err(format!("unknown command {other:?} (record, predict, play)")),
            }
        }
        if m.record + m.predict + m.play == 0 {
            return Err("the mix needs at least one positive weight".into());
        }
        Ok(m)
    }
}

/// Benchmark settings.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Server URL.
    pub url: String,
    /// Client threads (one connection each).
    pub clients: usize,
    /// Commands per pipeline.
    pub pipeline: usize,
    /// How a cluster client re-sends refused commands (ignored for one server).
    pub cluster: crate::cluster::ClusterPolicy,
    /// Run each workload this long…
    pub duration: Option<Duration>,
    /// …or for this many commands.
    pub requests: Option<u64>,
    /// Target total rate in commands/s (enables coordinated-omission correction).
    pub rate: Option<f64>,
    /// Command mix of the edge workload.
    pub mix: Mix,
    /// Distinct users.
    pub users: u64,
    /// Distinct items.
    pub items: u64,
    /// Zipf exponent of item popularity.
    pub zipf: f64,
    /// Baselines to run too.
    pub baselines: Vec<Baseline>,
    /// Also measure PING (loadgen's ceiling).
    pub ping: bool,
    /// Random seed.
    pub seed: u64,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Maximum.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

/// One workload's result.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadResult {
    /// `edge`, `edge-predict`, `get`, `zset`, `lrange` or `ping`.
    pub name: String,
    /// Commands completed.
    pub ops: u64,
    /// Commands not applied (error replies, or given up by the cluster client after its
    /// retries): bench counts them and goes on, and reports them here.
    pub errors: u64,
    /// Errors per kind, with the first texts.
    pub error_detail: ErrorTally,
    /// Seconds.
    pub elapsed_s: f64,
    /// Commands per second.
    pub ops_per_sec: f64,
    /// Per-command latency (µs), coordinated omission corrected when a rate was set.
    pub latency_us: Latency,
}

/// The whole benchmark report.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Client threads.
    pub clients: usize,
    /// Pipeline depth.
    pub pipeline: usize,
    /// Target rate, if any.
    pub rate: Option<f64>,
    /// The edge mix.
    pub mix: Mix,
    /// Results per workload.
    pub workloads: Vec<WorkloadResult>,
    /// Throughput ratios: `edge/get`, `edge/zset`, `edge-predict/lrange`, `edge/ping`.
    pub ratios: std::collections::BTreeMap<String, f64>,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Edge,
    EdgePredict,
    Get,
    Zset,
    Lrange,
    Ping,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Edge => "edge",
            Kind::EdgePredict => "edge-predict",
            Kind::Get => "get",
            Kind::Zset => "zset",
            Kind::Lrange => "lrange",
            Kind::Ping => "ping",
        }
    }
}

struct Gen {
    rng: StdRng,
    zipf: Zipf<f64>,
    users: u64,
    mix: Mix,
}

impl Gen {
    fn user(&mut self) -> String {
        format!("U{}", self.rng.random_range(0..self.users))
    }
    fn item(&mut self) -> String {
        format!("C{}", self.zipf.sample(&mut self.rng) as u64)
    }
    /// 0 record, 1 predict, 2 play.
    fn op(&mut self) -> u8 {
        let m = self.mix;
        let r = self.rng.random_range(0..m.record + m.predict + m.play);
        if r < m.record {
            0
        } else if r < m.record + m.predict {
            1
        } else {
            2
        }
    }

    fn push(&mut self, kind: Kind, pipe: &mut redis::Pipeline) {
        match kind {
            Kind::Ping => {
                pipe.cmd("PING");
            }
            Kind::EdgePredict => {
                pipe.cmd("EDGE.PREDICT").arg(self.user()).arg("K").arg(10);
            }
            Kind::Lrange => {
                pipe.cmd("LRANGE")
                    .arg(format!("bl:{}", self.user()))
                    .arg(0)
                    .arg(9);
            }
            Kind::Edge => {
                let (op, u) = (self.op(), self.user());
                match op {
                    0 => pipe.cmd("EDGE.RECORD").arg(u).arg(self.item()),
                    1 => pipe.cmd("EDGE.PREDICT").arg(u).arg("K").arg(10),
                    _ => pipe.cmd("EDGE.PLAY").arg(u).arg(self.item()),
                };
            }
            Kind::Get => {
                let (op, u) = (self.op(), self.user());
                if op == 1 {
                    pipe.cmd("GET").arg(format!("bg:{u}"));
                } else {
                    pipe.cmd("SET").arg(format!("bg:{u}")).arg(self.item());
                }
            }
            Kind::Zset => {
                let (op, u) = (self.op(), self.user());
                if op == 1 {
                    pipe.cmd("ZREVRANGE").arg(format!("bz:{u}")).arg(0).arg(9);
                } else {
                    pipe.cmd("ZINCRBY")
                        .arg(format!("bz:{u}"))
                        .arg(1)
                        .arg(self.item());
                }
            }
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

fn run_workload(o: &BenchOptions, kind: Kind) -> Result<WorkloadResult> {
    let clients = o.clients.max(1);
    let pipeline = o.pipeline.max(1);
    let merged = Mutex::new((histogram(), 0u64, ErrorTally::default()));
    let errors: Mutex<Vec<Error>> = Mutex::new(Vec::new());
    let zipf = Zipf::new(o.items.max(1) as f64, o.zipf)
        .map_err(|e| Error::Usage(format!("--zipf: {e}")))?;
    let start = Instant::now();
    let deadline = o.duration.map(|d| start + d);
    // Without --duration or --requests, a bounded default.
    let total = o.requests.or(if deadline.is_none() {
        Some(100_000)
    } else {
        None
    });
    let pb = crate::progress::bar(total.unwrap_or(0), kind.name(), "commands");
    std::thread::scope(|s| {
        for c in 0..clients {
            let (merged, errors, pb) = (&merged, &errors, &pb);
            let mut g = Gen {
                rng: StdRng::seed_from_u64(o.seed ^ ((c as u64 + 1) * 0x9E37_79B9)),
                zipf,
                users: o.users.max(1),
                mix: o.mix,
            };
            s.spawn(move || {
                let mut con = match connect(&o.url, o.cluster, false) {
                    Ok(c) => c,
                    Err(e) => {
                        errors.lock().expect("not poisoned").push(e);
                        return;
                    }
                };
                let quota =
                    total.map(|t| t / clients as u64 + u64::from((c as u64) < t % clients as u64));
                let interval = o.rate.map(|r| {
                    Duration::from_secs_f64(pipeline as f64 * clients as f64 / r.max(1e-9))
                });
                let mut h = histogram();
                let (mut done, mut errs) = (0u64, ErrorTally::default());
                let t0 = Instant::now();
                let mut batch = 0u32;
                loop {
                    let n = match quota {
                        Some(q) if done >= q => break,
                        Some(q) => (q - done).min(pipeline as u64) as usize,
                        None => pipeline,
                    };
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    let scheduled = match interval {
                        Some(iv) => {
                            let at = t0 + iv * batch;
                            let now = Instant::now();
                            if at > now {
                                std::thread::sleep(at - now);
                            }
                            at
                        }
                        None => Instant::now(),
                    };
                    batch += 1;
                    let mut pipe = redis::pipe();
                    pipe.ignore_errors();
                    for _ in 0..n {
                        g.push(kind, &mut pipe);
                    }
                    let sent = Instant::now();
                    let replies = con.pipeline(&pipe);
                    let us = |since: Instant| since.elapsed().as_micros().max(1) as u64;
                    match replies {
                        Ok(r) => {
                            for (i, e) in r.iter().enumerate() {
                                if let Err(e) = e {
                                    errs.add(done + i as u64 + 1, e);
                                }
                            }
                        }
                        Err(e) => {
                            errors
                                .lock()
                                .expect("not poisoned")
                                .push(Error::redis(format!("{} pipeline", kind.name()), e));
                            return;
                        }
                    }
                    match interval {
                        Some(iv) => {
                            let lat = us(scheduled);
                            for _ in 0..n {
                                let _ = h.record_correct(lat, iv.as_micros().max(1) as u64);
                            }
                        }
                        None => {
                            let _ = h.record_n(us(sent), n as u64);
                        }
                    }
                    done += n as u64;
                    pb.inc(n as u64);
                }
                let mut m = merged.lock().expect("not poisoned");
                let _ = m.0.add(&h);
                m.1 += done;
                m.2.merge(&errs);
            });
        }
    });
    pb.finish_and_clear();
    first_error(errors)?;
    let elapsed = start.elapsed().as_secs_f64();
    let (h, ops, errs) = merged.into_inner().expect("not poisoned");
    Ok(WorkloadResult {
        name: kind.name().to_owned(),
        ops,
        errors: errs.total,
        error_detail: errs,
        elapsed_s: elapsed,
        ops_per_sec: ops as f64 / elapsed.max(1e-9),
        latency_us: Latency {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        },
    })
}

/// Users [`populate`] fills: a bound on the setup's length, which covers the default run.
const POPULATED_USERS: u64 = 100_000;

/// Fills the server so that reads do the same work on every side: each user (the first
/// [`POPULATED_USERS`]) gets a few views (EDGE.RECORD) and, for each baseline that reads,
/// a value to read: a string for GET, a 10-item list for LRANGE, a 10-member sorted set for
/// ZREVRANGE. A read of a missing key replies with nothing and costs next to nothing, so a
/// baseline over unfilled keys would be measured doing less work than the module.
fn populate(o: &BenchOptions) -> Result<()> {
    let mut con = connect(&o.url, o.cluster, false)?;
    let zipf = Zipf::new(o.items.max(1) as f64, o.zipf)
        .map_err(|e| Error::Usage(format!("--zipf: {e}")))?;
    let mut g = Gen {
        rng: StdRng::seed_from_u64(o.seed),
        zipf,
        users: o.users.max(1),
        mix: o.mix,
    };
    let has = |b: Baseline| o.baselines.contains(&b);
    let users = o.users.clamp(1, POPULATED_USERS);
    const WHAT: &str = "populating the server (EDGE.RECORD and the baselines' keys)";
    for chunk in (0..users).collect::<Vec<_>>().chunks(200) {
        let mut pipe = redis::pipe();
        for &u in chunk {
            for t in 0..5 {
                pipe.cmd("EDGE.RECORD")
                    .arg(format!("U{u}"))
                    .arg(g.item())
                    .arg("TS")
                    .arg(1_700_000_000_000i64 + t);
            }
            if has(Baseline::Get) {
                pipe.cmd("SET").arg(format!("bg:U{u}")).arg(g.item());
            }
            if has(Baseline::Lrange) {
                pipe.cmd("DEL").arg(format!("bl:U{u}"));
                pipe.cmd("RPUSH").arg(format!("bl:U{u}"));
                for _ in 0..10 {
                    pipe.arg(g.item());
                }
            }
            if has(Baseline::Zset) {
                pipe.cmd("DEL").arg(format!("bz:U{u}"));
                pipe.cmd("ZADD").arg(format!("bz:U{u}"));
                for score in 0..10 {
                    pipe.arg(score).arg(g.item());
                }
            }
        }
        let replies = con.pipeline(&pipe).map_err(|e| Error::redis(WHAT, e))?;
        // Every reply is kept (nothing ignored), so any refusal fails the run.
        let mut tally = ErrorTally::default();
        for (i, r) in replies.iter().enumerate() {
            if let Err(e) = r {
                tally.add(i as u64 + 1, e);
            }
        }
        tally.check(WHAT, replies.len() as u64)?;
    }
    Ok(())
}

/// Runs the benchmark: PING ceiling, the edge mix, then each baseline.
pub fn run(o: &BenchOptions) -> Result<BenchReport> {
    if o.clients == 0 || o.pipeline == 0 {
        return Err(Error::Usage(
            "--clients and --pipeline must be at least 1".into(),
        ));
    }
    populate(o)?;
    let mut kinds = Vec::new();
    // PING has no key: a cluster cannot route it in a pipeline, so it runs on one server only.
    if o.ping && !crate::replay::is_cluster_url(&o.url) {
        kinds.push(Kind::Ping);
    }
    kinds.push(Kind::Edge);
    for b in &o.baselines {
        match b {
            Baseline::Get => kinds.push(Kind::Get),
            Baseline::Zset => kinds.push(Kind::Zset),
            Baseline::Lrange => kinds.extend([Kind::EdgePredict, Kind::Lrange]),
        }
    }
    let mut workloads = Vec::new();
    for k in kinds {
        workloads.push(run_workload(o, k)?);
    }
    let ops = |n: &str| {
        workloads
            .iter()
            .find(|w| w.name == n)
            .map(|w| w.ops_per_sec)
    };
    let mut ratios = std::collections::BTreeMap::new();
    for (a, b) in [
        ("edge", "get"),
        ("edge", "zset"),
        ("edge-predict", "lrange"),
        ("edge", "ping"),
    ] {
        if let (Some(x), Some(y)) = (ops(a), ops(b)) {
            ratios.insert(format!("{a}/{b}"), x / y.max(1e-9));
        }
    }
    Ok(BenchReport {
        clients: o.clients,
        pipeline: o.pipeline,
        rate: o.rate,
        mix: o.mix,
        workloads,
        ratios,
    })
}

impl BenchReport {
    /// The table printed on stdout.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut s =
            format!(
            "{} clients, pipeline {}{}\n{:<14} {:>10} {:>12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}\n",
            self.clients,
            self.pipeline,
            self.rate.map_or(String::new(), |r| format!(", target {r:.0} ops/s (CO corrected)")),
            "workload",
            "ops",
            "ops/s",
            "p50µs",
            "p90µs",
            "p99µs",
            "p99.9µs",
            "maxµs",
            "errors"
        );
        for w in &self.workloads {
            let l = &w.latency_us;
            let _ = writeln!(
                s,
                "{:<14} {:>10} {:>12.0} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
                w.name, w.ops, w.ops_per_sec, l.p50, l.p90, l.p99, l.p999, l.max, w.errors
            );
        }
        for w in self.workloads.iter().filter(|w| w.errors > 0) {
            let _ = writeln!(
                s,
                "{}: {} commands not applied (bench counts them and goes on):",
                w.name, w.errors
            );
            for line in w.error_detail.lines() {
                let _ = writeln!(s, "  {line}");
            }
        }
        for (k, v) in &self.ratios {
            let _ = writeln!(s, "throughput {k}: {v:.3}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses() {
        let m: Mix = "record=1,predict=3".parse().unwrap();
        assert_eq!((m.record, m.predict, m.play), (1, 3, 0));
        assert!("record=0".parse::<Mix>().is_err());
        assert!("fetch=1".parse::<Mix>().is_err());
    }
}
