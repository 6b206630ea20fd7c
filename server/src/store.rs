//! The edge's store: the bytes of the items the edge holds, in memory or in a directory,
//! bounded in bytes.
//!
//! The module decides what the edge cache holds; the store keeps the bytes of what it was
//! told to fetch. Until the module reports its evictions (issue 15's cache delta), the
//! store also keeps its own byte bound (`--max-store-bytes`, by default the module's
//! `cache-capacity-bytes`) by dropping the least recently used items, so it can never
//! outgrow what it was given.
//!
//! A directory store writes each object to a temporary file and renames it into place,
//! so a crash never leaves a half-written object under an item's name, and a restarted
//! server finds what it held (temporary files are removed at start).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;

use hyper::body::Bytes;

/// One stored object's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Length in bytes.
    pub len: u64,
    /// Strong validator of the bytes (`"<len>-<hash>"`, quoted), stable across restarts.
    pub etag: String,
    /// Brought by a prefetch and not yet requested.
    pub prefetched: bool,
}

/// The ETag of `bytes`: their length and a stable 64-bit hash of them.
pub fn etag_of(bytes: &[u8]) -> String {
    format!(
        "\"{:x}-{:016x}\"",
        bytes.len(),
        edge_model::hash::fingerprint(bytes)
    )
}

/// Where the bytes live.
#[derive(Debug)]
enum Backend {
    Memory(HashMap<String, Bytes>),
    Dir(PathBuf),
}

#[derive(Debug)]
struct Inner {
    backend: Backend,
    meta: HashMap<String, Meta>,
    /// Recency: item → its last use tick, and tick → item; the oldest is evicted first.
    used: HashMap<String, u64>,
    order: BTreeMap<u64, String>,
    tick: u64,
    bytes: u64,
}

impl Inner {
    /// Makes `item` the most recently used.
    fn touch(&mut self, item: &str) {
        self.tick += 1;
        if let Some(old) = self.used.insert(item.to_owned(), self.tick) {
            self.order.remove(&old);
        }
        self.order.insert(self.tick, item.to_owned());
    }
}

/// The store, shared by the server's tasks.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    max_bytes: u64,
}

/// What a put did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Put {
    /// Items dropped to make room, with the bytes each held and whether it was an unused
    /// prefetch (bytes fetched for nothing).
    pub dropped: Vec<(String, u64, bool)>,
    /// False if the object alone is larger than the store (it is then not kept).
    pub kept: bool,
}

impl Store {
    /// An in-memory store of at most `max_bytes`.
    pub fn memory(max_bytes: u64) -> Store {
        Store::with(Backend::Memory(HashMap::new()), HashMap::new(), max_bytes)
    }

