//! Tables as flat vectors of named counts, for the aggregations that need per-coordinate
//! arithmetic: DP noise, secure-aggregation masks, and "the total minus my own".
//!
//! An [`EdgeTables`] is converted to a reference clock on the way in (so edges with
//! different decay landmarks add up), and an aggregate goes back to an [`Update`] with
//! negatives clamped to 0 and every row's total at least the sum of its entries (a noisy
//! total below its entries would make conditional probabilities exceed 1).

use std::collections::{BTreeMap, HashMap};

use crate::tables::EdgeTables;
use edge_model::federation::{Clock, Update, UpdateItem, UpdateRow};

/// One coordinate of the flattened tables (named on the wire between agents and the
/// aggregator, hence serde).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Key {
    /// An item's view count.
    Views(String),
    /// An item's decayed popularity.
    Popularity(String),
    /// A row's total weight.
    Total(String),
    /// The weight of `from → to`.
    Link(String, String),
}

/// Named counts. Sorted, so every party enumerates the same coordinates in the same order.
pub type Flat = BTreeMap<Key, f64>;

/// The clocks an aggregate is expressed on: the latest landmark of each kind among
/// `tables`, as [`edge_model::tables::sum`] chooses them.
pub fn reference_clocks<'a>(tables: impl IntoIterator<Item = &'a EdgeTables>) -> (Clock, Clock) {
    let mut rows = None::<Clock>;
    let mut items = None::<Clock>;
    for t in tables {
        if rows.is_none_or(|c| t.rows_clock.landmark_ms > c.landmark_ms) {
            rows = Some(t.rows_clock);
        }
        if items.is_none_or(|c| t.items_clock.landmark_ms > c.landmark_ms) {
            items = Some(t.items_clock);
        }
    }
    (rows.unwrap_or_default(), items.unwrap_or_default())
}

/// `t` as named counts on the clocks `(rows, items)`.
pub fn flatten(t: &EdgeTables, rows: Clock, items: Clock) -> Flat {
    let fi = t.items_clock.factor_to(items);
    let fr = t.rows_clock.factor_to(rows);
    let mut out = Flat::new();
    for (name, (v, p)) in &t.items {
        out.insert(Key::Views(name.clone()), *v as f64);
        out.insert(Key::Popularity(name.clone()), p * fi);
    }
    for (from, (total, entries)) in &t.rows {
        out.insert(Key::Total(from.clone()), f64::from(*total) * fr);
        for (to, w) in entries {
            out.insert(Key::Link(from.clone(), to.clone()), f64::from(*w) * fr);
        }
    }
    out
}

/// `a += sign · b`, coordinate by coordinate.
pub fn add(a: &mut Flat, b: &Flat, sign: f64) {
    for (k, v) in b {
        *a.entry(k.clone()).or_default() += sign * v;
    }
}

/// A row being rebuilt: its total and positive entries.
type RowAcc = (f64, Vec<(String, f32)>);

/// An aggregate as an update from `node` closing `round` (a full table): negative or zero
/// counts are dropped, views are rounded to whole views.
pub fn to_update(f: &Flat, node: &str, round: u64, clocks: (Clock, Clock)) -> Update {
    let mut items: BTreeMap<&str, (u64, f64)> = BTreeMap::new();
    let mut rows: BTreeMap<&str, RowAcc> = BTreeMap::new();
    for (k, &v) in f {
        match k {
            Key::Views(n) => items.entry(n).or_default().0 = v.round().max(0.0) as u64,
            Key::Popularity(n) => items.entry(n).or_default().1 = v.max(0.0),
            Key::Total(n) => rows.entry(n).or_default().0 = v.max(0.0),
            Key::Link(from, to) => {
                if v > 0.0 {
                    rows.entry(from).or_default().1.push((to.clone(), v as f32));
                }
            }
        }
    }
    Update {
        node: node.to_owned(),
        round,
        since: None,
        settings: None,
        rows_clock: clocks.0,
        items_clock: clocks.1,
        items: items
            .into_iter()
            .filter(|(_, (v, p))| *v > 0 || *p > 0.0)
            .map(|(n, (views, popularity))| UpdateItem {
                name: n.to_owned(),
                views,
                popularity,
            })
            .collect(),
        rows: rows
            .into_iter()
            .filter(|(_, (_, e))| !e.is_empty())
            .map(|(from, (total, entries))| {
                let sum: f64 = entries.iter().map(|(_, w)| f64::from(*w)).sum();
                UpdateRow {
                    from: from.to_owned(),
                    total: total.max(sum) as f32,
                    entries,
                }
            })
            .collect(),
    }
}

/// An update's counts as named counts (its own clocks), for comparing aggregates.
pub fn of_update(u: &Update) -> Flat {
    let mut t = EdgeTables::default();
    t.apply(u);
    flatten(&t, u.rows_clock, u.items_clock)
}

/// Largest coordinate-wise difference between two flats (missing counts as 0).
pub fn max_diff(a: &Flat, b: &Flat) -> f64 {
    let mut keys: HashMap<&Key, ()> = a.keys().map(|k| (k, ())).collect();
    keys.extend(b.keys().map(|k| (k, ())));
    keys.keys()
        .map(|k| (a.get(*k).copied().unwrap_or(0.0) - b.get(*k).copied().unwrap_or(0.0)).abs())
        .fold(0.0, f64::max)
}
