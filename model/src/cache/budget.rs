//! A controller that spends an origin-traffic budget on the most confident predictions.
//!
//! Operators think in origin fetches per request ("we can afford one extra fetch per view"),
//! not in k. A fixed k per play spends the budget evenly over every viewer, confident or
//! not, and k is an integer: when k = 1 costs more than the budget and k = 0 less, a k
//! controller can only alternate between them and overshoots on average. This controller
//! instead prices a fetch:
//!
//! - each prediction comes with a *confidence* (its share of the score mass of the viewer's
//!   top [`CONFIDENCE_TOP`], see [`confidence`]) and is fetched only if the confidence is at
//!   least the current *price*;
//! - every [`WINDOW`] requests the price rises by [`PRICE_STEP`] if the window spent more
//!   than the budget and falls if it spent less than [`SET_POINT`] of it, so the budget goes
//!   to the predictions most likely to be used, whoever they belong to;
//! - a *credit* (a token bucket) earns the budget on every request and pays one per origin
//!   fetch, misses included; a prefetch needs a whole fetch of credit. The bucket holds at
//!   most [`CREDIT_REQUESTS`] requests' worth, so over any run fetches per request stay
//!   within the budget (plus that small burst), whatever the price does;
//! - the controller also sizes how many predictions are looked at (the *depth*): twice the
//!   deepest rank it recently paid for, so a large budget can reach far down the list while
//!   a small one costs a short prediction;
//! - the budget is a cap, never a target: a prefetch pays for itself only if it is used.
//!   A used prefetch saves the miss it replaces (one fetch for one fetch, plus a hit); an
//!   unused one is a fetch for nothing and takes room a demand item could have used. So a
//!   window whose prefetches were used less often than [`PRECISION_FLOOR`] raises the
//!   price whatever it spent, and spending falls towards zero on its own when predictions
//!   are not being used (a window with too few prefetches to judge lets the price fall as
//!   before, which keeps probing whether predictions have become useful again).

/// Requests per control window.
pub const WINDOW: u32 = 500;
/// Largest depth (predictions looked at per play) the controller will choose.
pub const K_MAX: usize = 100;
/// Smallest depth the controller will choose.
pub const DEPTH_MIN: usize = 10;
/// The price falls when a window spent less than this fraction of the budget.
pub const SET_POINT: f64 = 0.97;
/// Factor by which the price moves per window.
pub const PRICE_STEP: f64 = 1.2;
/// Starting price (a confidence share).
pub const PRICE_START: f64 = 0.1;
/// Price bounds: confidences are shares in [0, 1], so a price above 1 buys nothing and one
/// near 0 buys everything the viewer's rows support (popularity fill scores 0, never bought).
const PRICE_MIN: f64 = 1e-6;
const PRICE_MAX: f64 = 1.0;
/// Requests' worth of budget the credit may hold, either way.
pub const CREDIT_REQUESTS: f64 = 3.0;
/// Predictions whose score mass defines a confidence.
pub const CONFIDENCE_TOP: usize = 10;
/// Share of a window's prefetches that must be used for the price to fall: below it the
/// price rises. A used prefetch is one hit for no extra fetch (it replaces the miss), an
/// unused one an extra fetch for no hit, so at 0.2 prefetches earn one hit per four wasted
/// fetches, about where they stop paying for their origin traffic. Measured on MovieLens
/// 100K at 100 items: floors 0.1 / 0.15 / 0.2 keep budget 1 at 0.352 and take budget 5
/// from 4.87 to 3.79 to 2.83 fetches per request (0.539 / 0.520 / 0.484 hit ratio); 0.25
/// cost budget 1 0.002.
pub const PRECISION_FLOOR: f64 = 0.2;
/// Prefetches a window needs before its precision is judged.
pub const PRECISION_SAMPLE: u32 = 20;

