//! Server events, module options and fork handlers at the C API.

use std::os::raw::{c_int, c_void};

use redis_module::{raw, Context};

use crate::ffi::datatype;
use crate::state;

/// Whether the server has the module config API (Redis 7.0+).
pub fn has_config_api() -> bool {
    // SAFETY: the API table is filled in once by RedisModule_Init before OnLoad runs on the
    // main thread, and never written again; reading it here races with nothing.
    unsafe { raw::RedisModule_RegisterNumericConfig }.is_some()
}

/// Has Redis apply the registered settings' initial values (load arguments or defaults);
/// false if one was refused.
pub fn load_configs(ctx: &Context) -> bool {
    // SAFETY: as above; LoadConfigs is called once, from OnLoad, with the context Redis
    // gave us.
    match unsafe { raw::RedisModule_LoadConfigs } {
        Some(load) => (unsafe { load(ctx.get_raw()) }) != raw::REDISMODULE_ERR as i32,
        None => true,
    }
}

/// Declares IO-error handling and subscribes to the flush and persistence events.
pub fn subscribe_events(ctx: &Context) -> Result<(), String> {
    handle_io_errors(ctx)?;
    subscribe(ctx, raw::REDISMODULE_EVENT_FLUSHDB, on_flush)?;
    subscribe(ctx, raw::REDISMODULE_EVENT_PERSISTENCE, on_persistence)
}

/// FLUSHALL erases the node's model too: nothing learned may outlive the data it came from.
/// A FLUSHDB erases it only when no user key is left anywhere, so flushing an unrelated
/// database keeps the model the remaining users were learned with. (After FLUSHDB ASYNC
/// the users are freed later, so the model is kept; FLUSHALL always erases it.)
///
/// The crate's `FLUSH_SERVER_EVENTS_LIST` hides which database was flushed, so this
/// subscribes directly; the crate subscribes only when that list is non-empty, so the two
/// never compete for the event.
unsafe extern "C" fn on_flush(
    _ctx: *mut raw::RedisModuleCtx,
    _eid: raw::RedisModuleEvent,
    subevent: u64,
    data: *mut c_void,
) {
    if subevent != raw::REDISMODULE_SUBEVENT_FLUSHDB_END {
        return;
    }
    // SAFETY: for REDISMODULE_EVENT_FLUSHDB, Redis passes a valid RedisModuleFlushInfo
    // that lives for the duration of the callback; a null pointer is treated as FLUSHALL.
    let dbnum =
        unsafe { data.cast::<raw::RedisModuleFlushInfo>().as_ref() }.map_or(-1, |i| i.dbnum);
    if dbnum == -1 || state::users() == 0 {
        state::reset();
    }
}

/// A server-event callback, as `RedisModule_SubscribeToServerEvent` takes it.
type EventCallback =
    unsafe extern "C" fn(*mut raw::RedisModuleCtx, raw::RedisModuleEvent, u64, *mut c_void);

/// Subscribes `callback` to the server event `id` (data version 1).
fn subscribe(ctx: &Context, id: u64, callback: EventCallback) -> Result<(), String> {
    let event = raw::RedisModuleEvent { id, dataver: 1 };
    // SAFETY: the API table is filled before OnLoad (see `init`); the context is the one
    // Redis gave OnLoad, and `callback` has the signature Redis expects.
    let ok = unsafe {
        let subscribe = raw::RedisModule_SubscribeToServerEvent
            .ok_or("this server has no server events API")?;
        subscribe(ctx.get_raw(), event, Some(callback))
    };
    if ok == raw::REDISMODULE_OK as i32 {
        Ok(())
    } else {
        Err(format!("cannot subscribe to server event {id}"))
    }
}

/// An AOF rewrite is starting. `AOF_START` fires only in the forked rewrite child (see
/// [`datatype::add_node_carrier`] for why the carrier is added there and only there);
/// `SYNC_AOF_START` in the main process, whose keyspace is never touched.
unsafe extern "C" fn on_persistence(
    ctx: *mut raw::RedisModuleCtx,
    _eid: raw::RedisModuleEvent,
    subevent: u64,
    _data: *mut c_void,
) {
    match subevent {
        raw::REDISMODULE_SUBEVENT_PERSISTENCE_AOF_START => {
            datatype::rewrite_starting();
            datatype::add_node_carrier(&Context::new(ctx));
        }
        raw::REDISMODULE_SUBEVENT_PERSISTENCE_SYNC_AOF_START => datatype::rewrite_starting(),
        _ => {}
    }
}

/// Declares `REDISMODULE_OPTIONS_HANDLE_IO_ERRORS`: the data types' load callbacks check
/// every read (`RedisModule_IsIOError`) and fail cleanly. Without it Redis cannot let a
/// module see a short read, so it panics instead (a truncated RDB crashed the server with a
/// "Guru Meditation" and a crash report rather than being refused), and replicas refuse
/// diskless loading ("modules that don't handle read errors").
///
/// `REDISMODULE_OPTIONS_HANDLE_REPL_ASYNC_LOAD` is deliberately not declared: with it, a
/// `repl-diskless-load swapdb` replica loads while still serving the old dataset and may
/// abort, but the node model is one per process and `aux_load` installs it at once; the
/// model would have to be staged until the load completes. Without it such a replica loads
/// through a file (Redis logs "not aware of async replication"), as before.
///
/// `RedisModule_SetModuleOptions` replaces the module's options, so this is the one place
/// that sets them.
fn handle_io_errors(ctx: &Context) -> Result<(), String> {
    // SAFETY: the API table is filled before OnLoad (see `init`), and SetModuleOptions is
    // called with the context Redis gave OnLoad.
    unsafe {
        let set = raw::RedisModule_SetModuleOptions
            .ok_or("this server cannot declare IO-error handling (Redis < 6.0)")?;
        set(
            ctx.get_raw(),
            raw::REDISMODULE_OPTIONS_HANDLE_IO_ERRORS as c_int,
        );
    }
    Ok(())
}

extern "C" fn before_fork() {
    state::before_fork();
}

extern "C" fn after_fork_in_parent() {
    state::after_fork_in_parent();
}

extern "C" fn in_fork_child() {
    state::in_fork_child();
}

/// Registers fork handlers once per process: Redis's server events tell a module about a
/// fork only after it happened, too late to call the learner thread's batch home.
pub fn guard_forks() -> Result<(), String> {
    static DONE: std::sync::Once = std::sync::Once::new();
    let mut rc = 0;
    DONE.call_once(|| {
        // SAFETY: the handlers are plain `extern "C"` functions without arguments, valid
        // for the life of the process (Redis refuses to unload a module that registered a
        // data type; and glibc drops a library's handlers if a failed load unmaps it).
        rc = unsafe {
            libc::pthread_atfork(
                Some(before_fork),
                Some(after_fork_in_parent),
                Some(in_fork_child),
            )
        };
    });
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("cannot register fork handlers (error {rc})"))
    }
}
