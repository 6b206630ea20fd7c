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
//! Any log `loadgen eval` reads can be split ([`SplitBy`]). MovieLens 100K is split by the
//! first digit of the viewer's zip code in `u.user`, a natural non-IID split: with `E`
//! edges, digit `d` goes to edge `d·E/10`, non-numeric zips to the last (for 3 edges: 0–3,
//! 4–6, 7–9 + non-numeric); other logs by a column of their own or by a hash of the viewer.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use edge_model::federation::{decode_update, encode_update};
use edge_model::hash::fingerprint;
use edge_model::{CacheOutcome, Config, Engine, UserState, View};
use loadgen::logs::LogFlags;
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
    /// What each edge holds, for the report (`zip 0-3`, `hash 1`, a column's value).
    pub names: Vec<String>,
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

/// How a log's viewers are assigned to edges: a viewer is served by one edge, as a user key
/// lives on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitBy {
    /// MovieLens 100K's regions: the first digit of each viewer's zip code, from the
    /// `u.user` beside `u.data` (a natural non-IID split), into this many edges.
    Region(usize),
    /// A stable hash of the viewer id into this many edges (an IID split, as Redis
    /// Cluster's hash slots give).
    Hash(usize),
    /// A column (CSV) or field (JSONL) of the log: one edge per distinct value, each viewer
    /// on the edge its first line names; viewers whose lines name none share one more edge.
    Column(String),
}

impl std::str::FromStr for SplitBy {
    type Err = String;

    /// `region` (with `--edges`, applied by the caller) or `hash:N`.
    fn from_str(s: &str) -> Result<Self, String> {
        let edges = |n: &str| match n.parse::<usize>() {
            Ok(n) if (2..=1024).contains(&n) => Ok(n),
            _ => Err(format!("{n:?} is not a number of edges from 2 to 1024")),
        };
        match s.split_once(':') {
            None if s == "region" => Ok(SplitBy::Region(3)),
            Some(("region", n)) => Ok(SplitBy::Region(edges(n)?)),
            Some(("hash", n)) => Ok(SplitBy::Hash(edges(n)?)),
            _ => Err(format!(
                "unknown split {s:?}: use region[:N] (MovieLens zip codes), hash:N, or --split-col COLUMN"
            )),
        }
    }
}

/// The edge of a zip code among `edges`.
pub fn region(zip: &str, edges: usize) -> usize {
    match zip.chars().next().and_then(|c| c.to_digit(10)) {
        Some(d) => d as usize * edges / 10,
        None => edges - 1,
    }
}

/// Names of the regions [`region`] makes: the zip digits each edge takes.
fn region_names(edges: usize) -> Vec<String> {
    (0..edges)
        .map(|k| {
            let d: Vec<u32> = (0..10)
                .filter(|&d| region(&d.to_string(), edges) == k)
                .collect();
            let mut name = match (d.first(), d.last()) {
                (Some(a), Some(b)) if a != b => format!("zip {a}-{b}"),
                (Some(a), _) => format!("zip {a}"),
                _ => "zip -".to_owned(),
            };
            if k == edges - 1 {
                name += " + other";
            }
            name
        })
        .collect()
}

/// Reads `u.user`'s zip codes: viewer id → zip.
fn read_zips(path: &Path) -> Result<HashMap<String, String>, String> {
    let users = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "{}: {e} (a region split needs MovieLens 100K's u.user beside u.data)",
            path.display()
        )
    })?;
    let mut zip = HashMap::new();
    for (n, line) in users.lines().enumerate() {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() < 5 {
            return Err(format!(
                "{} line {}: expected 5 fields",
                path.display(),
                n + 1
            ));
        }
        zip.insert(f[0].to_owned(), f[4].trim().to_owned());
    }
    Ok(zip)
}

