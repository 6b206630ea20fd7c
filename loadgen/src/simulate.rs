//! A synthetic viewing workload with real structure, so prediction has something to learn.
//!
//! - A catalog of titles, each a series (ordered episodes) or a film, with a genre and a
//!   Zipf-like popularity over titles; every episode or film is one item `C<n>`.
//! - Viewers with one or two favourite genres, a home device (a weighted enum: `fake` has no
//!   device generator), an activity level, a time zone and a `fake` profile (name, country).
//! - Sessions: a viewer resumes a series in progress or picks a new title by taste and
//!   popularity; series are binged (the next episode is likely), films are watched alone;
//!   some views are partial and some are skips, and a skip tends to end the session.
//! - A daily rhythm: sessions start mostly in the local evening.
//!
//! Regimes that stress a cache, each off by default (the default log is unchanged) and each
//! a `loadgen simulate` flag:
//!
//! - `--rewatch P` (heavy re-watching, live channels): a session starts, with probability P,
//!   by returning to one of the viewer's [`FAVOURITES`] (the first distinct items they
//!   watched), as viewers return to a few channels on a live-streaming service.
//! - `--flash P` (a flash crowd on a new release): a new series of [`FLASH_EPISODES`] items
//!   (named after the catalog) is released half-way through the log; a session starts on it
//!   with probability P, decaying with a half-life of one day after the release.
//! - `--shift P` (a shift of taste over the day): with probability P a new title is picked
//!   from the genre of the viewer's local three-hour slot rather than a favourite genre, so
//!   what is popular turns over in the course of a day.
//! - `--churn R` (a churning catalog): the popularity ranking rotates R times over the log,
//!   so yesterday's hits fade and new titles rise every day.
//!
//! Everything comes from one seeded generator and no hash-ordered iteration, so the same
//! seed gives byte-identical output.
//! Everything comes from one seeded generator and no hash-ordered iteration, so the same
//! seed gives byte-identical output.

use std::io::Write;
use std::path::Path;

use fake::faker::address::en::CountryName;
use fake::faker::name::en::Name;
use fake::Fake;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::logs::{Event, Log};
use crate::timefmt::{days_from_civil, format_ms};

/// Genres of the catalog.
pub const GENRES: [&str; 8] = [
    "drama",
    "comedy",
    "action",
    "scifi",
    "documentary",
    "kids",
    "thriller",
    "romance",
];

/// Device classes with their share of home devices.
pub const DEVICES: [(&str, u32); 5] = [
    ("TV", 45),
    ("Mobile", 25),
    ("Web", 15),
    ("Tablet", 10),
    ("Console", 5),
];

/// Workload parameters.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Viewers.
    pub users: usize,
    /// Items (episodes and films) in the catalog.
    pub items: usize,
    /// Views to generate.
    pub events: usize,
    /// Generator seed.
    pub seed: u64,
    /// Zipf exponent of title popularity.
    pub zipf: f64,
    /// Days the log spans: local days from 2025-04-01 in each viewer's time zone (UTC-8 to
    /// UTC+9), so the first UTC timestamps fall on 2025-03-31 (from 15:00).
    pub days: u32,
    /// Probability of watching the next episode after a full episode.
    pub binge: f64,
    /// Probability that a session returns to one of the viewer's favourites (0: off).
    pub rewatch: f64,
    /// Probability that a session starts on the new release at its launch (0: off).
    pub flash: f64,
    /// Probability that a new title comes from the genre of the hour (0: off).
    pub shift: f64,
    /// Rotations of the popularity ranking over the log (0: off).
    pub churn: f64,
}

/// Items a viewer returns to under `--rewatch`: the first this many distinct items watched.
pub const FAVOURITES: usize = 3;
/// Episodes of the new release under `--flash`.
pub const FLASH_EPISODES: u32 = 8;

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            users: 1000,
            items: 2000,
            events: 100_000,
            seed: 1,
            zipf: 0.9,
            days: 30,
            binge: 0.75,
            rewatch: 0.0,
            flash: 0.0,
            shift: 0.0,
            churn: 0.0,
        }
    }
}

