//! `loadgen`: simulated viewers, log replay, load benchmarks and quality evaluation for
//! edgecache. This file is only the command line; the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use std::time::Duration;

use loadgen::baselines::Policy;
use loadgen::bench::{self, Baseline, BenchOptions, Mix};
use loadgen::cluster::ClusterPolicy;
use loadgen::error::{Error, Result};
use loadgen::eval::{self, CapacityUnit, EvalOptions};
use loadgen::logs::{self, LogFlags};
use loadgen::replay::{self, ReplayCommand};
use loadgen::simulate::{self, SimOptions};

/// Feed, benchmark and judge an edgecache server.
#[derive(Parser)]
#[command(name = "loadgen", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate a structured viewing workload (series, binges, genres, daily rhythm).
    Simulate(SimulateArgs),
    /// Stream a log into a server in timestamp order, with pipelining.
    Replay(ReplayArgs),
    /// Evaluate prediction and caching prequentially against classic baselines.
    Eval(EvalArgs),
    /// Score the module, learning online, against offline models fitted on the start of the log.
    Holdout(HoldoutArgs),
    /// Drive load with HDR latency histograms, against plain-Redis baselines.
    Bench(BenchArgs),
    /// Send a log's views as HTTP requests to an edge-server: byte hit ratio, origin bytes,
    /// time to first byte by outcome.
    Http(HttpArgs),
}

#[derive(Args)]
struct HttpArgs {
    #[command(flatten)]
    log: LogArgs,
    /// The edge server's base URL.
    #[arg(long, env = "EDGE_HTTP_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Connections; each viewer's views go over one of them, in log order.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Deadline of one request, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Write a JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct SimulateArgs {
    /// Number of viewers.
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// Number of items (episodes and films) in the catalog.
    #[arg(long, default_value_t = 2000)]
    items: usize,
    /// Number of views to generate.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Seed: the same seed gives the same output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Zipf exponent of title popularity.
    #[arg(long, default_value_t = 0.9)]
    zipf: f64,
    /// Days the log spans: sessions start on local days from 2025-04-01 in each viewer's
    /// time zone (UTC-8 to UTC+9), so the log's UTC timestamps begin on 2025-03-31.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Probability of watching the next episode after a full one.
    #[arg(long, default_value_t = 0.75)]
    binge: f64,
    /// Heavy re-watching / live channels: probability that a session returns to one of the
    /// viewer's first three distinct items (0: off).
    #[arg(long, default_value_t = 0.0)]
    rewatch: f64,
    /// Flash crowd: probability that a session starts on a new 8-episode release at its
    /// launch half-way through the log, halving every day after (0: off).
    #[arg(long, default_value_t = 0.0)]
    flash: f64,
    /// Shift of taste over the day: probability that a new title comes from the genre of the
    /// viewer's local three-hour slot instead of a favourite genre (0: off).
    #[arg(long, default_value_t = 0.0)]
    shift: f64,
    /// Churning catalog: times the popularity ranking rotates over the log (0: off).
    #[arg(long, default_value_t = 0.0)]
    churn: f64,
    /// Write the views as JSON lines (seed schema) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also send the views to this server with EDGE.PLAY (pipelined, explicit TS). A Redis
    /// Cluster: redis+cluster://host:port,host:port (or comma-separated redis:// URLs).
    #[arg(long, env = "EDGE_REDIS_URL")]
    redis: Option<String>,
    /// Commands per pipeline round trip with --redis.
    #[arg(long, default_value_t = 512)]
    pipeline: usize,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Write a JSON report (counts, sample viewer profiles) here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct ReplayArgs {
    #[command(flatten)]
    log: LogArgs,
    /// Server URL, e.g. redis://127.0.0.1:6379; a Redis Cluster as
    /// redis+cluster://host:port,host:port (or comma-separated redis:// URLs).
    #[arg(long, env = "EDGE_REDIS_URL")]
    redis: String,
    /// Command that carries each event.
    #[arg(long, value_enum, default_value = "play")]
    command: ReplayCommand,
    /// Commands per pipeline round trip.
    #[arg(long, default_value_t = 512)]
    pipeline: usize,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Write a JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("stop").args(["duration", "requests"])))]
