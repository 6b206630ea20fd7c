//! Federated learning between edges: what an edge exports, how a federator sums it, and how
//! an edge imports what its peers learned.
//!
//! Co-occurrence weights and view counts are sufficient statistics: the sum over edges of
//! what each learned from its own viewers is exactly what one node watching everyone would
//! have learned (each viewer's links stay within one edge). So federation sums counts,
//! exactly (FedAvg over count models is a sum), and never averages probabilities, which
//! would be biased whenever edges differ. Only these aggregates leave an edge; histories and
//! per-user tables never do.
//!
//! - [`export`]: an edge's rows and item counts, in full or only what changed since a round
//!   the federator acknowledged. Every row carries the epoch it last changed in, so a delta
//!   is exact, and rows are replaced whole (Space-Saving may drop entries, which a delta of
//!   increments could not express).
//! - [`EdgeTables`] and [`sum`]: the federator's view of each edge, kept current from
//!   deltas, and the sum over a set of edges.
//! - [`import`]: an aggregate of the *other* edges, stored apart from the edge's own
//!   evidence ([`crate::global::Peers`]); scoring blends the two with `weight-federated`.
//!   Imports are idempotent per round.
//!
//! Weights travel as they are stored (forward-decay values, see [`crate::decay`]) together
//! with the clock they are relative to ([`Clock`]); the federator converts every edge to one
//! reference clock before summing and each importer converts to its own. Stored values never
//! change between rescales, so a delta stays exact; an edge whose clock moved since the
//! acknowledged round sends everything.

use std::collections::HashMap;

use crate::catalog::ItemRef;
use crate::codec::{Reader, Writer, MAX_COUNTER, MAX_WEIGHT};
use crate::error::CodecError;
use crate::global::GlobalModel;
use crate::packed::{Packed, PackedItem};
use crate::transitions::{Entry, Row, Val};

pub use crate::packed::{decode_packed, decode_update, encode_packed, encode_update};

/// Current version of the update payload. Version 2 added the learning settings an edge
/// exported under ([`LearnSettings`]); version 1 blobs still decode, without them.
pub const UPDATE_VERSION: u16 = 2;

/// Longest node name carried in an update.
pub const MAX_NODE_LEN: usize = 256;

/// The decay clock values in an update are relative to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    /// Landmark (ms): a value `v` stands for weights `2^((t - landmark) / half_life)`.
    pub landmark_ms: i64,
    /// Half-life (ms); 0 means no decay (values are plain counts).
    pub half_life_ms: u64,
}

impl Clock {
    fn of(d: &crate::decay::Decay) -> Self {
        Clock {
            landmark_ms: d.landmark(),
            half_life_ms: d.half_life(),
        }
    }

    /// The factor turning a value on this clock into one on `to` (same half-life assumed:
    /// edges of one federation share their decay settings).
    pub fn factor_to(&self, to: Clock) -> f64 {
        if self.half_life_ms == 0 {
            return 1.0;
        }
        ((self.landmark_ms as f64 - to.landmark_ms as f64) / self.half_life_ms as f64).exp2()
    }

    /// This clock with its landmark no later than `present_ms`.
    ///
    /// A peer whose clock runs ahead (a skewed host, or views recorded with a future TS)
    /// would otherwise make an importer scale its counts by 2^(lead / half-life): past
    /// `f32` for a lead of a few hundred half-lives, and a node holding an infinite weight
    /// cannot reload its own RDB. Evidence from the future counts as if it were recent.
    fn capped(self, present_ms: i64) -> Clock {
        Clock {
            landmark_ms: self.landmark_ms.min(present_ms),
            ..self
        }
    }
}

/// The settings an edge's exported counts were learned under: they set how much one view
/// can change them (the differential-privacy sensitivity, see the federator's `dp`), so a
/// federator computes its noise from what each edge reports it does rather than assume
/// defaults, and refuses to sum edges that learn differently. The rows' half-life travels
/// in [`Update::rows_clock`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearnSettings {
    /// How views were linked (`learn-window`, `learn-decay`, `reverse-weight`,
    /// `simultaneous-ms`, the in-group factor, admission).
    pub learning: crate::config::Learning,
    /// `dp-clip`: views per viewer per export round that reached the counts (0: all).
    pub dp_clip: u32,
}

