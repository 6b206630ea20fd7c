//! The `edge-user` data type: one viewer's state per key, and the node's global model as
//! RDB aux data; and the `edge-node` type, which exists only inside an AOF rewrite (see
//! [`add_node_carrier`]).
//!
//! This is where the module meets Redis's persistence C API, in the module's FFI room.
//! Every callback decodes with [`edge_model::codec`], which validates lengths and checksums and never panics, and returns NULL (a load error Redis reports)
//! rather than trusting a corrupt payload. A payload cut short (a truncated file, a broken
//! replication stream) is an IO error Redis hands back to the module, because `ffi/server.rs`
//! declares `REDISMODULE_OPTIONS_HANDLE_IO_ERRORS`; every load callback checks for it.

use std::ffi::CStr;
use std::hash::BuildHasher;
use std::os::raw::{c_char, c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

use redis_module::native_types::RedisType;
use redis_module::{raw, Context, RedisValue};

use edge_model::codec::{decode_node, decode_user, encode_node, encode_user};
use edge_model::UserState;

use crate::state;

/// Encoding version of the user value inside the RDB. The blob carries its own format
/// version too; this one lets Redis refuse a value written by a future module.
pub const ENCODING_VERSION: i32 = 1;

/// The registered type. The name must be exactly nine characters.
pub static USER_TYPE: RedisType = RedisType::new(
    "edge-user",
    ENCODING_VERSION,
    raw::RedisModuleTypeMethods {
        version: raw::REDISMODULE_TYPE_METHOD_VERSION as u64,
        rdb_load: Some(rdb_load),
        rdb_save: Some(rdb_save),
        aof_rewrite: Some(aof_rewrite),
        free: Some(free),
        mem_usage: Some(mem_usage),
        digest: None,
        aux_load: Some(aux_load),
        aux_save: Some(aux_save),
        aux_save2: None,
        aux_save_triggers: raw::Aux::Before as i32,
        free_effort: None,
        unlink: None,
        copy: Some(copy),
        defrag: None,
        copy2: None,
        free_effort2: None,
        mem_usage2: None,
        unlink2: None,
    },
);

/// Reads one string from the RDB (or replication stream), or `None`, logged, if the read
/// failed: the input ended early or was cut off mid-value.
///
/// A read failure is only reported to the module because `ffi/server.rs` declares
/// `REDISMODULE_OPTIONS_HANDLE_IO_ERRORS`; without it Redis panics inside the read (the
/// "Guru Meditation ... Read performed by module 'edge'" crash). With it, Redis 7.0's
/// `moduleLoadString` marks the IO failed and returns NULL, and every later read returns at
/// once, so the failure must be checked after the read, with `RedisModule_IsIOError`. The
/// crate's `raw::load_string_buffer` checks it too and returns an error, dropping the
/// pointer unfreed (harmless only because Redis returns NULL then), and on success wraps
/// the pointer without a null check. This calls the API directly so that both are explicit:
/// a null or failed read is an error, and any buffer Redis returned is freed here.
fn load_blob(rdb: *mut raw::RedisModuleIO, what: &str) -> Option<Vec<u8>> {
    // SAFETY: the API table is filled before OnLoad and never written again; LoadString-
    // Buffer and IsIOError exist since Redis 4 and 6.0 (the module needs 6.2).
    let (load, is_io_error, free) = unsafe {
        (
            raw::RedisModule_LoadStringBuffer.expect("LoadStringBuffer exists since Redis 4"),
            raw::RedisModule_IsIOError.expect("IsIOError exists since Redis 6.0"),
            raw::RedisModule_Free.expect("Free exists since Redis 4"),
        )
    };
    let mut len = 0;
    // SAFETY: `rdb` is the IO handle Redis passed to the callback that calls this; `len`
    // outlives the call.
    let buf = unsafe { load(rdb, &mut len) };
    // SAFETY: as above.
    let failed = unsafe { is_io_error(rdb) } != 0 || buf.is_null();
    let blob = (!failed).then(|| {
        // SAFETY: on success Redis returns a buffer of `len` bytes it allocated for us.
        unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) }.to_vec()
    });
    if !buf.is_null() {
        // SAFETY: the buffer is ours to free, with RedisModule_Free, exactly once.
        unsafe { free(buf.cast()) };
    }
    if blob.is_none() {
        redis_module::logging::log_warning(format!(
            "edge: short read in {what} (the RDB file or replication stream ends early); \
             refusing it"
        ));
    }
    blob
}

