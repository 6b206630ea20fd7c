//! `federator agent`: the secure-aggregation agent that runs beside one edge, so that the
//! edge's unmasked table and its pairwise seeds never leave the edge's machine.
//!
//! The agent listens on a loopback (or private) address; the aggregator connects to it
//! each round (see [`crate::wire`] for the exchange). It exports from its edge, keeps that
//! edge's tables, agrees a pairwise seed with every other agent of the round by x25519
//! ([`crate::secure::pair_seed`]; the aggregator only relays public keys), sends only the
//! masked vector, and imports "total minus mine" into its edge.
//!
//! It protects its edge against a confused or lying aggregator where it can: it never
//! masks twice for one round (two masked vectors under one mask stream would reveal their
//! difference), never masks among fewer than `--min-peers` agents (alone, the "masked"
//! vector would be the table itself), refuses a set that lists it twice or not at all, and
//! an index that leaves out its coordinates. What it cannot detect (a swapped public key)
//! is in docs/federation.md.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::tables::EdgeTables;
use edge_model::federation::{encode_update, Clock, Update};
use rand::Rng;
use x25519_dalek::{PublicKey, StaticSecret};

use crate::aggregate::FEDERATOR_NODE;
use crate::edge;
use crate::flat::{self, Flat, Key};
use crate::secure::{self, Agent, Scales};
use crate::wire::{self, FromAgent, ToAgent, WireClock, WireError};

/// How an agent runs.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Its name in its own log lines.
    pub name: String,
    /// Its edge's Redis URL.
    pub redis: String,
    /// Bound on every exchange with the edge and on the wait for the aggregator's next
    /// message.
    pub timeout: Duration,
    /// Fewest agents (itself included) it masks among.
    pub min_peers: usize,
    /// Frame size limit.
    pub max_frame: usize,
    /// Where its x25519 secret key is kept (created if absent), with the latest round it
    /// masked for beside it (`PATH.round`); `None`: a fresh key per process.
    pub key_file: Option<PathBuf>,
    /// Pinned public keys of the other agents: when not empty, a set naming any other key
    /// is refused (an aggregator swapping keys is caught).
    pub peer_keys: Vec<[u8; 32]>,
}

/// What the agent holds for a round between masking and the sum.
#[derive(Debug)]
struct Pending {
    round: u64,
    own: Vec<u32>,
    index: Vec<Key>,
    scales: Scales,
    clocks: (Clock, Clock),
}

/// One agent: its key pair, its copy of its edge's tables, and the rounds it masked for.
pub struct AgentState {
    opts: AgentOptions,
    secret: StaticSecret,
    public: [u8; 32],
    tables: EdgeTables,
    /// The latest round masked for, or imported by its edge (seen at the last export).
    last_round: u64,
}

/// Why the agent refused a request: logged by it and sent to the aggregator.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentRefusal {
    /// The request does not follow the protocol's order (a mask without a begin…).
    OutOfOrder(&'static str),
    /// A round at or below one already masked or imported: its mask stream is used.
    Replayed {
        /// The round asked.
        round: u64,
        /// The latest round used.
        last: u64,
    },
    /// Fewer agents in the set than `--min-peers`.
    TooFewPeers {
        /// In the set.
        got: usize,
        /// `--min-peers`.
        min: usize,
    },
    /// The set does not list this agent exactly once, or lists a key twice.
    BadSet(&'static str),
    /// Scales that are not positive and finite, or an index that is not sorted or misses
    /// this edge's coordinates.
    BadLayout(String),
    /// A key in the set is not among the pinned `--peer-key`s.
    Unpinned(String),
    /// The edge failed (export or import).
    Edge(String),
    /// The round could not be recorded in the key file's state (so it is not masked).
    State(String),
}

impl std::fmt::Display for AgentRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentRefusal::OutOfOrder(w) => write!(f, "request out of order: {w}"),
            AgentRefusal::Replayed { round, last } => write!(
                f,
                "round {round} is not above round {last}, already masked or imported: \
                 masking again would reuse a mask stream"
            ),
            AgentRefusal::TooFewPeers { got, min } => write!(
                f,
                "asked to mask among {got} agents, fewer than --min-peers {min}: the masked \
                 vector would hide too little"
            ),
            AgentRefusal::BadSet(w) => write!(f, "bad set of agents: {w}"),
            AgentRefusal::BadLayout(w) => write!(f, "bad layout: {w}"),
            AgentRefusal::Unpinned(k) => write!(
                f,
                "public key {k} is not among this agent's --peer-key: refused (an aggregator \
                 relaying a key of its own would sit between the agents)"
            ),
            AgentRefusal::Edge(e) => write!(f, "edge: {e}"),
            AgentRefusal::State(e) => write!(f, "recording the round: {e}"),
        }
    }
}

