//! The EDGE.* commands: parse, call the engine, reply.
//!
//! What each command is (name, handler, flags, keys, ACL categories, arity, arguments
//! and `COMMAND DOCS`) is one row of [`COMMANDS`]; the README's command table is checked
//! against what the server reports from it (tests/tests/docs.rs).
//!
//! The user id is the Redis key, so hash slots, ACL key patterns, TTLs and `MEMORY USAGE`
//! apply to it directly. Writes replicate with an explicit `TS`, so a replica or an AOF
//! replay learns exactly what the master learned even when the client relied on the clock.

use std::ffi::{c_int, CStr};
use std::mem::ManuallyDrop;

use redis_module::{
    raw, Context, ContextFlags, NotifyEvent, RedisError, RedisResult, RedisString, RedisValue,
};

use edge_model::codec::{decode_node, decode_user};
use edge_model::federated::{decode_packed, encode_update};
use edge_model::request::{self, ArgError, ViewRequest};
use edge_model::{CacheOutcome, Engine, UserState};

use crate::datatype::USER_TYPE;
use crate::docs::{arg, opt, Access, Arg as DocArg, Doc, Kind};
use crate::state;

/// One row of the command table.
pub struct Command {
    pub name: &'static CStr,
    /// What Redis calls: [`dispatch`] with the handler (see `command!`).
    run: raw::RedisModuleCmdFunc,
    flags: &'static CStr,
    /// First key, last key and step, as `RedisModule_CreateCommand` takes them.
    keys: (c_int, c_int, c_int),
    /// ACL categories, arity, arguments and `COMMAND DOCS` (see [`crate::docs`]).
    pub doc: Doc,
}

/// A row of [`COMMANDS`]: a C entry point per command, since Redis hands a command
/// function no pointer of our own to tell them apart.
macro_rules! command {
    ($name:literal, $handler:path, $flags:literal, $keys:expr, $doc:expr) => {
        Command {
            name: $name,
            run: {
                extern "C" fn run(
                    ctx: *mut raw::RedisModuleCtx,
                    argv: *mut *mut raw::RedisModuleString,
                    argc: c_int,
                ) -> c_int {
                    dispatch(ctx, argv, argc, $handler)
                }
                Some(run)
            },
            flags: $flags,
            keys: $keys,
            doc: $doc,
        }
    };
}

const USER: DocArg = arg("user", Kind::Key);
const VIEW: [DocArg; 5] = [
    USER,
    arg("item", Kind::Str),
    opt("DURATION", "s", Kind::Int),
    opt("TS", "ms", Kind::Int),
    opt("DEVICE", "d", Kind::Str),
];

