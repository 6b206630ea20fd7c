//! The node's one engine, shared by every command, callback and INFO.
//!
//! Redis runs commands, RDB callbacks and INFO on its main thread, so the lock is never
//! contended there; it exists because a forked BGSAVE child and lazy-free threads may
//! touch the counters, and so that the borrow checker can see one owner. The engine's
//! learner thread never takes it: batches and rows travel to it by channel.

use std::cell::RefCell;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use edge_model::{Config, Engine};
use redis_module::Context;

static ENGINE: LazyLock<Mutex<Engine>> =
    LazyLock::new(|| Mutex::new(Engine::new(Config::default()).expect("defaults are valid")));

thread_local! {
    /// The engine lock, held by the forking thread from just before `fork()` until just
    /// after, in parent and child alike: no other thread can send a batch away in between.
    static FORK_GUARD: RefCell<Option<MutexGuard<'static, Engine>>> = const { RefCell::new(None) };
}

/// Forks that found a batch on the learner thread and waited for it (INFO).
static FORK_WAITS: AtomicU64 = AtomicU64::new(0);

/// Before any `fork()` (BGSAVE, AOF rewrite, full sync): wait until no batch is on the
/// learner thread, so that the child, which has no such thread, finds the whole model in
/// its own memory, and keep the engine locked through the fork. Commands never hold the
/// lock while calling back into Redis (see `commands::with_user`), so it is free here.
pub fn before_fork() {
    let mut guard = engine();
    if guard.quiesce() {
        FORK_WAITS.fetch_add(1, Ordering::Relaxed);
    }
    FORK_GUARD.with(|g| *g.borrow_mut() = Some(guard));
}

/// In the parent after `fork()`: release the engine.
pub fn after_fork_in_parent() {
    FORK_GUARD.with(|g| drop(g.borrow_mut().take()));
}

/// In the forked child: the learner thread does not exist there, so learn inline.
pub fn in_fork_child() {
    FORK_GUARD.with(|g| match g.borrow_mut().take() {
        Some(mut guard) => guard.forget_learner(),
        None => engine().forget_learner(),
    });
}

/// Forks that had to wait for a batch on the learner thread.
pub fn fork_waits() -> u64 {
    FORK_WAITS.load(Ordering::Relaxed)
}

/// Keys of the user type in this node (a gauge for INFO). Freed on lazy-free threads too,
/// hence atomic.
pub static USERS: AtomicI64 = AtomicI64::new(0);

/// Locks the engine. A panic while it was held cannot leave it torn (every mutation is
/// completed before replying), so a poisoned lock is simply taken over.
pub fn engine() -> MutexGuard<'static, Engine> {
    ENGINE.lock().unwrap_or_else(|p| p.into_inner())
}

/// The engine if no one holds it (a crash report must not wait).
pub fn try_engine() -> Option<MutexGuard<'static, Engine>> {
    match ENGINE.try_lock() {
        Ok(g) => Some(g),
        Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
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
    let mut e = engine();
    let cfg = e.config().clone();
    *e = Engine::new(cfg).expect("validated configuration");
}

/// The configuration in force: the engine's, which is its only copy.
pub fn config() -> Config {
    engine().config().clone()
}

/// Installs an engine decoded from persisted state.
pub fn install(e: Engine) {
    *engine() = e;
}

