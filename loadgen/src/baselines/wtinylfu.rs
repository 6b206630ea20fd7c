//! W-TinyLFU (Einziger, Friedman & Manes, 2017) in Caffeine's layout.

use super::{DList, DemandCache, Space};

/// A count-min sketch of 4-bit counters with periodic halving: TinyLFU's frequency
/// estimate. The hash is a fixed SplitMix64-style mix per row, so runs are reproducible.
#[derive(Debug, Clone)]
pub struct FreqSketch {
    counters: Vec<u8>,
    width: usize,
    depth: usize,
    ops: u64,
    sample: u64,
}

impl FreqSketch {
    /// `depth` rows of `width` counters (`width` a power of two), halved every `sample`
    /// increments.
    pub fn new(width: usize, depth: usize, sample: u64) -> Self {
        let width = width.next_power_of_two();
        FreqSketch {
            counters: vec![0; width * depth],
            width,
            depth,
            ops: 0,
            sample: sample.max(1),
        }
    }

    fn index(&self, item: u32, row: usize) -> usize {
        let mut h = (u64::from(item) ^ 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(row as u64 + 1))
            .wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^= h >> 31;
        h = h.wrapping_mul(0x94D0_49BB_1331_11EB);
        h ^= h >> 29;
        row * self.width + (h as usize & (self.width - 1))
    }

    /// Counts one request of `item`.
    pub fn increment(&mut self, item: u32) {
        for r in 0..self.depth {
            let k = self.index(item, r);
            if self.counters[k] < 15 {
                self.counters[k] += 1;
            }
        }
        self.ops += 1;
        if self.ops >= self.sample {
            self.ops = 0;
            for c in &mut self.counters {
                *c >>= 1;
            }
        }
    }

    /// The estimated recent frequency of `item` (0..=15).
    pub fn estimate(&self, item: u32) -> u8 {
        (0..self.depth)
            .map(|r| self.counters[self.index(item, r)])
            .min()
            .unwrap_or(0)
    }
}

/// W-TinyLFU: a window LRU of 1% of the capacity (at least 1 unit) in front of a segmented
/// LRU main area (20% probation, 80% protected). An item leaving the window is admitted to
/// probation when main has room, otherwise only if its sketch estimate is strictly greater
/// than that of the victim (probation's LRU end, or protected's when probation is empty);
/// ties reject the candidate. The sketch is 4 rows × nextpow2(capacity in items) counters,
/// halved every 10 × capacity-in-items requests. No doorkeeper.
#[derive(Debug, Clone)]
pub struct WTinyLfu {
    cap: u64,
    win_cap: u64,
    main_cap: u64,
    prot_cap: u64,
    win: DList,
    prob: DList,
    prot: DList,
    win_used: u64,
    prob_used: u64,
    prot_used: u64,
    size: Vec<u64>,
    sketch: FreqSketch,
}

impl WTinyLfu {
    /// An empty cache of `cap` units over `n` items whose mean size is `mean_size` units
    /// (1 for unit-size items; it converts the capacity to items for the sketch).
    pub fn new(cap: u64, n: usize, mean_size: u64) -> Self {
        let items = (cap / mean_size.max(1)).max(1);
        let win_cap = ((cap as f64 * 0.01).round() as u64).max(1);
        let main_cap = cap.saturating_sub(win_cap);
        WTinyLfu {
            cap,
            win_cap,
            main_cap,
            prot_cap: (main_cap as f64 * 0.8).round() as u64,
            win: DList::new(n),
            prob: DList::new(n),
            prot: DList::new(n),
            win_used: 0,
            prob_used: 0,
            prot_used: 0,
            size: vec![0; n],
            sketch: FreqSketch::new(items as usize, 4, 10 * items),
        }
    }

    fn sz(&self, x: u32) -> u64 {
        self.size[x as usize]
    }

    /// Offers a candidate leaving the window to the main area.
    fn admit(&mut self, cand: u32) {
        let cs = self.sz(cand);
        if cs > self.main_cap {
            return;
        }
        while self.prob_used + self.prot_used + cs > self.main_cap {
            let Some(victim) = self.prob.back().or_else(|| self.prot.back()) else {
                return;
            };
            if self.sketch.estimate(cand) <= self.sketch.estimate(victim) {
                return; // rejected
            }
            if self.prob.remove(victim) {
                self.prob_used -= self.sz(victim);
            } else {
                self.prot.remove(victim);
                self.prot_used -= self.sz(victim);
            }
        }
        self.prob.push_front(cand);
        self.prob_used += cs;
    }
}

impl DemandCache for WTinyLfu {
    fn request(&mut self, _t: usize, x: u32, size: u64) -> bool {
        self.sketch.increment(x);
        if self.win.contains(x) {
            self.win.push_front(x);
            return true;
        }
        if self.prob.remove(x) {
            self.prob_used -= self.sz(x);
            self.prot.push_front(x);
            self.prot_used += self.sz(x);
            while self.prot_used > self.prot_cap {
                let y = self.prot.pop_back().expect("non-empty");
                self.prot_used -= self.sz(y);
                self.prob.push_front(y);
                self.prob_used += self.sz(y);
            }
            return true;
        }
        if self.prot.contains(x) {
            self.prot.push_front(x);
            return true;
        }
        if size > self.cap {
            return false;
        }
        self.size[x as usize] = size;
        self.win.push_front(x);
        self.win_used += size;
        while self.win_used > self.win_cap {
            let cand = self.win.pop_back().expect("non-empty");
            self.win_used -= self.sz(cand);
            self.admit(cand);
        }
        false
    }
    fn contains(&self, x: u32) -> bool {
        self.win.contains(x) || self.prob.contains(x) || self.prot.contains(x)
    }
    fn space(&self) -> Space {
        Space {
            cap: self.cap,
            used: self.win_used + self.prob_used + self.prot_used,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baselines::testing::pattern;

    #[test]
    fn frequent_items_resist_a_scan() {
        // cap 5: window 1, main 4 (protected 3). a and b are requested often; a scan of
        // one-off items c..h cannot displace them, because a one-off's estimate (1) is
        // never greater than a frequent victim's.
        let mut c = WTinyLfu::new(5, 8, 1);
        let p = pattern(&mut c, "aaabbbcdefghab");
        assert_eq!(&p[12..], "HH");
        assert!(c.used() <= 5);
    }

    #[test]
    fn sketch_halves() {
        let mut s = FreqSketch::new(8, 4, 10);
        for _ in 0..9 {
            s.increment(1);
        }
        assert_eq!(s.estimate(1), 9);
        s.increment(2);
        assert_eq!(s.estimate(1), 4);
        assert!(s.estimate(3) <= 1);
    }
}
