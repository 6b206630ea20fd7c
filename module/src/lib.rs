//! edgecache as a Redis module: per-viewer next-item prediction and a predictive edge
//! cache, answered in-process.
//!
//! `lib.rs` only wires things together: the command table ([`commands`]), settings
//! ([`config`]), INFO ([`info`]) and the engine ([`state`]), all safe code, over [`ffi`],
//! the one folder that calls the Redis C API (the data types, command plumbing, COMMAND
//! DOCS, server events and fork handlers). All modelling lives in the `edge-model` crate.

// Only `ffi` may call the C API: everything else in the module is safe code.
#![deny(unsafe_code)]

mod commands;
mod config;
#[allow(unsafe_code)]
mod ffi;
mod import;
mod info;
mod state;

use redis_module::server_events::{
    LoadingSubevent, INFO_COMMAND_HANDLER_LIST, LOADING_SERVER_EVENTS_LIST,
};
use redis_module::{redis_module, Context, InfoContext, RedisResult, RedisString, Status};

use crate::ffi::datatype::{NODE_TYPE, USER_TYPE};
use crate::ffi::server;

/// Registers the settings with Redis (7.0+), taking load-time arguments as initial values:
/// `--loadmodule libedgecache.so default-k 5 cache-policy lru`.
fn init(ctx: &Context, args: &[RedisString]) -> Status {
    if let Err(e) = config::check_args(args).and_then(|()| server::subscribe_events(ctx)) {
        ctx.log_warning(&format!("edge: {e}"));
        return Status::Err;
    }
    if let Err(e) = ffi::command::register(ctx, commands::COMMANDS) {
        ctx.log_warning(&format!("edge: {e}"));
        return Status::Err;
    }
    ffi::docs::register(ctx, commands::COMMANDS);
    if let Err(e) = server::guard_forks() {
        ctx.log_warning(&format!("edge: {e}"));
        return Status::Err;
    }
    if !server::has_config_api() {
        ctx.log_warning("edge: this server has no module config API (Redis < 7.0); using defaults");
        return Status::Ok;
    }
    if let Err(e) = config::register(ctx, args) {
        ctx.log_warning(&format!("edge: {e}"));
        return Status::Err;
    }
    if !server::load_configs(ctx) {
        ctx.log_warning("edge: a setting was refused");
        return Status::Err;
    }
    state::start_maintenance(ctx);
    Status::Ok
}

#[linkme::distributed_slice(INFO_COMMAND_HANDLER_LIST)]
fn info_handler(ctx: &InfoContext, for_crash_report: bool) -> RedisResult<()> {
    info::add_sections(ctx, for_crash_report)
}

/// Before an RDB, AOF or replication load, start from an empty model so that what is
/// loaded replaces, rather than merges with, what was there.
#[linkme::distributed_slice(LOADING_SERVER_EVENTS_LIST)]
fn on_loading(_ctx: &Context, ev: LoadingSubevent) {
    if matches!(
        ev,
        LoadingSubevent::RdbStarted | LoadingSubevent::AofStarted | LoadingSubevent::ReplStarted
    ) {
        state::reset();
    }
}

redis_module! {
    name: "edge",
    version: 1,
    allocator: (redis_module::alloc::RedisAlloc, redis_module::alloc::RedisAlloc),
    data_types: [USER_TYPE, NODE_TYPE],
    init: init,
    // The commands are registered by `init` from `commands::COMMANDS`, which views each
    // command's arguments in place instead of copying them into a vector.
    commands: [],
}
