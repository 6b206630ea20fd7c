//! Differential privacy for the aggregate: Laplace noise calibrated to one viewer's
//! influence on a round, and the privacy cost per round and in total.
//!
//! **Unit of privacy: one viewer's views in one round.** Edges cap them at `L`
//! (`dp-clip`). Each view changes the co-occurrence tables by a bounded amount, derived from
//! the learning rule in `edge_model::learn::NodeModel::learn`: at step `d` back in the
//! viewer's history (up to `learn-window` steps) it adds `w_d` to the forward link and its
//! row total and `w_d · back_d` to the reverse link and its row total, where `w_d` is a
//! product of `learn-decay` (a new group) or the in-group factor (same timestamp group) and
//! `back_d` is 1 inside the first group and `reverse-weight` after. [`per_view_rows_l1`]
//! maximises `2 · Σ w_d (1 + back_d)` over every grouping pattern; a view also adds 1 to one
//! item's views. So the L1 sensitivity of one round's change is
//! `Δ = L · (1 + per_view_rows_l1)` and Laplace noise of scale `Δ / ε` on every released
//! coordinate makes each round ε-DP for the viewer; rounds compose: total ε = Σ ε.
//!
//! What is released each round is the noisy *change* since the last round; the cumulative
//! aggregate is the sum of noisy changes (post-processing), so a view is charged only in the
//! round it happened. Peers' popularity is replaced by their noisy view counts (as if every
//! view were at the landmark), again post-processing.
//!
//! Limits, stated plainly: (1) the bound assumes `half-life-secs` 0 (weights are counts);
//! (2) Space-Saving eviction in a full row can drop another entry, which this bound does not
//! cover, so the guarantee holds for rows below `successors-max`; (3) which items and pairs
//! appear (the support) is not hidden, only their counts; (4) with `--secure`, the
//! aggregator still sees the exact sum before adding noise (central DP).

use rand::{Rng, RngExt};

use crate::flat::{Flat, Key};

/// The learning parameters that bound one view's influence.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LearnBound {
    /// `learn-window`.
    pub window: usize,
    /// `learn-decay`.
    pub decay: f64,
    /// `reverse-weight`.
    pub reverse: f64,
    /// In-group factor per step.
    pub group_inner: f64,
    /// Whether simultaneous views group at all (`simultaneous-ms` ≥ 0).
    pub groups: bool,
}

impl LearnBound {
    /// The bound of an edge learning under `l` (what its exports report).
    pub fn of(l: &edge_model::config::Learning) -> Self {
        LearnBound {
            window: l.window,
            decay: l.decay,
            reverse: l.reverse,
            group_inner: l.group_inner,
            groups: l.simultaneous_ms >= 0,
        }
    }
}

/// The largest L1 change one view (weight ≤ 1) makes to link weights and row totals:
/// `max over groupings of 2 · Σ_d w_d (1 + back_d)`, computed backwards over the window
/// with two states (still inside the first group or not).
pub fn per_view_rows_l1(b: LearnBound) -> f64 {
    // best[g]: the largest sum over the remaining steps per unit of weight so far.
    let mut best = [0.0f64; 2];
    for d in (0..b.window).rev() {
        let mut next = [0.0f64; 2];
        for (sg, slot) in next.iter_mut().enumerate() {
            let in_group = sg == 1;
            // A new group: factor decay, the first group is over.
            let split = b.decay * ((1.0 + b.reverse) + best[0]);
            // The same group as the previous view (only when grouping is on).
            let same = if b.groups {
                let f = if d == 0 { 1.0 } else { b.group_inner };
                let back = if in_group { 1.0 } else { b.reverse };
                f * ((1.0 + back) + best[sg])
            } else {
                0.0
            };
            *slot = split.max(same);
        }
        best = next;
    }
    2.0 * best[1]
}

/// One round's L1 sensitivity for a viewer with at most `clip` views in it.
pub fn sensitivity(clip: u32, b: LearnBound) -> f64 {
    f64::from(clip) * (1.0 + per_view_rows_l1(b))
}

/// One Laplace(0, `scale`) draw (inverse CDF).
pub fn laplace(rng: &mut impl Rng, scale: f64) -> f64 {
    let u: f64 = rng.random::<f64>() - 0.5;
    -scale * u.signum() * (1.0 - 2.0 * u.abs()).max(f64::MIN_POSITIVE).ln()
}

