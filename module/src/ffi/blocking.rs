//! A client blocked while a background thread works on one of its arguments: the C-API
//! side of `EDGE.MODEL.IMPORT` of a large blob (the policy lives in `crate::import`).
//!
//! [`Blocked::block`] parks the client and keeps the argument alive; the thread reads it
//! with [`Blocked::arg`], then [`Blocked::finish`] takes the server's lock (the module
//! GIL), runs the caller's merge with a [`Locked`] view (its flags, its replication), frees
//! the argument, replies and unblocks the client, exactly once.

use std::ffi::{c_int, CStr, CString};
use std::marker::PhantomData;

use redis_module::{raw, Context, ContextFlags};

use crate::ffi::command::Args;

/// Present in every server this module loads into (Redis 6.2+).
const API: &str = "Redis module API (Redis 6.2+)";

/// A blocked client and the argument it waits on.
pub struct Blocked {
    client: *mut raw::RedisModuleBlockedClient,
    /// Retained: Redis leaves a string with other references unchanged, so it may be read
    /// off the main thread; it is released with the GIL held in [`Blocked::finish`].
    arg: *mut raw::RedisModuleString,
}

// SAFETY: a blocked client handle is meant to be unblocked from another thread; the
// retained string is only read (never written) off the main thread, and only released with
// the GIL held.
unsafe impl Send for Blocked {}

impl Blocked {
    /// Blocks the running command's client and keeps its argument `index` (0 is the first
    /// after the command name) alive past the command. The handler must then reply
    /// `NoReply`: the reply comes from [`Blocked::finish`].
    pub fn block(ctx: &Context, args: &Args, index: usize) -> Blocked {
        let arg = args.raw_arg(index);
        // SAFETY: the API table is filled before any command runs and never written again;
        // the context is this command's and `arg` one of its arguments, retained here so
        // that it outlives the command.
        let client = unsafe {
            raw::RedisModule_RetainString.expect(API)(std::ptr::null_mut(), arg);
            raw::RedisModule_BlockClient.expect(API)(ctx.get_raw(), None, None, None, 0)
        };
        Blocked { client, arg }
    }

    /// The argument's bytes.
    pub fn arg(&self) -> &[u8] {
        // SAFETY: the retained string stays alive and unchanged until `finish` frees it,
        // which takes `self` and so ends every borrow of these bytes first.
        unsafe {
            let mut len = 0usize;
            let p = raw::RedisModule_StringPtrLen.expect(API)(self.arg, &mut len);
            std::slice::from_raw_parts(p.cast::<u8>(), len)
        }
    }

    /// With the GIL held, runs `merge` (whose `Ok` is the integer reply and `Err` the error
    /// reply), then releases the argument, replies and unblocks the client.
    pub fn finish(self, merge: impl FnOnce(&Locked<'_>) -> Result<i64, String>) {
        // SAFETY: the thread-safe context belongs to the blocked client and is used only on
        // this thread; everything between Lock and Unlock runs with the GIL held, so the
        // engine, replication and the retained string's refcount are touched as from a
        // command. The client is unblocked once, after its reply.
        unsafe {
            let ts = raw::RedisModule_GetThreadSafeContext.expect(API)(self.client);
            raw::RedisModule_ThreadSafeContextLock.expect(API)(ts);
            let reply = merge(&Locked {
                ctx: ts,
                arg: self.arg,
                _gil: PhantomData,
            });
            raw::RedisModule_FreeString.expect(API)(std::ptr::null_mut(), self.arg);
            raw::RedisModule_ThreadSafeContextUnlock.expect(API)(ts);
            match reply {
                Ok(n) => {
                    raw::RedisModule_ReplyWithLongLong.expect(API)(ts, n);
                }
                Err(msg) => {
                    let msg = CString::new(msg).unwrap_or_default();
                    raw::RedisModule_ReplyWithError.expect(API)(ts, msg.as_ptr());
                }
            }
            raw::RedisModule_FreeThreadSafeContext.expect(API)(ts);
            raw::RedisModule_UnblockClient.expect(API)(self.client, std::ptr::null_mut());
        }
    }
}

/// The server as seen with the GIL held, inside [`Blocked::finish`].
pub struct Locked<'a> {
    ctx: *mut raw::RedisModuleCtx,
    arg: *mut raw::RedisModuleString,
    _gil: PhantomData<&'a Blocked>,
}

impl Locked<'_> {
    /// The server's state now (it may have become a replica, or started loading, while
    /// the thread worked).
    pub fn flags(&self) -> ContextFlags {
        // SAFETY: a live thread-safe context, the GIL held.
        let raw = unsafe { raw::RedisModule_GetContextFlags.expect(API)(self.ctx) };
        ContextFlags::from_bits_truncate(raw as c_int)
    }

    /// Propagates `name arg TS ts` to the replicas and the AOF, at this point of the
    /// command stream.
    pub fn replicate_with_ts(&self, name: &CStr, ts: i64) {
        // SAFETY: a live thread-safe context and the retained argument, the GIL held; the
        // created strings are freed after Redis took its own references.
        unsafe {
            let create = raw::RedisModule_CreateString.expect(API);
            let from_ll = raw::RedisModule_CreateStringFromLongLong.expect(API);
            let free = raw::RedisModule_FreeString.expect(API);
            let added = [create(self.ctx, c"TS".as_ptr(), 2), from_ll(self.ctx, ts)];
            let mut argv = [self.arg, added[0], added[1]];
            raw::RedisModule_Replicate.expect(API)(
                self.ctx,
                name.as_ptr(),
                c"v".as_ptr(),
                argv.as_mut_ptr(),
                argv.len(),
            );
            added.into_iter().for_each(|s| free(self.ctx, s));
        }
    }
}
