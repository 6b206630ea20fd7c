//! An update as its blob carries it: every item name once, and items, rows and row
//! entries referring to names by index.
//!
//! [`crate::federation::Update`] spells every name out, which is convenient for the
//! federator and for tests but costs an allocation per row entry to decode and a hash
//! lookup per entry to import: for a 46 MB aggregate (50,000 rows of 128) that was 6.4
//! million string copies and 13 million catalog lookups, most of the 5 seconds the import
//! blocked the server. A [`Packed`] update is decoded without copying a name more than
//! once, its entries sit in one flat table, and an import resolves each distinct name
//! against the catalog once (see [`crate::federation::import`]).

use std::collections::HashMap;

use super::update::{read_settings, write_settings};
use super::{Clock, LearnSettings, Update, UpdateItem, UpdateRow, MAX_NODE_LEN, UPDATE_VERSION};
use crate::error::CodecError;
use crate::wire::{Kind, Reader, Writer, MAX_NAME_LEN, MAX_WEIGHT};

/// An update with its names stored once (see the module doc).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Packed {
    /// Who produced it.
    pub node: String,
    /// The round it closes.
    pub round: u64,
    /// `None` for a full table; `Some(r)` for only what changed after round `r`.
    pub since: Option<u64>,
    /// Clock of the row weights.
    pub rows_clock: Clock,
    /// Clock of the item popularities.
    pub items_clock: Clock,
    /// The learning settings the exporting edge ran under (`None` from a federator's
    /// aggregate, or a version-1 blob).
    pub settings: Option<LearnSettings>,
    /// Every name the update uses, each once (the blob's name table).
    pub names: Vec<String>,
    /// View counts and decayed popularity by item.
    pub items: Vec<PackedItem>,
    /// Rows by source item; each one's entries are a range of [`Packed::entries`].
    pub rows: Vec<PackedRow>,
    /// Every row's entries, row after row: (name index, weight).
    pub entries: Vec<(u32, f32)>,
}

/// One item's counts in a [`Packed`] update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PackedItem {
    /// Index of its name in [`Packed::names`].
    pub name: u32,
    /// Views, ever.
    pub views: u64,
    /// Decayed popularity, normalized to the exporter's latest view time.
    pub popularity: f64,
}

/// One row of a [`Packed`] update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PackedRow {
    /// Index of the source item's name.
    pub from: u32,
    /// Total weight offered to the row (the normalizer).
    pub total: f32,
    /// Where its entries end in [`Packed::entries`] (they start where the previous row's
    /// end).
    pub end: usize,
}

impl Packed {
    /// The entries of row `i` (name index, weight).
    pub fn row_entries(&self, i: usize) -> &[(u32, f32)] {
        let start = if i == 0 { 0 } else { self.rows[i - 1].end };
        &self.entries[start..self.rows[i].end]
    }

    /// The name behind an index (empty for one out of range, which decoding refuses).
    pub fn name(&self, i: u32) -> &str {
        self.names.get(i as usize).map_or("", String::as_str)
    }

    /// Every name reference in the order an import meets them: items, then each row's
    /// source and entries.
    pub fn references(&self) -> impl Iterator<Item = u32> + '_ {
        self.items
            .iter()
            .map(|i| i.name)
            .chain(self.rows.iter().enumerate().flat_map(|(i, r)| {
                std::iter::once(r.from).chain(self.row_entries(i).iter().map(|e| e.0))
            }))
    }

    /// Packs `u`: names numbered in the order they first appear (items, then rows), as
    /// [`encode_update`] writes them.
    pub fn pack(u: &Update) -> Packed {
        /// The index of `n`, numbering it if new.
        fn id<'a>(index: &mut HashMap<&'a str, u32>, names: &mut Vec<String>, n: &'a str) -> u32 {
            *index.entry(n).or_insert_with(|| {
                names.push(n.to_owned());
                (names.len() - 1) as u32
            })
        }
        let mut index: HashMap<&str, u32> = HashMap::new();
        let mut names: Vec<String> = Vec::new();
        let items = u
            .items
            .iter()
            .map(|i| PackedItem {
                name: id(&mut index, &mut names, &i.name),
                views: i.views,
                popularity: i.popularity,
            })
            .collect();
        let mut entries = Vec::new();
        let mut rows = Vec::with_capacity(u.rows.len());
        for r in &u.rows {
            let from = id(&mut index, &mut names, &r.from);
            for (n, w) in &r.entries {
                entries.push((id(&mut index, &mut names, n), *w));
            }
            rows.push(PackedRow {
                from,
                total: r.total,
                end: entries.len(),
            });
        }
        Packed {
            node: u.node.clone(),
            round: u.round,
            since: u.since,
            rows_clock: u.rows_clock,
            items_clock: u.items_clock,
            settings: u.settings,
            names,
            items,
            rows,
            entries,
        }
    }

    /// The update with every name spelled out.
    pub fn unpack(&self) -> Update {
        let name = |i: u32| self.name(i).to_owned();
        Update {
            node: self.node.clone(),
            round: self.round,
            since: self.since,
            rows_clock: self.rows_clock,
            items_clock: self.items_clock,
            settings: self.settings,
            items: self
                .items
                .iter()
                .map(|i| UpdateItem {
                    name: name(i.name),
                    views: i.views,
                    popularity: i.popularity,
                })
                .collect(),
            rows: self
                .rows
                .iter()
                .enumerate()
                .map(|(i, r)| UpdateRow {
                    from: name(r.from),
                    total: r.total,
                    entries: self
                        .row_entries(i)
                        .iter()
                        .map(|&(n, w)| (name(n), w))
                        .collect(),
                })
                .collect(),
        }
    }
}

