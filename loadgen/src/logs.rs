//! Reading viewing logs into one time-ordered list of events.
//!
//! Three formats are understood:
//! - `jsonl`: the seed schema, one object per line:
//!   `{"user_id":"U001","device":"TV","content_id":"C456","duration":42,"timestamp":"2025-04-12 22:30:00"}`
//!   (`device`, `duration` and an optional `size` in bytes may be absent; `timestamp` may
//!   also be a number in `--time-unit`);
//! - `movielens`: GroupLens `u.data`, tab-separated `user item rating unix-seconds`;
//! - `csv`: a header line, then rows; the columns used are named by [`CsvColumns`].
//!
//! Events are sorted by timestamp with ties kept in file order (a stable sort): the exact
//! protocol every figure depends on. Malformed lines are counted with their line number and
//! skipped, unless the caller asks for strictness.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::timefmt::parse_datetime_ms;

/// The file layouts `loadgen` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON lines in the seed schema (what `loadgen simulate` writes).
    Jsonl,
    /// GroupLens MovieLens `u.data`: user, item, rating, unix seconds; tab-separated.
    Movielens,
    /// A CSV export with a header; columns chosen with `--user-col` and friends.
    Csv,
}

impl Format {
    /// The format's name and layout, for messages that say what a line should look like.
    pub fn describe(self) -> &'static str {
        match self {
            Format::Jsonl => {
                "--format jsonl (one JSON object a line with user_id, content_id and timestamp)"
            }
            Format::Movielens => {
                "--format movielens (user, item, rating and unix seconds, tab-separated)"
            }
            Format::Csv => "--format csv (a header line naming the columns, then rows)",
        }
    }
}

/// Default of `--max-malformed`: the share of malformed lines a log may have before it is
/// refused. A real export with a few damaged lines passes; a file read in the wrong format
/// (nearly every line malformed) or badly damaged stops the run instead of producing
/// figures from what little parsed.
pub const MAX_MALFORMED_SHARE: f64 = 0.01;

/// Unit of numeric timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    /// Seconds since the Unix epoch (MovieLens, most rating exports).
    #[default]
    S,
    /// Milliseconds since the Unix epoch.
    Ms,
}

impl TimeUnit {
    fn to_ms(self, v: f64) -> i64 {
        match self {
            TimeUnit::S => (v * 1000.0).round() as i64,
            TimeUnit::Ms => v.round() as i64,
        }
    }
}

/// Column names of a CSV log. The defaults fit the common rating exports
/// (MovieLens `ratings.csv`: `userId,movieId,rating,timestamp`).
#[derive(Debug, Clone, clap::Args)]
pub struct CsvColumns {
    /// CSV: column holding the user id.
    #[arg(long, default_value = "userId")]
    pub user_col: String,
    /// CSV: column holding the item id.
    #[arg(long, default_value = "movieId")]
    pub item_col: String,
    /// CSV: column holding the timestamp (a number in --time-unit, or a date-time).
    #[arg(long, default_value = "timestamp")]
    pub time_col: String,
    /// CSV: optional column with seconds watched.
    #[arg(long)]
    pub duration_col: Option<String>,
    /// CSV: optional column with the device class.
    #[arg(long)]
    pub device_col: Option<String>,
    /// CSV: optional column with the item size in bytes.
    #[arg(long)]
    pub size_col: Option<String>,
    /// CSV: field delimiter.
    #[arg(long, default_value_t = ',')]
    pub delimiter: char,
}

impl Default for CsvColumns {
    fn default() -> Self {
        CsvColumns {
            user_col: "userId".into(),
            item_col: "movieId".into(),
            time_col: "timestamp".into(),
            duration_col: None,
            device_col: None,
            size_col: None,
            delimiter: ',',
        }
    }
}

/// How to read a log.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// File layout.
    pub format: Format,
    /// Unit of numeric timestamps.
    pub time_unit: TimeUnit,
    /// CSV column names.
    pub csv: CsvColumns,
    /// Stop at the first malformed line instead of counting it.
    pub strict: bool,
    /// Read at most this many events (0: all).
    pub limit: usize,
    /// A CSV column or JSONL field that names each viewer's group (the site or region that
    /// served them, for splitting a log into edges); a viewer keeps the first value seen.
    pub group_col: Option<String>,
}