/// One title of the catalog.
#[derive(Debug, Clone, Serialize)]
pub struct Title {
    /// Genre index into [`GENRES`].
    pub genre: usize,
    /// First item index.
    pub first: u32,
    /// Number of items (episodes; 1 for a film).
    pub len: u32,
    /// Typical running time of one item, in seconds.
    pub runtime_s: u32,
}

/// A viewer's profile.
#[derive(Debug, Clone, Serialize)]
pub struct Viewer {
    /// User id.
    pub id: String,
    /// Full name (fake).
    pub name: String,
    /// Country (fake).
    pub country: String,
    /// Home device.
    pub device: &'static str,
    /// Favourite genres.
    pub genres: Vec<&'static str>,
    /// UTC offset in hours.
    pub utc_offset_h: i32,
    /// Relative activity.
    pub activity: f64,
}

/// The generated workload.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Events in time order, as a log.
    pub log: Log,
    /// Viewer profiles, by user index.
    pub viewers: Vec<Viewer>,
    /// The catalog.
    pub titles: Vec<Title>,
}

fn weighted<T: Copy>(rng: &mut StdRng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|x| x.1).sum();
    let mut r = rng.random_range(0..total);
    for (x, w) in items {
        if r < *w {
            return *x;
        }
        r -= w;
    }
    items[items.len() - 1].0
}

/// Local hour of a session start: low at night, rising through the day, peaking 20–22 h.
const HOUR_WEIGHTS: [u32; 24] = [
    4, 2, 1, 1, 1, 1, 2, 3, 3, 3, 3, 4, 5, 5, 5, 6, 7, 9, 12, 15, 18, 18, 16, 9,
];

