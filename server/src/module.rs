//! The module's side of a view: `EDGE.PLAY viewer item SIZE bytes` on a small pool of
//! Redis connections, run on tokio's blocking pool so a slow Redis never stalls the
//! event loop.

use std::sync::{Mutex, PoisonError};

use redis::Value;

/// What the module answered for a view (`EDGE.PLAY … DELTA`): its cache's decision and
/// the change to its contents, which the store follows (drops first, then fetches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Play {
    /// The module's cache held the item.
    pub hit: bool,
    /// Items the module brought into its cache after the view (prefetches).
    pub prefetched: Vec<String>,
    /// Items the store must hold now and may not: the missed item if the cache admitted
    /// it, and every prefetch.
    pub fetch: Vec<String>,
    /// Items that left the module's cache since its previous play: the store drops them.
    pub drop: Vec<String>,
    /// More left than the module logged: the store should resynchronise.
    pub resync: bool,
}

/// Why the module could not be asked.
#[derive(Debug)]
pub enum ModuleError {
    /// The connection failed or Redis refused the command (the text is Redis's).
    Redis(redis::RedisError),
    /// Redis answered something that is not EDGE.PLAY's reply: is the module loaded?
    Protocol(String),
}

impl std::fmt::Display for ModuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModuleError::Redis(e) => write!(f, "redis: {e}"),
            ModuleError::Protocol(s) => write!(f, "unexpected reply from the module: {s}"),
        }
    }
}

impl std::error::Error for ModuleError {}

/// Connections to the edge's Redis, reused across requests.
pub struct Module {
    client: redis::Client,
    idle: Mutex<Vec<redis::Connection>>,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("idle", &self.idle.lock().map_or(0, |v| v.len()))
            .finish_non_exhaustive()
    }
}

impl Module {
    /// Connects once to check that the server answers EDGE commands.
    pub fn connect(url: &str) -> Result<Module, ModuleError> {
        let client = redis::Client::open(url).map_err(ModuleError::Redis)?;
        let m = Module {
            client,
            idle: Mutex::new(Vec::new()),
        };
        m.with(|con| {
            redis::cmd("EDGE.MODEL.INFO")
                .query::<Value>(con)
                .map(|_| ())
                .map_err(ModuleError::Redis)
        })?;
        Ok(m)
    }

    /// The module's `cache-capacity-bytes`, the natural bound of the store.
    pub fn cache_capacity_bytes(&self) -> Result<u64, ModuleError> {
        self.with(|con| {
            let v: Vec<String> = redis::cmd("CONFIG")
                .arg("GET")
                .arg("edge.cache-capacity-bytes")
                .query(con)
                .map_err(ModuleError::Redis)?;
            v.get(1).and_then(|s| s.parse().ok()).ok_or_else(|| {
                ModuleError::Protocol(format!("CONFIG GET edge.cache-capacity-bytes gave {v:?}"))
            })
        })
    }

    /// Every item the module's cache holds (`EDGE.CACHE.LIST`, page by page), for a store
    /// resynchronising after a restart or a `resync` (blocking).
    pub fn cache_listing(&self) -> Result<std::collections::HashSet<String>, ModuleError> {
        let mut held = std::collections::HashSet::new();
        let mut after = String::new();
        loop {
            let mut cmd = redis::cmd("EDGE.CACHE.LIST");
            if !after.is_empty() {
                cmd.arg("AFTER").arg(&after);
            }
            cmd.arg("COUNT").arg(1000);
            let (next, flat): (String, Vec<Value>) =
                self.with(|con| cmd.query(con).map_err(ModuleError::Redis))?;
            for pair in flat.chunks(2) {
                match &pair[0] {
                    Value::BulkString(b) => {
                        held.insert(String::from_utf8_lossy(b).into_owned());
                    }
                    other => return Err(ModuleError::Protocol(format!("{other:?}"))),
                }
            }
            if next.is_empty() {
                return Ok(held);
            }
            after = next;
        }
    }

    /// Up to `k` items `viewer` is predicted to watch next (`EDGE.PREDICT viewer K k`;
    /// a new viewer gets the popular items), for the viewer's page (blocking).
    pub fn predict(&self, viewer: &str, k: usize) -> Result<Vec<String>, ModuleError> {
        self.with(|con| {
            redis::cmd("EDGE.PREDICT")
                .arg(viewer)
                .arg("K")
                .arg(k)
                .query(con)
                .map_err(ModuleError::Redis)
        })
    }

    /// The first `limit` items the module's cache holds, in id order (one page of
    /// `EDGE.CACHE.LIST`), for the viewer's page when the origin has no listing (blocking).
    pub fn cache_page(&self, limit: usize) -> Result<Vec<String>, ModuleError> {
        let (_next, flat): (String, Vec<Value>) = self.with(|con| {
            redis::cmd("EDGE.CACHE.LIST")
                .arg("COUNT")
                .arg(limit.clamp(1, 1000))
                .query(con)
                .map_err(ModuleError::Redis)
        })?;
        flat.chunks(2)
            .map(|pair| match &pair[0] {
                Value::BulkString(b) => Ok(String::from_utf8_lossy(b).into_owned()),
                other => Err(ModuleError::Protocol(format!("{other:?}"))),
            })
            .collect()
    }

    /// One view (blocking: call it from the blocking pool).
    pub fn play(&self, viewer: &str, item: &str, size: u64) -> Result<Play, ModuleError> {
        self.with(|con| {
            let v: Value = redis::cmd("EDGE.PLAY")
                .arg(viewer)
                .arg(item)
                .arg("SIZE")
                .arg(size)
                .arg("DELTA")
                .query(con)
                .map_err(ModuleError::Redis)?;
            parse_play(&v)
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> Result<T, ModuleError>,
    ) -> Result<T, ModuleError> {
        let taken = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut con = match taken {
            Some(c) => c,
            None => self.client.get_connection().map_err(ModuleError::Redis)?,
        };
        let out = f(&mut con);
        // A connection that failed is dropped; one that got a reply (even an error) is kept.
        let broken = matches!(&out, Err(ModuleError::Redis(e)) if e.is_io_error() || e.is_connection_dropped());
        if !broken {
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(con);
        }
        out
    }
}

/// Reads EDGE.PLAY DELTA's reply `[HIT|MISS, [prefetched…], [fetch…], [drop…], resync]`.
pub fn parse_play(v: &Value) -> Result<Play, ModuleError> {
    let bad = || ModuleError::Protocol(format!("{v:?}"));
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let Value::Array(a) = v else {
        return Err(bad());
    };
    let [status, prefetched, fetch, drop, resync] = a.as_slice() else {
        return Err(bad());
    };
    let hit = match text(status).as_deref() {
        Some("HIT") => true,
        Some("MISS") => false,
        _ => return Err(bad()),
    };
    let list = |v: &Value| -> Result<Vec<String>, ModuleError> {
        let Value::Array(items) = v else {
            return Err(bad());
        };
        items.iter().map(|i| text(i).ok_or_else(bad)).collect()
    };
    let resync = match resync {
        Value::Int(n) => *n != 0,
        _ => return Err(bad()),
    };
    Ok(Play {
        hit,
        prefetched: list(prefetched)?,
        fetch: list(fetch)?,
        drop: list(drop)?,
        resync,
    })
}
