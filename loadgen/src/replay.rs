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

/// Sends every event of `log` through `con`, `pipeline` per round trip. Prints throughput
/// about once a second (a progress bar on a terminal, a line otherwise, unless `quiet`).
pub fn send_log(
    con: &mut redis::Connection,
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
        pipe.ignore_errors();
        for e in chunk {
            match command {
                ReplayCommand::Play => crate::eval::edge::push_play(&mut pipe, log, e, true),
                ReplayCommand::Record => {
                    let c = pipe
                        .cmd("EDGE.RECORD")
                        .arg(&log.users[e.user as usize])
                        .arg(&log.items[e.item as usize])
                        .arg("TS")
                        .arg(e.ts_ms);
                    if let Some(d) = e.duration_s {
                        c.arg("DURATION").arg(d);
                    }
                    if let Some(d) = log.device(e) {
                        c.arg("DEVICE").arg(d);
                    }
                }
            }
        }
        let replies: Vec<redis::RedisResult<redis::Value>> = pipe
            .query(con)
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

/// Opens a connection to `url`, with a message that says what to check on failure.
pub fn connect(url: &str) -> Result<redis::Connection> {
    let client =
        redis::Client::open(url).map_err(|e| Error::redis(format!("parsing URL {url}"), e))?;
    client
        .get_connection_with_timeout(Duration::from_secs(5))
        .map_err(|e| Error::redis(format!("connecting to {url}"), e))
}
