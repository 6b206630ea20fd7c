//! A fixed workload of plays, for comparing what a play costs between two builds without a
//! quiet machine: run it under callgrind, which counts instructions, and count only the
//! plays.
//!
//! ```text
//! cargo build --release -p edge-model --example play_cost
//! valgrind --tool=callgrind --toggle-collect='*Engine::play*' \
//!     target/release/examples/play_cost [users] [items] [plays]
//! ```
//!
//! The same arguments give the same views, predictions and cache decisions on every build
//! that keeps the answers, so the instruction totals compare like for like. It prints a
//! digest of every outcome, which must match between the builds compared.

use edge_model::{Config, Engine, UserState, View};

#[path = "../benches/support/workload.rs"]
mod workload;

use workload::{next_item, Rng};

fn main() {
    let arg = |i: usize, default: u64| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (users, items, plays) = (arg(1, 20_000) as usize, arg(2, 5_000), arg(3, 20_000));
    let config = Config {
        learner_thread: false,
        ..Config::default()
    };
    let mut engine = Engine::new(config).expect("valid defaults");
    let mut rng = Rng(7);
    let mut viewers = vec![UserState::default(); users];
    let mut last: Vec<Option<u64>> = vec![None; users];
    let mut ts = 1_700_000_000_000i64;
    let mut view_of = |rng: &mut Rng, u: usize| {
        let i = next_item(rng, last[u], items);
        last[u] = Some(i);
        format!("C{i}")
    };
    for _ in 0..10 {
        for (u, viewer) in viewers.iter_mut().enumerate() {
            let item = view_of(&mut rng, u);
            ts += 10;
            engine.record(
                viewer,
                &View {
                    item: &item,
                    ts_ms: ts,
                    duration_s: None,
                    device: None,
                },
            );
        }
    }
    let mut digest = 0xcbf2_9ce4_8422_2325u64;
    let mut hits = 0;
    for _ in 0..plays {
        let u = rng.next() as usize % users;
        let item = view_of(&mut rng, u);
        ts += 10;
        let out = engine.play(
            &mut viewers[u],
            &View {
                item: &item,
                ts_ms: ts,
                duration_s: None,
                device: None,
            },
            None,
        );
        hits += usize::from(out.outcome == edge_model::CacheOutcome::Hit);
        for b in format!("{:?}{:?}", out.outcome, out.prefetched).bytes() {
            digest = (digest ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    println!("{plays} plays, {hits} hits, outcome digest {digest:016x}");
}
