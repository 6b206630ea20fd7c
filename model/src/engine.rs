//! One edge node's whole state and its live flows.
//!
//! The module keeps exactly one [`Engine`] per server; `loadgen`'s in-process evaluation
//! keeps one per simulated edge. Per-user state is passed in by the caller (it lives in
//! Redis keys), so the engine never owns user data and a user's key can move between nodes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::cache::{confidence, Budget, CacheOutcome, EdgeCache};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::error::ConfigError;
use crate::federation::Packed;
use crate::federation::{self, Imported, Update};
use crate::hash::fingerprint;
use crate::learn::node::{LearnParams, Learned, NodeModel};
use crate::memo::{MemoEntry, RankedList};
use crate::scoring::{Prediction, Query, Scorer};
use crate::stats::Stats;
use crate::user::{UserBounds, UserState};
use crate::wire::bump;

/// One view as clients report it.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// The item watched.
    pub item: &'a str,
    /// When (ms since the Unix epoch).
    pub ts_ms: i64,
    /// Seconds watched, if known: a skip teaches less than a full view.
    pub duration_s: Option<u32>,
    /// Device class, for the activity breakdown.
    pub device: Option<&'a str>,
}

/// What EDGE.PLAY did.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayOutcome {
    /// Whether the request was served from the edge cache.
    pub outcome: CacheOutcome,
    /// Items newly brought into the cache by the prefetch that followed.
    pub prefetched: Vec<String>,
    /// Whether the requested item is in the cache after the play (a miss it admitted, or a
    /// hit it kept): a store holding the bytes keeps them exactly when this is true.
    pub admitted: bool,
    /// Keys that left the cache since the previous play (this play's evictions, and those
    /// of commands in between, such as a lowered capacity), oldest first.
    pub dropped: Vec<Box<str>>,
    /// Some keys left without being logged (more than [`crate::cache::DROPPED_MAX`] since
    /// the previous play): a store must resynchronise from the cache's contents.
    pub dropped_overflow: bool,
}

/// Each engine's model versions start in their own 2^32 range, so a memo computed by one
/// engine is never mistaken as current by another (after FLUSHALL, a reload, a restore).
static EPOCHS: AtomicU64 = AtomicU64::new(1);

fn fresh_version() -> u64 {
    EPOCHS.fetch_add(1, Ordering::Relaxed) << 32
}

/// The state of one edge node.
///
/// A clone learns inline whatever `learner-thread` says (the thread is not shared); give
/// it the setting again with [`Engine::set_config`] to have one of its own.
#[derive(Debug, Clone)]
pub struct Engine {
    config: Config,
    /// Bumped by every change to what predictions depend on (views, settings).
    version: u64,
    model: NodeModel,
    cache: EdgeCache,
    stats: Stats,
    scorer: Scorer,
    /// The memoized list for viewers never seen (see [`Engine::predict_with`]).
    anon_memo: Option<MemoEntry>,
    /// Items the model may keep under `model-memory-max`, as last measured (see
    /// [`Engine::check_memory`]); `None` while the bound is off or `items-max` is tighter.
    /// Derived from a measurement, never persisted: a reload measures again.
    memory_items: Option<usize>,
    /// The next row to hold to a lowered `successors-max`, while [`Engine::maintain`] is
    /// still going through them (`None`: every row is within it). Not persisted: a load
    /// holds every row to the bound at once.
    rows_to_shrink: Option<usize>,
}

/// Items one [`Engine::maintain`] step evicts at most. An eviction costs about a
/// microsecond in a release build (the item, its row, its board place), so a step stays
/// within a few milliseconds of the event loop, and lowering `items-max` by a million
/// items takes some 500 steps instead of one 2-second stall.
pub const MAINTENANCE_EVICTIONS: usize = 2048;

/// Slots the eviction hand may pass in one [`Engine::maintain`] step (a few milliseconds
/// of sequential reads): as a shrink thins the catalog out, sampling eight items passes
/// ever more empty slots, and without this bound the last step of a shrink from a million
/// items to 16 took 0.4 s.
pub const MAINTENANCE_SCAN: u64 = 1 << 17;

/// Row entries one [`Engine::maintain`] step may sort while holding rows to a lowered
/// `successors-max` (rows within the bound count one each): about 2.5 ms in a release
/// build, where 2^17 took 10 ms.
pub const MAINTENANCE_ROW_ENTRIES: u64 = 1 << 15;

/// Live items up to which a thinned-out catalog (under one live slot in eight) is
/// compacted in the middle of a shrink, in a step of its own: that costs a pass over the
/// slots and the rows of these items (`edge_maintenance_step_max_us` shows what it took;
/// docs/durability.md has the measurement), and makes sampling cheap again.
const SPARSE_COMPACTION_MAX: usize = 1 << 10;

/// The fewest items a memory bound shrinks the catalog to: `items-max`'s own minimum, so
/// a bound below what an empty model takes stops evicting rather than empty the catalog.
const MEMORY_ITEMS_MIN: usize = 16;

/// What one [`Engine::maintain`] step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Maintenance {
    /// Items evicted in this step (at most [`MAINTENANCE_EVICTIONS`]).
    pub evicted: usize,
    /// Whether the catalog was compacted and its spare memory returned in this step.
    pub compacted: bool,
    /// Rows this step held to a lowered `successors-max` (a step of its own).
    pub rows: usize,
    /// Whether more steps are due (see [`Engine::maintenance_due`]).
    pub due: bool,
}

