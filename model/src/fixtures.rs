//! Small trained nodes for tests here and in the federator (feature `fixtures`): the
//! property that matters most, federated counts equal centralized ones, is checked where
//! the sum lives, on the same edges the model's own tests train.

use crate::config::Config;
use crate::engine::{Engine, View};
use crate::user::UserState;

/// Learning settings with unit weights everywhere, so every count is an integer and sums are exact in `f32`.
pub fn unit_config() -> Config {
    let mut c = Config::default();
    c.learning.decay = 1.0;
    c.learning.reverse = 1.0;
    c.learning.group_inner = 1.0;
    c.learning.window = 3;
    c
}

/// 60 users in 3 regions watching series in order, with region-specific tastes.
pub fn regional_views() -> Vec<(usize, String, String, i64)> {
    let mut out = Vec::new();
    for u in 0..60usize {
        let region = u % 3;
        for step in 0..8i64 {
            let series = (u + step as usize / 4) % 5 + region;
            out.push((
                region,
                format!("U{u}"),
                format!("S{series}E{}", step % 4),
                (step * 60 + u as i64) * 1000,
            ));
        }
    }
    out.sort_by_key(|v| v.3);
    out
}

/// One engine per region trained on [`regional_views`] (one engine for all when `edges` is 1).
pub fn train(edges: usize) -> Vec<Engine> {
    let mut engines: Vec<Engine> = (0..edges)
        .map(|_| Engine::new(unit_config()).unwrap())
        .collect();
    let mut users: std::collections::HashMap<String, UserState> = Default::default();
    for (region, user, item, ts) in regional_views() {
        let e = &mut engines[if edges == 1 { 0 } else { region }];
        let u = users.entry(user).or_default();
        e.record(
            u,
            &View {
                item: &item,
                ts_ms: ts,
                duration_s: None,
                device: None,
            },
        );
    }
    engines
}

/// Every (from, to) weight of own + peers' rows, by names.
pub fn pairs(e: &mut Engine) -> std::collections::BTreeMap<(String, String), f32> {
    let g = e.model();
    let mut out = std::collections::BTreeMap::new();
    for t in [&g.transitions, &g.peers.rows] {
        for (slot, row) in t.rows().iter().enumerate() {
            let Some((_, from)) = g.catalog.at(slot as u32) else {
                continue;
            };
            for en in row.entries() {
                let to = &g.catalog.get(en.item).unwrap().name;
                *out.entry((from.name.to_string(), to.to_string()))
                    .or_default() += en.val.guaranteed();
            }
        }
    }
    out
}
