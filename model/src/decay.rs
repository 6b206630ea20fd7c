//! Forward exponential decay.
//!
//! Decaying every count on every tick costs O(model). Forward decay (Cormode et al., ICDE
//! 2009) instead weighs a new observation at time `t` by `2^((t - L) / h)` for a fixed
//! landmark `L`: relative weights are exactly those of backward decay, and nothing old is
//! touched. Weights grow with time, so when they pass [`RESCALE_EXPONENT`] the caller scales
//! every stored weight down once by [`Decay::advance`]'s factor and the landmark moves to now.
//!
//! Time is in the caller's unit: milliseconds for the model's evidence and popularity, views
//! at this node for the edge cache's demand (see [`crate::Config::cache_memory`]).

/// Past this exponent (2^40 ≈ 10^12) stored weights are rescaled, leaving plenty of `f32`
/// headroom (about 10^38) for sums of many observations.
pub const RESCALE_EXPONENT: f64 = 40.0;

/// One decay clock. A half-life of 0 means no decay: every weight is 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decay {
    half_life: u64,
    landmark: i64,
}

impl Decay {
    /// A clock with its landmark at `landmark`.
    pub fn new(half_life: u64, landmark: i64) -> Self {
        Decay {
            half_life,
            landmark,
        }
    }

    /// The half-life (0: no decay).
    pub fn half_life(&self) -> u64 {
        self.half_life
    }

    /// The landmark, persisted so that stored weights keep their meaning.
    pub fn landmark(&self) -> i64 {
        self.landmark
    }

    fn exponent(&self, t: i64) -> f64 {
        if self.half_life == 0 {
            0.0
        } else {
            (t as f64 - self.landmark as f64) / self.half_life as f64
        }
    }

    /// The weight of an observation made at `t`.
    pub fn weight(&self, t: i64) -> f64 {
        self.exponent(t).exp2()
    }

    /// Whether weights at `t` would exceed the headroom, so that [`Decay::advance`] to `t`
    /// rescales (a caller may have work to finish first).
    pub fn due(&self, t: i64) -> bool {
        self.exponent(t) > RESCALE_EXPONENT
    }

    /// If weights at `t` would exceed the headroom, moves the landmark to `t` and
    /// returns the factor every stored weight must be multiplied by.
    pub fn advance(&mut self, t: i64) -> Option<f64> {
        let e = self.exponent(t);
        if e > RESCALE_EXPONENT {
            self.landmark = t;
            Some((-e).exp2())
        } else {
            None
        }
    }

    /// Changes the half-life at run time: stored weights are rebased to the landmark `now`
    /// under the old half-life, so history keeps its relative weight. Returns that factor.
    pub fn set_half_life(&mut self, half_life: u64, now: i64) -> f64 {
        // Never move the landmark back: rebasing then could only grow weights, possibly
        // past f64's range; a factor in (0, 1] keeps every stored weight finite.
        let now = now.max(self.landmark);
        let factor = (-self.exponent(now)).exp2();
        self.half_life = half_life;
        self.landmark = now;
        factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_half_life_halves_relative_weight() {
        let d = Decay::new(1000, 0);
        assert!((d.weight(1000) / d.weight(0) - 2.0).abs() < 1e-12);
        assert!((d.weight(-1000) - 0.5).abs() < 1e-12);
        assert_eq!(Decay::new(0, 0).weight(1 << 40), 1.0);
    }

    #[test]
    fn advance_rescales_only_past_headroom() {
        let mut d = Decay::new(1000, 0);
        assert_eq!(d.advance(30_000), None);
        let f = d.advance(50_000).expect("past 2^40");
        assert!((f - 2f64.powi(-50)).abs() < 1e-24);
        assert_eq!(d.landmark(), 50_000);
        assert_eq!(d.weight(50_000), 1.0);
    }
}
