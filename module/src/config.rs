//! Module settings: `CONFIG SET/GET edge.<name>` and load-time arguments.
//!
//! Each setting lives in a static that Redis reads and writes through the module config
//! API; after any change the whole [`Config`] is rebuilt, validated and applied to the
//! engine, so lowered bounds (cache capacity, items, successors) take effect at once.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use redis_module::configuration::{ConfigurationContext, ConfigurationFlags};
use redis_module::{enum_configuration, ConfigurationValue, RedisError, RedisString};

use edge_model::{CachePolicy, Config};

enum_configuration! {
    /// `edge.cache-policy`.
    #[allow(non_camel_case_types)]
    pub enum PolicySetting {
        lru = 0,
        predictive = 1,
    }
}

/// A numeric setting with its bounds, registered as an i64 module config.
pub struct IntSetting {
    pub name: &'static str,
    pub value: AtomicI64,
    pub default: i64,
    pub min: i64,
    pub max: i64,
}

impl IntSetting {
    const fn new(name: &'static str, default: i64, min: i64, max: i64) -> Self {
        IntSetting {
            name,
            value: AtomicI64::new(default),
            default,
            min,
            max,
        }
    }

    fn get(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }
}

impl ConfigurationValue<i64> for IntSetting {
    fn get(&self, _: &ConfigurationContext) -> i64 {
        self.value.load(Ordering::Relaxed)
    }
    fn set(&self, _: &ConfigurationContext, v: i64) -> Result<(), RedisError> {
        self.value.store(v, Ordering::Relaxed);
        Ok(())
    }
}

/// A real-valued setting (a scoring weight), registered as a string config and validated
/// on CONFIG SET so a typo is refused rather than silently zeroed.
pub struct FloatSetting {
    pub name: &'static str,
    pub value: Mutex<f64>,
    pub default: &'static str,
    pub min: f64,
    pub max: f64,
}

impl FloatSetting {
    const fn new(name: &'static str, default: &'static str, min: f64, max: f64) -> Self {
        FloatSetting {
            name,
            value: Mutex::new(f64::NAN),
            default,
            min,
            max,
        }
    }

    fn get(&self) -> f64 {
        let v = *self.value.lock().unwrap_or_else(|p| p.into_inner());
        if v.is_nan() {
            self.default.parse().expect("valid default")
        } else {
            v
        }
    }
}

impl ConfigurationValue<RedisString> for FloatSetting {
    fn get(&self, _: &ConfigurationContext) -> RedisString {
        RedisString::create(None, FloatSetting::get(self).to_string())
    }
    fn set(&self, _: &ConfigurationContext, val: RedisString) -> Result<(), RedisError> {
        let v = std::str::from_utf8(val.as_slice())
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= self.min && *v <= self.max)
            .ok_or_else(|| {
                RedisError::String(format!(
                    "edge.{} must be a number between {} and {}",
                    self.name, self.min, self.max
                ))
            })?;
        *self.value.lock().unwrap_or_else(|p| p.into_inner()) = v;
        Ok(())
    }
}

const GIB: i64 = 1 << 30;

pub static DEFAULT_K: IntSetting = IntSetting::new("default-k", 10, 1, 1000);
pub static PREFETCH_K: IntSetting = IntSetting::new("prefetch-k", 3, 0, 100);
pub static HISTORY_LEN: IntSetting = IntSetting::new("history-len", 20, 1, 256);
pub static SEEN_MAX: IntSetting = IntSetting::new("seen-max", 2048, 0, 1_000_000);
pub static PERSONAL_MAX: IntSetting = IntSetting::new("personal-max", 32, 0, 4096);
pub static HALF_LIFE_SECS: IntSetting = IntSetting::new("half-life-secs", 0, 0, 10 * 365 * 86_400);
pub static SUCCESSORS_MAX: IntSetting = IntSetting::new("successors-max", 64, 2, 4096);
pub static ITEMS_MAX: IntSetting = IntSetting::new("items-max", 1_000_000, 16, 100_000_000);
pub static CACHE_CAPACITY: IntSetting = IntSetting::new("cache-capacity-bytes", GIB, 0, 1 << 50);
pub static ITEM_SIZE: IntSetting = IntSetting::new("item-size-bytes", 1 << 20, 1, 1 << 40);
pub static SKIP_PCT: IntSetting = IntSetting::new("skip-threshold-pct", 25, 0, 100);
pub static PREFETCH_SHARE_PCT: IntSetting = IntSetting::new("prefetch-share-pct", 0, 0, 100);
pub static PREDICT_STALENESS: IntSetting =
    IntSetting::new("predict-staleness", 0, 0, 1_000_000_000);

