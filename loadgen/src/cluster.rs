//! loadgen's Redis Cluster client: pipelines routed by slot that keep every viewer's views
//! in order while slots move or a master fails over.
//!
//! Why not the `redis` crate's `ClusterPipeline` (1.8): it re-sends the commands that got a
//! redirect one by one after the rest of the pipeline, and when one of those retries runs
//! out, or a connection breaks, the whole pipeline fails with that one error, so which of
//! the other commands were applied is unknown. loadgen then lost views without saying why
//! (issue 18). This layer keeps the crate for connections, the wire format and the meaning
//! of errors ([`redis::RedisError::retry_method`]) and does the routing and retrying itself:
//!
//! - Every command carries its key (the viewer) as its first argument and goes to the master
//!   that owns the key's slot. Per node, commands keep their pipeline order.
//! - A command answered with MOVED (slot map updated), ASK (re-sent to the importing node
//!   after `ASKING`), TRYAGAIN, CLUSTERDOWN, MASTERDOWN, LOADING, READONLY or a broken
//!   connection (topology re-read, after a wait) is re-sent, **with every later command of
//!   the same key in that pipeline**, in their original order, in the next round. Reasoned
//!   per key: a key is on one node at a time, so once one command of a key is refused there,
//!   the later ones normally are too; if one of them was applied anyway, it reached the
//!   module before an earlier view of its viewer, and it is reported as
//!   [`CmdError::OutOfOrder`] instead of being hidden.
//! - Rounds are bounded by [`ClusterPolicy::max_retries`]. A redirect is followed at once;
//!   a round after another kind of error, and every round from the second retry on (nodes
//!   disagreeing on a slot's owner while a move is gossiped), waits, longer each time. A
//!   command still refused then is [`CmdError::RetriesExhausted`], and later commands of
//!   that key (in this pipeline and every later one) are not sent
//!   ([`CmdError::SkippedAfterLoss`]): a viewer's model never skips a view silently.
//! - Replies lost with a broken connection are re-sent: a command whose reply was lost may
//!   have been applied, so under a crash (not a slot move or a manual failover) a view can
//!   be applied twice. A master that crashes also loses what it had not replicated; with
//!   [`ClusterPolicy::wait_replicas`], each node's pipeline ends with `WAIT` and views its
//!   replicas did not acknowledge are reported ([`CmdError::NotReplicated`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use redis::{
    Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisError, RetryMethod, Value,
};

/// Hash slots in a Redis Cluster.
pub const SLOTS: usize = 16_384;

/// The hash slot of `key`, as `CLUSTER KEYSLOT` computes it (CRC16/XMODEM of the key, or of
/// its first non-empty `{hash tag}`, modulo 16384). Needed to pipeline per node without a
/// round trip per command.
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter()
            .position(|&b| b == b'}')
            .filter(|&close| close > 0)
            .map(|close| &rest[..close])
    });
    crc16(tagged.unwrap_or(key)) % SLOTS as u16
}

fn crc16(data: &[u8]) -> u16 {
    let mut crc = 0u16;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// How many times a cluster pipeline re-sends a refused command, how long it waits between
/// rounds (so that a resharding or a failover is ridden out but a dead cluster is reported
/// in bounded time), and whether writes must reach replicas before they count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterPolicy {
    /// Rounds after the first; a command still refused after them is given up.
    pub max_retries: u32,
    /// Wait before the first round that waits (after TRYAGAIN, CLUSTERDOWN, a broken
    /// connection…, or from the second retry on); doubled each such round.
    pub first_wait: Duration,
    /// Longest wait between two rounds.
    pub max_wait: Duration,
    /// Replicas that must acknowledge a node's pipeline (`WAIT`) before its commands count
    /// as applied; 0: none. A master that crashes loses what it had not replicated, so
    /// without this a view it acknowledged can vanish in a failover unnoticed.
    pub wait_replicas: u32,
    /// How long `WAIT` may take; a pipeline not acknowledged by then is reported
    /// ([`CmdError::NotReplicated`]), not re-sent (it may well be applied).
    pub wait_timeout: Duration,
}

impl Default for ClusterPolicy {
    /// 24 retries, waits from 20 ms doubling up to 1 s: about 20 s of waiting in all, enough
    /// for a failover with a few seconds of `cluster-node-timeout`.
    fn default() -> Self {
        ClusterPolicy {
            max_retries: 24,
            first_wait: Duration::from_millis(20),
            max_wait: Duration::from_secs(1),
            wait_replicas: 0,
            wait_timeout: Duration::from_secs(2),
        }
    }
}