/// The command table: one row per command.
pub const COMMANDS: &[Command] = &[
    command!(c"edge.record", record, c"write deny-oom fast", (1, 1, 1), Doc {
        category: "write",
        summary: "Learns one view; a view much shorter than the item's usual watch time (a skip) teaches less.",
        complexity: "O(learn-window)",
        arity: -3,
        access: Access::Update,
        args: &VIEW,
    }),
    command!(c"edge.predict", predict, c"readonly fast", (1, 1, 1), Doc {
        category: "read",
        summary: "Up to k items the user is most likely to watch next, best first; seen items left out unless INCLUDESEEN; unknown users get the popular items; WITHSCORES is a map under RESP3.",
        complexity: "O(score-window * successors-max + k log k)",
        arity: -2,
        access: Access::Read,
        args: &[USER, opt("K", "k", Kind::Int), opt("WITHSCORES", "", Kind::Flag), opt("INCLUDESEEN", "", Kind::Flag)],
    }),
    command!(c"edge.prefetch", prefetch, c"write deny-oom fast", (1, 1, 1), Doc {
        category: "write",
        summary: "Predicts for a user and puts the top k into this node's edge cache; returns the items newly fetched.",
        complexity: "O(score-window * successors-max + k log k)",
        arity: -2,
        access: Access::Read,
        args: &[USER, opt("K", "k", Kind::Int)],
    }),
    command!(c"edge.play", play, c"write deny-oom fast", (1, 1, 1), Doc {
        category: "write",
        summary: "The live flow: HIT/MISS from the edge cache, learns the view, prefetches the next predictions; replies [status, [prefetched...]]. With DELTA, [status, [prefetched...], [fetch...], [drop...], resync]: what a store holding the bytes must do, drops first (the missed item if the cache admitted it and the prefetches; the keys that left the cache since the previous play, at most 4,096, resync 1 if more left).",
        complexity: "O(learn-window + score-window * successors-max)",
        arity: -3,
        access: Access::Update,
        args: &[
            USER,
            arg("item", Kind::Str),
            opt("DURATION", "s", Kind::Int),
            opt("TS", "ms", Kind::Int),
            opt("DEVICE", "d", Kind::Str),
            opt("SIZE", "bytes", Kind::Int),
            opt("DELTA", "", Kind::Flag),
        ],
    }),
    command!(c"edge.user", user, c"readonly", (1, 1, 1), Doc {
        category: "read",
        summary: "A readable view of one viewer: history, counts, strongest personal transitions.",
        complexity: "O(history-len + personal-max)",
        arity: 2,
        access: Access::Read,
        args: &[USER],
    }),
    command!(c"edge.forget", forget, c"write fast", (1, 1, 1), Doc {
        category: "write",
        summary: "Erases the viewer's key: history, seen set, personal transitions (privacy). What the viewer added to the node's aggregate counts stays, as anonymous sums; with federation those sums are all that ever left the edge.",
        complexity: "O(history-len + seen-max)",
        arity: 2,
        access: Access::Delete,
        args: &[USER],
    }),
    command!(c"edge.restore", restore, c"write deny-oom", (1, 1, 1), Doc {
        category: "write",
        summary: "Installs a serialized viewer (what an AOF rewrite emits).",
        complexity: "O(size of the blob)",
        arity: 3,
        access: Access::Overwrite,
        args: &[USER, arg("blob", Kind::Str)],
    }),
    command!(c"edge.node.restore", node_restore, c"write deny-oom admin", (0, 0, 0), Doc {
        category: "write dangerous admin",
        summary: "Replaces this node's model, cache and counters with a serialized node; only while an AOF loads (an AOF rewrite emits it).",
        complexity: "O(size of the blob)",
        arity: 2,
        access: Access::None,
        args: &[arg("blob", Kind::Str)],
    }),
    command!(c"edge.model.export", model_export, c"write", (0, 0, 0), Doc {
        category: "write",
        summary: "This node's global counts (never per-user data) as one checksummed blob, in full or changed since a round; opens a new round.",
        complexity: "O(rows and items exported)",
        arity: -1,
        access: Access::None,
        args: &[opt("SINCE", "round", Kind::Int)],
    }),
    command!(c"edge.model.import", model_import, c"write deny-oom admin", (0, 0, 0), Doc {
        category: "write dangerous admin",
        summary: "Merges a federator's aggregate of the other edges into the separate peers' table; 1 applied, 0 round already imported; a bad blob is refused with ERR and changes nothing. TS is the import's present (a peer clock ahead of it is held there); without it the server clock, which replicas and the AOF receive as TS.",
        complexity: "O(size of the blob)",
        arity: -2,
        access: Access::None,
        args: &[arg("blob", Kind::Str), opt("TS", "ms", Kind::Int)],
    }),
    command!(c"edge.model.info", model_info, c"readonly", (0, 0, 0), Doc {
        category: "read",
        summary: "Federation state: rounds imported, last import (round, ms, bytes), export round, own and peers' rows/transitions, items, byte counters.",
        complexity: "O(items)",
        arity: 1,
        access: Access::None,
        args: &[],
    }),
    command!(c"edge.cache.list", cache_list, c"readonly", (0, 0, 0), Doc {
        category: "read",
        summary: "A page of the edge cache's contents in id order, [next, [item, size, ...]] (next is the following page's AFTER, \"\" after the last; COUNT 1-1000, default 100): what a store resynchronises from.",
        complexity: "O(cached items)",
        arity: -1,
        access: Access::None,
        args: &[opt("AFTER", "item", Kind::Str), opt("COUNT", "n", Kind::Int)],
    }),
];

