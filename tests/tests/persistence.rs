//! What survives a restart, and how user keys behave as ordinary Redis keys.

use std::collections::BTreeMap;

use edge_tests::redis::{self, Value};
use edge_tests::{
    aof_commands, play, predict, predict_scored, record, teach_series, wait_background_done,
    Server, ServerOpts, PERSISTED_FIELDS,
};

/// Users whose predictions are compared across a reload (the last one was never seen).
const USERS: [&str; 5] = ["fan0", "fan7", "viewer", "player", "stranger"];

/// A little of everything: series viewers, a skip, devices, plays that fill the cache.
fn build_history(s: &mut Server) {
    teach_series(s, 12);
    for (t, item) in ["S1E1", "Doc", "S1E2"].iter().enumerate() {
        let _: () = s.q(redis::cmd("EDGE.RECORD")
            .arg("viewer")
            .arg(item)
            .arg("TS")
            .arg(50_000 + t as i64)
            .arg("DEVICE")
            .arg("phone")
            .arg("DURATION")
            .arg(30 + 600 * t as i64));
    }
    for (t, item) in ["Doc", "S1E1", "S1E2"].iter().enumerate() {
        play(s, "player", item, 60_000 + t as i64, None);
    }
}

fn model_info(s: &mut Server) -> BTreeMap<String, String> {
    s.wait_lazy_frees();
    let info = s.info("edge");
    PERSISTED_FIELDS
        .iter()
        .map(|f| {
            let v = info
                .get(*f)
                .unwrap_or_else(|| panic!("INFO edge lacks {f}"));
            (f.to_string(), v.clone())
        })
        .collect()
}

/// Predictions with scores for every user in [`USERS`].
fn predictions(s: &mut Server) -> Vec<Vec<(String, f64)>> {
    USERS.iter().map(|u| predict_scored(s, u, 5)).collect()
}

fn user_view(s: &mut Server, user: &str) -> Value {
    s.q(redis::cmd("EDGE.USER").arg(user))
}

#[test]
fn save_restart_and_debug_reload_keep_everything() {
    let mut s = Server::start(ServerOpts::new().debug());
    build_history(&mut s);
    let before = predictions(&mut s);
    assert!(before.iter().all(|p| !p.is_empty()));
    let users_before: Vec<Value> = USERS.iter().map(|u| user_view(&mut s, u)).collect();
    let info_before = model_info(&mut s);

    let _: () = s.q(&mut redis::cmd("SAVE"));
    s.restart();
    let mut info_after = model_info(&mut s);
    assert_eq!(info_after, info_before, "INFO after SAVE + restart");
    assert_eq!(
        predictions(&mut s),
        before,
        "predictions after SAVE + restart"
    );
    let users_after: Vec<Value> = USERS.iter().map(|u| user_view(&mut s, u)).collect();
    assert_eq!(users_after, users_before);

    // DEBUG RELOAD: save and load in place; the model is replaced, not merged.
    info_after = model_info(&mut s);
    let _: () = s.q(redis::cmd("DEBUG").arg("RELOAD"));
    assert_eq!(model_info(&mut s), info_after, "INFO after DEBUG RELOAD");
    assert_eq!(
        predictions(&mut s),
        before,
        "predictions after DEBUG RELOAD"
    );
}

