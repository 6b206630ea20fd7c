//! `EDGE.MODEL.IMPORT` of a large aggregate: its blob is decoded and checked on a
//! background thread while the client waits blocked, so the event loop serves other
//! clients meanwhile; only the merge runs on the main thread.
//!
//! Decoding is a pure function of the blob (0.1–0.5 s for a 46 MB aggregate): nothing in
//! the keyspace or the model changes until the merge, which runs in one piece with the
//! server's lock held (the module GIL), between two commands. That merge is the one point
//! where the import takes effect, so it is also where it is replicated and written to the
//! AOF: as `EDGE.MODEL.IMPORT blob TS now`, which a replica or an AOF replay runs in one
//! piece at the same place in the command stream and which therefore gives the identical
//! state (a view recorded while the blob was decoding comes before the import there too).
//! A blob that fails its checks is refused with the same error as before and is neither
//! applied nor replicated.
//!
//! Small blobs (under [`OFF_THREAD_MIN`]), and every context that cannot block a client (a
//! replica applying its master's stream, an AOF replay, MULTI, scripts), import at once, as
//! before. One thread decodes, in arrival order; a second import waits for the first (its
//! client stays blocked), so at most one decoded aggregate is in memory besides the blobs
//! the clients already sent. A save, a rewrite or a full sync taken while a blob decodes
//! holds the model without it, exactly as a server that has not received it yet: there is
//! no pending state to carry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Mutex;
use std::time::Instant;

use edge_model::federation::decode_packed;
use edge_model::federation::Packed;
use redis_module::{Context, ContextFlags};

use crate::ffi::blocking::Blocked;
use crate::ffi::command::Args;
use crate::state;

/// Blobs from this size on are decoded off the event loop (about 5 ms of decoding in a
/// release build); smaller ones cost less than the hop to the thread is worth.
pub const OFF_THREAD_MIN: usize = 1 << 20;

/// Imports waiting for or in their decoding (INFO `import_decodes_pending`).
static PENDING: AtomicU64 = AtomicU64::new(0);
/// Imports decoded off the event loop, ever (INFO `import_decodes_total`).
static DECODED: AtomicU64 = AtomicU64::new(0);
/// The longest time an import held the event loop (its merge, or all of it when it ran at
/// once), in microseconds (INFO `import_apply_max_us`).
static APPLY_MAX_US: AtomicU64 = AtomicU64::new(0);
/// The longest off-thread decoding, in microseconds (INFO `import_decode_max_us`).
static DECODE_MAX_US: AtomicU64 = AtomicU64::new(0);

/// The decoding thread's queue, started with the first large import.
static QUEUE: Mutex<Option<Sender<Job>>> = Mutex::new(None);

/// Import counters for INFO: pending decodes, decodes done, the longest event-loop hold of
/// an import and the longest decoding.
pub fn counters() -> [(&'static str, u64); 4] {
    [
        ("import_decodes_pending", PENDING.load(Ordering::Relaxed)),
        ("import_decodes_total", DECODED.load(Ordering::Relaxed)),
        ("import_apply_max_us", APPLY_MAX_US.load(Ordering::Relaxed)),
        (
            "import_decode_max_us",
            DECODE_MAX_US.load(Ordering::Relaxed),
        ),
    ]
}

/// Whether an import of `len` bytes from this context goes to the decoding thread: a large
/// blob from a client that may block (a master's stream, an AOF replay, MULTI and scripts
/// must see the import take effect where it stands).
pub fn off_thread(ctx: &Context, len: usize) -> bool {
    len >= OFF_THREAD_MIN
        && !ctx.get_flags().intersects(
            ContextFlags::LOADING
                | ContextFlags::REPLICATED
                | ContextFlags::MULTI
                | ContextFlags::LUA
                | ContextFlags::DENY_BLOCKING
                | ContextFlags::SLAVE,
        )
}

/// Merges a decoded aggregate into the node (main thread, or the GIL held): the one place
/// an import takes effect, timed for INFO.
pub fn apply(update: &Packed, now_ms: i64, bytes: usize, started: Instant) -> bool {
    let applied = state::engine().import_packed(update, now_ms, bytes).applied;
    if applied {
        state::note_import(bytes);
    }
    APPLY_MAX_US.fetch_max(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    applied
}

/// A large import handed to the decoding thread.
struct Job {
    /// The client, blocked on its blob.
    blocked: Blocked,
    /// The TS the client gave, if any.
    given: Option<i64>,
}

/// Blocks the client and queues its blob for decoding; the reply comes from the thread
/// once the import has been merged (or refused).
pub fn start(ctx: &Context, args: &Args, given: Option<i64>) {
    PENDING.fetch_add(1, Ordering::Relaxed);
    let job = Job {
        blocked: Blocked::block(ctx, args, 0),
        given,
    };
    let mut queue = QUEUE.lock().unwrap_or_else(|p| p.into_inner());
    let tx = queue.get_or_insert_with(|| {
        let (tx, rx) = channel::<Job>();
        std::thread::Builder::new()
            .name("edge-import".into())
            .spawn(move || rx.into_iter().for_each(run))
            .expect("the import thread starts");
        tx
    });
    // The thread lives as long as the process and never drops its receiver.
    let _ = tx.send(job);
}

/// On the decoding thread: decode, then merge, replicate and reply with the GIL held.
fn run(job: Job) {
    let t = Instant::now();
    let decoded = decode_packed(job.blocked.arg());
    DECODE_MAX_US.fetch_max(t.elapsed().as_micros() as u64, Ordering::Relaxed);
    DECODED.fetch_add(1, Ordering::Relaxed);
    let len = job.blocked.arg().len();
    job.blocked.finish(|server| {
        let flags = server.flags();
        let reply = match &decoded {
            Err(e) => Err(format!("ERR invalid update blob: {e}")),
            // A server that became a replica, or started loading a dataset, while the blob
            // decoded takes its model from its master or its files: an import now would
            // diverge from them.
            Ok(_) if flags.contains(ContextFlags::SLAVE) => Err(
                "ERR this server became a replica while the import was decoding; nothing changed"
                    .to_owned(),
            ),
            Ok(_) if flags.contains(ContextFlags::LOADING) => Err(
                "ERR the server started loading while the import was decoding; nothing changed"
                    .to_owned(),
            ),
            Ok(update) => {
                let now = job.given.unwrap_or_else(state::now_ms);
                let applied = apply(update, now, len, Instant::now());
                server.replicate_with_ts(c"EDGE.MODEL.IMPORT", now);
                Ok(i64::from(applied))
            }
        };
        PENDING.fetch_sub(1, Ordering::Relaxed);
        reply
    });
    // The decoded aggregate is freed here, off the event loop.
    drop(decoded);
}