/// The confidence of each prediction in a ranked list: its score over the summed scores of
/// the list's top [`CONFIDENCE_TOP`]. Raw scores are comparable within one list only; the
/// share is comparable across viewers (a viewer with one strong candidate gives it most of
/// the mass, one with ten equal candidates a tenth each), which is what a single price
/// across viewers needs. Zero scores (popularity fill) have no confidence.
pub fn confidence(scores: &[f64]) -> impl Iterator<Item = f64> + '_ {
    let mass: f64 = scores.iter().take(CONFIDENCE_TOP).map(|s| s.max(0.0)).sum();
    scores.iter().map(move |&s| {
        if mass > 0.0 && s > 0.0 {
            (s / mass).min(1.0)
        } else {
            0.0
        }
    })
}

/// Controller state; `target == 0` means no budget (a fixed k is used).
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    target: f64,
    /// Fixed k when there is no budget; the depth when there is one.
    k: usize,
    window_requests: u32,
    window_fetches: u32,
    price: f64,
    credit: f64,
    /// Deepest rank (1-based) bought in the current window.
    window_deepest: usize,
    /// Prefetch fetches in the current window.
    window_prefetches: u32,
    /// Prefetched items first used by a request in the current window.
    window_used: u32,
}

impl Default for Budget {
    fn default() -> Self {
        Budget::new(0.0, 5)
    }
}

/// Persisted state of a [`Budget`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetParts {
    /// Fetches per request (0: none).
    pub target: f64,
    /// Fixed k, or the depth under a budget.
    pub k: usize,
    /// Requests in the current window.
    pub window_requests: u32,
    /// Fetches in the current window.
    pub window_fetches: u32,
    /// Current price.
    pub price: f64,
    /// Current credit.
    pub credit: f64,
    /// Deepest rank (1-based) bought in the current window: the next depth depends on it.
    pub window_deepest: usize,
    /// Prefetch fetches in the current window: the price depends on their use.
    pub window_prefetches: u32,
    /// Prefetched items used in the current window.
    pub window_used: u32,
}

impl Budget {
    /// A controller holding fetches per request within `budget` (0: none, a fixed `k`).
    pub fn new(budget: f64, k: usize) -> Self {
        let target = if budget.is_finite() {
            budget.max(0.0)
        } else {
            0.0
        };
        Budget {
            target,
            k: if target > 0.0 {
                DEPTH_MIN
            } else {
                k.min(K_MAX)
            },
            window_requests: 0,
            window_fetches: 0,
            price: PRICE_START,
            credit: 0.0,
            window_deepest: 0,
            window_prefetches: 0,
            window_used: 0,
        }
    }

    /// Rebuilds a controller from persisted parts.
    pub fn from_parts(p: BudgetParts) -> Self {
        let mut b = Budget::new(p.target, p.k);
        b.k = p.k.min(K_MAX);
        b.window_requests = p.window_requests;
        b.window_fetches = p.window_fetches;
        if p.price.is_finite() {
            b.price = p.price.clamp(PRICE_MIN, PRICE_MAX);
        }
        if p.credit.is_finite() {
            b.credit = p.credit.clamp(-b.credit_cap(), b.credit_cap());
        }
        b.window_deepest = p.window_deepest.min(K_MAX);
        b.window_prefetches = p.window_prefetches;
        b.window_used = p.window_used;
        b
    }

    /// Persisted parts.
    pub fn parts(&self) -> BudgetParts {
        BudgetParts {
            target: self.target,
            k: self.k,
            window_requests: self.window_requests,
            window_fetches: self.window_fetches,
            price: self.price,
            credit: self.credit,
            window_deepest: self.window_deepest,
            window_prefetches: self.window_prefetches,
            window_used: self.window_used,
        }
    }

    /// Adopts a new budget, keeping the learned state if the budget is unchanged.
    pub fn retarget(&mut self, other: Budget) {
        if (other.target - self.target).abs() > f64::EPSILON
            || (self.target == 0.0 && other.k != self.k)
        {
            *self = other;
        }
    }

