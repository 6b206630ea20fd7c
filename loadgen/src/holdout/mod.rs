//! Held-out evaluation: the module, learning online from every event, against offline
//! models fitted once on the start of the same log.
//!
//! Protocol (the same for every model, so the figures compare):
//! 1. events sorted by time, ties in file order (as [`crate::logs`] reads them);
//! 2. an offline model is fitted on the first `train` share of the events and frozen
//!    ("frozen"), or fitted again on everything before each `retrain` point ("retrained");
//! 3. every event of the rest is scored in order: the model ranks the viewer's top k from
//!    the viewer's whole history so far (the held-out events before it included, the
//!    weights frozen), items the viewer has already seen excluded; HR@k and MRR@k over
//!    those events;
//! 4. the module learns online from all events: for each event, EDGE.PREDICT (scored only
//!    in the held-out part) then EDGE.RECORD, at its default settings unless told
//!    otherwise; in process, or through a server with `redis`.
//!
//! Seen items are excluded by every model, so an event that returns to an item its viewer
//! already watched cannot be a hit for any of them. On logs of repeat consumption such
//! returns are most events, so the report also gives HR@k over first-time views alone,
//! which is where the models differ.

pub mod knn;

use std::collections::HashSet;
use std::path::Path;

use edge_model::{Config, Engine, UserState, View};
use redis::Value;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::eval::edge::{apply_setting, item_index, parse_predict, push_view};
use crate::logs::Log;
use knn::{ItemKnn, Popularity};

/// How a held-out evaluation is run.
#[derive(Debug, Clone)]
pub struct HoldoutOptions {
    /// k of HR@k and MRR@k.
    pub k: usize,
    /// Share of the events (by position in time order) the offline models are fitted on.
    pub train: f64,
    /// Shares at which the "retrained" models are fitted again on everything before.
    pub retrain: Vec<f64>,
    /// Engine settings for the module (`CONFIG SET edge.<name>` names and values).
    pub settings: Vec<(String, String)>,
    /// Run the module through this server instead of in process.
    pub redis: Option<String>,
    /// Events per pipeline round trip with `redis`.
    pub pipeline: usize,
    /// Models ranked elsewhere (see [`read_ranks`]): a name and, for every held-out event
    /// in order, its top-k item indices.
    pub external: Vec<(String, Vec<Vec<u32>>)>,
}

impl Default for HoldoutOptions {
    fn default() -> Self {
        HoldoutOptions {
            k: 10,
            train: 0.8,
            retrain: vec![0.9],
            settings: Vec::new(),
            redis: None,
            pipeline: 512,
            external: Vec::new(),
        }
    }
}

/// One model's scores on the held-out events.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HoldoutScore {
    /// `edge`, `item-knn`, `item-knn-retrained`, `popularity`.
    pub model: String,
    /// HR@k over every held-out event.
    pub hr_at_k: f64,
    /// MRR@k over every held-out event.
    pub mrr_at_k: f64,
    /// HR@k over the held-out events whose item the viewer had not seen before.
    pub hr_at_k_first_views: f64,
}

/// What a held-out evaluation measured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HoldoutReport {
    /// k of HR@k.
    pub k: usize,
    /// Events in the log.
    pub events: usize,
    /// Index of the first held-out event.
    pub first_scored: usize,
    /// Held-out events.
    pub scored: usize,
    /// Held-out events that are a viewer's first view of the item.
    pub first_views: usize,
    /// Where the module ran: `in-process` or `redis`.
    pub edge_source: &'static str,
    /// Scores, the module first.
    pub models: Vec<HoldoutScore>,
}

impl HoldoutReport {
    /// The report as a plain-text table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "held out: events {}..{} ({} events, {} first views, {:.1} % returns to a seen item)\n",
            self.first_scored,
            self.events,
            self.scored,
            self.first_views,
            100.0 * (1.0 - self.first_views as f64 / self.scored.max(1) as f64)
        );
        let k = self.k;
        s.push_str(&format!(
            "{:<26} {:>8} {:>8} {:>18}\n",
            "model",
            format!("HR@{k}"),
            format!("MRR@{k}"),
            format!("HR@{k} first views")
        ));
        for m in &self.models {
            s.push_str(&format!(
                "{:<26} {:>8.4} {:>8.4} {:>18.4}\n",
                m.model, m.hr_at_k, m.mrr_at_k, m.hr_at_k_first_views
            ));
        }
        s
    }
}

/// Hits and reciprocal ranks of one model over the held-out events.
#[derive(Debug, Clone, Default)]
struct Tally {
    hits: u64,
    rr: f64,
    first_hits: u64,
}