    /// A store in `dir` (created if missing) of at most `max_bytes`, holding what the
    /// directory already holds (oldest files dropped first if that is over the bound).
    pub fn dir(dir: PathBuf, max_bytes: u64) -> std::io::Result<Store> {
        std::fs::create_dir_all(&dir)?;
        let mut meta = HashMap::new();
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                std::fs::remove_file(entry.path())?;
                continue;
            }
            if !crate::origin::valid_item(&name) || !entry.file_type()?.is_file() {
                continue;
            }
            let bytes = std::fs::read(entry.path())?;
            let modified = entry.metadata()?.modified()?;
            found.push((modified, name.clone()));
            meta.insert(
                name,
                Meta {
                    len: bytes.len() as u64,
                    etag: etag_of(&bytes),
                    prefetched: false,
                },
            );
        }
        found.sort();
        let store = Store::with(Backend::Dir(dir), meta, max_bytes);
        {
            let mut inner = store.inner.lock().expect("store lock");
            for (_, name) in found {
                inner.touch(&name);
            }
            let _ = store.make_room(&mut inner, 0);
        }
        Ok(store)
    }

    fn with(backend: Backend, meta: HashMap<String, Meta>, max_bytes: u64) -> Store {
        let bytes = meta.values().map(|m| m.len).sum();
        Store {
            inner: Mutex::new(Inner {
                backend,
                meta,
                used: HashMap::new(),
                order: BTreeMap::new(),
                tick: 0,
                bytes,
            }),
            max_bytes,
        }
    }

    /// The bound in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// Items held.
    pub fn len(&self) -> usize {
        self.lock().meta.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Items held, with their sizes, sorted by id (for a consistency check).
    pub fn list(&self) -> Vec<(String, u64)> {
        let mut v: Vec<_> = self
            .lock()
            .meta
            .iter()
            .map(|(k, m)| (k.clone(), m.len))
            .collect();
        v.sort();
        v
    }

    /// The description of `item`, if held.
    pub fn meta(&self, item: &str) -> Option<Meta> {
        self.lock().meta.get(item).cloned()
    }

    /// The bytes of `item`, if held; marks it used (a prefetched item stops counting as
    /// unused) and returns its description as it was before.
    pub fn get(&self, item: &str) -> Option<(Bytes, Meta)> {
        let (bytes, meta) = self.peek(item)?;
        let mut inner = self.lock();
        // Removed meanwhile: the bytes read are still whole; nothing to mark.
        if let Some(m) = inner.meta.get_mut(item) {
            m.prefetched = false;
            inner.touch(item);
        }
        Some((bytes, meta))
    }

    /// The bytes of `item`, if held, without marking it used.
    pub fn peek(&self, item: &str) -> Option<(Bytes, Meta)> {
        let (path, meta) = {
            let inner = self.lock();
            let meta = inner.meta.get(item)?.clone();
            match &inner.backend {
                Backend::Memory(m) => return Some((m.get(item)?.clone(), meta)),
                Backend::Dir(d) => (d.join(item), meta),
            }
        };
        // A file is read without holding the lock; it is replaced by rename, so a read
        // sees one whole object (and a removed one is simply not found).
        Some((Bytes::from(std::fs::read(path).ok()?), meta))
    }

    /// Stores `bytes` as `item` (replacing what was there), dropping least recently used
    /// items while over the bound. Either the whole object is stored or nothing is.
    pub fn put(&self, item: &str, bytes: &Bytes, prefetched: bool) -> std::io::Result<Put> {
        let len = bytes.len() as u64;
        let mut inner = self.lock();
        if len > self.max_bytes {
            return Ok(Put::default());
        }
        Self::remove_locked(&mut inner, item)?;
        let dropped = self.make_room(&mut inner, len)?;
        match &mut inner.backend {
            Backend::Memory(m) => {
                m.insert(item.to_owned(), bytes.clone());
            }
            Backend::Dir(d) => {
                let tmp = d.join(format!(".tmp-{item}"));
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, d.join(item))?;
            }
        }
        inner.meta.insert(
            item.to_owned(),
            Meta {
                len,
                etag: etag_of(bytes),
                prefetched,
            },
        );
        inner.bytes += len;
        inner.touch(item);
        Ok(Put {
            dropped,
            kept: true,
        })
    }

    /// Removes every item `keep` refuses; returns them with their sizes.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) -> std::io::Result<Vec<(String, u64)>> {
        let mut inner = self.lock();
        let gone: Vec<String> = inner.meta.keys().filter(|k| !keep(k)).cloned().collect();
        let mut out = Vec::with_capacity(gone.len());
        for item in gone {
            if let Some(m) = Self::remove_locked(&mut inner, &item)? {
                out.push((item, m.len));
            }
        }
        Ok(out)
    }

    /// Removes `item`; returns its description if it was held.
    pub fn remove(&self, item: &str) -> std::io::Result<Option<Meta>> {
        let mut inner = self.lock();
        Self::remove_locked(&mut inner, item)
    }

    fn remove_locked(inner: &mut Inner, item: &str) -> std::io::Result<Option<Meta>> {
        let Some(meta) = inner.meta.remove(item) else {
            return Ok(None);
        };
        if let Some(t) = inner.used.remove(item) {
            inner.order.remove(&t);
        }
        inner.bytes -= meta.len;
        match &mut inner.backend {
            Backend::Memory(m) => {
                m.remove(item);
            }
            Backend::Dir(d) => match std::fs::remove_file(d.join(item)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            },
        }
        Ok(Some(meta))
    }

    /// Drops least recently used items until `incoming` more bytes fit.
    fn make_room(
        &self,
        inner: &mut Inner,
        incoming: u64,
    ) -> std::io::Result<Vec<(String, u64, bool)>> {
        let mut dropped = Vec::new();
        while inner.bytes + incoming > self.max_bytes {
            let Some(victim) = inner.order.values().next().cloned() else {
                break;
            };
            match Self::remove_locked(inner, &victim)? {
                Some(m) => dropped.push((victim, m.len, m.prefetched)),
                None => {
                    // Recency without an object cannot happen; never loop on it.
                    inner.used.remove(&victim);
                    inner.order.retain(|_, v| *v != victim);
                }
            }
        }
        Ok(dropped)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::from(s.to_owned())
    }

    #[test]
    fn keeps_its_bound_by_recency_and_says_what_it_dropped() {
        let s = Store::memory(10);
        assert!(s.put("a", &b("aaaa"), false).unwrap().kept);
        assert!(s.put("b", &b("bbbb"), true).unwrap().kept);
        s.get("a").unwrap();
        let put = s.put("c", &b("cccc"), false).unwrap();
        assert_eq!(
            put.dropped,
            vec![("b".to_owned(), 4, true)],
            "b was least recent, never used"
        );
        assert_eq!(s.bytes(), 8);
        assert_eq!(s.list(), vec![("a".into(), 4), ("c".into(), 4)]);
        assert!(
            !s.put("big", &b("x".repeat(11).as_str()), false)
                .unwrap()
                .kept
        );
        assert_eq!(
            s.bytes(),
            8,
            "an object over the bound is not kept and drops nothing"
        );
    }

    #[test]
    fn a_prefetched_item_counts_as_used_once_read() {
        let s = Store::memory(100);
        s.put("p", &b("xyz"), true).unwrap();
        let (bytes, meta) = s.get("p").unwrap();
        assert_eq!(&bytes[..], b"xyz");
        assert!(meta.prefetched, "first read reports the prefetch");
        assert!(!s.get("p").unwrap().1.prefetched);
        assert_eq!(meta.etag, etag_of(b"xyz"));
    }

    #[test]
    fn a_directory_store_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("edge-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let s = Store::dir(dir.clone(), 100).unwrap();
            s.put("a", &b("hello"), false).unwrap();
            s.put("b", &b("world!"), false).unwrap();
            s.remove("a").unwrap();
        }
        std::fs::write(dir.join(".tmp-c"), "half").unwrap();
        let s = Store::dir(dir.clone(), 100).unwrap();
        assert_eq!(s.list(), vec![("b".into(), 6)]);
        assert!(
            !dir.join(".tmp-c").exists(),
            "a half-written object is removed at start"
        );
        assert_eq!(&s.get("b").unwrap().0[..], b"world!");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
