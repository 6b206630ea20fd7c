//! Least frequently used, with counts kept only while an item is resident.

use std::collections::BTreeSet;

use super::{DemandCache, Space};

/// LFU: evict the resident item with the fewest requests since it was admitted; ties go to
/// the least recently requested (the order key is `(count, last request, item)`). A count
/// restarts at 1 when an evicted item comes back, which is the classic in-cache LFU that
/// the reference figures use ("perfect" LFU, keeping counts forever, is much stronger).
#[derive(Debug, Clone)]
pub struct Lfu {
    space: Space,
    clock: u64,
    freq: Vec<u64>,
    last: Vec<u64>,
    size: Vec<u64>,
    resident: Vec<bool>,
    order: BTreeSet<(u64, u64, u32)>,
}

impl Lfu {
    /// An empty cache of `cap` units over `n` items.
    pub fn new(cap: u64, n: usize) -> Self {
        Lfu {
            space: Space::new(cap),
            clock: 0,
            freq: vec![0; n],
            last: vec![0; n],
            size: vec![0; n],
            resident: vec![false; n],
            order: BTreeSet::new(),
        }
    }
}

impl DemandCache for Lfu {
    fn request(&mut self, _t: usize, item: u32, size: u64) -> bool {
        let i = item as usize;
        self.clock += 1;
        if self.resident[i] {
            self.order.remove(&(self.freq[i], self.last[i], item));
            self.freq[i] += 1;
            self.last[i] = self.clock;
            self.order.insert((self.freq[i], self.last[i], item));
            return true;
        }
        if !self.space.admits(size) {
            return false;
        }
        let (order, resident, freq, sizes) = (
            &mut self.order,
            &mut self.resident,
            &mut self.freq,
            &self.size,
        );
        self.space.make_room(size, || {
            let v = order.pop_first().expect("over capacity implies non-empty");
            let vi = v.2 as usize;
            resident[vi] = false;
            freq[vi] = 0;
            sizes[vi]
        });
        self.freq[i] = 1;
        self.last[i] = self.clock;
        self.size[i] = size;
        self.resident[i] = true;
        self.space.used += size;
        self.order.insert((1, self.clock, item));
        false
    }
    fn contains(&self, item: u32) -> bool {
        self.resident[item as usize]
    }
    fn space(&self) -> Space {
        self.space
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baselines::testing::expect_pattern;

    #[test]
    fn hand_checked_trace() {
        // cap 2: a a b -> {a:2, b:1}; c evicts b; b evicts c (count 1, older than... c is
        // the only count-1 item); a still resident.
        expect_pattern(Lfu::new(2, 3), "aabcba", "mHmmmH");
        // ties by recency: a b c with cap 2 evicts a (least recent of the count-1 items)
        let c = expect_pattern(Lfu::new(2, 3), "abcb", "mmmH");
        assert!(!c.contains(0));
    }
}
