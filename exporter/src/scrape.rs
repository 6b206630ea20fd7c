//! Targets (which edges to scrape, and how to name them) and the scrape itself.
//!
//! Each scrape opens a fresh connection per edge, in its own thread, under a deadline:
//! a dead or stalled edge then costs at most the timeout and never blocks the others,
//! and no connection state can go stale between scrapes. Secrets live only inside the
//! redis crate's connection info; names, logs and errors are built without them.

use std::fmt;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

use crate::info::{
    classify, has_module_fields, parse_commandstats, parse_info, CommandStat, EdgeStats,
};
use crate::metrics::EdgeScrape;

/// One edge to scrape. `Debug` shows only the name, so a target can be logged safely.
#[derive(Clone)]
pub struct Target {
    /// The `edge` label value.
    pub name: String,
    info: ConnectionInfo,
    secrets: Vec<String>,
    /// PEM roots that replace the system trust store for `rediss://` (self-signed edges).
    root_cert: Option<Arc<Vec<u8>>>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target").field("name", &self.name).finish()
    }
}

impl Target {
    /// Parses `URL` or `NAME=URL`. `user`/`password` (from flags or the environment)
    /// override what the URL says, so secrets need not be put in a URL at all.
    pub fn parse(spec: &str, user: Option<&str>, password: Option<&str>) -> Result<Self, String> {
        let spec = spec.trim();
        let (name, url) = match spec.split_once('=') {
            Some((n, u)) if !n.is_empty() && !n.contains([':', '/', '@']) => {
                (Some(n.to_owned()), u)
            }
            _ => (None, spec),
        };
        let url = if url.contains("://") {
            url.to_owned()
        } else {
            format!("redis://{url}")
        };
        let info = url
            .as_str()
            .into_connection_info()
            .map_err(|_| format!("invalid Redis URL {}", redact_url(&url)))?;
        if !info.addr().is_supported() {
            return Err(format!(
                "{}: TLS (rediss://) is not supported by this build",
                redact_url(&url)
            ));
        }
        let mut settings = info.redis_settings().clone();
        if let Some(u) = user.filter(|u| !u.is_empty()) {
            settings = settings.set_username(u);
        }
        if let Some(p) = password.filter(|p| !p.is_empty()) {
            settings = settings.set_password(p);
        }
        let secrets = settings
            .password()
            .map(|p| vec![p.to_owned()])
            .unwrap_or_default();
        let info = info.set_redis_settings(settings);
        let name = name.unwrap_or_else(|| addr_name(info.addr()));
        Ok(Target {
            name,
            info,
            secrets,
            root_cert: None,
        })
    }

    /// Trusts these PEM certificates (instead of the system store) for `rediss://`.
    pub fn with_root_cert(mut self, pem: Arc<Vec<u8>>) -> Self {
        self.root_cert = Some(pem);
        self
    }

    /// Removes any secret from a message before it is logged or served.
    fn scrub(&self, msg: String) -> String {
        self.secrets
            .iter()
            .filter(|s| s.len() >= 3)
            .fold(msg, |m, s| m.replace(s.as_str(), "***"))
    }

    /// Reads `INFO edge`, `INFO commandstats` and `INFO modules` with `timeout` on
    /// connect and each read/write. Any error marks the edge down, and so does a server
    /// without the module: `edge_up` means "this edge serves EDGE commands", not "a Redis
    /// answers". The failure's kind is kept for `edge_exporter_scrape_errors_total`.
    pub fn scrape(&self, timeout: Duration) -> EdgeScrape {
        let start = Instant::now();
        let result = self
            .read(timeout)
            .map_err(|e| (ScrapeError::of(&e), self.scrub(e.to_string())))
            .and_then(|replies| {
                module_replies(&replies.info, &replies.commandstats)
                    .map(|(stats, commands)| (stats, commands, replies.modules))
                    .map_err(|e| (ScrapeError::NoModule, e))
            });
        let mut out = EdgeScrape {
            edge: self.name.clone(),
            duration_seconds: start.elapsed().as_secs_f64(),
            ..EdgeScrape::default()
        };
        match result {
            Ok((stats, commands, modules)) => {
                out.up = true;
                out.stats = Some(stats);
                out.commands = commands;
                out.module_version = modules.as_deref().and_then(module_version);
            }
            Err((kind, e)) => {
                eprintln!("exporter: scrape of edge {} failed: {e}", self.name);
                out.error = Some(kind);
            }
        }
        out
    }