/// The module learns on a thread of its own, and a fork copies only the thread that forks:
/// a BGSAVE sent right behind thousands of views finds a batch of row updates on the
/// learner thread (repeated until one does, as INFO tells), must still finish, and must
/// save everything learned.
#[test]
fn bgsave_right_behind_a_burst_of_views_saves_everything() {
    let mut s = Server::start(ServerOpts::new());
    let mut bursts = 0i64;
    while s.edge_stat("edge_learner_fork_waits_total") == 0 {
        assert!(bursts < 20, "no BGSAVE found a batch on the learner thread");
        let mut pipe = redis::pipe();
        for n in bursts * 12_000..(bursts + 1) * 12_000 {
            // 600 viewers each watching a Zipf-ish run of items: ~200k links to apply.
            let item = (n * n + 7 * n) % 97 + (n % 600) / 25;
            pipe.cmd("EDGE.RECORD")
                .arg(format!("v{}", n % 600))
                .arg(format!("I{item}"))
                .arg("TS")
                .arg(1_000_000 + n)
                .ignore();
        }
        pipe.cmd("BGSAVE").ignore();
        let _: () = pipe.query(s.conn()).expect("views and BGSAVE accepted");
        wait_background_done(&mut s);
        assert_eq!(s.info("persistence")["rdb_last_bgsave_status"], "ok");
        bursts += 1;
    }
    assert!(s.edge_stat("edge_learner_batches_total") > 0);

    let users = ["v0", "v17", "v599", "stranger"];
    let before: Vec<_> = users
        .iter()
        .map(|u| predict_scored(&mut s, u, 10))
        .collect();
    assert!(before[0].len() == 10);
    let info_before = model_info(&mut s);
    assert!(info_before["edge_transitions"].parse::<u64>().unwrap() > 1_000);
    // A crash and restart: what loads is the last BGSAVE's file. (The predictions asked
    // above came after the fork, as do the same ones asked below, so the counters agree.)
    s.restart();
    let after: Vec<_> = users
        .iter()
        .map(|u| predict_scored(&mut s, u, 10))
        .collect();
    assert_eq!(
        after, before,
        "predictions after restarting from the BGSAVE"
    );
    assert_eq!(model_info(&mut s), info_before);
}

/// Writes, a rewrite, more writes (into the incremental AOF), then a crash and restart.
fn aof_session(preamble: &str) -> Server {
    aof_session_with(preamble, ServerOpts::new())
}

/// [`aof_session`] on a server started with `opts`.
fn aof_session_with(preamble: &str, opts: ServerOpts) -> Server {
    let mut s = Server::start(
        opts.config("appendonly", "yes")
            .config("aof-use-rdb-preamble", preamble)
            .config("appendfsync", "always"),
    );
    build_history(&mut s);
    let _: String = s.q(&mut redis::cmd("BGREWRITEAOF"));
    wait_background_done(&mut s);
    record(&mut s, "late", "S1E1", 70_000);
    record(&mut s, "fan0", "Doc", 70_001);
    s
}

#[test]
fn aof_with_rdb_preamble_survives_rewrite_and_restart() {
    let mut s = aof_session("yes");
    let info = model_info(&mut s);
    let before = predictions(&mut s);
    s.restart();
    assert_model_survived(&mut s, info, &before);
}

/// After a restart from the AOF, the node model and predictions are what they were. The
/// predictions made before it are read-only, so not in the AOF: their counter is the only
/// expected difference.
fn assert_model_survived(
    s: &mut Server,
    info: BTreeMap<String, String>,
    before: &[Vec<(String, f64)>],
) {
    let mut after = model_info(s);
    after.insert(
        "edge_predictions_total".into(),
        info["edge_predictions_total"].clone(),
    );
    assert_eq!(after, info);
    assert_eq!(predictions(s), before);
}

/// With `dp-clip` on, viewers' histories carry clipped views and the node a local-only
/// table of what they taught: both come back exactly from an RDB (SAVE + restart, DEBUG
/// RELOAD), from the AOF with and without the RDB preamble, and on a replica's full sync.
#[test]
fn privacy_clipped_state_survives_every_reload() {
    let clipped = || ServerOpts::new().debug().module_arg("dp-clip", "2");
    let mut s = Server::start(clipped());
    build_history(&mut s);
    assert!(s.edge_stat("edge_dp_clipped_total") > 0, "the clip applied");
    let before = predictions(&mut s);
    let users: Vec<Value> = USERS.iter().map(|u| user_view(&mut s, u)).collect();
    let info = model_info(&mut s);
    let _: () = s.q(&mut redis::cmd("SAVE"));
    s.restart();
    assert_eq!(model_info(&mut s), info, "INFO after SAVE + restart");
    assert_eq!(predictions(&mut s), before, "after SAVE + restart");
    let after: Vec<Value> = USERS.iter().map(|u| user_view(&mut s, u)).collect();
    assert_eq!(after, users);
    let info = model_info(&mut s);
    let _: () = s.q(redis::cmd("DEBUG").arg("RELOAD"));
    assert_eq!(model_info(&mut s), info, "INFO after DEBUG RELOAD");
    assert_eq!(predictions(&mut s), before, "after DEBUG RELOAD");
    let mut r = Server::replica_of(&s);
    assert_replica_has_the_data(&mut s, &mut r);
    for preamble in ["yes", "no"] {
        let mut a = aof_session_with(preamble, clipped());
        let info = model_info(&mut a);
        let before = predictions(&mut a);
        a.restart();
        assert_model_survived(&mut a, info, &before);
    }
}

