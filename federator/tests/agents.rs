//! Secure aggregation across processes: three real redis-servers with the module, a
//! `federator agent` process beside each, and one aggregator process (`federator --agent`).
//! The edges import what plain mode gives twin servers fed the same views, the aggregator
//! receives only masked vectors (its `--log-received` log is checked against every edge's
//! unmasked table), and an agent killed before masking leaves a round among the other two.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use edge_model::federation::{decode_update, Clock};
use edge_tests::{free_port, predict, record, run_bounded, Server, ServerOpts};
use federator::tables::EdgeTables;

mod support;
use federator::flat::{self, Key};
use federator::secure;
use support::{info, url, watch, PLAN};

const FEDERATOR: &str = env!("CARGO_BIN_EXE_federator");

/// A temp file path unique to this test process.
fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("federator-agents-{}-{name}", std::process::id()))
}

/// A `federator agent` process, killed on drop; its stderr goes to a file.
struct AgentProc {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl AgentProc {
    fn start(name: &str, edge: &Server) -> AgentProc {
        Self::start_with(name, edge, &[])
    }

    fn start_with(name: &str, edge: &Server, extra: &[String]) -> AgentProc {
        let port = free_port();
        let log = temp(&format!("agent-{name}-{port}.log"));
        let child = Command::new(FEDERATOR)
            .args(["agent", "--redis", &url(edge), "--name", name])
            .args(["--listen", &format!("127.0.0.1:{port}"), "--timeout", "5s"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("agent log"))
            .spawn()
            .expect("start an agent");
        let deadline = Instant::now() + Duration::from_secs(10);
        // Listening once its line is logged (a probe connection would be served as a round).
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("listening on")
        {
            assert!(Instant::now() < deadline, "agent {name} did not start");
            sleep(Duration::from_millis(20));
        }
        AgentProc { child, port, log }
    }

    fn spec(&self, name: &str) -> String {
        format!("{name}=127.0.0.1:{}", self.port)
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The edge's own tables as its full export gives them.
fn tables(s: &mut Server) -> EdgeTables {
    let blob: Vec<u8> = s.q(&mut redis::cmd("EDGE.MODEL.EXPORT"));
    let mut t = EdgeTables::default();
    t.apply(&decode_update(&blob).expect("an export decodes"));
    t
}

/// Runs the aggregator for one round against `agents`; returns its output.
fn aggregate(agents: &[String], log: &Path) -> String {
    let mut cmd = Command::new(FEDERATOR);
    for a in agents {
        cmd.args(["--agent", a]);
    }
    cmd.args(["--rounds", "1", "--timeout", "3s", "--log-received"])
        .arg(log);
    let (ok, out) = run_bounded(&mut cmd, Duration::from_secs(30));
    assert!(ok, "aggregator failed: {out}");
    out
}

/// What the aggregator logged: (direction, agent, message) per line.
fn logged(path: &Path) -> Vec<(String, String, serde_json::Value)> {
    std::fs::read_to_string(path)
        .expect("the --log-received file")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            (
                v["dir"].as_str().unwrap().to_owned(),
                v["agent"].as_str().unwrap().to_owned(),
                v["msg"].clone(),
            )
        })
        .collect()
}

/// From the log: the layout the aggregator sent (index, scales, clocks), the masked
/// vectors it received by agent, and the sum it sent back.
type Layout = (Vec<Key>, secure::Scales, (Clock, Clock));

/// A masked vector as received: (agent, vector).
type Masked = (String, Vec<u32>);

fn layout_and_vectors(
    log: &[(String, String, serde_json::Value)],
) -> (Layout, Vec<Masked>, Vec<u32>) {
    let mask = log
        .iter()
        .find(|(d, _, m)| d == "out" && m["kind"] == "mask")
        .map(|(_, _, m)| m)
        .expect("a mask request was sent");
    let index: Vec<Key> = serde_json::from_value(mask["index"].clone()).unwrap();
    let scales: secure::Scales = serde_json::from_value(mask["scales"].clone()).unwrap();
    let c: ((i64, u64), (i64, u64)) = serde_json::from_value(mask["clocks"].clone()).unwrap();
    let clock = |(landmark_ms, half_life_ms)| Clock {
        landmark_ms,
        half_life_ms,
    };
    let masked = log
        .iter()
        .filter(|(d, _, m)| d == "in" && m["kind"] == "masked")
        .map(|(_, a, m)| {
            (
                a.clone(),
                serde_json::from_value(m["vector"].clone()).unwrap(),
            )
        })
        .collect();
    let sum = log
        .iter()
        .find(|(d, _, m)| d == "out" && m["kind"] == "sum")
        .map(|(_, _, m)| serde_json::from_value(m["sum"].clone()).unwrap())
        .expect("a sum was sent");
    ((index, scales, (clock(c.0), clock(c.1))), masked, sum)
}

/// Each table's fixed-point encoding over the logged layout.
fn unmasked(t: &[EdgeTables], (index, scales, clocks): &Layout) -> Vec<Vec<u32>> {
    t.iter()
        .map(|t| {
            let f = flat::flatten(t, clocks.0, clocks.1);
            secure::encode(&f, index, scales).expect("encodes")
        })
        .collect()
}

/// Checks the logged masked vectors: none is any edge's table, all have the layout's
/// width, and they sum (mod 2^32) to the tables' sum, which is also the sum sent back.
fn assert_only_masked(log: &Path, own: &[EdgeTables], senders: usize) -> Layout {
    let lines = logged(log);
    // Nothing but descriptions, masked vectors and import acknowledgements came in.
    for (d, a, m) in &lines {
        if d == "in" {
            let k = m["kind"].as_str().unwrap();
            assert!(["meta", "masked", "imported"].contains(&k), "{a} sent {m}");
        }
    }
    let (layout, masked, sum) = layout_and_vectors(&lines);
    assert_eq!(masked.len(), senders, "{masked:?}");
    let x = unmasked(own, &layout);
    assert!(x.iter().all(|v| v.iter().any(|c| *c != 0)), "real tables");
    for (agent, v) in &masked {
        assert_eq!(v.len(), layout.0.len(), "{agent}");
        for (i, t) in x.iter().enumerate() {
            assert_ne!(v, t, "{agent}'s vector is edge {i}'s unmasked table");
            // Not even close: nearly every coordinate moved.
            let same = v.iter().zip(t).filter(|(a, b)| a == b).count();
            assert!(same * 10 < v.len(), "{agent}: {same} of {} equal", v.len());
        }
    }
    let vs: Vec<Vec<u32>> = masked.into_iter().map(|(_, v)| v).collect();
    assert_eq!(
        secure::aggregate(&vs),
        secure::aggregate(&x),
        "masks cancel"
    );
    assert_eq!(sum, secure::aggregate(&x), "the sum sent back is the total");
    layout
}

/// Three regions, each watching its own series and some of another's.
fn feed(edges: &mut [&mut Server]) {
    for (k, (prefix, series, e)) in PLAN.iter().enumerate() {
        watch(edges[*e], prefix, series, 4, 1_000_000 + k as i64 * 1000);
    }
}

#[test]
fn agents_import_the_plain_sums_and_the_aggregator_sees_only_masked_vectors() {
    let mut edges: Vec<Server> = (0..3).map(|_| Server::start(ServerOpts::new())).collect();
    let mut twins: Vec<Server> = (0..3).map(|_| Server::start(ServerOpts::new())).collect();
    feed(&mut edges.iter_mut().collect::<Vec<_>>());
    feed(&mut twins.iter_mut().collect::<Vec<_>>());
    let own: Vec<EdgeTables> = edges.iter_mut().map(tables).collect();
    let names = ["a", "b", "c"];
    let agents: Vec<AgentProc> = names
        .iter()
        .zip(&edges)
        .map(|(n, e)| AgentProc::start(n, e))
        .collect();
    let specs: Vec<String> = agents.iter().zip(names).map(|(a, n)| a.spec(n)).collect();
    let log = temp("received.jsonl");
    let out = aggregate(&specs, &log);
    assert!(out.contains("round 1: answered 3/3 [a,b,c]"), "{out}");
    assert!(out.contains(r#""pushed": ["#), "{out}");
    assert!(!out.contains("push failed"), "{out}");

    // Plain mode on the twins.
    let mut plain = Command::new(FEDERATOR);
    for (n, t) in names.iter().zip(&twins) {
        plain.args(["--edge", &format!("{n}={}", url(t))]);
    }
    plain.args(["--rounds", "1", "--timeout", "3s"]);
    let (ok, plain_out) = run_bounded(&mut plain, Duration::from_secs(30));
    assert!(ok && plain_out.contains("answered 3/3"), "{plain_out}");

    for (i, (e, t)) in edges.iter_mut().zip(twins.iter_mut()).enumerate() {
        assert_eq!(info(e, "rounds_imported"), 1, "edge {i}");
        assert_eq!(
            info(e, "peer_rows"),
            info(t, "peer_rows"),
            "edge {i}: the peers' table has the plain one's rows"
        );
        for item in ["S0E1", "S1E2", "S2E0", "S1E4"] {
            let user = format!("probe{i}{item}");
            record(e, &user, item, 9_000_000);
            record(t, &user, item, 9_000_000);
            let want = predict(t, &user, Some(5));
            assert!(!want.is_empty());
            assert_eq!(predict(e, &user, Some(5)), want, "edge {i}, probe {item}");
        }
    }
    let layout = assert_only_masked(&log, &own, 3);
    assert!(layout.0.len() > 50, "{} coordinates", layout.0.len());
    for a in &agents {
        assert!(a.stderr().contains("round 1: imported"), "{}", a.stderr());
    }
    let _ = std::fs::remove_file(&log);
}

#[test]
fn an_agent_killed_before_masking_leaves_a_round_among_the_other_two() {
    let mut edges: Vec<Server> = (0..3).map(|_| Server::start(ServerOpts::new())).collect();
    feed(&mut edges.iter_mut().collect::<Vec<_>>());
    let own: Vec<EdgeTables> = edges.iter_mut().map(tables).collect();
    let names = ["a", "b", "c"];
    let mut agents: Vec<AgentProc> = names
        .iter()
        .zip(&edges)
        .map(|(n, e)| AgentProc::start(n, e))
        .collect();
    let specs: Vec<String> = agents.iter().zip(names).map(|(a, n)| a.spec(n)).collect();

    // Malformed input does not bring an agent down: it logs and drops the connection.
    let mut raw = TcpStream::connect(("127.0.0.1", agents[0].port)).unwrap();
    std::io::Write::write_all(&mut raw, b"\x07junk that is no frame").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !agents[0].stderr().contains("protocol version 7") {
        assert!(Instant::now() < deadline, "{}", agents[0].stderr());
        sleep(Duration::from_millis(20));
    }
    drop(raw);

    agents[2].kill();
    let log = temp("dropout.jsonl");
    let out = aggregate(&specs, &log);
    assert!(out.contains("round 1: answered 2/3 [a,b]"), "{out}");
    assert!(out.contains("missing c: connect"), "{out}");
    for (i, want) in [(0, 1), (1, 1), (2, 0)] {
        assert_eq!(info(&mut edges[i], "rounds_imported"), want, "edge {i}");
    }
    // Only a and b masked, among themselves; their vectors sum to their two tables.
    let lines = logged(&log);
    let mask = lines
        .iter()
        .find(|(d, _, m)| d == "out" && m["kind"] == "mask")
        .unwrap();
    assert_eq!(mask.2["peers"].as_array().map(Vec::len), Some(2));
    assert_only_masked(&log, &own[..2], 2);
    // a learned b's series S2 (a has no viewer of it; c's viewers of it did not take part).
    record(&mut edges[0], "probe", "S2E0", 9_000_000);
    assert_eq!(
        predict(&mut edges[0], "probe", Some(1)),
        vec!["S2E1".to_owned()]
    );
    let _ = std::fs::remove_file(&log);
}

/// Agents with kept keys that pin each other's public keys complete rounds; one asked to
/// mask with a key it has not pinned (an aggregator standing between the agents) refuses,
/// logs it, and still serves the next round.
#[test]
fn pinned_agents_refuse_a_swapped_key() {
    use federator::wire::{self, FromAgent, ToAgent};
    let mut edges: Vec<Server> = (0..2).map(|_| Server::start(ServerOpts::new())).collect();
    watch(&mut edges[0], "a", "S0", 3, 1_000_000);
    watch(&mut edges[1], "b", "S1", 3, 1_000_000);
    let keys: Vec<PathBuf> = ["a", "b"]
        .iter()
        .map(|n| temp(&format!("{n}-{}.key", free_port())))
        .collect();
    let public: Vec<String> = keys
        .iter()
        .map(|k| {
            let mut cmd = Command::new(FEDERATOR);
            cmd.args(["agent", "--show-key", "--key-file"]).arg(k);
            let (ok, out) = run_bounded(&mut cmd, Duration::from_secs(10));
            assert!(ok, "{out}");
            out.trim().to_owned()
        })
        .collect();
    let agents: Vec<AgentProc> = (0..2)
        .map(|i| {
            let extra = [
                "--key-file".to_owned(),
                keys[i].to_string_lossy().into_owned(),
                "--peer-key".to_owned(),
                public[1 - i].clone(),
            ];
            AgentProc::start_with(["a", "b"][i], &edges[i], &extra)
        })
        .collect();
    assert!(
        agents[0].stderr().contains(&public[0]),
        "{}",
        agents[0].stderr()
    );
    let specs = vec![agents[0].spec("a"), agents[1].spec("b")];
    let log = temp("pinned.jsonl");
    let out = aggregate(&specs, &log);
    assert!(out.contains("round 1: answered 2/2"), "{out}");

    // A lying aggregator relays a key of its own in place of b's.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", agents[0].port)).unwrap();
    let t = Duration::from_secs(5);
    let soon = || Instant::now() + t;
    wire::send(&mut s, &ToAgent::Begin, t).unwrap();
    let (meta, _) = wire::recv::<FromAgent>(&mut s, soon(), wire::MAX_FRAME).unwrap();
    let FromAgent::Meta {
        public_key,
        last_round,
        keys: index,
        ..
    } = meta
    else {
        panic!("expected a description, got {meta:?}")
    };
    assert_eq!(federator::agent::hex(&public_key), public[0]);
    let mask = ToAgent::Mask {
        round: last_round + 1,
        peers: vec![public_key, federator::agent::public_of([9; 32])],
        index,
        scales: [256.0; 4],
        clocks: ((0, 0), (0, 0)),
    };
    wire::send(&mut s, &mask, t).unwrap();
    let (answer, _) = wire::recv::<FromAgent>(&mut s, soon(), wire::MAX_FRAME).unwrap();
    assert!(
        matches!(&answer, FromAgent::Refused { why } if why.contains("--peer-key")),
        "{answer:?}"
    );
    drop(s);
    assert!(
        agents[0].stderr().contains("refused: public key"),
        "{}",
        agents[0].stderr()
    );

    let out = aggregate(&specs, &log);
    assert!(out.contains("round 2: answered 2/2"), "{out}");
    for e in &mut edges {
        assert_eq!(info(e, "rounds_imported"), 2);
    }
    drop(agents);
    for k in &keys {
        let _ = std::fs::remove_file(k);
        let _ = std::fs::remove_file(format!("{}.round", k.display()));
    }
    let _ = std::fs::remove_file(&log);
}
