//! The synthetic viewing workload shared by the criterion benches and the `play_cost`
//! example, so both measure the same traffic.

/// A small deterministic generator (SplitMix64), so benches need no RNG crate.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Roughly Zipf(1) over `n` items: the inverse CDF of a log-uniform draw.
    pub fn zipf(&mut self, n: u64) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((n as f64).powf(u) as u64).saturating_sub(1).min(n - 1)
    }
}

/// Next view of a viewer among `items`: usually the next episode of what they watch (their
/// `last`), else a popular item.
pub fn next_item(rng: &mut Rng, last: Option<u64>, items: u64) -> u64 {
    match last {
        Some(l) if rng.next() % 10 < 6 => (l + 1) % items,
        _ => rng.zipf(items),
    }
}