impl Engine {
    /// A fresh node.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut cache = EdgeCache::new(config.cache_policy, config.cache_capacity_bytes);
        cache.configure(
            config.cache_policy,
            config.cache_capacity_bytes,
            config.share_mode(),
            Budget::new(config.prefetch_budget, config.prefetch_k),
        );
        let mut model = NodeModel::new(
            config.half_life_ms,
            config.popularity_half_life_ms,
            config.demand_half_life(),
        );
        model.transitions.set_background(config.learner_thread);
        Ok(Engine {
            version: fresh_version(),
            model,
            cache,
            stats: Stats::default(),
            scorer: Scorer::default(),
            anon_memo: None,
            memory_items: None,
            rows_to_shrink: None,
            config,
        })
    }

    /// Reassembles a node from persisted parts (see [`crate::codec`]), then applies `config`.
    pub fn from_parts(config: Config, model: NodeModel, cache: EdgeCache, stats: Stats) -> Self {
        let mut e = Engine {
            config: config.clone(),
            version: fresh_version(),
            model,
            cache,
            stats,
            scorer: Scorer::default(),
            anon_memo: None,
            memory_items: None,
            rows_to_shrink: None,
        };
        e.apply(&config, e.model.decay.landmark());
        // Rows saved under a wider bound are held to this one as they load (a load runs in
        // one piece anyway; a lowered setting at run time goes through `maintain`).
        e.model.transitions.shrink(config.successors_max);
        e.model.local.shrink(config.successors_max);
        e
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Changes settings at run time. Lowered bounds take effect at once (rows shrink, items
    /// and cache entries are evicted), so memory follows the configuration.
    ///
    /// A new half-life rebases its clock at the latest view this node has learned from, not
    /// at the wall clock: the model's time is its views' time (a replayed log may be years
    /// old, and rebasing there would scale every weight to nothing), and two nodes that
    /// learned the same views then hold the same model whenever the change reaches them.
    pub fn set_config(&mut self, config: Config) -> Result<(), ConfigError> {
        config.validate()?;
        self.apply(&config, self.model.last_ts_ms);
        self.config = config;
        self.version += 1;
        Ok(())
    }

    fn learn_params(&self) -> LearnParams {
        let c = &self.config;
        LearnParams {
            learning: c.learning,
            successors_max: c.successors_max,
            items_max: self.items_bound(),
        }
    }

    /// The items the catalog may hold now: `items-max`, or fewer if `model-memory-max`
    /// was found to allow fewer (see [`Engine::check_memory`]).
    pub fn items_bound(&self) -> usize {
        self.memory_items
            .map_or(self.config.items_max, |m| m.min(self.config.items_max))
    }

    /// Whether [`Engine::maintain`] has work: the catalog is over its bound (one just
    /// lowered, or a memory bound just measured), or evictions left slots to compact.
    pub fn maintenance_due(&self) -> bool {
        let c = &self.model.catalog;
        c.len() > self.items_bound() || c.free_slots() > 0 || self.rows_to_shrink.is_some()
    }

    /// One bounded step of the work a lowered bound leaves: holds rows to a lowered
    /// `successors-max` until about [`MAINTENANCE_ROW_ENTRIES`] entries were looked at;
    /// else evicts up to [`MAINTENANCE_EVICTIONS`] of the least popular items (peers'
    /// first, and passing at most [`MAINTENANCE_SCAN`] slots) while the
    /// catalog is over [`Engine::items_bound`], and once it is not, compacts the catalog
    /// and the tables indexed by it, returning the memory of what was evicted (see
    /// [`NodeModel::compact`]). Settings never do this work themselves: the module takes
    /// one step in `CONFIG SET` and the rest from an event-loop timer, so no single step
    /// blocks the server for long, and an in-process caller calls it until `due` is false.
    pub fn maintain(&mut self) -> Maintenance {
        self.flush();
        if let Some(from) = self.rows_to_shrink {
            let max = self.config.successors_max;
            let (next, rows) =
                self.model
                    .transitions
                    .shrink_some(from, max, MAINTENANCE_ROW_ENTRIES);
            // The local-only rows of the same items, in the same step (they are no
            // wider than the own rows were allowed to be).
            self.model
                .local
                .shrink_range(from..next.unwrap_or(usize::MAX), max);
            self.rows_to_shrink = next;
            self.version += 1;
            return Maintenance {
                rows,
                due: self.maintenance_due(),
                ..Maintenance::default()
            };
        }
        let bound = self.items_bound();
        let c = &self.model.catalog;
        let sparse = c.len() <= SPARSE_COMPACTION_MAX && c.free_slots() > 7 * c.len();
        if sparse && self.compact() {
            // A step of its own: evictions wait for the next one.
            return Maintenance {
                compacted: true,
                due: self.maintenance_due(),
                ..Maintenance::default()
            };
        }
        let evicted = self
            .model
            .evict_down_to(bound, MAINTENANCE_EVICTIONS, MAINTENANCE_SCAN);
        let compacted = self.model.catalog.len() <= bound && self.compact();
        if evicted > 0 {
            self.version += 1;
        }
        Maintenance {
            evicted,
            compacted,
            rows: 0,
            due: self.maintenance_due(),
        }
    }

    /// Compacts the catalog now, whatever is under way (see [`NodeModel::compact`]):
    /// the end of a shrink and every import call it, so a settled node holds no free slot.
    /// Returns whether anything moved.
    pub fn compact(&mut self) -> bool {
        self.flush();
        let compacted = self.model.compact();
        if compacted {
            // Rows were renumbered: a shrink of them under way starts over (cheap for the
            // rows already within the bound).
            if self.rows_to_shrink.is_some() {
                self.rows_to_shrink = Some(0);
            }
            // The scorer's per-slot scratch is sized for the old numbering.
            crate::catalog::release(std::mem::take(&mut self.scorer));
            self.version += 1;
        }
        compacted
    }

    /// Measures the model against `model-memory-max` and derives how many items fit
    /// ([`Engine::items_bound`]): the items kept now, scaled by how far memory is from the
    /// bound, with an eighth to spare so one shrink usually suffices. Under the bound with
    /// room to spare, the allowance grows back the same way (up to `items-max`). Returns
    /// [`Engine::maintenance_due`]. Costs a pass over the rows, so the module calls it about
    /// once a second, and not while a shrink is under way (memory is measured by capacity,
    /// which a shrink returns only when it ends).
    pub fn check_memory(&mut self) -> bool {
        let max = self.config.model_memory_max;
        if max == 0 {
            self.memory_items = None;
            return self.maintenance_due();
        }
        if self.maintenance_due() {
            return true;
        }
        let memory = self.memory_bytes().max(1) as u128;
        let live = self.model.catalog.len() as u128;
        let fit = (live * u128::from(max) * 7 / 8 / memory) as usize;
        if memory > u128::from(max) {
            self.memory_items = Some(fit.max(MEMORY_ITEMS_MIN));
        } else if let Some(items) = self.memory_items {
            self.memory_items = (fit < self.config.items_max).then_some(fit.max(items));
        }
        self.maintenance_due()
    }

    /// Applies links still buffered by learning (see [`crate::learn::Transitions`]).
    /// Every reader of the model calls it, so answers never depend on when a batch lands.
    pub fn flush(&mut self) {
        let p = self.learn_params();
        self.model.flush(p);
    }

    /// Waits until no batch is on the learner thread: call before `fork()`, so that the
    /// child finds the whole model in its own memory. Returns whether one was.
    pub fn quiesce(&mut self) -> bool {
        self.model.transitions.quiesce()
    }

    /// In a forked child (where the learner thread does not exist): learn inline from now on.
    pub fn forget_learner(&mut self) {
        self.model.transitions.forget_learner();
    }

    fn apply(&mut self, c: &Config, now_ms: i64) {
        // Buffered links were learned under the old settings: they land under them.
        self.flush();
        self.model.transitions.set_background(c.learner_thread);
        let g = &mut self.model;
        if c.half_life_ms != g.decay.half_life() {
            let factor = g.decay.set_half_life(c.half_life_ms, now_ms);
            g.transitions.scale(factor as f32);
            g.peers.rows.scale(factor as f32);
            g.local.scale(factor as f32);
            g.landmark_epoch = g.transitions.epoch();
        }
        if c.popularity_half_life_ms != g.pop_decay.half_life() {
            let factor = g.pop_decay.set_half_life(c.popularity_half_life_ms, now_ms);
            g.landmark_epoch = g.transitions.epoch();
            g.catalog.scale(factor);
        }
        if let Some(factor) = g.set_demand_half_life(c.demand_half_life()) {
            self.cache.rescale(factor);
        }
        // A lowered `successors-max` or `items-max` is applied by `maintain`, in bounded
        // steps; meanwhile a full row replaces its lightest entry rather than grow.
        if c.successors_max < self.config.successors_max {
            self.rows_to_shrink = Some(0);
        }
        if c.model_memory_max == 0 {
            self.memory_items = None;
        }
        self.cache.configure(
            c.cache_policy,
            c.cache_capacity_bytes,
            c.share_mode(),
            Budget::new(c.prefetch_budget, c.prefetch_k),
        );
    }

    /// Model, cache and counters together, with every buffered link applied (for
    /// persistence and reporting, which need all three at once).
    pub fn parts(&mut self) -> (&NodeModel, &EdgeCache, &Stats) {
        self.flush();
        (&self.model, &self.cache, &self.stats)
    }

    /// The item catalog (never waits on buffered links).
    pub fn catalog(&self) -> &Catalog {
        &self.model.catalog
    }

    /// The node model, with every buffered link applied.
    pub fn model(&mut self) -> &NodeModel {
        self.flush();
        &self.model
    }

    /// The edge cache.
    pub fn cache(&self) -> &EdgeCache {
        &self.cache
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Counts a user erased on request.
    pub fn note_forget(&mut self) {
        bump(&mut self.stats.forgets);
    }

    fn user_bounds(&self) -> UserBounds {
        self.config.user_bounds()
    }

    /// Learns one view of `user`.
    pub fn record(&mut self, user: &mut UserState, view: &View<'_>) {
        let c = &self.config;
        // Hashed once here for the lookups below (learning and the viewer's state hash it
        // again inside, where the name is all they take).
        let fp = fingerprint(view.item.as_bytes());
        std::hint::black_box(user.warm(fp, c.learning.window));
        // Privacy clip: past `dp-clip` views in one export round, a viewer's views still
        // shape their own history and this edge's cache demand but reach nothing the node
        // exports: no counts, no links (nor links from them later, see
        // `HistoryEntry::clipped`), no watch time.
        let clipped =
            c.dp_clip > 0 && user.count_round_view(self.model.transitions.epoch()) > c.dp_clip;
        let mut skip = false;
        if let Some(d) = view.duration_s {
            if let Some(r) = self.model.catalog.lookup_fp(fp, view.item) {
                skip = if clipped {
                    self.model.is_skip(r, d, c.skip_threshold_pct)
                } else {
                    self.model.observe_duration(r, d, c.skip_threshold_pct)
                };
            }
        }
        let view_weight = if skip {
            c.weights.skip_weight as f32
        } else {
            1.0
        };
        let params = self.learn_params();
        // The popularity level the viewer found the item at: measured before this view.
        let mean_ln_views = self.model.mean_ln_views();
        let learned = if clipped {
            bump(&mut self.stats.dp_clipped);
            let item = self.model.catalog.lookup_fp(fp, view.item);
            Learned {
                item,
                prior_views: self.model.views(item),
            }
        } else {
            self.model
                .learn(user.history(), view.item, view.ts_ms, view_weight, params)
        };
        if c.dp_clip > 0 {
            self.model.learn_local(
                user.history(),
                view.item,
                view.ts_ms,
                view_weight,
                clipped,
                params,
            );
        }
        let z = (1.0 + learned.prior_views as f64).ln() - mean_ln_views;
        user.observe_affinity(z, c.scoring.affinity_rate);
        if let Some(factor) = self.model.count_demand(learned.item) {
            self.cache.rescale(factor);
        }
        if let (Some(r), Some(d), false) = (learned.item, view.duration_s, clipped) {
            if self.model.catalog.get(r).is_some_and(|i| i.views == 1) {
                self.model.observe_duration(r, d, c.skip_threshold_pct);
            }
        }
        // The catalog's string when it tracks the item: no allocation per view.
        let name = learned
            .item
            .and_then(|r| self.model.catalog.get(r))
            .map_or_else(|| Arc::from(view.item), |i| Arc::clone(&i.name));
        user.push(
            name,
            view.ts_ms,
            view_weight,
            view.device,
            self.user_bounds(),
            learned.item.map(|r| self.model.catalog.hint(r)),
        );
        if clipped {
            user.clip_last();
        }
        bump(&mut self.stats.records);
        self.version += 1;
        if skip {
            bump(&mut self.stats.skips);
        }
        if let Some(d) = view.device {
            self.stats.count_device(d);
        }
    }

    /// Scores on the flushed model, the one way predictions are computed, and hands the
    /// list (names borrowed from the catalog) to `use_list` with the cache, catalog and
    /// default item size, which the list does not hold on to. Counts the prediction and
    /// the latency of computing it.
    fn ranked<R>(
        &mut self,
        user: Option<&UserState>,
        q: Query,
        use_list: impl FnOnce(&[(&str, f64)], &mut EdgeCache, &Catalog, u64) -> R,
    ) -> R {
        let start = Instant::now();
        self.flush();
        let list = self.scorer.rank(&self.model, user, &self.config, q);
        bump(&mut self.stats.predictions);
        self.stats
            .predict_latency
            .record(start.elapsed().as_micros() as u64);
        let default_size = self.config.default_item_size;
        use_list(&list, &mut self.cache, &self.model.catalog, default_size)
    }

    /// The top `k` items for `user` (`None`: a viewer never seen), best first.
    pub fn predict(
        &mut self,
        user: Option<&UserState>,
        k: usize,
        include_seen: bool,
    ) -> Vec<Prediction> {
        self.ranked(user, Query { k, include_seen }, |list, _, _, _| {
            list.iter()
                .map(|&(item, score)| Prediction {
                    item: item.to_owned(),
                    score,
                })
                .collect()
        })
    }

    /// Like [`Engine::predict`], but served from a memo when neither the user nor the node
    /// model changed since it was computed (or changed by at most `predict_staleness` views
    /// elsewhere), and handed to `reply` by reference with the `k` asked for (the list may be
    /// longer or shorter), so a read-heavy workload costs a lookup per prediction and no
    /// copies. Known users keep their memo in their state, new viewers share one. Any write
    /// makes the next prediction fresh, so with the default staleness of 0 the answer is
    /// always exactly what a fresh computation gives.
    ///
    /// A memo hit is counted in the latency histogram's first bucket without reading the
    /// clock: it is a comparison and a reply, well under a microsecond, and two clock reads
    /// would be a noticeable share of it.
    pub fn predict_with<R>(
        &mut self,
        user: Option<&UserState>,
        k: usize,
        include_seen: bool,
        reply: impl FnOnce(&RankedList, usize) -> R,
    ) -> R {
        let held = match user {
            Some(u) => u.memo.0.borrow_mut().take(),
            None => self.anon_memo.take(),
        };
        let fresh = |m: &MemoEntry| {
            self.version.wrapping_sub(m.version) <= self.config.predict_staleness
                && m.include_seen == include_seen
                && m.k >= k
        };
        let memo = match held {
            Some(m) if fresh(&m) => {
                self.stats.predict_memo_hits += 1;
                bump(&mut self.stats.predictions);
                self.stats.predict_latency.record(0);
                m
            }
            _ => MemoEntry {
                version: self.version,
                k,
                include_seen,
                list: self.ranked(user, Query { k, include_seen }, |list, _, _, _| {
                    RankedList::pack(list)
                }),
            },
        };
        let out = reply(&memo.list, k);
        match user {
            Some(u) => *u.memo.0.borrow_mut() = Some(memo),
            None => self.anon_memo = Some(memo),
        }
        out
    }

    /// Predicts for `user` and brings the top `k` into the cache as prefetches; returns the
    /// items that were newly fetched.
    pub fn prefetch(&mut self, user: Option<&UserState>, k: usize) -> Vec<String> {
        let predictions = self.predict(user, k, false);
        let mut fetched = Vec::new();
        for p in predictions {
            let size = self.item_size(&p.item, None);
            if self.cache.prefetch(&p.item, size) {
                fetched.push(p.item);
            }
        }
        fetched
    }

    /// The prefetch of a play under a budget: the viewer's top predictions, as deep as the
    /// controller looks, each offered with its confidence; the controller fetches those it
    /// can afford (see [`crate::cache`]'s budget controller).
    fn prefetch_budgeted(&mut self, user: &UserState) -> Vec<String> {
        let k = self.cache.prefetch_k(self.config.prefetch_k);
        let q = Query {
            k,
            include_seen: false,
        };
        self.ranked(Some(user), q, |list, cache, catalog, default| {
            let scores: Vec<f64> = list.iter().map(|&(_, score)| score).collect();
            let mut fetched = Vec::new();
            for ((rank, &(item, _)), q) in list.iter().enumerate().zip(confidence(&scores)) {
                let size = || item_size(catalog, default, item, None);
                if cache.offer(item, size, rank, q) {
                    fetched.push(item.to_owned());
                }
            }
            fetched
        })
    }

    fn item_size(&self, item: &str, given: Option<u64>) -> u64 {
        item_size(
            &self.model.catalog,
            self.config.default_item_size,
            item,
            given,
        )
    }

    /// The live flow of one request: serve from the cache or fetch, learn the view, then
    /// prefetch what this user is likely to want next.
    pub fn play(
        &mut self,
        user: &mut UserState,
        view: &View<'_>,
        size: Option<u64>,
    ) -> PlayOutcome {
        bump(&mut self.stats.plays);
        let size = self.item_size(view.item, size);
        // Learning first changes nothing in the cache; it gives the request its frequency.
        self.record(user, view);
        let mut freq = 0.0;
        if let Some(r) = self.model.catalog.lookup(view.item) {
            if let Some(i) = self.model.catalog.get_mut(r) {
                i.size_bytes = size;
                freq = i.demand;
            }
        }
        let outcome = self.cache.request(view.item, size, freq);
        let prefetched = if self.cache.budget().active() {
            self.prefetch_budgeted(user)
        } else {
            let k = self.cache.prefetch_k(self.config.prefetch_k);
            self.prefetch(Some(user), k)
        };
        let admitted = self.cache.contains(view.item);
        let (dropped, dropped_overflow) = self.cache.take_dropped();
        PlayOutcome {
            outcome,
            prefetched,
            admitted,
            dropped,
            dropped_overflow,
        }
    }

    /// This node's model update for federation: everything, or what changed after round
    /// `since` (see [`crate::federation`]). Starts a new export round.
    pub fn export_update(&mut self, node: &str, since: Option<u64>) -> Update {
        self.flush();
        let mut u = federation::export(&mut self.model, node, since);
        u.settings = Some(federation::LearnSettings::of(&self.config));
        u
    }

    /// Merges an aggregate of peers' updates; idempotent per round.
    pub fn import_update(&mut self, u: &Update, now_ms: i64, bytes: usize) -> Imported {
        self.import_packed(&Packed::pack(u), now_ms, bytes)
    }

    /// [`Engine::import_update`] of an update as its blob carries it (see
    /// [`crate::federation::Packed`]): what the module decodes, without spelling names out.
    pub fn import_packed(&mut self, u: &Packed, now_ms: i64, bytes: usize) -> Imported {
        self.flush();
        let items_max = self.items_bound();
        let out = federation::import(
            &mut self.model,
            u,
            self.config.successors_max,
            items_max,
            now_ms,
            bytes,
        );
        if out.applied {
            self.version += 1;
            // Peers' items the aggregate no longer names leave free slots: an import
            // compacts them at once, so the layout never depends on when a timer ran
            // (within a shrink, `maintain` compacts when it ends).
            if self.model.catalog.len() <= items_max {
                self.compact();
            }
        }
        out
    }

    /// Heap bytes of the node's model and cache bookkeeping.
    pub fn memory_bytes(&mut self) -> usize {
        self.flush();
        self.model.memory_bytes() + self.cache.memory_bytes()
    }
}

/// The size of `item`: the one given, else the one its last play recorded, else `default`.
fn item_size(catalog: &Catalog, default: u64, item: &str, given: Option<u64>) -> u64 {
    given
        .or_else(|| {
            let r = catalog.lookup(item)?;
            catalog.get(r).map(|i| i.size_bytes).filter(|&s| s > 0)
        })
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(item: &str, ts_ms: i64) -> View<'_> {
        View {
            item,
            ts_ms,
            duration_s: None,
            device: Some("TV"),
        }
    }

    fn small() -> Config {
        Config {
            cache_capacity_bytes: 4,
            default_item_size: 1,
            prefetch_budget: 0.0,
            prefetch_share_pct: 50,
            ..Config::default()
        }
    }

    /// The privacy clip keeps a heavy viewer's views out of the exported model, not out of
    /// this edge's cache: every request counts in the item's demand.
    #[test]
    fn clipped_views_still_count_as_cache_demand() {
        let mut e = Engine::new(Config {
            dp_clip: 1,
            ..small()
        })
        .unwrap();
        let mut heavy = UserState::default();
        for t in 0..10 {
            e.play(&mut heavy, &view("A", t), None);
        }
        assert!(e.stats().dp_clipped > 0, "the clip applied");
        let a = e.catalog().get(e.catalog().lookup("A").unwrap()).unwrap();
        assert_eq!(a.views, 1, "one view reached the model");
        assert!(
            a.demand > 9.0,
            "ten requests reached the cache: {}",
            a.demand
        );
    }

    /// A new cache memory rebases every demand and the cache's stored frequencies alike.
    #[test]
    fn a_new_cache_memory_rebases_demand_and_the_cache_together() {
        let mut e = Engine::new(small()).unwrap();
        let mut u = UserState::default();
        for (t, item) in ["A", "A", "B", "A", "C"].iter().enumerate() {
            e.play(&mut u, &view(item, t as i64), None);
        }
        let demand = |e: &Engine, i| {
            e.catalog()
                .get(e.catalog().lookup(i).unwrap())
                .unwrap()
                .demand
        };
        let before = demand(&e, "A") / demand(&e, "B");
        let mut c = e.config().clone();
        c.cache_memory = 1;
        e.set_config(c).unwrap();
        assert!((demand(&e, "A") / demand(&e, "B") - before).abs() < 1e-9);
        let cached = e.cache().entries();
        let freq = |k: &str| cached.iter().find(|i| i.key == k).map(|i| i.freq);
        assert_eq!(
            freq("A"),
            Some(demand(&e, "A")),
            "the cache follows the rebase"
        );
    }

    #[test]
    fn series_viewers_teach_the_next_episode() {
        let mut e = Engine::new(small()).unwrap();
        for u in 0..20 {
            let mut user = UserState::default();
            for (t, ep) in ["S1E1", "S1E2", "S1E3"].iter().enumerate() {
                e.record(&mut user, &view(ep, (u * 10 + t) as i64));
            }
        }
        let mut fresh = UserState::default();
        e.record(&mut fresh, &view("S1E1", 1000));
        let p = e.predict(Some(&fresh), 3, false);
        assert_eq!(p[0].item, "S1E2");
        assert!(
            p.iter().all(|p| p.item != "S1E1"),
            "seen items are excluded"
        );
        let p = e.predict(Some(&fresh), 3, true);
        assert!(p.iter().any(|p| p.item == "S1E1") || p.len() == 3);
    }

    #[test]
    fn memoized_predictions_equal_fresh_ones_and_writes_invalidate_them() {
        let mut e = Engine::new(small()).unwrap();
        let mut users = vec![UserState::default(); 3];
        for t in 0..60 {
            let item = format!("I{}", (t * 7) % 37);
            e.record(&mut users[t % 3], &view(&item, t as i64));
        }
        let fresh = e.predict(Some(&users[0]), 5, false);
        assert_eq!(fresh.len(), 5);
        let memo = |e: &mut Engine, u: &UserState, k| {
            e.predict_with(Some(u), k, false, RankedList::to_vec)
        };
        assert_eq!(memo(&mut e, &users[0], 5), fresh);
        assert_eq!(memo(&mut e, &users[0], 5), fresh);
        assert_eq!(memo(&mut e, &users[0], 3), fresh[..3]);
        assert_eq!(e.stats().predict_memo_hits, 2);
        // A view by someone else changes the model: the memo is not served.
        e.record(&mut users[1], &view("I3", 100));
        let now = e.predict(Some(&users[0]), 5, false);
        assert_eq!(memo(&mut e, &users[0], 5), now);
        assert_eq!(e.stats().predict_memo_hits, 2);
        // A longer list than memoized is computed afresh.
        assert_eq!(
            memo(&mut e, &users[0], 8),
            e.predict(Some(&users[0]), 8, false)
        );
    }

    #[test]
    fn the_privacy_clip_keeps_a_viewers_extra_views_out_of_the_node_model() {
        let mut e = Engine::new(Config {
            dp_clip: 2,
            ..small()
        })
        .unwrap();
        let mut u = UserState::default();
        for (t, item) in ["A", "B", "C", "D"].iter().enumerate() {
            e.record(&mut u, &view(item, t as i64));
        }
        assert_eq!(
            u.history().len(),
            4,
            "the viewer's own history keeps every view"
        );
        assert_eq!(
            e.model().views_total,
            2,
            "only two views per round reach the node"
        );
        assert_eq!(e.stats().dp_clipped, 2);
        e.export_update("n", None);
        e.record(&mut u, &view("E", 10));
        assert_eq!(
            e.model().views_total,
            3,
            "a new export round starts a new allowance"
        );
    }

    /// A viewer over the clip teaches the export exactly what a viewer who made only the
    /// first `dp-clip` views would: no counts, no links to or from the clipped views (in a
    /// later round either), no watch time; and that survives a save and reload of the user.
    #[test]
    fn a_viewer_over_the_clip_contributes_exactly_the_clip() {
        let cfg = Config {
            dp_clip: 2,
            ..small()
        };
        let timed = |item, ts_ms, d| View {
            item,
            ts_ms,
            duration_s: Some(d),
            device: None,
        };
        let mut heavy = Engine::new(cfg.clone()).unwrap();
        let mut u = UserState::default();
        for (t, item) in ["A", "B", "C", "D", "A"].iter().enumerate() {
            heavy.record(&mut u, &timed(item, t as i64 * 1000, 100 + 50 * t as u32));
        }
        let mut only = Engine::new(cfg).unwrap();
        let mut v = UserState::default();
        for (t, item) in ["A", "B"].iter().enumerate() {
            only.record(&mut v, &timed(item, t as i64 * 1000, 100 + 50 * t as u32));
        }
        let strip = |mut x: Update| {
            x.node.clear();
            x
        };
        assert_eq!(
            strip(heavy.export_update("h", None)),
            strip(only.export_update("o", None))
        );
        let mut u = crate::codec::decode_user(&crate::codec::encode_user(&u), cfg_bounds())
            .expect("reloads");
        assert_eq!(
            u.history().iter().map(|h| h.clipped).collect::<Vec<_>>(),
            [false, false, true, true, true]
        );
        heavy.record(&mut u, &timed("E", 9000, 300));
        only.record(&mut v, &timed("E", 9000, 300));
        assert_eq!(
            strip(heavy.export_update("h", Some(1))),
            strip(only.export_update("o", Some(1)))
        );
        assert_eq!(heavy.stats().dp_clipped, 3);
    }

    /// Clipped views still teach the edge itself: their links live in the local-only
    /// table, which scoring reads, exports never do, and a save and reload keep.
    #[test]
    fn clipped_views_teach_the_edge_but_not_its_export() {
        let mut e = Engine::new(Config {
            dp_clip: 2,
            ..small()
        })
        .unwrap();
        // Everyone watches C and D once, so both are in the catalog; a heavy viewer then
        // watches C → D past the clip, many times over.
        let mut seed = UserState::default();
        e.record(&mut seed, &view("C", 0));
        e.record(&mut seed, &view("X", 1_000_000));
        e.record(&mut UserState::default(), &view("D", 2_000_000));
        let mut heavy = UserState::default();
        for t in 0..10 {
            e.record(&mut heavy, &view("A", 10_000_000 + t * 2_000_000));
            e.record(
                &mut heavy,
                &view(
                    ["C", "D"][t as usize % 2],
                    10_000_000 + t * 2_000_000 + 1_000_000,
                ),
            );
        }
        let export = e.export_update("n", None);
        let row = |from: &str| export.rows.iter().find(|r| r.from == from).cloned();
        assert!(
            row("C").is_none_or(|r| r.entries.iter().all(|(to, _)| to != "D")),
            "the clipped links are not exported: {export:?}"
        );
        assert!(!e.model().local.is_empty());
        let mut probe = UserState::default();
        e.record(&mut probe, &view("C", 100_000_000));
        let want = e.predict(Some(&probe), 3, false);
        assert_eq!(want.first().map(|p| p.item.as_str()), Some("A"), "{want:?}");
        assert!(
            want.iter().any(|p| p.item == "D" && p.score > 0.0),
            "D is reached through the local-only rows, not filled in by popularity: {want:?}"
        );
        let blob = crate::codec::encode_node(&mut e);
        let mut back = crate::codec::decode_node(&blob, e.config().clone()).unwrap();
        assert!(crate::codec::encode_node(&mut back) == blob);
        assert_eq!(back.predict(Some(&probe), 3, false), want);
    }

    fn cfg_bounds() -> UserBounds {
        small().user_bounds()
    }

    #[test]
    fn unknown_user_gets_popular_items() {
        let mut e = Engine::new(small()).unwrap();
        let mut u = UserState::default();
        for (item, n) in [("A", 5), ("B", 9), ("C", 1)] {
            for t in 0..n {
                e.record(&mut u, &view(item, t));
            }
        }
        let p: Vec<_> = e
            .predict(None, 2, false)
            .into_iter()
            .map(|p| p.item)
            .collect();
        assert_eq!(p, ["B", "A"]);
        assert_eq!(e.stats().predictions, 1);
    }

    #[test]
    fn skips_teach_less_than_full_views() {
        let mut e = Engine::new(small()).unwrap();
        let full = |e: &mut Engine, next: &str, d: u32| {
            let mut u = UserState::default();
            e.record(
                &mut u,
                &View {
                    item: "X",
                    ts_ms: 0,
                    duration_s: Some(3000),
                    device: None,
                },
            );
            e.record(
                &mut u,
                &View {
                    item: next,
                    ts_ms: 1,
                    duration_s: Some(d),
                    device: None,
                },
            );
        };
        for _ in 0..3 {
            full(&mut e, "Full", 3000);
        }
        for _ in 0..3 {
            full(&mut e, "Skip", 3000);
        }
        for _ in 0..6 {
            full(&mut e, "Skip", 10);
        }
        // Skip has 3 full views + 6 skips at 0.25 = 4.5 > 3: still ahead; 6 skips alone would not be.
        assert!(e.stats().skips >= 6);
        let mut u = UserState::default();
        e.record(&mut u, &view("X", 2));
        let p = e.predict(Some(&u), 2, false);
        assert_eq!(p[0].item, "Skip");
        let ratio = p[0].score / p[1].score;
        assert!(ratio < 2.0, "skips weigh less: ratio {ratio}");
    }

    #[test]
    fn play_hits_misses_and_prefetches() {
        let mut e = Engine::new(small()).unwrap();
        let mut a = UserState::default();
        for (t, ep) in ["E1", "E2", "E3"].iter().enumerate() {
            e.record(&mut a, &view(ep, t as i64));
        }
        let mut b = UserState::default();
        let first = e.play(&mut b, &view("E1", 10), None);
        assert_eq!(first.outcome, CacheOutcome::Miss);
        assert_eq!(first.prefetched.first().map(String::as_str), Some("E2"));
        let second = e.play(&mut b, &view("E2", 11), None);
        assert_eq!(second.outcome, CacheOutcome::Hit);
        assert_eq!(e.cache().stats().prefetch_used, 1);
        assert_eq!(e.stats().plays, 2);
    }

    /// A store that applies each play's delta (drops first, then the admitted miss and the
    /// prefetches) holds exactly the cache's contents after every play, through budgeted
    /// and fixed prefetching and a capacity lowered between plays.
    #[test]
    fn a_store_following_the_play_deltas_holds_the_cache() {
        let mut e = Engine::new(Config {
            cache_capacity_bytes: 12,
            ..small()
        })
        .unwrap();
        let mut users = vec![UserState::default(); 7];
        let mut store: std::collections::BTreeSet<String> = Default::default();
        let mut rng = 7u64;
        for t in 0..4000u64 {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let item = format!("I{}", (rng >> 33) % 40);
            let u = &mut users[((rng >> 20) % 7) as usize];
            if t == 1500 {
                let mut c = e.config().clone();
                c.prefetch_budget = 2.0;
                e.set_config(c).unwrap();
            }
            if t == 3000 {
                // Evictions between plays reach the store with the next play's delta.
                let mut c = e.config().clone();
                c.cache_capacity_bytes = 5;
                e.set_config(c).unwrap();
            }
            let out = e.play(u, &view(&item, t as i64 * 1000), None);
            assert!(!out.dropped_overflow);
            for d in &out.dropped {
                store.remove(&**d);
            }
            if out.outcome != CacheOutcome::Hit && out.admitted {
                store.insert(item.clone());
            }
            store.extend(out.prefetched.iter().cloned());
            let cached: std::collections::BTreeSet<String> =
                e.cache().entries().into_iter().map(|c| c.key).collect();
            assert_eq!(store, cached, "after play {t}");
        }
    }

    /// Views of `n` distinct items by `users` viewers taking turns, so rows fill.
    fn loaded(n: usize, users: usize) -> (Engine, Vec<UserState>) {
        let mut e = Engine::new(small()).unwrap();
        let mut us = vec![UserState::default(); users];
        for i in 0..n {
            let name = format!("I{i}");
            e.record(&mut us[i % users], &view(&name, i as i64 * 1000));
        }
        (e, us)
    }

    /// Lowering `items-max` does no eviction in the setting itself: the work comes in
    /// steps of at most `MAINTENANCE_EVICTIONS`, and the last one compacts, so memory
    /// follows the items kept and users' histories still resolve.
    #[test]
    fn a_lowered_items_max_shrinks_in_bounded_steps_and_returns_memory() {
        let n = 3 * MAINTENANCE_EVICTIONS + 100;
        let (mut e, users) = loaded(n, 7);
        let before = e.memory_bytes();
        let survivors = |e: &mut Engine| e.predict(Some(&users[0]), 5, true);
        let c = Config {
            items_max: 16,
            ..small()
        };
        e.set_config(c).unwrap();
        assert_eq!(e.catalog().len(), n, "the setting itself evicts nothing");
        assert!(e.maintenance_due());
        let mut steps = Vec::new();
        loop {
            let m = e.maintain();
            assert!(m.evicted <= MAINTENANCE_EVICTIONS);
            steps.push(m);
            if !m.due {
                break;
            }
        }
        // Three full steps leave 100 items in 6,244 slots: too sparse to sample well, so
        // a step of its own compacts them, and the last one evicts the rest and compacts.
        assert_eq!(steps.len(), 5, "{steps:?}");
        assert_eq!(steps.iter().map(|m| m.evicted).sum::<usize>(), n - 16);
        assert!(steps[..3].iter().all(|m| !m.compacted));
        assert_eq!(
            steps[3],
            Maintenance {
                compacted: true,
                due: true,
                ..Maintenance::default()
            }
        );
        assert!(steps[4].compacted);
        assert_eq!(e.catalog().len(), 16);
        assert_eq!(e.catalog().slot_count(), 16, "no empty slot left");
        let after = e.memory_bytes();
        assert!(after * 20 < before, "memory {before} -> {after}");
        assert_eq!(e.maintain(), Maintenance::default(), "nothing left to do");
        // The survivors are still linked and still predicted through old hints.
        let kept: Vec<String> = e
            .catalog()
            .iter()
            .map(|(_, i)| i.name.to_string())
            .collect();
        assert!(survivors(&mut e).iter().all(|p| kept.contains(&p.item)));
        let mut fresh = e.clone();
        let mut u = users[1].clone();
        e.record(&mut u.clone(), &view("I3", 1 << 30));
        fresh.record(&mut u, &view("I3", 1 << 30));
        assert_eq!(e.model().transitions, fresh.model().transitions);
    }

    /// A save in the middle of a shrink keeps the free slots and changes nothing, and the
    /// node it reloads finishes the shrink exactly as the saver does.
    #[test]
    fn a_save_in_the_middle_of_a_shrink_reloads_the_same_node() {
        let (mut e, users) = loaded(MAINTENANCE_EVICTIONS + 500, 5);
        e.set_config(Config {
            items_max: 300,
            ..small()
        })
        .unwrap();
        assert_eq!(e.maintain().evicted, MAINTENANCE_EVICTIONS);
        assert!(e.catalog().free_slots() > 0);
        let free = e.catalog().free_slots();
        let blob = crate::codec::encode_node(&mut e);
        assert_eq!(e.catalog().free_slots(), free, "a save changes nothing");
        let mut back = crate::codec::decode_node(&blob, e.config().clone()).unwrap();
        assert_eq!(back.catalog().free_slots(), free);
        assert!(crate::codec::encode_node(&mut back) == blob);
        for u in &users {
            assert_eq!(
                back.predict(Some(u), 10, false),
                e.predict(Some(u), 10, false)
            );
        }
        while back.maintain().due {}
        while e.maintain().due {}
        assert_eq!(back.catalog().len(), 300);
        assert_eq!(
            crate::codec::encode_node(&mut back),
            crate::codec::encode_node(&mut e)
        );
    }

    /// `model-memory-max` holds the model under its bound by evicting items, in bounded
    /// steps; raised again, it lets the catalog grow back.
    #[test]
    fn the_memory_bound_evicts_until_the_model_fits() {
        let (mut e, mut users) = loaded(20_000, 11);
        let before = e.memory_bytes() as u64;
        let max = (before / 3).max(crate::config::MODEL_MEMORY_MIN);
        e.set_config(Config {
            model_memory_max: max,
            ..small()
        })
        .unwrap();
        assert!(!e.maintenance_due(), "measured by check_memory only");
        let mut steps = 0;
        while e.check_memory() {
            while e.maintain().due {
                steps += 1;
            }
        }
        assert!(steps >= 2, "{steps} steps");
        let after = e.memory_bytes() as u64;
        assert!(after <= max, "{after} > {max} (before {before})");
        assert!(e.catalog().len() >= 16);
        // Learning stays within the allowance the measurement gave (a new item replaces
        // one once it is reached), and the next measurements keep memory under the bound.
        let bound = e.items_bound();
        assert!(bound < 20_000);
        for i in 0..bound {
            e.record(&mut users[i % 11], &view(&format!("new{i}"), 1 << 40));
            assert!(e.catalog().len() <= bound);
        }
        while e.check_memory() {
            while e.maintain().due {}
        }
        assert!(e.memory_bytes() as u64 <= max);
        // Unbounded again: the allowance is dropped.
        e.set_config(small()).unwrap();
        assert!(!e.check_memory());
        assert_eq!(e.items_bound(), small().items_max);
    }

    #[test]
    fn lowering_bounds_shrinks_state() {
        let mut e = Engine::new(small()).unwrap();
        let mut u = UserState::default();
        for i in 0..200 {
            e.record(&mut u, &view(&format!("I{i}"), i));
        }
        let c = Config {
            items_max: 50,
            successors_max: 2,
            ..small()
        };
        e.set_config(c).unwrap();
        assert!(e.model().transitions.rows().iter().any(|r| r.len() > 2));
        let m = e.maintain();
        assert!(
            m.rows > 0 && m.evicted == 0,
            "rows first, in a step of their own: {m:?}"
        );
        assert!(e.model().transitions.rows().iter().all(|r| r.len() <= 2));
        assert_eq!(e.maintain().evicted, 150);
        assert_eq!(e.model().catalog.len(), 50);
        assert!(e
            .set_config(Config {
                default_k: 0,
                ..small()
            })
            .is_err());
    }
}
