//! Every operator-facing setting, by name, in one table.
//!
//! The module registers `CONFIG SET/GET edge.<name>` and load arguments from this table,
//! `loadgen eval --sweep name=…` applies the same names to an in-process engine, and the
//! README's table is checked against it, so a setting is added or renamed in exactly one
//! place.

use crate::cache::CachePolicy;
use crate::config::Config;
use crate::error::ConfigError;

/// What values a setting takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// An integer in `min..=max`.
    Int { min: i64, max: i64 },
    /// A size in bytes in `min..=max`, written as Redis writes memory sizes (`1048576`,
    /// `64kb`, `1gb`). Parsed here rather than by Redis, whose memory parser takes an
    /// empty value as 0 and would empty the cache.
    Bytes { min: i64, max: i64 },
    /// A real number in `min..=max`.
    Float { min: f64, max: f64 },
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
}

/// A value of a setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// For [`Kind::Int`].
    Int(i64),
    /// For [`Kind::Float`].
    Float(f64),
    /// For [`Kind::Choice`]: the index of the word.
    Choice(usize),
}

/// One setting: its name, range, meaning, and how it reads and writes a [`Config`].
pub struct Setting {
    /// Name as users spell it (`CONFIG SET edge.<name>`).
    pub name: &'static str,
    /// Accepted values.
    pub kind: Kind,
    /// One line for `--help` and the README.
    pub help: &'static str,
    get: fn(&Config) -> Value,
    set: fn(&mut Config, Value),
}

impl std::fmt::Debug for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setting")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish()
    }
}

impl Setting {
    /// The setting's value in `c`.
    pub fn get(&self, c: &Config) -> Value {
        (self.get)(c)
    }

    /// The value in `c`, as text.
    pub fn show(&self, c: &Config) -> String {
        match ((self.get)(c), self.kind) {
            (Value::Int(v), _) => v.to_string(),
            (Value::Float(v), _) => v.to_string(),
            (Value::Choice(i), Kind::Choice(words)) => words[i].to_owned(),
            (Value::Choice(i), _) => i.to_string(),
        }
    }

    /// Parses `text` for this setting, checking its range.
    pub fn parse(&self, text: &str) -> Result<Value, ConfigError> {
        let t = text.trim();
        let bad = |expected: String| ConfigError {
            name: self.name,
            expected,
        };
        match self.kind {
            Kind::Int { min, max } => match t.parse::<i64>() {
                Ok(v) if (min..=max).contains(&v) => Ok(Value::Int(v)),
                _ => Err(bad(format!("an integer between {min} and {max}"))),
            },
            Kind::Bytes { min, max } => match parse_bytes(t) {
                Some(v) if (min..=max).contains(&v) => Ok(Value::Int(v)),
                _ => Err(bad(format!(
                    "a size in bytes between {min} and {max} (such as 1048576, 512kb, 1gb)"
                ))),
            },
            Kind::Float { min, max } => match t.parse::<f64>() {
                Ok(v) if v.is_finite() && (min..=max).contains(&v) => Ok(Value::Float(v)),
                _ => Err(bad(format!("a number between {min} and {max}"))),
            },
            Kind::Choice(words) => words
                .iter()
                .position(|w| w.eq_ignore_ascii_case(t))
                .map(Value::Choice)
                .ok_or_else(|| bad(format!("one of {}", words.join(", ")))),
        }
    }

    /// Stores `v` (already checked by [`Setting::parse`]) into `c`.
    pub fn apply(&self, c: &mut Config, v: Value) {
        (self.set)(c, v)
    }
}

/// A size as Redis writes one: decimal digits, then an optional unit (`k`/`m`/`g` are
/// powers of 1000, `kb`/`mb`/`gb` of 1024, any case). None for anything else (empty, signed,
/// fractional, overflowing).
fn parse_bytes(t: &str) -> Option<i64> {
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    if n.is_empty() {
        return None;
    }
    let scale: i64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1 << 10,
        "m" => 1_000_000,
        "mb" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" => 1 << 30,
        _ => return None,
    };
    n.parse::<i64>().ok()?.checked_mul(scale)
}

fn int(v: Value) -> i64 {
    match v {
        Value::Int(i) => i,
        Value::Float(f) => f as i64,
        Value::Choice(i) => i as i64,
    }
}