/// Encodes an update (framed, checksummed; see [`crate::codec`]).
pub fn encode_update(u: &Update) -> Vec<u8> {
    encode_packed(&Packed::pack(u))
}

/// Encodes a packed update, its name table as it is.
pub fn encode_packed(p: &Packed) -> Vec<u8> {
    let mut w = Writer::frame(Kind::Update, UPDATE_VERSION);
    w.str(&p.node);
    w.varint(p.round);
    match p.since {
        None => w.u8(0),
        Some(s) => {
            w.u8(1);
            w.varint(s);
        }
    }
    for c in [p.rows_clock, p.items_clock] {
        w.ivarint(c.landmark_ms);
        w.varint(c.half_life_ms);
    }
    write_settings(&mut w, p.settings.as_ref());
    w.varint(p.names.len() as u64);
    for n in &p.names {
        w.str(n);
    }
    w.varint(p.items.len() as u64);
    for i in &p.items {
        w.varint(u64::from(i.name));
        w.varint(i.views);
        w.f64(i.popularity);
    }
    w.varint(p.rows.len() as u64);
    for (k, r) in p.rows.iter().enumerate() {
        w.varint(u64::from(r.from));
        w.f32(r.total);
        let entries = p.row_entries(k);
        w.varint(entries.len() as u64);
        for &(n, x) in entries {
            w.varint(u64::from(n));
            w.f32(x);
        }
    }
    w.finish()
}

/// Decodes and validates an update blob, every name spelled out.
pub fn decode_update(blob: &[u8]) -> Result<Update, CodecError> {
    decode_packed(blob).map(|p| p.unpack())
}

/// Decodes and validates an update blob: frame, names (non-empty, distinct), every index
/// in range, counts and weights in range. Allocates in proportion to the blob only.
pub fn decode_packed(blob: &[u8]) -> Result<Packed, CodecError> {
    let (mut r, version) = Reader::open(blob, Kind::Update, UPDATE_VERSION)?;
    let node = r.str(MAX_NODE_LEN)?.to_owned();
    let round = r.id()?;
    let since = match r.u8()? {
        0 => None,
        1 => Some(r.id()?),
        _ => return Err(CodecError::Invalid("bad delta flag")),
    };
    let rows_clock = Clock {
        landmark_ms: r.time()?,
        half_life_ms: r.counter()?,
    };
    let items_clock = Clock {
        landmark_ms: r.time()?,
        half_life_ms: r.counter()?,
    };
    let settings = match version {
        1 => None,
        _ => match r.u8()? {
            0 => None,
            1 => Some(read_settings(&mut r)?),
            _ => return Err(CodecError::Invalid("bad settings flag")),
        },
    };
    let n = r.count(1)?;
    if u32::try_from(n).is_err() {
        return Err(CodecError::Invalid("too many item names"));
    }
    let mut names = Vec::with_capacity(n);
    let mut unique = std::collections::HashSet::with_capacity(n);
    for _ in 0..n {
        let name = r.str(MAX_NAME_LEN)?;
        if name.is_empty() || !unique.insert(name) {
            return Err(CodecError::Invalid("empty or repeated item name"));
        }
        names.push(name.to_owned());
    }
    drop(unique);
    let name = |i: u64| -> Result<u32, CodecError> {
        if i < names.len() as u64 {
            Ok(i as u32)
        } else {
            Err(CodecError::Invalid("item index out of range"))
        }
    };
    let n = r.count(10)?;
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        let name = name(r.varint()?)?;
        let views = r.counter()?;
        let popularity = r.f64()?;
        if popularity < 0.0 {
            return Err(CodecError::Invalid("negative popularity"));
        }
        let popularity = popularity.min(f64::from(MAX_WEIGHT));
        items.push(PackedItem {
            name,
            views,
            popularity,
        });
    }
    let n = r.count(6)?;
    let mut rows = Vec::with_capacity(n);
    let mut entries = Vec::new();
    for _ in 0..n {
        let from = name(r.varint()?)?;
        let total = r.weight()?;
        let m = r.count(5)?;
        entries.reserve(m);
        for _ in 0..m {
            entries.push((name(r.varint()?)?, r.weight()?));
        }
        rows.push(PackedRow {
            from,
            total,
            end: entries.len(),
        });
    }
    r.end()?;
    Ok(Packed {
        node,
        round,
        since,
        rows_clock,
        items_clock,
        settings,
        names,
        items,
        rows,
        entries,
    })
}
