//! Running the module's own cache and predictor over a log, in process or through a server.
//!
//! Both paths follow the same protocol event by event: (1) when scoring, predict the
//! user's top k with seen items excluded; (2) play the event (cache lookup, learning,
//! prefetch per the settings). Every view carries its timestamp, and both paths start from
//! an empty node, so they give identical figures; the end-to-end tests check that.

use std::collections::HashMap;

use edge_model::{CacheOutcome, Config, Engine, UserState, View};
use redis::Value;

use crate::error::{Error, Result};
use crate::logs::Log;

/// A named engine setting and its value, as `CONFIG SET edge.<name> <value>` takes it.
pub type Setting = (String, String);

/// What one edge run measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EdgeRun {
    /// Requests played.
    pub requests: u64,
    /// Requests served from the cache.
    pub hits: u64,
    /// Items fetched by prefetches.
    pub prefetches: u64,
    /// Prefetched items requested before being evicted.
    pub prefetch_used: u64,
    /// Events whose item was in the top k (only when scoring).
    pub hr_hits: u64,
    /// Sum of reciprocal ranks within the top k (only when scoring).
    pub rr_sum: f64,
    /// Whether predictions were scored in this run.
    pub scored: bool,
}

/// How an edge run is set up.
#[derive(Debug, Clone)]
pub struct EdgeSpec {
    /// Cache capacity in bytes as the engine sees it (items × 1 byte in unit mode).
    pub capacity_bytes: u64,
    /// Size of an item without an explicit size (1 in unit mode).
    pub item_size: u64,
    /// Whether event sizes are passed (bytes mode).
    pub use_sizes: bool,
    /// Extra engine settings (the sweep point).
    pub settings: Vec<Setting>,
    /// Score HR/MRR at k (0: don't).
    pub k: usize,
}

/// Sets one engine setting by its module name (the model's settings table), so in-process
/// runs take the same names and ranges as `CONFIG SET edge.<name>`.
pub fn apply_setting(cfg: &mut Config, name: &str, value: &str) -> Result<()> {
    if matches!(name, "cache-capacity-bytes" | "item-size-bytes") {
        return Err(Error::Usage(format!(
            "{name} is set by eval from --cache-items/--cache-bytes; don't sweep it"
        )));
    }
    if edge_model::config::settings::find(name).is_none() {
        let known: Vec<&str> = edge_model::config::settings::SETTINGS
            .iter()
            .map(|s| s.name)
            .collect();
        return Err(Error::Usage(format!(
            "unknown engine setting {name:?} (known: {})",
            known.join(", ")
        )));
    }
    cfg.set(name, value)
        .map_err(|e| Error::Config(e.to_string()))
}

/// The engine configuration of a run.
pub fn config_for(spec: &EdgeSpec) -> Result<Config> {
    let mut cfg = Config {
        cache_capacity_bytes: spec.capacity_bytes,
        default_item_size: spec.item_size,
        ..Config::default()
    };
    for (n, v) in &spec.settings {
        apply_setting(&mut cfg, n, v)?;
    }
    cfg.validate()
        .map_err(|e| Error::Config(format!("{e:?}")))?;
    Ok(cfg)
}

/// The per-event bookkeeping both paths share.
struct Accounting {
    run: EdgeRun,
    prefetched_unused: Vec<bool>,
}

impl Accounting {
    fn new(n_items: usize, scored: bool) -> Self {
        Accounting {
            run: EdgeRun {
                scored,
                ..EdgeRun::default()
            },
            prefetched_unused: vec![false; n_items],
        }
    }

    fn predicted(&mut self, target: u32, ranked: impl Iterator<Item = Option<u32>>) {
        if let Some(r) = ranked
            .enumerate()
            .find_map(|(r, i)| (i == Some(target)).then_some(r))
        {
            self.run.hr_hits += 1;
            self.run.rr_sum += 1.0 / (r as f64 + 1.0);
        }
    }

