//! The EDGE.* command grammar, parsed from raw arguments into typed requests.
//!
//! Parsing lives here, outside the module, so that it is unit-tested and fuzzed without a
//! server and the module's handlers only dispatch. Every argument is checked before any
//! state is touched, so a bad one can never leave a half-applied change. Arguments exclude
//! the command name; for per-user commands the first one is the user (the Redis key).

use std::fmt;

use crate::config::MAX_K;
use crate::engine::View;
use crate::wire::MAX_NAME_LEN;

/// Longest device name. Device names become INFO dictionary keys, so they are also held to
/// a safe alphabet.
pub const MAX_DEVICE_LEN: usize = 32;
/// Largest accepted timestamp (ms): about the year 287,000, and exact in an `f64`.
pub const MAX_TS_MS: i64 = 1 << 53;
/// Longest accepted view, in seconds (about 115 days).
pub const MAX_DURATION_S: i64 = 10_000_000;
/// Largest item size, in bytes (1 TiB).
pub const MAX_SIZE: i64 = 1 << 40;

/// Why a command's arguments were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgError {
    /// Too few or too many arguments for the command.
    WrongArity,
    /// An argument is malformed or out of range; the message names it.
    Invalid(String),
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgError::WrongArity => f.write_str("wrong number of arguments"),
            ArgError::Invalid(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ArgError {}

fn invalid(msg: impl Into<String>) -> ArgError {
    ArgError::Invalid(msg.into())
}

/// An item id: non-empty UTF-8 of at most [`MAX_NAME_LEN`] bytes (items are named in
/// replies and kept in the model). Users are not ids but keys: any bytes Redis takes as a
/// key, the same for every per-user command.
pub fn id<'a>(arg: &'a [u8], what: &str) -> Result<&'a str, ArgError> {
    if arg.is_empty() || arg.len() > MAX_NAME_LEN {
        return Err(invalid(format!(
            "{what} id must be 1 to {MAX_NAME_LEN} bytes"
        )));
    }
    std::str::from_utf8(arg).map_err(|_| invalid(format!("{what} id must be valid UTF-8")))
}

/// An integer written as Redis writes one (`string2ll`): an optional `-`, then digits with
/// no leading zero. `+5`, `05` and ` 5` are refused rather than guessed at.
fn canonical_int(arg: &[u8]) -> Option<i64> {
    let digits = arg.strip_prefix(b"-").unwrap_or(arg);
    let canonical = match digits {
        [] => false,
        [b'0'] => digits.len() == arg.len(),
        [b'0', ..] => false,
        _ => digits.iter().all(u8::is_ascii_digit),
    };
    if !canonical {
        return None;
    }
    std::str::from_utf8(arg).ok()?.parse().ok()
}

/// An integer in `lo..=hi`, named `what` in the error.
fn int_in(arg: &[u8], what: &str, lo: i64, hi: i64) -> Result<i64, ArgError> {
    canonical_int(arg)
        .filter(|v| (lo..=hi).contains(v))
        .ok_or_else(|| invalid(format!("{what} must be an integer between {lo} and {hi}")))
}

fn device(arg: &[u8]) -> Result<&str, ArgError> {
    let ok = !arg.is_empty()
        && arg.len() <= MAX_DEVICE_LEN
        && arg
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_-.".contains(c));
    if !ok {
        return Err(invalid(format!(
            "DEVICE must be 1 to {MAX_DEVICE_LEN} characters of letters, digits, '_', '-' or '.'"
        )));
    }
    Ok(std::str::from_utf8(arg).expect("ASCII"))
}

/// Walks `NAME value` and bare `FLAG` options, rejecting repeats and unknown names.
struct Options<'a> {
    args: &'a [&'a [u8]],
    pos: usize,
}

impl<'a> Options<'a> {
    fn new(args: &'a [&'a [u8]]) -> Self {
        Options { args, pos: 0 }
    }

    /// The next option name, matched case-insensitively against `known`.
    fn next(&mut self, known: &[&'static str]) -> Result<Option<&'static str>, ArgError> {
        let Some(a) = self.args.get(self.pos) else {
            return Ok(None);
        };
        self.pos += 1;
        match known.iter().find(|k| k.as_bytes().eq_ignore_ascii_case(a)) {
            Some(k) => Ok(Some(k)),
            None => {
                let shown: String = String::from_utf8_lossy(a).chars().take(64).collect();
                Err(invalid(format!("syntax error: unknown option '{shown}'")))
            }
        }
    }

    fn value(&mut self, name: &str) -> Result<&'a [u8], ArgError> {
        let v = self
            .args
            .get(self.pos)
            .ok_or_else(|| invalid(format!("syntax error: {name} needs a value")))?;
        self.pos += 1;
        Ok(v)
    }
}

