//! What an edge sends: its own rows and item counts, in full or changed since a round.

use super::{Clock, Update, UpdateItem, UpdateRow};
use crate::learn::NodeModel;

/// Exports `g` (flushed) as node `node`: everything, or with `since`, the rows and items
/// changed after that round. Starts a new epoch, so the next delta starts here.
pub fn export(g: &mut NodeModel, node: &str, since: Option<u64>) -> Update {
    let round = u64::from(g.transitions.epoch());
    // A clock that moved rescaled every stored value: a delta would mix scales.
    let since = since.filter(|&s| u64::from(g.landmark_epoch) <= s);
    let changed = |stamp: u32| since.is_none_or(|s| u64::from(stamp) > s);
    let name = |slot: u32| g.catalog.at(slot).map(|(_, i)| i.name.to_string());
    let mut rows = Vec::new();
    for (slot, row) in g.transitions.rows().iter().enumerate() {
        if row.is_empty() || !changed(row.stamp()) {
            continue;
        }
        let Some(from) = name(slot as u32) else {
            continue;
        };
        let entries = row
            .entries()
            .filter(|e| g.catalog.is_live(e.item) && e.val.guaranteed() > 0.0)
            .filter_map(|e| Some((name(e.item.slot)?, e.val.guaranteed())))
            .collect();
        rows.push(UpdateRow {
            from,
            total: row.total(),
            entries,
        });
    }
    let items = g
        .catalog
        .iter()
        .filter(|(_, i)| i.views > 0 && changed(i.stamp))
        .map(|(_, i)| UpdateItem {
            name: i.name.to_string(),
            views: i.views,
            popularity: i.popularity,
        })
        .collect();
    let next = g.transitions.epoch().saturating_add(1);
    g.transitions.set_epoch(next);
    Update {
        node: node.to_owned(),
        round,
        since,
        rows_clock: Clock::of(&g.decay),
        items_clock: Clock::of(&g.pop_decay),
        items,
        rows,
        settings: None,
    }
}