impl ClusterPolicy {
    /// The wait before the `n`th waiting round (1-based).
    fn wait(&self, n: u32) -> Duration {
        let factor = 1u32 << n.saturating_sub(1).min(16);
        self.first_wait.saturating_mul(factor).min(self.max_wait)
    }
}

/// Why one command of a pipeline was not applied (or not applied in order). Reported per
/// kind with counts by replay, simulate and bench.
#[derive(Debug, Clone)]
pub enum CmdError {
    /// The server refused the command itself (a bad argument, the module not loaded…): a
    /// retry would be refused too.
    Refused(RedisError),
    /// A redirect or retryable error every time, `retries` times; `last` is the last one.
    /// Check that the cluster is up (`redis-cli --cluster check`) and consider raising
    /// `--cluster-retries`.
    RetriesExhausted {
        /// Rounds after the first.
        retries: u32,
        /// The last error.
        last: RedisError,
    },
    /// Applied, but before an earlier view of the same viewer that had to be re-sent: that
    /// viewer's views reached the module out of time order.
    OutOfOrder,
    /// Not sent, because an earlier view of the same viewer was given up: sending it would
    /// teach the model a sequence with a hole.
    SkippedAfterLoss,
    /// Applied by the master, but not acknowledged by `wait_replicas` replicas in time
    /// (the reason says what `WAIT` answered): a crash of that master would lose it.
    NotReplicated(String),
}

impl CmdError {
    /// A short name for counting errors by kind: the server's error code (`ERR`,
    /// `WRONGTYPE`, …) or what happened.
    pub fn kind(&self) -> String {
        match self {
            CmdError::Refused(e) => error_code(e),
            CmdError::RetriesExhausted { last, .. } => {
                format!("retries exhausted ({})", error_code(last))
            }
            CmdError::OutOfOrder => "applied out of order".into(),
            CmdError::SkippedAfterLoss => "skipped after a lost view".into(),
            CmdError::NotReplicated(_) => "not acknowledged by replicas".into(),
        }
    }
}

/// The server's error code, or the client's error kind for errors that are not replies.
fn error_code(e: &RedisError) -> String {
    match e.code() {
        Some(c) => c.to_owned(),
        None if e.is_io_error() => "connection".into(),
        None => format!("{:?}", e.kind()),
    }
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdError::Refused(e) => write!(f, "{e}"),
            CmdError::RetriesExhausted { retries, last } => write!(
                f,
                "still refused after {retries} retries, last: {last} (is every slot served? \
                 check with redis-cli --cluster check, or raise --cluster-retries)"
            ),
            CmdError::OutOfOrder => write!(
                f,
                "applied before an earlier view of the same viewer that had to be re-sent \
                 (that viewer's views reached the module out of order)"
            ),
            CmdError::SkippedAfterLoss => write!(
                f,
                "not sent: an earlier view of the same viewer could not be applied"
            ),
            CmdError::NotReplicated(why) => write!(
                f,
                "applied by the master but not acknowledged by its replicas ({why}): \
                 check the replicas' link (INFO replication) or raise the WAIT timeout"
            ),
        }
    }
}

impl std::error::Error for CmdError {}

/// One command of a round, as sent to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sent {
    /// Position in the pipeline.
    pub idx: usize,
    /// Preceded by `ASKING` (an ASK redirect to a node importing the slot).
    pub asking: bool,
}

/// What one node answered to its part of a round.
pub(crate) struct Answer {
    /// One reply per command sent.
    pub replies: Vec<Reply>,
    /// Why the node's replicas did not acknowledge these commands (`WAIT` asked for and
    /// short, or failed); `None` when confirmed or not asked for.
    pub unconfirmed: Option<String>,
}

/// The network side of [`Router`], a trait so that the ordering logic is tested against
/// scripted replies.
pub(crate) trait Transport {
    /// Sends each node its commands (in order, `ASKING` first where flagged, `WAIT` after
    /// them when `wait` is `(replicas, timeout)`) and returns one answer per node, in the
    /// shape of `batches`. After a broken connection, the replies not read are that error.
    fn exchange(
        &mut self,
        cmds: &[Cmd],
        batches: &[(String, Vec<Sent>)],
        wait: Option<(u32, Duration)>,
    ) -> Vec<Answer>;
    /// The masters' slot ranges: `(first, last, "host:port")`.
    fn slots(&mut self) -> redis::RedisResult<Vec<(u16, u16, String)>>;
    /// Waits before the next round.
    fn sleep(&mut self, d: Duration);
}

/// One reply as read from a node.
pub(crate) type Reply = redis::RedisResult<Value>;