/// Without the RDB preamble the rewrite emits the node model once (`EDGE.NODE.RESTORE`,
/// before the first user) and one `EDGE.RESTORE` per user, so a restart rebuilds exactly
/// what the preamble would have: same users, same node model, same predictions.
#[test]
fn aof_without_preamble_survives_rewrite_and_restart() {
    let mut s = aof_session("no");
    let commands = aof_commands(s.dir());
    let names: Vec<String> = commands
        .iter()
        .map(|c| String::from_utf8_lossy(&c[0]).to_ascii_uppercase())
        .collect();
    let node_restores = names.iter().filter(|n| *n == "EDGE.NODE.RESTORE").count();
    assert_eq!(
        node_restores, 1,
        "the node model is emitted once: {names:?}"
    );
    let first_node = names.iter().position(|n| n == "EDGE.NODE.RESTORE").unwrap();
    let first_user = names.iter().position(|n| n == "EDGE.RESTORE").unwrap();
    assert!(first_node < first_user, "node model before the users");
    let restores: Vec<String> = commands
        .iter()
        .filter(|c| c[0].eq_ignore_ascii_case(b"EDGE.RESTORE"))
        .map(|c| String::from_utf8(c[1].clone()).unwrap())
        .collect();
    let users_before = s.edge_stat("edge_users");
    assert_eq!(
        restores.len() as u64,
        users_before - 1,
        "one per user but 'late', who arrived after the rewrite"
    );
    assert!(restores.contains(&"viewer".to_owned()));
    let views: Vec<Value> = USERS.iter().map(|u| user_view(&mut s, u)).collect();
    let info = model_info(&mut s);
    let before = predictions(&mut s);

    s.restart();
    assert_eq!(s.edge_stat("edge_users"), users_before);
    let views_after: Vec<Value> = USERS.iter().map(|u| user_view(&mut s, u)).collect();
    assert_eq!(
        views_after, views,
        "history, counts, device and named transitions"
    );
    assert_model_survived(&mut s, info, &before);
}

#[test]
fn dump_restore_and_copy_round_trip_a_user() {
    let mut s = Server::start(ServerOpts::new());
    build_history(&mut s);
    let original = user_view(&mut s, "viewer");
    let dump: Vec<u8> = s.q(redis::cmd("DUMP").arg("viewer"));
    let _: () = s.q(redis::cmd("RESTORE").arg("viewer2").arg(0).arg(&dump));
    assert_eq!(user_view(&mut s, "viewer2"), original);
    assert_eq!(
        predict(&mut s, "viewer2", Some(5)),
        predict(&mut s, "viewer", Some(5))
    );
    let kind: String = s.q(redis::cmd("TYPE").arg("viewer2"));
    assert_eq!(kind, "edge-user");

    let users = s.edge_stat("edge_users");
    let copied: i64 = s.q(redis::cmd("COPY").arg("viewer").arg("viewer3"));
    assert_eq!(copied, 1);
    assert_eq!(s.edge_stat("edge_users"), users + 1);
    assert_eq!(user_view(&mut s, "viewer3"), original);
    // The copy is independent of the original.
    record(&mut s, "viewer3", "S1E3", 90_000);
    assert_eq!(user_view(&mut s, "viewer"), original);
    assert_ne!(user_view(&mut s, "viewer3"), original);
}

