//! The aggregator of secure rounds whose agents run in their own processes, beside the
//! edges (`federator --agent NAME=HOST:PORT …`): it receives only masked vectors.
//!
//! The aggregator connects to every agent each round (it holds the roster, so it can name
//! the missing; an agent or aggregator restart needs nothing but the next round). Each of
//! the three exchanges of [`crate::wire`] is bounded by `--timeout`. The set of agents that
//! answered the first exchange is fixed before anyone masks, and only they mask, among
//! themselves: an agent that does not answer is simply not in the round. An agent of the
//! set that fails to send its masked vector aborts the round (its masks cannot cancel);
//! nothing is imported anywhere and the next round starts from a fresh set.
//!
//! `--log-received FILE` appends, as JSON lines, every message the aggregator receives and
//! the layout it sends (index, scales, clocks), so a test (or an auditor) can check that
//! what crossed the network is masked.

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::tables::EdgeTables;
use edge_model::federation::decode_update;
use serde::Serialize;

use crate::agent::wire_clock;
use crate::agree;
use crate::flat::{self, Key};
use crate::run::{self, RoundLog, Summary};
use crate::secure;
use crate::wire::{self, FromAgent, ToAgent};

/// One agent as given on the command line: `NAME=HOST:PORT`.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// The name used in logs and the summary.
    pub name: String,
    /// Where it listens.
    pub addr: String,
}

impl std::str::FromStr for AgentSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            Some((name, addr)) if !name.is_empty() && addr.rsplit_once(':').is_some() => {
                Ok(AgentSpec {
                    name: name.to_owned(),
                    addr: addr.to_owned(),
                })
            }
            _ => Err(format!("--agent {s:?}: expected NAME=HOST:PORT")),
        }
    }
}

/// How the aggregator runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The agents.
    pub agents: Vec<AgentSpec>,
    /// Rounds to run (`None`: forever with an interval, else one).
    pub rounds: Option<u64>,
    /// Time between round starts.
    pub interval: Option<Duration>,
    /// Fewest agents a round masks among (at least 2).
    pub min_edges: usize,
    /// Bound on each exchange of a round.
    pub timeout: Duration,
    /// Where the JSON summary is written (after every round).
    pub json: Option<PathBuf>,
    /// Debug: append every message received (and the layout sent) here.
    pub log_received: Option<PathBuf>,
    /// Frame size limit.
    pub max_frame: usize,
}

/// One line of `--log-received`.
#[derive(Serialize)]
struct Logged<'a, M: Serialize> {
    /// The round (0 before one is numbered).
    round: u64,
    /// The agent it came from or went to.
    agent: &'a str,
    /// `in`: received; `out`: sent.
    dir: &'static str,
    /// The message.
    msg: &'a M,
}

/// The aggregator's state across rounds.
struct Aggregator<'a> {
    opts: &'a Options,
    round: u64,
    log: Option<std::fs::File>,
}

/// An agent in this round: its index in the roster and its connection.
type Conn = (usize, TcpStream);

/// What an agent offered in the first exchange.
struct Offer {
    public_key: [u8; 32],
    last_round: u64,
    /// Its settings and clocks (no counts).
    tables: EdgeTables,
    keys: Vec<Key>,
    maxima: [f64; 4],
}