impl ReadOptions {
    /// Defaults for `format`.
    pub fn new(format: Format) -> Self {
        ReadOptions {
            format,
            time_unit: TimeUnit::S,
            csv: CsvColumns::default(),
            strict: false,
            limit: 0,
            group_col: None,
        }
    }
}

/// How to read a log, as a command line says it: the one set of flags every tool that reads
/// logs takes (`loadgen eval`, `replay`, `holdout`, `federator eval`), so they read alike.
#[derive(Debug, Clone, clap::Args)]
pub struct LogFlags {
    /// Log format.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: Format,
    /// Unit of numeric timestamps in the log.
    #[arg(long, value_enum, default_value = "s")]
    pub time_unit: TimeUnit,
    /// Stop at the first malformed line (by default they are counted and skipped).
    #[arg(long)]
    pub strict: bool,
    /// Refuse the log when more than this share of its lines is malformed (0 to 1; a log
    /// with no readable line is always refused): a higher share usually means the wrong
    /// --format.
    #[arg(long, default_value_t = MAX_MALFORMED_SHARE, value_parser = parse_share)]
    pub max_malformed: f64,
    /// Read only the first N events of the file (0: all).
    #[arg(long, default_value_t = 0)]
    pub limit: usize,
    #[command(flatten)]
    pub csv: CsvColumns,
}

impl LogFlags {
    /// Reads `path` as the flags say, with `group_col` (see [`ReadOptions::group_col`]);
    /// refuses a log with too many malformed lines and reports the skipped ones on stderr.
    pub fn read(&self, path: &Path, group_col: Option<String>) -> Result<Log> {
        let opts = ReadOptions {
            format: self.format,
            time_unit: self.time_unit,
            csv: self.csv.clone(),
            strict: self.strict,
            limit: self.limit,
            group_col,
        };
        let log = read_log(path, &opts)?;
        log.check_malformed(path, self.format, self.max_malformed)?;
        if log.malformed_count > 0 {
            eprintln!(
                "{}: skipped {} malformed line(s):",
                path.display(),
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

/// A share from 0 to 1, as `--max-malformed` takes it.
fn parse_share(s: &str) -> std::result::Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| (0.0..=1.0).contains(x))
        .ok_or_else(|| format!("{s:?} is not a share from 0 to 1 (such as 0.01)"))
}

/// One view, with ids interned to dense indices into [`Log`]'s name tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Index into [`Log::users`].
    pub user: u32,
    /// Index into [`Log::items`]; items are numbered in natural id order (numeric ids
    /// numerically, then the rest lexicographically), which is the documented tie-break of
    /// the baselines.
    pub item: u32,
    /// Milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// Seconds watched, if the log says.
    pub duration_s: Option<u32>,
    /// Index into [`Log::devices`], if the log names a device.
    pub device: Option<u16>,
    /// Item size in bytes, if the log gives one.
    pub size: Option<u64>,
}

/// A malformed input line.
#[derive(Debug, Clone, Serialize)]
pub struct Malformed {
    /// 1-based line number.
    pub line: u64,
    /// Why it was rejected.
    pub reason: String,
}

/// At most this many malformed lines are kept verbatim; all are counted.
pub const MALFORMED_KEPT: usize = 20;

/// A parsed, time-sorted log.
#[derive(Debug, Clone, Default)]
pub struct Log {
    /// Events sorted by timestamp, ties in file order.
    pub events: Vec<Event>,
    /// User ids by index.
    pub users: Vec<String>,
    /// Item ids by index (natural order).
    pub items: Vec<String>,
    /// Device names by index.
    pub devices: Vec<String>,
    /// Lines rejected (all of them counted in [`Log::malformed_count`]).
    pub malformed: Vec<Malformed>,
    /// Number of malformed lines.
    pub malformed_count: u64,
    /// Lines read, including the header and blank lines.
    pub lines: u64,
    /// Group names by index (see [`ReadOptions::group_col`]), in order of first appearance.
    pub groups: Vec<String>,
    /// Each viewer's group (the first value seen), by user index; empty without
    /// [`ReadOptions::group_col`], `None` for a viewer none of whose lines named one.
    pub user_group: Vec<Option<u32>>,
}

impl Log {
    /// The device name of an event.
    pub fn device(&self, e: &Event) -> Option<&str> {
        e.device.map(|d| self.devices[d as usize].as_str())
    }