/// The DP state of a federation: what was released so far.
#[derive(Debug, Clone)]
pub struct Dp {
    /// ε per round.
    pub epsilon: f64,
    /// The most views per viewer per round allowed (`--dp-clip`); the edges' own
    /// `dp-clip`, which they report, may be tighter.
    pub clip: u32,
    /// L1 sensitivity of the latest round, from the settings its edges reported (0
    /// before the first calibration).
    pub sensitivity: f64,
    /// What the sensitivity was computed from: the edges' `dp-clip` and learning bound.
    pub calibrated: Option<(u32, LearnBound)>,
    /// Rounds released (each costs `epsilon`).
    pub rounds: u64,
    /// The true aggregate at the last release.
    last_true: Flat,
    /// The cumulative noisy aggregate (sum of noisy changes).
    noisy: Flat,
}

impl Dp {
    /// DP with `epsilon` per round, viewers clipped at `clip` views per round at most;
    /// the noise is sized by [`Dp::calibrate`] from what the edges report.
    pub fn new(epsilon: f64, clip: u32) -> Self {
        Dp {
            epsilon,
            clip,
            sensitivity: 0.0,
            calibrated: None,
            rounds: 0,
            last_true: Flat::new(),
            noisy: Flat::new(),
        }
    }

    /// Sizes the noise of the coming release for edges clipping at `clip` views per
    /// viewer per round and learning under `bound` (checked to agree, see
    /// [`crate::agree`]).
    pub fn calibrate(&mut self, clip: u32, bound: LearnBound) {
        self.sensitivity = sensitivity(clip, bound);
        self.calibrated = Some((clip, bound));
    }

    /// Laplace scale of every released coordinate.
    pub fn scale(&self) -> f64 {
        self.sensitivity / self.epsilon
    }

    /// The standard deviation of the noise accumulated in a released count over the
    /// rounds so far (each round adds Laplace noise of variance 2b²). Dropping counts
    /// below two of them, and weighing the rest by it, is post-processing.
    pub fn noise_std(&self) -> f64 {
        self.scale() * (2.0 * self.rounds.max(1) as f64).sqrt()
    }

    /// Total ε spent so far (basic composition).
    pub fn total_epsilon(&self) -> f64 {
        self.epsilon * self.rounds as f64
    }

    /// Releases this round: the noisy change since the last release, added to the noisy
    /// cumulative aggregate, which is returned (popularity derived from noisy views).
    pub fn release(&mut self, total: &Flat, rng: &mut impl Rng) -> Flat {
        let scale = self.scale();
        let mut keys: Vec<&Key> = total.keys().collect();
        keys.extend(self.last_true.keys());
        keys.sort();
        keys.dedup();
        for k in keys {
            if matches!(k, Key::Popularity(_)) {
                continue;
            }
            let now = total.get(k).copied().unwrap_or(0.0);
            let before = self.last_true.get(k).copied().unwrap_or(0.0);
            if now == before {
                continue;
            }
            *self.noisy.entry(k.clone()).or_default() += now - before + laplace(rng, scale);
        }
        self.last_true = total
            .iter()
            .filter(|(k, _)| !matches!(k, Key::Popularity(_)))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        self.rounds += 1;
        let mut out = self.noisy.clone();
        for (k, v) in &self.noisy {
            if let Key::Views(n) = k {
                out.insert(Key::Popularity(n.clone()), v.max(0.0));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_matches_hand_computed_cases() {
        let plain = LearnBound {
            window: 3,
            decay: 0.5,
            reverse: 0.5,
            group_inner: 1.0,
            groups: false,
        };
        // 2 · (0.5 + 0.25 + 0.125) · 1.5
        assert!((per_view_rows_l1(plain) - 2.625).abs() < 1e-12);
        // All in one group: weights 1, back 1: 2 · 3 · 2.
        let grouped = LearnBound {
            groups: true,
            ..plain
        };
        assert!((per_view_rows_l1(grouped) - 12.0).abs() < 1e-12);
        let d = LearnBound::of(&edge_model::Config::default().learning);
        let s = per_view_rows_l1(d);
        assert!(s > 0.0 && s <= 4.0 * d.window as f64, "{s}");
        assert_eq!(sensitivity(0, d), 0.0);
    }

    #[test]
    fn laplace_has_the_right_spread() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| laplace(&mut rng, 2.0)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let mad = xs.iter().map(|x| x.abs()).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.05, "{mean}");
        assert!((mad - 2.0).abs() < 0.05, "E|X| = b: {mad}");
    }

    use rand::SeedableRng;
}
