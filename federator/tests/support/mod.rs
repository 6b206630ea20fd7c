//! Helpers shared by the federator's end-to-end tests.

use edge_tests::{record, Server};

/// The server's Redis URL.
pub fn url(s: &Server) -> String {
    format!("redis://127.0.0.1:{}", s.port())
}

/// Viewers of `prefix` watching `series` episodes 0..6 in order.
pub fn watch(s: &mut Server, prefix: &str, series: &str, users: usize, t0: i64) {
    for u in 0..users {
        for ep in 0..6 {
            record(
                s,
                &format!("{prefix}{u}"),
                &format!("{series}E{ep}"),
                t0 + (u * 10 + ep) as i64,
            );
        }
    }
}

/// One field of `EDGE.MODEL.INFO`.
pub fn info(s: &mut Server, field: &str) -> i64 {
    let flat: Vec<redis::Value> = s.q(&mut redis::cmd("EDGE.MODEL.INFO"));
    flat.chunks(2)
        .find(|p| {
            redis::from_redis_value::<String>(p[0].clone())
                .ok()
                .as_deref()
                == Some(field)
        })
        .map(|p| redis::from_redis_value(p[1].clone()).expect("integer"))
        .unwrap_or_else(|| panic!("EDGE.MODEL.INFO has no {field}"))
}

/// Three regions (viewer prefix, series, edge): each watches its own series, and some of
/// the others'.
pub const PLAN: [(&str, &str, usize); 6] = [
    ("a", "S0", 0),
    ("b", "S1", 1),
    ("c", "S2", 2),
    ("x", "S1", 0),
    ("y", "S2", 1),
    ("z", "S0", 2),
];