fn clock((landmark_ms, half_life_ms): WireClock) -> Clock {
    Clock {
        landmark_ms,
        half_life_ms,
    }
}

/// A clock as it travels.
pub fn wire_clock(c: Clock) -> WireClock {
    (c.landmark_ms, c.half_life_ms)
}

impl AgentState {
    /// An agent with the key of `opts.key_file` (created there if absent) and the round it
    /// last masked for, or a fresh key pair from the OS's entropy without a key file (a
    /// restarted agent then has a new key, so its old seeds are never reused).
    pub fn new(opts: AgentOptions) -> Result<Self, String> {
        let (bytes, last_round) = match &opts.key_file {
            Some(p) => (load_key(p)?, load_round(p)?),
            None => (fresh_key(), 0),
        };
        let secret = StaticSecret::from(bytes);
        let public = PublicKey::from(&secret).to_bytes();
        Ok(AgentState {
            opts,
            secret,
            public,
            tables: EdgeTables::default(),
            last_round,
        })
    }

    /// Its public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// Phase 1: exports from the edge and describes the contribution.
    fn begin(&mut self) -> Result<FromAgent, AgentRefusal> {
        let e = |e: String| AgentRefusal::Edge(e);
        let mut c = edge::connect(&self.opts.redis, self.opts.timeout).map_err(e)?;
        let got = edge::export(&mut c, self.tables.round).map_err(e)?;
        self.tables.apply(&got.update);
        let imported = edge::model_info(&mut c)
            .map_err(e)?
            .iter()
            .find(|(k, _)| k == "last_import_round")
            .map_or(0, |(_, v)| (*v).max(0) as u64);
        self.last_round = self.last_round.max(imported);
        let f = flat::flatten(
            &self.tables,
            self.tables.rows_clock,
            self.tables.items_clock,
        );
        let header = Update {
            node: self.opts.name.clone(),
            round: got.update.round,
            since: None,
            settings: self.tables.settings,
            rows_clock: self.tables.rows_clock,
            items_clock: self.tables.items_clock,
            items: Vec::new(),
            rows: Vec::new(),
        };
        Ok(FromAgent::Meta {
            public_key: self.public,
            last_round: self.last_round,
            header: encode_update(&header),
            maxima: secure::maxima(&f),
            keys: f.into_keys().collect(),
        })
    }