/// Reads a log as `loadgen eval` does (same formats, columns and order: time, ties in file
/// order) and splits its viewers into edges.
pub fn read_split(path: &Path, how: &LogFlags, by: &SplitBy) -> Result<Split, String> {
    let group_col = match by {
        SplitBy::Column(c) => Some(c.clone()),
        _ => None,
    };
    let log = how.read(path, group_col).map_err(|e| e.to_string())?;
    if log.events.is_empty() {
        return Err(format!("{}: no events to replay", path.display()));
    }
    let (edge_of, names): (Vec<usize>, Vec<String>) = match by {
        SplitBy::Region(edges) => {
            let zips = read_zips(&path.with_file_name("u.user"))?;
            let edge_of = log
                .users
                .iter()
                .map(|u| region(zips.get(u).map_or("", String::as_str), *edges))
                .collect();
            (edge_of, region_names(*edges))
        }
        SplitBy::Hash(edges) => {
            let edge_of = log
                .users
                .iter()
                .map(|u| (fingerprint(u.as_bytes()) % *edges as u64) as usize)
                .collect();
            (edge_of, (0..*edges).map(|k| format!("hash {k}")).collect())
        }
        SplitBy::Column(col) => {
            let mut names = log.groups.clone();
            let none = names.len();
            let edge_of: Vec<usize> = log
                .user_group
                .iter()
                .map(|g| g.map_or(none, |g| g as usize))
                .collect();
            if edge_of.contains(&none) {
                names.push(format!("(no {col})"));
            }
            (edge_of, names)
        }
    };
    if names.len() < 2 {
        return Err(format!(
            "{}: the split gives {} edge(s) ({names:?}); federation needs at least 2",
            path.display(),
            names.len()
        ));
    }
    let events = log
        .events
        .iter()
        .map(|e| Event {
            user: e.user,
            item: log.items[e.item as usize].clone(),
            ts_ms: e.ts_ms,
        })
        .collect();
    Ok(Split {
        events,
        edge_of,
        edges: names.len(),
        names,
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

    /// The log flags a command line gives.
    fn flags(args: &[&str]) -> LogFlags {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            how: LogFlags,
        }
        <Cli as clap::Parser>::parse_from(std::iter::once("eval").chain(args.iter().copied())).how
    }

    /// A scratch directory of this test's own.
    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("federator-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_log_splits_by_region_hash_or_column() {
        let dir = scratch("split");
        // Viewers 1 and 2 in zip 0xxxx, 3 in 5xxxx, 4 abroad; two views each.
        std::fs::write(
            dir.join("u.user"),
            "1|20|M|x|02139\n2|30|F|x|10001\n3|40|M|x|55414\n4|50|F|x|T8H1N\n",
        )
        .unwrap();
        let mut data = String::new();
        for t in 0..8 {
            data += &format!("{}\t{}\t4\t{}\n", t % 4 + 1, 100 + t, 900 - t);
        }
        std::fs::write(dir.join("u.data"), &data).unwrap();
        let ml = flags(&["--format", "movielens"]);
        let s = read_split(&dir.join("u.data"), &ml, &SplitBy::Region(3)).unwrap();
        assert_eq!(s.names, ["zip 0-3", "zip 4-6", "zip 7-9 + other"]);
        let by_id: Vec<(u32, usize)> = s
            .events
            .iter()
            .map(|e| (e.user, s.edge_of[e.user as usize]))
            .collect();
        assert_eq!(s.events.len(), 8);
        assert_eq!(s.events[0].ts_ms, 893_000, "time order");
        // users are numbered in file order: 1, 2, 3, 4
        assert_eq!(s.edge_of, [0, 0, 1, 2], "{by_id:?}");
        assert_eq!(s.sizes(), [4, 2, 2]);

        let h = read_split(&dir.join("u.data"), &ml, &SplitBy::Hash(2)).unwrap();
        let again = read_split(&dir.join("u.data"), &ml, &SplitBy::Hash(2)).unwrap();
        assert_eq!(h.edge_of, again.edge_of);
        let expect: Vec<usize> = ["1", "2", "3", "4"]
            .iter()
            .map(|u| (fingerprint(u.as_bytes()) % 2) as usize)
            .collect();
        assert_eq!(h.edge_of, expect);

        std::fs::write(
            dir.join("log.csv"),
            "userId,movieId,timestamp,site\nA,1,5,paris\nB,2,6,lyon\nA,3,7,lyon\nC,4,8,\n",
        )
        .unwrap();
        let csv = flags(&["--format", "csv"]);
        let c = read_split(&dir.join("log.csv"), &csv, &SplitBy::Column("site".into())).unwrap();
        assert_eq!(c.names, ["paris", "lyon", "(no site)"]);
        assert_eq!(c.edge_of, [0, 1, 2]);
        let one = read_split(&dir.join("u.data"), &ml, &SplitBy::Column("zip".into()));
        assert!(one.is_err());
        std::fs::remove_file(dir.join("u.user")).unwrap();
        let err = read_split(&dir.join("u.data"), &ml, &SplitBy::Region(3)).unwrap_err();
        assert!(err.contains("u.user"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn splits_parse_with_clear_errors() {
        assert_eq!("region".parse(), Ok(SplitBy::Region(3)));
        assert_eq!("hash:4".parse(), Ok(SplitBy::Hash(4)));
        assert!("hash:1"
            .parse::<SplitBy>()
            .unwrap_err()
            .contains("2 to 1024"));
        assert!("zip"
            .parse::<SplitBy>()
            .unwrap_err()
            .contains("--split-col"));
    }

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
            names: vec!["a".into(), "b".into(), "c".into()],
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