    fn read(&self, timeout: Duration) -> redis::RedisResult<Replies> {
        let tls = matches!(self.info.addr(), ConnectionAddr::TcpTls { .. });
        let client = match &self.root_cert {
            Some(pem) if tls => redis::Client::build_with_tls(
                self.info.clone(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.to_vec()),
                },
            )?,
            _ => redis::Client::open(self.info.clone())?,
        };
        let mut con = client.get_connection_with_timeout(timeout)?;
        con.set_read_timeout(Some(timeout))?;
        con.set_write_timeout(Some(timeout))?;
        let info: String = redis::cmd("INFO").arg("edge").query(&mut con)?;
        let commandstats: String = redis::cmd("INFO").arg("commandstats").query(&mut con)?;
        // Only for the version label: an ACL that refuses it costs the label, not the edge.
        let modules = redis::cmd("INFO").arg("modules").query(&mut con).ok();
        Ok(Replies {
            info,
            commandstats,
            modules,
        })
    }
}

/// What one scrape reads from an edge.
struct Replies {
    info: String,
    commandstats: String,
    modules: Option<String>,
}

/// Why a scrape of an edge failed, as the `kind` label of
/// `edge_exporter_scrape_errors_total`: each points at a different fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ScrapeError {
    /// Nothing accepted the connection (wrong address, Redis down, firewall).
    Connect,
    /// The edge did not answer within `--timeout` (overloaded, hung, or a network black
    /// hole).
    Timeout,
    /// The edge refused the credentials (`REDIS_USER` / `REDIS_PASSWORD`).
    Auth,
    /// Redis answered, but without the edgecache module's INFO: the module is not loaded.
    NoModule,
    /// Any other error (a dropped connection, a TLS failure, an error reply).
    Other,
}

impl ScrapeError {
    /// Every kind, in label order: each edge exports all of them (zeros included) so a
    /// `rate()` over them has data from the first scrape.
    pub const ALL: [ScrapeError; 5] = [
        ScrapeError::Connect,
        ScrapeError::Timeout,
        ScrapeError::Auth,
        ScrapeError::NoModule,
        ScrapeError::Other,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ScrapeError::Connect => "connect",
            ScrapeError::Timeout => "timeout",
            ScrapeError::Auth => "auth",
            ScrapeError::NoModule => "no_module",
            ScrapeError::Other => "other",
        }
    }

    /// Sorts a client error into a kind.
    fn of(e: &redis::RedisError) -> ScrapeError {
        let text = e.to_string();
        if e.kind() == redis::ErrorKind::AuthenticationFailed
            || ["NOAUTH", "WRONGPASS", "NOPERM"]
                .iter()
                .any(|code| text.contains(code))
        {
            ScrapeError::Auth
        } else if e.is_timeout() {
            ScrapeError::Timeout
        } else if e.is_connection_refusal() {
            ScrapeError::Connect
        } else {
            ScrapeError::Other
        }
    }
}

/// The edgecache module's version from an `INFO modules` reply
/// (`module:name=edge,ver=1,api=1,…`), if the module is listed.
pub fn module_version(modules: &str) -> Option<String> {
    modules.lines().find_map(|line| {
        let fields = line.trim().strip_prefix("module:")?;
        let get = |key: &str| {
            fields
                .split(',')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        };
        (get("name")? == "edge").then(|| get("ver").map(str::to_owned))?
    })
}

/// Types the two INFO replies of an edge, or says why the edge is not an edgecache edge:
/// Redis answers `INFO edge` with nothing when the module is not loaded.
fn module_replies(info: &str, cmds: &str) -> Result<(EdgeStats, Vec<CommandStat>), String> {
    let fields = parse_info(info);
    if !has_module_fields(&fields) {
        return Err(
            "Redis answers but INFO edge is empty: the edgecache module is not \
                    loaded there, so it cannot serve EDGE commands"
                .to_owned(),
        );
    }
    Ok((classify(&fields), parse_commandstats(cmds, "edge.")))
}

/// `host:port` (or the socket path): what an operator recognises, without credentials.
fn addr_name(addr: &ConnectionAddr) -> String {
    match addr {
        ConnectionAddr::Tcp(h, p) => format!("{h}:{p}"),
        ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port}"),
        ConnectionAddr::Unix(p) => p.display().to_string(),
        _ => "unknown".to_owned(),
    }
}

/// A URL with any `user:password@` part replaced, for error messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rfind('@') {
        Some(at) => format!("{scheme}://***@{}{path}", &authority[at + 1..]),
        None => url.to_owned(),
    }
}

/// Parses every target, refusing duplicate names (their series would be merged).
pub fn parse_targets(
    specs: &[String],
    user: Option<&str>,
    password: Option<&str>,
) -> Result<Vec<Target>, String> {
    let mut out: Vec<Target> = Vec::new();
    for spec in specs.iter().filter(|s| !s.trim().is_empty()) {
        let t = Target::parse(spec, user, password)?;
        if out.iter().any(|o| o.name == t.name) {
            return Err(format!(
                "two targets are both named {:?}; name them with NAME=URL",
                t.name
            ));
        }
        out.push(t);
    }
    if out.is_empty() {
        return Err("no Redis target given".to_owned());
    }
    Ok(out)
}

