//! Criterion benchmarks of the two hot paths, on a node that has learned a realistic
//! workload: 100k users, 10k items with Zipf-like popularity and series structure.
//!
//! `cargo bench -p edge-model` (append `-- --quick` for a short run). Figures are quoted in
//! the README with the machine they came from; compare ratios, not absolute numbers.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use edge_model::{Config, Engine, UserState, View};

const USERS: usize = 100_000;
const ITEMS: u64 = 10_000;
const VIEWS_PER_USER: usize = 10;

#[path = "support/workload.rs"]
mod workload;

use workload::{next_item, Rng};

fn trained() -> (Engine, Vec<UserState>, Rng) {
    // Inline learning: the whole cost of a record (the learner thread is measured last).
    let inline = Config {
        learner_thread: false,
        ..Config::default()
    };
    let mut engine = Engine::new(inline).expect("valid defaults");
    let mut rng = Rng(7);
    let mut users = vec![UserState::default(); USERS];
    let mut ts = 1_700_000_000_000i64;
    for _round in 0..VIEWS_PER_USER {
        for u in users.iter_mut() {
            let last = u.last().and_then(|h| h.item[1..].parse().ok());
            let item = format!("C{}", next_item(&mut rng, last, ITEMS));
            ts += 10;
            engine.record(
                u,
                &View {
                    item: &item,
                    ts_ms: ts,
                    duration_s: None,
                    device: Some("TV"),
                },
            );
        }
    }
    (engine, users, rng)
}

fn record(
    c: &mut Criterion,
    name: &str,
    engine: &mut Engine,
    users: &mut [UserState],
    rng: &mut Rng,
    items: &[String],
    ts: &mut i64,
) {
    c.bench_function(name, |b| {
        b.iter_batched(
            || (rng.next() as usize % USERS, rng.zipf(ITEMS) as usize),
            |(u, i)| {
                *ts += 1;
                let v = View {
                    item: &items[i],
                    ts_ms: *ts,
                    duration_s: Some(1200),
                    device: Some("TV"),
                };
                engine.record(&mut users[u], black_box(&v));
            },
            BatchSize::SmallInput,
        )
    });
}

fn bench(c: &mut Criterion) {
    let (mut engine, mut users, mut rng) = trained();
    let items: Vec<String> = (0..ITEMS).map(|i| format!("C{i}")).collect();
    let mut ts = 1_800_000_000_000i64;

    record(
        c,
        "record",
        &mut engine,
        &mut users,
        &mut rng,
        &items,
        &mut ts,
    );

    c.bench_function("predict_k10", |b| {
        b.iter_batched(
            || rng.next() as usize % USERS,
            |u| black_box(engine.predict(Some(&users[u]), 10, false)),
            BatchSize::SmallInput,
        )
    });

    c.bench_function("predict_k10_new_user", |b| {
        b.iter(|| black_box(engine.predict(None, 10, false)))
    });

    c.bench_function("play", |b| {
        b.iter_batched(
            || (rng.next() as usize % USERS, rng.zipf(ITEMS) as usize),
            |(u, i)| {
                ts += 1;
                let v = View {
                    item: &items[i],
                    ts_ms: ts,
                    duration_s: None,
                    device: None,
                };
                black_box(engine.play(&mut users[u], &v, None))
            },
            BatchSize::SmallInput,
        )
    });

    // The record above, with full batches of row updates applied on the learner thread as
    // inside Redis: what a record costs the caller's thread. Last, because it leaves the
    // viewers ahead of `engine`.
    let mut threaded = engine.clone();
    threaded
        .set_config(Config {
            learner_thread: true,
            ..engine.config().clone()
        })
        .expect("valid settings");
    record(
        c,
        "record_learner_thread",
        &mut threaded,
        &mut users,
        &mut rng,
        &items,
        &mut ts,
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = bench
}
criterion_main!(benches);