    /// Phase 2: checks the request, then masks the table among `peers`.
    fn mask(
        &mut self,
        round: u64,
        peers: &[[u8; 32]],
        index: Vec<Key>,
        scales: Scales,
        clocks: (WireClock, WireClock),
    ) -> Result<(Pending, Vec<u32>), AgentRefusal> {
        if round <= self.last_round {
            return Err(AgentRefusal::Replayed {
                round,
                last: self.last_round,
            });
        }
        let min = self.opts.min_peers.max(2);
        if peers.len() < min {
            return Err(AgentRefusal::TooFewPeers {
                got: peers.len(),
                min,
            });
        }
        let mut sorted = peers.to_vec();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(AgentRefusal::BadSet("a public key is listed twice"));
        }
        if !self.opts.peer_keys.is_empty() {
            if let Some(k) = peers
                .iter()
                .find(|p| **p != self.public && !self.opts.peer_keys.contains(p))
            {
                return Err(AgentRefusal::Unpinned(hex(k)));
            }
        }
        let me = peers
            .iter()
            .position(|p| *p == self.public)
            .ok_or(AgentRefusal::BadSet("this agent's public key is not in it"))?;
        let top = secure::SCALE * 256.0;
        if scales
            .iter()
            .any(|s| !(s.is_finite() && *s > 0.0 && *s <= top))
        {
            return Err(AgentRefusal::BadLayout(format!(
                "scales {scales:?} must be in (0, {top}]"
            )));
        }
        if index.windows(2).any(|w| w[0] >= w[1]) {
            return Err(AgentRefusal::BadLayout(
                "the index is not sorted without repeats".into(),
            ));
        }
        let clocks = (clock(clocks.0), clock(clocks.1));
        let f: Flat = flat::flatten(&self.tables, clocks.0, clocks.1);
        let missing = f.keys().filter(|k| index.binary_search(k).is_err()).count();
        if missing > 0 {
            return Err(AgentRefusal::BadLayout(format!(
                "the index leaves out {missing} of this edge's coordinates"
            )));
        }
        let own = secure::encode(&f, &index, &scales).map_err(AgentRefusal::BadLayout)?;
        let seeds = peers
            .iter()
            .enumerate()
            .map(|(j, p)| {
                if j == me {
                    Ok([0u8; 32])
                } else {
                    secure::pair_seed(&self.secret, p)
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(AgentRefusal::BadLayout)?;
        // Spent before anything leaves: this round's mask stream is never used again.
        if let Some(p) = &self.opts.key_file {
            save_round(p, round).map_err(AgentRefusal::State)?;
        }
        self.last_round = round;
        let set: Vec<usize> = (0..peers.len()).collect();
        let masked = Agent { index: me, seeds }.mask(&own, &set, round);
        let pending = Pending {
            round,
            own,
            index,
            scales,
            clocks,
        };
        Ok((pending, masked))
    }

    /// Phase 3: imports the sum minus this edge's own table.
    fn import(&self, p: &Pending, round: u64, sum: &[u32]) -> Result<FromAgent, AgentRefusal> {
        if round != p.round || sum.len() != p.own.len() {
            return Err(AgentRefusal::OutOfOrder(
                "a sum for another round or of another length than the masked vector",
            ));
        }
        let others = secure::decode(&secure::minus(sum, &p.own), &p.index, &p.scales);
        let update = flat::to_update(&others, FEDERATOR_NODE, round, p.clocks);
        let mut c =
            edge::connect(&self.opts.redis, self.opts.timeout).map_err(AgentRefusal::Edge)?;
        let applied = edge::import(&mut c, &encode_update(&update)).map_err(AgentRefusal::Edge)?;
        Ok(FromAgent::Imported { round, applied })
    }

    /// Serves one aggregator connection until it closes, errs or goes silent; every
    /// problem is logged with the peer's address.
    pub fn serve_one(&mut self, mut s: TcpStream) {
        let peer = s
            .peer_addr()
            .map_or_else(|_| "?".to_owned(), |a| a.to_string());
        let _ = s.set_nodelay(true);
        let name = self.opts.name.clone();
        let log = |what: &dyn std::fmt::Display| eprintln!("agent {name}: {peer}: {what}");
        let mut pending: Option<Pending> = None;
        let mut begun = false;
        loop {
            let deadline = Instant::now() + self.opts.timeout;
            let msg = match wire::recv::<ToAgent>(&mut s, deadline, self.opts.max_frame) {
                Ok((m, _)) => m,
                Err(WireError::Closed) => return,
                Err(e) => {
                    log(&format!("dropping the connection: {e}"));
                    return;
                }
            };
            let answer = match msg {
                ToAgent::Begin => {
                    pending = None;
                    begun = true;
                    self.begin()
                }
                ToAgent::Mask {
                    round,
                    peers,
                    index,
                    scales,
                    clocks,
                } if begun && pending.is_none() => self
                    .mask(round, &peers, index, scales, clocks)
                    .map(|(p, v)| {
                        pending = Some(p);
                        FromAgent::Masked { round, vector: v }
                    }),
                ToAgent::Mask { .. } => Err(AgentRefusal::OutOfOrder("a mask without a begin")),
                ToAgent::Sum { round, sum } => match pending.take() {
                    Some(p) => {
                        begun = false;
                        self.import(&p, round, &sum)
                    }
                    None => Err(AgentRefusal::OutOfOrder("a sum before a masked vector")),
                },
            };
            let (reply, stop) = match answer {
                Ok(a) => (a, false),
                Err(r) => {
                    log(&format!("refused: {r}"));
                    (FromAgent::Refused { why: r.to_string() }, true)
                }
            };
            if let FromAgent::Imported { round, applied } = &reply {
                log(&format!("round {round}: imported (applied: {applied})"));
            }
            if let Err(e) = wire::send(&mut s, &reply, self.opts.timeout) {
                log(&format!("dropping the connection: {e}"));
                return;
            }
            if stop {
                return;
            }
        }
    }
}

/// Runs an agent on `listener` until the process is stopped: one aggregator connection at
/// a time (each bounded by the timeout, so a silent one cannot hold the agent).
pub fn serve(listener: TcpListener, opts: AgentOptions) -> Result<(), String> {
    let mut st = AgentState::new(opts)?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("listener: {e}"))?;
    eprintln!(
        "agent {}: listening on {addr} for {}, public key {}",
        st.opts.name,
        st.opts.redis,
        hex(&st.public)
    );
    for conn in listener.incoming() {
        match conn {
            Ok(s) => st.serve_one(s),
            Err(e) => eprintln!("agent {}: accept: {e}", st.opts.name),
        }
    }
    Ok(())
}

fn fresh_key() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// The secret key in `path` (hex), or a fresh one written there (owner-only) if absent.
pub fn load_key(path: &Path) -> Result<[u8; 32], String> {
    let shown = path.display();
    match std::fs::read_to_string(path) {
        Ok(text) => parse_key(text.trim()).map_err(|e| format!("key file {shown}: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = fresh_key();
            let mut o = std::fs::OpenOptions::new();
            o.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
            o.open(path)
                .and_then(|mut f| {
                    std::io::Write::write_all(&mut f, format!("{}\n", hex(&key)).as_bytes())?;
                    f.sync_all()
                })
                .map_err(|e| format!("creating key file {shown}: {e}"))?;
            Ok(key)
        }
        Err(e) => Err(format!("key file {shown}: {e}")),
    }
}

/// The public key of a secret key.
pub fn public_of(secret: [u8; 32]) -> [u8; 32] {
    PublicKey::from(&StaticSecret::from(secret)).to_bytes()
}

fn round_file(key: &Path) -> PathBuf {
    let mut p = key.as_os_str().to_owned();
    p.push(".round");
    PathBuf::from(p)
}

fn load_round(key: &Path) -> Result<u64, String> {
    let p = round_file(key);
    match std::fs::read_to_string(&p) {
        Ok(t) => t
            .trim()
            .parse()
            .map_err(|_| format!("{}: not a round number", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(format!("{}: {e}", p.display())),
    }
}

/// Records `round` durably (written aside, synced, renamed) before its masked vector leaves.
fn save_round(key: &Path, round: u64) -> Result<(), String> {
    let p = round_file(key);
    let tmp = p.with_extension("round.tmp");
    std::fs::File::create(&tmp)
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, round.to_string().as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, &p))
        .map_err(|e| format!("{}: {e}", p.display()))
}

/// A 32-byte key from 64 hex digits.
pub fn parse_key(s: &str) -> Result<[u8; 32], String> {
    let b = s.as_bytes();
    if b.len() != 64 || !b.iter().all(u8::is_ascii_hexdigit) {
        return Err(format!(
            "expected 64 hex digits, got {:?}",
            s.get(..16).unwrap_or(s)
        ));
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(b.chunks(2)) {
        let text = std::str::from_utf8(pair).map_err(|e| e.to_string())?;
        *o = u8::from_str_radix(text, 16).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// Lower-case hex, for logging public keys.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(items: &[(&str, u64)]) -> AgentState {
        let mut a = AgentState::new(AgentOptions {
            name: "t".into(),
            redis: "redis://127.0.0.1:1".into(),
            timeout: Duration::from_secs(1),
            min_peers: 2,
            max_frame: wire::MAX_FRAME,
            key_file: None,
            peer_keys: Vec::new(),
        })
        .unwrap();
        for (n, v) in items {
            a.tables
                .items
                .insert((*n).to_owned(), (*v, *v as f64 / 2.0));
        }
        a
    }

    fn layout(agents: &[&AgentState]) -> Vec<Key> {
        let mut index: Vec<Key> = agents
            .iter()
            .flat_map(|a| flat::flatten(&a.tables, Clock::default(), Clock::default()).into_keys())
            .collect();
        index.sort();
        index.dedup();
        index
    }

    const SCALES: Scales = [256.0; 4];
    const CLOCKS: (WireClock, WireClock) = ((0, 0), (0, 0));

    #[test]
    fn agents_agree_seeds_by_x25519_and_their_masks_cancel() {
        let mut ags = [
            agent(&[("a", 3), ("b", 1)]),
            agent(&[("b", 5), ("c", 2)]),
            agent(&[("a", 7), ("d", 4)]),
        ];
        let peers: Vec<[u8; 32]> = ags.iter().map(|a| a.public_key()).collect();
        // Both sides of a pair derive the same seed; other pairs differ.
        let s01 = secure::pair_seed(&ags[0].secret, &peers[1]).unwrap();
        assert_eq!(s01, secure::pair_seed(&ags[1].secret, &peers[0]).unwrap());
        assert_ne!(s01, secure::pair_seed(&ags[0].secret, &peers[2]).unwrap());
        // A low-order point (all zeros) is refused.
        assert!(secure::pair_seed(&ags[0].secret, &[0u8; 32]).is_err());

        let index = layout(&[&ags[0], &ags[1], &ags[2]]);
        let mut sum = vec![0u32; index.len()];
        let mut own_sum = vec![0u32; index.len()];
        let mut pendings = Vec::new();
        for a in ags.iter_mut() {
            let (p, masked) = a.mask(9, &peers, index.clone(), SCALES, CLOCKS).unwrap();
            assert_ne!(masked, p.own, "a masked vector is not the table");
            sum = secure::aggregate(&[sum, masked]);
            own_sum = secure::aggregate(&[own_sum, p.own.clone()]);
            pendings.push(p);
        }
        assert_eq!(sum, own_sum, "the masks cancel in the sum");
        // Each agent's "others" is the sum of the other two tables.
        let others = secure::minus(&sum, &pendings[0].own);
        assert_eq!(
            others,
            secure::aggregate(&[pendings[1].own.clone(), pendings[2].own.clone()])
        );
    }

    #[test]
    fn an_agent_refuses_what_would_expose_its_table() {
        let mut a = agent(&[("a", 3)]);
        let b = agent(&[("b", 1)]);
        let index = layout(&[&a, &b]);
        let (me, other) = (a.public_key(), b.public_key());
        let mut ask = |round: u64, peers: &[[u8; 32]], index: Vec<Key>, scales: Scales| {
            a.mask(round, peers, index, scales, CLOCKS).map(|_| ())
        };
        assert!(matches!(
            ask(1, &[me], index.clone(), SCALES),
            Err(AgentRefusal::TooFewPeers { got: 1, min: 2 })
        ));
        assert!(matches!(
            ask(1, &[me, me], index.clone(), SCALES),
            Err(AgentRefusal::BadSet(_))
        ));
        assert!(matches!(
            ask(1, &[other, [7; 32]], index.clone(), SCALES),
            Err(AgentRefusal::BadSet(_))
        ));
        assert!(matches!(
            ask(1, &[me, other], index[1..].to_vec(), SCALES),
            Err(AgentRefusal::BadLayout(_))
        ));
        assert!(matches!(
            ask(1, &[me, other], index.clone(), [f64::NAN; 4]),
            Err(AgentRefusal::BadLayout(_))
        ));
        ask(5, &[me, other], index.clone(), SCALES).unwrap();
        // The same round (or an older one) again would reuse its mask stream.
        for r in [5, 4] {
            assert!(matches!(
                ask(r, &[me, other], index.clone(), SCALES),
                Err(AgentRefusal::Replayed { last: 5, .. })
            ));
        }
        ask(6, &[me, other], index, SCALES).unwrap();
    }

    #[test]
    fn a_kept_key_and_its_last_round_survive_a_restart_and_pinned_keys_are_enforced() {
        let dir = std::env::temp_dir().join(format!("agent-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("a.key");
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(round_file(&key));
        let b = agent(&[("b", 1)]);
        let stranger = agent(&[]);
        let opts = |pins: Vec<[u8; 32]>| AgentOptions {
            name: "a".into(),
            redis: "redis://127.0.0.1:1".into(),
            timeout: Duration::from_secs(1),
            min_peers: 2,
            max_frame: wire::MAX_FRAME,
            key_file: Some(key.clone()),
            peer_keys: pins,
        };
        let mut a = AgentState::new(opts(vec![b.public_key()])).unwrap();
        a.tables.items.insert("a".into(), (3, 1.5));
        let index = layout(&[&a, &b]);
        let me = a.public_key();
        assert_eq!(me, public_of(load_key(&key).unwrap()));
        assert!(matches!(
            a.mask(
                3,
                &[me, stranger.public_key()],
                index.clone(),
                SCALES,
                CLOCKS
            ),
            Err(AgentRefusal::Unpinned(_))
        ));
        a.mask(3, &[me, b.public_key()], index.clone(), SCALES, CLOCKS)
            .unwrap();
        // Restarted from the same key file: the same key, and round 3 is spent.
        let mut again = AgentState::new(opts(Vec::new())).unwrap();
        again.tables = a.tables.clone();
        assert_eq!(again.public_key(), me);
        assert!(matches!(
            again.mask(3, &[me, b.public_key()], index.clone(), SCALES, CLOCKS),
            Err(AgentRefusal::Replayed { round: 3, last: 3 })
        ));
        // Without pins, any well-formed set is accepted.
        again
            .mask(4, &[stranger.public_key(), me], index, SCALES, CLOCKS)
            .unwrap();
        assert_eq!(load_round(&key).unwrap(), 4);
        assert!(parse_key("zz").is_err() && parse_key(&hex(&me)).unwrap() == me);
        std::fs::write(&key, "not a key").unwrap();
        assert!(AgentState::new(opts(Vec::new())).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
