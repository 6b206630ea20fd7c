//! What a prediction gives and memoizes: the predicted items, a ranked list packed into one
//! buffer, and the last list served to a viewer.
//!
//! These sit below both the viewer's state ([`crate::user`], which carries its memo) and
//! scoring ([`crate::scoring`], which fills it), so neither depends on the other for them.

use std::cell::RefCell;

/// One predicted item.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The item id.
    pub item: String,
    /// Its score (comparable within one list only; 0 for popularity fill).
    pub score: f64,
}

/// A ranked list packed into one buffer: the count, then each item's name end and score,
/// then the names back to back. Serving a memoized list then reads a few contiguous lines
/// instead of chasing one heap string per item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RankedList {
    buf: Box<[u8]>,
}

/// Bytes per item in the table after the count: name end (u32) and score (f64).
const RANKED_ROW: usize = 12;

impl RankedList {
    /// Packs a list of (item, score), best first.
    pub fn pack(list: &[(&str, f64)]) -> Self {
        let names: usize = list.iter().map(|(item, _)| item.len()).sum();
        let mut buf = Vec::with_capacity(4 + RANKED_ROW * list.len() + names);
        buf.extend_from_slice(&(list.len() as u32).to_le_bytes());
        let mut end = 0u32;
        for (item, score) in list {
            end += item.len() as u32;
            buf.extend_from_slice(&end.to_le_bytes());
            buf.extend_from_slice(&score.to_le_bytes());
        }
        for (item, _) in list {
            buf.extend_from_slice(item.as_bytes());
        }
        RankedList {
            buf: buf.into_boxed_slice(),
        }
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.buf
            .first_chunk::<4>()
            .map_or(0, |n| u32::from_le_bytes(*n) as usize)
    }

    /// True when the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first `n` items (names as bytes) with their scores, best first.
    pub fn top(&self, n: usize) -> RankedIter<'_> {
        let len = self.len();
        let (table, names) = self
            .buf
            .get(4..)
            .unwrap_or_default()
            .split_at(RANKED_ROW * len);
        RankedIter {
            table: &table[..RANKED_ROW * n.min(len)],
            names,
            start: 0,
        }
    }

    /// The first `n` items as owned predictions.
    pub fn to_vec(&self, n: usize) -> Vec<Prediction> {
        self.top(n)
            .map(|(item, score)| Prediction {
                item: String::from_utf8_lossy(item).into_owned(),
                score,
            })
            .collect()
    }
}

/// Items of a [`RankedList`], best first.
#[derive(Debug, Clone)]
pub struct RankedIter<'a> {
    table: &'a [u8],
    names: &'a [u8],
    start: usize,
}

impl<'a> Iterator for RankedIter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<Self::Item> {
        let (row, rest) = self.table.split_first_chunk::<RANKED_ROW>()?;
        self.table = rest;
        let (end, score) = row.split_at(4);
        let end = u32::from_le_bytes(end.try_into().expect("4 bytes")) as usize;
        let score = f64::from_le_bytes(score.try_into().expect("8 bytes"));
        let name = &self.names[self.start..end];
        self.start = end;
        Some((name, score))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.table.len() / RANKED_ROW;
        (n, Some(n))
    }
}

impl ExactSizeIterator for RankedIter<'_> {}

/// The last prediction list served for a user, reused while neither the user nor the node
/// model has changed (see [`crate::Engine::predict_with`]). It is a cache of a pure
/// function, so it is never persisted, copied or compared: a restored or copied user simply
/// starts without one.
/// Interior mutability lets a read-only command (EDGE.PREDICT opens the key for reading)
/// refresh it without a write to the key.
#[derive(Debug, Default)]
pub struct Memo(pub(crate) RefCell<Option<MemoEntry>>);

/// One memoized list.
#[derive(Debug, Clone)]
pub(crate) struct MemoEntry {
    /// Model version the list was computed at.
    pub version: u64,
    /// The `k` it was computed for; a longer list serves any shorter request by prefix.
    pub k: usize,
    /// Whether seen items were included.
    pub include_seen: bool,
    /// The ranked items.
    pub list: RankedList,
}

impl Clone for Memo {
    fn clone(&self) -> Self {
        Memo::default()
    }
}

impl PartialEq for Memo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
