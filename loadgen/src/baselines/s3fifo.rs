//! S3-FIFO (Yang et al., SOSP 2023): three FIFO queues beat LRU on skewed web traces.

use std::collections::VecDeque;

use super::{DemandCache, Space};

const NONE: u8 = 0;
const SMALL: u8 = 1;
const MAIN: u8 = 2;

/// S3-FIFO with sizes. The small queue S takes 10% of the capacity (at least 1 unit), the
/// main queue M the rest, and the ghost queue G remembers evicted-from-S items up to M's
/// capacity. A 2-bit frequency (capped at 3) counts hits. Eviction takes from S while S is
/// at its share (or M is empty): S's tail moves to M if it was hit more than once, else
/// leaves for G. M is FIFO with reinsertion: an item with frequency > 0 goes back to the
/// head with frequency − 1. A miss found in G is admitted straight into M.
/// All queues are FIFO, so there are no ties.
#[derive(Debug, Clone)]
pub struct S3Fifo {
    space: Space,
    s_cap: u64,
    g_cap: u64,
    s_used: u64,
    g_used: u64,
    s: VecDeque<u32>,
    m: VecDeque<u32>,
    g: VecDeque<(u32, u64)>,
    freq: Vec<u8>,
    place: Vec<u8>,
    in_ghost: Vec<u32>,
    size: Vec<u64>,
}

impl S3Fifo {
    /// An empty cache of `cap` units over `n` items.
    pub fn new(cap: u64, n: usize) -> Self {
        let s_cap = ((cap as f64 * 0.1).round() as u64).max(1);
        S3Fifo {
            space: Space::new(cap),
            s_cap,
            g_cap: cap.saturating_sub(s_cap),
            s_used: 0,
            g_used: 0,
            s: VecDeque::new(),
            m: VecDeque::new(),
            g: VecDeque::new(),
            freq: vec![0; n],
            place: vec![NONE; n],
            in_ghost: vec![0; n],
            size: vec![0; n],
        }
    }

    fn ghost_push(&mut self, x: u32) {
        let sz = self.size[x as usize];
        self.g.push_back((x, sz));
        self.g_used += sz;
        self.in_ghost[x as usize] += 1;
        while self.g_used > self.g_cap {
            let (y, ysz) = self.g.pop_front().expect("non-empty");
            self.g_used -= ysz;
            self.in_ghost[y as usize] -= 1;
        }
    }

    /// Evicts one item.
    fn evict(&mut self) {
        loop {
            if (self.s_used >= self.s_cap || self.m.is_empty()) && !self.s.is_empty() {
                let x = self.s.pop_front().expect("non-empty");
                let xi = x as usize;
                self.s_used -= self.size[xi];
                if self.freq[xi] > 1 {
                    self.freq[xi] = 0;
                    self.place[xi] = MAIN;
                    self.m.push_back(x);
                    continue;
                }
                self.place[xi] = NONE;
                self.space.used -= self.size[xi];
                self.ghost_push(x);
                return;
            }
            let Some(x) = self.m.pop_front() else { return };
            let xi = x as usize;
            if self.freq[xi] > 0 {
                self.freq[xi] -= 1;
                self.m.push_back(x);
            } else {
                self.place[xi] = NONE;
                self.space.used -= self.size[xi];
                return;
            }
        }
    }
}

impl DemandCache for S3Fifo {
    fn request(&mut self, _t: usize, x: u32, size: u64) -> bool {
        let i = x as usize;
        if self.place[i] != NONE {
            self.freq[i] = (self.freq[i] + 1).min(3);
            return true;
        }
        if !self.space.admits(size) {
            return false;
        }
        // `evict` needs the whole cache, so it keeps `space.used` itself rather than going
        // through `Space::make_room`.
        while self.space.overflows(size) {
            self.evict();
        }
        self.freq[i] = 0;
        self.size[i] = size;
        self.space.used += size;
        if self.in_ghost[i] > 0 {
            self.place[i] = MAIN;
            self.m.push_back(x);
        } else {
            self.place[i] = SMALL;
            self.s.push_back(x);
            self.s_used += size;
        }
        false
    }
    fn contains(&self, x: u32) -> bool {
        self.place[x as usize] != NONE
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
    fn one_hit_wonders_pass_through_small_and_ghosts_go_to_main() {
        // cap 3: S holds 1 (10% rounded, min 1), G up to 2 entries.
        // a b c fill (S = [a b c] since M is empty); d evicts a -> G; a returns from G -> M
        // (evicting b -> G); b returns from G -> M (evicting c -> G); a hits in M.
        let c = expect_pattern(S3Fifo::new(3, 4), "abcdaba", "mmmmmmH");
        assert!(c.contains(0) && c.contains(1) && c.contains(3));
        assert_eq!(c.used(), 3);
    }

    #[test]
    fn items_hit_twice_in_small_are_promoted() {
        // cap 2, S share 1: a a a (freq 2) b -> S=[a b]; c: S over share, a has freq 2 ->
        // promoted to M; b evicted to G. a survives.
        let c = expect_pattern(S3Fifo::new(2, 3), "aaabca", "mHHmmH");
        assert!(!c.contains(1));
    }
}