impl LearnSettings {
    /// What `c` learns under.
    pub fn of(c: &crate::config::Config) -> Self {
        LearnSettings {
            learning: c.learning,
            dp_clip: c.dp_clip,
        }
    }
}

/// One exported or aggregated model update.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// Who produced it (an edge's id, or the federator's).
    pub node: String,
    /// The round it closes (an edge's export epoch, or the federator's round).
    pub round: u64,
    /// `None` for a full table; `Some(r)` for only what changed after round `r`.
    pub since: Option<u64>,
    /// Clock of the row weights.
    pub rows_clock: Clock,
    /// Clock of the item popularities.
    pub items_clock: Clock,
    /// View counts and decayed popularity by item.
    pub items: Vec<UpdateItem>,
    /// Rows by source item: total weight and (neighbour, weight) pairs.
    pub rows: Vec<UpdateRow>,
    /// What an edge's export was learned under (`None`: an aggregate, or a version 1 blob).
    pub settings: Option<LearnSettings>,
}

/// One item's counts in an update.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateItem {
    /// Item id.
    pub name: String,
    /// Views, ever.
    pub views: u64,
    /// Decayed popularity, normalized to the exporter's latest view time.
    pub popularity: f64,
}

/// One row of an update.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateRow {
    /// Source item.
    pub from: String,
    /// Total weight offered to the row (the normalizer).
    pub total: f32,
    /// Neighbours and their (guaranteed) weights.
    pub entries: Vec<(String, f32)>,
}

