//! What an edge does with its peers' aggregate: kept apart from its own evidence, bounded
//! by its catalog, idempotent per round.

use super::{Clock, Packed, PackedItem};
use crate::catalog::ItemRef;
use crate::learn::{Entry, NodeModel, Row, Val};
use crate::wire::{MAX_COUNTER, MAX_WEIGHT};

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    /// False if the round had already been imported (nothing changed).
    pub applied: bool,
    /// Rows stored.
    pub rows: usize,
    /// Items whose peer counts were set.
    pub items: usize,
}

/// Merges `u`, an aggregate of peers, into `g.peers` (flushed). A full update replaces the
/// peers' tables; a delta replaces the rows and counts it carries. A round not newer than
/// the last one imported changes nothing.
///
/// Each distinct name is looked up in the catalog once, after the admission, and every
/// item, row and entry then finds its item by index (see [`crate::federation::Packed`]).
pub fn import(
    g: &mut NodeModel,
    u: &Packed,
    successors_max: usize,
    items_max: usize,
    now_ms: i64,
    bytes: usize,
) -> Imported {
    if g.peers.rounds > 0 && u.round <= g.peers.round {
        return Imported {
            applied: false,
            rows: 0,
            items: 0,
        };
    }
    if u.since.is_none() {
        g.peers.rows.clear();
        let slots: Vec<u32> = g.catalog.iter().map(|(r, _)| r.slot).collect();
        for slot in slots {
            set_peer_counts(g, slot, 0, 0.0);
        }
    }
    // A peer landmark past this node's present counts as the present; one past the
    // headroom of this node's clock moves that clock forward first, as a view at that time
    // would (a fresh edge thus adopts its peers' clock instead of scaling their counts by
    // 2^(years / half-life)). What is left scales imported values by at most 2^40.
    let present = g.last_ts_ms.max(now_ms);
    let items_clock = u.items_clock.capped(present);
    let rows_clock = u.rows_clock.capped(present);
    if items_clock.half_life_ms == g.pop_decay.half_life() {
        g.advance_items(items_clock.landmark_ms);
    }
    if rows_clock.half_life_ms == g.decay.half_life() {
        g.advance_rows(rows_clock.landmark_ms);
    }
    // With other settings than this edge's, the landmark cap alone keeps values finite.
    let finite = |f: f64| f.min(f64::MAX);
    let pop_norm = finite(items_clock.factor_to(Clock::of(&g.pop_decay)));
    let peer_popularity = |it: &PackedItem| (it.popularity * pop_norm).min(f64::from(MAX_WEIGHT));
    admit_peer_items(g, u, peer_popularity, items_max);
    // Every item the update may add is in the catalog now (or was not admitted): from here
    // on nothing is interned and nothing is evicted, so each name resolves once.
    let refs: Vec<Option<ItemRef>> = u.names.iter().map(|n| g.catalog.lookup(n)).collect();
    let item = |i: u32| refs.get(i as usize).copied().flatten();
    let mut items = 0;
    for it in &u.items {
        if let Some(r) = item(it.name) {
            set_peer_counts(g, r.slot, it.views, peer_popularity(it));
            items += 1;
        }
    }
    let norm = finite(rows_clock.factor_to(Clock::of(&g.decay)));
    let weight = |w: f32| (f64::from(w) * norm).min(f64::from(MAX_WEIGHT)) as f32;
    let mut rows = 0;
    for (k, row) in u.rows.iter().enumerate() {
        let Some(from) = item(row.from) else {
            continue;
        };
        let given = u.row_entries(k);
        // Sized for every entry the row carries: collecting through the filter would grow
        // the vector by reallocation (a tenth of an import's instructions).
        let mut entries: Vec<Entry> = Vec::with_capacity(given.len());
        entries.extend(given.iter().filter_map(|&(to, w)| {
            let item = item(to)?;
            Some(Entry {
                item,
                val: Val {
                    gen: item.gen,
                    count: weight(w),
                    error: 0.0,
                },
            })
        }));
        entries.sort_by(|a, b| b.val.count.total_cmp(&a.val.count));
        entries.truncate(successors_max);
        g.peers
            .rows
            .set_row(from, Row::from_parts(entries, weight(row.total), 0));
        rows += 1;
    }
    g.peers.views_total = g
        .catalog
        .iter()
        .fold(0u64, |n, (_, i)| n.saturating_add(i.peer_views))
        .min(MAX_COUNTER);
    g.rebuild_board();
    g.rebuild_peer_order();
    g.peers.round = u.round;
    crate::wire::bump(&mut g.peers.rounds);
    g.peers.last_import_ms = now_ms;
    g.peers.last_import_bytes = bytes as u64;
    Imported {
        applied: true,
        rows,
        items,
    }
}

/// Where a candidate for a peer-only slot comes from.
#[derive(Clone, Copy)]
enum Source {
    /// Already in the catalog, in this slot.
    Present(u32),
    /// New: the index of its name in the update's list of new names.
    New(usize),
}