/// What a failed reply asks of the next round.
enum Recovery {
    /// Not retryable: the command is done.
    Final,
    /// MOVED: the slot has a new owner.
    Moved(u16, String),
    /// ASK: re-send this key to the importing node, after ASKING.
    Ask(String),
    /// Wait, then re-send (TRYAGAIN, CLUSTERDOWN, LOADING, MASTERDOWN).
    Wait,
    /// Wait, re-read the topology, then re-send (READONLY, a broken connection).
    Refresh,
}

fn recovery(e: &RedisError) -> Recovery {
    if e.is_io_error() {
        return Recovery::Refresh;
    }
    let redirect = || {
        e.redirect_node()
            .map(|(addr, slot)| (slot, addr.to_owned()))
    };
    match e.retry_method() {
        RetryMethod::MovedRedirect => match redirect() {
            Some((slot, addr)) => Recovery::Moved(slot, addr),
            None => Recovery::Refresh,
        },
        RetryMethod::AskRedirect => match redirect() {
            Some((_, addr)) => Recovery::Ask(addr),
            None => Recovery::Refresh,
        },
        RetryMethod::WaitAndRetry => Recovery::Wait,
        RetryMethod::RefreshSlotsAndRetry
        | RetryMethod::Reconnect
        | RetryMethod::ReconnectFromInitialConnections => Recovery::Refresh,
        // NoRetry, RetryImmediately (not a cluster condition) and kinds added later.
        _ => Recovery::Final,
    }
}

/// A command's key, its first argument (the viewer for EDGE.*); empty for a command
/// without one, which then goes to the owner of slot 0.
fn command_key(c: &Cmd) -> &[u8] {
    match c.args_iter().nth(1) {
        Some(redis::Arg::Simple(k)) => k,
        _ => b"",
    }
}

/// The routing and retry logic: a slot map, the retry policy and the viewers given up.
pub(crate) struct Router {
    /// Owner of each slot, as an index into `addrs`.
    slot_owner: Vec<Option<usize>>,
    addrs: Vec<String>,
    policy: ClusterPolicy,
    /// Keys with a view given up: their later views are not sent.
    lost: HashSet<Vec<u8>>,
    /// Commands re-sent, by the error that sent them back (`MOVED`, `ASK`, `connection`…).
    resent: BTreeMap<String, u64>,
}

impl Router {
    pub(crate) fn new(policy: ClusterPolicy) -> Self {
        Router {
            slot_owner: vec![None; SLOTS],
            addrs: Vec::new(),
            policy,
            lost: HashSet::new(),
            resent: BTreeMap::new(),
        }
    }

    fn intern(&mut self, addr: &str) -> usize {
        match self.addrs.iter().position(|a| a == addr) {
            Some(i) => i,
            None => {
                self.addrs.push(addr.to_owned());
                self.addrs.len() - 1
            }
        }
    }

    /// Re-reads the slot map; keeps the old one if no node answers.
    pub(crate) fn refresh(&mut self, t: &mut impl Transport) -> redis::RedisResult<()> {
        let ranges = t.slots()?;
        self.slot_owner.iter_mut().for_each(|s| *s = None);
        for (first, last, addr) in ranges {
            let i = self.intern(&addr);
            for s in first..=last.min(SLOTS as u16 - 1) {
                self.slot_owner[usize::from(s)] = Some(i);
            }
        }
        Ok(())
    }