/// Registers [`COMMANDS`] with Redis.
pub fn register(ctx: &Context) -> Result<(), String> {
    // SAFETY: the API table is filled by RedisModule_Init before OnLoad and never written
    // again; names and flags are NUL-terminated constants; `run` has the C signature.
    let create = unsafe { raw::RedisModule_CreateCommand }.ok_or("no command API")?;
    for c in COMMANDS {
        let (first, last, step) = c.keys;
        // SAFETY: as above, with the context Redis gave OnLoad.
        let rc = unsafe {
            create(
                ctx.get_raw(),
                c.name.as_ptr(),
                c.run,
                c.flags.as_ptr(),
                first,
                last,
                step,
            )
        };
        if rc != raw::REDISMODULE_OK as c_int {
            return Err(format!("cannot create command {:?}", c.name));
        }
    }
    Ok(())
}

/// One argument of the running command, borrowed from the client for the call.
///
/// The crate's own command wrapper collects the arguments into a new `Vec`, taking and
/// dropping a reference on each: two allocator calls and two API calls per argument on
/// every EDGE.RECORD. Redis keeps the strings alive until the command returns, so they
/// can simply be viewed.
struct Arg(ManuallyDrop<RedisString>);

/// The running command's arguments (its name first), viewed as Redis strings (to open
/// keys and replicate) and as bytes (for the grammar), both built once per call.
pub struct Args<'a> {
    strings: &'a [Arg],
    bytes: &'a [&'a [u8]],
}

impl<'a> Args<'a> {
    /// The arguments after the command name, for the grammar.
    fn rest(&self) -> &'a [&'a [u8]] {
        self.bytes.get(1..).unwrap_or_default()
    }

    /// The key (the first argument). Only after the grammar accepted the arguments,
    /// which every command with a key checks for.
    fn key(&self) -> &'a RedisString {
        &self.strings[1].0
    }

    /// The client's strings after the command name, as Redis holds them.
    fn raw_rest(&self) -> impl Iterator<Item = *mut raw::RedisModuleString> + 'a {
        self.strings.iter().skip(1).map(|a| a.0.inner)
    }
}

/// A command handler: the context and the arguments.
type Handler = fn(&Context, &Args) -> RedisResult;

/// No command takes more than a dozen arguments, so they are viewed from the stack; a
/// longer line goes to the heap and still gets its arity error from the grammar.
const INLINE_ARGS: usize = 16;

/// Runs `handler` on the command Redis called, and replies with its result as the crate's
/// own wrapper does. The arguments are viewed, not owned: Redis keeps `argv` and its
/// strings alive until the command returns, and nothing here frees them or lets a view
/// outlive the call (the handler gets slices borrowed from this frame).
fn dispatch(
    ctx: *mut raw::RedisModuleCtx,
    argv: *mut *mut raw::RedisModuleString,
    argc: c_int,
    handler: Handler,
) -> c_int {
    let context = Context::new(ctx);
    let argv: &[*mut raw::RedisModuleString] = match usize::try_from(argc) {
        // SAFETY: Redis passes `argc` valid string pointers that live until the command
        // returns; they are only viewed (`Arg` never frees them).
        Ok(n) if n > 0 && !argv.is_null() => unsafe { std::slice::from_raw_parts(argv, n) },
        _ => &[],
    };
    let view = |p: &*mut raw::RedisModuleString| {
        Arg(ManuallyDrop::new(RedisString::from_redis_module_string(
            ctx, *p,
        )))
    };
    let n = argv.len();
    let result = if n <= INLINE_ARGS {
        let strings: [Arg; INLINE_ARGS] =
            std::array::from_fn(|i| view(argv.get(i).unwrap_or(&std::ptr::null_mut())));
        let bytes: [&[u8]; INLINE_ARGS] =
            std::array::from_fn(|i| if i < n { strings[i].0.as_slice() } else { &[] });
        handler(
            &context,
            &Args {
                strings: &strings[..n],
                bytes: &bytes[..n],
            },
        )
    } else {
        let strings: Vec<Arg> = argv.iter().map(view).collect();
        let bytes: Vec<&[u8]> = strings.iter().map(|a| a.0.as_slice()).collect();
        handler(
            &context,
            &Args {
                strings: &strings,
                bytes: &bytes,
            },
        )
    };
    context.reply(result) as c_int
}

