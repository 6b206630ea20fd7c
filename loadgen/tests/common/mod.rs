//! The end-to-end tests' helpers: the server comes from the shared harness (`edge-tests`,
//! tests/src/lib.rs); this adds running the loadgen binary and reading its reports.

#![allow(dead_code)]

use std::process::{Command, Output};

// Re-exported under the old names, for tests that use them.
#[allow(unused_imports)]
pub use edge_tests::{module_path, TempDir};

/// A running server with the module (the shared harness's [`edge_tests::Server`]), under
/// the names these tests have always used.
pub struct Server(edge_tests::Server);

impl Server {
    /// Starts `$REDIS_SERVER` (or redis-server) with the module on a free loopback port.
    pub fn start() -> Server {
        Server(edge_tests::Server::start(edge_tests::ServerOpts::new()))
    }

    /// Starts redis-server without the module: what loadgen must refuse up front.
    pub fn start_without_module() -> Server {
        Server(edge_tests::Server::start(
            edge_tests::ServerOpts::new().without_module(),
        ))
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.0.url()
    }

    /// A connection.
    pub fn con(&self) -> redis::Connection {
        self.0.connect()
    }
}

/// Runs the loadgen binary; panics with its output if it fails.
pub fn loadgen(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .env_remove("EDGE_REDIS_URL")
        .output()
        .expect("run loadgen");
    assert!(
        out.status.success(),
        "loadgen {args:?} failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Reads a JSON file.
pub fn json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report written")).expect("JSON")
}
