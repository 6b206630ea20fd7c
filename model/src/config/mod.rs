//! Settings of one edge node, with the bounds that keep memory and latency predictable.

use crate::cache::{CachePolicy, ShareMode};
use crate::error::ConfigError;

pub mod settings;

/// Upper bound on `k` for any prediction: a reply larger than this is a client bug, and the
/// top-k heap is sized by it.
pub const MAX_K: usize = 1000;

/// The smallest nonzero `model-memory-max`: an empty model's tables and the cache's
/// bookkeeping take some hundreds of KiB, and a bound below them could never be kept.
pub const MODEL_MEMORY_MIN: u64 = 1 << 20;

/// Every knob of the engine. Defaults are the values measured best on MovieLens 100K with
/// flat optima (see the README); each is validated by [`Config::validate`] first.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `k` of EDGE.PREDICT when the caller gives none.
    pub default_k: usize,
    /// How many predictions EDGE.PLAY prefetches after each view when no budget is set.
    pub prefetch_k: usize,
    /// Items of recent history kept per user; bounds both windows below.
    pub history_len: usize,
    /// Most distinct items remembered per user for "already seen" filtering.
    pub seen_max: usize,
    /// Personal transitions kept per user.
    pub personal_max: usize,
    /// Half-life of the co-occurrence evidence in ms; 0 keeps it forever.
    pub half_life_ms: u64,
    /// Half-life of item popularity in ms (the fallback ranking and item eviction; the
    /// cache's frequencies have their own clock, see [`Config::cache_memory`]).
    pub popularity_half_life_ms: u64,
    /// Neighbours kept per item (row width): bounds the co-occurrence table.
    pub successors_max: usize,
    /// Distinct items the node tracks; the least popular are evicted beyond it. Items known
    /// only from peers fill what own items leave and are evicted first (see
    /// [`crate::federation::import`]), so federation never costs the edge its own items.
    pub items_max: usize,
    /// Bytes the node model (catalog, rows, board, cache bookkeeping: what
    /// `edge_model_memory_bytes` reports) may hold; 0: bounded by `items_max` alone. Past
    /// it the least popular items are evicted in bounded steps until the model is back
    /// under it, so a server with `maxmemory` can keep the model below what its keys need.
    pub model_memory_max: u64,
    /// Edge cache capacity in bytes.
    pub cache_capacity_bytes: u64,
    /// Edge cache eviction policy.
    pub cache_policy: CachePolicy,
    /// Percent of the cache reserved for prefetches under the predictive policy; 0 derives
    /// it from the prefetch volume (see [`Config::prefetch_share`]).
    pub prefetch_share_pct: u32,
    /// Origin fetches per request the prefetcher may spend (misses included); 0 turns the
    /// controller off and every play prefetches `prefetch_k` predictions.
    pub prefetch_budget: f64,
    /// How many views elsewhere a memoized prediction may lag behind before it is
    /// recomputed (0: never served stale; see [`crate::Engine::predict_with`]).
    pub predict_staleness: u64,
    /// Size assumed for an item when EDGE.PLAY gives no SIZE.
    pub default_item_size: u64,
    /// A view shorter than this percentage of the item's usual watch time is a skip.
    pub skip_threshold_pct: u32,
    /// Differential-privacy clip: views per user per export round that reach the exported
    /// model (0: unlimited). It bounds one viewer's influence on a round, which calibrated
    /// noise at the federator turns into a privacy guarantee.
    pub dp_clip: u32,
    /// How views become evidence.
    pub learning: Learning,
    /// How evidence becomes a ranking.
    pub scoring: Scoring,
    /// Blend of the evidence sources.
    pub weights: Weights,
    /// Whether learning's batches of row updates are applied on a thread of their own, so
    /// that recording a view costs the recording thread the viewer's state and a buffer
    /// push, not the scattered row updates. Answers are the same either way: every reader
    /// waits for the rows (see [`crate::learn::Transitions`]). The thread starts with
    /// the first full batch; off, or if it cannot start, learning is inline (on one core,
    /// a thread only adds switches).
    pub learner_thread: bool,
    /// How long the edge cache remembers requests: the half-life of the frequencies that
    /// order it, in capacities' worth of views at this node (capacity in items is
    /// `cache_capacity_bytes / default_item_size`); 0: never forget. Counting views rather
    /// than seconds makes the memory the same at any traffic: a wall-clock week is
    /// thousands of requests on one log and a handful on another.
    pub cache_memory: u32,
}