/// Makes the catalog hold the peer-only items that matter most, within the peers' share of
/// `items_max` (flushed model, peer counts of a full update already cleared).
///
/// The share is whatever own items leave: `items_max` minus the items with own evidence
/// (see [`NodeModel::is_peer_only`]). Those are never evicted here, because an aggregate
/// describes other edges' viewers and a node that forgot its own viewers' items to make
/// room for them would serve them worse (every own row of an evicted item goes with it).
/// No fixed split of `items_max` is needed: a fresh edge may fill its catalog from peers,
/// and as its own viewers arrive learning takes slots back from peer items first (see
/// [`NodeModel::peer_order`]), so `items_max` stays the one bound on memory.
///
/// Within the share, the update's items and the peer-only items already held compete on
/// [`NodeModel::peer_importance`], with the update's counts where it carries them; names
/// only rows carry count as unseen. The ranking is done once per import, before interning,
/// so an aggregate naming millions of items keeps its most important ones instead of
/// cycling them through the catalog in blob order, and the work is linear in the update's
/// names plus the catalog (each distinct name looked up once), with memory of the same
/// order as the decoded update (which the server's bulk-length limit bounds).
fn admit_peer_items(
    g: &mut NodeModel,
    u: &Packed,
    peer_popularity: impl Fn(&PackedItem) -> f64,
    items_max: usize,
) {
    // Importance by name index, as this update will leave it (a repeated item: the last).
    let mut named: Vec<Option<(f64, u64)>> = vec![None; u.names.len()];
    for it in &u.items {
        named[it.name as usize] = Some((peer_popularity(it), it.views));
    }
    // Which of the update's names the catalog holds, and by slot, which name each is.
    let mut held = vec![false; u.names.len()];
    let mut name_at = vec![u32::MAX; g.catalog.slot_count()];
    for (i, n) in u.names.iter().enumerate() {
        if let Some(r) = g.catalog.lookup(n) {
            held[i] = true;
            name_at[r.slot as usize] = i as u32;
        }
    }
    let mut own = 0usize;
    let mut present: Vec<((f64, u64), u32)> = Vec::new();
    for (r, item) in g.catalog.iter() {
        if g.is_peer_only(r) {
            let key = named
                .get(name_at[r.slot as usize] as usize)
                .copied()
                .flatten()
                .unwrap_or_else(|| NodeModel::peer_importance(item));
            present.push((key, r.slot));
        } else {
            own += 1;
        }
    }
    drop(name_at);
    let mut queued = vec![false; u.names.len()];
    let mut new_names: Vec<u32> = Vec::new();
    let mut new_keys: Vec<(f64, u64)> = Vec::new();
    for i in u.references() {
        let k = i as usize;
        if held[k] || std::mem::replace(&mut queued[k], true) {
            continue;
        }
        new_names.push(i);
        new_keys.push(named[k].unwrap_or((0.0, 0)));
    }
    drop(queued);
    let share = items_max.max(1).saturating_sub(own);
    let admitted: Vec<u32> = if present.len() + new_names.len() <= share {
        new_names
    } else {
        let mut all: Vec<((f64, u64), Source)> = present
            .iter()
            .map(|&(k, slot)| (k, Source::Present(slot)))
            .chain(
                new_keys
                    .iter()
                    .enumerate()
                    .map(|(i, &k)| (k, Source::New(i))),
            )
            .collect();
        let name_of = |s: Source| -> &str {
            match s {
                Source::Present(slot) => g.catalog.at(slot).map_or("", |(_, i)| &*i.name),
                Source::New(i) => u.name(new_names[i]),
            }
        };
        // Most important first; on a tie an item already held stays (no churn), then by
        // name: a strict order (names are unique), so which items make the cut does not
        // depend on the blob's order, and a partition finds them in linear time.
        all.select_nth_unstable_by(share, |a, b| {
            b.0 .0
                .total_cmp(&a.0 .0)
                .then(b.0 .1.cmp(&a.0 .1))
                .then(matches!(b.1, Source::Present(_)).cmp(&matches!(a.1, Source::Present(_))))
                .then_with(|| name_of(a.1).cmp(name_of(b.1)))
        });
        let mut evict = Vec::new();
        let mut admitted = Vec::new();
        for (rank, &(_, src)) in all.iter().enumerate() {
            match (src, rank < share) {
                (Source::Present(slot), false) => evict.push(slot),
                (Source::New(i), true) => admitted.push(new_names[i]),
                _ => {}
            }
        }
        for slot in evict {
            g.catalog.evict(slot);
            g.forget_slot(slot);
        }
        admitted
    };
    for i in admitted {
        // Room was made above; the check only makes sure this never evicts. (A fingerprint
        // collision leaves the name untracked, as anywhere else.)
        if g.catalog.len() >= items_max {
            break;
        }
        let _ = g.catalog.intern(u.name(i), items_max);
    }
}

fn set_peer_counts(g: &mut NodeModel, slot: u32, views: u64, popularity: f64) {
    if let Some((r, _)) = g.catalog.at(slot) {
        if let Some(i) = g.catalog.get_mut(r) {
            i.peer_views = views;
            i.peer_popularity = popularity;
            i.ln_views = (1.0 + (i.views + views) as f32).ln();
        }
    }
}