/// An error reply with the conventional prefix.
fn err(msg: impl std::fmt::Display) -> RedisError {
    RedisError::String(format!("ERR {msg}"))
}

/// Parses a command's arguments (after its name) with the model's grammar.
fn parse<'a, T>(
    args: &'a [&'a [u8]],
    grammar: impl FnOnce(&'a [&'a [u8]]) -> Result<T, ArgError>,
) -> Result<T, RedisError> {
    grammar(args).map_err(|e| match e {
        ArgError::WrongArity => RedisError::WrongArity,
        ArgError::Invalid(m) => err(m),
    })
}

/// The reply for a key that holds another type. The crate's own message lacks the
/// `WRONGTYPE` prefix clients dispatch on.
fn wrong_type(_: RedisError) -> RedisError {
    RedisError::Str("WRONGTYPE Operation against a key holding the wrong kind of value")
}

/// Runs `f` on the user stored at `key`, creating the user if the key is empty.
///
/// The engine is unlocked before the new key is stored: storing it fires keyspace events,
/// and whatever runs on them (another module may even fork) must find the lock free.
fn with_user<R>(
    ctx: &Context,
    key: &RedisString,
    f: impl FnOnce(&mut Engine, &mut UserState) -> R,
) -> Result<R, RedisError> {
    let k = ctx.open_key_writable(key);
    if let Some(user) = k.get_value::<UserState>(&USER_TYPE).map_err(wrong_type)? {
        return Ok(f(&mut state::engine(), user));
    }
    let mut user = UserState::default();
    let out = f(&mut state::engine(), &mut user);
    k.set_value(&USER_TYPE, user).map_err(wrong_type)?;
    state::users_add(1);
    Ok(out)
}

/// Propagates a write with its timestamp made explicit.
///
/// Straight through the C API: this runs on every record and play, and the safe wrappers
/// would copy the command name and each argument into Rust allocations first.
fn replicate_with_ts(ctx: &Context, name: &CStr, args: &Args, given: Option<i64>, ts: i64) {
    if given.is_some() {
        ctx.replicate_verbatim();
        return;
    }
    let c = ctx.get_raw();
    // SAFETY: the API table is filled before any command runs and never written again; the
    // context is this command's. The two created strings are freed below, after Redis has
    // taken its own references to them; the client's strings outlive the call.
    unsafe {
        // Present in every server this module loads into (Redis 6.2+): a missing one would
        // silently stop replication and AOF, so it is a bug worth stopping on.
        const API: &str = "Redis module API (Redis 6.2+)";
        let create = raw::RedisModule_CreateString.expect(API);
        let from_ll = raw::RedisModule_CreateStringFromLongLong.expect(API);
        let replicate = raw::RedisModule_Replicate.expect(API);
        let free = raw::RedisModule_FreeString.expect(API);
        let added = [create(c, c"TS".as_ptr(), 2), from_ll(c, ts)];
        // The client's own strings go out as they are, from the stack (the grammar accepts
        // fewer arguments than it holds; a longer line would go to the heap).
        let mut inline = [std::ptr::null_mut(); INLINE_ARGS + 2];
        let mut heap = Vec::new();
        let argv = args.raw_rest().chain(added);
        let n = args.strings.len() + 1;
        let argv: &mut [*mut raw::RedisModuleString] = if n <= inline.len() {
            inline.iter_mut().zip(argv).for_each(|(slot, p)| *slot = p);
            &mut inline[..n]
        } else {
            heap.extend(argv);
            &mut heap
        };
        replicate(
            c,
            name.as_ptr(),
            c"v".as_ptr(),
            argv.as_mut_ptr(),
            argv.len(),
        );
        added.into_iter().for_each(|s| free(c, s));
    }
}

fn notify(ctx: &Context, event: &CStr, key: &RedisString) {
    // SAFETY: as above; `event` is a NUL-terminated constant and `key` the client's string.
    unsafe {
        let notify = raw::RedisModule_NotifyKeyspaceEvent.expect("Redis module API");
        notify(
            ctx.get_raw(),
            NotifyEvent::MODULE.bits(),
            event.as_ptr(),
            key.inner,
        );
    }
}