/// Loads one user. Returns NULL, with nothing allocated and the user gauge untouched, for
/// an unknown encoding, a short read or a blob the codec refuses: Redis then refuses the
/// whole load (from a file: it logs and exits; from a replication stream: it discards it).
unsafe extern "C" fn rdb_load(rdb: *mut raw::RedisModuleIO, encver: c_int) -> *mut c_void {
    if encver != ENCODING_VERSION {
        return ptr::null_mut();
    }
    let Some(blob) = load_blob(rdb, "a stored user") else {
        return ptr::null_mut();
    };
    match decode_user(&blob, crate::state::config().user_bounds()) {
        Ok(user) => {
            state::users_add(1);
            Box::into_raw(Box::new(user)).cast()
        }
        Err(e) => {
            redis_module::logging::log_warning(format!("edge: rejecting stored user: {e}"));
            ptr::null_mut()
        }
    }
}

unsafe extern "C" fn rdb_save(rdb: *mut raw::RedisModuleIO, value: *mut c_void) {
    // SAFETY: Redis hands back the pointer this module created with Box<UserState>.
    let user = unsafe { &*value.cast::<UserState>() };
    raw::save_slice(rdb, &encode_user(user));
}

/// Set once the node model has been emitted into the AOF being rewritten; cleared by
/// [`rewrite_starting`] at the start of every rewrite. The first of this module's keys
/// that the rewrite reaches (a user, or the carrier of [`add_node_carrier`]) emits the
/// node model, so it comes exactly once per rewrite and before any user.
static NODE_EMITTED: AtomicBool = AtomicBool::new(false);

/// Called when an AOF rewrite starts (both variants of the `AOF_START` persistence event),
/// in the process that is about to write it.
pub fn rewrite_starting() {
    NODE_EMITTED.store(false, Ordering::Relaxed);
}

/// Emits `EDGE.NODE.RESTORE <node model>` unless this rewrite already did.
///
/// # Safety
/// `aof` must be the IO handle Redis passed to an `aof_rewrite` callback.
unsafe fn emit_node_once(aof: *mut raw::RedisModuleIO) {
    if !NODE_EMITTED.swap(true, Ordering::Relaxed) {
        let node = encode_node(&mut state::engine());
        // SAFETY: `aof` comes from Redis (the caller's contract).
        unsafe { emit(aof, c"EDGE.NODE.RESTORE", None, &node) };
    }
}

/// Emits one command, `cmd [key] blob`, into a rewritten AOF.
///
/// # Safety
/// `aof` must be the IO handle Redis passed to `aof_rewrite`, and `key` a string Redis
/// passed with it.
unsafe fn emit(
    aof: *mut raw::RedisModuleIO,
    cmd: &CStr,
    key: Option<*mut raw::RedisModuleString>,
    blob: &[u8],
) {
    let emit = raw::RedisModule_EmitAOF.expect("EmitAOF exists since Redis 4");
    let ptr = blob.as_ptr().cast::<c_char>();
    // SAFETY: EmitAOF is variadic: "sb" reads a RedisModuleString* then a (char*, size_t)
    // pair, "b" only the pair, which is exactly what follows. `blob` outlives the call.
    unsafe {
        match key {
            Some(k) => emit(aof, cmd.as_ptr(), c"sb".as_ptr(), k, ptr, blob.len()),
            None => emit(aof, cmd.as_ptr(), c"b".as_ptr(), ptr, blob.len()),
        }
    }
}

unsafe extern "C" fn aof_rewrite(
    aof: *mut raw::RedisModuleIO,
    key: *mut raw::RedisModuleString,
    value: *mut c_void,
) {
    // SAFETY: `aof` comes from Redis.
    unsafe { emit_node_once(aof) };
    // SAFETY: as in rdb_save.
    let user = unsafe { &*value.cast::<UserState>() };
    // SAFETY: `aof` and `key` come from Redis; "sb" with the key and one buffer.
    unsafe { emit(aof, c"EDGE.RESTORE", Some(key), &encode_user(user)) };
}

unsafe extern "C" fn free(value: *mut c_void) {
    if value.is_null() {
        return;
    }
    // SAFETY: the pointer came from Box::into_raw in this module and Redis frees it once.
    drop(unsafe { Box::from_raw(value.cast::<UserState>()) });
    state::users_add(-1);
}

unsafe extern "C" fn mem_usage(value: *const c_void) -> usize {
    // SAFETY: as in rdb_save.
    unsafe { &*value.cast::<UserState>() }.memory_bytes()
}

unsafe extern "C" fn copy(
    _from: *mut raw::RedisModuleString,
    _to: *mut raw::RedisModuleString,
    value: *const c_void,
) -> *mut c_void {
    // SAFETY: as in rdb_save.
    let user = unsafe { &*value.cast::<UserState>() }.clone();
    state::users_add(1);
    Box::into_raw(Box::new(user)).cast()
}