    /// `Err` ([`Error::Unreadable`]) when no line gave an event although some were
    /// malformed, or when more than `max_share` of the data lines (events plus malformed
    /// lines) were malformed; the message names the count, the first bad line and the
    /// format expected. A log that is merely empty is accepted.
    pub fn check_malformed(&self, path: &Path, format: Format, max_share: f64) -> Result<()> {
        let lines = self.events.len() as u64 + self.malformed_count;
        let too_many = self.malformed_count > 0
            && (self.events.is_empty() || self.malformed_count as f64 > max_share * lines as f64);
        if !too_many {
            return Ok(());
        }
        Err(Error::Unreadable {
            path: path.to_owned(),
            format: format.describe(),
            malformed: self.malformed_count,
            lines,
            max_share,
            first: self.malformed.first().map(|m| (m.line, m.reason.clone())),
        })
    }

    /// Whether any event carries an item size.
    pub fn has_sizes(&self) -> bool {
        self.events.iter().any(|e| e.size.is_some())
    }
}

/// Raw fields of one line before interning.
struct Raw<'a> {
    user: &'a str,
    item: &'a str,
    ts_ms: i64,
    duration_s: Option<u32>,
    device: Option<&'a str>,
    size: Option<u64>,
}

#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn get(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.ids.insert(s.to_owned(), i);
        self.names.push(s.to_owned());
        i
    }
}

fn parse_ts(v: &str, unit: TimeUnit) -> std::result::Result<i64, String> {
    let v = v.trim();
    if let Ok(x) = v.parse::<f64>() {
        if x.is_finite() && x >= 0.0 {
            return Ok(unit.to_ms(x));
        }
        return Err(format!("timestamp {v:?} is not a non-negative number"));
    }
    parse_datetime_ms(v)
        .ok_or_else(|| format!("timestamp {v:?} is neither a number nor YYYY-MM-DD HH:MM:SS"))
}

fn check_id<'a>(v: &'a str, what: &str) -> std::result::Result<&'a str, String> {
    let v = v.trim();
    if v.is_empty() || v.len() > 512 || v.chars().any(char::is_whitespace) {
        return Err(format!(
            "{what} id {v:?} must be 1 to 512 bytes without spaces"
        ));
    }
    Ok(v)
}

fn check_device(v: &str) -> std::result::Result<&str, String> {
    let ok = !v.is_empty()
        && v.len() <= 32
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if ok {
        Ok(v)
    } else {
        Err(format!(
            "device {v:?} must be 1 to 32 letters, digits, '_', '-' or '.'"
        ))
    }
}

fn parse_movielens(line: &str, unit: TimeUnit) -> std::result::Result<Raw<'_>, String> {
    let f: Vec<&str> = line.split(['\t', ' ']).filter(|s| !s.is_empty()).collect();
    if f.len() != 4 {
        return Err(format!(
            "expected 4 tab-separated fields (user item rating seconds), found {}",
            f.len()
        ));
    }
    f[2].parse::<f64>()
        .map_err(|_| format!("rating {:?} is not a number", f[2]))?;
    Ok(Raw {
        user: check_id(f[0], "user")?,
        item: check_id(f[1], "item")?,
        ts_ms: parse_ts(f[3], unit)?,
        duration_s: None,
        device: None,
        size: None,
    })
}

#[derive(serde::Deserialize)]
struct JsonLine {
    user_id: serde_json::Value,
    content_id: serde_json::Value,
    timestamp: serde_json::Value,
    #[serde(default)]
    device: Option<String>,
    #[serde(default)]
    duration: Option<f64>,
    #[serde(default)]
    size: Option<u64>,
}

