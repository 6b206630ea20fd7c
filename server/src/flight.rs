//! Single-flight: one origin fetch per item, however many requests miss it at once.
//!
//! The first request for an item starts the fetch; requests that arrive while it runs wait
//! for the same result instead of starting their own. The entry is removed when the fetch
//! ends, so a later miss (after an eviction, or after a failure) fetches again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use hyper::body::Bytes;
use tokio::sync::OnceCell;

use crate::origin::OriginError;

type Cell = Arc<OnceCell<Result<Bytes, OriginError>>>;

/// Fetches in flight, by item.
#[derive(Debug, Default)]
pub struct Flights {
    running: Mutex<HashMap<String, Cell>>,
}

impl Flights {
    /// The result of `fetch` for `item`, run at most once among concurrent callers. The
    /// second value is true for the caller whose `fetch` ran (it stores the bytes).
    pub async fn run<F, Fut>(&self, item: &str, fetch: F) -> (Result<Bytes, OriginError>, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, OriginError>>,
    {
        let cell = {
            let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(running.entry(item.to_owned()).or_default())
        };
        let mut ran = false;
        let result = cell
            .get_or_init(|| {
                ran = true;
                fetch()
            })
            .await
            .clone();
        if ran {
            let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            if running.get(item).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                running.remove(item);
            }
        }
        (result, ran)
    }

    /// Items being fetched now.
    pub fn in_flight(&self) -> usize {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_misses_share_one_fetch() {
        let flights = Arc::new(Flights::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (f, c) = (Arc::clone(&flights), Arc::clone(&calls));
            tasks.push(tokio::spawn(async move {
                f.run("x", || async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    Ok(Bytes::from_static(b"bytes"))
                })
                .await
            }));
        }
        let mut ran = 0;
        for t in tasks {
            let (r, was_runner) = t.await.unwrap();
            assert_eq!(r.unwrap(), Bytes::from_static(b"bytes"));
            ran += usize::from(was_runner);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(ran, 1);
        assert_eq!(flights.in_flight(), 0, "the entry is gone once done");
        // A later miss fetches again.
        let (r, was_runner) = flights
            .run("x", || async { Err(OriginError::NotFound) })
            .await;
        assert_eq!((r, was_runner), (Err(OriginError::NotFound), true));
    }
}
