//! Commands at the C API: registering the table, calling a handler with its arguments
//! viewed in place, replicating with an explicit timestamp, keyspace events and the replies
//! written straight from the engine's memory. Handlers (in `commands.rs`) are safe code
//! over these.

use std::ffi::{c_int, CStr};
use std::mem::ManuallyDrop;

use redis_module::{raw, Context, ContextFlags, NotifyEvent, RedisResult, RedisString};

use crate::ffi::docs::Doc;

/// One row of the command table.
pub struct Command {
    /// The name Redis registers (lower case).
    pub name: &'static CStr,
    /// What Redis calls: [`dispatch`] with the handler (see `command!`).
    pub run: raw::RedisModuleCmdFunc,
    /// Command flags, as `RedisModule_CreateCommand` takes them.
    pub flags: &'static CStr,
    /// First key, last key and step, as `RedisModule_CreateCommand` takes them.
    pub keys: (c_int, c_int, c_int),
    /// ACL categories, arity, arguments and `COMMAND DOCS` (see [`crate::ffi::docs`]).
    pub doc: Doc,
}

/// A row of [`crate::commands::COMMANDS`]: a C entry point per command, since Redis hands a command
/// function no pointer of our own to tell them apart.
macro_rules! command {
    ($name:literal, $handler:path, $flags:literal, $keys:expr, $doc:expr) => {
        $crate::ffi::command::Command {
            name: $name,
            run: {
                extern "C" fn run(
                    ctx: *mut ::redis_module::raw::RedisModuleCtx,
                    argv: *mut *mut ::redis_module::raw::RedisModuleString,
                    argc: ::std::ffi::c_int,
                ) -> ::std::ffi::c_int {
                    $crate::ffi::command::dispatch(ctx, argv, argc, $handler)
                }
                Some(run)
            },
            flags: $flags,
            keys: $keys,
            doc: $doc,
        }
    };
}
pub(crate) use command;

/// Registers the command table with Redis.
pub fn register(ctx: &Context, commands: &[Command]) -> Result<(), String> {
    // SAFETY: the API table is filled by RedisModule_Init before OnLoad and never written
    // again; names and flags are NUL-terminated constants; `run` has the C signature.
    let create = unsafe { raw::RedisModule_CreateCommand }.ok_or("no command API")?;
    for c in commands {
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
    pub fn rest(&self) -> &'a [&'a [u8]] {
        self.bytes.get(1..).unwrap_or_default()
    }

    /// The key (the first argument). Only after the grammar accepted the arguments,
    /// which every command with a key checks for.
    pub fn key(&self) -> &'a RedisString {
        &self.strings[1].0
    }

    /// The client's argument `index` after the command name, as Redis holds it.
    pub(super) fn raw_arg(&self, index: usize) -> *mut raw::RedisModuleString {
        self.strings[index + 1].0.inner
    }

    /// The client's strings after the command name, as Redis holds them.
    fn raw_rest(&self) -> impl Iterator<Item = *mut raw::RedisModuleString> + 'a {
        self.strings.iter().skip(1).map(|a| a.0.inner)
    }
}

/// A command handler: the context and the arguments.
pub type Handler = fn(&Context, &Args) -> RedisResult;

/// No command takes more than a dozen arguments, so they are viewed from the stack; a
/// longer line goes to the heap and still gets its arity error from the grammar.
const INLINE_ARGS: usize = 16;

/// Runs `handler` on the command Redis called, and replies with its result as the crate's
/// own wrapper does. The arguments are viewed, not owned: Redis keeps `argv` and its
/// strings alive until the command returns, and nothing here frees them or lets a view
/// outlive the call (the handler gets slices borrowed from this frame).
pub fn dispatch(
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

/// Propagates a write with its timestamp made explicit.
///
/// Straight through the C API: this runs on every record and play, and the safe wrappers
/// would copy the command name and each argument into Rust allocations first.
pub fn replicate_with_ts(ctx: &Context, name: &CStr, args: &Args, given: Option<i64>, ts: i64) {
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

/// Fires the module keyspace event `event` on `key`.
pub fn notify(ctx: &Context, event: &CStr, key: &RedisString) {
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

/// Replies a ranked list straight from the engine's memory: item ids, or with scores
/// `item → score` pairs (a map under RESP3, a flat array under RESP2).
pub fn reply_list<'a>(
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

/// Replies `fields` as a map of name to integer (a flat array under RESP2), in order.
pub fn reply_fields(ctx: &Context, fields: &[(&str, u64)]) {
    let c = ctx.get_raw();
    raw::reply_with_map(c, fields.len() as _);
    for (name, v) in fields {
        raw::reply_with_string_buffer(c, name.as_ptr().cast(), name.len());
        raw::reply_with_long_long(c, (*v).min(i64::MAX as u64) as i64);
    }
}

/// This node's id in the updates it exports: its cluster node id in cluster mode, else the
/// server's `run_id`. Only a label for logs (the federator keys edges by its own names):
/// `run_id` changes on restart, and an export round carries on from the persisted model.
pub fn node_id(ctx: &Context) -> String {
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
