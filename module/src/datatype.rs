//! The `edge-user` data type: one viewer's state per key, and the node's global model as
//! RDB aux data.
//!
//! This is where the module meets Redis's persistence C API, so this file holds the
//! `unsafe` of the crate. Every callback decodes with [`edge_model::codec`], which validates
//! lengths and checksums and never panics, and returns NULL (a load error Redis reports)
//! rather than trusting a corrupt payload. A payload cut short (a truncated file, a broken
//! replication stream) is an IO error Redis hands back to the module, because `lib.rs`
//! declares `REDISMODULE_OPTIONS_HANDLE_IO_ERRORS`; every load callback checks for it.

use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

use redis_module::native_types::RedisType;
use redis_module::raw;

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
/// A read failure is only reported to the module because `lib.rs` declares
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
    match decode_user(&blob) {
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

/// Set once the node model has been emitted into the AOF being rewritten. A rewrite runs in
/// a forked child whose copy of this flag starts `false` (the parent never sets it), so the
/// first user key of each rewrite carries the node model with it.
static NODE_EMITTED: AtomicBool = AtomicBool::new(false);

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
    if !NODE_EMITTED.swap(true, Ordering::Relaxed) {
        let node = encode_node(&mut state::engine());
        // SAFETY: `aof` comes from Redis.
        unsafe { emit(aof, c"EDGE.NODE.RESTORE", None, &node) };
    }
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
    match decode_node(&blob, crate::config::current()) {
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
