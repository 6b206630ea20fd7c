//! The one room of the module that calls the Redis C API: everything `unsafe` is here,
//! behind small safe functions (a blocked client for a large import among them), so that the handlers (`commands.rs`), settings
//! (`config.rs`), INFO (`info.rs`) and the engine's home (`state.rs`) are safe code.

pub mod blocking;
pub mod command;
pub mod datatype;
pub mod docs;
pub mod server;