unsafe extern "C" fn aux_save(rdb: *mut raw::RedisModuleIO, when: c_int) {
    if when == raw::Aux::Before as c_int {
        raw::save_slice(rdb, &encode_node(&mut state::engine()));
    }
}

/// Loads the node model. On an unknown encoding, a short read or a refused blob it
/// returns an error before touching the engine, and Redis refuses the load.
unsafe extern "C" fn aux_load(rdb: *mut raw::RedisModuleIO, encver: c_int, when: c_int) -> c_int {
    if encver != ENCODING_VERSION || when != raw::Aux::Before as c_int {
        return raw::Status::Err as c_int;
    }
    let Some(blob) = load_blob(rdb, "the node model") else {
        return raw::Status::Err as c_int;
    };
    match decode_node(&blob, crate::state::config()) {
        Ok(engine) => {
            state::install(engine);
            raw::Status::Ok as c_int
        }
        Err(e) => {
            redis_module::logging::log_warning(format!("edge: rejecting stored node model: {e}"));
            raw::Status::Err as c_int
        }
    }
}

// ----- Carrying the node model through an AOF rewrite that has no user to carry it -----

/// The value of the `edge-node` type: a marker with no data. Its one job is to make an AOF
/// rewrite call [`node_aof_rewrite`]; the node model itself is read from the engine then.
struct NodeCarrier;

/// Encoding version of `edge-node`. Its values are never written to an RDB (see
/// [`node_rdb_save`]), so nothing depends on it yet.
const NODE_ENCODING_VERSION: i32 = 1;

/// The carrier type. A type of its own rather than a marker value of `edge-user`, so that
/// every `edge-user` value is a `UserState` whatever the key, and a command that ever met a
/// carrier would get a wrong-type error instead of misreading it.
pub static NODE_TYPE: RedisType = RedisType::new(
    "edge-node",
    NODE_ENCODING_VERSION,
    raw::RedisModuleTypeMethods {
        version: raw::REDISMODULE_TYPE_METHOD_VERSION as u64,
        rdb_load: Some(node_rdb_load),
        rdb_save: Some(node_rdb_save),
        aof_rewrite: Some(node_aof_rewrite),
        free: Some(node_free),
        mem_usage: None,
        digest: None,
        aux_load: None,
        aux_save: None,
        aux_save2: None,
        aux_save_triggers: 0,
        free_effort: None,
        unlink: None,
        copy: None,
        defrag: None,
        copy2: None,
        free_effort2: None,
        mem_usage2: None,
        unlink2: None,
    },
);

/// A carrier is never saved: it exists only in a rewrite child with the RDB preamble off,
/// which writes commands, not an RDB. Were one ever met here, nothing is written, and the
/// RDB would be refused at load (by [`node_rdb_load`]) rather than grow a stray key.
unsafe extern "C" fn node_rdb_save(_rdb: *mut raw::RedisModuleIO, _value: *mut c_void) {
    redis_module::logging::log_warning("edge: a node-model carrier reached an RDB save");
}

/// See [`node_rdb_save`]: no RDB holds a carrier, and one that claims to is refused.
unsafe extern "C" fn node_rdb_load(_rdb: *mut raw::RedisModuleIO, _encver: c_int) -> *mut c_void {
    redis_module::logging::log_warning("edge: refusing an RDB that holds a node-model carrier");
    ptr::null_mut()
}

unsafe extern "C" fn node_aof_rewrite(
    aof: *mut raw::RedisModuleIO,
    _key: *mut raw::RedisModuleString,
    _value: *mut c_void,
) {
    // SAFETY: `aof` comes from Redis.
    unsafe { emit_node_once(aof) };
}

unsafe extern "C" fn node_free(value: *mut c_void) {
    if !value.is_null() {
        // SAFETY: the pointer came from Box::into_raw of a NodeCarrier (in `set_value`).
        drop(unsafe { Box::from_raw(value.cast::<NodeCarrier>()) });
    }
}

