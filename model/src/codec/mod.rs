//! Versioned binary formats of what a node persists: one user's state ([`encode_user`]) and the
//! node's model with its cache and counters ([`encode_node`]).
//!
//! Both are framed by [`crate::wire`], like every blob, whatever carries it (an RDB value,
//! the RDB aux field, an AOF rewrite, a RESTORE payload). Every state the model accepts
//! re-encodes to a blob these decoders accept: the tests check it on trained states and
//! the fuzz targets on arbitrary input.

mod node;
mod user;

pub use node::{decode_node, encode_node, NODE_VERSION};
pub use user::{decode_user, encode_user, USER_VERSION};

#[cfg(test)]
mod tests;
