//! Every malformed request gets a clear error and changes nothing.

use edge_tests::redis::{self, Value};
use edge_tests::{aof_commands, predict_scored, record, teach_series, wait_background_done};
use edge_tests::{Server, ServerOpts};

/// Everything a bad request could have disturbed.
#[derive(Debug, PartialEq)]
struct Snapshot {
    dbsize: i64,
    records: u64,
    users: u64,
    items: u64,
    plays: u64,
    cache_items: u64,
    prediction: Vec<(String, f64)>,
    user: Value,
    plain: String,
    config: Vec<String>,
}

fn snapshot(s: &mut Server) -> Snapshot {
    Snapshot {
        dbsize: s.q(&mut redis::cmd("DBSIZE")),
        records: s.edge_stat("edge_records_total"),
        users: s.edge_stat("edge_users"),
        items: s.edge_stat("edge_items"),
        plays: s.edge_stat("edge_plays_total"),
        cache_items: s.edge_stat("edge_cache_items"),
        prediction: predict_scored(s, "u", 5),
        user: s.q(redis::cmd("EDGE.USER").arg("u")),
        plain: s.q(redis::cmd("GET").arg("str")),
        config: s.q(redis::cmd("CONFIG").arg("GET").arg("edge.*")),
    }
}

/// A server with some history, a string key, and a valid serialized user taken from a
/// no-preamble AOF rewrite (the only place `EDGE.RESTORE` blobs come from).
fn setup() -> (Server, Vec<u8>) {
    let mut s = Server::start(
        ServerOpts::new()
            .config("appendonly", "yes")
            .config("aof-use-rdb-preamble", "no"),
    );
    teach_series(&mut s, 4);
    record(&mut s, "u", "S1E1", 9_000);
    let _: () = s.q(redis::cmd("SET").arg("str").arg("plain"));
    let _: String = s.q(&mut redis::cmd("BGREWRITEAOF"));
    wait_background_done(&mut s);
    let blob = aof_commands(s.dir())
        .into_iter()
        .find(|c| c[0].eq_ignore_ascii_case(b"EDGE.RESTORE") && c[1] == b"u")
        .expect("the rewrite emits EDGE.RESTORE u")
        .swap_remove(2);
    (s, blob)
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let (mut s, blob) = setup();
    let big_item = vec![b'x'; 1 << 20];
    let truncated = blob[..blob.len() - 3].to_vec();
    let mut corrupt = blob.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0x5a;

    let arity = "ERR wrong number of arguments";
    let k_range = "ERR K must be an integer between 0 and 1000";
    let ts_range = "ERR TS must be an integer between 0 and";
    let b = |s: &str| s.as_bytes().to_vec();
    #[rustfmt::skip]
    let table: Vec<(Vec<Vec<u8>>, &str)> = vec![
        (vec![b("EDGE.RECORD")], arity),
        (vec![b("EDGE.RECORD"), b("u")], arity),
        (vec![b("EDGE.PREDICT")], arity),
        (vec![b("EDGE.PREFETCH")], arity),
        (vec![b("EDGE.PLAY")], arity),
        (vec![b("EDGE.PLAY"), b("u")], arity),
        (vec![b("EDGE.USER")], arity),
        (vec![b("EDGE.USER"), b("u"), b("v")], arity),
        (vec![b("EDGE.FORGET")], arity),
        (vec![b("EDGE.FORGET"), b("u"), b("v")], arity),
        (vec![b("EDGE.RESTORE"), b("u")], arity),
        (vec![b("EDGE.RESTORE"), b("u"), blob.clone(), b("x")], arity),
        (vec![b("EDGE.PREDICT"), b("u"), b("K"), b("-1")], k_range),
        (vec![b("EDGE.PREDICT"), b("u"), b("K"), b("abc")], k_range),
        (vec![b("EDGE.PREDICT"), b("u"), b("K"), b("99999999999")], k_range),
        (vec![b("EDGE.PREFETCH"), b("u"), b("K"), b("1001")], k_range),
        (vec![b("EDGE.PREDICT"), b("u"), b("K")], "ERR syntax error: K needs a value"),
        (vec![b("EDGE.PREDICT"), b("u"), b("K"), b("1"), b("K"), b("2")], "ERR syntax error: K given more than once"),
        (vec![b("EDGE.PREDICT"), b("u"), b("BOGUS")], "ERR syntax error: unknown option 'BOGUS'"),
        (vec![b("EDGE.RECORD"), b("u"), vec![0xff, 0xfe]], "ERR item id must be valid UTF-8"),
        (vec![b("EDGE.RECORD"), b("u"), big_item.clone()], "ERR item id must be 1 to 1024 bytes"),
        (vec![b("EDGE.PLAY"), b("u"), big_item], "ERR item id must be 1 to 1024 bytes"),
        (vec![b("EDGE.RECORD"), b("u"), b("")], "ERR item id must be 1 to 1024 bytes"),
        (vec![b("EDGE.RECORD"), b("u"), b("S1E2"), b("COLOR"), b("red")], "ERR syntax error: unknown option 'COLOR'"),
        (vec![b("EDGE.RECORD"), b("u"), b("S1E2"), b("SIZE"), b("10")], "ERR syntax error: unknown option 'SIZE'"),
        (vec![b("EDGE.RECORD"), b("u"), b("S1E2"), b("DURATION"), b("-5")], "ERR DURATION must be an integer between 0 and"),
        (vec![b("EDGE.RECORD"), b("u"), b("S1E2"), b("DURATION")], "ERR syntax error: DURATION needs a value"),
        (vec![b("EDGE.RECORD"), b("u"), b("S1E2"), b("TS"), b("-1")], ts_range),
        (vec![b("EDGE.RECORD"), b("u"), b("S1E2"), b("TS"), b("9007199254740993")], ts_range),
        (vec![b("EDGE.RECORD"), b("u"), b("S1E2"), b("TS"), b("99999999999999999999")], ts_range),
        (vec![b("EDGE.RECORD"), b("u"), b("S1E2"), b("TS"), b("soon")], ts_range),
        (vec![b("EDGE.PREFETCH"), b("u"), b("K"), b("1"), b("BOGUS")], "ERR syntax error: unknown option 'BOGUS'"),
        (vec![b("EDGE.RECORD"), b("u"), b("S1E2"), b("TS"), b("1"), b("TS"), b("2")], "ERR syntax error: TS given more than once"),
        // Longer than the arguments the module views on the stack.
        ([b("EDGE.RECORD"), b("u"), b("S1E2")].into_iter().chain((0..20).flat_map(|_| [b("DEVICE"), b("TV")])).collect(), "ERR syntax error: DEVICE given more than once"),
        ([b("EDGE.PREDICT"), b("u")].into_iter().chain((0..30).map(|i| b(&format!("X{i}")))).collect(), "ERR syntax error: unknown option 'X0'"),
        (vec![b("EDGE.RECORD"), b("u"), b("S1E2"), b("DEVICE"), b("smart tv!")], "ERR DEVICE must be 1 to 32 characters"),
        (vec![b("EDGE.RECORD"), b("u"), b("S1E2"), b("DEVICE"), b("")], "ERR DEVICE must be 1 to 32 characters"),
        (vec![b("EDGE.RECORD"), b("u"), b("S1E2"), b("DEVICE"), vec![b'a'; 33]], "ERR DEVICE must be 1 to 32 characters"),
        (vec![b("EDGE.PLAY"), b("u"), b("S1E2"), b("SIZE"), b("0")], "ERR SIZE must be an integer between 1 and"),
        (vec![b("EDGE.PLAY"), b("u"), b("S1E2"), b("SIZE"), b("1"), b("SIZE"), b("1")], "ERR syntax error: SIZE given more than once"),
        (vec![b("EDGE.RECORD"), b("str"), b("S1E2")], "WRONGTYPE"),
        (vec![b("EDGE.PLAY"), b("str"), b("S1E2")], "WRONGTYPE"),
        (vec![b("EDGE.PREDICT"), b("str")], "WRONGTYPE"),
        (vec![b("EDGE.PREFETCH"), b("str")], "WRONGTYPE"),
        (vec![b("EDGE.USER"), b("str")], "WRONGTYPE"),
        (vec![b("EDGE.FORGET"), b("str")], "WRONGTYPE"),
        (vec![b("EDGE.RESTORE"), b("str"), blob.clone()], "WRONGTYPE"),
        (vec![b("EDGE.RESTORE"), b("u"), truncated.clone()], "ERR invalid user blob"),
        (vec![b("EDGE.RESTORE"), b("new"), truncated], "ERR invalid user blob"),
        (vec![b("EDGE.RESTORE"), b("u"), corrupt], "ERR invalid user blob"),
        (vec![b("EDGE.RESTORE"), b("u"), b("not a blob")], "ERR invalid user blob"),
        (vec![b("EDGE.RESTORE"), b("u"), vec![]], "ERR invalid user blob"),
        (vec![b("CONFIG"), b("SET"), b("edge.score-decay"), b("abc")], "edge.score-decay must be a number"),
        (vec![b("CONFIG"), b("SET"), b("edge.score-decay"), b("0")], "edge.score-decay must be a number"),
        (vec![b("CONFIG"), b("SET"), b("edge.default-k"), b("0")], "edge.default-k"),
        (vec![b("CONFIG"), b("SET"), b("edge.cache-policy"), b("fifo")], "edge.cache-policy"),
        (vec![b("CONFIG"), b("SET"), b("edge.no-such-thing"), b("1")], "ERR"),
        (vec![b("CONFIG"), b("SET"), b("edge.cache-capacity-bytes"), b("")], "edge.cache-capacity-bytes must be a size in bytes"),
        (vec![b("CONFIG"), b("SET"), b("edge.cache-capacity-bytes"), b("-1")], "edge.cache-capacity-bytes must be a size in bytes"),
        (vec![b("CONFIG"), b("SET"), b("edge.item-size-bytes"), b("1.5mb")], "edge.item-size-bytes must be a size in bytes"),
    ];

    let before = snapshot(&mut s);
    assert!(
        !before.prediction.is_empty(),
        "the probe must have something to lose"
    );
    for (args, want) in &table {
        let mut c = redis::Cmd::new();
        for a in args {
            c.arg(a.as_slice());
        }
        let shown: Vec<String> = args
            .iter()
            .map(|a| String::from_utf8_lossy(&a[..a.len().min(24)]).into_owned())
            .collect();
        let got = s.err(&c);
        assert!(
            got.starts_with("ERR ") || got.starts_with("WRONGTYPE "),
            "{shown:?}: {got}"
        );
        assert!(got.contains(want), "{shown:?}: got {got:?}, want {want:?}");
        assert_eq!(s.q::<String>(&mut redis::cmd("PING")), "PONG");
        assert_eq!(snapshot(&mut s), before, "{shown:?} changed something");
    }

    // The good blob, by contrast, is accepted and reproduces the user.
    let _: () = s.q(redis::cmd("EDGE.RESTORE").arg("u-copy").arg(&blob));
    let (copy, original): (Value, Value) = (
        s.q(redis::cmd("EDGE.USER").arg("u-copy")),
        s.q(redis::cmd("EDGE.USER").arg("u")),
    );
    assert_eq!(copy, original);
}

