//! The reference predictors the module's HR@k is compared with. They are deliberately
//! simple, exact and deterministic, so their figures reproduce across tools:
//!
//! - popularity: items by all-time request count;
//! - global first-order Markov: counts of "last item → next item" over all users, ranked
//!   for the user's last item;
//! - the same Markov chain topped up with popularity when its row has fewer than k items.
//!
//! Popularity ties are broken by item index ascending, which is natural id order (see
//! [`crate::logs::Event::item`]); Markov ties by first appearance in the row. Items the
//! user has already seen are never predicted. With these rules the figures on MovieLens
//! 100K match `../shared/notes/reference-figures.md` exactly (docs/prediction.md has them,
//! with the command).

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};

/// What every predictor sees of one user: the items already seen and the last one.
#[derive(Debug, Default, Clone)]
pub struct UserView {
    /// Items this user requested before.
    pub seen: HashSet<u32>,
    /// The user's previous item.
    pub last: Option<u32>,
}

/// All-time popularity, kept sorted incrementally.
#[derive(Debug, Clone)]
pub struct Popularity {
    counts: Vec<u64>,
    order: BTreeSet<(Reverse<u64>, u32)>,
}

impl Popularity {
    /// No evidence yet over `n` items.
    pub fn new(n: usize) -> Self {
        Popularity {
            counts: vec![0; n],
            order: BTreeSet::new(),
        }
    }

    /// Counts one request.
    pub fn learn(&mut self, item: u32) {
        let c = &mut self.counts[item as usize];
        self.order.remove(&(Reverse(*c), item));
        *c += 1;
        self.order.insert((Reverse(*c), item));
    }

    /// Appends to `out`, until it holds `k` items, the most popular items not seen and not
    /// already in `out`.
    pub fn fill(&self, seen: &HashSet<u32>, k: usize, out: &mut Vec<u32>) {
        for &(_, i) in &self.order {
            if out.len() >= k {
                break;
            }
            if !seen.contains(&i) && !out.contains(&i) {
                out.push(i);
            }
        }
    }
}

/// Global first-order transition counts. Each row remembers the order in which its
/// successors first appeared: ties in count are ranked by that order (first seen first),
/// as a stable sort of an insertion-ordered row does (e.g. Python's `Counter.most_common`),
/// which is how the reference figures were made.
#[derive(Debug, Clone, Default)]
pub struct Markov {
    rows: HashMap<u32, HashMap<u32, (u64, u32)>>,
}

impl Markov {
    /// Counts the transition `prev → next`.
    pub fn learn(&mut self, prev: Option<u32>, next: u32) {
        if let Some(p) = prev {
            let row = self.rows.entry(p).or_default();
            let order = row.len() as u32;
            row.entry(next).or_insert((0, order)).0 += 1;
        }
    }

    /// Appends up to `k` successors of `last` (count desc, then first seen first), unseen
    /// only.
    pub fn fill(&self, last: Option<u32>, seen: &HashSet<u32>, k: usize, out: &mut Vec<u32>) {
        let Some(row) = last.and_then(|l| self.rows.get(&l)) else {
            return;
        };
        let mut cands: Vec<(Reverse<u64>, u32, u32)> = row
            .iter()
            .filter(|(i, _)| !seen.contains(i))
            .map(|(&i, &(c, order))| (Reverse(c), order, i))
            .collect();
        cands.sort_unstable();
        out.extend(
            cands
                .into_iter()
                .take(k.saturating_sub(out.len()))
                .map(|c| c.2),
        );
    }
}

/// The baseline predictors, scored side by side on the same events.
#[derive(Debug, Clone)]
pub struct Baselines {
    /// Popularity counts.
    pub popularity: Popularity,
    /// Transition counts.
    pub markov: Markov,
    users: Vec<UserView>,
}

/// Names of the baseline predictors, in report order.
pub const NAMES: [&str; 3] = ["popularity", "markov", "markov_popularity"];

impl Baselines {
    /// Fresh predictors over `n_items` items and `n_users` users.
    pub fn new(n_items: usize, n_users: usize) -> Self {
        Baselines {
            popularity: Popularity::new(n_items),
            markov: Markov::default(),
            users: vec![UserView::default(); n_users],
        }
    }

    /// The top `k` of each predictor in [`NAMES`] order for `user`.
    pub fn predict(&self, user: u32, k: usize) -> [Vec<u32>; 3] {
        let u = &self.users[user as usize];
        let mut pop = Vec::with_capacity(k);
        self.popularity.fill(&u.seen, k, &mut pop);
        let mut markov = Vec::with_capacity(k);
        self.markov.fill(u.last, &u.seen, k, &mut markov);
        let mut both = markov.clone();
        self.popularity.fill(&u.seen, k, &mut both);
        [pop, markov, both]
    }

    /// Learns that `user` requested `item`.
    pub fn learn(&mut self, user: u32, item: u32) {
        let u = &mut self.users[user as usize];
        self.markov.learn(u.last, item);
        self.popularity.learn(item);
        u.seen.insert(item);
        u.last = Some(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_checked_predictions() {
        let mut b = Baselines::new(5, 3);
        // user 0: 0 -> 1 -> 2; user 1: 0 -> 2; item 2 most popular (2), ties by index.
        for (u, i) in [(0, 0), (0, 1), (0, 2), (1, 0), (1, 2)] {
            b.learn(u, i);
        }
        // user 2 is new: popularity only, Markov has nothing.
        let [pop, mk, both] = b.predict(2, 3);
        assert_eq!(pop, [0, 2, 1]);
        assert!(mk.is_empty());
        assert_eq!(both, pop);
        // user 1 (last 2, seen {0, 2}): only item 1 is unseen and ever requested.
        let [pop, mk, both] = b.predict(1, 2);
        assert_eq!(pop, [1]);
        assert!(mk.is_empty(), "2 has no successors yet");
        assert_eq!(both, [1]);
        b.learn(2, 0);
        // user 2 last 0: successors of 0 are 1 (1) and 2 (1): ties by first appearance.
        let [_, mk, both] = b.predict(2, 3);
        assert_eq!(mk, [1, 2]);
        assert_eq!(both, [1, 2]);
    }
}