    /// Runs `cmds` (each keyed by its first argument) and returns one outcome per command,
    /// in order. See the module documentation for the guarantees.
    pub(crate) fn run(
        &mut self,
        t: &mut impl Transport,
        cmds: &[Cmd],
    ) -> Vec<Result<Value, CmdError>> {
        let keys: Vec<&[u8]> = cmds.iter().map(command_key).collect();
        let mut out: Vec<Option<Result<Value, CmdError>>> = (0..cmds.len()).map(|_| None).collect();
        let mut todo = Vec::with_capacity(cmds.len());
        for (i, key) in keys.iter().enumerate() {
            if self.lost.contains(*key) {
                out[i] = Some(Err(CmdError::SkippedAfterLoss));
            } else {
                todo.push(i);
            }
        }
        let mut ask: HashMap<&[u8], String> = HashMap::new();
        let mut waits = 0u32;
        for round in 0..=self.policy.max_retries {
            if todo.is_empty() {
                break;
            }
            if self.slot_owner.iter().all(Option::is_none) {
                let _ = self.refresh(t);
            }
            // Route: the ASK target for keys being imported, else the slot's owner.
            let mut batches: Vec<(String, Vec<Sent>)> = Vec::new();
            for &i in &todo {
                let (addr, asking) = match ask.get(keys[i]) {
                    Some(a) => (a.clone(), true),
                    None => match self.slot_owner[usize::from(key_slot(keys[i]))] {
                        Some(o) => (self.addrs[o].clone(), false),
                        // No known owner: the seed nodes are asked, and answer MOVED.
                        None => (self.addrs.first().cloned().unwrap_or_default(), false),
                    },
                };
                let sent = Sent { idx: i, asking };
                match batches.iter_mut().find(|(a, _)| *a == addr) {
                    Some((_, v)) => v.push(sent),
                    None => batches.push((addr, vec![sent])),
                }
            }
            ask.clear();
            let mut replies: Vec<Option<Reply>> = (0..cmds.len()).map(|_| None).collect();
            let mut unconfirmed: Vec<Option<String>> = vec![None; cmds.len()];
            let wait = (self.policy.wait_replicas > 0)
                .then_some((self.policy.wait_replicas, self.policy.wait_timeout));
            for ((_, sent), got) in batches.iter().zip(t.exchange(cmds, &batches, wait)) {
                for (s, r) in sent.iter().zip(got.replies) {
                    replies[s.idx] = Some(r);
                    unconfirmed[s.idx].clone_from(&got.unconfirmed);
                }
            }
            // Judge the replies per key, in pipeline order.
            let mut blocked: HashSet<&[u8]> = HashSet::new();
            let mut next = Vec::new();
            let (mut wait, mut refresh) = (false, false);
            let mut last: HashMap<usize, RedisError> = HashMap::new();
            for &i in &todo {
                let reply = replies[i]
                    .take()
                    .expect("the transport answers every command sent");
                let key = keys[i];
                let e = match reply {
                    Ok(v) if blocked.contains(key) => {
                        let _ = v;
                        out[i] = Some(Err(CmdError::OutOfOrder));
                        continue;
                    }
                    Ok(v) => {
                        out[i] = Some(match unconfirmed[i].take() {
                            Some(why) => Err(CmdError::NotReplicated(why)),
                            None => Ok(v),
                        });
                        continue;
                    }
                    Err(e) => e,
                };
                match recovery(&e) {
                    Recovery::Final => {
                        out[i] = Some(Err(CmdError::Refused(e)));
                        continue;
                    }
                    Recovery::Moved(slot, addr) => {
                        let o = self.intern(&addr);
                        if let Some(s) = self.slot_owner.get_mut(usize::from(slot)) {
                            *s = Some(o);
                        }
                    }
                    Recovery::Ask(addr) => {
                        ask.insert(key, addr);
                    }
                    Recovery::Wait => wait = true,
                    Recovery::Refresh => {
                        wait = true;
                        refresh = true;
                    }
                }
                blocked.insert(key);
                *self.resent.entry(error_code(&e)).or_default() += 1;
                last.insert(i, e);
                next.push(i);
            }
            todo = next;
            if todo.is_empty() || round == self.policy.max_retries {
                // Give up what is left: those keys' later views must not be applied.
                for &i in &todo {
                    self.lost.insert(keys[i].to_vec());
                    out[i] = Some(Err(CmdError::RetriesExhausted {
                        retries: self.policy.max_retries,
                        last: last.remove(&i).expect("a refused command has its error"),
                    }));
                }
                break;
            }
            // Redirects are followed at once, but a command redirected again and again meets
            // nodes that disagree on the slot's owner (a move being gossiped): from the
            // second retry on, wait and re-read the slot map.
            if round >= 1 {
                wait = true;
                refresh = true;
            }
            if wait {
                waits += 1;
                t.sleep(self.policy.wait(waits));
            }
            if refresh {
                let _ = self.refresh(t);
            }
        }
        out.into_iter()
            .map(|o| o.expect("every command has an outcome"))
            .collect()
    }
}

/// Connections to the cluster's nodes, opened on demand with the seed URL's settings
/// (user, password, protocol).
pub(crate) struct Nodes {
    seeds: Vec<ConnectionInfo>,
    conns: HashMap<String, redis::Connection>,
    timeout: Duration,
}

impl Nodes {
    fn connect(&mut self, addr: &str) -> redis::RedisResult<&mut redis::Connection> {
        if !self.conns.contains_key(addr) {
            let (host, port) = addr
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
                .ok_or_else(|| {
                    RedisError::from((
                        redis::ErrorKind::Client,
                        "a node address is not host:port",
                        addr.to_owned(),
                    ))
                })?;
            let info = self.seeds[0]
                .clone()
                .set_addr(ConnectionAddr::Tcp(host, port));
            let c = redis::Client::open(info)?.get_connection_with_timeout(self.timeout)?;
            // A hung node must not hang loadgen: its replies fail as a broken connection.
            c.set_read_timeout(Some(Duration::from_secs(30)))?;
            self.conns.insert(addr.to_owned(), c);
        }
        Ok(self.conns.get_mut(addr).expect("just inserted"))
    }