/// `EDGE.RECORD user item [DURATION s] [TS ms] [DEVICE d]`
pub fn record(ctx: &Context, args: &Args) -> RedisResult {
    let r: ViewRequest = parse(args.rest(), request::record)?;
    let view = r.view(state::now_ms());
    with_user(ctx, args.key(), |e, u| e.record(u, &view))?;
    replicate_with_ts(ctx, c"EDGE.RECORD", args, r.opts.ts, view.ts_ms);
    notify(ctx, c"edge.record", args.key());
    Ok(RedisValue::SimpleStringStatic("OK"))
}

/// `EDGE.PREDICT user [K k] [WITHSCORES] [INCLUDESEEN]`
pub fn predict(ctx: &Context, args: &Args) -> RedisResult {
    let r = parse(args.rest(), request::predict)?;
    let key = ctx.open_key(args.key());
    let user = key.get_value::<UserState>(&USER_TYPE).map_err(wrong_type)?;
    let mut engine = state::engine();
    let k = r.k.unwrap_or(engine.config().default_k);
    engine.predict_with(user, k, r.include_seen, |list, k| {
        reply_list(ctx, list.top(k), r.with_scores)
    });
    Ok(RedisValue::NoReply)
}

/// Replies a ranked list straight from the engine's memory: item ids, or with scores
/// `item → score` pairs (a map under RESP3, a flat array under RESP2).
fn reply_list<'a>(
    ctx: &Context,
    list: impl ExactSizeIterator<Item = (&'a [u8], f64)>,
    with_scores: bool,
) {
    let c = ctx.get_raw();
    if with_scores {
        raw::reply_with_map(c, list.len() as _);
    } else {
        raw::reply_with_array(c, list.len() as _);
    }
    for (item, score) in list {
        raw::reply_with_string_buffer(c, item.as_ptr().cast(), item.len());
        if with_scores {
            raw::reply_with_double(c, score);
        }
    }
}

fn string_array(items: Vec<String>) -> RedisValue {
    RedisValue::Array(items.into_iter().map(RedisValue::BulkString).collect())
}

/// `EDGE.PREFETCH user [K k]`
pub fn prefetch(ctx: &Context, args: &Args) -> RedisResult {
    let (_, k) = parse(args.rest(), request::prefetch)?;
    let key = ctx.open_key(args.key());
    let user = key.get_value::<UserState>(&USER_TYPE).map_err(wrong_type)?;
    let mut engine = state::engine();
    let k = k.unwrap_or(engine.config().prefetch_k);
    let fetched = engine.prefetch(user, k);
    drop(engine);
    ctx.replicate_verbatim();
    Ok(string_array(fetched))
}

/// `EDGE.PLAY user item [DURATION s] [TS ms] [DEVICE d] [SIZE bytes]`
pub fn play(ctx: &Context, args: &Args) -> RedisResult {
    let r: ViewRequest = parse(args.rest(), request::play)?;
    let view = r.view(state::now_ms());
    let out = with_user(ctx, args.key(), |e, u| e.play(u, &view, r.opts.size))?;
    replicate_with_ts(ctx, c"EDGE.PLAY", args, r.opts.ts, view.ts_ms);
    notify(ctx, c"edge.play", args.key());
    let status = RedisValue::SimpleStringStatic(out.outcome.as_str());
    if !r.opts.delta {
        return Ok(RedisValue::Array(vec![
            status,
            string_array(out.prefetched),
        ]));
    }
    // What a store holding the bytes must do, drops first: fetch the missed item if the
    // cache admitted it and every prefetch; drop what left the cache.
    let missed = out.outcome != CacheOutcome::Hit && out.admitted;
    let fetch: Vec<String> = missed
        .then(|| view.item.to_owned())
        .into_iter()
        .chain(out.prefetched.iter().cloned())
        .collect();
    let dropped: Vec<String> = out.dropped.iter().map(|k| k.to_string()).collect();
    Ok(RedisValue::Array(vec![
        status,
        string_array(out.prefetched),
        string_array(fetch),
        string_array(dropped),
        RedisValue::Integer(i64::from(out.dropped_overflow)),
    ]))
}

