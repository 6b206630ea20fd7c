//! The EDGE.* commands: parse, call the engine, reply.
//!
//! What each command is (name, handler, flags, keys, ACL categories, arity, arguments
//! and `COMMAND DOCS`) is one row of [`COMMANDS`]; the README's command table is checked
//! against what the server reports from it (tests/tests/docs.rs).
//!
//! The user id is the Redis key, so hash slots, ACL key patterns, TTLs and `MEMORY USAGE`
//! apply to it directly. Writes replicate with an explicit `TS`, so a replica or an AOF
//! replay learns exactly what the master learned even when the client relied on the clock.

use redis_module::{Context, ContextFlags, RedisError, RedisResult, RedisString, RedisValue};

use edge_model::codec::{decode_node, decode_user};
use edge_model::federation::{decode_packed, encode_update};
use edge_model::request::{self, ArgError, ViewRequest};
use edge_model::{CacheOutcome, Engine, UserState};

use crate::ffi::command::{
    command, node_id, notify, replicate_with_ts, reply_fields, reply_list, Args, Command,
};
use crate::ffi::datatype::USER_TYPE;
use crate::ffi::docs::{arg, opt, Access, Arg as DocArg, Doc, Kind};
use crate::state;

const USER: DocArg = arg("user", Kind::Key);
const VIEW: [DocArg; 5] = [
    USER,
    arg("item", Kind::Str),
    opt("DURATION", Kind::Int),
    opt("TS", Kind::Int),
    opt("DEVICE", Kind::Str),
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
        args: &[USER, opt("K", Kind::Int), opt("WITHSCORES", Kind::Flag), opt("INCLUDESEEN", Kind::Flag)],
    }),
    command!(c"edge.prefetch", prefetch, c"write deny-oom fast", (1, 1, 1), Doc {
        category: "write",
        summary: "Predicts for a user and puts the top k into this node's edge cache; returns the items newly fetched.",
        complexity: "O(score-window * successors-max + k log k)",
        arity: -2,
        access: Access::Read,
        args: &[USER, opt("K", Kind::Int)],
    }),
    command!(c"edge.play", play, c"write deny-oom fast", (1, 1, 1), Doc {
        category: "write",
        summary: "The live flow: HIT/MISS from the edge cache, learns the view, prefetches the next predictions; replies [status, [prefetched...]]. With DELTA also what a store holding the bytes must fetch and drop, and whether it must resync.",
        complexity: "O(learn-window + score-window * successors-max)",
        arity: -3,
        access: Access::Update,
        args: &[
            USER,
            arg("item", Kind::Str),
            opt("DURATION", Kind::Int),
            opt("TS", Kind::Int),
            opt("DEVICE", Kind::Str),
            opt("SIZE", Kind::Int),
            opt("DELTA", Kind::Flag),
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
        summary: "Erases the viewer's key: history, seen set, personal transitions. What the viewer added to the node's counts stays, as anonymous sums (all that federation ever sends).",
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
        args: &[opt("SINCE", Kind::Int)],
    }),
    command!(c"edge.model.import", model_import, c"write deny-oom admin", (0, 0, 0), Doc {
        category: "write dangerous admin",
        summary: "Merges a federator's aggregate of the other edges into the peers' table: 1 applied, 0 round already imported; a bad blob is refused and changes nothing. TS is the import's present (default: the server clock, replicated as TS).",
        complexity: "O(size of the blob)",
        arity: -2,
        access: Access::None,
        args: &[arg("blob", Kind::Str), opt("TS", Kind::Int)],
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
        summary: "A page of the edge cache's contents in id order, [next, [item, size, ...]] (next: the following page's AFTER, \"\" after the last; COUNT 1-1000, default 100): what a store resynchronises from.",
        complexity: "O(cached items)",
        arity: -1,
        access: Access::None,
        args: &[opt("AFTER", Kind::Str), opt("COUNT", Kind::Int)],
    }),
];

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
///
/// A large blob from a client that may block is decoded off the event loop and merged
/// later, between two commands, where it is also replicated (see [`crate::import`]); the
/// reply then comes when it has been merged.
pub fn model_import(ctx: &Context, args: &Args) -> RedisResult {
    let (blob, given) = parse(args.rest(), request::model_import)?;
    if crate::import::off_thread(ctx, blob.len()) {
        crate::import::start(ctx, args, given);
        return Ok(RedisValue::NoReply);
    }
    let started = std::time::Instant::now();
    let update = decode_packed(blob).map_err(|e| err(format_args!("invalid update blob: {e}")))?;
    let now = given.unwrap_or_else(state::now_ms);
    let applied = crate::import::apply(&update, now, blob.len(), started);
    replicate_with_ts(ctx, c"EDGE.MODEL.IMPORT", args, given, now);
    Ok(RedisValue::Integer(i64::from(applied)))
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
    reply_fields(ctx, &fields);
    Ok(RedisValue::NoReply)
}