fn float(v: Value) -> f64 {
    match v {
        Value::Float(f) => f,
        Value::Int(i) => i as f64,
        Value::Choice(i) => i as f64,
    }
}

const POLICIES: &[&str] = &["lru", "predictive"];
const YES_NO: &[&str] = &["yes", "no"];
const YEAR_SECS: i64 = 366 * 86_400;

/// An integer setting; `Bytes` ones also take Redis's size units.
macro_rules! int_setting {
    ($name:literal, $min:expr, $max:expr, $help:literal, |$c:ident| $get:expr, |$c2:ident, $v:ident| $set:expr) => {
        int_setting!(Int, $name, $min, $max, $help, |$c| $get, |$c2, $v| $set)
    };
    ($kind:ident, $name:literal, $min:expr, $max:expr, $help:literal, |$c:ident| $get:expr, |$c2:ident, $v:ident| $set:expr) => {
        Setting {
            name: $name,
            kind: Kind::$kind {
                min: $min,
                max: $max,
            },
            help: $help,
            get: |$c| Value::Int($get as i64),
            set: |$c2, v| {
                let $v = int(v);
                $set
            },
        }
    };
}

macro_rules! float_setting {
    ($name:literal, $min:expr, $max:expr, $help:literal, |$c:ident| $get:expr, |$c2:ident, $v:ident| $set:expr) => {
        Setting {
            name: $name,
            kind: Kind::Float {
                min: $min,
                max: $max,
            },
            help: $help,
            get: |$c| Value::Float($get),
            set: |$c2, v| {
                let $v = float(v);
                $set
            },
        }
    };
}

