//! Least recently used: the simplest demand cache, and the one every CDN starts with.

use super::{DList, DemandCache, Space};

/// LRU with sizes: a miss is inserted at the front, then the back is evicted until the
/// contents fit. Deterministic by construction.
#[derive(Debug, Clone)]
pub struct Lru {
    space: Space,
    list: DList,
    size: Vec<u64>,
}

impl Lru {
    /// An empty cache of `cap` units over `n` items.
    pub fn new(cap: u64, n: usize) -> Self {
        Lru {
            space: Space::new(cap),
            list: DList::new(n),
            size: vec![0; n],
        }
    }
}

impl DemandCache for Lru {
    fn request(&mut self, _t: usize, item: u32, size: u64) -> bool {
        if self.list.contains(item) {
            self.list.push_front(item);
            return true;
        }
        if !self.space.admits(size) {
            return false;
        }
        // Evicting from the back before inserting at the front removes exactly what
        // evicting after the insertion would: the new item is never the back one.
        let (list, sizes) = (&mut self.list, &self.size);
        self.space.make_room(size, || {
            let v = list.pop_back().expect("over capacity implies non-empty");
            sizes[v as usize]
        });
        self.list.push_front(item);
        self.size[item as usize] = size;
        self.space.used += size;
        false
    }
    fn contains(&self, item: u32) -> bool {
        self.list.contains(item)
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
        // cap 2: a b a c (evicts b) b (miss, evicts a) a (miss)
        let c = expect_pattern(Lru::new(2, 3), "abacba", "mmHmmm");
        assert_eq!(c.used(), 2);
    }

    #[test]
    fn sizes_evict_until_fit_and_oversize_bypasses() {
        let mut c = Lru::new(10, 3);
        assert!(!c.request(0, 0, 4));
        assert!(!c.request(1, 1, 4));
        assert!(!c.request(2, 2, 6)); // evicts 0, then 1? 4+4+6=14 -> evict 0 -> 10 fits
        assert!(!c.contains(0) && c.contains(1) && c.contains(2));
        assert!(!c.request(3, 0, 11));
        assert!(!c.contains(0));
    }
}
