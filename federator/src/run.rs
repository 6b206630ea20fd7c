//! The federator's rounds against live edges: collect with a deadline, aggregate, push,
//! log, and keep a JSON summary current.
//!
//! A round never waits on a dead or slow edge past `--timeout`: every export runs on its
//! own thread with socket timeouts, and the round takes whatever arrived by the deadline.
//! A late export is dropped, which loses nothing: the next export asks `SINCE` the last
//! round *received* from that edge, so it carries everything changed since.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use edge_model::federation::encode_update;
use serde::Serialize;

use crate::aggregate::{Aggregation, RoundError};
use crate::dp::{Dp, LearnBound};
use crate::edge::{self, EdgeSpec, Received};

/// How the federator runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The edges.
    pub edges: Vec<EdgeSpec>,
    /// Rounds to run (`None`: forever with an interval, else one).
    pub rounds: Option<u64>,
    /// Time between round starts.
    pub interval: Option<Duration>,
    /// Fewest answering edges for a round to push anything.
    pub min_edges: usize,
    /// Per-edge bound on every exchange.
    pub timeout: Duration,
    /// (ε per round, the loosest `dp-clip` accepted from an edge) when DP is on; the noise
    /// is sized from the settings the edges report in their exports.
    pub dp: Option<(f64, u32)>,
    /// Pairwise-masked secure aggregation.
    pub secure: bool,
    /// Where the JSON summary is written (after every round).
    pub json: Option<PathBuf>,
}

/// One round, as logged.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoundLog {
    /// The federator round id pushed (0 when skipped).
    pub round: u64,
    /// Edges whose export arrived in time.
    pub answered: Vec<String>,
    /// Edges that did not, and why.
    pub missing: BTreeMap<String, String>,
    /// Skipped for having fewer than `--min-edges` answers.
    pub skipped: bool,
    /// Edges that applied the push.
    pub pushed: Vec<String>,
    /// Push failures.
    pub push_errors: BTreeMap<String, String>,
    /// Export bytes received.
    pub bytes_in: u64,
    /// Import bytes sent.
    pub bytes_out: u64,
    /// Wall time of the round.
    pub duration_ms: f64,
    /// ε spent by this round.
    pub epsilon: f64,
    /// Why the round was refused (edges disagree on their settings or do not qualify for
    /// DP); nothing was pushed.
    pub refused: Option<String>,
    /// Under DP: the L1 sensitivity this round's noise was sized for, from the edges'
    /// reported settings.
    pub sensitivity: Option<f64>,
    /// Under DP: the Laplace scale of this round's noise.
    pub laplace_scale: Option<f64>,
}

/// DP figures of the run.
#[derive(Debug, Clone, Serialize)]
pub struct DpSummary {
    /// ε per round.
    pub epsilon_per_round: f64,
    /// Total ε (basic composition over the rounds released).
    pub epsilon_total: f64,
    /// The loosest `dp-clip` accepted from an edge (`--dp-clip`).
    pub clip: u32,
    /// The edges' reported `dp-clip` the latest noise was sized for.
    pub edge_clip: Option<u32>,
    /// L1 sensitivity of the latest round.
    pub sensitivity: f64,
    /// Laplace scale of the latest round.
    pub laplace_scale: f64,
    /// The learning parameters the edges reported, which the sensitivity was derived from.
    pub learn: Option<LearnBound>,
}

/// The JSON summary.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Edge names.
    pub edges: Vec<String>,
    /// Secure aggregation on.
    pub secure: bool,
    /// DP, when on.
    pub dp: Option<DpSummary>,
    /// Warnings (edges whose settings void the DP assumption, unreachable at start…).
    pub warnings: Vec<String>,
    /// Rounds attempted.
    pub rounds_attempted: u64,
    /// Rounds skipped (below `--min-edges`).
    pub rounds_skipped: u64,
    /// Bytes received, all rounds.
    pub bytes_in_total: u64,
    /// Bytes sent, all rounds.
    pub bytes_out_total: u64,
    /// Every round.
    pub rounds: Vec<RoundLog>,
}