    /// The budget in fetches per request (0: none).
    pub fn target(&self) -> f64 {
        self.target
    }

    /// Whether a budget is set (else a fixed k is used).
    pub fn active(&self) -> bool {
        self.target > 0.0
    }

    /// Predictions to look at per play: the depth under a budget, else the fixed k.
    pub fn depth(&self) -> usize {
        self.k
    }

    /// The confidence a prediction needs to be fetched.
    pub fn price(&self) -> f64 {
        self.price
    }

    /// Fetches the credit currently allows (negative: overspent).
    pub fn credit(&self) -> f64 {
        self.credit
    }

    fn credit_cap(&self) -> f64 {
        (CREDIT_REQUESTS * self.target).max(1.0)
    }

    /// Whether the prediction at 0-based `rank` with `confidence` may be fetched now.
    pub fn affordable(&self, rank: usize, confidence: f64) -> bool {
        self.active() && rank < self.k && self.credit >= 1.0 && confidence >= self.price
    }

    /// Counts a request; `hit` says whether it avoided an origin fetch.
    pub fn on_request(&mut self, hit: bool) {
        if self.window_requests >= WINDOW {
            self.close_window();
        }
        self.window_requests += 1;
        self.window_fetches += u32::from(!hit);
        if self.active() {
            let cap = self.credit_cap();
            let miss = if hit { 0.0 } else { 1.0 };
            self.credit = (self.credit + self.target - miss).clamp(-cap, cap);
        }
    }

    fn close_window(&mut self) {
        if self.active() {
            let rate = f64::from(self.window_fetches) / f64::from(self.window_requests);
            let unused = self.window_prefetches >= PRECISION_SAMPLE
                && f64::from(self.window_used)
                    < PRECISION_FLOOR * f64::from(self.window_prefetches);
            if rate > self.target || unused {
                self.price = (self.price * PRICE_STEP).min(PRICE_MAX);
            } else if rate < SET_POINT * self.target {
                self.price = (self.price / PRICE_STEP).max(PRICE_MIN);
            }
            // Look twice as deep as the deepest purchase, so the price, not the depth, is
            // what limits spending; if the depth itself was reached, double it.
            self.k = if self.window_deepest >= self.k {
                self.k * 2
            } else {
                2 * self.window_deepest
            }
            .clamp(DEPTH_MIN, K_MAX);
        }
        self.window_requests = 0;
        self.window_fetches = 0;
        self.window_deepest = 0;
        self.window_prefetches = 0;
        self.window_used = 0;
    }

    /// Counts the first use of a prefetched item by a request.
    pub fn on_prefetch_used(&mut self) {
        self.window_used = self.window_used.saturating_add(1);
    }

