//! Settings of one edge node, with the bounds that keep memory and latency predictable.

use crate::cache::CachePolicy;
use crate::error::ConfigError;

/// Upper bound on `k` for any prediction: a reply larger than this is a client bug, and the
/// top-k heap is sized by it.
pub const MAX_K: usize = 1000;

/// Every knob of the engine. Defaults are the tuned values quoted in the README; each field
/// is validated by [`Config::validate`] before the engine sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `k` of EDGE.PREDICT when the caller gives none.
    pub default_k: usize,
    /// How many predictions EDGE.PLAY prefetches after each view.
    pub prefetch_k: usize,
    /// Items of recent history kept per user (and the window that scoring and learning use).
    pub history_len: usize,
    /// Most distinct items remembered per user for "already seen" filtering.
    pub seen_max: usize,
    /// Personal transitions kept per user.
    pub personal_max: usize,
    /// Half-life of the global evidence, in milliseconds; 0 turns decay off.
    pub half_life_ms: u64,
    /// Successors kept per item (Space-Saving row width): bounds the transition table.
    pub successors_max: usize,
    /// Distinct items the node tracks; the least popular are evicted beyond it.
    pub items_max: usize,
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
    /// Size assumed for an item when EDGE.PLAY gives no SIZE.
    pub default_item_size: u64,
    /// A view shorter than this percentage of the item's usual watch time is a skip.
    pub skip_threshold_pct: u32,
    /// How many views elsewhere a memoized prediction may lag behind before it is
    /// recomputed (0: never served stale; see [`crate::Engine::predict_user`]).
    pub predict_staleness: u64,
    /// Scoring weights (see [`crate::scoring`]).
    pub weights: Weights,
}

/// How the evidence sources are blended. Kept as plain numbers so operators can tune them
/// at run time; [`Weights::default`] holds the values measured best on held-out logs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    /// Weight of the node's global item-to-item evidence.
    pub global: f64,
    /// Weight of the user's own transitions.
    pub personal: f64,
    /// Weight of the popularity prior, which also fills the list for new users.
    pub popularity: f64,
    /// Weight of the federated (peer) evidence, once imported.
    pub federated: f64,
    /// Geometric weight of older history positions when scoring (position d weighs `recency^d`).
    pub recency: f64,
    /// A skip teaches this fraction of a full view.
    pub skip_weight: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            global: 1.0,
            personal: 0.5,
            popularity: 1e-3,
            federated: 1.0,
            recency: 0.9,
            skip_weight: 0.25,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            default_k: 10,
            prefetch_k: 3,
            history_len: 20,
            seen_max: 2048,
            personal_max: 32,
            half_life_ms: 0,
            successors_max: 64,
            items_max: 1_000_000,
            cache_capacity_bytes: 1 << 30,
            cache_policy: CachePolicy::Predictive,
            prefetch_share_pct: 0,
            prefetch_budget: 1.0,
            default_item_size: 1 << 20,
            skip_threshold_pct: 25,
            predict_staleness: 0,
            weights: Weights::default(),
        }
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

impl Config {
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

    /// Rejects settings that would make memory unbounded or scoring meaningless.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            (1..=MAX_K).contains(&self.default_k),
            "default-k",
            "1..=1000",
        )?;
        check(self.prefetch_k <= 100, "prefetch-k", "0..=100")?;
        check(
            (1..=256).contains(&self.history_len),
            "history-len",
            "1..=256",
        )?;
        check(self.seen_max <= 1_000_000, "seen-max", "0..=1000000")?;
        check(self.personal_max <= 4096, "personal-max", "0..=4096")?;
        check(
            (2..=4096).contains(&self.successors_max),
            "successors-max",
            "2..=4096",
        )?;
        check(
            (16..=100_000_000).contains(&self.items_max),
            "items-max",
            "16..=100000000",
        )?;
        check(
            self.prefetch_share_pct <= 100,
            "prefetch-share-pct",
            "0..=100",
        )?;
        check(
            self.prefetch_budget.is_finite() && (0.0..=1000.0).contains(&self.prefetch_budget),
            "prefetch-budget",
            "a number in [0, 1000]",
        )?;
        check(self.default_item_size >= 1, "item-size", ">= 1")?;
        check(
            self.skip_threshold_pct <= 100,
            "skip-threshold-pct",
            "0..=100",
        )?;
        let w = &self.weights;
        for (v, name) in [
            (w.global, "weight-global"),
            (w.personal, "weight-personal"),
            (w.popularity, "weight-popularity"),
            (w.federated, "weight-federated"),
        ] {
            check(v.is_finite() && v >= 0.0, name, "a finite number >= 0")?;
        }
        check(
            w.recency > 0.0 && w.recency <= 1.0,
            "recency",
            "a number in (0, 1]",
        )?;
        check(
            (0.0..=1.0).contains(&w.skip_weight),
            "skip-weight",
            "a number in [0, 1]",
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
    }
}