/// Runs `f(i)` for every edge on its own thread and collects what finishes by `deadline`
/// (late answers are dropped).
fn fan_out<T: Send + 'static>(
    deadline: Instant,
    f: impl Fn(usize) -> Result<T, String> + Send + Sync + Clone + 'static,
    which: impl Iterator<Item = usize>,
) -> BTreeMap<usize, Result<T, String>> {
    let (tx, rx) = mpsc::channel();
    let mut asked = Vec::new();
    for i in which {
        let (tx, f) = (tx.clone(), f.clone());
        asked.push(i);
        thread::spawn(move || {
            let _ = tx.send((i, f(i)));
        });
    }
    drop(tx);
    let mut out = BTreeMap::new();
    while out.len() < asked.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, r)) => {
                out.insert(i, r);
            }
            Err(_) => break,
        }
    }
    for i in asked {
        out.entry(i).or_insert_with(|| Err("timed out".to_owned()));
    }
    out
}

/// Runs the federation; returns the summary (also written to `--json` after every round).
pub fn run(opts: &Options) -> Result<Summary, String> {
    let n = opts.edges.len();
    let mut warnings = Vec::new();
    // Start above every round the edges already imported, so a restarted federator's pushes
    // are not ignored as replays.
    let urls: Vec<String> = opts.edges.iter().map(|e| e.url.clone()).collect();
    let timeout = opts.timeout;
    let probe = {
        let urls = urls.clone();
        fan_out(
            Instant::now() + timeout,
            move |i| {
                let mut c = edge::connect(&urls[i], timeout)?;
                let info = edge::model_info(&mut c)?;
                let last = info
                    .iter()
                    .find(|(k, _)| k == "last_import_round")
                    .map_or(0, |(_, v)| *v as u64);
                Ok(last)
            },
            0..n,
        )
    };
    let mut start_round = 0;
    for (i, r) in &probe {
        let name = &opts.edges[*i].name;
        match r {
            Ok(last) => start_round = start_round.max(*last),
            Err(e) => warnings.push(format!("edge {name} unreachable at start: {e}")),
        }
    }
    for w in &warnings {
        eprintln!("federator: warning: {w}");
    }
    let dp = opts.dp.map(|(eps, clip)| Dp::new(eps, clip));
    let mut agg = Aggregation::new(n, start_round, dp, opts.secure, None);
    agg.names = opts.edges.iter().map(|e| e.name.clone()).collect();
    let mut summary = Summary {
        edges: opts.edges.iter().map(|e| e.name.clone()).collect(),
        secure: opts.secure,
        dp: None,
        warnings,
        rounds_attempted: 0,
        rounds_skipped: 0,
        bytes_in_total: 0,
        bytes_out_total: 0,
        rounds: Vec::new(),
    };
    every(opts.rounds, opts.interval, || {
        let log = round(opts, &mut agg)?;
        eprintln!("{}", log_line(&log, n));
        summary.add(log);
        summary.dp = agg.dp.as_ref().map(|d| DpSummary {
            epsilon_per_round: d.epsilon,
            epsilon_total: d.total_epsilon(),
            clip: d.clip,
            edge_clip: d.calibrated.map(|c| c.0),
            sensitivity: d.sensitivity,
            laplace_scale: d.scale(),
            learn: d.calibrated.map(|c| c.1),
        });
        if let Some(path) = &opts.json {
            write_json(path, &summary)?;
        }
        Ok(())
    })?;
    Ok(summary)
}

