//! The pure engine behind edgecache.
//!
//! Nothing in this crate knows it runs inside Redis: the module, `loadgen`'s in-process
//! evaluation and the federator all drive the same types, so a figure measured here is the
//! figure the server gives. The layout follows the data:
//!
//! - [`catalog`]: item names interned to dense slots, bounded, with popularity;
//! - [`decay`]: forward exponential decay, so old evidence fades without touching every count;
//! - [`transitions`]: bounded successor rows (Space-Saving) between items;
//! - [`user`]: one viewer's recent history, seen set and personal transitions;
//! - [`scoring`]: the blend of evidence and the bounded top-k;
//! - [`cache`]: the edge cache and its eviction policies;
//! - [`engine`]: the node's whole state and the live flows (record, predict, play);
//! - [`codec`]: versioned binary formats for persistence and exchange;
//! - [`federated`], [`packed`]: exports, aggregates and imports between edges;
//! - [`config`], [`stats`], [`error`]: settings, counters and errors.

pub mod cache;
pub mod catalog;
pub mod codec;
pub mod config;
pub mod decay;
pub mod engine;
pub mod error;
pub mod federated;
pub mod global;
pub mod hash;
pub mod packed;
pub mod report;
pub mod request;
pub mod scoring;
pub mod settings;
pub mod stats;
pub mod transitions;
pub mod user;

pub use cache::{CacheOutcome, CachePolicy, EdgeCache};
pub use config::Config;
pub use engine::{Engine, PlayOutcome, View};
pub use error::{CodecError, ConfigError};
pub use scoring::Prediction;
pub use user::UserState;
