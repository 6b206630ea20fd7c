//! One federation's aggregation state and the step every round runs: given the edges that
//! answered, what each of them is pushed.
//!
//! Counts are sufficient statistics, so the aggregate is a sum (exact FedAvg over count
//! models); probabilities are never averaged. Each edge is pushed the sum of the *other*
//! edges, which it imports into its separate peers' table.
//!
//! - Plain: the exact sum of the other edges' latest tables ([`tables::sum`]), including
//!   the last known tables of edges that did not answer this round, so a dead edge's
//!   evidence is not withdrawn from its peers.
//! - `--dp-epsilon`: the total is released with Laplace noise ([`crate::dp`]) and each edge
//!   gets the noisy total minus its own table, clamped at 0.
//! - `--secure`: the total comes from masked vectors of the answering edges only
//!   ([`crate::secure`]); each edge's agent subtracts its own table.

use crate::tables::{self, EdgeTables};
use edge_model::federation::Update;
use rand::SeedableRng;

use crate::agree::{self, Refusal};
use crate::dp::{Dp, LearnBound};
use crate::flat::{self, Flat};
use crate::secure::{self, Agent};

/// The node name of the federator's updates.
pub const FEDERATOR_NODE: &str = "federator";

/// A federation's state across rounds.
#[derive(Debug)]
pub struct Aggregation {
    /// The federator's copy of each edge's tables (kept current from full or delta exports).
    pub tables: Vec<EdgeTables>,
    /// The last federator round id pushed; every round increases it.
    pub round: u64,
    /// DP state, when on.
    pub dp: Option<Dp>,
    /// Edge agents, when secure aggregation is on.
    pub agents: Option<Vec<Agent>>,
    /// Edge names, for refusals (`edge0`, `edge1`… unless the caller names them).
    pub names: Vec<String>,
    rng: rand::rngs::StdRng,
}

/// Why a round pushed nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum RoundError {
    /// The contributing edges disagree on their settings, or do not qualify for DP: the
    /// round is skipped and logged; the next one tries again.
    Refused(Refusal),
    /// Secure aggregation failed.
    Secure(String),
}

impl std::fmt::Display for RoundError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RoundError::Refused(r) => write!(f, "round refused: {r}"),
            RoundError::Secure(e) => write!(f, "secure aggregation: {e}"),
        }
    }
}

/// What one aggregation step produced.
#[derive(Debug)]
pub struct Pushes {
    /// (edge index, the update it imports).
    pub updates: Vec<(usize, Update)>,
    /// ε spent by this round (0 without DP).
    pub epsilon: f64,
}

impl Aggregation {
    /// A federation of `edges` edges starting after round `round`; `seed` fixes noise and
    /// masks (tests and evaluation), `None` draws from the OS.
    pub fn new(edges: usize, round: u64, dp: Option<Dp>, secure: bool, seed: Option<u64>) -> Self {
        let mut rng = match seed {
            Some(s) => rand::rngs::StdRng::seed_from_u64(s),
            None => rand::make_rng(),
        };
        let agents = secure.then(|| secure::agents(edges, &mut rng));
        Aggregation {
            tables: vec![EdgeTables::default(); edges],
            round,
            dp,
            agents,
            names: (0..edges).map(|i| format!("edge{i}")).collect(),
            rng,
        }
    }