/// Runs `round` `rounds` times (default: once, or forever with an interval), starting
/// one every `interval`.
pub fn every(
    rounds: Option<u64>,
    interval: Option<Duration>,
    mut round: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let total = rounds.unwrap_or(if interval.is_some() { u64::MAX } else { 1 });
    let mut next = Instant::now();
    for k in 0..total {
        if k > 0 {
            if let Some(iv) = interval {
                next += iv;
                thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        }
        round()?;
    }
    Ok(())
}

impl Summary {
    /// Counts a finished round in.
    pub fn add(&mut self, log: RoundLog) {
        self.rounds_attempted += 1;
        self.rounds_skipped += u64::from(log.skipped);
        self.bytes_in_total += log.bytes_in;
        self.bytes_out_total += log.bytes_out;
        self.rounds.push(log);
    }
}

/// Writes the summary atomically (a reader never sees half a file).
pub fn write_json(path: &std::path::Path, s: &Summary) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_string_pretty(s).map_err(|e| e.to_string())?;
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// The round's log line (`federator: round 3: answered 3/3 […]…`).
pub fn log_line(l: &RoundLog, n: usize) -> String {
    let missing: Vec<String> = l.missing.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let head = if let Some(why) = &l.refused {
        format!("round refused ({why})")
    } else if l.skipped {
        "round skipped".to_owned()
    } else {
        format!("round {}", l.round)
    };
    let mut s = format!(
        "federator: {head}: answered {}/{n} [{}], bytes in {}, out {}, {:.1} ms",
        l.answered.len(),
        l.answered.join(","),
        l.bytes_in,
        l.bytes_out,
        l.duration_ms
    );
    if !missing.is_empty() {
        s += &format!("; missing {}", missing.join("; "));
    }
    if !l.push_errors.is_empty() {
        s += &format!("; push failed {:?}", l.push_errors);
    }
    if l.epsilon > 0.0 {
        s += &format!("; epsilon {}", l.epsilon);
    }
    if let (Some(d), Some(b)) = (l.sensitivity, l.laplace_scale) {
        s += &format!("; sensitivity {d:.3}, laplace scale {b:.3}");
    }
    s
}

/// One round: exports by the deadline, aggregation, pushes by the deadline.
pub fn round(opts: &Options, agg: &mut Aggregation) -> Result<RoundLog, String> {
    let n = opts.edges.len();
    let started = Instant::now();
    let timeout = opts.timeout;
    let urls: Vec<String> = opts.edges.iter().map(|e| e.url.clone()).collect();
    let since: Vec<Option<u64>> = agg.tables.iter().map(|t| t.round).collect();
    let exports = {
        let urls = urls.clone();
        fan_out(
            started + timeout,
            move |i| {
                let mut c = edge::connect(&urls[i], timeout)?;
                edge::export(&mut c, since[i])
            },
            0..n,
        )
    };
    let mut log = RoundLog::default();
    let mut answered = Vec::new();
    for (i, r) in exports {
        let name = opts.edges[i].name.clone();
        match r {
            Ok(Received { update, bytes }) => {
                agg.tables[i].apply(&update);
                log.bytes_in += bytes as u64;
                log.answered.push(name);
                answered.push(i);
            }
            Err(e) => {
                log.missing.insert(name, e);
            }
        }
    }
    if answered.len() < opts.min_edges.max(1) {
        log.skipped = true;
        log.duration_ms = started.elapsed().as_secs_f64() * 1e3;
        return Ok(log);
    }
    let pushes = match agg.pushes(&answered) {
        Ok(p) => p,
        Err(RoundError::Refused(r)) => {
            log.skipped = true;
            log.refused = Some(r.to_string());
            log.duration_ms = started.elapsed().as_secs_f64() * 1e3;
            return Ok(log);
        }
        Err(e) => return Err(e.to_string()),
    };
    log.round = agg.round;
    log.epsilon = pushes.epsilon;
    if let Some(d) = &agg.dp {
        log.sensitivity = Some(d.sensitivity);
        log.laplace_scale = Some(d.scale());
    }
    let blobs: Vec<(usize, Vec<u8>)> = pushes
        .updates
        .iter()
        .map(|(i, u)| (*i, encode_update(u)))
        .collect();
    log.bytes_out = blobs.iter().map(|(_, b)| b.len() as u64).sum();
    let by_edge: std::sync::Arc<BTreeMap<usize, Vec<u8>>> =
        std::sync::Arc::new(blobs.into_iter().collect());
    let targets: Vec<usize> = by_edge.keys().copied().collect();
    let results = {
        let by_edge = by_edge.clone();
        fan_out(
            Instant::now() + timeout,
            move |i| {
                let mut c = edge::connect(&urls[i], timeout)?;
                edge::import(&mut c, &by_edge[&i])
            },
            targets.into_iter(),
        )
    };
    for (i, r) in results {
        let name = opts.edges[i].name.clone();
        match r {
            Ok(_) => log.pushed.push(name),
            Err(e) => {
                log.push_errors.insert(name, e);
            }
        }
    }
    log.duration_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok(log)
}

/// Parses `30s`, `500ms`, `2m`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(p) => s.split_at(p),
        None => (s, "s"),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad duration {s:?} (e.g. 30s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => v / 1e3,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m, h)")),
    };
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(format!("bad duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_edges_parse() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert!(parse_duration("5x").is_err() && parse_duration("-1s").is_err());
        let e: EdgeSpec = "paris=redis://127.0.0.1:7000".parse().unwrap();
        assert_eq!(
            (e.name.as_str(), e.url.as_str()),
            ("paris", "redis://127.0.0.1:7000")
        );
        assert!("paris".parse::<EdgeSpec>().is_err());
        assert!("=redis://x".parse::<EdgeSpec>().is_err());
    }
}
