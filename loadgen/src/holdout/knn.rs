//! Offline reference models for the held-out protocol: fitted once on a prefix of the log,
//! then frozen while the rest is scored.
//!
//! - [`Popularity`]: items by their request count in the fitted prefix.
//! - [`ItemKnn`]: item-based k-nearest-neighbours, the classic offline baseline of
//!   session and sequential recommendation. Two items are similar by the cosine of their
//!   binary viewer vectors (`|U_i ∩ U_j| / sqrt(|U_i| |U_j|)`, every viewer who watched an
//!   item at least once counting once), and a viewer's candidates score the sum of their
//!   similarities to the viewer's last [`KNN_HISTORY`] views. Ties and an empty
//!   neighbourhood fall back to popularity, so the list always has k items.
//!
//! Both are exact and deterministic: ties are broken by fitted popularity, then by item
//! index (natural id order), so the figures reproduce across tools: on MovieLens 100K they
//! match `../shared/notes/reference-figures.md` exactly (docs/prediction.md, `loadgen
//! holdout`).

use std::cell::RefCell;
use std::collections::HashSet;

use crate::logs::Event;

/// Views of a viewer's history the item-kNN scores from (the most recent ones).
pub const KNN_HISTORY: usize = 10;

/// Item request counts over a fitted prefix, with the items in ranking order.
#[derive(Debug, Clone)]
pub struct Popularity {
    counts: Vec<u32>,
    /// Every item, most requested first, then by index.
    order: Vec<u32>,
}

impl Popularity {
    /// Counts the requests of `events` over `n_items` items.
    pub fn fit(events: &[Event], n_items: usize) -> Self {
        let mut counts = vec![0u32; n_items];
        for e in events {
            counts[e.item as usize] = counts[e.item as usize].saturating_add(1);
        }
        let mut order: Vec<u32> = (0..n_items as u32).collect();
        order.sort_by(|&a, &b| counts[b as usize].cmp(&counts[a as usize]).then(a.cmp(&b)));
        Popularity { counts, order }
    }

    /// Appends to `out`, until it holds `k` items, the most requested items that are
    /// neither seen nor already in `out`.
    pub fn fill(&self, seen: &HashSet<u32>, k: usize, out: &mut Vec<u32>) {
        for &i in &self.order {
            if out.len() >= k {
                break;
            }
            if !seen.contains(&i) && !out.contains(&i) {
                out.push(i);
            }
        }
    }

    /// The top `k` unseen items.
    pub fn rank(&self, seen: &HashSet<u32>, k: usize) -> Vec<u32> {
        let mut out = Vec::with_capacity(k);
        self.fill(seen, k, &mut out);
        out
    }

    fn count(&self, item: u32) -> u32 {
        self.counts.get(item as usize).copied().unwrap_or(0)
    }
}

/// Cosine item-kNN over binary viewer vectors, fitted once.
#[derive(Debug, Clone)]
pub struct ItemKnn {
    /// For each item, its neighbours and their cosine similarity (itself excluded).
    rows: Vec<Vec<(u32, f32)>>,
    popularity: Popularity,
    /// Dense score accumulator reused across rankings (all zeros between calls).
    scratch: RefCell<Scratch>,
}

/// A dense score row and the indices it holds non-zero values at.
#[derive(Debug, Clone, Default)]
struct Scratch {
    scores: Vec<f64>,
    touched: Vec<u32>,
}

impl ItemKnn {
    /// Fits on `events` over `n_items` items.
    ///
    /// The co-occurrence counts are accumulated item by item through a dense scratch row,
    /// so the work is the sum over viewers of their distinct items squared, and the memory
    /// the number of co-watched pairs (at most `n_items²`).
    pub fn fit(events: &[Event], n_items: usize) -> Self {
        let popularity = Popularity::fit(events, n_items);
        // Each viewer's distinct items, and each item's distinct viewers.
        let mut by_user: Vec<Vec<u32>> = Vec::new();
        let mut pairs: HashSet<(u32, u32)> = HashSet::new();
        for e in events {
            if pairs.insert((e.user, e.item)) {
                let u = e.user as usize;
                if by_user.len() <= u {
                    by_user.resize_with(u + 1, Vec::new);
                }
                by_user[u].push(e.item);
            }
        }
        drop(pairs);
        let mut by_item: Vec<Vec<u32>> = vec![Vec::new(); n_items];
        for (u, items) in by_user.iter().enumerate() {
            for &i in items {
                by_item[i as usize].push(u as u32);
            }
        }
        let norm: Vec<f64> = by_item.iter().map(|us| (us.len() as f64).sqrt()).collect();
        let mut scratch = vec![0u32; n_items];
        let mut touched: Vec<u32> = Vec::new();
        let mut rows = Vec::with_capacity(n_items);
        for (i, viewers) in by_item.iter().enumerate() {
            for &u in viewers {
                for &j in &by_user[u as usize] {
                    if j as usize == i {
                        continue;
                    }
                    if scratch[j as usize] == 0 {
                        touched.push(j);
                    }
                    scratch[j as usize] += 1;
                }
            }
            touched.sort_unstable();
            let row = touched
                .drain(..)
                .map(|j| {
                    let co = std::mem::take(&mut scratch[j as usize]);
                    (j, (f64::from(co) / (norm[i] * norm[j as usize])) as f32)
                })
                .collect();
            rows.push(row);
        }
        ItemKnn {
            rows,
            popularity,
            scratch: RefCell::default(),
        }
    }