#[test]
fn memory_usage_grows_with_history() {
    let mut s = Server::start(ServerOpts::new());
    record(&mut s, "m", "I0", 1);
    let small: i64 = s.q(redis::cmd("MEMORY").arg("USAGE").arg("m"));
    assert!(small > 0);
    for i in 1..15 {
        record(&mut s, "m", &format!("Item-number-{i}"), 1 + i);
    }
    let big: i64 = s.q(redis::cmd("MEMORY").arg("USAGE").arg("m"));
    assert!(big > small, "{big} > {small}");
}

#[test]
fn expire_flushall_and_forget_remove_users() {
    let mut s = Server::start(ServerOpts::new());
    build_history(&mut s);
    let _: () = s.q(redis::cmd("SET").arg("plain").arg("x"));
    let users = s.edge_stat("edge_users");
    let keys: i64 = s.q(&mut redis::cmd("DBSIZE"));

    // EXPIRE works on a user key like on any key.
    let _: i64 = s.q(redis::cmd("PEXPIRE").arg("fan3").arg(30));
    s.wait_for("fan3 to expire", |s| {
        s.q::<i64>(redis::cmd("EXISTS").arg("fan3")) == 0
    });
    assert_eq!(user_view(&mut s, "fan3"), Value::Nil);
    assert_eq!(s.edge_stat("edge_users"), users - 1);

    // EDGE.FORGET deletes that key and only that key.
    let fan4 = user_view(&mut s, "fan4");
    let erased: i64 = s.q(redis::cmd("EDGE.FORGET").arg("viewer"));
    assert_eq!(erased, 1);
    assert_eq!(s.q::<i64>(redis::cmd("EXISTS").arg("viewer")), 0);
    assert_eq!(s.q::<i64>(&mut redis::cmd("DBSIZE")), keys - 2);
    assert_eq!(user_view(&mut s, "fan4"), fan4);
    assert_eq!(s.q::<String>(redis::cmd("GET").arg("plain")), "x");
    assert_eq!(s.edge_stat("edge_users"), users - 2);
    assert_eq!(s.edge_stat("edge_forgets_total"), 1);
    let again: i64 = s.q(redis::cmd("EDGE.FORGET").arg("viewer"));
    assert_eq!(again, 0, "nothing left to erase");

    // Flushing another (empty) database leaves this one's users and model alone.
    let items = s.edge_stat("edge_items");
    let mut db1 = s.connect();
    let _: () = redis::cmd("SELECT").arg(1).query(&mut db1).unwrap();
    let _: () = redis::cmd("FLUSHDB").query(&mut db1).unwrap();
    assert_eq!(
        s.edge_stat("edge_items"),
        items,
        "FLUSHDB elsewhere keeps the model"
    );
    assert_eq!(user_view(&mut s, "fan4"), fan4);

    let _: () = s.q(&mut redis::cmd("FLUSHALL"));
    // Servers that flush lazily by default (Valkey 9) free the user values in the
    // background, and the gauge follows as they go: wait for it, bounded.
    s.wait_for("the user values to be freed", |s| {
        s.edge_stat("edge_users") == 0
    });
    assert_eq!(s.edge_stat("edge_items"), 0);
    assert_eq!(s.edge_stat("edge_transitions"), 0);
    assert_eq!(s.edge_stat("edge_cache_items"), 0);
    assert!(
        predict(&mut s, "stranger", None).is_empty(),
        "nothing learned survives"
    );
}

/// `EDGE.MODEL.INFO`: the node model's federation summary and this process's counters.
fn federation_info(s: &mut Server) -> Value {
    s.q(&mut redis::cmd("EDGE.MODEL.INFO"))
}