struct BenchArgs {
    /// Server URL, e.g. redis://127.0.0.1:6379; a Redis Cluster as
    /// redis+cluster://host:port,host:port (or comma-separated redis:// URLs).
    #[arg(long, env = "EDGE_REDIS_URL")]
    redis: String,
    /// Client threads, one connection each.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Commands per pipeline.
    #[arg(long, default_value_t = 16)]
    pipeline: usize,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Run each workload for this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Run each workload for this many commands (default 100000 when neither is given).
    #[arg(long)]
    requests: Option<u64>,
    /// Target total rate (commands/s); latency is then corrected for coordinated omission.
    #[arg(long)]
    rate: Option<f64>,
    /// Edge command mix as weights, e.g. record=1,predict=1,play=2.
    #[arg(long, default_value = "record=1,predict=1,play=1")]
    mix: Mix,
    /// Distinct users (keys U0..U{n-1}).
    #[arg(long, default_value_t = 10_000)]
    users: u64,
    /// Distinct items (C1 to C<items>), Zipf-popular.
    #[arg(long, default_value_t = 5_000)]
    items: u64,
    /// Zipf exponent of item popularity.
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
    /// Plain-Redis baselines to run on the same server (repeatable or comma-separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    baseline: Vec<Baseline>,
    /// Skip the PING workload that shows loadgen's own ceiling.
    #[arg(long)]
    no_ping: bool,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write a JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// How a Redis Cluster client retries (ignored for one server).
#[derive(Args)]
struct ClusterArgs {
    /// On a cluster: times a command refused with MOVED, ASK, TRYAGAIN, CLUSTERDOWN,
    /// LOADING or a broken connection is re-sent (in order per viewer) before it is given
    /// up; waits between rounds grow from 20 ms to 1 s.
    #[arg(long, default_value_t = ClusterPolicy::default().max_retries)]
    cluster_retries: u32,
    /// On a cluster: replicas that must acknowledge each node's pipeline (WAIT, 2 s)
    /// before its views count as applied, so that a master's crash cannot lose a view
    /// unnoticed; views not acknowledged are reported. 0: don't wait.
    #[arg(long, default_value_t = 0)]
    cluster_wait_replicas: u32,
}

impl ClusterArgs {
    fn policy(&self) -> ClusterPolicy {
        ClusterPolicy {
            max_retries: self.cluster_retries,
            wait_replicas: self.cluster_wait_replicas,
            ..ClusterPolicy::default()
        }
    }
}

fn write_json<T: serde::Serialize>(path: &Option<PathBuf>, v: &T) -> Result<()> {
    if let Some(p) = path {
        let text = serde_json::to_string_pretty(v).expect("report serializes");
        std::fs::write(p, text + "\n").map_err(|e| Error::io(p, e))?;
    }
    Ok(())
}

fn simulate_cmd(a: SimulateArgs) -> Result<()> {
    if a.out.is_none() && a.redis.is_none() && a.json.is_none() {
        return Err(Error::Usage(
            "simulate needs somewhere to put the views: --out FILE.jsonl and/or --redis URL".into(),
        ));
    }
    // Connect first: a wrong URL or a server without the module stops the run before the
    // views are generated.
    let mut con = match &a.redis {
        Some(url) => Some((url, replay::connect(url, a.cluster.policy(), true)?)),
        None => None,
    };
    let w = simulate::generate(&SimOptions {
        users: a.users,
        items: a.items,
        events: a.events,
        seed: a.seed,
        zipf: a.zipf,
        days: a.days,
        binge: a.binge,
        rewatch: a.rewatch,
        flash: a.flash,
        shift: a.shift,
        churn: a.churn,
    })?;
    if let Some(p) = &a.out {
        simulate::write_jsonl(&w.log, p)?;
    }
    let mut sent = None;
    let mut outcome = Ok(());
    if let Some((url, con)) = &mut con {
        let r = replay::send_log(
            con,
            &w.log,
            ReplayCommand::Play,
            a.pipeline,
            false,
            "simulate",
        )?;
        eprintln!(
            "sent {} views to {url} ({} errors, {:.0} events/s)",
            r.sent, r.errors, r.ops_per_sec
        );
        let tally = r.tally();
        let resent = replay::resent_line(&r.resent);
        for line in resent.into_iter().chain(tally.lines()) {
            eprintln!("{line}");
        }
        outcome = tally.check("simulate --redis", r.sent);
        sent = Some(r.ok);
    }
    let report = simulate::SimReport::new(&w, a.seed, sent);
    eprintln!(
        "{} views by {} viewers over {} items ({} series, {} films)",
        report.events, report.users, report.items, report.series, report.films
    );
    write_json(&a.json, &report)?;
    outcome
}

fn replay_cmd(a: ReplayArgs) -> Result<()> {
    let mut con = replay::connect(&a.redis, a.cluster.policy(), true)?;
    let log = a.log.read()?;
    let r = replay::send_log(&mut con, &log, a.command, a.pipeline, false, "replay")?;
    let mut text = format!(
        "replayed {} events in {:.2} s ({:.0} events/s): {} ok, {} errors, {} malformed lines skipped\n",
        r.sent, r.elapsed_s, r.ops_per_sec, r.ok, r.errors, r.malformed
    );
    let tally = r.tally();
    let resent = replay::resent_line(&r.resent);
    for line in resent.into_iter().chain(tally.lines()) {
        text += &line;
        text.push('\n');
    }
    print_out(&text)?;
    write_json(&a.json, &r)?;
    tally.check("replay", r.sent)
}

fn http_cmd(a: HttpArgs) -> Result<()> {
    let log = a.log.read()?;
    let o = loadgen::http::HttpOptions {
        url: a.url,
        concurrency: a.concurrency,
        timeout: Duration::from_millis(a.timeout_ms.max(1)),
    };
    let r = loadgen::http::run(&log, &o)?;
    print_out(&r.text())?;
    write_json(&a.json, &r)?;
    let failed: u64 = r.errors.values().sum();
    if failed > 0 {
        return Err(Error::Protocol(format!(
            "{failed} of {} requests got no content (listed above)",
            r.requests
        )));
    }
    Ok(())
}

fn bench_cmd(a: BenchArgs) -> Result<()> {
    let o = BenchOptions {
        url: a.redis,
        clients: a.clients,
        pipeline: a.pipeline,
        cluster: a.cluster.policy(),
        duration: a.duration.map(Duration::from_secs_f64),
        requests: a.requests,
        rate: a.rate,
        mix: a.mix,
        users: a.users,
        items: a.items,
        zipf: a.zipf,
        baselines: a.baseline,
        ping: !a.no_ping,
        seed: a.seed,
    };
    let r = bench::run(&o)?;
    print_out(&r.table())?;
    write_json(&a.json, &r)
}

/// Which log to read and how.
#[derive(Args, Debug, Clone)]
struct LogArgs {
    /// The log file.
    file: PathBuf,
    #[command(flatten)]
    how: LogFlags,
}

impl LogArgs {
    fn read(&self) -> Result<logs::Log> {
        self.how.read(&self.file, None)
    }
}

/// Writes `text` to stdout. A closed pipe comes back as an error that `main` turns into a
/// quiet exit ([`Error::is_broken_pipe`]), where `print!` would panic.
fn print_out(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("standard output", e))
}