    /// The top `k` unseen items for a viewer whose views so far are `history` (oldest
    /// first).
    pub fn rank(&self, history: &[u32], seen: &HashSet<u32>, k: usize) -> Vec<u32> {
        let recent = &history[history.len().saturating_sub(KNN_HISTORY)..];
        let mut scratch = self.scratch.borrow_mut();
        let Scratch { scores, touched } = &mut *scratch;
        scores.resize(self.rows.len(), 0.0);
        for &h in recent {
            if let Some(row) = self.rows.get(h as usize) {
                for &(j, s) in row {
                    if scores[j as usize] == 0.0 {
                        touched.push(j);
                    }
                    scores[j as usize] += f64::from(s);
                }
            }
        }
        let mut cands: Vec<(u32, f64)> = touched
            .drain(..)
            .map(|j| (j, std::mem::take(&mut scores[j as usize])))
            .filter(|&(j, s)| s > 0.0 && !seen.contains(&j))
            .collect();
        let better = |a: &(u32, f64), b: &(u32, f64)| {
            b.1.total_cmp(&a.1)
                .then(self.popularity.count(b.0).cmp(&self.popularity.count(a.0)))
                .then(a.0.cmp(&b.0))
        };
        if cands.len() > k {
            cands.select_nth_unstable_by(k, better);
            cands.truncate(k);
        }
        cands.sort_unstable_by(better);
        let mut out: Vec<u32> = cands.into_iter().map(|(j, _)| j).collect();
        self.popularity.fill(seen, k, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(user: u32, item: u32) -> Event {
        Event {
            user,
            item,
            ts_ms: 0,
            duration_s: None,
            device: None,
            size: None,
        }
    }

    #[test]
    fn cosine_similarity_of_binary_viewer_vectors() {
        // Item 0: viewers {0, 1}; item 1: {0, 1, 2}; item 2: {2}. A repeat counts once.
        let events = [
            ev(0, 0),
            ev(0, 1),
            ev(1, 0),
            ev(1, 1),
            ev(1, 1),
            ev(2, 1),
            ev(2, 2),
        ];
        let knn = ItemKnn::fit(&events, 3);
        let sim = |i: usize, j: u32| {
            knn.rows[i]
                .iter()
                .find(|&&(n, _)| n == j)
                .map(|&(_, s)| f64::from(s))
        };
        assert!((sim(0, 1).unwrap() - 2.0 / (2f64.sqrt() * 3f64.sqrt())).abs() < 1e-6);
        assert!((sim(1, 2).unwrap() - 1.0 / 3f64.sqrt()).abs() < 1e-6);
        assert_eq!(sim(0, 2), None, "never co-watched");
        assert_eq!(sim(0, 0), None, "an item is not its own neighbour");
    }

    #[test]
    fn ranks_by_summed_similarity_and_fills_with_popularity() {
        // Viewers 0..3 watch 0 then 1; viewer 3 watches 0 then 2; item 3 is popular alone.
        let mut events = Vec::new();
        for u in 0..3 {
            events.extend([ev(u, 0), ev(u, 1)]);
        }
        events.extend([ev(3, 0), ev(3, 2)]);
        for u in 4..9 {
            events.push(ev(u, 3));
        }
        let knn = ItemKnn::fit(&events, 5);
        let seen: HashSet<u32> = [0].into();
        // From item 0: item 1 (3 co-viewers) before item 2 (1), then popularity: 3, then 4.
        assert_eq!(knn.rank(&[0], &seen, 4), vec![1, 2, 3, 4]);
        // Seen items never come back, even as fill.
        let seen: HashSet<u32> = [0, 1, 3].into();
        assert_eq!(knn.rank(&[0, 1], &seen, 3), vec![2, 4]);
        // Only the last KNN_HISTORY views count.
        let mut long = vec![0];
        long.extend(std::iter::repeat_n(4, KNN_HISTORY));
        assert_eq!(knn.rank(&long, &HashSet::new(), 1), vec![3]);
    }

    #[test]
    fn popularity_breaks_ties_by_index() {
        let events = [ev(0, 2), ev(1, 2), ev(0, 1), ev(1, 0)];
        let p = Popularity::fit(&events, 4);
        assert_eq!(p.rank(&HashSet::new(), 4), vec![2, 0, 1, 3]);
        assert_eq!(p.rank(&[2].into(), 2), vec![0, 1]);
    }
}