/// Called on `AOF_START` in the forked rewrite child: gives a rewrite without the RDB
/// preamble a key that emits the node model, so that a node whose users were all forgotten
/// or expired keeps its model through the rewrite.
///
/// Why this way: without the preamble, a rewrite writes commands key by key, and Redis 7.0
/// has no hook in which a module could write anything else (aux data goes only into RDBs,
/// including a preamble). The node model therefore rode along with the first user key, and
/// with no user key it was dropped: a restart found an empty model. What Redis does offer:
/// `rewriteAppendOnlyFileBackground` forks, the child calls `rewriteAppendOnlyFile`, and
/// that calls `startSaving(RDBFLAGS_AOF_PREAMBLE)` before `rewriteAppendOnlyFileRio`
/// iterates the keyspace; `startSaving` fires this event when its pid is not
/// `server.pid`, i.e. only in the child (Redis 7.0.15 `aof.c`/`rdb.c`; Valkey's are the
/// same). The child's dataset is a private copy that is written out and then dropped with
/// the process, so a key added here is seen by this rewrite and by nothing else: never by a
/// client, a replica, the parent's keyspace or its memory accounting. Its `aof_rewrite`
/// emits only `EDGE.NODE.RESTORE` (no key name), so replaying the file recreates the model
/// and no key. Dict order is not insertion order, so the carrier is not necessarily the
/// first of our keys the rewrite reaches; whichever is emits the model ([`emit_node_once`]),
/// so it is written exactly once and before any user, with zero users or many.
///
/// Where and under what name: database 0, which every server has and which the rewrite
/// visits first, whatever databases hold users. The name carries the child's pid and 64
/// random bits, and a name already taken in the child's database 0 is skipped, so no user
/// key is replaced. (The one case the check cannot see is a key that is logically expired
/// but not yet deleted on a read-only replica, which `OpenKey` reports empty; matching it
/// would take guessing the random bits.) Opening a key for writing in the child has the
/// usual side effects (a WATCH or tracking invalidation queued for clients, never sent,
/// since the child runs no event loop), and they vanish with the child.
///
/// With `aof-use-rdb-preamble yes` nothing is added: the child writes an RDB, which carries
/// the model as aux data, and would save the carrier as a key.
///
/// The synchronous variant (`SYNC_AOF_START`, `rewriteAppendOnlyFile` in the main process)
/// never adds one, since that keyspace is the live one. Redis 7.0 and Valkey call it there
/// only from `aofOpenIfNeededOnServerStart`, when the server starts with the AOF on and no
/// base or incremental file, so nothing was loaded: the dataset is empty and the model is
/// the fresh one built from the configuration, which replaying the file without a node
/// model rebuilds too.
pub fn add_node_carrier(ctx: &Context) {
    match rdb_preamble(ctx) {
        Ok(false) => {}
        Ok(true) => return,
        Err(e) => {
            ctx.log_warning(&format!(
                "edge: AOF rewrite: cannot read aof-use-rdb-preamble ({e}); the node model \
                 is written only if a user key is"
            ));
            return;
        }
    }
    // SAFETY: the API table is filled before OnLoad; SelectDb (Redis 4+) switches the
    // event's own temporary client, which Redis may hand over with another database
    // selected (a pooled client keeps the last one).
    let selected = unsafe {
        raw::RedisModule_SelectDb.expect("SelectDb exists since Redis 4")(ctx.get_raw(), 0)
    };
    if selected != raw::REDISMODULE_OK as c_int {
        ctx.log_warning("edge: AOF rewrite: cannot select database 0 for the node model");
        return;
    }
    let nonce = std::collections::hash_map::RandomState::new().hash_one(state::now_ms());
    for attempt in 0u32..8 {
        let name = format!(
            "edge:node-model-carrier:{}:{nonce:016x}:{attempt}",
            std::process::id()
        );
        let key = ctx.open_key_writable(&ctx.create_string(name));
        if key.is_empty() {
            if let Err(e) = key.set_value(&NODE_TYPE, NodeCarrier) {
                ctx.log_warning(&format!("edge: AOF rewrite: node-model carrier: {e}"));
            }
            return;
        }
    }
    ctx.log_warning("edge: AOF rewrite: no free name for the node-model carrier");
}

/// Whether this server writes AOF rewrites with an RDB preamble (`CONFIG GET`).
fn rdb_preamble(ctx: &Context) -> Result<bool, String> {
    let reply = ctx
        .call("CONFIG", &["GET", "aof-use-rdb-preamble"])
        .map_err(|e| e.to_string())?;
    let value = match &reply {
        RedisValue::Array(pair) if pair.len() == 2 => &pair[1],
        RedisValue::Map(m) if m.len() == 1 => m.values().next().expect("one entry"),
        other => return Err(format!("unexpected reply {other:?}")),
    };
    let text: &[u8] = match value {
        RedisValue::SimpleString(s) | RedisValue::BulkString(s) => s.as_bytes(),
        RedisValue::StringBuffer(b) => b,
        RedisValue::BulkRedisString(s) => s.as_slice(),
        other => return Err(format!("unexpected value {other:?}")),
    };
    match text {
        b"yes" => Ok(true),
        b"no" => Ok(false),
        other => Err(format!(
            "unexpected value {:?}",
            String::from_utf8_lossy(other)
        )),
    }
}
