//! Fuzz targets for edgecache's untrusted inputs: the EDGE.* argument grammar (any client)
//! and the blob codec (RDB values, `EDGE.RESTORE` and `EDGE.NODE.RESTORE` payloads).
//!
//! The checks themselves live in [`checks`], a file with no dependency on libFuzzer, so
//! the end-to-end crate replays the committed corpus through the very same code on stable
//! Rust (`tests/tests/fuzz_corpus.rs`), and a crash found here becomes a plain regression
//! test there.

#[path = "checks.rs"]
pub mod checks;
