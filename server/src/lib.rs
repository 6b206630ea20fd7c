//! `edge-server`: the HTTP edge that delivers the bytes the edgecache module decides to
//! keep.
//!
//! A viewer asks for `GET /content/{item}` (the viewer in `X-Viewer` or `?viewer=`). The
//! server tells the module about the view (`EDGE.PLAY viewer item SIZE bytes`), serves the
//! bytes from its [`store`] when it holds them and from the [`origin`] otherwise (one
//! origin fetch per item however many viewers miss it at once, streamed to them as it
//! arrives: [`flight`]), then fetches the items the module prefetched in the background,
//! with bounded concurrency. Every response says what happened (`X-Edge-Cache: HIT |
//! PREFETCHED-HIT | MISS`), and `/metrics` counts bytes by source, time to first byte by
//! outcome, and prefetched bytes used and wasted.
//!
//! - [`origin`]: where content comes from (an HTTP base URL or a directory);
//! - [`store`]: where the edge keeps it (memory or a directory), bounded in bytes;
//! - [`flight`]: single-flight origin fetches, streamed to every viewer as they arrive;
//! - [`range`]: `Range` requests;
//! - [`module`]: the module's side of a view (a small pool of Redis connections);
//! - [`metrics`]: the Prometheus families;
//! - [`page`]: the viewer's page at `/` and the JSON it reads;
//! - [`http`]: the HTTP service tying them together.

#![forbid(unsafe_code)]

pub mod flight;
pub mod http;
pub mod metrics;
pub mod module;
pub mod origin;
pub mod page;
pub mod range;
pub mod store;