/// One numeric field of `EDGE.MODEL.INFO` (a flat field/value list under RESP2).
fn federation_field(s: &mut Server, field: &str) -> i64 {
    let Value::Array(flat) = federation_info(s) else {
        panic!("EDGE.MODEL.INFO is a field/value list");
    };
    flat.chunks(2)
        .find(|p| p[0] == Value::BulkString(field.as_bytes().to_vec()))
        .map(|p| match &p[1] {
            Value::Int(v) => *v,
            other => panic!("{field} is {other:?}"),
        })
        .unwrap_or_else(|| panic!("EDGE.MODEL.INFO has no {field}"))
}

/// What a server log shows when the process crashed instead of refusing: Redis's and
/// Valkey's panic banner, their crash report, and the signal handler's line.
const CRASH_MARKERS: [&str; 3] = ["Guru Meditation", "BUG REPORT", "crashed by signal"];

/// The module's strings (node model first, as aux data saved before the keyspace, then
/// one per user) in an RDB written with `rdbcompression no`: `(offset, length)` of each.
/// A module string is the opcode 5 (`RDB_MODULE_OPCODE_STRING`), a 1- or 2-byte RDB length
/// (`00xxxxxx`, `01xxxxxx xxxxxxxx`), then the blob, which starts with the codec's magic.
fn module_strings(rdb: &[u8]) -> Vec<(usize, usize)> {
    let magic = edge_model::wire::MAGIC;
    (3..rdb.len() - magic.len())
        .filter(|&at| rdb[at..].starts_with(magic))
        .filter_map(|at| {
            if rdb[at - 2] == 5 && rdb[at - 1] < 0x40 {
                Some((at, usize::from(rdb[at - 1])))
            } else if rdb[at - 3] == 5 && rdb[at - 2] & 0xC0 == 0x40 {
                Some((
                    at,
                    usize::from(rdb[at - 2] & 0x3F) << 8 | usize::from(rdb[at - 1]),
                ))
            } else {
                None
            }
        })
        .collect()
}

/// A truncated RDB (a full disk, a copy cut short) is refused: the server logs why and
/// exits, with no panic and no crash report, wherever the file ends inside the module's
/// data. The module reads each blob with the IO-error option set, so Redis hands it the
/// short read instead of panicking, and it returns an error. The whole file still loads.
#[test]
fn truncated_rdb_is_refused_without_a_crash_and_the_whole_file_loads() {
    let opts = ServerOpts::new().config("rdbcompression", "no");
    let mut s = Server::start(opts.clone());
    build_history(&mut s);
    let before = predictions(&mut s);
    let info = model_info(&mut s);
    let _: () = s.q(&mut redis::cmd("SAVE"));
    let rdb = std::fs::read(s.dir().join("dump.rdb")).expect("read dump.rdb");
    drop(s);

    let strings = module_strings(&rdb);
    let users = info["edge_users"].parse::<usize>().unwrap();
    assert_eq!(strings.len(), 1 + users, "node model and one blob per user");
    let ((node, node_len), (user, user_len)) = (strings[0], strings[2]);
    // Every cut falls inside a string the module reads. (A cut right after a module string,
    // before the value's end mark, is left out: Redis refuses that load too, but then runs
    // its RDB checker on the file, and the checker's `rdbLoadCheckModuleValue` loops for
    // ever on an end of file there (Redis 7.0 to 7.4, Valkey): a server bug the module
    // cannot reach.)
    let cuts = [
        ("in the node model's length", node - 1),
        ("just inside the node model", node + 2),
        ("in the middle of the node model", node + node_len / 2),
        ("one byte short of the node model", node + node_len - 1),
        ("in a user's length", user - 1),
        ("in the middle of a user", user + user_len / 2),
        ("one byte short of a user", user + user_len - 1),
    ];
    for (what, cut) in cuts {
        let err = match Server::try_start(opts.clone().file("dump.rdb", &rdb[..cut])) {
            Ok(_) => panic!("an RDB cut {what} (at {cut} of {}) loaded", rdb.len()),
            Err(e) => e,
        };
        for marker in CRASH_MARKERS {
            assert!(
                !err.log.contains(marker),
                "cut {what}: the server crashed ({marker:?}) instead of refusing:\n{}",
                err.log
            );
        }
        assert!(
            err.reason.contains("exit status: 1"),
            "cut {what}: {}",
            err.reason
        );
        assert!(
            err.log.contains("Short read or OOM loading DB"),
            "cut {what}: no refusal in the log:\n{}",
            err.log
        );
        assert!(
            err.log.contains("edge: short read"),
            "cut {what}: the module did not report the short read:\n{}",
            err.log
        );
    }

    let mut s = Server::start(opts.file("dump.rdb", rdb));
    assert_eq!(
        model_info(&mut s),
        info,
        "INFO after loading the whole file"
    );
    assert_eq!(predictions(&mut s), before);
}

