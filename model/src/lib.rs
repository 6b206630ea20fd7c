//! The pure engine behind edgecache.
//!
//! Nothing in this crate knows it runs inside Redis: the module, `loadgen`'s in-process
//! evaluation and the federator all drive the same types, so a figure measured here is the
//! figure the server gives. The layout follows the data, lowest layer first:
//!
//! - [`wire`]: the frame and bounded fields under every blob, and the limits on values;
//! - [`hash`], [`decay`]: item fingerprints, and forward exponential decay so old evidence
//!   fades without touching every count;
//! - [`catalog`]: item names interned to dense slots, bounded, with popularity;
//! - [`learn`]: what the node learns from views: Space-Saving rows between items, the
//!   table of them and its learner thread, and the node's model;
//! - [`user`]: one viewer's recent history, seen set and personal transitions;
//! - [`memo`], [`scoring`]: the blend of evidence into a ranked list, and its memo;
//! - [`cache`]: the edge cache, its demand core and its prefetch budget;
//! - [`federation`]: exports, aggregates and imports between edges;
//! - [`codec`]: the persisted formats of a user and of the node;
//! - [`engine`]: the node's whole state and the live flows (record, predict, play);
//! - [`request`], [`report`]: a command's arguments parsed, and a viewer's report;
//! - [`config`] (with its one declaration per setting, [`config::settings`]), [`stats`],
//!   [`error`]: settings, counters and errors.

pub mod cache;
pub mod catalog;
pub mod codec;
pub mod config;
pub mod decay;
pub mod engine;
pub mod error;
pub mod federation;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod hash;
pub mod learn;
pub mod memo;
pub mod report;
pub mod request;
pub mod scoring;
pub mod stats;
pub mod user;
pub mod wire;

pub use cache::{CacheOutcome, CachePolicy, EdgeCache};
pub use config::Config;
pub use engine::{Engine, PlayOutcome, View};
pub use error::{CodecError, ConfigError};
pub use scoring::Prediction;
pub use user::UserState;