/// `EDGE.USER user`: history (latest first), counts and strongest personal transitions.
pub fn user(ctx: &Context, args: &Args) -> RedisResult {
    parse(args.rest(), request::user_only)?;
    let key = ctx.open_key(args.key());
    let Some(u) = key.get_value::<UserState>(&USER_TYPE).map_err(wrong_type)? else {
        return Ok(RedisValue::Null);
    };
    let r = state::engine().user_report(u);
    let bulk = RedisValue::BulkString;
    let history = r
        .history
        .into_iter()
        .map(|(item, ts)| RedisValue::Array(vec![bulk(item), RedisValue::Integer(ts)]))
        .collect();
    let transitions = r
        .transitions
        .into_iter()
        .map(|(prev, next, w)| {
            RedisValue::Array(vec![bulk(prev), bulk(next), RedisValue::Float(w)])
        })
        .collect();
    let field = |s: &str| RedisValue::SimpleString(s.to_owned());
    Ok(RedisValue::Array(vec![
        field("records"),
        RedisValue::Integer(r.records as i64),
        field("first_seen_ms"),
        RedisValue::Integer(r.first_seen_ms),
        field("last_seen_ms"),
        RedisValue::Integer(r.last_seen_ms),
        field("device"),
        r.device.map_or(RedisValue::Null, bulk),
        field("seen_items"),
        RedisValue::Integer(r.seen_items as i64),
        field("history"),
        RedisValue::Array(history),
        field("transitions"),
        RedisValue::Array(transitions),
    ]))
}

/// `EDGE.FORGET user`: deletes the user's key. Replies 1 if a user was erased, else 0.
pub fn forget(ctx: &Context, args: &Args) -> RedisResult {
    parse(args.rest(), request::user_only)?;
    let key = ctx.open_key_writable(args.key());
    if key
        .get_value::<UserState>(&USER_TYPE)
        .map_err(wrong_type)?
        .is_none()
    {
        return Ok(RedisValue::Integer(0));
    }
    key.delete()?;
    state::engine().note_forget();
    ctx.replicate_verbatim();
    notify(ctx, c"edge.forget", args.key());
    Ok(RedisValue::Integer(1))
}

/// `EDGE.RESTORE user blob`: installs a serialized user, replacing one already there.
pub fn restore(ctx: &Context, args: &Args) -> RedisResult {
    let blob = parse(args.rest(), |a| request::blob(a, true))?;
    let user = decode_user(blob, state::config().user_bounds())
        .map_err(|e| err(format_args!("invalid user blob: {e}")))?;
    let key = ctx.open_key_writable(args.key());
    key.get_value::<UserState>(&USER_TYPE).map_err(wrong_type)?;
    key.set_value(&USER_TYPE, user).map_err(wrong_type)?;
    state::users_add(1);
    ctx.replicate_verbatim();
    Ok(RedisValue::SimpleStringStatic("OK"))
}

/// `EDGE.NODE.RESTORE blob`: replaces this node's model, cache and counters with a
/// serialized node. An AOF rewrite without the RDB preamble emits it once, so the node model
/// survives such a rewrite. Only an AOF being loaded may run it: from a client it would let
/// anyone allowed to write replace what every viewer's predictions come from (federation
/// has EDGE.MODEL.IMPORT for sharing a model, which keeps the node's own evidence).
pub fn node_restore(ctx: &Context, args: &Args) -> RedisResult {
    if !ctx.get_flags().contains(ContextFlags::LOADING) {
        return Err(err(
            "EDGE.NODE.RESTORE only runs while an AOF is loading (an AOF rewrite emits it)",
        ));
    }
    let blob = parse(args.rest(), |a| request::blob(a, false))?;
    let engine = decode_node(blob, state::config())
        .map_err(|e| err(format_args!("invalid node blob: {e}")))?;
    state::install(engine);
    ctx.replicate_verbatim();
    Ok(RedisValue::SimpleStringStatic("OK"))
}

