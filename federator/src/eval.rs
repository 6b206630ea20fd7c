//! Does federation pay off? A real log split into regional edges, replayed
//! prequentially through in-process engines in three set-ups:
//!
//! - **local-only**: each edge learns only from its own viewers;
//! - **federated**: the same edges, with a federation round every `N` events (export,
//!   aggregate as the federator does, import: the same code path as the live federator,
//!   minus the network);
//! - **centralized**: one engine sees everyone.
//!
//! Protocol per event, as `loadgen eval`: predict the viewer's top 10 with seen items
//! excluded (HR@10, MRR@10), then play the view (cache lookup, learning, prefetch). Each
//! edge (and the centralized node) has a 100-item cache of unit-size items and the default
//! prefetch budget, so the hit ratio is per node at equal capacity.
//!
//! MovieLens 100K is split by the first digit of the viewer's zip code in `u.user`, a
//! natural non-IID split: with `E` edges, digit `d` goes to edge `d·E/10`, non-numeric zips
//! to the last (for 3 edges: 0–3, 4–6, 7–9 + non-numeric).

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use edge_model::federated::{decode_update, encode_update};
use edge_model::{CacheOutcome, Config, Engine, UserState, View};
use serde::Serialize;

use crate::aggregate::Aggregation;
use crate::dp::Dp;

/// One view of the log.
#[derive(Debug, Clone)]
pub struct Event {
    /// Viewer index.
    pub user: u32,
    /// Item id.
    pub item: String,
    /// Time (ms).
    pub ts_ms: i64,
}

/// A log split into edges.
#[derive(Debug, Clone, Default)]
pub struct Split {
    /// Events in time order (ties in file order).
    pub events: Vec<Event>,
    /// Edge of each viewer.
    pub edge_of: Vec<usize>,
    /// Number of edges.
    pub edges: usize,
}

impl Split {
    /// Events per edge.
    pub fn sizes(&self) -> Vec<usize> {
        let mut n = vec![0; self.edges];
        for e in &self.events {
            n[self.edge_of[e.user as usize]] += 1;
        }
        n
    }
}

/// The edge of a zip code among `edges`.
pub fn region(zip: &str, edges: usize) -> usize {
    match zip.chars().next().and_then(|c| c.to_digit(10)) {
        Some(d) => d as usize * edges / 10,
        None => edges - 1,
    }
}

/// Reads MovieLens 100K (`u.data`, `u.user`) from `dir`, split into `edges` regions.
pub fn read_movielens(dir: &Path, edges: usize) -> Result<Split, String> {
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{}: {e}", dir.join(f).display()))
    };
    let users = read("u.user")?;
    let mut zip: HashMap<String, String> = HashMap::new();
    for (n, line) in users.lines().enumerate() {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() < 5 {
            return Err(format!("u.user line {}: expected 5 fields", n + 1));
        }
        zip.insert(f[0].to_owned(), f[4].trim().to_owned());
    }
    let data = read("u.data")?;
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut edge_of = Vec::new();
    let mut events = Vec::new();
    for (n, line) in data.lines().enumerate() {
        let f: Vec<&str> = line.split('\t').collect();
        let bad = || {
            format!(
                "u.data line {}: expected user, item, rating, seconds",
                n + 1
            )
        };
        if f.len() < 4 {
            return Err(bad());
        }
        let ts: i64 = f[3].trim().parse().map_err(|_| bad())?;
        let next = ids.len() as u32;
        let user = *ids.entry(f[0].to_owned()).or_insert_with(|| {
            let z = zip.get(f[0]).map_or("", String::as_str);
            edge_of.push(region(z, edges));
            next
        });
        events.push(Event {
            user,
            item: f[1].to_owned(),
            ts_ms: ts * 1000,
        });
    }
    events.sort_by_key(|e| e.ts_ms);
    Ok(Split {
        events,
        edge_of,
        edges,
    })
}

/// How the federated set-up runs.
#[derive(Debug, Clone, Copy)]
pub struct FedSetup {
    /// Events between federation rounds.
    pub round_every: usize,
    /// (ε per round, views per viewer per round) when DP is on.
    pub dp: Option<(f64, u32)>,
    /// Secure aggregation.
    pub secure: bool,
}

