//! Turning evidence into a ranked list.
//!
//! For a user whose recent views are `h_0` (latest) .. `h_{H-1}`, each view carries a weight
//! `w_d` that shrinks by `decay` per step back (views at the same moment share a step), and
//! a candidate `c` scores
//!
//! ```text
//! s(c) = Σ_d w_d · sqrt( guaranteed(row(h_d)[c]) / rowsum(h_d)^row_norm ) / Σ_d w_d
//!        · exp(-affinity · (z(c) - z_user)²)
//! ```
//!
//! - `rowsum^row_norm` with `row_norm ≈ 0.6` sits between raw co-occurrence (blockbusters
//!   everywhere) and conditional probability (one-off pairs win);
//! - the square root is concave, so a candidate backed by several recent views beats one
//!   strong pair;
//! - `z` is an item's log-popularity relative to the catalog mean, `z_user` the user's usual
//!   level: a niche viewer is shown niche items first, a mainstream viewer hits.
//!
//! Peers' evidence (federation) joins the node's own before the square root: for each pair,
//! `count = w_global · own + w_federated · peers` and likewise for the row sum, so with both
//! weights at 1 a federated edge scores exactly like one node that saw every edge's viewers.
//!
//! The user's own transitions (they only name seen items) join with `weight-personal` when
//! seen items are included. Everything not reached by the user's rows ranks below, by
//! decayed popularity, which also fills the list for a new user. Ties go to the more popular
//! item, then the smaller id. Only items reachable from the user's rows and the popularity
//! board are touched, and top-k keeps a lazily pruned buffer: cost is O(H · successors + k).

use std::cmp::{Ordering, Reverse};

use crate::catalog::{Catalog, ItemRef};
use crate::config::Config;
use crate::learn::node::NodeModel;
use crate::user::UserState;

pub use crate::memo::Prediction;

/// Options of one prediction.
#[derive(Debug, Clone, Copy)]
pub struct Query {
    /// How many items to return.
    pub k: usize,
    /// Keep items the user has already seen (rewatch prediction).
    pub include_seen: bool,
}

/// Reusable scratch space, so a prediction allocates nothing but its answer.
#[derive(Debug, Default, Clone)]
pub struct Scorer {
    scores: Vec<f32>,
    /// Slots with a score, in `touched[..n_touched]`; the buffer is as long as `scores`, so
    /// [`Scorer::add`] appends without a branch (whether a slot is new is a coin flip to
    /// the branch predictor, and mispredictions were a good part of scoring's time).
    touched: Vec<u32>,
    n_touched: usize,
    /// Per-history-item sums of own and peers' counts.
    pair: Vec<f32>,
    pair_touched: Vec<u32>,
}

/// A candidate in the ranking, kept small so that selecting and sorting move 24 bytes and
/// compare integers: the score and popularity as [`order_key`]s, and the catalog slot, which
/// names the item only when both tie (the name is a pointer chase and a string compare).
#[derive(Debug, Clone, Copy)]
struct Ranked {
    score: u64,
    popularity: u64,
    slot: u32,
}

impl Ranked {
    /// Score, then popularity, as one integer: the order of [`better`] but for names.
    fn key(&self) -> u128 {
        u128::from(self.score) << 64 | u128::from(self.popularity)
    }
}

/// An integer in the order of [`f64::total_cmp`], so one comparison of keys is one of floats.
fn order_key(x: f64) -> u64 {
    let b = x.to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | 1 << 63
    }
}

/// The float behind an [`order_key`].
fn from_order_key(k: u64) -> f64 {
    f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k })
}

/// The items' names, for the last tie-break of [`better`]: any function of a slot.
trait Names {
    fn name(&self, slot: u32) -> &str;
}

impl Names for Catalog {
    fn name(&self, slot: u32) -> &str {
        self.at(slot).map_or("", |(_, item)| &*item.name)
    }
}

/// "Better" is greater: higher score, then more popular, then (for an order that is the same
/// on every node) the smaller name.
fn better(names: &impl Names, a: &Ranked, b: &Ranked) -> Ordering {
    (a.score, a.popularity)
        .cmp(&(b.score, b.popularity))
        .then_with(|| names.name(b.slot).cmp(names.name(a.slot)))
}