    /// The round's pushes for the edges in `answered` (which have just had their updates
    /// applied to [`Aggregation::tables`]).
    pub fn pushes(&mut self, answered: &[usize]) -> Result<Pushes, RoundError> {
        // Secure: only the answering edges can take part in masking this round.
        let contributors: Vec<usize> = match self.agents {
            Some(_) => answered.to_vec(),
            None => (0..self.tables.len())
                .filter(|&i| self.tables[i].round.is_some())
                .collect(),
        };
        let clip = self.dp.as_ref().map(|d| d.clip);
        let shared = agree::agreed(
            contributors
                .iter()
                .map(|&i| (self.names[i].as_str(), &self.tables[i])),
            clip,
        )
        .map_err(RoundError::Refused)?;
        if let Some(dp) = &mut self.dp {
            let s = shared.ok_or(RoundError::Refused(Refusal::Unreported(
                "(none contributed)".into(),
            )))?;
            dp.calibrate(s.dp_clip, LearnBound::of(&s.learning));
        }
        self.round += 1;
        let round = self.round;
        if self.dp.is_none() && self.agents.is_none() {
            let updates = answered
                .iter()
                .map(|&i| {
                    let others = self
                        .tables
                        .iter()
                        .enumerate()
                        .filter(|(j, t)| *j != i && t.round.is_some())
                        .map(|(_, t)| t);
                    (i, tables::sum(others, FEDERATOR_NODE, round))
                })
                .collect();
            return Ok(Pushes {
                updates,
                epsilon: 0.0,
            });
        }
        let clocks = flat::reference_clocks(contributors.iter().map(|&i| &self.tables[i]));
        let parts: Vec<(usize, Flat)> = contributors
            .iter()
            .map(|&i| (i, flat::flatten(&self.tables[i], clocks.0, clocks.1)))
            .collect();
        let total = match &self.agents {
            Some(agents) => {
                secure::secure_round(agents, &parts, round)
                    .map_err(RoundError::Secure)?
                    .0
            }
            None => {
                let mut t = Flat::new();
                for (_, f) in &parts {
                    flat::add(&mut t, f, 1.0);
                }
                t
            }
        };
        // Under DP: the standard deviation of the noise accumulated in the release.
        let (released, epsilon, noise) = match &mut self.dp {
            Some(dp) => {
                let r = dp.release(&total, &mut self.rng);
                (r, dp.epsilon, Some(dp.noise_std()))
            }
            None => (total, 0.0, None),
        };
        let updates = answered
            .iter()
            .map(|&i| {
                let mut others = released.clone();
                if let Some((_, own)) = parts.iter().find(|(j, _)| *j == i) {
                    flat::add(&mut others, own, -1.0);
                }
                // Under DP, counts within two standard deviations of the noise are dropped
                // rather than clamped: a clamp at 0 alone would bias every coordinate up.
                if let Some(std) = noise {
                    others.retain(|_, v| *v > 2.0 * std);
                    // What survives is a real pair, but its count is mostly noise: links
                    // are pushed in units of the noise's standard deviation (never scaled
                    // up), so the edge's own exact evidence outweighs them wherever it
                    // has any, and they fill in where it has none.
                    let c = (1.0 / std).min(1.0);
                    for (key, v) in others.iter_mut() {
                        if matches!(key, flat::Key::Link(..) | flat::Key::Total(_)) {
                            *v *= c;
                        }
                    }
                }
                (i, flat::to_update(&others, FEDERATOR_NODE, round, clocks))
            })
            .collect();
        Ok(Pushes { updates, epsilon })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_model::federation::{self, Clock};
    use rand::RngExt;

    /// Generated tables: `n` edges over a shared catalog, weights in 1/256 steps (so the
    /// fixed-point encoding is exact) or arbitrary.
    fn tables(n: usize, exact: bool, seed: u64) -> Vec<EdgeTables> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n)
            .map(|e| {
                let mut t = EdgeTables {
                    round: Some(1),
                    rows_clock: Clock::default(),
                    items_clock: Clock::default(),
                    ..EdgeTables::default()
                };
                for i in 0..40 {
                    if rng.random::<f64>() < 0.3 + 0.1 * e as f64 {
                        let pop = if exact {
                            f64::from(rng.random_range(0..5000u32)) / 256.0
                        } else {
                            rng.random::<f64>() * 20.0
                        };
                        t.items
                            .insert(format!("I{i}"), (rng.random_range(1..50u64), pop));
                    }
                }
                for i in 0..30 {
                    let mut entries = std::collections::HashMap::new();
                    for j in 0..40 {
                        if i != j && rng.random::<f64>() < 0.2 {
                            let w = if exact {
                                rng.random_range(1..4000u32) as f32 / 256.0
                            } else {
                                rng.random::<f32>() * 10.0
                            };
                            entries.insert(format!("I{j}"), w);
                        }
                    }
                    if !entries.is_empty() {
                        let total = entries.values().sum::<f32>() + 1.0;
                        t.rows.insert(format!("I{i}"), (total, entries));
                    }
                }
                t
            })
            .collect()
    }

    fn run(t: &[EdgeTables], secure: bool) -> Vec<(usize, Update)> {
        let mut a = Aggregation::new(t.len(), 0, None, secure, Some(3));
        a.tables = t.to_vec();
        let all: Vec<usize> = (0..t.len()).collect();
        a.pushes(&all).unwrap().updates
    }

    #[test]
    fn secure_aggregation_gives_the_plain_sum() {
        for (n, seed) in [(2, 1), (3, 2), (5, 3)] {
            let t = tables(n, true, seed);
            let plain = run(&t, false);
            let secure = run(&t, true);
            for ((i, p), (j, s)) in plain.iter().zip(&secure) {
                assert_eq!(i, j);
                assert_eq!(p.items, s.items, "{n} edges, edge {i}: items");
                let d = flat::max_diff(&flat::of_update(p), &flat::of_update(s));
                assert!(d < 1e-3, "{n} edges, edge {i}: differs by {d}");
            }
        }
        // Arbitrary weights: equal up to the fixed-point step.
        let t = tables(3, false, 9);
        for ((_, p), (_, s)) in run(&t, false).iter().zip(&run(&t, true)) {
            let d = flat::max_diff(&flat::of_update(p), &flat::of_update(s));
            assert!(d <= 3.0 / secure::SCALE, "{d}");
        }
        // Large counts (forward-decayed popularity) scale down instead of wrapping.
        let mut big = tables(3, true, 10);
        for t in &mut big {
            for v in t.items.values_mut() {
                v.1 *= 1e6;
            }
        }
        for ((_, p), (_, s)) in run(&big, false).iter().zip(&run(&big, true)) {
            for (a, b) in p.items.iter().zip(&s.items) {
                assert_eq!(a.views, b.views);
                assert!((a.popularity - b.popularity).abs() <= 1e-6 * a.popularity.max(1.0));
            }
        }
    }

    #[test]
    fn masked_vectors_hide_the_inputs_but_sum_exactly() {
        let t = tables(3, true, 4);
        let parts: Vec<(usize, Flat)> = t
            .iter()
            .enumerate()
            .map(|(i, t)| (i, flat::flatten(t, Clock::default(), Clock::default())))
            .collect();
        let index = secure::index_of(parts.iter().map(|(_, f)| f));
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let agents = secure::agents(3, &mut rng);
        let set = [0, 1, 2];
        let sc = secure::scales(parts.iter().map(|(_, f)| f), 3);
        let x0 = secure::encode(&parts[0].1, &index, &sc).unwrap();
        let m0 = agents[0].mask(&x0, &set, 7);
        // The masked vector is not the input (all but a negligible share of coordinates move).
        let same = x0.iter().zip(&m0).filter(|(a, b)| a == b).count();
        assert!(same * 100 < index.len(), "{same} of {}", index.len());
        let (sum, _) = secure::secure_round(&agents, &parts, 7).unwrap();
        let mut plain = Flat::new();
        for (_, f) in &parts {
            flat::add(&mut plain, f, 1.0);
        }
        assert!(flat::max_diff(&sum, &plain) < 1e-9);
        // A dropout: re-masking among the two that answered still sums exactly.
        let (sum2, _) = secure::secure_round(&agents, &parts[..2], 8).unwrap();
        let mut plain2 = Flat::new();
        for (_, f) in &parts[..2] {
            flat::add(&mut plain2, f, 1.0);
        }
        assert!(flat::max_diff(&sum2, &plain2) < 1e-9);
    }

    #[test]
    fn plain_pushes_keep_a_silent_edges_last_tables() {
        let t = tables(3, true, 6);
        let mut a = Aggregation::new(3, 10, None, false, None);
        a.tables = t.clone();
        let p = a.pushes(&[0, 1]).unwrap();
        assert_eq!(a.round, 11);
        let want = tables::sum([&t[1], &t[2]], FEDERATOR_NODE, 11);
        assert_eq!(p.updates[0], (0, want));
        assert_eq!(p.updates.len(), 2);
    }

    #[test]
    fn dp_noise_is_spent_per_round_and_counts_stay_non_negative() {
        let t = tables(3, true, 8);
        let mut a = Aggregation::new(3, 0, Some(Dp::new(1.0, 5)), false, Some(1));
        a.tables = t;
        // Edges that do not report their settings cannot be noised for: refused, nothing
        // spent.
        assert!(matches!(
            a.pushes(&[0, 1, 2]),
            Err(RoundError::Refused(Refusal::Unreported(_)))
        ));
        assert_eq!(a.dp.as_ref().unwrap().rounds, 0);
        let c = edge_model::Config {
            dp_clip: 5,
            ..edge_model::Config::default()
        };
        for t in &mut a.tables {
            t.settings = Some(federation::LearnSettings::of(&c));
        }
        for r in 1..=3 {
            let p = a.pushes(&[0, 1, 2]).unwrap();
            assert_eq!(p.epsilon, 1.0);
            let dp = a.dp.as_ref().unwrap();
            let bound = LearnBound::of(&c.learning);
            assert_eq!(dp.sensitivity, crate::dp::sensitivity(5, bound));
            assert_eq!(a.dp.as_ref().unwrap().total_epsilon(), r as f64);
            for (_, u) in &p.updates {
                assert!(u.items.iter().all(|i| i.popularity >= 0.0));
                for row in &u.rows {
                    let sum: f32 = row.entries.iter().map(|e| e.1).sum();
                    assert!(row.entries.iter().all(|e| e.1 > 0.0));
                    assert!(row.total >= sum * 0.999);
                }
                // A valid, decodable update.
                let blob = federation::encode_update(u);
                assert_eq!(&federation::decode_update(&blob).unwrap(), u);
            }
        }
    }
}