/// A user is a key, and a key is any bytes: every per-user command takes the same keys,
/// text or not, empty or not.
#[test]
fn every_per_user_command_takes_any_key() {
    let mut s = Server::start(ServerOpts::new());
    for key in [vec![0xff, 0xfe], Vec::new(), b"plain".to_vec()] {
        let shown = String::from_utf8_lossy(&key).into_owned();
        let _: () = s.q(redis::cmd("EDGE.RECORD")
            .arg(&key)
            .arg("A1")
            .arg("TS")
            .arg(1000));
        let _: Value = s.q(redis::cmd("EDGE.PLAY")
            .arg(&key)
            .arg("A2")
            .arg("TS")
            .arg(2000));
        let _: Vec<String> = s.q(redis::cmd("EDGE.PREDICT").arg(&key));
        let _: Vec<String> = s.q(redis::cmd("EDGE.PREFETCH").arg(&key));
        let user: Value = s.q(redis::cmd("EDGE.USER").arg(&key));
        assert!(
            matches!(user, Value::Array(ref a) if !a.is_empty()),
            "{shown:?}: {user:?}"
        );
        let blob: Vec<u8> = s.q(redis::cmd("DUMP").arg(&key));
        assert!(!blob.is_empty(), "{shown:?}");
        let forgot: i64 = s.q(redis::cmd("EDGE.FORGET").arg(&key));
        assert_eq!(forgot, 1, "{shown:?}");
        let gone: i64 = s.q(redis::cmd("EXISTS").arg(&key));
        assert_eq!(gone, 0, "{shown:?}");
    }
}
