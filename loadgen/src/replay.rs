//! Streaming a log into a server in timestamp order, with pipelining.
//!
//! Each event becomes `EDGE.PLAY` (the live flow, the default) or `EDGE.RECORD` (learning
//! only) with its explicit `TS`, `DURATION` and `DEVICE`, so a replay is deterministic and
//! reproducible on any server. Errors are counted by kind (the first few kept) and the run
//! goes on, since one bad id must not stop a million-line replay; but a run in which any
//! view was not applied ends with an error ([`ErrorTally::check`]), so a script notices.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use serde::Serialize;

use std::collections::BTreeMap;

use crate::cluster::{ClusterClient, ClusterPolicy, CmdError};
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
    /// Commands not applied (or applied out of order): see `error_kinds`.
    pub errors: u64,
    /// The first few errors, with the event's position.
    pub first_errors: Vec<String>,
    /// Errors per kind (the server's error code, or what the cluster client did).
    pub error_kinds: BTreeMap<String, u64>,
    /// On a cluster: commands re-sent (and then applied, or counted in `errors`), by the
    /// error that sent them back (`MOVED`, `ASK`, `TRYAGAIN`, `connection`…).
    pub resent: BTreeMap<String, u64>,
    /// EDGE.PLAY replies that were hits (0 for EDGE.RECORD).
    pub hits: u64,
    /// Wall-clock seconds.
    pub elapsed_s: f64,
    /// Events per second.
    pub ops_per_sec: f64,
    /// Malformed input lines skipped.
    pub malformed: u64,
}

/// A connection to one server, or to a Redis Cluster through loadgen's own cluster client
/// ([`crate::cluster`]). EDGE.* commands declare the user as their key, so a cluster routes
/// each event to the shard that owns its viewer, and re-sends what a moving slot refused,
/// in order per viewer.
pub enum Conn {
    /// One server.
    Node(redis::Connection),
    /// A Redis Cluster (boxed: the client holds a slot map).
    Cluster(Box<ClusterClient>),
}

impl Conn {
    /// Whether this is a cluster connection (some commands, like PING, cannot be pipelined
    /// across a cluster).
    pub fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }

    /// Runs `pipe` and returns one outcome per command, error replies included (as
    /// `ignore_errors` does on one server). `Err` only when a single server's connection
    /// fails; a cluster reports every command's fate (see [`crate::cluster`]).
    pub fn pipeline(
        &mut self,
        pipe: &redis::Pipeline,
    ) -> redis::RedisResult<Vec<std::result::Result<redis::Value, CmdError>>> {
        match self {
            Conn::Node(c) => {
                let mut p = pipe.clone();
                p.ignore_errors();
                let replies: Vec<redis::RedisResult<redis::Value>> = p.query(c)?;
                Ok(replies
                    .into_iter()
                    .map(|r| r.map_err(CmdError::Refused))
                    .collect())
            }
            Conn::Cluster(c) => {
                let cmds: Vec<redis::Cmd> = pipe.cmd_iter().cloned().collect();
                Ok(c.pipeline(&cmds))
            }
        }
    }
}

/// Errors of a run, counted by kind with the first few texts: what a person needs to see
/// why views were lost, without a million lines of output.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ErrorTally {
    /// Commands that failed.
    pub total: u64,
    /// Failures per kind (the server's error code, or what the cluster client did).
    pub by_kind: BTreeMap<String, u64>,
    /// The first [`ErrorTally::KEPT`] errors, with the command's position.
    pub first: Vec<String>,
}

impl ErrorTally {
    /// Error texts kept.
    pub const KEPT: usize = 10;

    /// Counts `e`, which befell command number `position` (1-based) of the run.
    pub fn add(&mut self, position: u64, e: &CmdError) {
        self.total += 1;
        *self.by_kind.entry(e.kind()).or_default() += 1;
        if self.first.len() < Self::KEPT {
            self.first.push(format!("event {position}: {e}"));
        }
    }

    /// Adds another tally's counts (a bench client's); its texts fill the free places.
    pub fn merge(&mut self, other: &ErrorTally) {
        self.total += other.total;
        for (k, n) in &other.by_kind {
            *self.by_kind.entry(k.clone()).or_default() += n;
        }
        let room = Self::KEPT.saturating_sub(self.first.len());
        self.first.extend(other.first.iter().take(room).cloned());
    }