/// Scrapes all targets concurrently and returns their results in target order. Edges
/// that have not answered by `timeout` after the start are reported down; their threads
/// finish on their own, bounded by the socket timeouts.
pub fn scrape_all(targets: &[Arc<Target>], timeout: Duration) -> Vec<EdgeScrape> {
    let start = Instant::now();
    let deadline = start + timeout + Duration::from_millis(250);
    let (tx, rx) = mpsc::channel();
    for (i, t) in targets.iter().enumerate() {
        let (tx, t) = (tx.clone(), Arc::clone(t));
        thread::spawn(move || {
            let _ = tx.send((i, t.scrape(timeout)));
        });
    }
    drop(tx);
    let mut results: Vec<Option<EdgeScrape>> = vec![None; targets.len()];
    while results.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, r)) => results[i] = Some(r),
            Err(_) => break,
        }
    }
    results
        .into_iter()
        .zip(targets)
        .map(|(r, t)| {
            r.unwrap_or_else(|| {
                eprintln!("exporter: scrape of edge {} timed out", t.name);
                EdgeScrape {
                    edge: t.name.clone(),
                    duration_seconds: start.elapsed().as_secs_f64(),
                    error: Some(ScrapeError::Timeout),
                    ..EdgeScrape::default()
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{SocketAddr, TcpListener};

    /// Reads one RESP command (an array of bulk strings), as the redis crate sends them.
    fn read_command(r: &mut impl BufRead) -> Option<Vec<String>> {
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        let n: usize = line.trim().strip_prefix('*')?.parse().ok()?;
        (0..n)
            .map(|_| {
                line.clear();
                r.read_line(&mut line).ok()?;
                let len: usize = line.trim().strip_prefix('$')?.parse().ok()?;
                let mut buf = vec![0; len + 2];
                r.read_exact(&mut buf).ok()?;
                buf.truncate(len);
                String::from_utf8(buf).ok()
            })
            .collect()
    }

    /// A fake Redis serving `conns` connections one after another: `INFO <section>`
    /// answers from `sections` (an unknown section gets the empty reply real Redis gives)
    /// and anything else (the client's handshake) gets `+OK`.
    fn fake_redis(sections: Vec<(&'static str, &'static str)>, conns: usize) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        thread::spawn(move || {
            for c in l.incoming().take(conns) {
                let Ok(mut w) = c else { return };
                w.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut r = BufReader::new(w.try_clone().unwrap());
                while let Some(cmd) = read_command(&mut r) {
                    let reply = if cmd[0].eq_ignore_ascii_case("info") {
                        let section = cmd.get(1).map(|s| s.to_ascii_lowercase());
                        let body = sections
                            .iter()
                            .find(|(s, _)| Some(*s) == section.as_deref())
                            .map_or("", |(_, b)| b);
                        format!("${}\r\n{body}\r\n", body.len())
                    } else {
                        "+OK\r\n".to_owned()
                    };
                    if w.write_all(reply.as_bytes()).is_err() {
                        break;
                    }
                }
            }
        });
        addr
    }

    const COMMANDSTATS: &str = "# Commandstats\r\n\
cmdstat_ping:calls=1,usec=1,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n\
cmdstat_edge.record:calls=4,usec=40,usec_per_call=10.00,rejected_calls=0,failed_calls=0\r\n";

    #[test]
    fn an_edge_with_the_module_is_up() {
        let sections = vec![
            ("edge", crate::info::SAMPLE),
            ("commandstats", COMMANDSTATS),
            ("modules", "module:name=edge,ver=1,api=1,filters=0\r\n"),
        ];
        let addr = fake_redis(sections, 1);
        let t = Target::parse(&format!("m=redis://{addr}"), None, None).unwrap();
        let r = t.scrape(Duration::from_secs(2));
        assert!(r.up, "{r:?}");
        assert_eq!(r.error, None);
        assert_eq!(r.module_version.as_deref(), Some("1"));
        assert_eq!(r.stats.unwrap().counters.len(), 11);
        assert_eq!(r.commands.len(), 1);
    }

    #[test]
    fn a_redis_without_the_module_is_down() {
        // Answers every command, INFO commandstats included, but has no `edge` section.
        let addr = fake_redis(vec![("commandstats", COMMANDSTATS)], 1);
        let t = Target::parse(&format!("plain=redis://{addr}"), None, None).unwrap();
        let r = t.scrape(Duration::from_secs(2));
        assert!(!r.up, "{r:?}");
        assert_eq!(r.error, Some(ScrapeError::NoModule));
        assert!(r.stats.is_none());
        assert!(r.commands.is_empty());
    }

    #[test]
    fn module_replies_need_edge_fields() {
        let e = module_replies("", COMMANDSTATS).unwrap_err();
        assert!(e.contains("module is not loaded"), "{e}");
        assert!(module_replies("# Server\r\nredis_version:7.0.15\r\n", "").is_err());
        let (stats, cmds) = module_replies(crate::info::SAMPLE, COMMANDSTATS).unwrap();
        assert_eq!(stats.gauges.len(), 7);
        assert_eq!(cmds[0].command, "edge.record");
    }

    #[test]
    fn names_default_to_host_port_and_can_be_given() {
        let t = Target::parse("redis://127.0.0.1:6390", None, None).unwrap();
        assert_eq!(t.name, "127.0.0.1:6390");
        let t = Target::parse("paris=redis://u:secret@10.1.2.3:7000/0", None, None).unwrap();
        assert_eq!(t.name, "paris");
        let t = Target::parse("redis:6379", None, None).unwrap();
        assert_eq!(t.name, "redis:6379");
    }

    #[test]
    fn secrets_stay_out_of_names_debug_and_errors() {
        let t = Target::parse("redis://alice:hunter22@db:6379", None, None).unwrap();
        assert_eq!(t.name, "db:6379");
        assert!(!format!("{t:?}").contains("hunter22"));
        assert_eq!(t.scrub("bad hunter22 x".into()), "bad *** x");
        let t = Target::parse("redis://db:6379", Some("bob"), Some("pw-from-env")).unwrap();
        assert_eq!(t.info.redis_settings().username(), Some("bob"));
        assert_eq!(t.info.redis_settings().password(), Some("pw-from-env"));
        assert!(!format!("{t:?}").contains("pw-from-env"));
        let e = Target::parse("redis://u:hunter22@[bad", None, None).unwrap_err();
        assert!(!e.contains("hunter22"), "{e}");
    }

    #[test]
    fn redacts_urls() {
        assert_eq!(redact_url("redis://u:p@h:1/0"), "redis://***@h:1/0");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
        assert_eq!(redact_url("rediss://:p@h"), "rediss://***@h");
    }

    #[test]
    fn duplicate_names_are_refused() {
        let specs = vec!["redis://h:1".to_owned(), "redis://h:1".to_owned()];
        assert!(parse_targets(&specs, None, None).is_err());
        assert!(parse_targets(&[], None, None).is_err());
    }

    #[test]
    fn unreachable_targets_are_down_within_the_deadline() {
        // Port 1 on loopback refuses at once; the result must still name the edge.
        let t = vec![Arc::new(
            Target::parse("x=redis://127.0.0.1:1", None, None).unwrap(),
        )];
        let start = Instant::now();
        let r = scrape_all(&t, Duration::from_millis(500));
        assert!(start.elapsed() < Duration::from_secs(2));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].edge, "x");
        assert!(!r[0].up);
        assert_eq!(r[0].error, Some(ScrapeError::Connect));
    }

    #[test]
    fn a_stalled_target_cannot_hang_the_scrape() {
        // Accepts connections but never answers: only the timeouts can end the scrape.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let _keep = thread::spawn(move || {
            let conns: Vec<_> = l.incoming().take(2).collect();
            thread::sleep(Duration::from_secs(3));
            drop(conns);
        });
        let live = Arc::new(Target::parse(&format!("slow=redis://{addr}"), None, None).unwrap());
        let dead = Arc::new(Target::parse("dead=redis://127.0.0.1:1", None, None).unwrap());
        let start = Instant::now();
        let r = scrape_all(&[live, dead], Duration::from_millis(300));
        assert!(
            start.elapsed() < Duration::from_millis(1500),
            "{:?}",
            start.elapsed()
        );
        assert_eq!((r[0].edge.as_str(), r[0].up), ("slow", false));
        assert_eq!((r[1].edge.as_str(), r[1].up), ("dead", false));
        assert_eq!(r[0].error, Some(ScrapeError::Timeout));
        assert_eq!(r[1].error, Some(ScrapeError::Connect));
    }

    #[test]
    fn the_module_version_comes_from_info_modules() {
        let reply = "# Modules\r\n\
module:name=other,ver=7,api=1,filters=0,usedby=[],using=[],options=[]\r\n\
module:name=edge,ver=3,api=1,filters=0,usedby=[],using=[],options=[handle-io-errors|handle-repl-async-load]\r\n";
        assert_eq!(module_version(reply).as_deref(), Some("3"));
        assert_eq!(module_version("# Modules\r\n"), None);
        assert_eq!(module_version("module:name=edgex,ver=2\n"), None);
        assert_eq!(module_version("module:name=edge\n"), None);
    }
}
