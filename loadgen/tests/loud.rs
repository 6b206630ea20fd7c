//! Tools that fail loudly: a wrong file format, a server without the module, a mistyped
//! URL and a closed output pipe each end with a message that says what to do and the exit
//! status a script expects, never a table of zeros, a run of errors or a panic.

mod common;

use std::io::Read;
use std::process::{Command, Output, Stdio};

use common::{loadgen, Server, TempDir};

/// Runs loadgen expecting failure; returns its stderr.
fn fails(args: &[&str]) -> String {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .env_remove("EDGE_REDIS_URL")
        .output()
        .expect("run loadgen");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "loadgen {args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn simulated(dir: &TempDir, events: usize) -> String {
    let p = dir.join("views.jsonl");
    loadgen(&[
        "simulate",
        "--users",
        "40",
        "--items",
        "60",
        "--events",
        &events.to_string(),
        "--out",
        p.to_str().unwrap(),
    ]);
    p.to_str().unwrap().to_owned()
}

#[test]
fn a_file_in_another_format_is_refused_with_the_first_bad_line_and_a_hint() {
    let dir = TempDir::new("loud-format");
    let views = simulated(&dir, 300);
    let err = fails(&["eval", "--format", "movielens", &views, "--jobs", "1"]);
    assert!(err.contains("300 of 300 lines are malformed"), "{err}");
    assert!(
        err.contains("--format movielens (user, item, rating"),
        "{err}"
    );
    assert!(
        err.contains("line 1: expected 4 tab-separated fields"),
        "{err}"
    );
    assert!(
        err.contains("Pass --format jsonl, movielens or csv"),
        "{err}"
    );
    let passwd = dir.join("passwd");
    std::fs::write(
        &passwd,
        "root:x:0:0:root:/root:/bin/bash\nbin:x:1:1::/:/bin/false\n",
    )
    .unwrap();
    let err = fails(&["eval", passwd.to_str().unwrap()]);
    assert!(
        err.contains("2 of 2 lines") && err.contains("invalid JSON"),
        "{err}"
    );
    // A few bad lines pass (counted); more than --max-malformed is refused.
    let mut text = std::fs::read_to_string(&views).unwrap();
    text.push_str("not json\n");
    std::fs::write(&views, &text).unwrap();
    let out = loadgen(&["eval", &views, "--jobs", "1", "--cache-items", "10"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("300 events"));
    let err = fails(&["eval", &views, "--max-malformed", "0.001"]);
    assert!(
        err.contains("1 of 301 lines") && err.contains("line 301"),
        "{err}"
    );
    assert!(err.contains("--max-malformed"), "{err}");
}

#[test]
fn a_server_without_the_module_is_refused_before_the_first_view() {
    let dir = TempDir::new("loud-module");
    let views = simulated(&dir, 200);
    let server = Server::start_without_module();
    let url = server.url();
    let want = format!("the server at {url} does not have the edgecache module loaded");
    for args in [
        vec!["simulate", "--events", "200", "--redis", &url],
        vec!["replay", &views, "--redis", &url],
        vec!["eval", &views, "--redis", &url, "--cache-items", "10"],
        vec!["holdout", &views, "--redis", &url],
    ] {
        let err = fails(&args);
        assert!(err.contains(&want), "{args:?}: {err}");
        assert!(err.contains("--loadmodule"), "{err}");
        assert!(
            !err.contains("CONFIG SET") && !err.contains("errors"),
            "{err}"
        );
    }
    // Nothing reached the server.
    let mut con = server.con();
    let n: u64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n, 0);
}

#[test]
fn a_url_without_its_scheme_gets_an_example_of_one() {
    for url in [
        "127.0.0.1:6379",
        "redsi://127.0.0.1:6379",
        "rediss://127.0.0.1:1",
    ] {
        let err = fails(&["simulate", "--events", "10", "--redis", url]);
        assert!(
            err.contains(&format!("{url:?} is not a server URL")),
            "{err}"
        );
        assert!(err.contains("redis://host:port"), "{err}");
        assert!(err.contains("redis+cluster://host:port,host:port"), "{err}");
        assert!(err.contains("redis+unix://"), "{err}");
    }
}

/// Runs `bin args` with stdout into a pipe whose reader takes one line and closes it.
fn into_closed_pipe(bin: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().unwrap();
    let mut first = Vec::new();
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        first.push(byte[0]);
    }
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&first).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_output_pipe_ends_quietly() {
    let loadgen = env!("CARGO_BIN_EXE_loadgen");
    let (code, first, err) = into_closed_pipe(
        loadgen,
        &["simulate", "--events", "20000", "--out", "/dev/stdout"],
    );
    assert!(first.starts_with("{\"user_id\""), "{first}");
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("panicked") && !err.contains("error"), "{err}");
    let dir = TempDir::new("loud-pipe");
    let views = simulated(&dir, 300);
    let (code, first, err) = into_closed_pipe(loadgen, &["eval", &views, "--jobs", "1"]);
    assert!(first.starts_with("300 events"), "{first}");
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn the_help_gives_the_date_the_simulated_log_starts_on() {
    let help = String::from_utf8(loadgen(&["simulate", "--help"]).stdout).unwrap();
    let dir = TempDir::new("loud-date");
    let p = dir.join("one-day.jsonl");
    loadgen(&[
        "simulate",
        "--users",
        "200",
        "--events",
        "3000",
        "--days",
        "1",
        "--out",
        p.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&p).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let day = &first["timestamp"].as_str().unwrap()[..10];
    assert!(
        help.contains(day),
        "the log starts on {day}; --help says:\n{help}"
    );
}
