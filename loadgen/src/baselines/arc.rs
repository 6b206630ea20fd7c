//! ARC, the Adaptive Replacement Cache (Megiddo & Modha, FAST 2003), exactly as published.

use super::{DList, DemandCache, Space};

/// ARC with unit sizes: T1/T2 hold resident items seen once / more than once, B1/B2 their
/// ghosts, and the target `p` moves towards whichever ghost list is hit. Ties do not arise:
/// every choice is by list position.
#[derive(Debug, Clone)]
pub struct ArcCache {
    c: usize,
    p: f64,
    t1: DList,
    t2: DList,
    b1: DList,
    b2: DList,
}

impl ArcCache {
    /// An empty cache of `c` items over `n` items.
    pub fn new(c: usize, n: usize) -> Self {
        ArcCache {
            c,
            p: 0.0,
            t1: DList::new(n),
            t2: DList::new(n),
            b1: DList::new(n),
            b2: DList::new(n),
        }
    }

    /// A miss found in ghost list B1 (`in_b2` false) or B2: moves the target `p` towards
    /// that list by the ratio of the ghost lists' lengths (at least 1), makes room, and
    /// brings `x` back into T2. The paper's two cases are mirror images, so one body serves
    /// both.
    fn ghost_hit(&mut self, x: u32, in_b2: bool) {
        let (hit, other) = if in_b2 {
            (self.b2.len(), self.b1.len())
        } else {
            (self.b1.len(), self.b2.len())
        };
        let d = if hit >= other {
            1.0
        } else {
            other as f64 / hit as f64
        };
        self.p = if in_b2 {
            (self.p - d).max(0.0)
        } else {
            (self.p + d).min(self.c as f64)
        };
        self.replace(in_b2);
        if in_b2 {
            self.b2.remove(x);
        } else {
            self.b1.remove(x);
        }
        self.t2.push_front(x);
    }

    fn replace(&mut self, in_b2: bool) {
        let t1 = self.t1.len() as f64;
        if !self.t1.is_empty() && ((in_b2 && t1 == self.p) || t1 > self.p) {
            let x = self.t1.pop_back().expect("non-empty");
            self.b1.push_front(x);
        } else if let Some(x) = self.t2.pop_back() {
            self.b2.push_front(x);
        } else if let Some(x) = self.t1.pop_back() {
            self.b1.push_front(x);
        }
    }
}

impl DemandCache for ArcCache {
    fn request(&mut self, _t: usize, x: u32, _size: u64) -> bool {
        if self.c == 0 {
            return false;
        }
        if self.t1.remove(x) {
            self.t2.push_front(x);
            return true;
        }
        if self.t2.contains(x) {
            self.t2.push_front(x);
            return true;
        }
        if self.b1.contains(x) {
            self.ghost_hit(x, false);
            return false;
        }
        if self.b2.contains(x) {
            self.ghost_hit(x, true);
            return false;
        }
        let l1 = self.t1.len() + self.b1.len();
        let total = l1 + self.t2.len() + self.b2.len();
        if l1 == self.c {
            if self.t1.len() < self.c {
                self.b1.pop_back();
                self.replace(false);
            } else {
                self.t1.pop_back();
            }
        } else if total >= self.c {
            if total == 2 * self.c {
                self.b2.pop_back();
            }
            self.replace(false);
        }
        self.t1.push_front(x);
        false
    }
    fn contains(&self, x: u32) -> bool {
        self.t1.contains(x) || self.t2.contains(x)
    }
    fn space(&self) -> Space {
        Space {
            cap: self.c as u64,
            used: (self.t1.len() + self.t2.len()) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baselines::testing::expect_pattern;

    #[test]
    fn frequency_survives_a_scan() {
        // a and b are requested twice (T2). At c, T1 is empty, so ARC replaces from T2 (a
        // goes to B2); d e f then cycle through T1. a comes back from the ghost B2 (miss,
        // lowering p) and b, still in T2, hits.
        let c = expect_pattern(ArcCache::new(2, 6), "ababcdefab", "mmHHmmmmmH");
        assert!(c.used() <= 2);
    }
}
