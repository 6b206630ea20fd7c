//! The README's command table, generated from what a running server reports about the
//! EDGE.* commands (`COMMAND DOCS`, which the module fills from its one command table), so
//! the README cannot drift from the commands. `tests/tests/docs.rs` fails when the
//! committed table differs; `cargo run -p edge-tests --example readme -- --write`
//! rewrites it.

use std::collections::BTreeMap;

use edge_model::config::settings::Generated;
use redis::Value;

use crate::Server;

/// Where README.md's command table goes.
pub const COMMAND_MARKS: Generated = Generated {
    begin: "<!-- commands: generated from module/src/commands.rs by `cargo run -p edge-tests --example readme -- --write` -->",
    end: "<!-- /commands -->",
};

/// A reply's field/value pairs (RESP2 flat array) by field name.
fn fields(v: &Value) -> BTreeMap<String, &Value> {
    let Value::Array(items) = v else {
        return BTreeMap::new();
    };
    items
        .chunks(2)
        .filter_map(|p| match p {
            [k, v] => text(k).map(|k| (k, v)),
            _ => None,
        })
        .collect()
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// One argument as a usage line shows it: `user`, `[K k]`, `[WITHSCORES]`.
fn usage_arg(arg: &Value) -> String {
    let f = fields(arg);
    let get = |k: &str| f.get(k).and_then(|v| text(v));
    let value = get("display_text")
        .or_else(|| get("name"))
        .unwrap_or_default();
    let optional = matches!(f.get("flags"), Some(Value::Array(fl))
        if fl.iter().any(|x| text(x).as_deref() == Some("optional")));
    let shown = match (get("token"), get("type").as_deref()) {
        (Some(t), Some("pure-token")) => t,
        (Some(t), _) => format!("{t} {value}"),
        (None, _) => value,
    };
    if optional {
        format!("[{shown}]")
    } else {
        shown
    }
}

/// The command table: one row per EDGE.* command the server knows, by name.
pub fn command_table(s: &mut Server) -> String {
    let names: Vec<String> = s.q(redis::cmd("COMMAND")
        .arg("LIST")
        .arg("FILTERBY")
        .arg("MODULE")
        .arg("edge"));
    let mut rows = BTreeMap::new();
    for name in names {
        let docs: Value = s.q(redis::cmd("COMMAND").arg("DOCS").arg(&name));
        let Value::Array(pair) = &docs else {
            panic!("COMMAND DOCS {name}: {docs:?}")
        };
        let doc = fields(&pair[1]);
        let summary = doc.get("summary").and_then(|v| text(v)).unwrap_or_default();
        let mut usage = name.to_ascii_uppercase();
        if let Some(Value::Array(args)) = doc.get("arguments") {
            for a in args {
                usage.push(' ');
                usage.push_str(&usage_arg(a));
            }
        }
        rows.insert(name, format!("| `{usage}` | {summary} |\n"));
    }
    let mut out = String::from("| command | does |\n|---|---|\n");
    rows.values().for_each(|r| out.push_str(r));
    out
}