/// A comma-separated list of positive integers, as one argument.
#[derive(Debug, Clone)]
struct List(Vec<u64>);

fn parse_list(s: &str) -> std::result::Result<List, String> {
    s.split(',')
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{v:?} is not a positive integer"))
        })
        .collect::<std::result::Result<_, _>>()
        .map(List)
}

#[derive(Args)]
struct EvalArgs {
    #[command(flatten)]
    log: LogArgs,
    /// k of HR@k and MRR@k (also the length of each prediction list).
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Cache capacities in items, comma-separated; every item has size 1.
    #[arg(long, value_parser = parse_list, conflicts_with = "cache_bytes")]
    cache_items: Option<List>,
    /// Cache capacities in bytes, comma-separated; items take their size from the log, or --item-size.
    #[arg(long, value_parser = parse_list)]
    cache_bytes: Option<List>,
    /// With --cache-bytes: size of items the log gives no size for.
    #[arg(long, default_value_t = 1 << 20)]
    item_size: u64,
    /// Sweep an engine setting for the edge curve, as NAME=V1,V2,… (repeatable: the runs
    /// cover the cartesian product). Names are those of CONFIG SET edge.<name>, e.g.
    /// prefetch-k=0,1,2,3,5,8,12,20,30.
    #[arg(long)]
    sweep: Vec<String>,
    /// Run the edge rows through this server (module loaded) instead of in process. The
    /// server is flushed and reconfigured for each run.
    #[arg(long, env = "EDGE_REDIS_URL")]
    redis: Option<String>,
    /// Events per pipeline round trip with --redis.
    #[arg(long, default_value_t = 512)]
    pipeline: usize,
    /// Threads for in-process runs (default: available cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Demand policies to compare, comma-separated (lru,lfu,arc,s3fifo,w-tinylfu,belady).
    #[arg(long, default_value = "lru,lfu,arc,s3fifo,w-tinylfu,belady")]
    policies: String,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the hit-ratio / origin-fetch plot here (SVG).
    #[arg(long)]
    plot: Option<PathBuf>,
}

