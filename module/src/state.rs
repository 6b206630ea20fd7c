//! The node's one engine, shared by every command, callback and INFO.
//!
//! Redis runs commands, RDB callbacks and INFO on its main thread, so the lock is never
//! contended there; it exists because a forked BGSAVE child and lazy-free threads may
//! touch the counters, and so that the borrow checker can see one owner.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use edge_model::{Config, Engine};

static ENGINE: LazyLock<Mutex<Engine>> = LazyLock::new(|| {
    Mutex::new(Engine::new(crate::config::current()).expect("defaults are valid"))
});

/// Keys of the user type in this node (a gauge for INFO). Freed on lazy-free threads too,
/// hence atomic.
pub static USERS: AtomicI64 = AtomicI64::new(0);

/// Locks the engine. A panic while it was held cannot leave it torn (every mutation is
/// completed before replying), so a poisoned lock is simply taken over.
pub fn engine() -> MutexGuard<'static, Engine> {
    ENGINE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts a user key created or destroyed.
pub fn users_add(delta: i64) {
    USERS.fetch_add(delta, Ordering::Relaxed);
}

/// Current user-key count.
pub fn users() -> i64 {
    USERS.load(Ordering::Relaxed).max(0)
}

/// Wall-clock milliseconds, the default TS of a view.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Replaces the engine with an empty one under the current configuration (FLUSHALL, and
/// before an RDB or replication load so nothing stale survives it).
pub fn reset() {
    let cfg = crate::config::current();
    *engine() = Engine::new(cfg).expect("validated configuration");
}

/// Installs an engine decoded from persisted state.
pub fn install(e: Engine) {
    *engine() = e;
}

/// Applies a configuration change; returns the validation error, if any.
pub fn reconfigure(cfg: Config) -> Result<(), edge_model::ConfigError> {
    engine().set_config(cfg, now_ms())
}

/// Federation counters since the server started (INFO and EDGE.MODEL.INFO): exports
/// served, their bytes, imports applied and their bytes. Counters, not model state, so
/// they restart at zero with the process, as Prometheus counters may.
static EXPORTS: AtomicU64 = AtomicU64::new(0);
static EXPORT_BYTES: AtomicU64 = AtomicU64::new(0);
static IMPORTS: AtomicU64 = AtomicU64::new(0);
static IMPORT_BYTES: AtomicU64 = AtomicU64::new(0);

/// Counts an export of `bytes`.
pub fn note_export(bytes: usize) {
    EXPORTS.fetch_add(1, Ordering::Relaxed);
    EXPORT_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
}

/// Counts an applied import of `bytes`.
pub fn note_import(bytes: usize) {
    IMPORTS.fetch_add(1, Ordering::Relaxed);
    IMPORT_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
}

/// The node's federation state, as EDGE.MODEL.INFO and INFO report it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Federation {
    /// Rounds imported, ever (persisted with the model).
    pub rounds: u64,
    /// The last federator round imported.
    pub last_round: u64,
    /// When it was imported (server clock, ms).
    pub last_import_ms: u64,
    /// Its size.
    pub last_import_bytes: u64,
    /// The export round the next EDGE.MODEL.EXPORT closes.
    pub export_round: u64,
    /// This node's own rows and their (neighbour) entries.
    pub own_rows: u64,
    /// Own transitions (row entries).
    pub own_transitions: u64,
    /// Peers' rows.
    pub peer_rows: u64,
    /// Peers' transitions.
    pub peer_transitions: u64,
    /// Items known (own and peers').
    pub items: u64,
    /// Peers' views (sum over items).
    pub peer_views: u64,
    /// Counters since start.
    pub exports_total: u64,
    /// Bytes exported since start.
    pub export_bytes_total: u64,
    /// Imports applied since start.
    pub imports_total: u64,
    /// Bytes imported since start.
    pub import_bytes_total: u64,
}

impl Federation {
    /// (name, value) in reply order.
    pub fn fields(&self) -> [(&'static str, u64); 15] {
        [
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
            ("exports_total", self.exports_total),
            ("export_bytes_total", self.export_bytes_total),
            ("imports_total", self.imports_total),
            ("import_bytes_total", self.import_bytes_total),
        ]
    }
}

/// Reads the federation state of `engine` (flushed) and the counters.
pub fn federation(engine: &mut Engine) -> Federation {
    let g = engine.global();
    let rows = |t: &edge_model::transitions::Transitions| {
        let non_empty = t.rows().iter().filter(|r| !r.is_empty()).count();
        (non_empty as u64, t.len() as u64)
    };
    let (own_rows, own_transitions) = rows(&g.transitions);
    let (peer_rows, peer_transitions) = rows(&g.peers.rows);
    Federation {
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
        exports_total: EXPORTS.load(Ordering::Relaxed),
        export_bytes_total: EXPORT_BYTES.load(Ordering::Relaxed),
        imports_total: IMPORTS.load(Ordering::Relaxed),
        import_bytes_total: IMPORT_BYTES.load(Ordering::Relaxed),
    }
}