/// The k best offers seen so far, kept lazily: offers go into a buffer, and when it holds
/// 2k the best k are selected (linear time) and the k-th best score becomes the bar later
/// offers must reach. Amortized O(1) per offer where a heap pays O(log k): a play ranks up
/// to a hundred predictions from a thousand candidates.
struct TopK<'a, N> {
    buf: Vec<Ranked>,
    k: usize,
    bar: Option<f64>,
    names: &'a N,
}

impl<'a, N: Names> TopK<'a, N> {
    fn new(k: usize, names: &'a N) -> Self {
        TopK {
            buf: Vec::with_capacity(2 * k),
            k,
            bar: None,
            names,
        }
    }

    /// A score no offer below can enter the k best (`None` until k offers are known).
    fn bar(&self) -> Option<f64> {
        self.bar
    }

    fn offer(&mut self, score: f64, popularity: f64, slot: u32) {
        if self.bar.is_some_and(|bar| score < bar) {
            return;
        }
        self.buf.push(Ranked {
            score: order_key(score),
            popularity: order_key(popularity),
            slot,
        });
        if self.buf.len() >= 2 * self.k {
            self.settle();
        }
    }
    /// Keeps the k best offers (in no particular order) and, once there are k, raises the
    /// bar to the worst of them: nothing below it can enter. Selects on the integer key; a
    /// tie on the key across the cut (rare: equal score and popularity) falls back to the
    /// full order, names included.
    fn settle(&mut self) {
        if self.buf.len() > self.k {
            let cut = self.k - 1;
            self.buf
                .select_nth_unstable_by_key(cut, |r| Reverse(r.key()));
            let edge = self.buf[cut].key();
            if self.buf[self.k..].iter().any(|r| r.key() == edge) {
                let names = self.names;
                self.buf
                    .select_nth_unstable_by(cut, |a, b| better(names, b, a));
            }
            self.buf.truncate(self.k);
        }
        if self.buf.len() == self.k {
            self.bar = self.buf.iter().map(|r| r.score).min().map(from_order_key);
        }
    }

    /// (slot, score), best first: sorted on the integer key, then each run of equal keys by
    /// name.
    fn into_ranked(mut self) -> impl Iterator<Item = (u32, f64)> {
        self.settle();
        self.buf.sort_unstable_by_key(|r| Reverse(r.key()));
        let names = self.names;
        for run in self.buf.chunk_by_mut(|a, b| a.key() == b.key()) {
            if run.len() > 1 {
                run.sort_unstable_by(|a, b| better(names, b, a));
            }
        }
        self.buf
            .into_iter()
            .map(|r| (r.slot, from_order_key(r.score)))
    }
}

impl Scorer {
    fn add(&mut self, slot: u32, v: f32) {
        let s = &mut self.scores[slot as usize];
        let new = *s == 0.0;
        // A candidate once touched stays touched even if its share rounds to 0.
        *s += v.max(f32::MIN_POSITIVE);
        // Each slot is new once (scores only grow), so the buffer never fills; the check
        // is for the optimizer, always true and so always predicted.
        if let Some(t) = self.touched.get_mut(self.n_touched) {
            *t = slot;
            self.n_touched += usize::from(new);
        }
    }