impl Tally {
    fn add(&mut self, rank: Option<usize>, first_view: bool) {
        if let Some(r) = rank {
            self.hits += 1;
            self.rr += 1.0 / (r as f64 + 1.0);
            if first_view {
                self.first_hits += 1;
            }
        }
    }

    fn score(&self, model: &str, scored: usize, first_views: usize) -> HoldoutScore {
        HoldoutScore {
            model: model.to_owned(),
            hr_at_k: self.hits as f64 / scored.max(1) as f64,
            mrr_at_k: self.rr / scored.max(1) as f64,
            hr_at_k_first_views: self.first_hits as f64 / first_views.max(1) as f64,
        }
    }
}

/// The position in time order of a share of `n` events.
fn cut(n: usize, share: f64) -> usize {
    ((n as f64 * share).floor() as usize).min(n)
}

/// Runs the protocol on `log`.
pub fn evaluate(log: &Log, opts: &HoldoutOptions) -> Result<HoldoutReport> {
    if !(opts.train > 0.0 && opts.train < 1.0) {
        return Err(Error::Usage(format!(
            "--train {} must be a share strictly between 0 and 1",
            opts.train
        )));
    }
    if let Some(r) = opts.retrain.iter().find(|&&r| !(r > opts.train && r < 1.0)) {
        return Err(Error::Usage(format!(
            "--retrain {r} must lie between --train ({}) and 1",
            opts.train
        )));
    }
    if opts.k == 0 {
        return Err(Error::Usage("--k must be at least 1".into()));
    }
    let n = log.events.len();
    let first = cut(n, opts.train);
    let mut refits: Vec<usize> = opts.retrain.iter().map(|&r| cut(n, r)).collect();
    refits.sort_unstable();
    refits.dedup();
    let n_items = log.items.len();

    let edge_ranks = match &opts.redis {
        None => edge_in_process(log, opts, first)?,
        Some(url) => edge_through_server(log, opts, first, url)?,
    };

    let train = &log.events[..first];
    let popularity = Popularity::fit(train, n_items);
    let frozen = ItemKnn::fit(train, n_items);
    let mut retrained = frozen.clone();
    let mut next_refit = refits.iter().copied().peekable();

    let scored_events = n - first;
    if let Some((name, lists)) = opts.external.iter().find(|(_, l)| l.len() != scored_events) {
        return Err(Error::Usage(format!(
            "--ranks {name}: {} lists for {scored_events} held-out events; rank the same log \
             with the same --train",
            lists.len()
        )));
    }
    let mut external = vec![Tally::default(); opts.external.len()];
    let mut history: Vec<Vec<u32>> = vec![Vec::new(); log.users.len()];
    let mut seen: Vec<HashSet<u32>> = vec![HashSet::new(); log.users.len()];
    let (mut edge, mut knn, mut knn_re, mut pop) = (
        Tally::default(),
        Tally::default(),
        Tally::default(),
        Tally::default(),
    );
    let (mut scored, mut first_views) = (0usize, 0usize);
    for (t, e) in log.events.iter().enumerate() {
        let u = e.user as usize;
        if t >= first {
            while next_refit.next_if(|&r| r <= t).is_some() {
                retrained = ItemKnn::fit(&log.events[..t], n_items);
            }
            let first_view = !seen[u].contains(&e.item);
            scored += 1;
            first_views += usize::from(first_view);
            let rank = |list: &[u32]| list.iter().position(|&i| i == e.item);
            Tally::add(&mut edge, rank(&edge_ranks[t - first]), first_view);
            Tally::add(
                &mut knn,
                rank(&frozen.rank(&history[u], &seen[u], opts.k)),
                first_view,
            );
            Tally::add(
                &mut knn_re,
                rank(&retrained.rank(&history[u], &seen[u], opts.k)),
                first_view,
            );
            Tally::add(
                &mut pop,
                rank(&popularity.rank(&seen[u], opts.k)),
                first_view,
            );
            for (tally, (_, lists)) in external.iter_mut().zip(&opts.external) {
                let list = &lists[t - first];
                tally.add(rank(&list[..list.len().min(opts.k)]), first_view);
            }
        }
        history[u].push(e.item);
        seen[u].insert(e.item);
    }
    let retrained_name = if refits.is_empty() {
        "item-knn (frozen)".to_owned()
    } else {
        format!(
            "item-knn (refit at {})",
            opts.retrain
                .iter()
                .map(|r| format!("{:.0} %", r * 100.0))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let mut models = vec![
        edge.score("edge (online)", scored, first_views),
        knn.score("item-knn (frozen)", scored, first_views),
        knn_re.score(&retrained_name, scored, first_views),
        pop.score("popularity (frozen)", scored, first_views),
    ];
    for (tally, (name, _)) in external.iter().zip(&opts.external) {
        models.push(tally.score(name, scored, first_views));
    }
    Ok(HoldoutReport {
        k: opts.k,
        events: n,
        first_scored: first,
        scored,
        first_views,
        edge_source: if opts.redis.is_some() {
            "redis"
        } else {
            "in-process"
        },
        models,
    })
}

/// Writes `log`'s events in time order as `user item` lines of dense indices: the input of
/// `scripts/sequential-baselines.py`, so models fitted elsewhere see exactly these events in
/// this order.
pub fn write_events(log: &Log, path: &Path) -> Result<()> {
    let mut text = String::with_capacity(log.events.len() * 12);
    for e in &log.events {
        text.push_str(&format!("{} {}\n", e.user, e.item));
    }
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Reads top-k lists ranked elsewhere: one line per held-out event, item indices (as
/// [`write_events`] numbers them) separated by spaces, best first.
pub fn read_ranks(path: &Path, n_items: usize) -> Result<Vec<Vec<u32>>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .enumerate()
        .map(|(no, line)| {
            line.split_whitespace()
                .map(|w| {
                    w.parse::<u32>()
                        .ok()
                        .filter(|&i| (i as usize) < n_items)
                        .ok_or_else(|| Error::Malformed {
                            path: path.to_owned(),
                            line: no as u64 + 1,
                            reason: format!("{w:?} is not an item index below {n_items}"),
                        })
                })
                .collect()
        })
        .collect()
}

/// The module's top k (as item indices) for each held-out event, in process: predict,
/// then record, for every event.
fn edge_in_process(log: &Log, opts: &HoldoutOptions, first: usize) -> Result<Vec<Vec<u32>>> {
    let mut cfg = Config::default();
    for (name, value) in &opts.settings {
        apply_setting(&mut cfg, name, value)?;
    }
    let mut engine = Engine::new(cfg).map_err(|e| Error::Config(format!("{e:?}")))?;
    let index = item_index(log);
    let mut users: Vec<Option<UserState>> = vec![None; log.users.len()];
    let mut out = Vec::with_capacity(log.events.len() - first);
    for (t, e) in log.events.iter().enumerate() {
        let slot = &mut users[e.user as usize];
        if t >= first {
            let preds = engine.predict(slot.as_ref(), opts.k, false);
            out.push(
                preds
                    .iter()
                    .filter_map(|p| index.get(p.item.as_str()).copied())
                    .collect(),
            );
        }
        let view = View {
            item: &log.items[e.item as usize],
            ts_ms: e.ts_ms,
            duration_s: e.duration_s,
            device: log.device(e),
        };
        engine.record(slot.get_or_insert_with(UserState::default), &view);
    }
    Ok(out)
}

/// The same through a server with the module loaded (flushed first; settings applied with
/// CONFIG SET).
fn edge_through_server(
    log: &Log,
    opts: &HoldoutOptions,
    first: usize,
    url: &str,
) -> Result<Vec<Vec<u32>>> {
    let mut con = crate::replay::connect_node(url, true)?;
    for (name, value) in &opts.settings {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg(format!("edge.{name}"))
            .arg(value)
            .query::<()>(&mut con)
            .map_err(|e| Error::redis(format!("CONFIG SET edge.{name} {value}"), e))?;
    }
    redis::cmd("FLUSHALL")
        .arg("SYNC")
        .query::<()>(&mut con)
        .map_err(|e| Error::redis("FLUSHALL", e))?;
    let index = item_index(log);
    let mut out = Vec::with_capacity(log.events.len() - first);
    let mut t = 0usize;
    for chunk in log.events.chunks(opts.pipeline.max(1)) {
        let mut pipe = redis::pipe();
        let mut predicts = 0;
        for (j, e) in chunk.iter().enumerate() {
            if t + j >= first {
                pipe.cmd("EDGE.PREDICT")
                    .arg(&log.users[e.user as usize])
                    .arg("K")
                    .arg(opts.k);
                predicts += 1;
            }
            push_view(&mut pipe, "EDGE.RECORD", log, e).ignore();
        }
        let replies: Vec<Value> = pipe
            .query(&mut con)
            .map_err(|e| Error::redis("EDGE.PREDICT/EDGE.RECORD pipeline", e))?;
        if replies.len() != predicts {
            return Err(Error::Protocol(format!(
                "{} prediction replies to {predicts} EDGE.PREDICT",
                replies.len()
            )));
        }
        for r in &replies {
            out.push(
                parse_predict(r)?
                    .iter()
                    .filter_map(|p| index.get(p).copied())
                    .collect(),
            );
        }
        t += chunk.len();
    }
    Ok(out)
}