fn json_id(v: &serde_json::Value, what: &str) -> std::result::Result<String, String> {
    match v {
        serde_json::Value::String(s) => Ok(check_id(s, what)?.to_owned()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        _ => Err(format!("{what} id must be a string or a number")),
    }
}

/// An owned raw line (JSON values are decoded into owned strings).
struct OwnedRaw {
    user: String,
    item: String,
    ts_ms: i64,
    duration_s: Option<u32>,
    device: Option<String>,
    size: Option<u64>,
    group: Option<String>,
}

fn parse_jsonl(
    line: &str,
    unit: TimeUnit,
    group_field: Option<&str>,
) -> std::result::Result<OwnedRaw, String> {
    let invalid = |e: serde_json::Error| format!("invalid JSON: {e}");
    // Only a split by a field needs the fields the schema does not name.
    let (j, group): (JsonLine, _) = match group_field {
        None => (serde_json::from_str(line).map_err(invalid)?, None),
        Some(f) => {
            let v: serde_json::Value = serde_json::from_str(line).map_err(invalid)?;
            let group = match v.get(f) {
                None | Some(serde_json::Value::Null) => None,
                Some(g) => Some(json_id(g, f)?),
            };
            (serde_json::from_value(v).map_err(invalid)?, group)
        }
    };
    let ts_ms = match &j.timestamp {
        serde_json::Value::String(s) => parse_ts(s, unit)?,
        serde_json::Value::Number(n) => parse_ts(&n.to_string(), unit)?,
        _ => return Err("timestamp must be a string or a number".into()),
    };
    let duration_s = match j.duration {
        Some(d) if (0.0..1e7).contains(&d) => Some(d.round() as u32),
        Some(d) => return Err(format!("duration {d} is out of range")),
        None => None,
    };
    let device = match j.device {
        Some(d) => Some(check_device(&d)?.to_owned()),
        None => None,
    };
    if j.size == Some(0) {
        return Err("size must be at least 1 byte".into());
    }
    Ok(OwnedRaw {
        user: json_id(&j.user_id, "user")?,
        item: json_id(&j.content_id, "item")?,
        ts_ms,
        duration_s,
        device,
        size: j.size,
        group,
    })
}

/// Splits one CSV record: RFC 4180 quoting (`"a,b"`, `""` for a quote) on a single line.
pub fn split_csv(line: &str, delim: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    cur.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' {
            quoted = true;
        } else if c == delim {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

struct CsvLayout {
    user: usize,
    item: usize,
    time: usize,
    duration: Option<usize>,
    device: Option<usize>,
    size: Option<usize>,
    group: Option<usize>,
    width: usize,
}

fn csv_layout(
    header: &str,
    c: &CsvColumns,
    group: Option<&str>,
) -> std::result::Result<CsvLayout, String> {
    let names: Vec<String> = split_csv(header.trim_start_matches('\u{feff}'), c.delimiter)
        .into_iter()
        .map(|s| s.trim().to_owned())
        .collect();
    let find = |n: &str, flag: &str| {
        names.iter().position(|x| x == n).ok_or_else(|| {
            format!("header has no column {n:?} (columns: {names:?}); set it with {flag}")
        })
    };
    let opt = |n: &Option<String>, flag: &str| n.as_deref().map(|n| find(n, flag)).transpose();
    let l = CsvLayout {
        user: find(&c.user_col, "--user-col")?,
        item: find(&c.item_col, "--item-col")?,
        time: find(&c.time_col, "--time-col")?,
        duration: opt(&c.duration_col, "--duration-col")?,
        device: opt(&c.device_col, "--device-col")?,
        size: opt(&c.size_col, "--size-col")?,
        group: group.map(|g| find(g, "the split column")).transpose()?,
        width: 0,
    };
    let width = [
        Some(l.user),
        Some(l.item),
        Some(l.time),
        l.duration,
        l.device,
        l.size,
        l.group,
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(0)
        + 1;
    Ok(CsvLayout { width, ..l })
}

fn parse_csv_row(
    line: &str,
    l: &CsvLayout,
    c: &CsvColumns,
    unit: TimeUnit,
) -> std::result::Result<OwnedRaw, String> {
    let f = split_csv(line, c.delimiter);
    if f.len() < l.width {
        return Err(format!(
            "expected at least {} fields, found {}",
            l.width,
            f.len()
        ));
    }
    let duration_s = match l.duration.map(|i| f[i].trim()) {
        None | Some("") => None,
        Some(v) => Some(
            v.parse::<f64>()
                .ok()
                .filter(|d| (0.0..1e7).contains(d))
                .ok_or_else(|| format!("duration {v:?} is not a number of seconds"))?
                .round() as u32,
        ),
    };
    let device = match l.device.map(|i| f[i].trim()) {
        None | Some("") => None,
        Some(v) => Some(check_device(v)?.to_owned()),
    };
    let size = match l.size.map(|i| f[i].trim()) {
        None | Some("") => None,
        Some(v) => Some(
            v.parse::<u64>()
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| format!("size {v:?} is not a positive integer"))?,
        ),
    };
    Ok(OwnedRaw {
        user: check_id(&f[l.user], "user")?.to_owned(),
        item: check_id(&f[l.item], "item")?.to_owned(),
        ts_ms: parse_ts(&f[l.time], unit)?,
        duration_s,
        device,
        size,
        group: match l.group.map(|i| f[i].trim()) {
            None | Some("") => None,
            Some(v) => Some(check_id(v, "group")?.to_owned()),
        },
    })
}

/// Natural order of ids: numbers numerically, before any other id, which sort as strings.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        _ => a.cmp(b),
    }
}

