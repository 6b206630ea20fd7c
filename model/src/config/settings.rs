//! Every operator-facing setting, by name, in one table.
//!
//! Each setting is declared once in [`SETTINGS`]: name, field, default, range and help.
//! [`Config::default`] is built from the defaults, [`Config::validate`] checks every range
//! from it, the module registers `CONFIG SET/GET edge.<name>` and load arguments from it,
//! `loadgen eval --sweep name=…` applies the same names to an in-process engine, and the
//! README's settings table and redis.conf's settings block are generated from it (a test
//! fails when the committed files differ), so a setting is added or renamed in one place.

use crate::cache::CachePolicy;
use crate::config::{Config, MAX_K};
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

/// The part of redis.conf a setting is listed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// How views are learned and ranked.
    Prediction,
    /// The edge cache and its prefetcher.
    Cache,
}

/// One setting: its name, range, meaning, and how it reads and writes a [`Config`].
pub struct Setting {
    /// Name as users spell it (`CONFIG SET edge.<name>`).
    pub name: &'static str,
    /// Where redis.conf lists it.
    pub group: Group,
    /// Accepted values.
    pub kind: Kind,
    /// The default, as an operator would write it (`1gb`); [`Config::default`] is built
    /// from these.
    pub default: &'static str,
    /// What it does, for `--help`, the README and redis.conf.
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

    /// What the setting accepts, for error messages ("an integer between 1 and 1000").
    pub fn expected(&self) -> String {
        match self.kind {
            Kind::Int { min, max } => format!("an integer between {min} and {max}"),
            Kind::Bytes { min, max } => {
                format!("a size in bytes between {min} and {max} (such as 1048576, 512kb, 1gb)")
            }
            Kind::Float { min, max } => format!("a number between {min} and {max}"),
            Kind::Choice(words) => format!("one of {}", words.join(", ")),
        }
    }

    /// Whether `v` lies in the setting's range (what [`Config::validate`] checks).
    pub fn accepts(&self, v: Value) -> bool {
        match (self.kind, v) {
            (Kind::Int { min, max } | Kind::Bytes { min, max }, Value::Int(v)) => {
                (min..=max).contains(&v)
            }
            (Kind::Float { min, max }, Value::Float(v)) => {
                v.is_finite() && (min..=max).contains(&v)
            }
            (Kind::Choice(words), Value::Choice(i)) => i < words.len(),
            _ => false,
        }
    }

    /// The range as the README and redis.conf show it (`1..1000`, `0..2^50`, `lru|predictive`).
    pub fn range(&self) -> String {
        fn n(v: i64) -> String {
            if v >= 1 << 20 && v.count_ones() == 1 {
                format!("2^{}", v.trailing_zeros())
            } else {
                v.to_string()
            }
        }
        match self.kind {
            Kind::Int { min, max } | Kind::Bytes { min, max } => format!("{}..{}", n(min), n(max)),
            Kind::Float { min, max } => format!("{min}..{max}"),
            Kind::Choice(words) => words.join("|"),
        }
    }

    /// Parses `text` for this setting, checking its range.
    pub fn parse(&self, text: &str) -> Result<Value, ConfigError> {
        let t = text.trim();
        let v = match self.kind {
            Kind::Int { .. } => t.parse::<i64>().ok().map(Value::Int),
            Kind::Bytes { .. } => parse_bytes(t).map(Value::Int),
            Kind::Float { .. } => t.parse::<f64>().ok().map(Value::Float),
            Kind::Choice(words) => words
                .iter()
                .position(|w| w.eq_ignore_ascii_case(t))
                .map(Value::Choice),
        };
        v.filter(|&v| self.accepts(v)).ok_or_else(|| ConfigError {
            name: self.name,
            expected: self.expected(),
        })
    }