/// Generates the workload.
pub fn generate(o: &SimOptions) -> Result<Workload> {
    if o.users == 0 || o.items == 0 {
        return Err(Error::Usage(
            "--users and --items must be at least 1".into(),
        ));
    }
    for (name, p) in [
        ("--rewatch", o.rewatch),
        ("--flash", o.flash),
        ("--shift", o.shift),
    ] {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::Usage(format!("{name} {p}: a probability, 0 to 1")));
        }
    }
    if !(o.churn.is_finite() && o.churn >= 0.0) {
        return Err(Error::Usage(format!(
            "--churn {}: rotations of the ranking, 0 or more",
            o.churn
        )));
    }
    let mut rng = StdRng::seed_from_u64(o.seed);
    // Catalog: titles until `items` items; about 40% of titles are series.
    let mut titles = Vec::new();
    let mut next = 0u32;
    while (next as usize) < o.items {
        let series = rng.random_bool(0.4);
        let want = if series { rng.random_range(3..=12) } else { 1 };
        let len = want.min(o.items as u32 - next);
        titles.push(Title {
            genre: rng.random_range(0..GENRES.len()),
            first: next,
            len,
            runtime_s: if series {
                rng.random_range(22..=60) * 60
            } else {
                rng.random_range(80..=150) * 60
            },
        });
        next += len;
    }
    // Popularity rank of titles: a random permutation, drawn by Zipf.
    let mut rank: Vec<usize> = (0..titles.len()).collect();
    for i in (1..rank.len()).rev() {
        rank.swap(i, rng.random_range(0..=i));
    }
    let by_genre: Vec<Vec<usize>> = (0..GENRES.len())
        .map(|g| {
            rank.iter()
                .copied()
                .filter(|&t| titles[t].genre == g)
                .collect()
        })
        .collect();
    // The new release of `--flash`: a series after the catalog, never drawn by popularity.
    let flash_title = (o.flash > 0.0).then(|| {
        titles.push(Title {
            genre: rng.random_range(0..GENRES.len()),
            first: o.items as u32,
            len: FLASH_EPISODES,
            runtime_s: 45 * 60,
        });
        titles.len() - 1
    });
    let n_items = o.items + flash_title.map_or(0, |_| FLASH_EPISODES as usize);
    let item_title: Vec<(usize, u32)> = titles
        .iter()
        .enumerate()
        .flat_map(|(t, title)| (0..title.len).map(move |ep| (t, ep)))
        .collect();
    let zipf_all =
        Zipf::new(rank.len() as f64, o.zipf).map_err(|e| Error::Usage(format!("--zipf: {e}")))?;
    let zipf_genre: Vec<Option<Zipf<f64>>> = by_genre
        .iter()
        .map(|v| (!v.is_empty()).then(|| Zipf::new(v.len() as f64, o.zipf).expect("valid")))
        .collect();
    // Viewers.
    let width = o.users.to_string().len().max(3);
    let viewers: Vec<Viewer> = (0..o.users)
        .map(|u| {
            let g1 = rng.random_range(0..GENRES.len());
            let mut genres = vec![GENRES[g1]];
            if rng.random_bool(0.5) {
                let g2 = rng.random_range(0..GENRES.len());
                if g2 != g1 {
                    genres.push(GENRES[g2]);
                }
            }
            Viewer {
                id: format!("U{:0width$}", u + 1),
                name: Name().fake_with_rng(&mut rng),
                country: CountryName().fake_with_rng(&mut rng),
                device: weighted(&mut rng, &DEVICES),
                genres,
                utc_offset_h: rng.random_range(-8..=9),
                // Heavy-tailed activity: a few viewers watch a lot.
                activity: (-(1.0 - rng.random::<f64>()).ln()).powf(1.5) + 0.05,
            }
        })
        .collect();
    let cum: Vec<f64> = viewers
        .iter()
        .scan(0.0, |s, v| {
            *s += v.activity;
            Some(*s)
        })
        .collect();
    let total_activity = *cum.last().expect("users > 0");
    let genre_idx = |g: &str| GENRES.iter().position(|x| *x == g).expect("known genre");
    let mut in_progress: Vec<Option<(usize, u32)>> = vec![None; o.users];
    let mut seen_title: Vec<Vec<usize>> = vec![Vec::new(); o.users];
    let mut favourites: Vec<Vec<u32>> = vec![Vec::new(); o.users];
    let start_day = days_from_civil(2025, 4, 1);
    let release_s = (start_day + i64::from(o.days.max(1) / 2)) * 86_400;
    let mut raw: Vec<Event> = Vec::with_capacity(o.events);
    let device_names: Vec<String> = DEVICES.iter().map(|d| d.0.to_owned()).collect();
    while raw.len() < o.events {
        let x = rng.random::<f64>() * total_activity;
        let u = cum.partition_point(|&c| c <= x).min(o.users - 1);
        let v = &viewers[u];
        let day = start_day + i64::from(rng.random_range(0..o.days.max(1)));
        let hour = weighted(
            &mut rng,
            &HOUR_WEIGHTS
                .iter()
                .enumerate()
                .map(|(h, &w)| (h as i64, w))
                .collect::<Vec<_>>(),
        );
        let mut ts_s =
            (day * 86_400 + (hour - i64::from(v.utc_offset_h)) * 3600) + rng.random_range(0..3600);
        let device = if rng.random_bool(0.8) {
            v.device
        } else {
            weighted(&mut rng, &DEVICES)
        };
        let device_ix = DEVICES.iter().position(|d| d.0 == device).expect("known") as u16;
        // Pick what to watch: resume a series, or a new title by taste and popularity.
        let mut current = match in_progress[u] {
            Some(p) if rng.random_bool(0.6) => Some(p),
            _ => None,
        };
        if o.rewatch > 0.0 && !favourites[u].is_empty() && rng.random_bool(o.rewatch) {
            let fav = &favourites[u];
            current = Some(item_title[fav[rng.random_range(0..fav.len())] as usize]);
        }
        if let Some(t) = flash_title {
            let since = ts_s - release_s;
            if since >= 0 && rng.random_bool(o.flash * (-(since as f64) / 86_400.0).exp2()) {
                current = Some((t, 0));
            } else if since < 0 && current.is_some_and(|c| c.0 == t) {
                // Sessions are drawn in no time order: nothing of the release before it.
                current = None;
            }
        }
        // `--churn`: how far the popularity ranking has rotated by this session's day.
        let turn = o.churn * (day - start_day) as f64 / f64::from(o.days.max(1));
        let rotate = |z: f64, len: usize| (z as usize - 1 + (turn * len as f64) as usize) % len;
        loop {
            let (t, ep) = match current {
                Some(p) => p,
                None => {
                    let t = if rng.random_bool(0.75) {
                        let g = if o.shift > 0.0 && rng.random_bool(o.shift) {
                            (hour as usize / 3) % GENRES.len()
                        } else {
                            genre_idx(v.genres[rng.random_range(0..v.genres.len())])
                        };
                        match &zipf_genre[g] {
                            Some(z) => by_genre[g][rotate(z.sample(&mut rng), by_genre[g].len())],
                            None => rank[rotate(zipf_all.sample(&mut rng), rank.len())],
                        }
                    } else {
                        rank[rotate(zipf_all.sample(&mut rng), rank.len())]
                    };
                    (t, 0)
                }
            };
            let title = &titles[t];
            let item = title.first + ep;
            let r = rng.random::<f64>();
            let (watched, skip) = if r < 0.1 {
                (rng.random_range(30..=300), true)
            } else if r < 0.3 {
                (
                    (f64::from(title.runtime_s) * rng.random_range(0.3..0.9)) as u32,
                    false,
                )
            } else {
                (title.runtime_s + rng.random_range(0..60) - 30, false)
            };
            raw.push(Event {
                user: u as u32,
                item,
                ts_ms: ts_s * 1000,
                duration_s: Some(watched),
                device: Some(device_ix),
                size: None,
            });
            if !seen_title[u].contains(&t) {
                seen_title[u].push(t);
            }
            if favourites[u].len() < FAVOURITES && !favourites[u].contains(&item) {
                favourites[u].push(item);
            }
            ts_s += i64::from(watched) + rng.random_range(5..120);
            let has_next = ep + 1 < title.len;
            in_progress[u] = if has_next && !skip {
                Some((t, ep + 1))
            } else {
                None
            };
            if raw.len() >= o.events {
                break;
            }
            let go_on = if skip {
                rng.random_bool(0.2)
            } else if has_next {
                rng.random_bool(o.binge)
            } else {
                rng.random_bool(0.3)
            };
            if !go_on {
                break;
            }
            current = if has_next && !skip {
                Some((t, ep + 1))
            } else {
                None
            };
        }
    }
    raw.sort_by_key(|e| e.ts_ms);
    let log = Log {
        events: raw,
        users: viewers.iter().map(|v| v.id.clone()).collect(),
        items: (0..n_items).map(|i| format!("C{}", i + 1)).collect(),
        devices: device_names,
        ..Log::default()
    };
    Ok(Workload {
        log,
        viewers,
        titles,
    })
}

