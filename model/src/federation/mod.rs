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
//! - the federator (crate `federator`) keeps each edge's tables current from its deltas and
//!   sums them; this crate only defines what travels ([`Update`], packed as [`Packed`]).
//! - [`import`]: an aggregate of the *other* edges, stored apart from the edge's own
//!   evidence ([`crate::learn::node::Peers`]); scoring blends the two with `weight-federated`.
//!   Imports are idempotent per round.
//!
//! Weights travel as they are stored (forward-decay values, see [`crate::decay`]) together
//! with the clock they are relative to ([`Clock`]); the federator converts every edge to one
//! reference clock before summing and each importer converts to its own. Stored values never
//! change between rescales, so a delta stays exact; an edge whose clock moved since the
//! acknowledged round sends everything.

mod export;
mod import;
mod packed;
mod update;

pub use export::export;
pub use import::{import, Imported};
pub use packed::{
    decode_packed, decode_update, encode_packed, encode_update, Packed, PackedItem, PackedRow,
};
pub use update::{
    Clock, LearnSettings, Update, UpdateItem, UpdateRow, MAX_NODE_LEN, UPDATE_VERSION,
};

use crate::learn::NodeModel;
use crate::learn::Transitions;

#[cfg(test)]
mod tests;

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
pub fn summary(g: &NodeModel) -> Summary {
    let rows = |t: &Transitions| {
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
