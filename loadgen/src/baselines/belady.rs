//! Belady's MIN (1966): the offline optimum of a demand-fetch cache.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{DemandCache, Space};

/// MIN: on a miss the requested item is always admitted (demand fetch, no bypass) and the
/// resident item whose next request lies farthest in the future is evicted. Items never
/// requested again are evicted first; among them the highest item index goes first (the
/// choice does not change the hit count). With unit sizes this is optimal; with sizes it
/// is the usual farthest-next-use heuristic, evicting until the item fits.
#[derive(Debug, Clone)]
pub struct Belady {
    space: Space,
    next_use: Arc<[usize]>,
    next_of: Vec<usize>,
    size: Vec<u64>,
    resident: Vec<bool>,
    order: BTreeSet<(usize, u32)>,
}

impl Belady {
    /// An empty cache of `cap` units over `n` items; `next_use[t]` is the position of the
    /// next request for the item requested at `t` (see [`crate::logs::next_use`]).
    pub fn new(cap: u64, n: usize, next_use: Arc<[usize]>) -> Self {
        Belady {
            space: Space::new(cap),
            next_use,
            next_of: vec![usize::MAX; n],
            size: vec![0; n],
            resident: vec![false; n],
            order: BTreeSet::new(),
        }
    }
}

impl DemandCache for Belady {
    fn request(&mut self, t: usize, x: u32, size: u64) -> bool {
        let i = x as usize;
        let nx = self.next_use[t];
        if self.resident[i] {
            self.order.remove(&(self.next_of[i], x));
            self.next_of[i] = nx;
            self.order.insert((nx, x));
            return true;
        }
        if !self.space.admits(size) {
            return false;
        }
        let (order, resident, sizes) = (&mut self.order, &mut self.resident, &self.size);
        self.space.make_room(size, || {
            let (_, v) = order.pop_last().expect("over capacity implies non-empty");
            resident[v as usize] = false;
            sizes[v as usize]
        });
        self.resident[i] = true;
        self.next_of[i] = nx;
        self.size[i] = size;
        self.space.used += size;
        self.order.insert((nx, x));
        false
    }
    fn contains(&self, x: u32) -> bool {
        self.resident[x as usize]
    }
    fn space(&self) -> Space {
        self.space
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baselines::testing::{items, pattern};
    use crate::logs::next_use;

    fn belady(cap: u64, trace: &str) -> String {
        let ev = items(trace);
        let nu: Arc<[usize]> = next_use(&ev, 26).into();
        pattern(&mut Belady::new(cap, 26, nu), trace)
    }

    #[test]
    fn textbook_trace() {
        // The classic example with 3 frames: 7 0 1 2 0 3 0 4 2 3 0 3 2 1 2 0 1 7 0 1 has
        // 9 faults under OPT. Letters: a=7 b=0 c=1 d=2 e=3 f=4.
        let p = belady(3, "abcdbebfdebedcdbcabc");
        assert_eq!(p.matches('m').count(), 9);
        assert_eq!(p, "mmmmHmHmHHmHHmHHHmHH");
    }

    #[test]
    fn never_worse_than_lru() {
        let trace = "abcabdabeabfcdecdfab";
        let b = belady(2, trace).matches('H').count();
        let mut lru = crate::baselines::Lru::new(2, 26);
        let l = pattern(&mut lru, trace).matches('H').count();
        assert!(b >= l, "{b} < {l}");
    }
}
