//! `COMMAND DOCS` and key specs for the EDGE.* commands, where the server supports them.
//!
//! Debian's Redis 7.0 has `RedisModule_SetCommandInfo`; older servers do not, and then the
//! commands still work with their legacy key positions. The API is looked up at load time,
//! so one build serves both. Here, in the FFI room, the module builds the C structures for
//! Redis from the command table's rows; Redis copies what it is given, and the strings
//! are leaked once at load anyway, so nothing it points to can dangle.

use std::ffi::{c_char, c_int, CString};
use std::ptr;

use redis_module::{raw, Context};

/// One argument as `COMMAND DOCS` shows it.
pub struct Arg {
    name: &'static str,
    kind: Kind,
    /// The keyword before the value (`K 10`), for options.
    token: Option<&'static str>,
    optional: bool,
}

/// What an argument holds.
#[derive(Clone, Copy)]
pub enum Kind {
    Key,
    Str,
    Int,
    Flag,
}

/// How a command uses its key.
#[derive(Clone, Copy)]
pub enum Access {
    None,
    Read,
    Update,
    Overwrite,
    Delete,
}

/// What `COMMAND DOCS` and the ACL say about one command (see `commands::COMMANDS`).
pub struct Doc {
    /// ACL categories (`read` or `write`, matching the command's flags, and `dangerous
    /// admin` for the commands that change the node as a whole), set where the server can
    /// attach categories to module commands (Redis 7.2+, Valkey).
    pub category: &'static str,
    pub summary: &'static str,
    pub complexity: &'static str,
    pub arity: c_int,
    pub access: Access,
    pub args: &'static [Arg],
}

/// A required positional argument.
pub const fn arg(name: &'static str, kind: Kind) -> Arg {
    Arg {
        name,
        kind,
        token: None,
        optional: false,
    }
}

/// An optional `TOKEN value` argument (a bare `TOKEN` for [`Kind::Flag`]). No
/// `display_text`: Redis 7.0 does not report it and Valkey shows it in place of the name,
/// so the two would document the same command differently.
pub const fn opt(token: &'static str, kind: Kind) -> Arg {
    Arg {
        name: token,
        kind,
        token: Some(token),
        optional: true,
    }
}

fn leak(s: &str) -> *const c_char {
    CString::new(s).expect("no NUL in docs").into_raw()
}

fn c_arg(a: &Arg) -> raw::RedisModuleCommandArg {
    let type_ = match a.kind {
        Kind::Key => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_KEY,
        Kind::Str => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_STRING,
        Kind::Int => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_INTEGER,
        Kind::Flag => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_PURE_TOKEN,
    };
    raw::RedisModuleCommandArg {
        name: leak(&a.name.to_ascii_lowercase()),
        type_,
        key_spec_index: if matches!(a.kind, Kind::Key) { 0 } else { -1 },
        token: a.token.map_or(ptr::null(), leak),
        summary: ptr::null(),
        since: ptr::null(),
        flags: if a.optional {
            raw::REDISMODULE_CMD_ARG_OPTIONAL as c_int
        } else {
            0
        },
        deprecated_since: ptr::null(),
        subargs: ptr::null_mut(),
        display_text: ptr::null(),
    }
}

fn terminator_arg() -> raw::RedisModuleCommandArg {
    raw::RedisModuleCommandArg {
        name: ptr::null(),
        type_: 0,
        key_spec_index: 0,
        token: ptr::null(),
        summary: ptr::null(),
        since: ptr::null(),
        flags: 0,
        deprecated_since: ptr::null(),
        subargs: ptr::null_mut(),
        display_text: ptr::null(),
    }
}

fn key_spec(flags: u32) -> raw::RedisModuleCommandKeySpec {
    raw::RedisModuleCommandKeySpec {
        notes: ptr::null(),
        flags: u64::from(flags),
        begin_search_type: raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_INDEX,
        bs: raw::RedisModuleCommandKeySpec__bindgen_ty_1 {
            index: raw::RedisModuleCommandKeySpec__bindgen_ty_1__bindgen_ty_1 { pos: 1 },
        },
        find_keys_type: raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_RANGE,
        fk: raw::RedisModuleCommandKeySpec__bindgen_ty_2 {
            range: raw::RedisModuleCommandKeySpec__bindgen_ty_2__bindgen_ty_1 {
                lastkey: 0,
                keystep: 1,
                limit: 0,
            },
        },
    }
}