/// The table. Order is the README's order.
pub static SETTINGS: &[Setting] = &[
    int_setting!("default-k", 1, 1000, "k of EDGE.PREDICT when none is given",
        |c| c.default_k, |c, v| c.default_k = v as usize),
    int_setting!("prefetch-k", 0, 100, "predictions prefetched per play when prefetch-budget is 0",
        |c| c.prefetch_k, |c, v| c.prefetch_k = v as usize),
    float_setting!("prefetch-budget", 0.0, 1000.0, "origin fetches per request (misses + prefetches) the prefetcher may spend on its most confident predictions; 0 turns the controller off",
        |c| c.prefetch_budget, |c, v| c.prefetch_budget = v),
    int_setting!("prefetch-share-pct", 0, 100, "percent of the cache reserved for prefetches; 0 = learned online under a budget (from 10 % at 1 fetch/request, 95 % at 5), derived from prefetch-k without one",
        |c| c.prefetch_share_pct, |c, v| c.prefetch_share_pct = v as u32),
    int_setting!(Bytes, "cache-capacity-bytes", 0, 1 << 50, "edge cache capacity in bytes",
        |c| c.cache_capacity_bytes, |c, v| c.cache_capacity_bytes = v as u64),
    Setting {
        name: "cache-policy",
        kind: Kind::Choice(POLICIES),
        help: "lru (baseline) or predictive (frequency core + protected prefetch segment)",
        get: |c| Value::Choice(match c.cache_policy {
            CachePolicy::Lru => 0,
            CachePolicy::Predictive => 1,
        }),
        set: |c, v| c.cache_policy = if int(v) == 0 { CachePolicy::Lru } else { CachePolicy::Predictive },
    },
    int_setting!("cache-memory", 0, 1_000_000, "half-life of the request frequencies that order the cache, in capacities' worth of views (capacity / item-size-bytes items); 0 = never forget",
        |c| c.cache_memory, |c, v| c.cache_memory = v as u32),
    int_setting!(Bytes, "item-size-bytes", 1, 1 << 40, "size assumed for an item when EDGE.PLAY gives no SIZE",
        |c| c.default_item_size, |c, v| c.default_item_size = v as u64),
    int_setting!("predict-staleness", 0, 1_000_000_000, "views elsewhere a memoized prediction may lag behind (0: always exact)",
        |c| c.predict_staleness, |c, v| c.predict_staleness = v as u64),
    int_setting!("history-len", 1, 256, "recent views kept per user (bounds both windows)",
        |c| c.history_len, |c, v| c.history_len = v as usize),
    int_setting!("seen-max", 0, 1_000_000, "distinct items remembered per user for 'already seen'",
        |c| c.seen_max, |c, v| c.seen_max = v as usize),
    int_setting!("personal-max", 0, 4096, "personal transitions kept per user",
        |c| c.personal_max, |c, v| c.personal_max = v as usize),
    int_setting!("successors-max", 2, 4096, "neighbours kept per item (Space-Saving row width): the bound on the co-occurrence table",
        |c| c.successors_max, |c, v| c.successors_max = v as usize),
    int_setting!("items-max", 16, 100_000_000, "items tracked; the least popular are evicted beyond it, peers' first",
        |c| c.items_max, |c, v| c.items_max = v as usize),
    int_setting!("model-memory-max", 0, 1 << 50, "bytes the node model may hold; the least popular items are evicted beyond it, in bounded steps (0: unbounded, items-max alone bounds it)",
        |c| c.model_memory_max, |c, v| c.model_memory_max = v as u64),
    int_setting!("half-life-secs", 0, 10 * YEAR_SECS, "half-life of the co-occurrence evidence (0: no decay)",
        |c| c.half_life_ms / 1000, |c, v| c.half_life_ms = v as u64 * 1000),
    int_setting!("popularity-half-life-secs", 0, 10 * YEAR_SECS, "half-life of item popularity (fallback ranking, item eviction; 0: all-time)",
        |c| c.popularity_half_life_ms / 1000, |c, v| c.popularity_half_life_ms = v as u64 * 1000),
    int_setting!("learn-window", 1, 256, "earlier views each new view is linked to",
        |c| c.learning.window, |c, v| c.learning.window = v as usize),
    float_setting!("learn-decay", 1e-6, 1.0, "link weight factor per step back",
        |c| c.learning.decay, |c, v| c.learning.decay = v),
    float_setting!("reverse-weight", 0.0, 1.0, "weight of the reverse link (new view -> earlier one)",
        |c| c.learning.reverse, |c, v| c.learning.reverse = v),
    int_setting!("simultaneous-ms", -1, 86_400_000, "views of a user this close in time are one unordered group (-1: never)",
        |c| c.learning.simultaneous_ms, |c, v| c.learning.simultaneous_ms = v),
    float_setting!("admission", 0.0, 10.0, "a newcomer enters a full row only with this fraction of its lightest entry",
        |c| c.learning.admission, |c, v| c.learning.admission = v),
    int_setting!("score-window", 1, 256, "recent views whose neighbours are scored",
        |c| c.scoring.window, |c, v| c.scoring.window = v as usize),
    float_setting!("score-decay", 1e-6, 1.0, "scoring weight factor per step back",
        |c| c.scoring.decay, |c, v| c.scoring.decay = v),
    float_setting!("row-norm", 0.0, 2.0, "row normalizer exponent (0: raw co-occurrence, 1: conditional probability)",
        |c| c.scoring.row_norm, |c, v| c.scoring.row_norm = v),
    float_setting!("affinity", 0.0, 10.0, "damping of candidates far from the user's usual popularity level",
        |c| c.scoring.affinity, |c, v| c.scoring.affinity = v),
    float_setting!("weight-global", 0.0, 1e6, "weight of this node's own evidence",
        |c| c.weights.global, |c, v| c.weights.global = v),
    float_setting!("weight-federated", 0.0, 1e6, "weight of the evidence learned from peer edges",
        |c| c.weights.federated, |c, v| c.weights.federated = v),
    float_setting!("weight-personal", 0.0, 1e6, "weight of the user's own transitions (rewatches, with INCLUDESEEN)",
        |c| c.weights.personal, |c, v| c.weights.personal = v),
    int_setting!("skip-threshold-pct", 0, 100, "a view shorter than this share of the item's usual watch time is a skip",
        |c| c.skip_threshold_pct, |c, v| c.skip_threshold_pct = v as u32),
    int_setting!("dp-clip", 0, 1_000_000, "views per user per federation round that reach the exported model (0: unlimited)",
        |c| c.dp_clip, |c, v| c.dp_clip = v as u32),
    float_setting!("skip-weight", 0.0, 1.0, "what a skip teaches, relative to a full view",
        |c| c.weights.skip_weight, |c, v| c.weights.skip_weight = v),
    Setting {
        name: "learner-thread",
        kind: Kind::Choice(YES_NO),
        help: "apply learning's batches of row updates on a thread of their own (no: on the recording thread, e.g. on one core)",
        get: |c| Value::Choice(usize::from(!c.learner_thread)),
        set: |c, v| c.learner_thread = int(v) == 0,
    },
];

