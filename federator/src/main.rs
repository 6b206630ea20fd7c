//! `federator`: runs federation rounds between edgecache edges, or evaluates federation
//! on a real log (`federator eval`). Everything but argument parsing lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use federator::edge::EdgeSpec;
use federator::eval::{self, FedSetup, SplitBy};
use federator::remote::{self, AgentSpec};
use federator::run::{self, parse_duration};
use federator::{agent, wire};
use loadgen::logs::{Format, LogFlags};

#[derive(Parser, Debug)]
#[command(
    name = "federator",
    version,
    about = "Federated learning between edgecache edges"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Local-only vs federated vs centralized on a log split into edges (by MovieLens
    /// region, by a hash of the viewer or by a column of the log).
    Eval(Box<EvalArgs>),
    /// The secure-aggregation agent beside one edge: holds its seeds and unmasked table,
    /// sends the aggregator only masked vectors.
    Agent(AgentArgs),
}

/// `federator agent`: see `federator::agent`.
#[derive(Args, Debug)]
struct AgentArgs {
    /// Its edge: redis://host:port.
    #[arg(long, required_unless_present = "show_key")]
    redis: Option<String>,
    /// Where the aggregator connects (HOST:PORT).
    #[arg(long, default_value = "127.0.0.1:7790")]
    listen: String,
    /// Its name in its log lines.
    #[arg(long, default_value = "agent")]
    name: String,
    /// Bound on every exchange with the edge and on the wait for the aggregator.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: std::time::Duration,
    /// Fewest agents (itself included) it masks among.
    #[arg(long, default_value_t = 2)]
    min_peers: usize,
    /// Keep its x25519 secret key here (created owner-only if absent) and the last round
    /// it masked for beside it, so peers can pin its public key; default: a fresh key per
    /// process.
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
    /// Pin another agent's public key (64 hex digits; repeat): a round whose set names any
    /// other key is refused, so an aggregator cannot swap keys.
    #[arg(long = "peer-key", value_name = "HEX", value_parser = agent::parse_key)]
    peer_keys: Vec<[u8; 32]>,
    /// Print the public key of --key-file (creating it) and exit.
    #[arg(long, requires = "key_file")]
    show_key: bool,
}

/// Secure aggregation with agents in their own processes (instead of `--edge`).
#[derive(Args, Debug)]
struct AgentsArgs {
    /// An agent (`federator agent`): NAME=HOST:PORT (repeat). The aggregator then receives
    /// only masked vectors.
    #[arg(long = "agent", value_name = "NAME=HOST:PORT", conflicts_with_all = ["edges", "secure", "dp_epsilon"])]
    agents: Vec<AgentSpec>,
    /// Debug: append every message received from the agents (and the layout sent) to FILE
    /// as JSON lines.
    #[arg(long, value_name = "FILE", requires = "agents")]
    log_received: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// An edge: NAME=redis://host:port (repeat).
    #[arg(long = "edge", value_name = "NAME=URL")]
    edges: Vec<EdgeSpec>,
    /// Rounds to run (default: 1, or forever with --interval).
    #[arg(long)]
    rounds: Option<u64>,
    /// Time between round starts (30s, 500ms, 2m): runs as a service.
    #[arg(long, value_parser = parse_duration)]
    interval: Option<std::time::Duration>,
    /// Fewest answering edges for a round to push; fewer: skipped and logged.
    #[arg(long, default_value_t = 2)]
    min_edges: usize,
    /// Bound on each edge's export and import in a round.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: std::time::Duration,
    /// Laplace noise on the aggregate with this ε per round (needs --dp-clip).
    #[arg(long, requires = "dp_clip")]
    dp_epsilon: Option<f64>,
    /// The loosest edge.dp-clip accepted (views per viewer per round that reach an export);
    /// the noise is sized from each edge's reported dp-clip and learning settings.
    #[arg(long, requires = "dp_epsilon")]
    dp_clip: Option<u32>,
    /// Pairwise-masked secure aggregation (see the README's threat model).
    #[arg(long)]
    secure: bool,
    /// Write the JSON summary here (rewritten after every round).
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    remote: AgentsArgs,
}