    /// Checks this setting's value in `c` against its range.
    pub fn check(&self, c: &Config) -> Result<(), ConfigError> {
        if self.accepts(self.get(c)) {
            Ok(())
        } else {
            Err(ConfigError {
                name: self.name,
                expected: self.expected(),
            })
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

/// One declaration: name, group, range, default (as it is written), help, and the field.
/// Integers are read as `i64` and written back with `as`; a value that does not fit is out
/// of range for every setting, so [`Config::validate`] refuses it.
macro_rules! setting {
    (@make $group:ident, $name:literal, $kind:expr, $default:literal, $help:literal,
     $get:expr, $set:expr) => {
        Setting {
            name: $name,
            group: Group::$group,
            kind: $kind,
            default: $default,
            help: $help,
            get: $get,
            set: $set,
        }
    };
    ($group:ident, Int, $name:literal, $min:expr, $max:expr, $default:literal, $help:literal,
     |$c:ident| $field:expr, $ty:ty) => {
        setting!(@make $group, $name, Kind::Int { min: $min, max: $max }, $default, $help,
            |$c| Value::Int($field as i64), |$c, v| $field = int(v) as $ty)
    };
    ($group:ident, Bytes, $name:literal, $min:expr, $max:expr, $default:literal, $help:literal,
     |$c:ident| $field:expr, $ty:ty) => {
        setting!(@make $group, $name, Kind::Bytes { min: $min, max: $max }, $default, $help,
            |$c| Value::Int($field as i64), |$c, v| $field = int(v) as $ty)
    };
    ($group:ident, Float, $name:literal, $min:expr, $max:expr, $default:literal, $help:literal,
     |$c:ident| $field:expr) => {
        setting!(@make $group, $name, Kind::Float { min: $min, max: $max }, $default, $help,
            |$c| Value::Float($field), |$c, v| $field = float(v))
    };
}

/// The table: the one declaration of every setting. Order is the README's order; the
/// README's settings table and redis.conf's settings block are generated from it
/// (`cargo run -p edge-model --example settings -- --write`), and a test fails when the
/// committed files differ from what it generates.
#[rustfmt::skip]
pub static SETTINGS: &[Setting] = &[
    setting!(Prediction, Int, "default-k", 1, MAX_K as i64, "10",
        "k of EDGE.PREDICT when none is given",
        |c| c.default_k, usize),
    setting!(Cache, Int, "prefetch-k", 0, 100, "3",
        "predictions prefetched per play when `prefetch-budget` is 0",
        |c| c.prefetch_k, usize),
    setting!(Cache, Float, "prefetch-budget", 0.0, 1000.0, "1",
        "origin fetches per request (misses + prefetches) the prefetcher may spend: a cap, not a target (0: fixed `prefetch-k`)",
        |c| c.prefetch_budget),
    setting!(Cache, Int, "prefetch-share-pct", 0, 100, "0",
        "percent of the cache reserved for prefetches (0: learned online from ghosts of recent evictions)",
        |c| c.prefetch_share_pct, u32),
    setting!(Cache, Bytes, "cache-capacity-bytes", 0, 1 << 50, "1gb",
        "edge cache capacity; sizes take Redis's units (`41943040`, `40mb`, `1gb`)",
        |c| c.cache_capacity_bytes, u64),
    setting!(@make Cache, "cache-policy", Kind::Choice(POLICIES), "predictive",
        "`lru` (the baseline) or `predictive` (frequency core plus a protected segment of prefetched predictions)",
        |c| Value::Choice(match c.cache_policy {
            CachePolicy::Lru => 0,
            CachePolicy::Predictive => 1,
        }),
        |c, v| c.cache_policy = if int(v) == 0 { CachePolicy::Lru } else { CachePolicy::Predictive }),
    setting!(Cache, Int, "cache-memory", 0, 1_000_000, "100",
        "half-life of the request frequencies that order the cache, in capacities' worth of requests (0: never forget)",
        |c| c.cache_memory, u32),
    setting!(Cache, Bytes, "item-size-bytes", 1, 1 << 40, "1mb",
        "size assumed for an item when EDGE.PLAY gives no SIZE",
        |c| c.default_item_size, u64),
    setting!(Prediction, Int, "predict-staleness", 0, 1_000_000_000, "0",
        "views elsewhere a memoized prediction may lag behind (0: always exact)",
        |c| c.predict_staleness, u64),
    setting!(Prediction, Int, "history-len", 1, 256, "20",
        "recent views kept per user (bounds both windows)",
        |c| c.history_len, usize),
    setting!(Prediction, Int, "seen-max", 0, 1_000_000, "2048",
        "distinct items remembered per user to leave out what was already watched (0: none)",
        |c| c.seen_max, usize),
    setting!(Prediction, Int, "personal-max", 0, 4096, "32",
        "personal transitions kept per user",
        |c| c.personal_max, usize),
    setting!(Prediction, Int, "successors-max", 2, 4096, "128",
        "neighbours kept per item (Space-Saving row width), the bound on the co-occurrence table",
        |c| c.successors_max, usize),
    setting!(Prediction, Int, "items-max", 16, 100_000_000, "1000000",
        "items tracked; beyond it the least popular are evicted, peers' first (an import never evicts this edge's own)",
        |c| c.items_max, usize),
    setting!(Prediction, Int, "model-memory-max", 0, 1 << 50, "0",
        "bytes the node model may hold: 0 (`items-max` alone bounds it) or at least 1048576; beyond it the least popular items are evicted in bounded steps. Set it below `maxmemory` when the server evicts keys",
        |c| c.model_memory_max, u64),
    setting!(@make Prediction, "half-life-secs", Kind::Int { min: 0, max: 10 * YEAR_SECS }, "0",
        "half-life of the co-occurrence evidence in seconds (0: no decay)",
        |c| Value::Int((c.half_life_ms / 1000) as i64),
        |c, v| c.half_life_ms = (int(v) as u64).saturating_mul(1000)),
    setting!(@make Prediction, "popularity-half-life-secs", Kind::Int { min: 0, max: 10 * YEAR_SECS }, "604800",
        "half-life of item popularity in seconds, 7 days by default (fallback ranking, item eviction; the cache has `cache-memory`; 0: all-time)",
        |c| Value::Int((c.popularity_half_life_ms / 1000) as i64),
        |c, v| c.popularity_half_life_ms = (int(v) as u64).saturating_mul(1000)),
    setting!(Prediction, Int, "learn-window", 1, 256, "10",
        "earlier views each new view is linked to",
        |c| c.learning.window, usize),
    setting!(Prediction, Float, "learn-decay", 1e-6, 1.0, "0.8",
        "link weight factor per step back",
        |c| c.learning.decay),
    setting!(Prediction, Float, "reverse-weight", 0.0, 1.0, "0.5",
        "weight of the reverse link (new view -> earlier one)",
        |c| c.learning.reverse),
    setting!(Prediction, Int, "simultaneous-ms", -1, 86_400_000, "0",
        "views of a user this close in time are one unordered group (-1: never)",
        |c| c.learning.simultaneous_ms, i64),
    setting!(Prediction, Float, "admission", 0.0, 10.0, "0.25",
        "a newcomer enters a full row only with this fraction of its lightest entry",
        |c| c.learning.admission),
    setting!(Prediction, Int, "score-window", 1, 256, "10",
        "recent views whose neighbours are scored (see `model/src/scoring.rs`)",
        |c| c.scoring.window, usize),
    setting!(Prediction, Float, "score-decay", 1e-6, 1.0, "0.6",
        "scoring weight factor per step back",
        |c| c.scoring.decay),
    setting!(Prediction, Float, "row-norm", 0.0, 2.0, "0.6",
        "row normalizer exponent (0: raw co-occurrence, 1: conditional probability)",
        |c| c.scoring.row_norm),
    setting!(Prediction, Float, "affinity", 0.0, 10.0, "0.1",
        "damping of candidates far from the user's usual popularity level",
        |c| c.scoring.affinity),
    setting!(Prediction, Float, "weight-global", 0.0, 1e6, "1",
        "weight of this node's own evidence",
        |c| c.weights.global),
    setting!(Prediction, Float, "weight-federated", 0.0, 1e6, "1",
        "weight of the evidence learned from peer edges",
        |c| c.weights.federated),
    setting!(Prediction, Float, "weight-personal", 0.0, 1e6, "0.5",
        "weight of the user's own transitions (rewatches, with INCLUDESEEN)",
        |c| c.weights.personal),
    setting!(Prediction, Int, "skip-threshold-pct", 0, 100, "25",
        "a view shorter than this percentage of the item's usual watch time is a skip",
        |c| c.skip_threshold_pct, u32),
    setting!(Prediction, Int, "dp-clip", 0, 1_000_000, "0",
        "views per user per federation round that reach the exported model, bounding one viewer's influence for differential privacy (0: unlimited); the rest still teach this edge",
        |c| c.dp_clip, u32),
    setting!(Prediction, Float, "skip-weight", 0.0, 1.0, "0.25",
        "what a skip teaches, relative to a full view",
        |c| c.weights.skip_weight),
    setting!(@make Prediction, "learner-thread", Kind::Choice(YES_NO), "yes",
        "apply learning's row updates on a thread of their own (`no`: on the thread that records)",
        |c| Value::Choice(usize::from(!c.learner_thread)),
        |c, v| c.learner_thread = int(v) == 0),
];

/// The lines around the generated part of a document: the generator replaces what lies
/// between them, and a test fails when the committed text differs.
pub struct Generated {
    /// The line that opens the generated part.
    pub begin: &'static str,
    /// The line that closes it.
    pub end: &'static str,
}

/// Where README.md's settings table goes.
pub const README_MARKS: Generated = Generated {
    begin: "<!-- settings: generated from model/src/config/settings.rs by `cargo run -p edge-model --example settings -- --write` -->",
    end: "<!-- /settings -->",
};

/// Where redis.conf's settings block goes.
pub const CONF_MARKS: Generated = Generated {
    begin: "# (generated from model/src/config/settings.rs by `cargo run -p edge-model --example settings -- --write`)",
    end: "# (end of generated settings)",
};

impl Generated {
    /// `doc` with the text between the marks replaced by `body`; `None` if a mark is missing.
    pub fn splice(&self, doc: &str, body: &str) -> Option<String> {
        let b = doc.find(self.begin)? + self.begin.len();
        let e = b + doc[b..].find(self.end)?;
        Some(format!("{}\n{body}{}", &doc[..b], &doc[e..]))
    }
}

/// README.md's settings table, one row per setting.
pub fn readme_table() -> String {
    let mut out = String::from("| setting | default | range | meaning |\n|---|---|---|---|\n");
    for s in SETTINGS {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            s.name,
            s.default,
            s.range(),
            s.help
        ));
    }
    out
}

/// redis.conf's settings block: every setting with its default and range, by group,
/// wrapped to 92 columns.
pub fn conf_block() -> String {
    const INDENT: usize = 34;
    const WIDTH: usize = 92;
    let mut out = String::new();
    for (group, title) in [
        (Group::Prediction, "Prediction"),
        (Group::Cache, "Edge cache"),
    ] {
        out.push_str(&format!("# {title}\n"));
        for s in SETTINGS.iter().filter(|s| s.group == group) {
            let head = format!("#   {} {}", s.name, s.default);
            let text = format!("{} [{}]", s.help.replace('`', ""), s.range());
            let mut line = if head.len() + 1 < INDENT {
                format!("{head:<INDENT$}")
            } else {
                out.push_str(&head);
                out.push('\n');
                format!("#{:<w$}", "", w = INDENT - 1)
            };
            let mut empty = true;
            for word in text.split_whitespace() {
                if !empty && line.len() + 1 + word.len() > WIDTH {
                    out.push_str(&line);
                    out.push('\n');
                    line = format!("#{:<w$}", "", w = INDENT - 1);
                    empty = true;
                }
                if !empty {
                    line.push(' ');
                }
                line.push_str(word);
                empty = false;
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

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
    fn readme_and_redis_conf_hold_what_the_declaration_generates() {
        let readme = include_str!("../../../README.md");
        let conf = include_str!("../../../redis.conf");
        let stale = "is stale: run `cargo run -p edge-model --example settings -- --write`";
        assert_eq!(
            README_MARKS.splice(readme, &readme_table()).as_deref(),
            Some(readme),
            "README.md's settings table {stale}"
        );
        assert_eq!(
            CONF_MARKS.splice(conf, &conf_block()).as_deref(),
            Some(conf),
            "redis.conf's settings block {stale}"
        );
    }

    /// Every declared range is what validate enforces: the edges are accepted, one step
    /// beyond them is refused (through `set`, and through validate on a Config built
    /// directly, which is how a decoded peer's settings arrive).
    #[test]
    fn validate_enforces_every_declared_range_at_its_edges() {
        for s in SETTINGS {
            let (inside, outside): (Vec<Value>, Vec<Value>) = match s.kind {
                Kind::Int { min, max } | Kind::Bytes { min, max } => (
                    vec![Value::Int(min), Value::Int(max)],
                    vec![Value::Int(min - 1), Value::Int(max + 1)],
                ),
                Kind::Float { min, max } => (
                    vec![Value::Float(min), Value::Float(max)],
                    vec![
                        Value::Float(min - min.abs().max(1e-9) * 0.5),
                        Value::Float(max * 1.5),
                        Value::Float(f64::NAN),
                    ],
                ),
                Kind::Choice(w) => ((0..w.len()).map(Value::Choice).collect(), vec![]),
            };
            for v in inside {
                let mut c = Config::default();
                s.apply(&mut c, v);
                if s.name == "model-memory-max" && v == Value::Int(1 << 50) {
                    assert_eq!(c.validate(), Ok(()), "{}", s.name);
                    continue;
                }
                assert_eq!(c.validate(), Ok(()), "{} = {v:?}", s.name);
                let mut d = Config::default();
                d.set(s.name, &s.show(&c))
                    .unwrap_or_else(|e| panic!("{} = {v:?}: {e}", s.name));
                assert_eq!(d, c, "{}", s.name);
            }
            for v in outside {
                let mut c = Config::default();
                s.apply(&mut c, v);
                // Negative values of unsigned fields wrap to huge ones: refused all the same.
                assert_eq!(
                    c.validate().map_err(|e| e.name),
                    Err(s.name),
                    "{} = {v:?} passed validate",
                    s.name
                );
                let text = match v {
                    Value::Int(i) => i.to_string(),
                    Value::Float(f) => f.to_string(),
                    Value::Choice(i) => i.to_string(),
                };
                assert_eq!(
                    Config::default().set(s.name, &text).map_err(|e| e.name),
                    Err(s.name),
                    "{} = {text} was set",
                    s.name
                );
            }
        }
        // The ranges that validate once left unchecked, one step past their edges.
        let ten_years_ms = (10 * YEAR_SECS as u64 + 1) * 1000;
        type Case = (&'static str, fn(&mut Config, u64), u64);
        let cases: [Case; 7] = [
            (
                "item-size-bytes",
                |c, v| c.default_item_size = v,
                (1 << 40) + 1,
            ),
            (
                "cache-capacity-bytes",
                |c, v| c.cache_capacity_bytes = v,
                (1 << 50) + 1,
            ),
            (
                "predict-staleness",
                |c, v| c.predict_staleness = v,
                1_000_000_001,
            ),
            ("half-life-secs", |c, v| c.half_life_ms = v, ten_years_ms),
            (
                "popularity-half-life-secs",
                |c, v| c.popularity_half_life_ms = v,
                ten_years_ms,
            ),
            ("dp-clip", |c, v| c.dp_clip = v as u32, 1_000_001),
            (
                "model-memory-max",
                |c, v| c.model_memory_max = v,
                MODEL_MEMORY_MIN_FOR_TEST - 1,
            ),
        ];
        for (name, set, v) in cases {
            let mut c = Config::default();
            set(&mut c, v);
            assert_eq!(c.validate().unwrap_err().name, name);
        }
    }

    const MODEL_MEMORY_MIN_FOR_TEST: u64 = crate::config::MODEL_MEMORY_MIN;

    #[test]
    fn redis_conf_loadmodule_line_loads() {
        let conf = include_str!("../../../redis.conf");
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