/// One line of the seed schema.
#[derive(Serialize)]
struct Line<'a> {
    user_id: &'a str,
    device: Option<&'a str>,
    content_id: &'a str,
    duration: Option<u32>,
    timestamp: String,
}

/// Writes a log as JSON lines in the seed schema.
pub fn write_jsonl(log: &Log, path: &Path) -> Result<()> {
    let f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = std::io::BufWriter::new(f);
    for e in &log.events {
        let line = Line {
            user_id: &log.users[e.user as usize],
            device: log.device(e),
            content_id: &log.items[e.item as usize],
            duration: e.duration_s,
            timestamp: format_ms(e.ts_ms),
        };
        serde_json::to_writer(&mut w, &line).map_err(|e| Error::io(path, e.into()))?;
        w.write_all(b"\n").map_err(|e| Error::io(path, e))?;
    }
    w.flush().map_err(|e| Error::io(path, e))
}

/// What `simulate` reports.
#[derive(Debug, Serialize)]
pub struct SimReport {
    /// Events generated.
    pub events: usize,
    /// Viewers.
    pub users: usize,
    /// Items.
    pub items: usize,
    /// Titles that are series.
    pub series: usize,
    /// Titles that are films.
    pub films: usize,
    /// The seed.
    pub seed: u64,
    /// Events sent to the server, if any.
    pub sent: Option<u64>,
    /// A few viewer profiles, for a look at the population.
    pub sample_viewers: Vec<Viewer>,
}