/// Looks a setting up by name.
pub fn find(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

impl Config {
    /// Sets one setting by name from text, as CONFIG SET would; the whole configuration is
    /// validated before anything changes.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let s = find(name).ok_or_else(|| ConfigError {
            name: "setting",
            expected: format!("a known setting, not '{name}'"),
        })?;
        let v = s.parse(value)?;
        let mut next = self.clone();
        s.apply(&mut next, v);
        next.validate()?;
        *self = next;
        Ok(())
    }

    /// A setting's value as text, or `None` for an unknown name.
    pub fn get(&self, name: &str) -> Option<String> {
        find(name).map(|s| s.show(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_round_trips_its_default_and_names_are_unique() {
        let c = Config::default();
        let mut names = std::collections::HashSet::new();
        for s in SETTINGS {
            assert!(names.insert(s.name), "duplicate {}", s.name);
            let shown = s.show(&c);
            let mut d = c.clone();
            d.set(s.name, &shown)
                .unwrap_or_else(|e| panic!("{}: {e}", s.name));
            assert_eq!(d, c, "{} = {shown} changes the config", s.name);
            match (s.kind, s.get(&c)) {
                (Kind::Int { min, max } | Kind::Bytes { min, max }, Value::Int(v)) => {
                    assert!((min..=max).contains(&v), "{}", s.name)
                }
                (Kind::Float { min, max }, Value::Float(v)) => {
                    assert!(v >= min && v <= max, "{}", s.name)
                }
                (Kind::Choice(w), Value::Choice(i)) => assert!(i < w.len()),
                other => panic!("{}: kind and value disagree: {other:?}", s.name),
            }
        }
    }

    #[test]
    fn readme_and_redis_conf_document_every_setting() {
        let readme = include_str!("../../README.md");
        let conf = include_str!("../../redis.conf");
        for s in SETTINGS {
            assert!(
                readme.contains(&format!("`{}`", s.name)),
                "README.md lacks {}",
                s.name
            );
            assert!(
                conf.contains(&format!("#   {} ", s.name)),
                "redis.conf lacks {}",
                s.name
            );
        }
        // The loadmodule line itself must load.
        let line = conf
            .lines()
            .find(|l| l.starts_with("loadmodule "))
            .expect("loadmodule line");
        let words: Vec<&str> = line.split_whitespace().skip(2).collect();
        let mut c = Config::default();
        for pair in words.chunks(2) {
            c.set(pair[0], pair[1])
                .unwrap_or_else(|e| panic!("redis.conf {}: {e}", pair[0]));
        }
    }

    #[test]
    fn set_parses_checks_and_applies() {
        let mut c = Config::default();
        c.set("prefetch-k", "7").unwrap();
        assert_eq!(c.prefetch_k, 7);
        c.set("cache-policy", "LRU").unwrap();
        assert_eq!(c.cache_policy, CachePolicy::Lru);
        c.set("half-life-secs", "60").unwrap();
        assert_eq!(c.half_life_ms, 60_000);
        assert_eq!(c.get("half-life-secs").as_deref(), Some("60"));
        let before = c.clone();
        assert_eq!(c.set("default-k", "0").unwrap_err().name, "default-k");
        assert!(c.set("score-decay", "abc").is_err());
        assert!(c.set("no-such-thing", "1").is_err());
        for empty_or_odd in ["", " ", "-1", "+5", "1.5mb", "1tb", "mb", "99999999999gb"] {
            assert!(
                c.set("cache-capacity-bytes", empty_or_odd).is_err(),
                "cache-capacity-bytes '{empty_or_odd}' was accepted"
            );
        }
        assert_eq!(c, before, "a refused change changes nothing");
        for (text, bytes) in [
            ("41943040", 41_943_040),
            ("64kb", 65_536),
            ("2M", 2_000_000),
            ("1gb", 1 << 30),
        ] {
            c.set("cache-capacity-bytes", text).unwrap();
            assert_eq!(c.cache_capacity_bytes, bytes, "{text}");
        }
    }
}
