//! What travels between an edge and the federator: an update's rows, items and the clock
//! and learning settings they were measured under.

use crate::error::CodecError;
use crate::wire::{Reader, Writer};

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
    pub(super) fn of(d: &crate::decay::Decay) -> Self {
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
    pub(super) fn capped(self, present_ms: i64) -> Clock {
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
