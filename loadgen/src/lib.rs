//! `loadgen`: the tool users run to feed edgecache, benchmark it and judge its predictions.
//!
//! The binary (`main.rs`) is a thin clap front end; everything it does lives here so the
//! end-to-end tests and other crates can drive the same code:
//!
//! - [`simulate`]: a structured synthetic viewing workload (series, binges, genres, a daily
//!   rhythm), so prediction has something real to learn;
//! - [`logs`]: reading JSON lines, GroupLens `u.data` and CSV rating exports into one
//!   time-ordered event list;
//! - [`replay`]: streaming a log into a server with pipelining;
//! - [`cluster`]: the Redis Cluster client behind `--redis redis+cluster://…`, which keeps
//!   each viewer's views in order while slots move;
//! - [`eval`]: the prequential evaluation protocol, its predictor and cache baselines, the
//!   report and the plot;
//! - [`holdout`]: the held-out protocol: the module learning online against offline models
//!   (item-kNN, popularity) fitted once on the start of the log;
//! - [`baselines`]: demand-fetch cache policies (LRU, LFU, ARC, S3-FIFO, W-TinyLFU) and
//!   Belady's MIN, the offline optimum;
//! - [`bench`]: throughput and latency under load, against plain-Redis baselines;
//! - [`http`]: a log's views as HTTP requests against `edge-server`: byte hit ratio,
//!   origin bytes, time to first byte by outcome.

pub mod baselines;
pub mod bench;
pub mod cluster;
pub mod error;
pub mod eval;
pub mod holdout;
pub mod http;
pub mod logs;
pub mod progress;
pub mod replay;
pub mod simulate;
pub mod timefmt;

pub use error::Error;