fn once<T>(slot: &Option<T>, name: &str) -> Result<(), ArgError> {
    match slot {
        Some(_) => Err(invalid(format!(
            "syntax error: {name} given more than once"
        ))),
        None => Ok(()),
    }
}

/// The optional fields of a view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewOptions<'a> {
    /// DURATION, seconds.
    pub duration: Option<u32>,
    /// TS, ms since the epoch.
    pub ts: Option<i64>,
    /// DEVICE.
    pub device: Option<&'a str>,
    /// SIZE, bytes (EDGE.PLAY only).
    pub size: Option<u64>,
    /// DELTA (EDGE.PLAY only): reply with what a store must fetch and drop.
    pub delta: bool,
}

/// `EDGE.RECORD` and `EDGE.PLAY`: a user's view of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewRequest<'a> {
    /// The user (the key, any bytes).
    pub user: &'a [u8],
    /// The item.
    pub item: &'a str,
    /// DURATION, TS, DEVICE, SIZE.
    pub opts: ViewOptions<'a>,
}

impl<'a> ViewRequest<'a> {
    /// The view, with the server clock standing in for a missing TS.
    pub fn view(&self, now_ms: i64) -> View<'a> {
        View {
            item: self.item,
            ts_ms: self.opts.ts.unwrap_or(now_ms),
            duration_s: self.opts.duration,
            device: self.opts.device,
        }
    }
}