fn connect(addr: &str, timeout: Duration) -> Result<TcpStream, String> {
    let a = addr
        .to_socket_addrs()
        .map_err(|e| format!("bad address {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("bad address {addr}"))?;
    let s = TcpStream::connect_timeout(&a, timeout.max(Duration::from_millis(1)))
        .map_err(|e| format!("connect: {e}"))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

impl Aggregator<'_> {
    fn record<M: Serialize>(&mut self, agent: &str, dir: &'static str, msg: &M) {
        if let Some(f) = &mut self.log {
            let line = Logged {
                round: self.round,
                agent,
                dir,
                msg,
            };
            if let Ok(mut text) = serde_json::to_vec(&line) {
                text.push(b'\n');
                if let Err(e) = f.write_all(&text) {
                    eprintln!("federator: --log-received: {e}");
                }
            }
        }
    }

    /// Sends `msg(i)` to every connection; those that fail are dropped into `missing`.
    fn send_all(
        &mut self,
        conns: Vec<Conn>,
        msg: impl Fn(usize) -> ToAgent,
        log: &mut RoundLog,
    ) -> Vec<Conn> {
        let mut kept = Vec::new();
        for (i, mut s) in conns {
            let m = msg(i);
            let name = self.opts.agents[i].name.clone();
            if !matches!(m, ToAgent::Begin) {
                self.record(&name, "out", &m);
            }
            match wire::send(&mut s, &m, self.opts.timeout) {
                Ok(n) => {
                    log.bytes_out += n as u64;
                    kept.push((i, s));
                }
                Err(e) => {
                    log.missing.insert(name, format!("send: {e}"));
                }
            }
        }
        kept
    }

    /// Reads one answer from every connection by `deadline`.
    fn recv_all(
        &mut self,
        conns: Vec<Conn>,
        deadline: Instant,
        log: &mut RoundLog,
    ) -> Vec<(Conn, Result<FromAgent, String>)> {
        let mut out = Vec::new();
        for (i, mut s) in conns {
            let name = self.opts.agents[i].name.clone();
            let r = match wire::recv::<FromAgent>(&mut s, deadline, self.opts.max_frame) {
                Ok((m, n)) => {
                    log.bytes_in += n as u64;
                    self.record(&name, "in", &m);
                    match m {
                        FromAgent::Refused { why } => Err(format!("agent refused: {why}")),
                        m => Ok(m),
                    }
                }
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = &r {
                eprintln!("federator: agent {name}: {e}");
            }
            out.push(((i, s), r));
        }
        out
    }

    /// One round: begin, fix the set, mask, sum, import.
    fn round(&mut self) -> RoundLog {
        let opts = self.opts;
        let started = Instant::now();
        let mut log = RoundLog::default();
        let finish = |mut log: RoundLog| {
            log.duration_ms = started.elapsed().as_secs_f64() * 1e3;
            log
        };
        // 1. Connect and begin, by one deadline.
        let deadline = started + opts.timeout;
        let mut conns = Vec::new();
        for (i, a) in opts.agents.iter().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            match connect(&a.addr, left) {
                Ok(s) => conns.push((i, s)),
                Err(e) => {
                    log.missing.insert(a.name.clone(), e);
                }
            }
        }
        let conns = self.send_all(conns, |_| ToAgent::Begin, &mut log);
        let mut set = Vec::new();
        for ((i, s), r) in self.recv_all(conns, deadline, &mut log) {
            let name = opts.agents[i].name.clone();
            let meta = r.and_then(|m| match m {
                FromAgent::Meta {
                    public_key,
                    last_round,
                    header,
                    keys,
                    maxima,
                } => {
                    let h = decode_update(&header).map_err(|e| format!("bad header: {e}"))?;
                    if maxima.iter().any(|m| !(m.is_finite() && *m >= 0.0)) {
                        return Err(format!("bad maxima {maxima:?}"));
                    }
                    let mut t = EdgeTables::default();
                    t.apply(&h);
                    Ok(Offer {
                        public_key,
                        last_round,
                        tables: t,
                        keys,
                        maxima,
                    })
                }
                other => Err(format!("expected its description, got {other:?}")),
            });
            match meta {
                Ok(m)
                    if set
                        .iter()
                        .any(|(_, _, x): &(_, _, Offer)| x.public_key == m.public_key) =>
                {
                    log.missing
                        .insert(name, "its public key is another agent's: left out".into());
                }
                Ok(m) => set.push((i, s, m)),
                Err(e) => {
                    log.missing.insert(name, e);
                }
            }
        }
        log.answered = set
            .iter()
            .map(|(i, _, _)| opts.agents[*i].name.clone())
            .collect();
        if set.len() < opts.min_edges.max(2) {
            log.skipped = true;
            return finish(log);
        }
        let names: Vec<&str> = set
            .iter()
            .map(|(i, _, _)| opts.agents[*i].name.as_str())
            .collect();
        if let Err(r) = agree::agreed(
            names.iter().copied().zip(set.iter().map(|s| &s.2.tables)),
            None,
        ) {
            log.skipped = true;
            log.refused = Some(r.to_string());
            return finish(log);
        }
        // 2. The set is fixed: number the round, lay out the coordinates, ask for masks.
        self.round = set
            .iter()
            .map(|s| s.2.last_round)
            .fold(self.round, u64::max)
            .saturating_add(1);
        let round = self.round;
        let mut index: Vec<Key> = set.iter().flat_map(|s| s.2.keys.iter().cloned()).collect();
        index.sort();
        index.dedup();
        let mut max = [0.0f64; 4];
        for s in &set {
            for (m, v) in max.iter_mut().zip(s.2.maxima) {
                *m = m.max(v);
            }
        }
        let scales = secure::scales_for(max, set.len());
        let clocks = flat::reference_clocks(set.iter().map(|s| &s.2.tables));
        let peers: Vec<[u8; 32]> = set.iter().map(|s| s.2.public_key).collect();
        let mask = ToAgent::Mask {
            round,
            peers,
            index,
            scales,
            clocks: (wire_clock(clocks.0), wire_clock(clocks.1)),
        };
        let conns: Vec<Conn> = set.into_iter().map(|(i, s, _)| (i, s)).collect();
        let n_set = conns.len();
        let conns = self.send_all(conns, |_| mask.clone(), &mut log);
        let width = match &mask {
            ToAgent::Mask { index, .. } => index.len(),
            _ => 0,
        };
        drop(mask);
        let mut vectors = Vec::new();
        let mut kept = Vec::new();
        for ((i, s), r) in self.recv_all(conns, Instant::now() + opts.timeout, &mut log) {
            let name = opts.agents[i].name.clone();
            match r {
                Ok(FromAgent::Masked { round: r, vector })
                    if r == round && vector.len() == width =>
                {
                    vectors.push(vector);
                    kept.push((i, s));
                }
                Ok(other) => {
                    let what = match other {
                        FromAgent::Masked { .. } => "a masked vector of another round or length",
                        _ => "a message other than its masked vector",
                    };
                    log.missing.insert(name, format!("sent {what}"));
                }
                Err(e) => {
                    log.missing.insert(name, e);
                }
            }
        }
        if kept.len() < n_set {
            log.skipped = true;
            log.refused = Some(format!(
                "{} of {n_set} agents did not send their masked vector: the round is aborted \
                 (their masks cannot cancel); nothing was imported",
                n_set - kept.len()
            ));
            return finish(log);
        }
        // 3. The sum of masked vectors is the total; each agent imports it minus its own.
        log.round = round;
        let sum = secure::aggregate(&vectors);
        drop(vectors);
        let msg = ToAgent::Sum { round, sum };
        let conns = self.send_all(kept, |_| msg.clone(), &mut log);
        for ((i, _), r) in self.recv_all(conns, Instant::now() + opts.timeout, &mut log) {
            let name = opts.agents[i].name.clone();
            match r {
                Ok(FromAgent::Imported { round: r, .. }) if r == round => log.pushed.push(name),
                Ok(other) => {
                    log.push_errors
                        .insert(name, format!("expected its import, got {other:?}"));
                }
                Err(e) => {
                    log.push_errors.insert(name, e);
                }
            }
        }
        finish(log)
    }
}

/// Runs secure rounds against the agents; returns the summary (also written to `--json`
/// after every round).
pub fn run(opts: &Options) -> Result<Summary, String> {
    let log = match &opts.log_received {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| format!("--log-received {}: {e}", p.display()))?,
        ),
        None => None,
    };
    let mut agg = Aggregator {
        opts,
        round: 0,
        log,
    };
    let n = opts.agents.len();
    let mut summary = Summary {
        edges: opts.agents.iter().map(|a| a.name.clone()).collect(),
        secure: true,
        dp: None,
        warnings: Vec::new(),
        rounds_attempted: 0,
        rounds_skipped: 0,
        bytes_in_total: 0,
        bytes_out_total: 0,
        rounds: Vec::new(),
    };
    run::every(opts.rounds, opts.interval, || {
        let log = agg.round();
        eprintln!("{}", run::log_line(&log, n));
        summary.add(log);
        if let Some(p) = &opts.json {
            run::write_json(p, &summary)?;
        }
        Ok(())
    })?;
    Ok(summary)
}