/// Applies a configuration change (`change` edits a copy of the engine's configuration);
/// returns the validation error, if any, and then nothing changed.
///
/// A change that leaves maintenance (a lowered `items-max` or `successors-max`) takes its
/// first bounded step here, before the reply: a shrink that fits in one step is then done
/// when `CONFIG SET` returns, at the same point of the command stream on every server
/// given it, and only a larger one goes on between commands on the timer.
pub fn reconfigure(change: impl FnOnce(&mut Config)) -> Result<(), edge_model::ConfigError> {
    let mut e = engine();
    let mut cfg = e.config().clone();
    change(&mut cfg);
    e.set_config(cfg)?;
    if e.maintenance_due() {
        maintenance_step(&mut e);
    }
    Ok(())
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

/// The node's federation state as EDGE.MODEL.INFO and INFO report it, in reply order: the
/// model's summary, then this process's export/import counters.
pub fn federation(engine: &mut Engine) -> Vec<(&'static str, u64)> {
    let mut fields = edge_model::federation::summary(engine.model()).fields();
    fields.extend([
        ("exports_total", EXPORTS.load(Ordering::Relaxed)),
        ("export_bytes_total", EXPORT_BYTES.load(Ordering::Relaxed)),
        ("imports_total", IMPORTS.load(Ordering::Relaxed)),
        ("import_bytes_total", IMPORT_BYTES.load(Ordering::Relaxed)),
    ]);
    fields
}

/// How often the maintenance timer looks for work when there is none.
const IDLE: Duration = Duration::from_millis(100);

/// The delay between two steps of a shrink: the event loop serves clients in between.
const BUSY: Duration = Duration::from_millis(1);

/// Idle ticks between measurements against `model-memory-max` (about once a second): a
/// measurement walks every row, which is too much to do every tick of a large model.
const MEASURE_EVERY: u32 = 10;

/// Maintenance counters since the server started (INFO): steps taken, items they evicted,
/// compactions that returned memory.
static MAINTENANCE_STEPS: AtomicU64 = AtomicU64::new(0);
static MAINTENANCE_EVICTIONS: AtomicU64 = AtomicU64::new(0);
static COMPACTIONS: AtomicU64 = AtomicU64::new(0);
/// The longest maintenance step so far, in microseconds: what the event loop waited for.
static STEP_MAX_US: AtomicU64 = AtomicU64::new(0);

/// Starts the maintenance timer: it re-arms itself for as long as the server runs.
///
/// Lowering `items-max` or exceeding `model-memory-max` leaves work proportional to the
/// items over the bound; done in the setting (as it used to be) it blocked the server for
/// seconds. Here each event-loop cycle does one bounded [`Engine::maintain`] step (at most
/// [`edge_model::engine::MAINTENANCE_EVICTIONS`] items), then lets clients in.
pub fn start_maintenance(ctx: &Context) {
    ctx.create_timer(IDLE, tick, 0u32);
}

fn tick(ctx: &Context, idle_ticks: u32) {
    let (due, idle_ticks) = {
        let mut e = engine();
        if e.maintenance_due() {
            (maintenance_step(&mut e), 0)
        } else if idle_ticks + 1 >= MEASURE_EVERY {
            (e.check_memory(), 0)
        } else {
            (false, idle_ticks + 1)
        }
    };
    ctx.create_timer(if due { BUSY } else { IDLE }, tick, idle_ticks);
}

/// One bounded [`Engine::maintain`] step, counted for INFO; returns whether more are due.
fn maintenance_step(e: &mut Engine) -> bool {
    let start = std::time::Instant::now();
    let m = e.maintain();
    STEP_MAX_US.fetch_max(start.elapsed().as_micros() as u64, Ordering::Relaxed);
    MAINTENANCE_STEPS.fetch_add(1, Ordering::Relaxed);
    MAINTENANCE_EVICTIONS.fetch_add(m.evicted as u64, Ordering::Relaxed);
    COMPACTIONS.fetch_add(u64::from(m.compacted), Ordering::Relaxed);
    m.due
}

/// Maintenance counters for INFO: the longest step, steps, items evicted by them,
/// compactions.
pub fn maintenance() -> [(&'static str, u64); 4] {
    [
        (
            "maintenance_step_max_us",
            STEP_MAX_US.load(Ordering::Relaxed),
        ),
        (
            "maintenance_steps_total",
            MAINTENANCE_STEPS.load(Ordering::Relaxed),
        ),
        (
            "maintenance_evictions_total",
            MAINTENANCE_EVICTIONS.load(Ordering::Relaxed),
        ),
        ("compactions_total", COMPACTIONS.load(Ordering::Relaxed)),
    ]
}
