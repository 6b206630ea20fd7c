//! Module settings: `CONFIG SET/GET edge.<name>` and load-time arguments.
//!
//! The settings themselves (names, ranges, meaning) live in one table,
//! [`edge_model::config::settings::SETTINGS`]; this file only binds each entry to Redis's module
//! config API. Integers register as numeric configs (Redis checks their range), reals and
//! words as string configs checked by the table's parser. The engine owns the one
//! configuration: a change is parsed here and handed to it, validated there once against
//! the whole [`Config`], so lowered bounds (cache capacity, items, successors) take effect at
//! once and a refused change changes nothing.

use redis_module::configuration::{
    get_i64_default_config_value, register_i64_configuration, register_string_configuration,
    ConfigurationContext, ConfigurationFlags,
};
use redis_module::{ConfigurationValue, Context, RedisError, RedisString};

use edge_model::config::settings::{Kind, Setting, Value, SETTINGS};
use edge_model::{Config, ConfigError};

/// Binds one table entry to Redis: Redis keeps a `&'static` to it and calls `get`/`set`.
/// It holds no value of its own: it reads the engine's configuration and hands a parsed
/// value to [`crate::state::reconfigure`], which validates and applies it.
struct Binding(&'static Setting);

/// The reply for a refused value, naming the setting as CONFIG SET spells it.
fn refused(e: ConfigError) -> RedisError {
    RedisError::String(format!("edge.{} must be {}", e.name, e.expected))
}

impl Binding {
    /// Hands `v` to the engine, which adopts it if the whole configuration stays valid.
    fn store(&self, v: Value) -> Result<(), RedisError> {
        crate::state::reconfigure(|c| self.0.apply(c, v)).map_err(refused)
    }
}

impl ConfigurationValue<i64> for Binding {
    fn get(&self, _: &ConfigurationContext) -> i64 {
        match self.0.get(&crate::state::config()) {
            Value::Int(v) => v,
            Value::Float(f) => f as i64,
            Value::Choice(i) => i as i64,
        }
    }
    fn set(&self, _: &ConfigurationContext, v: i64) -> Result<(), RedisError> {
        self.store(Value::Int(v))
    }
}

impl ConfigurationValue<RedisString> for Binding {
    fn get(&self, _: &ConfigurationContext) -> RedisString {
        RedisString::create(None, self.0.show(&crate::state::config()))
    }
    fn set(&self, _: &ConfigurationContext, val: RedisString) -> Result<(), RedisError> {
        let text = std::str::from_utf8(val.as_slice()).unwrap_or("");
        self.store(self.0.parse(text).map_err(refused)?)
    }
}

/// The value given for `name` among the load arguments, if any.
fn arg_value<'a>(args: &'a [RedisString], name: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a.as_slice() == name.as_bytes())?;
    args.get(i + 1)
        .and_then(|v| std::str::from_utf8(v.as_slice()).ok())
}

/// Load arguments come in `name value` pairs of known settings; anything else is a typo
/// that would otherwise be silently ignored. Values are checked here too, so a bad one
/// fails the load with a message naming it.
pub fn check_args(args: &[RedisString]) -> Result<(), String> {
    if !args.len().is_multiple_of(2) {
        return Err("module arguments must be 'name value' pairs".into());
    }
    let mut c = Config::default();
    for pair in args.chunks(2) {
        let name = String::from_utf8_lossy(pair[0].as_slice());
        let value = String::from_utf8_lossy(pair[1].as_slice());
        if edge_model::config::settings::find(&name).is_none() {
            return Err(format!("unknown module argument '{name}'"));
        }
        c.set(&name, &value)
            .map_err(|e| format!("{} must be {}", e.name, e.expected))?;
    }
    Ok(())
}

/// Registers every setting with Redis (7.0+), taking load arguments as initial values.
pub fn register(ctx: &Context, args: &[RedisString]) -> Result<(), String> {
    for s in SETTINGS {
        let flags = ConfigurationFlags::DEFAULT;
        // Registration hands Redis a reference for the life of the process.
        let binding: &'static Binding = Box::leak(Box::new(Binding(s)));
        match s.kind {
            Kind::Int { min, max } => {
                let Value::Int(default) = s.get(&Config::default()) else {
                    unreachable!()
                };
                let initial = get_i64_default_config_value(args, s.name, default)
                    .map_err(|e| format!("{}: {e}", s.name))?;
                register_i64_configuration(ctx, s.name, binding, initial, min, max, flags, None);
            }
            Kind::Bytes { .. } | Kind::Float { .. } | Kind::Choice(_) => {
                let default = s.show(&Config::default());
                let initial = arg_value(args, s.name).unwrap_or(&default).to_owned();
                register_string_configuration(ctx, s.name, binding, &initial, flags, None);
            }
        }
    }
    Ok(())
}