/// Exports `g` (flushed) as node `node`: everything, or with `since`, the rows and items
/// changed after that round. Starts a new epoch, so the next delta starts here.
pub fn export(g: &mut GlobalModel, node: &str, since: Option<u64>) -> Update {
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
/// item, row and entry then finds its item by index (see [`crate::packed`]).
pub fn import(
    g: &mut GlobalModel,
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
    crate::codec::bump(&mut g.peers.rounds);
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
/// (see [`GlobalModel::is_peer_only`]). Those are never evicted here, because an aggregate
/// describes other edges' viewers and a node that forgot its own viewers' items to make
/// room for them would serve them worse (every own row of an evicted item goes with it).
/// No fixed split of `items_max` is needed: a fresh edge may fill its catalog from peers,
/// and as its own viewers arrive learning takes slots back from peer items first (see
/// [`GlobalModel::peer_order`]), so `items_max` stays the one bound on memory.
///
/// Within the share, the update's items and the peer-only items already held compete on
/// [`GlobalModel::peer_importance`], with the update's counts where it carries them; names
/// only rows carry count as unseen. The ranking is done once per import, before interning,
/// so an aggregate naming millions of items keeps its most important ones instead of
/// cycling them through the catalog in blob order, and the work is linear in the update's
/// names plus the catalog (each distinct name looked up once), with memory of the same
/// order as the decoded update (which the server's bulk-length limit bounds).
fn admit_peer_items(
    g: &mut GlobalModel,
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
                .unwrap_or_else(|| GlobalModel::peer_importance(item));
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

fn set_peer_counts(g: &mut GlobalModel, slot: u32, views: u64, popularity: f64) {
    if let Some((r, _)) = g.catalog.at(slot) {
        if let Some(i) = g.catalog.get_mut(r) {
            i.peer_views = views;
            i.peer_popularity = popularity;
            i.ln_views = (1.0 + (i.views + views) as f32).ln();
        }
    }
}

/// A node's federation state, for EDGE.MODEL.INFO and INFO.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Rounds imported, ever.
    pub rounds: u64,
    /// The last federator round imported.
    pub last_round: u64,
    /// When it was imported (server clock, ms).
    pub last_import_ms: u64,
    /// Its size in bytes.
    pub last_import_bytes: u64,
    /// The round the next export closes.
    pub export_round: u64,
    /// This node's own non-empty rows.
    pub own_rows: u64,
    /// Own transitions (row entries).
    pub own_transitions: u64,
    /// Peers' non-empty rows.
    pub peer_rows: u64,
    /// Peers' transitions.
    pub peer_transitions: u64,
    /// Peers' views, summed over items.
    pub peer_views: u64,
    /// Items known (own and peers').
    pub items: u64,
}

/// Summarizes `g`'s federation state (flushed model).
pub fn summary(g: &GlobalModel) -> Summary {
    let rows = |t: &crate::transitions::Transitions| {
        (
            t.rows().iter().filter(|r| !r.is_empty()).count() as u64,
            t.len() as u64,
        )
    };
    let (own_rows, own_transitions) = rows(&g.transitions);
    let (peer_rows, peer_transitions) = rows(&g.peers.rows);
    Summary {
        rounds: g.peers.rounds,
        last_round: g.peers.round,
        last_import_ms: g.peers.last_import_ms.max(0) as u64,
        last_import_bytes: g.peers.last_import_bytes,
        export_round: u64::from(g.transitions.epoch()),
        own_rows,
        own_transitions,
        peer_rows,
        peer_transitions,
        peer_views: g.peers.views_total,
        items: g.catalog.len() as u64,
    }
}

impl Summary {
    /// (name, value) pairs in reply order.
    pub fn fields(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("rounds_imported", self.rounds),
            ("last_import_round", self.last_round),
            ("last_import_ms", self.last_import_ms),
            ("last_import_bytes", self.last_import_bytes),
            ("export_round", self.export_round),
            ("own_rows", self.own_rows),
            ("own_transitions", self.own_transitions),
            ("peer_rows", self.peer_rows),
            ("peer_transitions", self.peer_transitions),
            ("peer_views", self.peer_views),
            ("items", self.items),
        ]
    }
}

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

/// Reads [`LearnSettings`], refusing any an edge could not run under (the same checks as
/// its configuration's).
pub(crate) fn read_settings(r: &mut Reader<'_>) -> Result<LearnSettings, CodecError> {
    let learning = crate::config::Learning {
        window: usize::try_from(r.varint()?).unwrap_or(usize::MAX),
        decay: r.f64()?,
        reverse: r.f64()?,
        simultaneous_ms: r.ivarint()?,
        group_inner: r.f64()?,
        admission: r.f64()?,
    };
    let dp_clip =
        u32::try_from(r.varint()?).map_err(|_| CodecError::Invalid("dp-clip overflow"))?;
    let c = crate::config::Config {
        learning,
        dp_clip,
        ..crate::config::Config::default()
    };
    c.validate()
        .map_err(|_| CodecError::Invalid("learning settings out of range"))?;
    Ok(LearnSettings { learning, dp_clip })
}

/// Writes [`LearnSettings`] as [`read_settings`] reads them, behind a presence flag.
pub(crate) fn write_settings(w: &mut Writer, settings: Option<&LearnSettings>) {
    match settings {
        None => w.u8(0),
        Some(s) => {
            w.u8(1);
            let l = &s.learning;
            w.varint(l.window as u64);
            w.f64(l.decay);
            w.f64(l.reverse);
            w.ivarint(l.simultaneous_ms);
            w.f64(l.group_inner);
            w.f64(l.admission);
            w.varint(u64::from(s.dp_clip));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::engine::{Engine, View};
    use crate::error::CodecError;
    use crate::user::UserState;

    /// Unit weights everywhere, so every count is an integer and sums are exact in `f32`.
    fn config() -> Config {
        let mut c = Config::default();
        c.learning.decay = 1.0;
        c.learning.reverse = 1.0;
        c.learning.group_inner = 1.0;
        c.learning.window = 3;
        c
    }

    /// 60 users in 3 regions watching series in order, with region-specific tastes.
    fn views() -> Vec<(usize, String, String, i64)> {
        let mut out = Vec::new();
        for u in 0..60usize {
            let region = u % 3;
            for step in 0..8i64 {
                let series = (u + step as usize / 4) % 5 + region;
                out.push((
                    region,
                    format!("U{u}"),
                    format!("S{series}E{}", step % 4),
                    (step * 60 + u as i64) * 1000,
                ));
            }
        }
        out.sort_by_key(|v| v.3);
        out
    }

    fn train(edges: usize) -> Vec<Engine> {
        let mut engines: Vec<Engine> = (0..edges).map(|_| Engine::new(config()).unwrap()).collect();
        let mut users: std::collections::HashMap<String, UserState> = Default::default();
        for (region, user, item, ts) in views() {
            let e = &mut engines[if edges == 1 { 0 } else { region }];
            let u = users.entry(user).or_default();
            e.record(
                u,
                &View {
                    item: &item,
                    ts_ms: ts,
                    duration_s: None,
                    device: None,
                },
            );
        }
        engines
    }

    /// Every (from, to) weight of own + peers' rows, by names.
    fn pairs(e: &mut Engine) -> std::collections::BTreeMap<(String, String), f32> {
        let g = e.global();
        let mut out = std::collections::BTreeMap::new();
        for t in [&g.transitions, &g.peers.rows] {
            for (slot, row) in t.rows().iter().enumerate() {
                let Some((_, from)) = g.catalog.at(slot as u32) else {
                    continue;
                };
                for en in row.entries() {
                    let to = &g.catalog.get(en.item).unwrap().name;
                    *out.entry((from.name.to_string(), to.to_string()))
                        .or_default() += en.val.guaranteed();
                }
            }
        }
        out
    }

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
            let names = |p: Vec<crate::scoring::Prediction>| {
                p.into_iter().map(|p| p.item).collect::<Vec<_>>()
            };
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

    #[test]
    fn imports_are_idempotent_per_round() {
        let mut a = train(3).remove(0);
        let mut b = train(3).remove(1);
        let u = a.export_update("a", None);
        assert!(b.import_update(&u, 1, 10).applied);
        let before = pairs(&mut b);
        let again = b.import_update(&u, 2, 10);
        assert!(!again.applied);
        assert_eq!(pairs(&mut b), before);
        assert_eq!(b.global().peers.rounds, 1);
    }

    /// A packed update spells out to the update it came from, its blob is the one
    /// `encode_update` writes, and a blob decoded packed re-encodes byte for byte.
    #[test]
    fn packing_keeps_the_update_and_its_blob() {
        let mut e = train(3).remove(0);
        let mut u = e.export_update("a", None);
        // A name repeated across items and rows, and an item listed twice.
        u.items.push(u.items[0].clone());
        u.rows[0].entries.push((u.items[0].name.clone(), 0.5));
        let p = crate::packed::Packed::pack(&u);
        assert!(p.names.len() < p.entries.len() + p.items.len() + p.rows.len());
        assert_eq!(p.unpack(), u);
        let blob = encode_update(&u);
        assert_eq!(decode_packed(&blob).unwrap(), p);
        assert_eq!(encode_packed(&decode_packed(&blob).unwrap()), blob);
        assert_eq!(decode_update(&blob).unwrap(), u);
    }

    /// What an import does depends on the update, not on the order of the blob's name
    /// table (names are resolved once, by index): a table in reverse order, and one with
    /// names no entry uses, leave the same node.
    #[test]
    fn an_import_does_not_depend_on_the_name_table_order() {
        let mut edges = train(3);
        let u = edges[1].export_update("b", None);
        let p = crate::packed::Packed::pack(&u);
        let n = p.names.len() as u32;
        let mut q = p.clone();
        q.names.reverse();
        q.names.push("unused".into());
        let flip = |i: u32| n - 1 - i;
        q.items.iter_mut().for_each(|i| i.name = flip(i.name));
        q.rows.iter_mut().for_each(|r| r.from = flip(r.from));
        q.entries.iter_mut().for_each(|e| e.0 = flip(e.0));
        assert_eq!(q.unpack(), u);
        let mut a = edges[0].clone();
        let mut b = edges[0].clone();
        assert!(a.import_packed(&p, 5, 1).applied);
        assert!(b.import_packed(&q, 5, 1).applied);
        assert_eq!(
            crate::codec::encode_node(&mut a),
            crate::codec::encode_node(&mut b)
        );
        assert_eq!(pairs(&mut a), pairs(&mut b));
        assert!(!pairs(&mut a).is_empty());
    }

    #[test]
    fn corrupt_updates_are_rejected() {
        let mut e = train(3).remove(0);
        let blob = encode_update(&e.export_update("a", None));
        for cut in 0..blob.len() {
            assert!(decode_update(&blob[..cut]).is_err());
        }
        for i in 0..blob.len() {
            let mut b = blob.clone();
            b[i] ^= 0x41;
            assert!(decode_update(&b).is_err() || i < 4, "byte {i}");
        }
        assert_eq!(decode_update(&blob).unwrap(), decode_update(&blob).unwrap());
    }

    /// An edge's export says what it learned under (so a federator can size its noise);
    /// a version 1 blob, from before it did, still decodes; settings no edge could run
    /// under are refused.
    #[test]
    fn exports_carry_their_learning_settings() {
        let mut e = Engine::new(Config {
            dp_clip: 7,
            learning: crate::config::Learning {
                window: 20,
                ..Config::default().learning
            },
            ..config()
        })
        .unwrap();
        let u = e.export_update("a", None);
        let s = u.settings.expect("an edge reports its settings");
        assert_eq!((s.learning.window, s.dp_clip), (20, 7));
        assert_eq!(decode_update(&encode_update(&u)).unwrap(), u);
        let mut w = Writer::frame(crate::codec::Kind::Update, 1);
        w.str("old");
        w.varint(3);
        w.u8(0);
        for _ in 0..2 {
            w.ivarint(0);
            w.varint(0);
        }
        for _ in 0..3 {
            w.varint(0);
        }
        let old = decode_update(&w.finish()).expect("version 1 decodes");
        assert_eq!((old.round, old.settings), (3, None));
        let mut bad = u.clone();
        bad.settings = Some(LearnSettings {
            learning: crate::config::Learning {
                window: 0,
                ..s.learning
            },
            ..s
        });
        assert_eq!(
            decode_update(&encode_update(&bad)),
            Err(CodecError::Invalid("learning settings out of range"))
        );
    }

    /// Re-encodes `e`'s node model and decodes it again: what a SAVE and a restart do.
    fn reloads(e: &mut Engine) -> Engine {
        let blob = crate::codec::encode_node(e);
        crate::codec::decode_node(&blob, e.config().clone()).expect("the node reloads")
    }

    fn update_blob(round: u64, views: u64) -> Vec<u8> {
        encode_update(&Update {
            node: "fed".into(),
            round,
            since: None,
            settings: None,
            rows_clock: Clock::default(),
            items_clock: Clock::default(),
            items: vec![UpdateItem {
                name: "X".into(),
                views,
                popularity: 1.0,
            }],
            rows: vec![],
        })
    }

    /// An aggregate claiming round 2^60 is refused (a round is an id, not a magnitude);
    /// one claiming 2^60 views is held to what a node can persist, and the node reloads.
    #[test]
    fn out_of_range_rounds_are_refused_and_views_saturate() {
        assert_eq!(
            decode_update(&update_blob(1 << 60, 1)),
            Err(CodecError::Invalid("round or id out of range"))
        );
        let mut e = train(3).remove(0);
        let u = decode_update(&update_blob(1, 1 << 60)).unwrap();
        assert_eq!(u.items[0].views, MAX_COUNTER);
        assert!(e.import_update(&u, 0, 1).applied);
        let mut again = reloads(&mut e);
        assert_eq!(
            crate::codec::encode_node(&mut again),
            crate::codec::encode_node(&mut e)
        );
    }

    fn edge_at(half_life_ms: u64, ts: i64) -> Engine {
        let mut c = config();
        c.half_life_ms = half_life_ms;
        c.popularity_half_life_ms = half_life_ms;
        let mut e = Engine::new(c).unwrap();
        let mut u = UserState::default();
        for (i, item) in ["A", "B", "C", "A", "B"].iter().enumerate() {
            let v = View {
                item,
                ts_ms: ts + i as i64,
                duration_s: None,
                device: None,
            };
            e.record(&mut u, &v);
        }
        e
    }

    /// A peer whose clock runs 200 half-lives ahead: imported counts stay finite (the
    /// importer does not scale them by 2^200), the node reloads, and its own evidence
    /// still counts.
    #[test]
    fn a_peer_clock_far_ahead_keeps_the_node_loadable() {
        let hour: u64 = 3_600_000;
        let now: i64 = 1_800_000_000_000;
        let mut near = edge_at(hour, now + hour as i64);
        let mut far = edge_at(hour, now + 200 * hour as i64);
        let u = far.export_update("far", None);
        assert!(near.import_update(&u, now, 1).applied);
        let g = near.global();
        assert!(g.catalog.iter().all(|(_, i)| i.peer_popularity.is_finite()
            && i.popularity > 0.0
            && i.peer_popularity > 0.0));
        for t in [&g.transitions, &g.peers.rows] {
            assert!(t.rows().iter().all(|r| r.total().is_finite()));
            assert!(t
                .rows()
                .iter()
                .flat_map(|r| r.entries())
                .all(|e| e.val.count.is_finite()));
        }
        let mut again = reloads(&mut near);
        assert_eq!(
            crate::codec::encode_node(&mut again),
            crate::codec::encode_node(&mut near)
        );
    }

    /// A fresh edge (no views of its own, clock at 0) adopts its peers' clock: their counts
    /// are not scaled by 2^(decades / half-life), and they survive its first own view.
    #[test]
    fn a_fresh_edge_adopts_its_peers_clock() {
        let day: u64 = 86_400_000;
        let now: i64 = 1_800_000_000_000;
        let mut peer = edge_at(7 * day, now);
        let mut fresh = Engine::new(peer.config().clone()).unwrap();
        assert!(
            fresh
                .import_update(&peer.export_update("p", None), now, 1)
                .applied
        );
        let mut u = UserState::default();
        let v = View {
            item: "Z",
            ts_ms: now + 10,
            duration_s: None,
            device: None,
        };
        fresh.record(&mut u, &v);
        let g = fresh.global();
        let a = g
            .catalog
            .lookup("A")
            .and_then(|r| g.catalog.get(r))
            .unwrap();
        assert!(a.peer_popularity > 1.0, "{}", a.peer_popularity);
        assert!(a.peer_popularity.is_finite());
        let mut again = reloads(&mut fresh);
        assert_eq!(
            crate::codec::encode_node(&mut again),
            crate::codec::encode_node(&mut fresh)
        );
    }
}

#[cfg(test)]
mod peer_bound_tests {
    use super::*;
    use crate::config::Config;
    use crate::engine::{Engine, View};
    use crate::user::UserState;

    const ITEMS_MAX: usize = 200;
    const OWN_ITEMS: usize = 120;
    const PEER_ITEMS: usize = 1000;

    /// An edge with a 200-item catalog whose 40 viewers watched 120 items of its own.
    fn own_edge() -> (Engine, Vec<UserState>) {
        let c = Config {
            items_max: ITEMS_MAX,
            ..Config::default()
        };
        let mut e = Engine::new(c).unwrap();
        let mut users = vec![UserState::default(); 40];
        for step in 0..30usize {
            for (u, user) in users.iter_mut().enumerate() {
                let item = format!("own{}", (u * 7 + step * step + step / 3) % OWN_ITEMS);
                let v = View {
                    item: &item,
                    ts_ms: (step * 100 + u) as i64 * 1000,
                    duration_s: None,
                    device: None,
                };
                e.record(user, &v);
            }
        }
        (e, users)
    }

    /// An aggregate naming 1000 items this edge never saw, with popularity growing with the
    /// index (below every own item's, so they do not take over the popularity fill), and
    /// rows chaining them. Each has 10 views, the mean of the edge's own items (1200 views
    /// over 120), so the popularity level the affinity damping measures against stays
    /// where it was: what is left to change the predictions is only what was evicted.
    fn peers_update(round: u64) -> Update {
        let name = |i: usize| format!("peer{i}");
        let pop = |i: usize| 0.5 * (i + 1) as f64 / PEER_ITEMS as f64;
        Update {
            node: "fed".into(),
            round,
            since: None,
            settings: None,
            rows_clock: Clock::default(),
            items_clock: Clock::default(),
            // Least important first: interning in blob order would keep the wrong ones.
            items: (0..PEER_ITEMS)
                .map(|i| UpdateItem {
                    name: name(i),
                    views: 10,
                    popularity: pop(i),
                })
                .collect(),
            rows: (0..PEER_ITEMS - 1)
                .map(|i| UpdateRow {
                    from: name(i),
                    total: 1.0,
                    entries: vec![(name(i + 1), 1.0)],
                })
                .collect(),
        }
    }

    /// Own items, own rows (from, to, weight by names) and a sample of predictions.
    type Snapshot = (
        Vec<String>,
        Vec<(String, String, u32)>,
        Vec<Vec<String>>,
        Summary,
    );

    fn snapshot(e: &mut Engine, users: &[UserState]) -> Snapshot {
        let g = e.global();
        let mut own: Vec<String> = g
            .catalog
            .iter()
            .filter(|(_, i)| i.views > 0)
            .map(|(_, i)| i.name.to_string())
            .collect();
        own.sort();
        let mut rows = Vec::new();
        for (slot, row) in g.transitions.rows().iter().enumerate() {
            let Some((_, from)) = g.catalog.at(slot as u32) else {
                continue;
            };
            for en in row.entries() {
                let to = g
                    .catalog
                    .get(en.item)
                    .expect("own rows point at live items");
                rows.push((
                    from.name.to_string(),
                    to.name.to_string(),
                    en.val.count.to_bits(),
                ));
            }
        }
        rows.sort();
        let summary = summary(g);
        let preds = users
            .iter()
            .step_by(3)
            .map(|u| {
                e.predict(Some(u), 5, false)
                    .into_iter()
                    .map(|p| p.item)
                    .collect()
            })
            .collect();
        (own, rows, preds, summary)
    }

    fn peer_only(e: &mut Engine) -> Vec<String> {
        let g = e.global();
        let mut v: Vec<String> = g
            .catalog
            .iter()
            .filter(|&(r, _)| g.is_peer_only(r))
            .map(|(_, i)| i.name.to_string())
            .collect();
        v.sort();
        v
    }

    /// The most important `n` of the aggregate's items, by name.
    fn top_peers(n: usize) -> Vec<String> {
        let mut v: Vec<String> = (PEER_ITEMS - n..PEER_ITEMS)
            .map(|i| format!("peer{i}"))
            .collect();
        v.sort();
        v
    }

    /// Issue 12, item 6: an aggregate naming far more items than the catalog holds keeps
    /// every own item and row, leaves the viewers' predictions as they were, and takes only
    /// what own items leave of `items-max`, keeping the peers' most important items.
    #[test]
    fn an_import_never_evicts_own_items() {
        let (mut e, users) = own_edge();
        let before = snapshot(&mut e, &users);
        assert_eq!(before.0.len(), OWN_ITEMS);
        assert_eq!(e.global().views_total, 1200);
        assert!(before.3.own_rows > 0 && before.3.own_transitions > 0);

        let out = e.import_update(&peers_update(1), 0, 1);
        assert!(out.applied);
        let after = snapshot(&mut e, &users);
        assert_eq!(after.0, before.0, "every own item survives");
        assert_eq!(
            after.1, before.1,
            "every own row survives, weight for weight"
        );
        assert_eq!(after.2, before.2, "predictions unchanged");
        assert_eq!(after.3.own_rows, before.3.own_rows);
        assert_eq!(after.3.own_transitions, before.3.own_transitions);

        let share = ITEMS_MAX - OWN_ITEMS;
        assert_eq!(out.items, share, "counts set for the admitted items only");
        assert_eq!(e.catalog().len(), ITEMS_MAX);
        assert_eq!(
            peer_only(&mut e),
            top_peers(share),
            "the most important ones"
        );
        // The chain of rows among the admitted items came along (the last one has no row).
        assert_eq!(after.3.peer_rows as usize, share - 1);

        // A second round with other counts reshuffles within the share, still never
        // touching own evidence.
        let mut u = peers_update(2);
        u.items.reverse();
        for (i, it) in u.items.iter_mut().enumerate() {
            it.popularity = 0.5 * (i + 1) as f64 / PEER_ITEMS as f64;
        }
        assert!(e.import_update(&u, 0, 1).applied);
        let again = snapshot(&mut e, &users);
        assert_eq!(again.1, before.1);
        assert_eq!(again.2, before.2);
        let want: Vec<String> = {
            let mut v: Vec<String> = (0..share).map(|i| format!("peer{i}")).collect();
            v.sort();
            v
        };
        assert_eq!(peer_only(&mut e), want);

        // The node saves and reloads with the same model, and the same eviction order.
        let blob = crate::codec::encode_node(&mut e);
        let mut back = crate::codec::decode_node(&blob, e.config().clone()).unwrap();
        assert_eq!(snapshot(&mut back, &users), again);
        assert_eq!(back.global().peer_order, e.global().peer_order);
    }

    /// Learning a new own item into a full catalog takes the slot of the least important
    /// peer-only item, not an own one; with no peer item left, the least popular own item.
    #[test]
    fn learning_evicts_peer_items_first_least_important_first() {
        let (mut e, _) = own_edge();
        e.import_update(&peers_update(1), 0, 1);
        let mut viewer = UserState::default();
        let share = ITEMS_MAX - OWN_ITEMS;
        for n in 0..share {
            let item = format!("fresh{n}");
            let v = View {
                item: &item,
                ts_ms: 10_000_000 + n as i64,
                duration_s: None,
                device: None,
            };
            e.record(&mut viewer, &v);
            assert_eq!(
                peer_only(&mut e),
                top_peers(share - n - 1),
                "after {} new items",
                n + 1
            );
            let g = e.global();
            let own = g.catalog.iter().filter(|(_, i)| i.views > 0).count();
            assert_eq!(own, OWN_ITEMS + n + 1, "no own item evicted");
        }
        let v = View {
            item: "one-more",
            ts_ms: 20_000_000,
            duration_s: None,
            device: None,
        };
        e.record(&mut viewer, &v);
        assert_eq!(e.catalog().len(), ITEMS_MAX);
        assert!(e.catalog().lookup("one-more").is_some());
    }

    /// Memory stays bounded by `items-max` whatever an aggregate names, and a delta that
    /// names only rows' items admits them by the counts already known.
    #[test]
    fn the_peers_rows_count_in_the_models_memory() {
        // model-memory-max bounds what the model holds; an import's rows are most of it.
        let (mut e, _) = own_edge();
        let before = e.global().memory_bytes();
        let mut u = peers_update(1);
        let names: Vec<String> = u.items.iter().map(|i| i.name.clone()).collect();
        for r in &mut u.rows {
            r.entries = names.iter().map(|n| (n.clone(), 1.0)).collect();
        }
        assert!(e.import_update(&u, 0, 1).applied);
        let g = e.global();
        let entries = g.peers.rows.len();
        assert!(
            entries > 100,
            "the update stored {entries} peer transitions"
        );
        assert!(
            g.memory_bytes() >= before + entries * std::mem::size_of::<Entry>(),
            "{} bytes after, {before} before, {entries} entries",
            g.memory_bytes()
        );
    }

    #[test]
    fn a_huge_aggregate_stays_within_items_max() {
        let (mut e, _) = own_edge();
        let mut u = peers_update(1);
        u.items = (0..200_000)
            .map(|i| UpdateItem {
                name: format!("flood{i}"),
                views: i % 7,
                popularity: (i % 1000) as f64,
            })
            .collect();
        assert!(e.import_update(&u, 0, 1).applied);
        assert_eq!(e.catalog().len(), ITEMS_MAX);
        let g = e.global();
        let own = g.catalog.iter().filter(|(_, i)| i.views > 0).count();
        assert_eq!(own, OWN_ITEMS);
        // Everything admitted has the top popularity and views (999 and up to 6).
        assert!(g
            .catalog
            .iter()
            .filter(|&(r, _)| g.is_peer_only(r))
            .all(|(_, i)| i.peer_popularity == 999.0));
    }
}