/// How a view is credited to the items watched before it (see [`crate::learn::node`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Learning {
    /// Previous views linked to each new one.
    pub window: usize,
    /// Weight factor per step back (per group of simultaneous views).
    pub decay: f64,
    /// Weight of the reverse link (new → earlier) relative to the forward one. Episodes
    /// have an order, so the forward link stays stronger; taste is symmetric, so the reverse
    /// one still counts.
    pub reverse: f64,
    /// Views of one user at most this many ms apart are simultaneous: their order carries no
    /// information (a page of ratings submitted at once), so they are linked both ways at
    /// full weight and count as one step. 0 groups only identical timestamps; -1 never.
    pub simultaneous_ms: i64,
    /// Extra factor per step inside a group of simultaneous views.
    pub group_inner: f64,
    /// Space-Saving admission: a newcomer needs this fraction of the lightest entry.
    pub admission: f64,
}

/// How the evidence around a user's recent views is turned into scores (see
/// [`crate::scoring`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scoring {
    /// Recent views (most recent first) whose neighbours are scored.
    pub window: usize,
    /// Weight factor per step back in that window.
    pub decay: f64,
    /// Row normalizer exponent: `count / rowsum^row_norm` sits between raw co-occurrence
    /// (0, favours blockbusters) and conditional probability (1, favours one-off pairs).
    pub row_norm: f64,
    /// Strength of the popularity-affinity damping: candidates far from the user's usual
    /// popularity level (mainstream or niche) are scaled by `exp(-affinity · dz²)`.
    pub affinity: f64,
    /// Learning rate of the user's popularity level.
    pub affinity_rate: f64,
}

/// How the evidence sources are blended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    /// Weight of the node's own co-occurrence evidence.
    pub global: f64,
    /// Weight of the user's own transitions (they name seen items, so they only rank
    /// rewatches, with INCLUDESEEN).
    pub personal: f64,
    /// Weight of the federated (peer) evidence, once imported.
    pub federated: f64,
    /// A skip teaches this fraction of a full view.
    pub skip_weight: f64,
}

/// The defaults of the settings among these fields come from their declarations (see
/// [`Config::default`]).
impl Default for Learning {
    fn default() -> Self {
        Config::default().learning
    }
}

/// As for [`Learning`].
impl Default for Scoring {
    fn default() -> Self {
        Config::default().scoring
    }
}

/// As for [`Learning`].
impl Default for Weights {
    fn default() -> Self {
        Config::default().weights
    }
}

impl Default for Config {
    /// The declared defaults of [`crate::config::settings::SETTINGS`], applied over the fields no
    /// setting names.
    fn default() -> Self {
        let mut c = Config {
            default_k: 0,
            prefetch_k: 0,
            history_len: 0,
            seen_max: 0,
            personal_max: 0,
            half_life_ms: 0,
            popularity_half_life_ms: 0,
            successors_max: 0,
            items_max: 0,
            model_memory_max: 0,
            cache_capacity_bytes: 0,
            cache_policy: CachePolicy::Predictive,
            prefetch_share_pct: 0,
            prefetch_budget: 0.0,
            predict_staleness: 0,
            default_item_size: 0,
            skip_threshold_pct: 0,
            dp_clip: 0,
            // The two fields no setting names have their defaults here.
            learning: Learning {
                window: 0,
                decay: 0.0,
                reverse: 0.0,
                simultaneous_ms: 0,
                group_inner: 0.95,
                admission: 0.0,
            },
            scoring: Scoring {
                window: 0,
                decay: 0.0,
                row_norm: 0.0,
                affinity: 0.0,
                affinity_rate: 0.1,
            },
            weights: Weights {
                global: 0.0,
                personal: 0.0,
                federated: 0.0,
                skip_weight: 0.0,
            },
            learner_thread: false,
            cache_memory: 0,
        };
        for s in crate::config::settings::SETTINGS {
            let v = s.parse(s.default).expect("declared defaults parse");
            s.apply(&mut c, v);
        }
        c
    }
}

fn check(ok: bool, name: &'static str, expected: &str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError {
            name,
            expected: expected.to_owned(),
        })
    }
}

fn unit(v: f64) -> bool {
    v.is_finite() && (0.0..=1.0).contains(&v)
}