/// This node's id in the updates it exports: its cluster node id in cluster mode, else the
/// server's `run_id`. Only a label for logs (the federator keys edges by its own names):
/// `run_id` changes on restart, and an export round carries on from the persisted model.
fn node_id(ctx: &Context) -> String {
    if ctx.get_flags().contains(ContextFlags::CLUSTER) {
        // SAFETY: the API table is filled once before OnLoad and never written again. The
        // function, when present, returns the node's 40-byte name (not NUL-terminated) or
        // NULL outside cluster mode.
        unsafe {
            if let Some(get) = raw::RedisModule_GetMyClusterID {
                let p = get();
                if !p.is_null() {
                    let name = std::slice::from_raw_parts(
                        p.cast::<u8>(),
                        raw::REDISMODULE_NODE_ID_LEN as usize,
                    );
                    return String::from_utf8_lossy(name).into_owned();
                }
            }
        }
    }
    // SAFETY: as above; reading whether the optional API exists races with nothing.
    let has_info = unsafe {
        let (a, b) = (
            raw::RedisModule_GetServerInfo,
            raw::RedisModule_ServerInfoGetField,
        );
        a.is_some() && b.is_some()
    };
    if has_info {
        if let Some(id) = ctx.server_info("server").field("run_id") {
            return id.to_string_lossy();
        }
    }
    "edge".to_owned()
}

/// `EDGE.MODEL.EXPORT [SINCE round]`: this node's global counts (never per-user data) as
/// one update blob, in full or only what changed after `round`. Every export starts a new
/// round, so it is a write and replicates verbatim: a replica's rounds stay in step.
pub fn model_export(ctx: &Context, args: &Args) -> RedisResult {
    let since = parse(args.rest(), request::model_export)?;
    let node = node_id(ctx);
    let update = state::engine().export_update(&node, since);
    let blob = encode_update(&update);
    state::note_export(blob.len());
    ctx.replicate_verbatim();
    Ok(RedisValue::StringBuffer(blob))
}

/// `EDGE.MODEL.IMPORT blob`: merges an aggregate of peers into the federated table.
/// Replies 1 if applied, 0 if that round was already imported (nothing changes). A blob
/// that fails validation is refused before anything is touched.
pub fn model_import(ctx: &Context, args: &Args) -> RedisResult {
    let (blob, given) = parse(args.rest(), request::model_import)?;
    let update = decode_packed(blob).map_err(|e| err(format_args!("invalid update blob: {e}")))?;
    let now = given.unwrap_or_else(state::now_ms);
    let imported = state::engine().import_packed(&update, now, blob.len());
    if imported.applied {
        state::note_import(blob.len());
    }
    replicate_with_ts(ctx, c"EDGE.MODEL.IMPORT", args, given, now);
    Ok(RedisValue::Integer(i64::from(imported.applied)))
}

/// `EDGE.CACHE.LIST [AFTER item] [COUNT n]`: `[next, [item, size, …]]`, the cached items
/// after `item` in id order; `next` is the AFTER of the following page, `""` after the last.
/// What a store holding the bytes resynchronises from after a restart or a `resync`.
pub fn cache_list(_ctx: &Context, args: &Args) -> RedisResult {
    let (after, count) = parse(args.rest(), request::cache_list)?;
    let engine = state::engine();
    let page = engine.cache().page(after, count);
    let next = match page.last() {
        Some((k, _)) if page.len() == count => (*k).to_owned(),
        _ => String::new(),
    };
    let mut items = Vec::with_capacity(2 * page.len());
    for (k, size) in page {
        items.push(RedisValue::BulkString(k.to_owned()));
        items.push(RedisValue::Integer(size.min(i64::MAX as u64) as i64));
    }
    Ok(RedisValue::Array(vec![
        RedisValue::BulkString(next),
        RedisValue::Array(items),
    ]))
}

/// `EDGE.MODEL.INFO`: federation state as field/value pairs, in a fixed order (a map
/// under RESP3, a flat array under RESP2).
pub fn model_info(ctx: &Context, args: &Args) -> RedisResult {
    parse(args.rest(), request::no_args)?;
    let fields = state::federation(&mut state::engine());
    let c = ctx.get_raw();
    raw::reply_with_map(c, fields.len() as _);
    for (name, v) in fields {
        raw::reply_with_string_buffer(c, name.as_ptr().cast(), name.len());
        raw::reply_with_long_long(c, v.min(i64::MAX as u64) as i64);
    }
    Ok(RedisValue::NoReply)
}
