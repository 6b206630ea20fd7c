//! The module's learner thread changes when row updates land, never what is answered: a
//! server that learned a burst of views on its learner thread (turned off and on again on
//! the way) predicts exactly what the model crate predicts after learning the same views
//! inline, in process.

use edge_model::{Config, Engine, UserState, View};
use edge_tests::redis;
use edge_tests::{predict_scored, Server, ServerOpts};

#[test]
fn answers_with_the_learner_thread_equal_inline_learning() {
    let mut s = Server::start(ServerOpts::new());
    let inline = Config {
        learner_thread: false,
        ..Config::default()
    };
    let mut engine = Engine::new(inline).expect("defaults are valid");
    const VIEWERS: usize = 400;
    let mut users = vec![UserState::default(); VIEWERS];

    // 24,000 views (about 400,000 links: dozens of batches), sent in pipelined bursts so
    // that batches pile up on the learner thread between reads.
    let mut x: u64 = 3;
    let mut batches_at = Vec::new();
    for burst in 0..12 {
        // Off for bursts 6 to 9 (set while a batch may be away), on again after.
        match burst {
            6 => set_learner_thread(&mut s, "no"),
            10 => set_learner_thread(&mut s, "yes"),
            _ => {}
        }
        batches_at.push(s.edge_stat("edge_learner_batches_total"));
        let mut pipe = redis::pipe();
        for n in 0..2_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = ((x >> 40) % VIEWERS as u64) as usize;
            // Skewed items with some structure: a viewer's items drift with time.
            let r = (x >> 20) % 1_000;
            let item = format!("I{}", (r * r / 4_000 + (u as u64 % 7) * 3 + n / 500) % 300);
            let ts = 1_700_000_000_000i64 + burst * 10_000 + n as i64;
            pipe.cmd("EDGE.RECORD")
                .arg(format!("v{u}"))
                .arg(&item)
                .arg("TS")
                .arg(ts)
                .ignore();
            engine.record(
                &mut users[u],
                &View {
                    item: &item,
                    ts_ms: ts,
                    duration_s: None,
                    device: None,
                },
            );
        }
        let _: () = pipe.query(s.conn()).expect("views accepted");
    }
    let batches = s.edge_stat("edge_learner_batches_total");
    assert!(batches_at[6] >= 5, "the learner thread took the batches");
    assert_eq!(batches_at[10], batches_at[6], "no batch while it was off");
    assert!(
        batches > batches_at[10],
        "it took batches again once back on"
    );

    for u in (0..VIEWERS).step_by(37) {
        let expected: Vec<(String, f64)> = engine
            .predict(Some(&users[u]), 10, false)
            .into_iter()
            .map(|p| (p.item, p.score))
            .collect();
        assert_eq!(expected.len(), 10);
        assert_eq!(
            predict_scored(&mut s, &format!("v{u}"), 10),
            expected,
            "v{u}"
        );
    }
    let stranger: Vec<String> = engine
        .predict(None, 10, false)
        .into_iter()
        .map(|p| p.item)
        .collect();
    let got: Vec<String> = predict_scored(&mut s, "stranger", 10)
        .into_iter()
        .map(|(item, _)| item)
        .collect();
    assert_eq!(got, stranger);
}

fn set_learner_thread(s: &mut Server, value: &str) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("edge.learner-thread")
        .arg(value)
        .query(s.conn())
        .expect("setting accepted");
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("edge.learner-thread")
        .query(s.conn())
        .expect("setting readable");
    assert_eq!(got, ["edge.learner-thread", value]);
}