impl Config {
    /// The per-user bounds, which learning and decoding both apply.
    pub fn user_bounds(&self) -> crate::user::UserBounds {
        crate::user::UserBounds {
            history_len: self.history_len,
            seen_max: self.seen_max,
            personal_max: self.personal_max,
        }
    }

    /// The share of the cache reserved for prefetches. When not set explicitly it grows
    /// with the prefetch volume: 10 % for about one fetch per request (or k ≤ 4), 95 % for
    /// five or more (or k ≥ 40), linearly in between. Measured on MovieLens 100K, the best
    /// share rises with the budget exactly this way at every cache size.
    pub fn prefetch_share(&self) -> f64 {
        if self.prefetch_share_pct > 0 {
            return f64::from(self.prefetch_share_pct) / 100.0;
        }
        let t = if self.prefetch_budget > 0.0 {
            (self.prefetch_budget - 1.0) / 4.0
        } else {
            (self.prefetch_k as f64 - 4.0) / 36.0
        };
        0.1 + 0.85 * t.clamp(0.0, 1.0)
    }

    /// The cache's memory in views (see [`Config::cache_memory`]).
    pub fn demand_half_life(&self) -> u64 {
        let items = (self.cache_capacity_bytes / self.default_item_size.max(1)).max(1);
        // Capped where persisted counters stop (2^53): past it, nothing decays anyway.
        u64::from(self.cache_memory)
            .saturating_mul(items)
            .min(1 << 53)
    }

    /// How the cache splits between demand and prefetches: pinned by an explicit
    /// `prefetch-share-pct`; learned online under a budget, starting from
    /// [`Config::prefetch_share`]'s curve (no fixed curve suits every workload, see
    /// [`crate::cache::ShareMode`]); the curve itself for a fixed `prefetch-k`.
    pub fn share_mode(&self) -> ShareMode {
        if self.prefetch_share_pct == 0 && self.prefetch_budget > 0.0 {
            ShareMode::Adaptive(self.prefetch_share())
        } else {
            ShareMode::Fixed(self.prefetch_share())
        }
    }

    /// Rejects settings that would make memory unbounded or scoring meaningless: every
    /// setting's range comes from its declaration in [`crate::config::settings::SETTINGS`]; the
    /// checks below are the ones a range cannot say.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for s in crate::config::settings::SETTINGS {
            s.check(self)?;
        }
        check(
            self.model_memory_max == 0 || self.model_memory_max >= MODEL_MEMORY_MIN,
            "model-memory-max",
            "0 (unbounded) or 1048576..=2^50 bytes",
        )?;
        // Not settings: fixed by the build, but decoded peers' settings pass here too.
        check(
            unit(self.learning.group_inner) && self.learning.group_inner > 0.0,
            "group-inner",
            "a number in (0, 1]",
        )?;
        check(
            unit(self.scoring.affinity_rate) && self.scoring.affinity_rate > 0.0,
            "affinity-rate",
            "a number in (0, 1]",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bounds_are_enforced() {
        assert_eq!(Config::default().validate(), Ok(()));
        let bad = Config {
            default_k: 0,
            ..Config::default()
        };
        assert_eq!(bad.validate().unwrap_err().name, "default-k");
        let bad = Config {
            successors_max: 1,
            ..Config::default()
        };
        assert_eq!(bad.validate().unwrap_err().name, "successors-max");
        let mut bad = Config::default();
        bad.weights.global = f64::NAN;
        assert_eq!(bad.validate().unwrap_err().name, "weight-global");
        let mut bad = Config::default();
        bad.scoring.decay = 0.0;
        assert_eq!(bad.validate().unwrap_err().name, "score-decay");
    }

    #[test]
    fn prefetch_share_follows_the_prefetch_volume() {
        let c = |budget, k| Config {
            prefetch_budget: budget,
            prefetch_k: k,
            ..Config::default()
        };
        assert!((c(1.0, 3).prefetch_share() - 0.1).abs() < 1e-12);
        assert!((c(5.0, 3).prefetch_share() - 0.95).abs() < 1e-12);
        assert!((c(0.0, 40).prefetch_share() - 0.95).abs() < 1e-12);
        let explicit = Config {
            prefetch_share_pct: 30,
            ..Config::default()
        };
        assert!((explicit.prefetch_share() - 0.3).abs() < 1e-12);
    }
}