#[derive(Args, Debug)]
struct EvalArgs {
    /// The log, in any format `loadgen eval` reads.
    #[arg(required_unless_present = "movielens", conflicts_with = "movielens")]
    log: Option<PathBuf>,
    #[command(flatten)]
    how: LogFlags,
    /// Directory holding MovieLens 100K's u.data and u.user: short for
    /// `DIR/u.data --format movielens --split region`.
    #[arg(long, value_name = "DIR")]
    movielens: Option<PathBuf>,
    /// How viewers are split into edges: `region` (MovieLens zip codes, from the u.user
    /// beside u.data, into --edges regions) or `hash:N` (a stable hash of the viewer id).
    #[arg(long, conflicts_with = "split_col")]
    split: Option<SplitBy>,
    /// Split by this CSV column or JSONL field: one edge per value, each viewer on the edge
    /// its first line names.
    #[arg(long, value_name = "COLUMN")]
    split_col: Option<String>,
    /// Edges of a region split (by the first digit of the zip code).
    #[arg(long, default_value_t = 3)]
    edges: usize,
    /// Events between federation rounds; a comma list runs each.
    #[arg(long, default_value = "5000", value_delimiter = ',')]
    round_every: Vec<usize>,
    /// Also run federated with DP at these ε per round.
    #[arg(long, value_delimiter = ',')]
    dp_epsilon: Vec<f64>,
    /// Views per viewer per round under DP.
    #[arg(long, default_value_t = 50)]
    dp_clip: u32,
    /// Also run federated with secure aggregation.
    #[arg(long)]
    secure: bool,
    /// Write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = match cli.cmd {
        Some(Cmd::Eval(a)) => run_eval(*a),
        Some(Cmd::Agent(a)) => run_agent(a),
        None => run_federation(cli.run),
    };
    match out {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("federator: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_agent(a: AgentArgs) -> Result<(), String> {
    if let (true, Some(p)) = (a.show_key, &a.key_file) {
        println!("{}", agent::hex(&agent::public_of(agent::load_key(p)?)));
        return Ok(());
    }
    let redis = a.redis.unwrap_or_default();
    if !(redis.starts_with("redis://") || redis.starts_with("rediss://")) {
        return Err(format!("--redis {redis:?}: expected redis://host:port"));
    }
    if a.min_peers < 2 {
        return Err("--min-peers must be at least 2 (alone, masking hides nothing)".into());
    }
    let l = std::net::TcpListener::bind(&a.listen)
        .map_err(|e| format!("--listen {}: {e}", a.listen))?;
    agent::serve(
        l,
        agent::AgentOptions {
            name: a.name,
            redis,
            timeout: a.timeout,
            min_peers: a.min_peers,
            max_frame: wire::MAX_FRAME,
            key_file: a.key_file,
            peer_keys: a.peer_keys,
        },
    )
}

fn run_federation(a: RunArgs) -> Result<(), String> {
    if !a.remote.agents.is_empty() {
        return run_remote(a);
    }
    if a.edges.len() < 2 {
        return Err("give at least two --edge NAME=redis://host:port".into());
    }
    if let Some(e) = a.dp_epsilon {
        if !(e.is_finite() && e > 0.0) {
            return Err("--dp-epsilon must be positive".into());
        }
    }
    if a.dp_clip == Some(0) {
        return Err("--dp-clip must be at least 1".into());
    }
    let opts = run::Options {
        edges: a.edges,
        rounds: a.rounds,
        interval: a.interval,
        min_edges: a.min_edges,
        timeout: a.timeout,
        dp: a.dp_epsilon.zip(a.dp_clip),
        secure: a.secure,
        json: a.json,
    };
    let s = run::run(&opts)?;
    print_out(&(serde_json::to_string_pretty(&s).map_err(|e| e.to_string())? + "\n"))
}

/// Writes `text` to stdout. A closed pipe (`federator eval … | head -1`) is not an error:
/// the reader has what it wanted, so the rest is dropped quietly, where `println!` would
/// panic (exit 101).
fn print_out(text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("writing to standard output: {e}"))
        }
        _ => Ok(()),
    }
}

