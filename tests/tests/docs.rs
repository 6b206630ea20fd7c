//! COMMAND DOCS and key specs: what `redis-cli --help`-style tooling, proxies and cluster
//! clients learn about the EDGE.* commands from the server itself.

use edge_tests::redis::{self, Value};
use edge_tests::{Server, ServerOpts};

/// Flattens a RESP2 reply into its leaf strings, for "contains" checks.
fn leaves(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| leaves(i, out)),
        Value::BulkString(b) => out.push(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => out.push(s.clone()),
        Value::Int(i) => out.push(i.to_string()),
        _ => {}
    }
}

#[test]
fn every_command_documents_its_summary_arguments_and_key() {
    let mut s = Server::start(ServerOpts::new());
    for (cmd, arg_tokens) in [
        (
            "edge.record",
            vec!["user", "item", "DURATION", "TS", "DEVICE"],
        ),
        (
            "edge.predict",
            vec!["user", "K", "WITHSCORES", "INCLUDESEEN"],
        ),
        ("edge.prefetch", vec!["user", "K"]),
        ("edge.play", vec!["user", "item", "SIZE", "DELTA"]),
        ("edge.user", vec!["user"]),
        ("edge.forget", vec!["user"]),
    ] {
        let docs: Value = s.q(redis::cmd("COMMAND").arg("DOCS").arg(cmd));
        let mut words = Vec::new();
        leaves(&docs, &mut words);
        assert!(words.iter().any(|w| w == "summary"), "{cmd}: {words:?}");
        assert!(words.iter().any(|w| w == "complexity"), "{cmd}");
        for t in arg_tokens {
            assert!(words.iter().any(|w| w == t), "{cmd} lacks {t}: {words:?}");
        }
        // The key is the first argument, and the server can find it.
        let mut getkeys = redis::cmd("COMMAND");
        getkeys.arg("GETKEYS").arg(cmd).arg("U42");
        if !matches!(cmd, "edge.user" | "edge.forget") {
            getkeys.arg("C1");
        }
        let keys: Vec<String> = s.q(&mut getkeys);
        assert_eq!(keys, ["U42"], "{cmd}");
    }
    let docs: Value = s.q(redis::cmd("COMMAND").arg("DOCS").arg("edge.cache.list"));
    let mut words = Vec::new();
    leaves(&docs, &mut words);
    for t in ["summary", "AFTER", "COUNT"] {
        assert!(
            words.iter().any(|w| w == t),
            "edge.cache.list lacks {t}: {words:?}"
        );
    }
    let info: Value = s.q(redis::cmd("COMMAND").arg("INFO").arg("edge.record"));
    let mut words = Vec::new();
    leaves(&info, &mut words);
    assert!(
        words.contains(&"-3".to_owned()),
        "arity at least user and item: {words:?}"
    );
    assert!(
        words.contains(&"RW".to_owned()) && words.contains(&"update".to_owned()),
        "{words:?}"
    );
}

/// The README's command table is what the module's one command table makes the server
/// report: regenerate it with `cargo run -p edge-tests --example readme -- --write`.
#[test]
fn readme_command_table_is_what_the_server_reports() {
    use edge_tests::readme::{command_table, COMMAND_MARKS};
    let mut s = Server::start(ServerOpts::new());
    let table = command_table(&mut s);
    assert!(
        table.contains("| `EDGE.PLAY user item [DURATION duration]"),
        "{table}"
    );
    let readme = include_str!("../../README.md");
    assert_eq!(
        COMMAND_MARKS.splice(readme, &table).as_deref(),
        Some(readme),
        "README.md's command table is stale: run `cargo run -p edge-tests --example readme -- --write`"
    );
}
