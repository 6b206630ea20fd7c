//! Counters the INFO section reports. All are monotonic (Prometheus counters) unless named
//! as a gauge, and cheap enough to bump on every command.

use std::collections::BTreeMap;

use crate::wire::bump;

/// Upper bounds of the prediction-latency buckets, in microseconds. Fixed, so that a
/// Prometheus histogram built from them aggregates across edges.
pub const LATENCY_BUCKETS_US: [u64; 12] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000];

/// Distinct device names counted before the rest fold into [`OTHER_DEVICE`]: a client
/// sending random device names must not grow INFO or memory.
pub const MAX_DEVICES: usize = 32;

/// The bucket that absorbs devices past [`MAX_DEVICES`].
pub const OTHER_DEVICE: &str = "other";

/// A fixed-bucket latency histogram.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// Non-cumulative counts per bucket; the last one is +Inf.
    counts: [u64; LATENCY_BUCKETS_US.len() + 1],
    sum_us: u64,
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn record(&mut self, us: u64) {
        let i = LATENCY_BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.counts[i] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// Cumulative counts per upper bound (`None` = +Inf), as Prometheus expects.
    pub fn cumulative(&self) -> Vec<(Option<u64>, u64)> {
        let mut acc = 0;
        let mut out = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            acc += c;
            out.push((LATENCY_BUCKETS_US.get(i).copied(), acc));
        }
        out
    }

    /// Observations recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Sum of all observations in µs.
    pub fn sum_us(&self) -> u64 {
        self.sum_us
    }
}

/// Engine-wide counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Views learned (EDGE.RECORD and EDGE.PLAY).
    pub records: u64,
    /// Views recognized as skips.
    pub skips: u64,
    /// Prediction lists served (EDGE.PREDICT, EDGE.PREFETCH, EDGE.PLAY).
    pub predictions: u64,
    /// Predictions answered from a user's memo (a subset of `predictions`).
    pub predict_memo_hits: u64,
    /// EDGE.PLAY requests.
    pub plays: u64,
    /// Users erased on request (EDGE.FORGET).
    pub forgets: u64,
    /// Views kept out of the node model by the privacy clip (`dp-clip`).
    pub dp_clipped: u64,
    /// Views per device, bounded by [`MAX_DEVICES`].
    pub device_views: BTreeMap<String, u64>,
    /// Time spent answering predictions.
    pub predict_latency: LatencyHistogram,
}

impl Stats {
    /// Counts a view from `device`.
    pub fn count_device(&mut self, device: &str) {
        if let Some(c) = self.device_views.get_mut(device) {
            bump(c);
        } else if self.device_views.len() < MAX_DEVICES {
            self.device_views.insert(device.to_owned(), 1);
        } else {
            bump(
                self.device_views
                    .entry(OTHER_DEVICE.to_owned())
                    .or_default(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_with_inf_bucket() {
        let mut h = LatencyHistogram::default();
        for us in [0, 1, 3, 7, 20_000] {
            h.record(us);
        }
        let c = h.cumulative();
        assert_eq!(c[0], (Some(1), 2));
        assert_eq!(c[2], (Some(5), 3));
        assert_eq!(c[3], (Some(10), 4));
        assert_eq!(*c.last().unwrap(), (None, 5));
        assert_eq!(h.count(), 5);
        assert_eq!(h.sum_us(), 20_011);
    }

    #[test]
    fn devices_are_bounded() {
        let mut s = Stats::default();
        for i in 0..100 {
            s.count_device(&format!("d{i}"));
        }
        s.count_device("d0");
        assert_eq!(s.device_views.len(), MAX_DEVICES + 1);
        assert_eq!(s.device_views["d0"], 2);
        assert_eq!(s.device_views[OTHER_DEVICE], 100 - MAX_DEVICES as u64);
    }
}