    fn played(&mut self, item: u32, hit: bool, prefetched: impl Iterator<Item = Option<u32>>) {
        self.run.requests += 1;
        let flag = &mut self.prefetched_unused[item as usize];
        if hit {
            self.run.hits += 1;
            if *flag {
                self.run.prefetch_used += 1;
            }
        }
        // A hit uses the prefetch; a miss means it was evicted unused.
        *flag = false;
        for p in prefetched {
            self.run.prefetches += 1;
            if let Some(p) = p {
                self.prefetched_unused[p as usize] = true;
            }
        }
    }
}

/// Item name → index.
pub fn item_index(log: &Log) -> HashMap<&str, u32> {
    log.items
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i as u32))
        .collect()
}

/// Runs the protocol in process, on an [`Engine`] built from `spec`. `tick` is called
/// every 4096 events with the count done (for progress bars).
pub fn run_in_process(log: &Log, spec: &EdgeSpec, tick: &dyn Fn(u64)) -> Result<EdgeRun> {
    let mut engine = Engine::new(config_for(spec)?).map_err(|e| Error::Config(format!("{e:?}")))?;
    let index = item_index(log);
    let mut users: Vec<Option<UserState>> = vec![None; log.users.len()];
    let mut acc = Accounting::new(log.items.len(), spec.k > 0);
    for (t, e) in log.events.iter().enumerate() {
        let slot = &mut users[e.user as usize];
        if spec.k > 0 {
            let preds = engine.predict(slot.as_ref(), spec.k, false);
            acc.predicted(
                e.item,
                preds.iter().map(|p| index.get(p.item.as_str()).copied()),
            );
        }
        let user = slot.get_or_insert_with(UserState::default);
        let view = View {
            item: &log.items[e.item as usize],
            ts_ms: e.ts_ms,
            duration_s: e.duration_s,
            device: log.device(e),
        };
        let size = if spec.use_sizes { e.size } else { None };
        let out = engine.play(user, &view, size);
        acc.played(
            e.item,
            out.outcome == CacheOutcome::Hit,
            out.prefetched
                .iter()
                .map(|p| index.get(p.as_str()).copied()),
        );
        if t % 4096 == 4095 {
            tick(4096);
        }
    }
    tick(log.events.len() as u64 % 4096);
    Ok(acc.run)
}

fn text(v: &Value) -> Option<&str> {
    match v {
        Value::BulkString(b) => std::str::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        Value::VerbatimString { text, .. } => Some(text),
        _ => None,
    }
}

fn array(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(a) | Value::Set(a) => Some(a),
        _ => None,
    }
}

/// Parses EDGE.PLAY's reply: `[HIT|MISS, [prefetched...]]`.
pub fn parse_play(v: &Value) -> Result<(bool, Vec<&str>)> {
    let bad = || {
        Error::Protocol(format!(
            "EDGE.PLAY replied {v:?}, expected [HIT|MISS, [items]]"
        ))
    };
    let a = array(v).filter(|a| a.len() == 2).ok_or_else(bad)?;
    let hit = match text(&a[0]) {
        Some("HIT") => true,
        Some("MISS") => false,
        _ => return Err(bad()),
    };
    let items = array(&a[1])
        .ok_or_else(bad)?
        .iter()
        .map(|x| text(x).ok_or_else(bad))
        .collect::<Result<Vec<_>>>()?;
    Ok((hit, items))
}

/// Parses EDGE.PREDICT's reply (without scores): an array of item ids.
pub fn parse_predict(v: &Value) -> Result<Vec<&str>> {
    let bad = || Error::Protocol(format!("EDGE.PREDICT replied {v:?}, expected an array"));
    array(v)
        .ok_or_else(bad)?
        .iter()
        .map(|x| text(x).ok_or_else(bad))
        .collect()
}