    /// Counts a prefetch fetch of the prediction at 0-based `rank`.
    pub fn on_prefetch(&mut self, rank: usize) {
        self.window_fetches = self.window_fetches.saturating_add(1);
        self.window_prefetches = self.window_prefetches.saturating_add(1);
        self.window_deepest = self.window_deepest.max(rank + 1);
        if self.active() {
            // An explicit EDGE.PREFETCH spends without asking: the debt is bounded like the
            // credit, so every state the controller reaches is one a reload restores.
            self.credit = (self.credit - 1.0).max(-self.credit_cap());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_price_rises_when_over_budget_and_falls_when_under() {
        let mut b = Budget::new(1.0, 3);
        // A window where every request misses and prefetches: 2 fetches/request.
        for _ in 0..=WINDOW {
            b.on_request(false);
            b.on_prefetch(0);
        }
        assert!((b.price() - PRICE_START * PRICE_STEP).abs() < 1e-12);
        // A window of pure hits: 0 fetches/request, so the price falls.
        let mut b = Budget::new(1.0, 3);
        for _ in 0..=WINDOW {
            b.on_request(true);
        }
        assert!((b.price() - PRICE_START / PRICE_STEP).abs() < 1e-12);
        assert!(!Budget::default().active());
        assert_eq!(Budget::default().depth(), 5);
    }

    #[test]
    fn unused_prefetches_raise_the_price_even_under_budget() {
        let window = |used_every: u32| {
            let mut b = Budget::new(5.0, 3);
            for i in 0..=WINDOW {
                b.on_request(i % 2 == 0);
                b.on_prefetch(0);
                if i % used_every == 0 {
                    b.on_prefetch_used();
                }
            }
            b.price()
        };
        // 1.5 fetches per request against a budget of 5: under budget either way.
        assert!(window(10) > PRICE_START, "10 % used: the price rises");
        assert!(window(2) < PRICE_START, "50 % used: the price falls");
    }

    #[test]
    fn credit_holds_fetches_within_the_budget() {
        let mut b = Budget::new(1.0, 3);
        let (mut requests, mut fetches) = (0u32, 0u32);
        for i in 0..10_000u32 {
            // Every third request misses; the rest of the budget goes to prefetches.
            let hit = i % 3 != 0;
            b.on_request(hit);
            requests += 1;
            fetches += u32::from(!hit);
            for rank in 0..5 {
                if b.affordable(rank, 1.0) {
                    b.on_prefetch(rank);
                    fetches += 1;
                }
            }
        }
        let rate = f64::from(fetches) / f64::from(requests);
        assert!(rate <= 1.0 + 1e-3, "rate {rate}");
        assert!(rate > 0.99, "the budget is spent: rate {rate}");
    }

    #[test]
    fn low_confidence_and_deep_ranks_are_not_bought() {
        let mut b = Budget::new(1.0, 3);
        b.on_request(true);
        assert!(b.affordable(0, 0.5));
        assert!(!b.affordable(0, PRICE_START / 2.0), "below the price");
        assert!(!b.affordable(DEPTH_MIN, 0.5), "beyond the depth");
        b.on_prefetch(0);
        assert!(!b.affordable(0, 0.5), "no credit left");
    }

    #[test]
    fn the_depth_follows_the_deepest_purchase() {
        let mut b = Budget::new(5.0, 3);
        let window = |b: &mut Budget, rank: usize| {
            for _ in 0..WINDOW {
                b.on_request(true);
                b.on_prefetch(rank);
            }
        };
        window(&mut b, DEPTH_MIN - 1);
        b.on_request(true); // closes the window
        assert_eq!(b.depth(), 2 * DEPTH_MIN, "the bound was reached: doubled");
        b.on_prefetch(2);
        window(&mut b, 2);
        b.on_request(true);
        assert_eq!(
            b.depth(),
            DEPTH_MIN,
            "shallow purchases: back to the minimum"
        );
    }

    #[test]
    fn confidence_is_a_share_of_the_top_scores() {
        let c: Vec<f64> = confidence(&[3.0, 1.0, 0.0]).collect();
        assert_eq!(c, [0.75, 0.25, 0.0]);
        assert!(confidence(&[0.0, 0.0]).all(|q| q == 0.0));
    }

    #[test]
    fn parts_round_trip() {
        let mut b = Budget::new(2.0, 3);
        for _ in 0..=WINDOW {
            b.on_request(false);
        }
        assert_eq!(Budget::from_parts(b.parts()).parts(), b.parts());
    }

    /// Every state the controller reaches is one a reload restores as it was: explicit
    /// prefetches (which do not ask the controller) overdraw the credit only to its bound.
    #[test]
    fn every_reachable_state_survives_its_parts() {
        let mut x = 0x853c_49e6_748f_ea9bu64;
        for target in [0.5, 1.0, 2.5] {
            let mut b = Budget::new(target, 5);
            for _ in 0..5000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                match x % 5 {
                    0 => b.on_request(x & 16 == 0),
                    1 => b.on_prefetch_used(),
                    _ => b.on_prefetch((x >> 8) as usize % 20),
                }
                assert_eq!(Budget::from_parts(b.parts()), b);
            }
            assert!(b.credit() >= -b.credit_cap());
        }
    }
}