fn run_remote(a: RunArgs) -> Result<(), String> {
    if a.remote.agents.len() < 2 || a.min_edges < 2 {
        return Err("secure aggregation needs at least two --agent and --min-edges 2".into());
    }
    let opts = remote::Options {
        agents: a.remote.agents,
        rounds: a.rounds,
        interval: a.interval,
        min_edges: a.min_edges,
        timeout: a.timeout,
        json: a.json,
        log_received: a.remote.log_received,
        max_frame: wire::MAX_FRAME,
    };
    let s = remote::run(&opts)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&s).map_err(|e| e.to_string())?
    );
    Ok(())
}

fn run_eval(a: EvalArgs) -> Result<(), String> {
    if a.edges < 2 {
        return Err("--edges must be at least 2".into());
    }
    let mut how = a.how;
    let path = match (&a.movielens, &a.log) {
        (Some(dir), _) => {
            how.format = Format::Movielens;
            dir.join("u.data")
        }
        (None, Some(log)) => log.clone(),
        (None, None) => return Err("give a log file or --movielens DIR".into()),
    };
    let by = match (a.split, a.split_col) {
        (Some(SplitBy::Region(_)), _) => SplitBy::Region(a.edges),
        (Some(by), _) => by,
        (None, Some(col)) => SplitBy::Column(col),
        (None, None) if a.movielens.is_some() => SplitBy::Region(a.edges),
        (None, None) => return Err(
            "say how to split the log's viewers into edges: --split hash:N, --split-col COLUMN, \
                 or --split region for MovieLens 100K"
                .into(),
        ),
    };
    let split = eval::read_split(&path, &how, &by)?;
    let sizes: Vec<String> = split
        .names
        .iter()
        .zip(split.sizes())
        .map(|(name, n)| format!("{name}: {n}"))
        .collect();
    eprintln!(
        "{} events, {} viewers; events per edge: {}",
        split.events.len(),
        split.edge_of.len(),
        sizes.join(", ")
    );
    let mut all = vec![
        eval::replay(&split, true, None)?,
        eval::replay(&split, false, None)?,
    ];
    for &n in &a.round_every {
        let fed = |dp, secure| FedSetup {
            round_every: n,
            dp,
            secure,
        };
        all.push(eval::replay(&split, false, Some(fed(None, false)))?);
        if a.secure {
            all.push(eval::replay(&split, false, Some(fed(None, true)))?);
        }
        for &eps in &a.dp_epsilon {
            all.push(eval::replay(
                &split,
                false,
                Some(fed(Some((eps, a.dp_clip)), false)),
            )?);
        }
    }
    let mut table = format!(
        "{:<36} {:>7} {:>7} {:>7} {:>6} {:>12} {:>12} {:>8}\n",
        "setup", "HR@10", "MRR@10", "hit", "rounds", "B in/round", "B out/round", "eps tot"
    );
    for f in &all {
        table += &format!(
            "{:<36} {:>7.4} {:>7.4} {:>7.4} {:>6} {:>12.0} {:>12.0} {:>8}",
            if f.round_every > 0 {
                format!("{} N={}", f.setup, f.round_every)
            } else {
                f.setup.clone()
            },
            f.hr10,
            f.mrr10,
            f.hit_ratio,
            f.rounds,
            f.bytes_in_per_round,
            f.bytes_out_per_round,
            f.epsilon_total.map_or("-".into(), |e| format!("{e}")),
        );
        table.push('\n');
    }
    print_out(&table)?;
    if let Some(p) = a.json {
        let text = serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?;
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}