/// Reads and sorts a whole log. Malformed lines are counted (the first
/// [`MALFORMED_KEPT`] kept with their reason) or, with `strict`, fatal.
pub fn read_log(path: &Path, opts: &ReadOptions) -> Result<Log> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    read_from(BufReader::new(file), path, opts)
}

/// [`read_log`] over any reader; `path` is only used in messages.
pub fn read_from(reader: impl BufRead, path: &Path, opts: &ReadOptions) -> Result<Log> {
    let mut log = Log::default();
    let (mut users, mut items, mut devices) = (
        Interner::default(),
        Interner::default(),
        Interner::default(),
    );
    if opts.format == Format::Movielens && opts.group_col.is_some() {
        return Err(Error::Usage(format!(
            "{}: MovieLens u.data has no columns beyond user, item, rating and time to split by",
            path.display()
        )));
    }
    let mut groups = Interner::default();
    let mut user_group: Vec<Option<u32>> = Vec::new();
    let mut layout: Option<CsvLayout> = None;
    let mut seq: Vec<Event> = Vec::new();
    let bad = |log: &mut Log, line: u64, reason: String| -> Result<()> {
        if opts.strict {
            return Err(Error::Malformed {
                path: PathBuf::from(path),
                line,
                reason,
            });
        }
        log.malformed_count += 1;
        if log.malformed.len() < MALFORMED_KEPT {
            log.malformed.push(Malformed { line, reason });
        }
        Ok(())
    };
    for (n, line) in reader.split(b'\n').enumerate() {
        let line_no = n as u64 + 1;
        log.lines = line_no;
        let bytes = line.map_err(|e| Error::io(path, e))?;
        let Ok(text) = std::str::from_utf8(&bytes) else {
            bad(&mut log, line_no, "line is not valid UTF-8".into())?;
            continue;
        };
        let text = text.trim_end_matches('\r');
        if text.trim().is_empty() {
            continue;
        }
        let raw: std::result::Result<OwnedRaw, String> = match opts.format {
            Format::Movielens => parse_movielens(text, opts.time_unit).map(|r| OwnedRaw {
                user: r.user.to_owned(),
                item: r.item.to_owned(),
                ts_ms: r.ts_ms,
                duration_s: r.duration_s,
                device: r.device.map(str::to_owned),
                size: r.size,
                group: None,
            }),
            Format::Jsonl => parse_jsonl(text, opts.time_unit, opts.group_col.as_deref()),
            Format::Csv => match &layout {
                None => {
                    layout = Some(
                        csv_layout(text, &opts.csv, opts.group_col.as_deref()).map_err(
                            |reason| Error::Malformed {
                                path: PathBuf::from(path),
                                line: line_no,
                                reason,
                            },
                        )?,
                    );
                    continue;
                }
                Some(l) => parse_csv_row(text, l, &opts.csv, opts.time_unit),
            },
        };
        match raw {
            Ok(r) => {
                let user = users.get(&r.user);
                if opts.group_col.is_some() {
                    if user_group.len() <= user as usize {
                        user_group.resize(user as usize + 1, None);
                    }
                    let g = &mut user_group[user as usize];
                    if g.is_none() {
                        *g = r.group.as_deref().map(|n| groups.get(n));
                    }
                }
                seq.push(Event {
                    user,
                    item: items.get(&r.item),
                    ts_ms: r.ts_ms,
                    duration_s: r.duration_s,
                    device: r.device.as_deref().map(|d| devices.get(d) as u16),
                    size: r.size,
                });
                if opts.limit > 0 && seq.len() >= opts.limit {
                    break;
                }
            }
            Err(reason) => bad(&mut log, line_no, reason)?,
        }
    }
    if devices.names.len() > u16::MAX as usize {
        return Err(Error::Usage(format!(
            "{}: more than {} distinct device names",
            path.display(),
            u16::MAX
        )));
    }
    // Renumber items in natural order so that index order is the documented tie-break.
    let mut order: Vec<u32> = (0..items.names.len() as u32).collect();
    order.sort_by(|&a, &b| natural_cmp(&items.names[a as usize], &items.names[b as usize]));
    let mut new_id = vec![0u32; order.len()];
    for (new, &old) in order.iter().enumerate() {
        new_id[old as usize] = new as u32;
    }
    for e in &mut seq {
        e.item = new_id[e.item as usize];
    }
    log.items = order
        .iter()
        .map(|&o| std::mem::take(&mut items.names[o as usize]))
        .collect();
    seq.sort_by_key(|e| e.ts_ms); // stable: ties keep file order
    log.events = seq;
    user_group.resize(
        if opts.group_col.is_some() {
            users.names.len()
        } else {
            0
        },
        None,
    );
    log.users = users.names;
    log.devices = devices.names;
    log.groups = groups.names;
    log.user_group = user_group;
    Ok(log)
}

