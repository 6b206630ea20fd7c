//! Single-flight fills: one origin fetch per item, however many requests miss it at once,
//! streamed to every one of them as it arrives.
//!
//! The first request for an item starts a [`Fill`]; requests that arrive while it runs
//! join the same fill instead of starting their own. A fill keeps every chunk it has
//! received (the object is bounded by `--max-object-bytes`, as a buffered fetch was), so a
//! viewer who joins mid-fetch reads from the first byte what has already arrived and then
//! follows the rest: it gets the whole, correct object without waiting for the fetch to
//! end and without a second origin fetch. (The alternative, waiting for completion, would
//! give the joiner a worse time to first byte than the viewer who started the fetch.)
//!
//! The fetch runs in a task of its own, so a viewer who disconnects does not cut it: the
//! object is still stored whole, or not at all. The entry is removed when the fetch ends,
//! so a later miss (after an eviction, or after a failure) fetches again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use hyper::body::Bytes;
use tokio::sync::watch;

use crate::origin::OriginError;

/// What a fill has received so far.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// The origin's answer: `None` until its head arrives, then the object's length if
    /// the origin gave one, or why the fetch failed before any byte.
    pub head: Option<Result<Option<u64>, OriginError>>,
    /// The chunks received, in order.
    pub chunks: Vec<Bytes>,
    /// `None` while bytes are still coming; then whether the object arrived whole.
    pub end: Option<Result<(), OriginError>>,
}

/// One fetch of one item, shared by everyone who reads it.
#[derive(Debug)]
pub struct Fill {
    state: watch::Sender<Progress>,
}

impl Fill {
    fn new() -> Fill {
        Fill {
            state: watch::Sender::new(Progress::default()),
        }
    }

    /// Records the origin's head (or its failure before any byte).
    pub fn head(&self, head: Result<Option<u64>, OriginError>) {
        self.state.send_modify(|p| p.head = Some(head));
    }

    /// Appends a chunk.
    pub fn push(&self, chunk: Bytes) {
        self.state.send_modify(|p| p.chunks.push(chunk));
    }

    /// Ends the fill; a failure before the head also fails the head.
    pub fn end(&self, end: Result<(), OriginError>) {
        self.state.send_modify(|p| {
            if p.head.is_none() {
                p.head = Some(end.clone().map(|()| None));
            }
            p.end = Some(end);
        });
    }

    /// Everything received so far, as one buffer (the whole object once the fill ended
    /// well).
    pub fn bytes(&self) -> Bytes {
        concat(&self.state.borrow().chunks)
    }

    /// A reader of the fill from its first byte.
    pub fn reader(&self) -> Reader {
        Reader {
            rx: self.state.subscribe(),
            next: 0,
        }
    }
}

/// Follows one fill: the head, then every chunk in order, then the end.
#[derive(Debug)]
pub struct Reader {
    rx: watch::Receiver<Progress>,
    next: usize,
}

impl Reader {
    /// The origin's head: the object's length if it gave one.
    pub async fn head(&mut self) -> Result<Option<u64>, OriginError> {
        loop {
            if let Some(h) = self.rx.borrow_and_update().head.clone() {
                return h;
            }
            if self.rx.changed().await.is_err() {
                return Err(OriginError::Failed(
                    "the fetch ended without an answer".into(),
                ));
            }
        }
    }

    /// The next chunk; `None` at the end of a whole object; an error if the fetch failed.
    pub async fn next(&mut self) -> Option<Result<Bytes, OriginError>> {
        loop {
            {
                let p = self.rx.borrow_and_update();
                if let Some(c) = p.chunks.get(self.next) {
                    self.next += 1;
                    return Some(Ok(c.clone()));
                }
                match &p.end {
                    Some(Ok(())) => return None,
                    Some(Err(e)) => return Some(Err(e.clone())),
                    None => {}
                }
            }
            if self.rx.changed().await.is_err() {
                return Some(Err(OriginError::Failed("the fetch was abandoned".into())));
            }
        }
    }

    /// Waits for the end; the whole object if it arrived whole.
    pub async fn whole(mut self) -> Result<Bytes, OriginError> {
        let mut parts = Vec::new();
        while let Some(c) = self.next().await {
            parts.push(c?);
        }
        Ok(concat(&parts))
    }
}

/// Chunks as one buffer, without a copy when there is only one.
fn concat(chunks: &[Bytes]) -> Bytes {
    match chunks {
        [one] => one.clone(),
        _ => Bytes::from(chunks.concat()),
    }
}

/// Fills in flight, by item.
#[derive(Debug, Default)]
pub struct Flights {
    running: Mutex<HashMap<String, Arc<Fill>>>,
}

impl Flights {
    /// The fill of `item` in flight, or a new one; true if new (the caller must then run
    /// the fetch and call [`Flights::done`] when it ends).
    pub fn join(&self, item: &str) -> (Arc<Fill>, bool) {
        let mut running = self.lock();
        if let Some(f) = running.get(item) {
            return (Arc::clone(f), false);
        }
        let f = Arc::new(Fill::new());
        running.insert(item.to_owned(), Arc::clone(&f));
        (f, true)
    }

    /// Forgets `fill` of `item` (after its bytes are stored, or it failed).
    pub fn done(&self, item: &str, fill: &Arc<Fill>) {
        let mut running = self.lock();
        if running.get(item).is_some_and(|c| Arc::ptr_eq(c, fill)) {
            running.remove(item);
        }
    }

    /// Items being fetched now.
    pub fn in_flight(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Fill>>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn joiners_share_one_fill_and_read_it_from_the_first_byte() {
        let flights = Flights::default();
        let (fill, new) = flights.join("x");
        assert!(new);
        let mut early = fill.reader();
        fill.head(Ok(Some(6)));
        fill.push(Bytes::from_static(b"abc"));
        assert_eq!(early.head().await, Ok(Some(6)));
        assert_eq!(early.next().await, Some(Ok(Bytes::from_static(b"abc"))));
        // A viewer joining mid-fetch gets the same fill and reads what already arrived.
        let (joined, new) = flights.join("x");
        assert!(!new && Arc::ptr_eq(&fill, &joined));
        let late = joined.reader();
        let task = tokio::spawn(late.whole());
        fill.push(Bytes::from_static(b"def"));
        fill.end(Ok(()));
        assert_eq!(task.await.unwrap(), Ok(Bytes::from_static(b"abcdef")));
        assert_eq!(early.next().await, Some(Ok(Bytes::from_static(b"def"))));
        assert_eq!(early.next().await, None);
        flights.done("x", &fill);
        assert_eq!(flights.in_flight(), 0, "the entry is gone once done");
        assert!(flights.join("x").1, "a later miss fetches again");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_fill_fails_every_reader() {
        let (fill, _) = Flights::default().join("y");
        let mut before_head = fill.reader();
        fill.end(Err(OriginError::Timeout));
        assert_eq!(before_head.head().await, Err(OriginError::Timeout));
        let (fill, _) = Flights::default().join("z");
        fill.head(Ok(Some(10)));
        fill.push(Bytes::from_static(b"half"));
        fill.end(Err(OriginError::Failed("cut".into())));
        assert_eq!(
            fill.reader().whole().await,
            Err(OriginError::Failed("cut".into()))
        );
    }
}