    fn send(
        &mut self,
        addr: &str,
        cmds: &[Cmd],
        sent: &[Sent],
        wait: Option<(u32, Duration)>,
    ) -> redis::RedisResult<()> {
        let mut packed = Vec::new();
        for s in sent {
            if s.asking {
                redis::cmd("ASKING").write_packed_command(&mut packed);
            }
            cmds[s.idx].write_packed_command(&mut packed);
        }
        if let Some((replicas, timeout)) = wait {
            redis::cmd("WAIT")
                .arg(replicas)
                .arg(timeout.as_millis() as u64)
                .write_packed_command(&mut packed);
        }
        self.connect(addr)?.send_packed_command(&packed)
    }

    fn recv(&mut self, addr: &str, sent: &[Sent], wait: Option<(u32, Duration)>) -> Answer {
        let mut broken: Option<RedisError> = None;
        let mut replies = Vec::with_capacity(sent.len());
        let Some(c) = self.conns.get_mut(addr) else {
            unreachable!("sent on this connection");
        };
        for s in sent {
            if let Some(e) = &broken {
                replies.push(Err(e.clone()));
                continue;
            }
            // ASKING's own reply (OK) is read and dropped; only a broken connection counts.
            let asked = if s.asking {
                c.recv_response().map(drop)
            } else {
                Ok(())
            };
            let r = asked.and_then(|()| c.recv_response().and_then(Value::extract_error));
            if let Err(e) = &r {
                if e.is_io_error() || e.kind() == redis::ErrorKind::Parse {
                    broken = Some(e.clone());
                }
            }
            replies.push(r);
        }
        let unconfirmed = match (wait, &broken) {
            (None, _) => None,
            (Some(_), Some(e)) => Some(e.to_string()),
            (Some((want, timeout)), None) => {
                match c.recv_response().and_then(Value::extract_error) {
                    Ok(Value::Int(n)) if n >= i64::from(want) => None,
                    Ok(v) => Some(format!(
                        "WAIT {want} {} answered {v:?}",
                        timeout.as_millis()
                    )),
                    Err(e) => {
                        if e.is_io_error() {
                            broken = Some(e.clone());
                        }
                        Some(e.to_string())
                    }
                }
            }
        };
        if broken.is_some() {
            self.conns.remove(addr);
        }
        Answer {
            replies,
            unconfirmed,
        }
    }
}

impl Transport for Nodes {
    fn exchange(
        &mut self,
        cmds: &[Cmd],
        batches: &[(String, Vec<Sent>)],
        wait: Option<(u32, Duration)>,
    ) -> Vec<Answer> {
        // Write every node's pipeline first, then read: one round trip for all nodes.
        let sent: Vec<redis::RedisResult<()>> = batches
            .iter()
            .map(|(addr, s)| {
                let r = self.send(addr, cmds, s, wait);
                if r.is_err() {
                    self.conns.remove(addr);
                }
                r
            })
            .collect();
        batches
            .iter()
            .zip(sent)
            .map(|((addr, s), ok)| match ok {
                Ok(()) => self.recv(addr, s, wait),
                Err(e) => Answer {
                    replies: s.iter().map(|_| Err(e.clone())).collect(),
                    unconfirmed: wait.map(|_| e.to_string()),
                },
            })
            .collect()
    }