    /// `"3 × retries exhausted (CLUSTERDOWN), 1 × ERR"`, or `"none"`.
    pub fn kinds(&self) -> String {
        if self.by_kind.is_empty() {
            return "none".into();
        }
        self.by_kind
            .iter()
            .map(|(k, n)| format!("{n} × {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The error lines a person reads: the counts by kind, then the first texts.
    pub fn lines(&self) -> Vec<String> {
        if self.total == 0 {
            return Vec::new();
        }
        let mut v = vec![format!("errors by kind: {}", self.kinds())];
        v.extend(self.first.iter().map(|e| format!("  {e}")));
        if self.total > self.first.len() as u64 {
            v.push(format!("  … {} more", self.total - self.first.len() as u64));
        }
        v
    }

    /// `Err` ([`Error::NotApplied`]) when any command failed: a run that lost views must
    /// not look like a success to a script.
    pub fn check(&self, what: &str, sent: u64) -> Result<()> {
        if self.total == 0 {
            return Ok(());
        }
        Err(Error::NotApplied {
            what: what.to_owned(),
            failed: self.total,
            sent,
            kinds: self.kinds(),
            first: self.first.first().cloned().unwrap_or_default(),
        })
    }
}

impl ReplayReport {
    /// The errors as a tally, for printing and [`ErrorTally::check`].
    pub fn tally(&self) -> ErrorTally {
        ErrorTally {
            total: self.errors,
            by_kind: self.error_kinds.clone(),
            first: self.first_errors.clone(),
        }
    }
}

/// `"re-sent 12 commands (ASK 10, MOVED 2)"` for a run's [`ReplayReport::resent`], or
/// nothing when none was.
pub fn resent_line(resent: &BTreeMap<String, u64>) -> Option<String> {
    let n: u64 = resent.values().sum();
    (n > 0).then(|| {
        let kinds: Vec<String> = resent.iter().map(|(k, n)| format!("{k} {n}")).collect();
        format!(
            "cluster: re-sent {n} commands, in order per viewer ({})",
            kinds.join(", ")
        )
    })
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
/// about once a second (a progress bar on a terminal, a line otherwise, unless `quiet`),
/// under `label`: the subcommand the person ran (`replay`, `simulate`).
pub fn send_log(
    con: &mut Conn,
    log: &Log,
    command: ReplayCommand,
    pipeline: usize,
    quiet: bool,
    label: &str,
) -> Result<ReplayReport> {
    let start = Instant::now();
    let pb = crate::progress::bar(log.events.len() as u64, label, "events");
    let lines = !quiet && !std::io::stderr().is_terminal();
    let mut last_print = Instant::now();
    let mut r = ReplayReport {
        sent: 0,
        ok: 0,
        errors: 0,
        first_errors: Vec::new(),
        error_kinds: BTreeMap::new(),
        resent: BTreeMap::new(),
        hits: 0,
        elapsed_s: 0.0,
        ops_per_sec: 0.0,
        malformed: log.malformed_count,
    };
    let mut tally = ErrorTally::default();
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
                Err(e) => tally.add(r.sent, &e),
            }
        }
        pb.inc(chunk.len() as u64);
        if lines && last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "{label}: {}/{} events, {}, {} errors",
                r.sent,
                log.events.len(),
                crate::progress::rate(r.sent as f64 / secs, "events"),
                tally.total
            );
        }
    }
    pb.finish_and_clear();
    r.errors = tally.total;
    r.first_errors = tally.first;
    r.error_kinds = tally.by_kind;
    if let Conn::Cluster(c) = con {
        r.resent = c.resent().clone();
    }
    r.elapsed_s = start.elapsed().as_secs_f64();
    r.ops_per_sec = r.sent as f64 / r.elapsed_s.max(1e-9);
    Ok(r)
}

/// URL schemes a server URL may have (the client is built without TLS).
const SCHEMES: [&str; 3] = ["redis://", "redis+unix://", "unix://"];

/// Checks that `url` names one server in a form the client takes, before any connection,
/// so that a typo gets a message that shows what a URL looks like ([`Error::BadUrl`]).
pub fn parse_url(url: &str) -> Result<redis::Client> {
    let bad = |reason: String| Error::BadUrl {
        url: url.to_owned(),
        reason,
    };
    if !SCHEMES.iter().any(|s| url.starts_with(s)) {
        let reason = match url.split_once("://") {
            Some(("rediss", _)) => "TLS (rediss://) is not built into loadgen".to_owned(),
            Some((scheme, _)) => format!("unknown scheme {scheme}://"),
            None => "no scheme such as redis://".to_owned(),
        };
        return Err(bad(reason));
    }
    redis::Client::open(url).map_err(|e| bad(e.to_string()))
}

/// Fails with [`Error::NoModule`] unless the server behind `con` knows `EDGE.PLAY`
/// (`COMMAND INFO` answers nil for an unknown command), so that a run against a server
/// without the module stops before its first event instead of counting one error per view.
pub fn require_module(con: &mut redis::Connection, url: &str) -> Result<()> {
    let info: Vec<redis::Value> = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("EDGE.PLAY")
        .query(con)
        .map_err(|e| Error::redis(format!("asking {url} for EDGE.PLAY (COMMAND INFO)"), e))?;
    match info.first() {
        Some(redis::Value::Nil) | None => Err(Error::NoModule {
            url: url.to_owned(),
        }),
        Some(_) => Ok(()),
    }
}

/// A connection to the one server at `url`: the URL checked ([`parse_url`]), the
/// connection made with a 5 s timeout, and, when `need_module`, the module asked for
/// ([`require_module`]).
pub fn connect_node(url: &str, need_module: bool) -> Result<redis::Connection> {
    let mut con = parse_url(url)?
        .get_connection_with_timeout(Duration::from_secs(5))
        .map_err(|e| Error::redis(format!("connecting to {url}"), e))?;
    if need_module {
        require_module(&mut con, url)?;
    }
    Ok(con)
}

/// Opens a connection to `url` (a cluster when [`is_cluster_url`], whose commands are
/// retried as `policy` says), with a message that says what to check on failure. With
/// `need_module`, the server must have the module loaded ([`require_module`]); so must
/// every seed node of a cluster that answers (one that does not is left to the cluster
/// client, which tries the others). `bench` does not ask: its plain-Redis baselines run
/// on any server.
pub fn connect(url: &str, policy: ClusterPolicy, need_module: bool) -> Result<Conn> {
    if is_cluster_url(url) {
        let nodes = cluster_nodes(url);
        if nodes.is_empty() {
            return Err(Error::BadUrl {
                url: url.to_owned(),
                reason: "no host:port after redis+cluster://".into(),
            });
        }
        for node in &nodes {
            let client = parse_url(node)?;
            if !need_module {
                continue;
            }
            if let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(5)) {
                require_module(&mut con, node)?;
            }
        }
        return ClusterClient::connect(&nodes, policy)
            .map(|c| Conn::Cluster(Box::new(c)))
            .map_err(|e| Error::redis(format!("connecting to cluster {url}"), e));
    }
    connect_node(url, need_module).map(Conn::Node)
}
