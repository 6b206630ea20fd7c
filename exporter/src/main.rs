//! `exporter`: the edgecache Prometheus exporter, run as a sidecar next to Redis.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use exporter::scrape::parse_targets;
use exporter::server::HttpServer;
use exporter::Exporter;

/// Serves `INFO edge` from one or more Redis servers as Prometheus metrics.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Redis server to scrape, as URL or NAME=URL (NAME becomes the `edge` label; the
    /// default label is host:port). Repeat, or comma-separate in the environment.
    /// `rediss://` connects with TLS (certificates are verified; see --tls-ca-cert).
    #[arg(
        long = "redis",
        env = "REDIS_ADDR",
        value_delimiter = ',',
        default_value = "redis://127.0.0.1:6379"
    )]
    redis: Vec<String>,

    /// ACL user for every target (overrides a user in the URL).
    #[arg(long, env = "REDIS_USER")]
    redis_user: Option<String>,

    /// Password for every target (overrides one in the URL). Prefer the environment
    /// variable: command lines are visible to other users.
    #[arg(long, env = "REDIS_PASSWORD", hide_env_values = true)]
    redis_password: Option<String>,

    /// Address to serve /metrics and /health on. The port is outside 9100-9999 (the
    /// Prometheus default-port-allocations wiki lists that range as fully taken), so the
    /// exporter runs beside redis_exporter (9121) on one host.
    #[arg(long, env = "EXPORTER_LISTEN", default_value = "127.0.0.1:19121")]
    listen: String,

    /// PEM file of CA certificates to trust for rediss:// targets instead of the system
    /// store (for edges with self-signed certificates).
    #[arg(long, env = "REDIS_TLS_CA_CERT")]
    tls_ca_cert: Option<std::path::PathBuf>,

    /// Seconds allowed for connecting to and reading from each edge per scrape.
    #[arg(long, env = "EXPORTER_TIMEOUT", default_value_t = 2.0)]
    timeout: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // rediss:// needs a process-wide rustls crypto provider; ring is the one compiled in.
    // An error only means one is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if !(args.timeout.is_finite() && args.timeout > 0.0 && args.timeout <= 60.0) {
        eprintln!("exporter: --timeout must be between 0 and 60 seconds");
        return ExitCode::from(2);
    }
    let targets = match parse_targets(
        &args.redis,
        args.redis_user.as_deref(),
        args.redis_password.as_deref(),
    ) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("exporter: {e}");
            return ExitCode::from(2);
        }
    };
    let targets = match &args.tls_ca_cert {
        None => targets,
        Some(path) => match std::fs::read(path) {
            Ok(pem) => {
                let pem = Arc::new(pem);
                targets
                    .into_iter()
                    .map(|t| t.with_root_cert(Arc::clone(&pem)))
                    .collect()
            }
            Err(e) => {
                eprintln!("exporter: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
    };
    let exporter = Arc::new(Exporter::new(
        targets,
        Duration::from_secs_f64(args.timeout),
    ));
    let server = match HttpServer::bind(&args.listen) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("exporter: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(1);
        }
    };
    eprintln!(
        "exporter: serving http://{}/metrics for edges: {}",
        server.local_addr(),
        exporter.edge_names().join(", ")
    );
    match server.serve(exporter) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("exporter: cannot start the HTTP server: {e}");
            ExitCode::from(1)
        }
    }
}