/// The figures of one set-up.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    /// Set-up name.
    pub setup: String,
    /// Events replayed.
    pub events: u64,
    /// HR@10.
    pub hr10: f64,
    /// MRR@10.
    pub mrr10: f64,
    /// Cache hit ratio.
    pub hit_ratio: f64,
    /// HR@10 per edge (empty for centralized).
    pub hr10_by_edge: Vec<f64>,
    /// Federation rounds run.
    pub rounds: u64,
    /// Mean export bytes received per round (all edges).
    pub bytes_in_per_round: f64,
    /// Mean import bytes sent per round (all edges).
    pub bytes_out_per_round: f64,
    /// Events between rounds.
    pub round_every: usize,
    /// ε per round (DP only).
    pub epsilon_per_round: Option<f64>,
    /// Total ε by basic composition (DP only).
    pub epsilon_total: Option<f64>,
    /// Views the engines' per-round clip kept out of their exports (DP only): share of all
    /// views.
    pub clipped_share: Option<f64>,
    /// Seconds the replay took.
    pub seconds: f64,
}

fn config() -> Config {
    Config {
        cache_capacity_bytes: 100,
        default_item_size: 1,
        ..Config::default()
    }
}

/// Replays `split` with `nodes` engines (1: centralized) and, for `fed`, federation rounds.
pub fn replay(split: &Split, central: bool, fed: Option<FedSetup>) -> Result<Figures, String> {
    let started = Instant::now();
    let nodes = if central { 1 } else { split.edges };
    // Under DP the engines clip as a live edge does (`dp-clip`): clipped views still
    // reach the viewer's history and the edge's cache, never its export.
    let cfg = Config {
        dp_clip: fed.and_then(|f| f.dp).map_or(0, |d| d.1),
        ..config()
    };
    let mut engines: Vec<Engine> = (0..nodes)
        .map(|_| Engine::new(cfg.clone()).map_err(|e| format!("{e:?}")))
        .collect::<Result<_, _>>()?;
    let mut users: Vec<Option<UserState>> = vec![None; split.edge_of.len()];
    let mut agg = fed.map(|f| {
        let dp = f.dp.map(|(eps, clip)| Dp::new(eps, clip));
        Aggregation::new(nodes, 0, dp, f.secure, Some(42))
    });
    let (mut hits, mut hr, mut rr) = (0u64, vec![0u64; nodes], 0.0f64);
    let mut per_node = vec![0u64; nodes];
    let (mut bytes_in, mut bytes_out, mut rounds) = (0u64, 0u64, 0u64);
    for (t, e) in split.events.iter().enumerate() {
        let node = if central {
            0
        } else {
            split.edge_of[e.user as usize]
        };
        let engine = &mut engines[node];
        let slot = &mut users[e.user as usize];
        let preds = engine.predict(slot.as_ref(), 10, false);
        if let Some(r) = preds.iter().position(|p| p.item == e.item) {
            hr[node] += 1;
            rr += 1.0 / (r as f64 + 1.0);
        }
        per_node[node] += 1;
        let user = slot.get_or_insert_with(UserState::default);
        let view = View {
            item: &e.item,
            ts_ms: e.ts_ms,
            duration_s: None,
            device: None,
        };
        let out = engine.play(user, &view, None);
        hits += u64::from(out.outcome == CacheOutcome::Hit);
        if let (Some(f), Some(agg)) = (fed, agg.as_mut()) {
            if (t + 1) % f.round_every.max(1) == 0 {
                let (bi, bo) = federate(&mut engines, agg, e.ts_ms)?;
                bytes_in += bi;
                bytes_out += bo;
                rounds += 1;
            }
        }
    }
    let n = split.events.len() as u64;
    let per_round = |b: u64| {
        if rounds == 0 {
            0.0
        } else {
            b as f64 / rounds as f64
        }
    };
    let dp = agg.as_ref().and_then(|a| a.dp.as_ref());
    let clipped: u64 = engines.iter().map(|e| e.stats().dp_clipped).sum();
    Ok(Figures {
        setup: match (central, fed) {
            (true, _) => "centralized".into(),
            (false, None) => "local-only".into(),
            (false, Some(f)) => {
                let mut s = "federated".to_owned();
                if f.secure {
                    s += "+secure";
                }
                if let Some((eps, clip)) = f.dp {
                    s += &format!("+dp(eps={eps},clip={clip})");
                }
                s
            }
        },
        events: n,
        hr10: hr.iter().sum::<u64>() as f64 / n as f64,
        mrr10: rr / n as f64,
        hit_ratio: hits as f64 / n as f64,
        hr10_by_edge: if central {
            Vec::new()
        } else {
            hr.iter()
                .zip(&per_node)
                .map(|(h, n)| *h as f64 / (*n).max(1) as f64)
                .collect()
        },
        rounds,
        bytes_in_per_round: per_round(bytes_in),
        bytes_out_per_round: per_round(bytes_out),
        round_every: fed.map_or(0, |f| f.round_every),
        epsilon_per_round: dp.map(|d| d.epsilon),
        epsilon_total: dp.map(|d| d.total_epsilon()),
        clipped_share: fed.and_then(|f| f.dp).map(|_| clipped as f64 / n as f64),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// One in-process federation round: every edge exports (a delta since the last round
/// received), the aggregation runs, every edge imports its peers' aggregate. Returns the
/// bytes exported and imported.
pub fn federate(
    engines: &mut [Engine],
    agg: &mut Aggregation,
    now_ms: i64,
) -> Result<(u64, u64), String> {
    let (mut bytes_in, mut bytes_out) = (0u64, 0u64);
    for (i, e) in engines.iter_mut().enumerate() {
        let blob = encode_update(&e.export_update(&format!("edge{i}"), agg.tables[i].round));
        bytes_in += blob.len() as u64;
        agg.tables[i].apply(&decode_update(&blob).map_err(|e| e.to_string())?);
    }
    let all: Vec<usize> = (0..engines.len()).collect();
    let pushes = agg.pushes(&all).map_err(|e| e.to_string())?;
    for (i, u) in pushes.updates {
        let blob = encode_update(&u);
        bytes_out += blob.len() as u64;
        let u = decode_update(&blob).map_err(|e| e.to_string())?;
        engines[i].import_update(&u, now_ms, blob.len());
    }
    Ok((bytes_in, bytes_out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip_codes_split_into_three_regions() {
        assert_eq!(region("02139", 3), 0);
        assert_eq!(region("39042", 3), 0);
        assert_eq!(region("40206", 3), 1);
        assert_eq!(region("60402", 3), 1);
        assert_eq!(region("70808", 3), 2);
        assert_eq!(region("98101", 3), 2);
        assert_eq!(region("T8H1N", 3), 2);
        assert_eq!(region("", 3), 2);
        assert_eq!(region("55414", 5), 2);
    }

    /// Generated viewers in 3 regions with region-specific series: federation must beat
    /// local-only, and with DP off and unit weights it matches centralized.
    #[test]
    fn federation_beats_local_only_on_generated_data() {
        // Edge 0's viewers watch first; the others watch the same series later, so only
        // federation can tell their first viewers what comes next.
        let mut events = Vec::new();
        let users = 90u32;
        for u in 0..users {
            let series = (u / 3) % 10;
            let late = if u % 3 == 0 { 0 } else { 1_000_000 };
            for step in 0..12i64 {
                events.push(Event {
                    user: u,
                    item: format!("S{series}E{step}"),
                    ts_ms: (late + i64::from(u) * 100 + step) * 1000,
                });
            }
        }
        events.sort_by_key(|e| e.ts_ms);
        let split = Split {
            events,
            edge_of: (0..users).map(|u| (u % 3) as usize).collect(),
            edges: 3,
        };
        let local = replay(&split, false, None).unwrap();
        let fed = replay(
            &split,
            false,
            Some(FedSetup {
                round_every: 90,
                dp: None,
                secure: false,
            }),
        )
        .unwrap();
        let central = replay(&split, true, None).unwrap();
        assert!(fed.hr10 > local.hr10, "{} vs {}", fed.hr10, local.hr10);
        assert!(
            fed.hr10 >= 0.9 * central.hr10,
            "{} vs {}",
            fed.hr10,
            central.hr10
        );
        assert!(fed.rounds > 0 && fed.bytes_out_per_round > 0.0);
    }
}