#[derive(Args)]
struct HoldoutArgs {
    #[command(flatten)]
    log: LogArgs,
    /// k of HR@k and MRR@k.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Share of the events (in time order) the offline models are fitted on; the rest is scored.
    #[arg(long, default_value_t = 0.8)]
    train: f64,
    /// Shares at which the retrained models are fitted again, comma-separated ("" for none).
    #[arg(long, default_value = "0.9")]
    retrain: String,
    /// An engine setting for the module, as NAME=VALUE (repeatable; CONFIG SET edge.<name> names).
    #[arg(long = "set")]
    settings: Vec<String>,
    /// Run the module through this server (module loaded; it is flushed) instead of in process.
    #[arg(long, env = "EDGE_REDIS_URL")]
    redis: Option<String>,
    /// Events per pipeline round trip with --redis.
    #[arg(long, default_value_t = 512)]
    pipeline: usize,
    /// Add a model ranked elsewhere, as NAME=FILE: one line of item indices per held-out
    /// event (scripts/sequential-baselines.py writes them; repeatable).
    #[arg(long = "ranks")]
    ranks: Vec<String>,
    /// Write the time-ordered events as `user item` index lines here (the input of
    /// scripts/sequential-baselines.py), then evaluate as usual.
    #[arg(long)]
    events_out: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn holdout_cmd(a: HoldoutArgs) -> Result<()> {
    let log = a.log.read()?;
    let retrain = a
        .retrain
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse::<f64>()
                .map_err(|_| Error::Usage(format!("--retrain: {s:?} is not a share such as 0.9")))
        })
        .collect::<Result<Vec<_>>>()?;
    let settings = a
        .settings
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| Error::Usage(format!("--set {s:?}: expected NAME=VALUE")))
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(p) = &a.events_out {
        loadgen::holdout::write_events(&log, p)?;
    }
    let external = a
        .ranks
        .iter()
        .map(|s| {
            let (name, file) = s
                .split_once('=')
                .ok_or_else(|| Error::Usage(format!("--ranks {s:?}: expected NAME=FILE")))?;
            let lists = loadgen::holdout::read_ranks(file.as_ref(), log.items.len())?;
            Ok((name.to_owned(), lists))
        })
        .collect::<Result<Vec<_>>>()?;
    let opts = loadgen::holdout::HoldoutOptions {
        k: a.k,
        external,
        train: a.train,
        retrain,
        settings,
        redis: a.redis,
        pipeline: a.pipeline,
    };
    let report = loadgen::holdout::evaluate(&log, &opts)?;
    print_out(&report.table())?;
    write_json(&a.json, &report)?;
    Ok(())
}

fn eval_cmd(a: EvalArgs) -> Result<()> {
    let log = a.log.read()?;
    let (unit, capacities) = match (a.cache_items, a.cache_bytes) {
        (_, Some(b)) => (CapacityUnit::Bytes, b.0),
        (Some(i), None) => (CapacityUnit::Items, i.0),
        (None, None) => (CapacityUnit::Items, vec![50, 100, 200]),
    };
    let policies = a
        .policies
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            Policy::ALL
                .into_iter()
                .find(|p| p.name() == s.trim())
                .ok_or_else(|| Error::Usage(format!("unknown policy {s:?}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let opts = EvalOptions {
        k: a.k,
        capacities,
        unit,
        item_size: a.item_size,
        sweep: a
            .sweep
            .iter()
            .map(|s| eval::parse_sweep(s))
            .collect::<Result<_>>()?,
        redis: a.redis,
        pipeline: a.pipeline,
        jobs: a
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        policies,
    };
    let input = eval::report::InputInfo {
        file: a.log.file.display().to_string(),
        format: a.log.how.format,
        users: log.users.len(),
        items: log.items.len(),
        malformed: log.malformed_count,
        malformed_examples: log.malformed.clone(),
    };
    let report = eval::evaluate(&log, input, &opts)?;
    print_out(&report.table())?;
    write_json(&a.json, &report)?;
    if let Some(p) = &a.plot {
        eval::plot::write_svg(&report, p)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Simulate(a) => simulate_cmd(a),
        Cmd::Replay(a) => replay_cmd(a),
        Cmd::Eval(a) => eval_cmd(a),
        Cmd::Holdout(a) => holdout_cmd(a),
        Cmd::Bench(a) => bench_cmd(a),
        Cmd::Http(a) => http_cmd(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        // `loadgen … | head`: the reader has what it wanted.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: error: {e}");
            ExitCode::FAILURE
        }
    }
}
