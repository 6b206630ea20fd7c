//! The federator's copy of each edge's tables, kept current from its deltas, and their sum.
//!
//! An edge exports its rows in full or only those changed since the round the federator
//! acknowledged (see `edge_model::federation::export`); rows are replaced whole, so applying
//! the deltas in order rebuilds exactly the edge's full tables. Co-occurrence weights and
//! view counts are sufficient statistics, so the sum over edges of those tables is what one
//! node watching every edge's viewers would have learned.

use std::collections::HashMap;

use edge_model::federation::{Clock, LearnSettings, Update, UpdateItem, UpdateRow};
use edge_model::wire::MAX_COUNTER;

/// The federator's copy of one edge's full tables, kept current from its updates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EdgeTables {
    /// Views and popularity by item.
    pub items: HashMap<String, (u64, f64)>,
    /// Rows by source item: total and neighbour weights.
    pub rows: HashMap<String, (f32, HashMap<String, f32>)>,
    /// The last round received from the edge (the next export asks `SINCE` it).
    pub round: Option<u64>,
    /// The clocks of the edge's values.
    pub rows_clock: Clock,
    /// The clock of its popularities.
    pub items_clock: Clock,
    /// What the edge last reported learning under (`None` before version 2 exports).
    pub settings: Option<LearnSettings>,
}

impl EdgeTables {
    /// Applies an edge's update: a full one replaces everything, a delta replaces the rows
    /// and counts it carries.
    pub fn apply(&mut self, u: &Update) {
        if u.since.is_none() {
            self.items.clear();
            self.rows.clear();
        }
        for it in &u.items {
            self.items
                .insert(it.name.clone(), (it.views, it.popularity));
        }
        for r in &u.rows {
            self.rows.insert(
                r.from.clone(),
                (r.total, r.entries.iter().cloned().collect()),
            );
        }
        self.round = Some(u.round);
        self.rows_clock = u.rows_clock;
        self.items_clock = u.items_clock;
        self.settings = u.settings;
    }
}

/// The full sum of `tables`, as an update from `node` closing `round`. Entries and rows come
/// out sorted by name, so the same inputs always give the same bytes.
pub fn sum<'a>(tables: impl IntoIterator<Item = &'a EdgeTables>, node: &str, round: u64) -> Update {
    let tables: Vec<&EdgeTables> = tables.into_iter().collect();
    // One reference clock per kind: the latest landmark, so converted values stay small.
    let reference = |pick: fn(&EdgeTables) -> Clock| {
        tables
            .iter()
            .map(|t| pick(t))
            .max_by_key(|c| c.landmark_ms)
            .unwrap_or_default()
    };
    let rows_clock = reference(|t| t.rows_clock);
    let items_clock = reference(|t| t.items_clock);
    let mut items: HashMap<&str, (u64, f64)> = HashMap::new();
    let mut rows: HashMap<&str, (f32, HashMap<&str, f32>)> = HashMap::new();
    for t in &tables {
        let fi = t.items_clock.factor_to(items_clock);
        for (name, (v, p)) in &t.items {
            let e = items.entry(name).or_default();
            e.0 = e.0.saturating_add(*v).min(MAX_COUNTER);
            e.1 += p * fi;
        }
        let fr = t.rows_clock.factor_to(rows_clock) as f32;
        for (from, (total, entries)) in &t.rows {
            let row = rows.entry(from).or_default();
            row.0 += total * fr;
            for (to, w) in entries {
                *row.1.entry(to).or_default() += w * fr;
            }
        }
    }
    let mut items: Vec<UpdateItem> = items
        .into_iter()
        .map(|(n, (views, popularity))| UpdateItem {
            name: n.to_owned(),
            views,
            popularity,
        })
        .collect();
    items.sort_by(|a, b| a.name.cmp(&b.name));
    let mut rows: Vec<UpdateRow> = rows
        .into_iter()
        .map(|(from, (total, e))| {
            let mut entries: Vec<(String, f32)> =
                e.into_iter().map(|(n, w)| (n.to_owned(), w)).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            UpdateRow {
                from: from.to_owned(),
                total,
                entries,
            }
        })
        .collect();
    rows.sort_by(|a, b| a.from.cmp(&b.from));
    Update {
        node: node.to_owned(),
        round,
        since: None,
        rows_clock,
        items_clock,
        items,
        rows,
        settings: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_model::federation::{decode_update, encode_update};
    use edge_model::fixtures::{pairs, train};
    use edge_model::{UserState, View};

    #[test]
    fn federated_counts_equal_centralized_counts_exactly() {
        let mut central = train(1).remove(0);
        let mut edges = train(3);
        let mut tables: Vec<EdgeTables> = vec![EdgeTables::default(); 3];
        for (e, t) in edges.iter_mut().zip(&mut tables) {
            let u = decode_update(&encode_update(&e.export_update("edge", None))).unwrap();
            t.apply(&u);
        }
        for (i, edge) in edges.iter_mut().enumerate() {
            let others = sum(
                tables
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, t)| t),
                "fed",
                1,
            );
            let blob = encode_update(&others);
            let imported = edge.import_update(&decode_update(&blob).unwrap(), 0, blob.len());
            assert!(imported.applied);
            assert_eq!(pairs(edge), pairs(&mut central), "edge {i}");
            // Same evidence, same ranking: the blend with weights 1 is the centralized model.
            // (A probe viewer on clones, so the models under test stay as they are.)
            let (mut edge, mut all) = (edge.clone(), central.clone());
            let (mut u, mut u2) = (UserState::default(), UserState::default());
            let v = View {
                item: "S2E1",
                ts_ms: 10_000_000,
                duration_s: None,
                device: None,
            };
            edge.record(&mut u, &v);
            all.record(&mut u2, &v);
            let names =
                |p: Vec<edge_model::Prediction>| p.into_iter().map(|p| p.item).collect::<Vec<_>>();
            assert_eq!(
                names(edge.predict(Some(&u), 8, false)),
                names(all.predict(Some(&u2), 8, false)),
                "edge {i}"
            );
        }
    }

    #[test]
    fn deltas_carry_only_changed_rows_and_rebuild_the_same_tables() {
        let mut e = train(3).remove(0);
        let full = e.export_update("a", None);
        let mut t = EdgeTables::default();
        t.apply(&full);
        let quiet = e.export_update("a", Some(full.round));
        assert!(
            quiet.rows.is_empty() && quiet.items.is_empty(),
            "nothing changed"
        );
        let mut u = UserState::default();
        for (i, item) in ["S0E0", "S0E1"].iter().enumerate() {
            e.record(
                &mut u,
                &View {
                    item,
                    ts_ms: 99_000_000 + i as i64,
                    duration_s: None,
                    device: None,
                },
            );
        }
        let delta = e.export_update("a", Some(quiet.round));
        assert!(
            !delta.rows.is_empty() && delta.rows.len() < full.rows.len(),
            "{} of {}",
            delta.rows.len(),
            full.rows.len()
        );
        t.apply(&delta);
        let mut fresh = EdgeTables::default();
        fresh.apply(&e.export_update("a", None));
        assert_eq!(t.items, fresh.items);
        assert_eq!(t.rows, fresh.rows);
    }
}
