//! `loadgen`: simulated viewers, log replay, load benchmarks and quality evaluation for
//! edgecache. This file is only the command line; the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use loadgen::baselines::Policy;
use loadgen::error::{Error, Result};
use loadgen::eval::{self, CapacityUnit, EvalOptions};
use loadgen::logs::{self, CsvColumns, Format, ReadOptions, TimeUnit};

/// Feed, benchmark and judge an edgecache server.
#[derive(Parser)]
#[command(name = "loadgen", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Evaluate prediction and caching prequentially against classic baselines.
    Eval(EvalArgs),
}

/// Which log to read and how.
#[derive(Args, Debug, Clone)]
struct LogArgs {
    /// Log format.
    #[arg(long, value_enum, default_value = "jsonl")]
    format: Format,
    /// The log file.
    file: PathBuf,
    /// Unit of numeric timestamps in the log.
    #[arg(long, value_enum, default_value = "s")]
    time_unit: TimeUnit,
    /// Stop at the first malformed line (by default they are counted and skipped).
    #[arg(long)]
    strict: bool,
    /// Read only the first N events of the file (0: all).
    #[arg(long, default_value_t = 0)]
    limit: usize,
    #[command(flatten)]
    csv: CsvColumns,
}

impl LogArgs {
    fn read(&self) -> Result<logs::Log> {
        let opts = ReadOptions {
            format: self.format,
            time_unit: self.time_unit,
            csv: self.csv.clone(),
            strict: self.strict,
            limit: self.limit,
        };
        let log = logs::read_log(&self.file, &opts)?;
        if log.malformed_count > 0 {
            eprintln!(
                "{}: skipped {} malformed line(s):",
                self.file.display(),
                log.malformed_count
            );
            for m in &log.malformed {
                eprintln!("  line {}: {}", m.line, m.reason);
            }
            if log.malformed_count > log.malformed.len() as u64 {
                eprintln!("  ...");
            }
        }
        Ok(log)
    }
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
        format: a.log.format,
        users: log.users.len(),
        items: log.items.len(),
        malformed: log.malformed_count,
        malformed_examples: log.malformed.clone(),
    };
    let report = eval::evaluate(&log, input, &opts)?;
    print!("{}", report.table());
    if let Some(p) = &a.json {
        report.write_json(p)?;
    }
    if let Some(p) = &a.plot {
        eval::plot::write_svg(&report, p)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Eval(a) => eval_cmd(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: error: {e}");
            ExitCode::FAILURE
        }
    }
}