/// Appends `command user item TS ts [DURATION s] [DEVICE d]` for one event to a pipeline
/// and returns it, so the caller can add command-specific arguments. EDGE.PLAY and
/// EDGE.RECORD share this argument layout; building it in one place keeps `eval --redis`
/// and `replay` sending exactly the same view.
pub fn push_view<'p>(
    pipe: &'p mut redis::Pipeline,
    command: &str,
    log: &Log,
    e: &crate::logs::Event,
) -> &'p mut redis::Pipeline {
    let c = pipe
        .cmd(command)
        .arg(&log.users[e.user as usize])
        .arg(&log.items[e.item as usize])
        .arg("TS")
        .arg(e.ts_ms);
    if let Some(d) = e.duration_s {
        c.arg("DURATION").arg(d);
    }
    if let Some(d) = log.device(e) {
        c.arg("DEVICE").arg(d);
    }
    c
}

/// Appends EDGE.PLAY for one event to a pipeline.
pub fn push_play(pipe: &mut redis::Pipeline, log: &Log, e: &crate::logs::Event, use_sizes: bool) {
    let c = push_view(pipe, "EDGE.PLAY", log, e);
    if use_sizes {
        if let Some(s) = e.size {
            c.arg("SIZE").arg(s);
        }
    }
}

/// Prepares a server for a run: applies the settings, then FLUSHALL, which also resets the
/// module's node (model and cache) under the new configuration.
pub fn prepare_server(con: &mut redis::Connection, spec: &EdgeSpec) -> Result<()> {
    let mut set = |name: &str, value: String| -> Result<()> {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg(format!("edge.{name}"))
            .arg(&value)
            .query::<()>(con)
            .map_err(|e| Error::redis(format!("CONFIG SET edge.{name} {value}"), e))
    };
    set("cache-capacity-bytes", spec.capacity_bytes.to_string())?;
    set("item-size-bytes", spec.item_size.to_string())?;
    for (n, v) in &spec.settings {
        set(n, v.clone())?;
    }
    redis::cmd("FLUSHALL")
        .arg("SYNC")
        .query::<()>(con)
        .map_err(|e| Error::redis("FLUSHALL", e))
}

/// Runs the protocol through a server (which must have the module loaded), pipelining
/// `pipeline` events per round trip. The server is flushed first.
pub fn run_redis(
    con: &mut redis::Connection,
    log: &Log,
    spec: &EdgeSpec,
    pipeline: usize,
    tick: &dyn Fn(u64),
) -> Result<EdgeRun> {
    prepare_server(con, spec)?;
    let index = item_index(log);
    let mut acc = Accounting::new(log.items.len(), spec.k > 0);
    for chunk in log.events.chunks(pipeline.max(1)) {
        let mut pipe = redis::pipe();
        for e in chunk {
            if spec.k > 0 {
                pipe.cmd("EDGE.PREDICT")
                    .arg(&log.users[e.user as usize])
                    .arg("K")
                    .arg(spec.k);
            }
            push_play(&mut pipe, log, e, spec.use_sizes);
        }
        let replies: Vec<Value> = pipe
            .query(con)
            .map_err(|e| Error::redis("EDGE.PREDICT/EDGE.PLAY pipeline", e))?;
        let per = if spec.k > 0 { 2 } else { 1 };
        if replies.len() != chunk.len() * per {
            return Err(Error::Protocol(format!(
                "{} replies to {} commands",
                replies.len(),
                chunk.len() * per
            )));
        }
        for (e, r) in chunk.iter().zip(replies.chunks(per)) {
            if spec.k > 0 {
                let preds = parse_predict(&r[0])?;
                acc.predicted(e.item, preds.iter().map(|p| index.get(p).copied()));
            }
            let (hit, prefetched) = parse_play(&r[per - 1])?;
            acc.played(
                e.item,
                hit,
                prefetched.iter().map(|p| index.get(p).copied()),
            );
        }
        tick(chunk.len() as u64);
    }
    Ok(acc.run)
}