/// A replica with `repl-diskless-load swapdb` no longer turns diskless loading off on this
/// module's account for read errors (it did while the module did not declare that it
/// handles them), and gets the master's users and node model.
#[test]
fn swapdb_replica_is_not_refused_for_read_errors_and_gets_the_data() {
    let mut m = Server::start(ServerOpts::new().config("repl-diskless-load", "swapdb"));
    build_history(&mut m);
    let mut r = Server::replica_of(&m);
    let log = r.log();
    assert!(
        !log.contains("don't handle read errors"),
        "diskless load was refused for read errors:\n{log}"
    );
    assert_replica_has_the_data(&mut m, &mut r);
}

/// With `repl-diskless-load on-empty-db`, an empty replica now parses the master's stream
/// straight from the socket (before, the module kept it on the disk path), through the
/// module's IO-error-checking load callbacks, and gets the same data.
#[test]
fn empty_replica_loads_the_sync_from_the_socket() {
    let mut m = Server::start(ServerOpts::new().config("repl-diskless-load", "on-empty-db"));
    build_history(&mut m);
    let mut r = Server::replica_of(&m);
    let log = r.log();
    assert!(
        log.contains("to parser") && !log.contains("Skipping diskless-load"),
        "the sync did not load from the socket:\n{log}"
    );
    assert_replica_has_the_data(&mut m, &mut r);
}

fn assert_replica_has_the_data(m: &mut Server, r: &mut Server) {
    m.wait_replicas(1);
    for u in USERS {
        assert_eq!(user_view(r, u), user_view(m, u), "EDGE.USER {u}");
    }
    assert_eq!(model_info(r), model_info(m), "INFO edge");
    assert_eq!(federation_info(r), federation_info(m), "EDGE.MODEL.INFO");
    assert_eq!(predictions(r), predictions(m));
}

/// `DBSIZE` of every database that has keys, from `INFO keyspace` (`db3:keys=2,...`).
fn keyspace(s: &mut Server) -> BTreeMap<String, String> {
    s.info("keyspace")
        .into_iter()
        .map(|(db, v)| (db, v.split(',').next().unwrap_or_default().to_owned()))
        .collect()
}