pub static WEIGHT_GLOBAL: FloatSetting = FloatSetting::new("weight-global", "1", 0.0, 1e6);
pub static WEIGHT_PERSONAL: FloatSetting = FloatSetting::new("weight-personal", "0.5", 0.0, 1e6);
pub static WEIGHT_POPULARITY: FloatSetting =
    FloatSetting::new("weight-popularity", "0.001", 0.0, 1e6);
pub static WEIGHT_FEDERATED: FloatSetting = FloatSetting::new("weight-federated", "1", 0.0, 1e6);
pub static RECENCY: FloatSetting = FloatSetting::new("recency", "0.9", 1e-6, 1.0);
pub static SKIP_WEIGHT: FloatSetting = FloatSetting::new("skip-weight", "0.25", 0.0, 1.0);
pub static PREFETCH_BUDGET: FloatSetting = FloatSetting::new("prefetch-budget", "1", 0.0, 1000.0);

pub static CACHE_POLICY: Mutex<PolicySetting> = Mutex::new(PolicySetting::predictive);

/// Every numeric setting, for registration and for `EDGE.CONFIG`-style listings.
pub static INTS: [&IntSetting; 13] = [
    &DEFAULT_K,
    &PREFETCH_K,
    &HISTORY_LEN,
    &SEEN_MAX,
    &PERSONAL_MAX,
    &HALF_LIFE_SECS,
    &SUCCESSORS_MAX,
    &ITEMS_MAX,
    &CACHE_CAPACITY,
    &ITEM_SIZE,
    &SKIP_PCT,
    &PREFETCH_SHARE_PCT,
    &PREDICT_STALENESS,
];

/// Every real-valued setting.
pub static FLOATS: [&FloatSetting; 7] = [
    &WEIGHT_GLOBAL,
    &WEIGHT_PERSONAL,
    &WEIGHT_POPULARITY,
    &WEIGHT_FEDERATED,
    &RECENCY,
    &SKIP_WEIGHT,
    &PREFETCH_BUDGET,
];

/// The engine configuration the settings currently describe.
pub fn current() -> Config {
    let policy = match *CACHE_POLICY.lock().unwrap_or_else(|p| p.into_inner()) {
        PolicySetting::lru => CachePolicy::Lru,
        PolicySetting::predictive => CachePolicy::Predictive,
    };
    let u = |s: &IntSetting| s.get().max(0) as u64;
    Config {
        default_k: u(&DEFAULT_K) as usize,
        prefetch_k: u(&PREFETCH_K) as usize,
        history_len: u(&HISTORY_LEN) as usize,
        seen_max: u(&SEEN_MAX) as usize,
        personal_max: u(&PERSONAL_MAX) as usize,
        half_life_ms: u(&HALF_LIFE_SECS) * 1000,
        successors_max: u(&SUCCESSORS_MAX) as usize,
        items_max: u(&ITEMS_MAX) as usize,
        cache_capacity_bytes: u(&CACHE_CAPACITY),
        cache_policy: policy,
        default_item_size: u(&ITEM_SIZE),
        skip_threshold_pct: u(&SKIP_PCT) as u32,
        prefetch_share_pct: u(&PREFETCH_SHARE_PCT) as u32,
        prefetch_budget: PREFETCH_BUDGET.get(),
        predict_staleness: u(&PREDICT_STALENESS),
        weights: edge_model::config::Weights {
            global: WEIGHT_GLOBAL.get(),
            personal: WEIGHT_PERSONAL.get(),
            popularity: WEIGHT_POPULARITY.get(),
            federated: WEIGHT_FEDERATED.get(),
            recency: RECENCY.get(),
            skip_weight: SKIP_WEIGHT.get(),
        },
    }
}

/// Called by Redis after any `edge.*` setting changed.
pub fn on_changed<G, T: ConfigurationValue<G>>(
    ctx: &ConfigurationContext,
    name: &str,
    _: &'static T,
) {
    let _ = ctx;
    if let Err(e) = crate::state::reconfigure(current()) {
        // Bounds are enforced per setting, so this is a cross-setting inconsistency.
        redis_module::logging::log_warning(format!("edge: setting {name} not applied: {e}"));
    }
}

/// Default flags for every setting.
pub const FLAGS: ConfigurationFlags = ConfigurationFlags::DEFAULT;