fn view_request<'a>(args: &'a [&'a [u8]], allow_size: bool) -> Result<ViewRequest<'a>, ArgError> {
    if args.len() < 2 {
        return Err(ArgError::WrongArity);
    }
    let user = args[0];
    let item = id(args[1], "item")?;
    let mut o = ViewOptions::default();
    let mut opts = Options::new(&args[2..]);
    let known: &[&str] = if allow_size {
        &["DURATION", "TS", "DEVICE", "SIZE", "DELTA"]
    } else {
        &["DURATION", "TS", "DEVICE"]
    };
    while let Some(name) = opts.next(known)? {
        match name {
            "DURATION" => {
                once(&o.duration, name)?;
                o.duration = Some(int_in(opts.value(name)?, name, 0, MAX_DURATION_S)? as u32);
            }
            "TS" => {
                once(&o.ts, name)?;
                o.ts = Some(int_in(opts.value(name)?, name, 0, MAX_TS_MS)?);
            }
            "DEVICE" => {
                once(&o.device, name)?;
                o.device = Some(device(opts.value(name)?)?);
            }
            "DELTA" => o.delta = true,
            _ => {
                once(&o.size, name)?;
                o.size = Some(int_in(opts.value(name)?, name, 1, MAX_SIZE)? as u64);
            }
        }
    }
    Ok(ViewRequest {
        user,
        item,
        opts: o,
    })
}

/// `EDGE.RECORD user item [DURATION s] [TS ms] [DEVICE d]`
pub fn record<'a>(args: &'a [&'a [u8]]) -> Result<ViewRequest<'a>, ArgError> {
    view_request(args, false)
}

/// `EDGE.PLAY user item [DURATION s] [TS ms] [DEVICE d] [SIZE bytes] [DELTA]`
pub fn play<'a>(args: &'a [&'a [u8]]) -> Result<ViewRequest<'a>, ArgError> {
    view_request(args, true)
}

/// `EDGE.PREDICT user [K k] [WITHSCORES] [INCLUDESEEN]`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PredictRequest<'a> {
    /// The user (the key, any bytes).
    pub user: &'a [u8],
    /// K, when given.
    pub k: Option<usize>,
    /// WITHSCORES.
    pub with_scores: bool,
    /// INCLUDESEEN.
    pub include_seen: bool,
}

fn k_option(opts: &mut Options<'_>, k: &Option<usize>) -> Result<usize, ArgError> {
    once(k, "K")?;
    Ok(int_in(opts.value("K")?, "K", 0, MAX_K as i64)? as usize)
}

/// Parses EDGE.PREDICT's arguments.
pub fn predict<'a>(args: &'a [&'a [u8]]) -> Result<PredictRequest<'a>, ArgError> {
    let user = args.first().ok_or(ArgError::WrongArity)?;
    let mut r = PredictRequest {
        user,
        k: None,
        with_scores: false,
        include_seen: false,
    };
    let mut opts = Options::new(&args[1..]);
    while let Some(name) = opts.next(&["K", "WITHSCORES", "INCLUDESEEN"])? {
        match name {
            "K" => r.k = Some(k_option(&mut opts, &r.k)?),
            "WITHSCORES" => r.with_scores = true,
            _ => r.include_seen = true,
        }
    }
    Ok(r)
}

/// `EDGE.PREFETCH user [K k]`: the user and K, when given.
pub fn prefetch<'a>(args: &'a [&'a [u8]]) -> Result<(&'a [u8], Option<usize>), ArgError> {
    let user = args.first().ok_or(ArgError::WrongArity)?;
    let mut k = None;
    let mut opts = Options::new(&args[1..]);
    while opts.next(&["K"])?.is_some() {
        k = Some(k_option(&mut opts, &k)?);
    }
    Ok((user, k))
}

/// Commands whose only argument is the user: `EDGE.USER`, `EDGE.FORGET`.
pub fn user_only<'a>(args: &'a [&'a [u8]]) -> Result<&'a [u8], ArgError> {
    match args {
        [user] => Ok(user),
        _ => Err(ArgError::WrongArity),
    }
}

/// Commands taking one blob after the user (`EDGE.RESTORE user blob`) or alone
/// (`EDGE.NODE.RESTORE blob`, with `keyed` false).
pub fn blob<'a>(args: &'a [&'a [u8]], keyed: bool) -> Result<&'a [u8], ArgError> {
    match (args, keyed) {
        ([_, b], true) | ([b], false) => Ok(b),
        _ => Err(ArgError::WrongArity),
    }
}

/// `EDGE.MODEL.IMPORT blob [TS ms]`: the aggregate, and the time the import takes as
/// "now" when given (replicas and AOF replays get the master's, so they merge alike).
pub fn model_import<'a>(args: &'a [&'a [u8]]) -> Result<(&'a [u8], Option<i64>), ArgError> {
    let (blob, rest) = args.split_first().ok_or(ArgError::WrongArity)?;
    let mut ts = None;
    let mut opts = Options::new(rest);
    while opts.next(&["TS"])?.is_some() {
        once(&ts, "TS")?;
        ts = Some(int_in(opts.value("TS")?, "TS", 0, MAX_TS_MS)?);
    }
    Ok((blob, ts))
}

/// `EDGE.MODEL.EXPORT [SINCE round]`: the round the federator last received from this
/// node, if given (a delta since it), else `None` (everything).
pub fn model_export(args: &[&[u8]]) -> Result<Option<u64>, ArgError> {
    let mut since = None;
    let mut opts = Options::new(args);
    while opts.next(&["SINCE"])?.is_some() {
        once(&since, "SINCE")?;
        since = Some(int_in(opts.value("SINCE")?, "SINCE", 0, i64::from(u32::MAX))? as u64);
    }
    Ok(since)
}

/// Commands without arguments (`EDGE.MODEL.INFO`).
/// Most entries one `EDGE.CACHE.LIST` page returns.
pub const MAX_PAGE: usize = 1000;

/// `EDGE.CACHE.LIST [AFTER item] [COUNT n]`: the page's start (entries after this id, in
/// id order; from the first without it) and its size (default 100).
pub fn cache_list<'a>(args: &'a [&'a [u8]]) -> Result<(Option<&'a str>, usize), ArgError> {
    let mut after = None;
    let mut count = None;
    let mut opts = Options::new(args);
    while let Some(name) = opts.next(&["AFTER", "COUNT"])? {
        match name {
            "AFTER" => {
                once(&after, name)?;
                after = Some(id(opts.value(name)?, "item")?);
            }
            _ => {
                once(&count, name)?;
                count = Some(int_in(opts.value(name)?, name, 1, MAX_PAGE as i64)? as usize);
            }
        }
    }
    Ok((after, count.unwrap_or(100)))
}

/// Commands without arguments (`EDGE.MODEL.INFO`).
pub fn no_args(args: &[&[u8]]) -> Result<(), ArgError> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(ArgError::WrongArity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<&[u8]> {
        s.split(' ')
            .filter(|w| !w.is_empty())
            .map(str::as_bytes)
            .collect()
    }

    #[test]
    fn views_parse_with_options_in_any_order_and_case() {
        let a = args("U1 C9 ts 1000 DEVICE TV duration 42");
        let r = record(&a).unwrap();
        assert_eq!((r.user, r.item), (&b"U1"[..], "C9"));
        assert_eq!(
            r.opts,
            ViewOptions {
                duration: Some(42),
                ts: Some(1000),
                device: Some("TV"),
                size: None,
                delta: false,
            }
        );
        assert_eq!(r.view(5).ts_ms, 1000);
        assert_eq!(record(&args("U1 C9")).unwrap().view(5).ts_ms, 5);
        assert_eq!(play(&args("U1 C9 SIZE 10")).unwrap().opts.size, Some(10));
        assert!(play(&args("U1 C9 DELTA")).unwrap().opts.delta);
        assert!(!play(&args("U1 C9")).unwrap().opts.delta);
        assert!(
            record(&args("U1 C9 DELTA")).is_err(),
            "DELTA is EDGE.PLAY's alone"
        );
    }

    #[test]
    fn every_bad_argument_is_refused_with_a_message_naming_it() {
        let huge = "x".repeat(MAX_NAME_LEN + 1);
        let cases: Vec<(Vec<&[u8]>, &str)> = vec![
            (args("U1"), "wrong number"),
            (args("U1 C1 DURATION -5"), "DURATION must be"),
            (args("U1 C1 DURATION"), "DURATION needs a value"),
            (args("U1 C1 TS abc"), "TS must be"),
            (args("U1 C1 TS 1 TS 2"), "TS given more than once"),
            (args("U1 C1 DEVICE a,b"), "DEVICE must be"),
            (args("U1 C1 SIZE 3"), "unknown option 'SIZE'"),
            (args("U1 C1 FOO 1"), "unknown option 'FOO'"),
            (vec![b"U1", huge.as_bytes()], "item id must be"),
            (vec![b"U1", b""], "item id must be"),
            (vec![b"U1", &[0xff, 0xfe]], "valid UTF-8"),
        ];
        for (a, want) in cases {
            let e = record(&a).unwrap_err().to_string();
            assert!(e.contains(want), "{a:?}: {e}");
        }
        for (a, want) in [
            ("U1 K -1", "K must be"),
            ("U1 K abc", "K must be"),
            ("U1 K 99999999999", "K must be"),
        ] {
            assert!(
                predict(&args(a)).unwrap_err().to_string().contains(want),
                "{a}"
            );
        }
        assert_eq!(predict(&[]), Err(ArgError::WrongArity));
        assert_eq!(user_only(&args("a b")), Err(ArgError::WrongArity));
        assert_eq!(blob(&args("u"), true), Err(ArgError::WrongArity));
        assert_eq!(model_import(&[]), Err(ArgError::WrongArity));
        assert_eq!(model_import(&args("b TS 7")), Ok((&b"b"[..], Some(7))));
        for bad in ["b TS", "b TS -1", "b TS 1 TS 2", "b SINCE 1"] {
            assert!(model_import(&args(bad)).is_err(), "{bad}");
        }
        assert_eq!(
            play(&args("U1 C1 SIZE 0")).unwrap_err().to_string(),
            "SIZE must be an integer between 1 and 1099511627776"
        );
    }

    #[test]
    fn predict_and_prefetch_take_their_flags() {
        let a = args("U1 withscores K 3 INCLUDESEEN");
        let r = predict(&a).unwrap();
        assert_eq!((r.k, r.with_scores, r.include_seen), (Some(3), true, true));
        assert_eq!(prefetch(&args("U1 K 4")).unwrap(), (&b"U1"[..], Some(4)));
        assert!(prefetch(&args("U1 K 4 K 5")).is_err());
    }

    #[test]
    fn model_commands_take_since_and_a_blob() {
        assert_eq!(model_export(&[]), Ok(None));
        assert_eq!(model_export(&args("since 7")), Ok(Some(7)));
        for (a, want) in [
            ("SINCE", "SINCE needs a value"),
            ("SINCE -1", "SINCE must be"),
            ("SINCE x", "SINCE must be"),
            ("SINCE 99999999999", "SINCE must be"),
            ("SINCE 1 SINCE 2", "given more than once"),
            ("FROM 1", "unknown option 'FROM'"),
        ] {
            let e = model_export(&args(a)).unwrap_err().to_string();
            assert!(e.contains(want), "{a}: {e}");
        }
        assert_eq!(blob(&args("b"), false), Ok(&b"b"[..]));
        assert_eq!(blob(&args("a b"), false), Err(ArgError::WrongArity));
        assert_eq!(blob(&[], false), Err(ArgError::WrongArity));
        assert_eq!(no_args(&[]), Ok(()));
        assert_eq!(no_args(&args("x")), Err(ArgError::WrongArity));
    }

    /// Integers are read as Redis reads them: no sign but `-`, no leading zero, no space.
    #[test]
    fn integers_are_canonical() {
        for ok in ["0", "5", "1000", "-3"] {
            assert_eq!(canonical_int(ok.as_bytes()), ok.parse().ok(), "{ok}");
        }
        for bad in [
            "+5",
            "05",
            "-0",
            "00",
            " 5",
            "5 ",
            "",
            "-",
            "0x5",
            "1e3",
            "99999999999999999999",
        ] {
            assert_eq!(canonical_int(bad.as_bytes()), None, "{bad:?}");
        }
    }
}