    fn slots(&mut self) -> redis::RedisResult<Vec<(u16, u16, String)>> {
        let mut candidates: Vec<String> = self.conns.keys().cloned().collect();
        for s in &self.seeds {
            if let ConnectionAddr::Tcp(h, p) = s.addr() {
                candidates.push(format!("{h}:{p}"));
            }
        }
        let mut last = None;
        for addr in candidates {
            let host = addr.rsplit_once(':').map_or("", |(h, _)| h).to_owned();
            let r = self
                .connect(&addr)
                .and_then(|c| redis::cmd("CLUSTER").arg("SLOTS").query::<Value>(c));
            match r.map(|v| parse_slots(&v, &host)) {
                Ok(Some(ranges)) if !ranges.is_empty() => return Ok(ranges),
                Ok(_) => {}
                Err(e) => {
                    self.conns.remove(&addr);
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            RedisError::from((redis::ErrorKind::Client, "no cluster node serves any slot"))
        }))
    }

    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// Parses a `CLUSTER SLOTS` reply into `(first, last, "host:port" of the master)`; an empty
/// host means the node that was asked (`asked_host`).
fn parse_slots(v: &Value, asked_host: &str) -> Option<Vec<(u16, u16, String)>> {
    let Value::Array(ranges) = v else {
        return None;
    };
    let int = |v: &Value| match v {
        Value::Int(n) => u16::try_from(*n).ok(),
        _ => None,
    };
    let text = |v: &Value| match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    ranges
        .iter()
        .map(|r| {
            let Value::Array(r) = r else { return None };
            let Some(Value::Array(master)) = r.get(2) else {
                return None;
            };
            let host = text(master.first()?)?;
            let host = if host.is_empty() || host == "?" {
                asked_host.to_owned()
            } else {
                host
            };
            Some((
                int(r.first()?)?,
                int(r.get(1)?)?,
                format!("{host}:{}", int(master.get(1)?)?),
            ))
        })
        .collect()
}

/// A cluster connection for loadgen's pipelines: the nodes and the router.
pub struct ClusterClient {
    nodes: Nodes,
    router: Router,
}

impl ClusterClient {
    /// Connects to the seed nodes (`redis://host:port` URLs) and reads the slot map, so a
    /// wrong address or a cluster that serves no slot fails here, before any view is sent.
    pub fn connect(seeds: &[String], policy: ClusterPolicy) -> redis::RedisResult<Self> {
        let seeds = seeds
            .iter()
            .map(|s| s.as_str().into_connection_info())
            .collect::<redis::RedisResult<Vec<_>>>()?;
        if seeds.is_empty() {
            return Err(RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "a cluster URL needs at least one host:port",
            )));
        }
        let mut c = ClusterClient {
            nodes: Nodes {
                seeds,
                conns: HashMap::new(),
                timeout: Duration::from_secs(5),
            },
            router: Router::new(policy),
        };
        c.router.refresh(&mut c.nodes)?;
        Ok(c)
    }

    /// Runs `cmds` (each keyed by its first argument) and returns one outcome per command,
    /// in order: see the module documentation for what is retried and in which order.
    pub fn pipeline(&mut self, cmds: &[Cmd]) -> Vec<Result<Value, CmdError>> {
        self.router.run(&mut self.nodes, cmds)
    }

    /// Commands re-sent so far, by the error that sent them back (`MOVED`, `ASK`,
    /// `TRYAGAIN`, `connection`…): shows that a run rode out a resharding or a failover.
    pub fn resent(&self) -> &BTreeMap<String, u64> {
        &self.router.resent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_slots_match_redis() {
        // Values from CLUSTER KEYSLOT on Redis 7.0.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"hello"), 866);
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"a{user1000}b{x}"), key_slot(b"user1000"));
        // An empty tag hashes the whole key.
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % 16384);
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
    }

    fn server_err(text: &str) -> RedisError {
        redis::parse_redis_value(format!("-{text}\r\n").as_bytes())
            .and_then(Value::extract_error)
            .expect_err("an error reply")
    }

    /// One command as the fake node saw it: node, command position, after ASKING.
    type Seen = (String, usize, bool);

    /// A fake cluster: `reply(node, idx, asking, seen_before)` scripts each reply; every
    /// command sent is logged, and those answered `OK` are the ones "applied".
    struct Fake<F: FnMut(&str, usize, bool, usize) -> Reply> {
        reply: F,
        seen: Vec<Seen>,
        applied: Vec<usize>,
        slots: Vec<(u16, u16, String)>,
        slot_reads: usize,
        slept: Vec<Duration>,
    }

    fn fake<F: FnMut(&str, usize, bool, usize) -> Reply>(reply: F) -> Fake<F> {
        Fake {
            reply,
            seen: Vec::new(),
            applied: Vec::new(),
            slots: vec![(0, 16383, "a:1".into())],
            slot_reads: 0,
            slept: Vec::new(),
        }
    }

    impl<F: FnMut(&str, usize, bool, usize) -> Reply> Transport for Fake<F> {
        fn exchange(
            &mut self,
            _: &[Cmd],
            batches: &[(String, Vec<Sent>)],
            wait: Option<(u32, Duration)>,
        ) -> Vec<Answer> {
            batches
                .iter()
                .map(|(addr, sent)| {
                    let replies = sent
                        .iter()
                        .map(|s| {
                            let before = self.seen.iter().filter(|x| x.1 == s.idx).count();
                            self.seen.push((addr.clone(), s.idx, s.asking));
                            let r = (self.reply)(addr, s.idx, s.asking, before);
                            if r.is_ok() {
                                self.applied.push(s.idx);
                            }
                            r
                        })
                        .collect();
                    // WAIT: the replicas of "a:1" lag behind, the others keep up.
                    let unconfirmed = wait
                        .filter(|_| addr == "a:1")
                        .map(|(n, _)| format!("WAIT {n} answered 0"));
                    Answer {
                        replies,
                        unconfirmed,
                    }
                })
                .collect()
        }
        fn slots(&mut self) -> redis::RedisResult<Vec<(u16, u16, String)>> {
            self.slot_reads += 1;
            Ok(self.slots.clone())
        }
        fn sleep(&mut self, d: Duration) {
            self.slept.push(d);
        }
    }

    fn plays(keys: &[&str]) -> Vec<Cmd> {
        keys.iter()
            .enumerate()
            .map(|(t, k)| {
                redis::cmd("EDGE.PLAY")
                    .arg(*k)
                    .arg("C1")
                    .arg("TS")
                    .arg(t)
                    .clone()
            })
            .collect()
    }

    fn ok() -> Reply {
        Ok(Value::Okay)
    }

    fn outcomes(r: &[Result<Value, CmdError>]) -> Vec<String> {
        r.iter()
            .map(|o| match o {
                Ok(_) => "ok".into(),
                Err(e) => e.kind(),
            })
            .collect()
    }

    #[test]
    fn ask_mid_pipeline_resends_the_rest_of_that_key_in_order_after_asking() {
        // "u" migrates from a:1 to b:2 after its first two views; "v" stays on a:1.
        let mut t = fake(|node, idx, asking, _| match (node, idx) {
            ("a:1", 0 | 1 | 3) => ok(),
            ("a:1", _) => Err(server_err("ASK 1234 b:2")),
            ("b:2", _) if asking => ok(),
            (_, _) => Err(server_err("MOVED 1234 a:1")),
        });
        let cmds = plays(&["u", "u", "u", "v", "u"]);
        let mut r = Router::new(ClusterPolicy::default());
        let out = r.run(&mut t, &cmds);
        assert_eq!(outcomes(&out), ["ok"; 5]);
        assert_eq!(t.applied, [0, 1, 3, 2, 4], "u's views in order: 0 1 | 2 4");
        let retried: Vec<Seen> = t.seen[5..].to_vec();
        assert_eq!(retried, [("b:2".into(), 2, true), ("b:2".into(), 4, true)]);
        assert!(t.slept.is_empty(), "redirects are followed at once");
        assert_eq!(r.resent, BTreeMap::from([("ASK".to_owned(), 2)]));
    }

    #[test]
    fn moved_updates_the_slot_map_for_later_pipelines() {
        let slot_u = key_slot(b"u");
        let mut t = fake(move |node, _, _, _| match node {
            "b:2" => ok(),
            _ => Err(server_err(&format!("MOVED {slot_u} b:2"))),
        });
        let mut r = Router::new(ClusterPolicy::default());
        let out = r.run(&mut t, &plays(&["u", "u"]));
        assert_eq!(outcomes(&out), ["ok", "ok"]);
        assert_eq!(t.applied, [0, 1]);
        let sends = t.seen.len();
        let out = r.run(&mut t, &plays(&["u"]));
        assert_eq!(outcomes(&out), ["ok"]);
        assert_eq!(t.seen.len(), sends + 1, "sent straight to the new owner");
        assert_eq!(t.seen.last().unwrap().0, "b:2");
    }

    #[test]
    fn a_later_view_applied_after_a_refused_one_is_reported_out_of_order() {
        // View 0 of "u" gets TRYAGAIN once, but view 1 is applied: the module saw 1 before 0.
        let mut t = fake(|_, idx, _, before| match (idx, before) {
            (0, 0) => Err(server_err(
                "TRYAGAIN Multiple keys request during rehashing",
            )),
            _ => ok(),
        });
        let mut r = Router::new(ClusterPolicy::default());
        let out = r.run(&mut t, &plays(&["u", "u", "w"]));
        assert_eq!(outcomes(&out), ["ok", "applied out of order", "ok"]);
        assert_eq!(t.applied, [1, 2, 0]);
        assert_eq!(t.slept, [Duration::from_millis(20)]);
    }

    #[test]
    fn retries_are_bounded_and_a_lost_viewer_gets_nothing_more() {
        let mut t = fake(|_, idx, _, _| match idx {
            0 | 1 => Err(server_err("CLUSTERDOWN The cluster is down")),
            _ => ok(),
        });
        let policy = ClusterPolicy {
            max_retries: 3,
            ..ClusterPolicy::default()
        };
        let mut r = Router::new(policy);
        let out = r.run(&mut t, &plays(&["u", "u", "w"]));
        assert_eq!(
            outcomes(&out),
            [
                "retries exhausted (CLUSTERDOWN)",
                "retries exhausted (CLUSTERDOWN)",
                "ok"
            ]
        );
        assert_eq!(
            t.seen.iter().filter(|s| s.1 == 0).count(),
            4,
            "1 + 3 retries"
        );
        assert_eq!(t.slept, [20, 40, 80].map(Duration::from_millis));
        assert!(out[0]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("--cluster-retries"));
        // The next pipeline does not send u's later views; w's go through.
        let sends = t.seen.len();
        let out = r.run(&mut t, &plays(&["u", "u", "w"]));
        let skipped = "skipped after a lost view";
        assert_eq!(outcomes(&out), [skipped, skipped, "ok"]);
        assert_eq!(t.seen.len(), sends + 1);
    }

    #[test]
    fn a_broken_connection_resends_the_unanswered_commands_after_reading_the_topology() {
        // a:1 dies after answering view 0; its replica b:2 takes the slots over.
        let io = || {
            Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection reset",
            )))
        };
        let mut t = fake(move |node, idx, _, _| match (node, idx) {
            ("a:1", 0) => ok(),
            ("a:1", _) => io(),
            _ => ok(),
        });
        let mut r = Router::new(ClusterPolicy::default());
        r.refresh(&mut t).unwrap();
        t.slots = vec![(0, 16383, "b:2".into())];
        let out = r.run(&mut t, &plays(&["u", "u", "v"]));
        assert_eq!(outcomes(&out), ["ok"; 3]);
        assert_eq!(t.applied, [0, 1, 2]);
        assert_eq!(t.slot_reads, 2, "the topology is read again");
        assert!(t.seen[3..].iter().all(|s| s.0 == "b:2"));
    }

    #[test]
    fn nodes_that_disagree_on_an_owner_are_waited_out_not_looped_through() {
        // a:1 and b:2 send "u" to each other for four rounds (a move being gossiped).
        let slot_u = key_slot(b"u");
        let mut t = fake(move |node, _, _, before| match (node, before) {
            (_, 4..) => ok(),
            ("a:1", _) => Err(server_err(&format!("MOVED {slot_u} b:2"))),
            _ => Err(server_err(&format!("MOVED {slot_u} a:1"))),
        });
        let mut r = Router::new(ClusterPolicy::default());
        let out = r.run(&mut t, &plays(&["u"]));
        assert_eq!(outcomes(&out), ["ok"]);
        assert_eq!(t.seen.len(), 5);
        assert_eq!(t.slept, [20, 40, 80].map(Duration::from_millis));
        assert_eq!(
            t.slot_reads,
            1 + 3,
            "read first, then before each waiting round"
        );
    }

    #[test]
    fn with_wait_replicas_a_pipeline_its_replicas_did_not_acknowledge_is_reported() {
        let slot_v = key_slot(b"v");
        let mut t = fake(|_, _, _, _| ok());
        t.slots = vec![(0, 16383, "a:1".into()), (slot_v, slot_v, "b:2".into())];
        let mut r = Router::new(ClusterPolicy {
            wait_replicas: 1,
            ..ClusterPolicy::default()
        });
        r.refresh(&mut t).unwrap();
        let out = r.run(&mut t, &plays(&["u", "v", "u"]));
        let unconfirmed = "not acknowledged by replicas";
        assert_eq!(outcomes(&out), [unconfirmed, "ok", unconfirmed]);
        assert_eq!(t.seen.len(), 3, "applied, so never re-sent");
        assert!(out[0]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("WAIT 1 answered 0"));
        // Without WAIT nothing is asked of the replicas.
        let mut r = Router::new(ClusterPolicy::default());
        assert_eq!(outcomes(&r.run(&mut t, &plays(&["u"]))), ["ok"]);
    }

    #[test]
    fn refused_commands_are_final_and_do_not_hold_back_the_viewer() {
        let mut t = fake(|_, idx, _, _| match idx {
            0 => Err(server_err("ERR unknown item")),
            _ => ok(),
        });
        let mut r = Router::new(ClusterPolicy::default());
        let out = r.run(&mut t, &plays(&["u", "u"]));
        assert_eq!(outcomes(&out), ["ERR", "ok"]);
        assert_eq!(t.seen.len(), 2, "no retry");
    }

    #[test]
    fn parses_cluster_slots() {
        let v = Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(5460),
            Value::Array(vec![
                Value::BulkString(b"".to_vec()),
                Value::Int(7001),
                Value::BulkString(b"id".to_vec()),
            ]),
        ])]);
        assert_eq!(
            parse_slots(&v, "127.0.0.1"),
            Some(vec![(0, 5460, "127.0.0.1:7001".into())])
        );
    }
}