/// For each event, the index of the next request of the same item (`usize::MAX` if none):
/// what Belady's MIN needs.
pub fn next_use(events: &[Event], n_items: usize) -> Vec<usize> {
    let mut next = vec![usize::MAX; events.len()];
    let mut last = vec![usize::MAX; n_items];
    for t in (0..events.len()).rev() {
        let i = events[t].item as usize;
        next[t] = last[i];
        last[i] = t;
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, opts: &ReadOptions) -> Result<Log> {
        read_from(text.as_bytes(), Path::new("t"), opts)
    }

    #[test]
    fn movielens_sorts_stably_and_counts_bad_lines() {
        let t = "1\t10\t5\t300\n2\t9\t3\t100\nbad line\n3\t10\t4\t100\n\n";
        let log = read(t, &ReadOptions::new(Format::Movielens)).unwrap();
        assert_eq!(log.events.len(), 3);
        assert_eq!(log.malformed_count, 1);
        assert_eq!(log.malformed[0].line, 3);
        let seq: Vec<(&str, &str)> = log
            .events
            .iter()
            .map(|e| {
                (
                    log.users[e.user as usize].as_str(),
                    log.items[e.item as usize].as_str(),
                )
            })
            .collect();
        assert_eq!(seq, [("2", "9"), ("3", "10"), ("1", "10")]);
        assert_eq!(log.items, ["9", "10"], "natural order");
        assert_eq!(log.events[0].ts_ms, 100_000);
        let strict = ReadOptions {
            strict: true,
            ..ReadOptions::new(Format::Movielens)
        };
        match read(t, &strict) {
            Err(Error::Malformed { line: 3, .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_log_in_the_wrong_format_is_refused_with_its_first_bad_line() {
        let jsonl = r#"{"user_id":"U1","content_id":"C1","timestamp":1}
{"user_id":"U2","content_id":"C1","timestamp":2}
"#;
        let log = read(jsonl, &ReadOptions::new(Format::Movielens)).unwrap();
        assert!(log.events.is_empty());
        let e = log
            .check_malformed(Path::new("v.jsonl"), Format::Movielens, 0.5)
            .unwrap_err();
        let m = e.to_string();
        assert!(
            matches!(
                e,
                Error::Unreadable {
                    malformed: 2,
                    lines: 2,
                    ..
                }
            ),
            "{m}"
        );
        assert!(m.contains("2 of 2 lines"), "{m}");
        assert!(m.contains("line 1: expected 4 tab-separated fields"), "{m}");
        assert!(m.contains("--format movielens (user"), "{m}");
        assert!(m.contains("Pass --format jsonl, movielens or csv"), "{m}");
        // Read right, the same file passes.
        let ok = read(jsonl, &ReadOptions::new(Format::Jsonl)).unwrap();
        assert!(ok
            .check_malformed(Path::new("v.jsonl"), Format::Jsonl, 0.0)
            .is_ok());
    }

    #[test]
    fn a_few_bad_lines_pass_but_a_large_share_is_refused() {
        let good: String = (0..99).map(|i| format!("1\t{i}\t5\t{i}\n")).collect();
        let one_bad = format!("{good}oops\n");
        let log = read(&one_bad, &ReadOptions::new(Format::Movielens)).unwrap();
        assert_eq!((log.events.len(), log.malformed_count), (99, 1));
        let p = Path::new("u.data");
        assert!(log.check_malformed(p, Format::Movielens, 0.01).is_ok());
        let e = log
            .check_malformed(p, Format::Movielens, 0.005)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("1 of 100 lines") && e.contains("line 100"),
            "{e}"
        );
        assert!(e.contains("--max-malformed"), "{e}");
        // An empty file is no error: nothing in it is malformed.
        let empty = read("\n\n", &ReadOptions::new(Format::Movielens)).unwrap();
        assert!(empty.check_malformed(p, Format::Movielens, 0.0).is_ok());
    }

    #[test]
    fn jsonl_seed_schema() {
        let t = r#"{"user_id":"U001","device":"TV","content_id":"C456","duration":42,"timestamp":"2025-04-12 22:30:00"}
{"user_id":"U002","content_id":"C1","timestamp":1744497000}
{"user_id":"U002","content_id":"C1"}
"#;
        let log = read(t, &ReadOptions::new(Format::Jsonl)).unwrap();
        assert_eq!(log.events.len(), 2);
        assert_eq!(log.malformed_count, 1);
        assert_eq!(log.events[0].ts_ms, log.events[1].ts_ms);
        assert_eq!(log.users[log.events[0].user as usize], "U001");
        assert_eq!(log.device(&log.events[0]), Some("TV"));
        assert_eq!(log.events[0].duration_s, Some(42));
    }

    #[test]
    fn csv_with_named_columns_and_quotes() {
        let t = "movieId,\"userId\",rating,timestamp\n\"5\",1,4.0,20\n6,2,3,10\n7\n";
        let log = read(t, &ReadOptions::new(Format::Csv)).unwrap();
        assert_eq!(log.events.len(), 2);
        assert_eq!(log.malformed[0].line, 4);
        assert_eq!(log.items[log.events[0].item as usize], "6");
        let mut o = ReadOptions::new(Format::Csv);
        o.csv.user_col = "uid".into();
        assert!(matches!(read(t, &o), Err(Error::Malformed { line: 1, .. })));
        assert_eq!(split_csv("a,\"b,\"\"c\"\"\",", ','), ["a", "b,\"c\"", ""]);
    }

    #[test]
    fn a_group_column_names_each_viewers_first_group() {
        let t = "userId,movieId,timestamp,site\n1,5,10,paris\n2,6,11,\n1,7,12,lyon\n2,5,13,lyon\n3,5,14,\n";
        let opts = ReadOptions {
            group_col: Some("site".into()),
            ..ReadOptions::new(Format::Csv)
        };
        let log = read(t, &opts).unwrap();
        assert_eq!(log.groups, ["paris", "lyon"]);
        let of = |u: &str| {
            let i = log.users.iter().position(|x| x == u).unwrap();
            log.user_group[i].map(|g| log.groups[g as usize].as_str())
        };
        assert_eq!(
            (of("1"), of("2"), of("3")),
            (Some("paris"), Some("lyon"), None)
        );
        let j = r#"{"user_id":"U1","content_id":"C1","timestamp":5,"region":7}
{"user_id":"U2","content_id":"C1","timestamp":6}
"#;
        let opts = ReadOptions {
            group_col: Some("region".into()),
            ..ReadOptions::new(Format::Jsonl)
        };
        let log = read(j, &opts).unwrap();
        assert_eq!(
            (log.groups.clone(), log.user_group.clone()),
            (vec!["7".to_owned()], vec![Some(0), None])
        );
        let missing = ReadOptions {
            group_col: Some("zone".into()),
            ..ReadOptions::new(Format::Csv)
        };
        assert!(matches!(
            read(t, &missing),
            Err(Error::Malformed { line: 1, .. })
        ));
        let ml = ReadOptions {
            group_col: Some("zip".into()),
            ..ReadOptions::new(Format::Movielens)
        };
        assert!(matches!(read("1\t2\t3\t4\n", &ml), Err(Error::Usage(_))));
        assert!(read(t, &ReadOptions::new(Format::Csv))
            .unwrap()
            .user_group
            .is_empty());
    }

    #[test]
    fn next_use_points_forward() {
        let ev = |item| Event {
            user: 0,
            item,
            ts_ms: 0,
            duration_s: None,
            device: None,
            size: None,
        };
        let evs = [ev(0), ev(1), ev(0), ev(1), ev(2)];
        assert_eq!(
            next_use(&evs, 3),
            [2, 3, usize::MAX, usize::MAX, usize::MAX]
        );
    }
}