fn terminator_spec() -> raw::RedisModuleCommandKeySpec {
    raw::RedisModuleCommandKeySpec {
        notes: ptr::null(),
        flags: 0,
        begin_search_type: 0,
        bs: raw::RedisModuleCommandKeySpec__bindgen_ty_1 {
            index: raw::RedisModuleCommandKeySpec__bindgen_ty_1__bindgen_ty_1 { pos: 0 },
        },
        find_keys_type: 0,
        fk: raw::RedisModuleCommandKeySpec__bindgen_ty_2 {
            range: raw::RedisModuleCommandKeySpec__bindgen_ty_2__bindgen_ty_1 {
                lastkey: 0,
                keystep: 0,
                limit: 0,
            },
        },
    }
}

fn access_flags(a: Access) -> Option<u32> {
    Some(match a {
        Access::None => return None,
        Access::Read => raw::REDISMODULE_CMD_KEY_RO | raw::REDISMODULE_CMD_KEY_ACCESS,
        Access::Update => raw::REDISMODULE_CMD_KEY_RW | raw::REDISMODULE_CMD_KEY_UPDATE,
        Access::Overwrite => raw::REDISMODULE_CMD_KEY_OW | raw::REDISMODULE_CMD_KEY_UPDATE,
        Access::Delete => raw::REDISMODULE_CMD_KEY_RM | raw::REDISMODULE_CMD_KEY_DELETE,
    })
}

/// Attaches summaries, arguments and key specs to every documented command. A server
/// without the API (before 7.0) is left with the legacy key positions; a refusal is logged,
/// never fatal: documentation must not keep the module from loading.
pub fn register(ctx: &Context, commands: &[crate::ffi::command::Command]) {
    // SAFETY: the API table is filled by RedisModule_Init before OnLoad and not written
    // again; this runs on the main thread during OnLoad.
    let (set_info, get_command, set_categories) = unsafe {
        (
            raw::RedisModule_SetCommandInfo,
            raw::RedisModule_GetCommand,
            raw::RedisModule_SetCommandACLCategories,
        )
    };
    let (Some(set_info), Some(get_command)) = (set_info, get_command) else {
        ctx.log_notice("edge: this server has no command-info API; COMMAND DOCS stays empty");
        return;
    };
    let version: &'static raw::RedisModuleCommandInfoVersion =
        Box::leak(Box::new(raw::RedisModuleCommandInfoVersion {
            version: 1,
            sizeof_historyentry: std::mem::size_of::<raw::RedisModuleCommandHistoryEntry>(),
            sizeof_keyspec: std::mem::size_of::<raw::RedisModuleCommandKeySpec>(),
            sizeof_arg: std::mem::size_of::<raw::RedisModuleCommandArg>(),
        }));
    for c in commands {
        let d = &c.doc;
        let label = c.name.to_str().expect("command names are ASCII");
        let mut args: Vec<raw::RedisModuleCommandArg> = d.args.iter().map(c_arg).collect();
        args.push(terminator_arg());
        let specs: Vec<raw::RedisModuleCommandKeySpec> = match access_flags(d.access) {
            Some(f) => vec![key_spec(f), terminator_spec()],
            None => Vec::new(),
        };
        let specs = Box::leak(specs.into_boxed_slice());
        let info = Box::leak(Box::new(raw::RedisModuleCommandInfo {
            version,
            summary: leak(d.summary),
            complexity: leak(d.complexity),
            since: leak("1.0.0"),
            history: ptr::null_mut(),
            tips: ptr::null(),
            arity: d.arity,
            key_specs: if specs.is_empty() {
                ptr::null_mut()
            } else {
                specs.as_mut_ptr()
            },
            args: Box::leak(args.into_boxed_slice()).as_mut_ptr(),
        }));
        // SAFETY: `name` is a NUL-terminated command this module registered; `info` and
        // everything it points to are leaked, so valid for as long as Redis may read them,
        // and laid out as the version block (`sizeof_*`) declares.
        let ok = unsafe {
            let cmd = get_command(ctx.get_raw(), c.name.as_ptr());
            !cmd.is_null() && set_info(cmd, info) == raw::REDISMODULE_OK as c_int
        };
        if !ok {
            ctx.log_warning(&format!("edge: COMMAND DOCS for {label} refused"));
        }
        if let Some(set_categories) = set_categories {
            let cat = CString::new(d.category).expect("no NUL");
            // SAFETY: as above for the command; the category string outlives the call.
            let ok = unsafe {
                let cmd = get_command(ctx.get_raw(), c.name.as_ptr());
                !cmd.is_null() && set_categories(cmd, cat.as_ptr()) == raw::REDISMODULE_OK as c_int
            };
            if !ok {
                ctx.log_warning(&format!("edge: ACL category of {label} refused"));
            }
        }
    }
}