impl SimReport {
    /// Summarizes a workload.
    pub fn new(w: &Workload, seed: u64, sent: Option<u64>) -> Self {
        let series = w.titles.iter().filter(|t| t.len > 1).count();
        SimReport {
            events: w.log.events.len(),
            users: w.viewers.len(),
            items: w.log.items.len(),
            series,
            films: w.titles.len() - series,
            seed,
            sent,
            sample_viewers: w.viewers.iter().take(5).cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_workload_and_binges_show() {
        let o = SimOptions {
            users: 50,
            items: 200,
            events: 3000,
            seed: 7,
            ..SimOptions::default()
        };
        let a = generate(&o).unwrap();
        let b = generate(&o).unwrap();
        assert_eq!(a.log.events, b.log.events);
        assert_eq!(a.viewers[3].name, b.viewers[3].name);
        assert_eq!(a.log.events.len(), 3000);
        assert!(a.log.events.windows(2).all(|w| w[0].ts_ms <= w[1].ts_ms));
        let c = generate(&SimOptions { seed: 8, ..o }).unwrap();
        assert_ne!(a.log.events, c.log.events);
        // Structure: a user's next item is often the next episode.
        let mut last = vec![None; 50];
        let mut next_ep = 0;
        for e in &a.log.events {
            if last[e.user as usize] == Some(e.item.wrapping_sub(1)) {
                next_ep += 1;
            }
            last[e.user as usize] = Some(e.item);
        }
        assert!(next_ep > 300, "only {next_ep} next-episode transitions");
    }

    #[test]
    fn the_log_starts_where_the_help_says() {
        // One local day, 2025-04-01, in zones UTC-8 to UTC+9: UTC times from 2025-03-31
        // 15:00 on, and the first of them before 2025-04-01 00:00 UTC.
        let o = SimOptions {
            users: 200,
            items: 100,
            events: 3000,
            days: 1,
            ..SimOptions::default()
        };
        let log = generate(&o).unwrap().log;
        let first = log.events[0].ts_ms;
        let day = days_from_civil(2025, 4, 1) * 86_400_000;
        assert!(first >= day - 9 * 3_600_000, "{}", format_ms(first));
        assert!(
            format_ms(first).starts_with("2025-03-31"),
            "{}",
            format_ms(first)
        );
    }

    /// Share of views that return to an item the viewer watched before.
    fn return_share(log: &Log) -> f64 {
        let mut seen = std::collections::HashSet::new();
        let back = log
            .events
            .iter()
            .filter(|e| !seen.insert((e.user, e.item)))
            .count();
        back as f64 / log.events.len() as f64
    }

    #[test]
    fn each_regime_shows_in_the_log() {
        let o = SimOptions {
            users: 100,
            items: 400,
            events: 6000,
            seed: 3,
            ..SimOptions::default()
        };
        let base = generate(&o).unwrap().log;
        let again = |p: SimOptions| generate(&p).unwrap().log;
        let rewatch = again(SimOptions {
            rewatch: 0.6,
            ..o.clone()
        });
        assert!(
            return_share(&rewatch) > return_share(&base) + 0.2,
            "returns {} vs {}",
            return_share(&rewatch),
            return_share(&base)
        );
        // The release: items after the catalog, none before the middle day, many after.
        let flash = again(SimOptions {
            flash: 0.5,
            ..o.clone()
        });
        assert_eq!(flash.items.len(), 400 + FLASH_EPISODES as usize);
        let release = (days_from_civil(2025, 4, 1) + 15) * 86_400_000;
        let new: Vec<&Event> = flash.events.iter().filter(|e| e.item >= 400).collect();
        assert!(new.iter().all(|e| e.ts_ms >= release));
        assert!(new.len() > 100, "{} views of the release", new.len());
        // Churn: the most viewed item of the first days is not that of the last days.
        let top = |log: &Log, first: bool| {
            let mut n = vec![0u32; log.items.len()];
            let k = log.events.len() / 5;
            let part = if first {
                &log.events[..k]
            } else {
                &log.events[log.events.len() - k..]
            };
            for e in part {
                n[e.item as usize] += 1;
            }
            (0..n.len())
                .max_by_key(|&i| (n[i], std::cmp::Reverse(i)))
                .unwrap()
        };
        let churn = again(SimOptions {
            churn: 1.0,
            ..o.clone()
        });
        assert_eq!(top(&base, true), top(&base, false));
        assert_ne!(top(&churn, true), top(&churn, false));
        // Shift: the genre of the hour takes a larger share of views than in the base log.
        let shift = again(SimOptions {
            shift: 1.0,
            ..o.clone()
        });
        assert_ne!(shift.events, base.events);
        assert!(generate(&SimOptions { flash: 1.5, ..o }).is_err());
    }
}
