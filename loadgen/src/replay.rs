//! Streaming a log into a server in timestamp order, with pipelining.
//!
//! Each event becomes `EDGE.PLAY` (the live flow, the default) or `EDGE.RECORD` (learning
//! only) with its explicit `TS`, `DURATION` and `DEVICE`, so a replay is deterministic and
//! reproducible on any server. Error replies are counted (the first few kept), never fatal:
//! one bad id must not stop a million-line replay.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::logs::Log;

/// Which command carries each event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplayCommand {
    /// EDGE.PLAY: cache lookup, learning and prefetch.
    Play,
    /// EDGE.RECORD: learning only.
    Record,
}

/// What a replay did.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    /// Events sent.
    pub sent: u64,
    /// Commands that succeeded.
    pub ok: u64,
    /// Commands the server refused.
    pub errors: u64,
    /// The first few error replies, with the event's position.
    pub first_errors: Vec<String>,
    /// EDGE.PLAY replies that were hits (0 for EDGE.RECORD).
    pub hits: u64,
    /// Wall-clock seconds.
    pub elapsed_s: f64,
    /// Events per second.
    pub ops_per_sec: f64,
    /// Malformed input lines skipped.
    pub malformed: u64,
}

/// A connection to one server, or to a Redis Cluster through the `redis` crate's cluster
/// client. EDGE.* commands declare the user as their key, so a cluster routes each event
/// to the shard that owns its viewer, following MOVED and ASK while slots move.
pub enum Conn {
    /// One server.
    Node(redis::Connection),
    /// A Redis Cluster (boxed: the cluster connection is large).
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl Conn {
    /// Whether this is a cluster connection (some commands, like PING, cannot be pipelined
    /// across a cluster).
    pub fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }

    /// Runs `pipe` and returns one result per command, error replies included (as
    /// `ignore_errors` does on one server). On a cluster the pipeline is split by node; if
    /// some command fails, the replies of the others in that pipeline are not returned
    /// (they read as `Nil`), since the cluster pipeline reports only the failures.
    pub fn pipeline(
        &mut self,
        pipe: &redis::Pipeline,
    ) -> redis::RedisResult<Vec<redis::RedisResult<redis::Value>>> {
        match self {
            Conn::Node(c) => {
                let mut p = pipe.clone();
                p.ignore_errors();
                p.query(c)
            }
            Conn::Cluster(c) => {
                let n = pipe.cmd_iter().count();
                let mut cp = redis::cluster::ClusterPipeline::with_capacity(n);
                for cmd in pipe.cmd_iter() {
                    cp.add_command(cmd.clone());
                }
                match cp.query::<Vec<redis::Value>>(c) {
                    Ok(v) => Ok(v.into_iter().map(Ok).collect()),
                    Err(e) => {
                        let Some(failed) = e.clone().into_server_errors() else {
                            return Err(e);
                        };
                        let mut out: Vec<redis::RedisResult<redis::Value>> =
                            (0..n).map(|_| Ok(redis::Value::Nil)).collect();
                        for (i, err) in failed.iter() {
                            if let Some(slot) = out.get_mut(*i) {
                                *slot = Err(err.clone().into());
                            }
                        }
                        Ok(out)
                    }
                }
            }
        }
    }
}

/// Whether `url` names a cluster: `redis+cluster://host:port[,host:port…]`, or several
/// comma-separated server URLs (`redis://a:7001,redis://b:7002`).
pub fn is_cluster_url(url: &str) -> bool {
    url.starts_with("redis+cluster://") || url.contains(',')
}

/// The seed nodes of a cluster URL (see [`is_cluster_url`]) as plain server URLs.
pub fn cluster_nodes(url: &str) -> Vec<String> {
    match url.strip_prefix("redis+cluster://") {
        Some(rest) => rest
            .split(',')
            .filter(|n| !n.trim().is_empty())
            .map(|n| format!("redis://{}", n.trim()))
            .collect(),
        None => url
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(String::from)
            .collect(),
    }
}

/// Sends every event of `log` through `con`, `pipeline` per round trip. Prints throughput
/// about once a second (a progress bar on a terminal, a line otherwise, unless `quiet`).
pub fn send_log(
    con: &mut Conn,
    log: &Log,
    command: ReplayCommand,
    pipeline: usize,
    quiet: bool,
) -> Result<ReplayReport> {
    let start = Instant::now();
    let pb = crate::progress::bar(log.events.len() as u64, "replay");
    let lines = !quiet && !std::io::stderr().is_terminal();
    let mut last_print = Instant::now();
    let mut r = ReplayReport {
        sent: 0,
        ok: 0,
        errors: 0,
        first_errors: Vec::new(),
        hits: 0,
        elapsed_s: 0.0,
        ops_per_sec: 0.0,
        malformed: log.malformed_count,
    };
    for chunk in log.events.chunks(pipeline.max(1)) {
        let mut pipe = redis::pipe();
        for e in chunk {
            match command {
                ReplayCommand::Play => crate::eval::edge::push_play(&mut pipe, log, e, true),
                ReplayCommand::Record => {
                    crate::eval::edge::push_view(&mut pipe, "EDGE.RECORD", log, e);
                }
            }
        }
        let replies = con
            .pipeline(&pipe)
            .map_err(|e| Error::redis("sending a pipeline of events", e))?;
        for reply in replies {
            r.sent += 1;
            match reply {
                Ok(v) => {
                    r.ok += 1;
                    if command == ReplayCommand::Play {
                        if let Ok((true, _)) = crate::eval::edge::parse_play(&v) {
                            r.hits += 1;
                        }
                    }
                }
                Err(e) => {
                    r.errors += 1;
                    if r.first_errors.len() < 10 {
                        r.first_errors.push(format!("event {}: {e}", r.sent));
                    }
                }
            }
        }
        pb.inc(chunk.len() as u64);
        if lines && last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "replay: {}/{} events, {:.0} events/s, {} errors",
                r.sent,
                log.events.len(),
                r.sent as f64 / secs,
                r.errors
            );
        }
    }
    pb.finish_and_clear();
    r.elapsed_s = start.elapsed().as_secs_f64();
    r.ops_per_sec = r.sent as f64 / r.elapsed_s.max(1e-9);
    Ok(r)
}

/// Opens a connection to `url` (a cluster when [`is_cluster_url`]), with a message that
/// says what to check on failure.
pub fn connect(url: &str) -> Result<Conn> {
    if is_cluster_url(url) {
        let client = redis::cluster::ClusterClientBuilder::new(cluster_nodes(url))
            .connection_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| Error::redis(format!("parsing cluster URL {url}"), e))?;
        return client
            .get_connection()
            .map(|c| Conn::Cluster(Box::new(c)))
            .map_err(|e| Error::redis(format!("connecting to cluster {url}"), e));
    }
    let client =
        redis::Client::open(url).map_err(|e| Error::redis(format!("parsing URL {url}"), e))?;
    client
        .get_connection_with_timeout(Duration::from_secs(5))
        .map(Conn::Node)
        .map_err(|e| Error::redis(format!("connecting to {url}"), e))
}