    /// Ranks items for `user` (or, with `None`, for a viewer never seen before), best
    /// first, with the names borrowed from the catalog: a play looks at up to a hundred
    /// predictions and keeps a few, and the memo copies them into one buffer, so neither
    /// needs a string per item.
    pub fn rank<'g>(
        &mut self,
        g: &'g NodeModel,
        user: Option<&UserState>,
        config: &Config,
        q: Query,
    ) -> Vec<(&'g str, f64)> {
        if q.k == 0 {
            return Vec::new();
        }
        if self.scores.len() < g.catalog.slot_count() {
            self.scores.resize(g.catalog.slot_count(), 0.0);
            self.touched.resize(self.scores.len(), 0);
        }
        self.n_touched = 0;
        if let Some(u) = user {
            self.gather_global(g, u, config);
            if q.include_seen {
                self.gather_personal(g, u, config.weights.personal);
            }
        }
        let seen = |fp: u64| !q.include_seen && user.is_some_and(|u| u.has_seen(fp));
        let affinity = config.scoring.affinity;
        let damping = match user {
            Some(u) if affinity > 0.0 && u.records() > 0 => {
                Some((affinity, g.mean_ln_views() + f64::from(u.affinity())))
            }
            _ => None,
        };

        let mut top = TopK::new(q.k, &g.catalog);
        for &slot in &self.touched[..self.n_touched] {
            let mut score = f64::from(self.scores[slot as usize]);
            // Damping never raises a score, so a candidate already below the bar is out
            // (checked first: most are, and the catalog entry is a cache miss).
            if top.bar().is_some_and(|bar| score < bar) {
                continue;
            }
            let Some((_, item)) = g.catalog.at(slot) else {
                continue;
            };
            if seen(item.fp) {
                continue;
            }
            if let Some((a, level)) = damping {
                let dz = f64::from(item.ln_views) - level;
                score *= (-a * dz * dz).exp();
            }
            top.offer(score, item.ranking_popularity(), slot);
        }
        // Everything else ranks by popularity alone, below every scored candidate: walking
        // the leaders in order and stopping once k fresh ones are in is exact. When k scored
        // candidates are in, the bar is above 0 and no fill can enter: the walk is skipped.
        top.settle();
        let mut fresh = if top.bar().is_some_and(|bar| bar > 0.0) {
            q.k
        } else {
            0
        };
        for &r in g.board.items() {
            if fresh >= q.k {
                break;
            }
            let Some(item) = g.catalog.get(r) else {
                continue;
            };
            if self.scores[r.slot as usize] != 0.0 || seen(item.fp) {
                continue;
            }
            fresh += 1;
            top.offer(0.0, item.ranking_popularity(), r.slot);
        }
        for &slot in &self.touched[..self.n_touched] {
            self.scores[slot as usize] = 0.0;
        }
        top.into_ranked()
            .map(|(slot, score)| (g.catalog.name(slot), score))
            .collect()
    }

    fn gather_global(&mut self, g: &NodeModel, u: &UserState, c: &Config) {
        let (s, l) = (&c.scoring, &c.learning);
        let (wg, wf) = (c.weights.global as f32, c.weights.federated as f32);
        let (mut wd, mut total_w) = (1.0f64, 0.0f64);
        let mut t_next = u.last().map_or(0, |h| h.ts_ms);
        for (d, h) in u.history().iter().rev().take(s.window).enumerate() {
            // The same grouping as learning: views at one moment share a step.
            if l.simultaneous_ms < 0 || t_next.saturating_sub(h.ts_ms) > l.simultaneous_ms {
                if d > 0 {
                    wd *= s.decay;
                }
            } else if d > 0 {
                wd *= l.group_inner;
            }
            t_next = h.ts_ms;
            let Some(from) = g.catalog.resolve(h.hint, h.fp) else {
                continue;
            };
            // Own rows, the local-only rows of privacy-clipped views (own evidence too,
            // never exported), and peers'.
            let live = |r: &&crate::learn::Row, k: f32| k > 0.0 && !r.is_empty();
            let tables = [
                (g.transitions.row(from).filter(|r| live(r, wg)), wg),
                (g.local.row(from).filter(|r| live(r, wg)), wg),
                (g.peers.rows.row(from).filter(|r| live(r, wf)), wf),
            ];
            let total: f32 = tables
                .iter()
                .map(|(r, k)| r.map_or(0.0, |r| k * r.total()))
                .sum();
            if total <= 0.0 {
                continue;
            }
            let w = wd * f64::from(h.weight);
            total_w += w;
            let scale = (w * f64::from(total).powf(-s.row_norm / 2.0)) as f32;
            let mut present = tables.iter().filter_map(|&(r, k)| Some((r?, k)));
            match (present.next(), present.next()) {
                (Some((r, k)), None) => {
                    for (slot, v) in r.iter() {
                        let lb = v.guaranteed();
                        if lb > 0.0 && g.catalog.is_live(ItemRef { slot, gen: v.gen }) {
                            self.add(slot, scale * (k * lb).sqrt());
                        }
                    }
                }
                (Some(a), Some(b)) => {
                    // Own and peers' counts of the same pair add up before the square root:
                    // with both weights at 1 this is exactly one node that saw everyone.
                    self.pair.resize(self.scores.len(), 0.0);
                    for (r, k) in [a, b].into_iter().chain(present) {
                        for (slot, v) in r.iter() {
                            let lb = v.guaranteed();
                            if lb > 0.0 && g.catalog.is_live(ItemRef { slot, gen: v.gen }) {
                                let p = &mut self.pair[slot as usize];
                                if *p == 0.0 {
                                    self.pair_touched.push(slot);
                                }
                                *p += k * lb;
                            }
                        }
                    }
                    for i in 0..self.pair_touched.len() {
                        let slot = self.pair_touched[i];
                        let p = std::mem::take(&mut self.pair[slot as usize]);
                        self.add(slot, scale * p.sqrt());
                    }
                    self.pair_touched.clear();
                }
                (None, _) => {}
            }
        }
        if total_w > 0.0 {
            let norm = (1.0 / total_w) as f32;
            for &slot in &self.touched[..self.n_touched] {
                self.scores[slot as usize] *= norm;
            }
        }
    }

    fn gather_personal(&mut self, g: &NodeModel, u: &UserState, weight: f64) {
        let Some(last) = u.last() else { return };
        if weight <= 0.0 {
            return;
        }
        let from_last = || u.personal().filter(|t| t.prev == last.fp);
        let total: f32 = from_last().map(|t| t.weight).sum();
        if total <= 0.0 {
            return;
        }
        let scale = (weight / f64::from(total)) as f32;
        for t in from_last() {
            if let Some(r) = g.catalog.lookup_fp_only(t.next) {
                self.add(r.slot, scale * t.weight);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Names for Vec<String> {
        fn name(&self, slot: u32) -> &str {
            &self[slot as usize]
        }
    }

    /// The lazily pruned top-k gives exactly the first k of a full sort, ties included
    /// (equal scores fall to popularity, then to the smaller name).
    #[test]
    fn top_k_is_the_head_of_a_full_sort() {
        let names: Vec<String> = (0..3_000).map(|i| format!("I{:04}", 2_999 - i)).collect();
        let mut x: u64 = 5;
        for k in [1, 2, 3, 10, 100, 2_999, 5_000] {
            let offers: Vec<(u32, f64, f64)> = (0..names.len() as u32)
                .map(|slot| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    // Few distinct values, so ties are everywhere.
                    let score = ((x >> 40) % 50) as f64 / 7.0;
                    (slot, score, ((x >> 20) % 5) as f64)
                })
                .collect();
            let mut top = TopK::new(k, &names);
            for &(slot, score, popularity) in &offers {
                if top.bar().is_some_and(|bar| score < bar) {
                    continue;
                }
                top.offer(score, popularity, slot);
            }
            let mut all = offers.clone();
            all.sort_by(|a, b| {
                b.1.total_cmp(&a.1)
                    .then(b.2.total_cmp(&a.2))
                    .then(names[a.0 as usize].cmp(&names[b.0 as usize]))
            });
            let want: Vec<(u32, f64)> = all.iter().take(k).map(|a| (a.0, a.1)).collect();
            assert_eq!(top.into_ranked().collect::<Vec<_>>(), want, "k {k}");
        }
    }

    /// Order keys sort exactly as `total_cmp` and give the float back.
    #[test]
    fn order_keys_keep_the_order_of_floats() {
        let xs = [
            f64::NEG_INFINITY,
            -3.5,
            -f64::MIN_POSITIVE,
            -0.0,
            0.0,
            f64::MIN_POSITIVE,
            1e-300,
            0.25,
            1.0,
            7.0,
            f64::INFINITY,
        ];
        for a in xs {
            assert_eq!(from_order_key(order_key(a)).to_bits(), a.to_bits());
            for b in xs {
                assert_eq!(order_key(a).cmp(&order_key(b)), a.total_cmp(&b), "{a} {b}");
            }
        }
    }
}
