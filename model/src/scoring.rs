//! Turning evidence into a ranked list.
//!
//! The score of a candidate item `c` for a user whose recent views are `h_1` (latest) ..
//! `h_H` blends three sources:
//!
//! ```text
//! score(c) = w_global   · Σ_d recency^(d-1) · v(h_d) · row(h_d)[c] / |row(h_d)|
//!          + w_personal · personal(h_1 → c) / |personal(h_1)|
//!          + w_pop      · popularity(c) / Σ popularity
//! ```
//!
//! where `v` is the view weight (skips count less) and rows are row-normalized so that a
//! blockbuster's huge row does not drown a niche item's sharp one. The popularity prior is
//! small, so it orders the candidates the other sources do not separate and fills the list
//! for a user with no history. Only items reachable from the user's rows, personal
//! transitions or the popularity board are ever touched, and top-k uses a bounded heap:
//! cost is O(H · successors + board) per prediction, independent of the catalog size.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::config::Weights;
use crate::global::GlobalModel;
use crate::user::UserState;

/// One predicted item.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The item id.
    pub item: String,
    /// Its blended score (comparable within one list only).
    pub score: f64,
}

/// Options of one prediction.
#[derive(Debug, Clone, Copy)]
pub struct Query {
    /// How many items to return.
    pub k: usize,
    /// Keep items the user has already seen (rewatch prediction).
    pub include_seen: bool,
    /// History items used for scoring (most recent first).
    pub window: usize,
}

/// Reusable scratch space, so a prediction allocates nothing but its answer.
#[derive(Debug, Default, Clone)]
pub struct Scorer {
    scores: Vec<f32>,
    touched: Vec<u32>,
}

struct Ranked<'a> {
    score: f64,
    name: &'a str,
}

impl PartialEq for Ranked<'_> {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Ranked<'_> {}
impl PartialOrd for Ranked<'_> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ranked<'_> {
    /// "Better" is greater: higher score, then (for a stable order across nodes) smaller name.
    fn cmp(&self, o: &Self) -> Ordering {
        self.score
            .total_cmp(&o.score)
            .then_with(|| o.name.cmp(self.name))
    }
}

impl Scorer {
    fn add(&mut self, slot: u32, v: f32) {
        let s = &mut self.scores[slot as usize];
        if *s == 0.0 {
            self.touched.push(slot);
        }
        // A candidate once touched stays touched even if its share is 0.
        *s += v.max(f32::MIN_POSITIVE);
    }

    /// Ranks items for `user` (or, with `None`, for a viewer never seen before).
    pub fn predict(
        &mut self,
        g: &GlobalModel,
        user: Option<&UserState>,
        weights: &Weights,
        q: Query,
    ) -> Vec<Prediction> {
        if q.k == 0 {
            return Vec::new();
        }
        if self.scores.len() < g.catalog.slot_count() {
            self.scores.resize(g.catalog.slot_count(), 0.0);
        }
        self.touched.clear();
        if let Some(u) = user {
            self.gather_global(g, u, weights, q.window);
            self.gather_personal(g, u, weights);
        }
        let total_pop = g.total_popularity.max(f64::MIN_POSITIVE);
        let pop_w = weights.popularity / total_pop;
        let seen = |fp: u64| !q.include_seen && user.is_some_and(|u| u.has_seen(fp));

        let mut heap: BinaryHeap<Reverse<Ranked<'_>>> = BinaryHeap::with_capacity(q.k + 1);

        // Candidates reached by the user's own evidence.
        for &slot in &self.touched {
            let Some((_, item)) = g.catalog.at(slot) else {
                continue;
            };
            if seen(item.fp) {
                continue;
            }
            let score = f64::from(self.scores[slot as usize]) + pop_w * item.popularity;
            offer_ranked(
                &mut heap,
                q.k,
                Ranked {
                    score,
                    name: &item.name,
                },
            );
        }
        // The popularity board: everything else scores by popularity alone, so walking the
        // leaders in order and stopping once k fresh ones are in is exact.
        let mut fresh = 0;
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
            offer_ranked(
                &mut heap,
                q.k,
                Ranked {
                    score: pop_w * item.popularity,
                    name: &item.name,
                },
            );
        }
        for &slot in &self.touched {
            self.scores[slot as usize] = 0.0;
        }
        let mut out: Vec<Prediction> = heap
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse(r)| Prediction {
                item: r.name.to_owned(),
                score: r.score,
            })
            .collect();
        out.truncate(q.k);
        out
    }

    fn gather_global(&mut self, g: &GlobalModel, u: &UserState, w: &Weights, window: usize) {
        if w.global <= 0.0 {
            return;
        }
        let mut coef = w.global;
        for h in u.history().iter().rev().take(window) {
            if let Some(from) = g.catalog.lookup_fp_only(h.fp) {
                if let Some(row) = g.transitions.row(from) {
                    let scale = (coef * f64::from(h.weight)
                        / f64::from(row.total().max(f32::MIN_POSITIVE)))
                        as f32;
                    for e in row.entries() {
                        if g.catalog.is_live(e.item) {
                            self.add(e.item.slot, scale * e.weight);
                        }
                    }
                }
            }
            coef *= w.recency;
        }
    }

    fn gather_personal(&mut self, g: &GlobalModel, u: &UserState, w: &Weights) {
        let Some(last) = u.last() else { return };
        if w.personal <= 0.0 {
            return;
        }
        let from_last = || u.personal().iter().filter(|t| t.prev == last.fp);
        let total: f32 = from_last().map(|t| t.weight).sum();
        if total <= 0.0 {
            return;
        }
        let scale = (w.personal / f64::from(total)) as f32;
        for t in from_last() {
            if let Some(r) = g.catalog.lookup_fp_only(t.next) {
                self.add(r.slot, scale * t.weight);
            }
        }
    }
}

fn offer_ranked<'a>(heap: &mut BinaryHeap<Reverse<Ranked<'a>>>, k: usize, r: Ranked<'a>) {
    if heap.len() < k {
        heap.push(Reverse(r));
    } else if heap.peek().is_some_and(|min| r > min.0) {
        heap.pop();
        heap.push(Reverse(r));
    }
}