/// A node whose viewers were all forgotten (or expired) still has its model: items,
/// transitions, counters. An AOF rewrite must keep it although no user key is left to
/// carry it, and must leave no key of its own behind. Other databases hold plain keys, so
/// the rewrite selects several databases.
fn node_without_users_survives_aof_rewrite(preamble: &str) {
    let mut s = Server::start(
        ServerOpts::new()
            .config("appendonly", "yes")
            .config("aof-use-rdb-preamble", preamble)
            .config("appendfsync", "always"),
    );
    // The base AOF was written at start by this very process (the synchronous rewrite of
    // an empty dataset): nothing of the module's may have been added to the keyspace.
    assert!(keyspace(&mut s).is_empty(), "{:?}", keyspace(&mut s));
    for u in 0..3 {
        for i in 0..4 {
            record(&mut s, &format!("u{u}"), &format!("I{i}"), 1_000 * u + i);
        }
    }
    for u in 0..3 {
        let erased: i64 = s.q(redis::cmd("EDGE.FORGET").arg(format!("u{u}")));
        assert_eq!(erased, 1);
    }
    let mut other = s.connect();
    for db in [0, 4] {
        let _: () = redis::pipe()
            .cmd("SELECT")
            .arg(db)
            .cmd("SET")
            .arg("plain")
            .arg(db)
            .query(&mut other)
            .expect("SET in another db");
    }
    assert_eq!(s.edge_stat("edge_users"), 0);
    assert_eq!(s.edge_stat("edge_items"), 4);
    assert_eq!(federation_field(&mut s, "own_transitions"), 12);
    let info = model_info(&mut s);
    let federation = federation_info(&mut s);
    let keys = keyspace(&mut s);

    let _: String = s.q(&mut redis::cmd("BGREWRITEAOF"));
    wait_background_done(&mut s);
    assert_eq!(s.info("persistence")["aof_last_bgrewrite_status"], "ok");
    if preamble == "no" {
        let names: Vec<String> = aof_commands(s.dir())
            .iter()
            .map(|c| String::from_utf8_lossy(&c[0]).to_ascii_uppercase())
            .collect();
        let node_restores = names.iter().filter(|n| *n == "EDGE.NODE.RESTORE").count();
        assert_eq!(node_restores, 1, "the node model, once: {names:?}");
    }

    s.restart();
    assert_eq!(keyspace(&mut s), keys, "the same keys, and no other");
    assert_eq!(s.edge_stat("edge_items"), 4);
    assert_eq!(federation_field(&mut s, "own_transitions"), 12);
    assert_eq!(
        model_info(&mut s),
        info,
        "INFO edge after the rewrite and restart"
    );
    assert_eq!(federation_info(&mut s), federation, "EDGE.MODEL.INFO");
}

#[test]
fn aof_rewrite_without_preamble_keeps_the_model_of_a_node_without_users() {
    node_without_users_survives_aof_rewrite("no");
}

#[test]
fn aof_rewrite_with_preamble_keeps_the_model_of_a_node_without_users() {
    node_without_users_survives_aof_rewrite("yes");
}

/// Users only in databases other than 0: the rewrite still emits the node model exactly
/// once, before the first user, and a restart rebuilds the same keyspace and model.
#[test]
fn aof_rewrite_emits_the_node_model_once_before_users_in_other_databases() {
    let mut s = Server::start(
        ServerOpts::new()
            .config("appendonly", "yes")
            .config("aof-use-rdb-preamble", "no")
            .config("appendfsync", "always"),
    );
    let mut c = s.connect();
    for db in [3, 7] {
        let _: () = redis::cmd("SELECT").arg(db).query(&mut c).unwrap();
        for u in 0..5 {
            for (t, item) in ["S1E1", "S1E2", "S1E3"].iter().enumerate() {
                let _: () = redis::cmd("EDGE.RECORD")
                    .arg(format!("db{db}-u{u}"))
                    .arg(item)
                    .arg("TS")
                    .arg(100 * u + t as i64)
                    .query(&mut c)
                    .unwrap();
            }
        }
    }
    let info = model_info(&mut s);
    let federation = federation_info(&mut s);
    let keys = keyspace(&mut s);
    let _: String = s.q(&mut redis::cmd("BGREWRITEAOF"));
    wait_background_done(&mut s);

    let names: Vec<String> = aof_commands(s.dir())
        .iter()
        .map(|c| String::from_utf8_lossy(&c[0]).to_ascii_uppercase())
        .collect();
    let node_at: Vec<usize> = (0..names.len())
        .filter(|&i| names[i] == "EDGE.NODE.RESTORE")
        .collect();
    assert_eq!(node_at.len(), 1, "the node model, once: {names:?}");
    let first_user = names.iter().position(|n| n == "EDGE.RESTORE").unwrap();
    assert!(
        node_at[0] < first_user,
        "node model before users: {names:?}"
    );
    assert_eq!(names.iter().filter(|n| *n == "EDGE.RESTORE").count(), 10);

    s.restart();
    assert_eq!(keyspace(&mut s), keys, "the same keys, and no other");
    assert_eq!(model_info(&mut s), info);
    assert_eq!(federation_info(&mut s), federation);
}
