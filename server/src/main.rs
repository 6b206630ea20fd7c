//! `edge-server`: the command line. The work is in the library (`edge_server`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use edge_server::http::{serve, Edge};
use edge_server::module::Module;
use edge_server::origin::{Origin, Source};
use edge_server::store::Store;

/// Serve content to viewers from the edge store the edgecache module decides, fetching
/// misses and prefetches from the origin.
#[derive(Parser)]
#[command(name = "edge-server", version, about)]
struct Cli {
    /// The Redis with the edgecache module loaded.
    #[arg(long, env = "EDGE_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// Where content comes from: an http:// base URL (the item id is appended) or a
    /// directory of files named by item id.
    #[arg(long)]
    origin: String,
    /// Where the edge keeps content: a directory, or `memory`.
    #[arg(long, default_value = "memory")]
    store: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Bytes the store may hold (default: the module's cache-capacity-bytes).
    #[arg(long)]
    max_store_bytes: Option<u64>,
    /// Deadline of one origin fetch, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    origin_timeout_ms: u64,
    /// Largest object fetched from the origin, in bytes.
    #[arg(long, default_value_t = 1 << 30)]
    max_object_bytes: u64,
    /// Prefetch fetches running at once.
    #[arg(long, default_value_t = 8)]
    prefetch_concurrency: usize,
}

fn run(cli: Cli) -> Result<(), String> {
    let source = Source::parse(&cli.origin)?;
    let module = Module::connect(&cli.redis).map_err(|e| {
        format!(
            "{}: {e} (is redis-server running with the edgecache module loaded?)",
            cli.redis
        )
    })?;
    let max_store_bytes = match cli.max_store_bytes {
        Some(n) => n,
        None => module.cache_capacity_bytes().map_err(|e| e.to_string())?,
    };
    let store = if cli.store == "memory" {
        Store::memory(max_store_bytes)
    } else {
        Store::dir(PathBuf::from(&cli.store), max_store_bytes)
            .map_err(|e| format!("--store {}: {e}", cli.store))?
    };
    // A store that outlived the module's view of it (a restart of either) keeps only what
    // the module's cache holds.
    let held = module.cache_listing().map_err(|e| e.to_string())?;
    let dropped = store
        .retain(|item| held.contains(item))
        .map_err(|e| format!("--store {}: {e}", cli.store))?;
    if !dropped.is_empty() {
        eprintln!(
            "edge-server: resynchronised with the module: dropped {} items the edge cache no longer holds",
            dropped.len()
        );
    }
    if cli.prefetch_concurrency == 0 {
        return Err("--prefetch-concurrency must be at least 1".into());
    }
    let origin = Origin {
        source,
        timeout: Duration::from_millis(cli.origin_timeout_ms.max(1)),
        max_object_bytes: cli.max_object_bytes,
    };
    let edge = Arc::new(Edge::new(
        Arc::new(module),
        origin,
        store,
        cli.prefetch_concurrency,
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .thread_name("edge-server")
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&cli.listen)
            .await
            .map_err(|e| format!("--listen {}: {e}", cli.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        println!(
            "edge-server: serving http://{addr}/content/{{item}} (store {}, at most {max_store_bytes} bytes; origin {})",
            cli.store, cli.origin
        );
        serve(listener, edge).await.map_err(|e| e.to_string())
    })
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edge-server: error: {e}");
            ExitCode::FAILURE
        }
    }
}
