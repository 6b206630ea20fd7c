//! The federation exchange end to end: exports, imports, packing, and the bounds an import
//! keeps.

use super::*;
use crate::config::Config;
use crate::engine::{Engine, View};
use crate::error::CodecError;
use crate::fixtures::{pairs, train, unit_config};
use crate::user::UserState;
use crate::wire::{Writer, MAX_COUNTER};

#[test]
fn imports_are_idempotent_per_round() {
    let mut a = train(3).remove(0);
    let mut b = train(3).remove(1);
    let u = a.export_update("a", None);
    assert!(b.import_update(&u, 1, 10).applied);
    let before = pairs(&mut b);
    let again = b.import_update(&u, 2, 10);
    assert!(!again.applied);
    assert_eq!(pairs(&mut b), before);
    assert_eq!(b.model().peers.rounds, 1);
}

/// A packed update spells out to the update it came from, its blob is the one
/// `encode_update` writes, and a blob decoded packed re-encodes byte for byte.
#[test]
fn packing_keeps_the_update_and_its_blob() {
    let mut e = train(3).remove(0);
    let mut u = e.export_update("a", None);
    // A name repeated across items and rows, and an item listed twice.
    u.items.push(u.items[0].clone());
    u.rows[0].entries.push((u.items[0].name.clone(), 0.5));
    let p = crate::federation::Packed::pack(&u);
    assert!(p.names.len() < p.entries.len() + p.items.len() + p.rows.len());
    assert_eq!(p.unpack(), u);
    let blob = encode_update(&u);
    assert_eq!(decode_packed(&blob).unwrap(), p);
    assert_eq!(encode_packed(&decode_packed(&blob).unwrap()), blob);
    assert_eq!(decode_update(&blob).unwrap(), u);
}

/// What an import does depends on the update, not on the order of the blob's name
/// table (names are resolved once, by index): a table in reverse order, and one with
/// names no entry uses, leave the same node.
#[test]
fn an_import_does_not_depend_on_the_name_table_order() {
    let mut edges = train(3);
    let u = edges[1].export_update("b", None);
    let p = crate::federation::Packed::pack(&u);
    let n = p.names.len() as u32;
    let mut q = p.clone();
    q.names.reverse();
    q.names.push("unused".into());
    let flip = |i: u32| n - 1 - i;
    q.items.iter_mut().for_each(|i| i.name = flip(i.name));
    q.rows.iter_mut().for_each(|r| r.from = flip(r.from));
    q.entries.iter_mut().for_each(|e| e.0 = flip(e.0));
    assert_eq!(q.unpack(), u);
    let mut a = edges[0].clone();
    let mut b = edges[0].clone();
    assert!(a.import_packed(&p, 5, 1).applied);
    assert!(b.import_packed(&q, 5, 1).applied);
    assert_eq!(
        crate::codec::encode_node(&mut a),
        crate::codec::encode_node(&mut b)
    );
    assert_eq!(pairs(&mut a), pairs(&mut b));
    assert!(!pairs(&mut a).is_empty());
}

#[test]
fn corrupt_updates_are_rejected() {
    let mut e = train(3).remove(0);
    let blob = encode_update(&e.export_update("a", None));
    for cut in 0..blob.len() {
        assert!(decode_update(&blob[..cut]).is_err());
    }
    for i in 0..blob.len() {
        let mut b = blob.clone();
        b[i] ^= 0x41;
        assert!(decode_update(&b).is_err() || i < 4, "byte {i}");
    }
    assert_eq!(decode_update(&blob).unwrap(), decode_update(&blob).unwrap());
}

/// An edge's export says what it learned under (so a federator can size its noise);
/// a version 1 blob, from before it did, still decodes; settings no edge could run
/// under are refused.
#[test]
fn exports_carry_their_learning_settings() {
    let mut e = Engine::new(Config {
        dp_clip: 7,
        learning: crate::config::Learning {
            window: 20,
            ..Config::default().learning
        },
        ..unit_config()
    })
    .unwrap();
    let u = e.export_update("a", None);
    let s = u.settings.expect("an edge reports its settings");
    assert_eq!((s.learning.window, s.dp_clip), (20, 7));
    assert_eq!(decode_update(&encode_update(&u)).unwrap(), u);
    let mut w = Writer::frame(crate::wire::Kind::Update, 1);
    w.str("old");
    w.varint(3);
    w.u8(0);
    for _ in 0..2 {
        w.ivarint(0);
        w.varint(0);
    }
    for _ in 0..3 {
        w.varint(0);
    }
    let old = decode_update(&w.finish()).expect("version 1 decodes");
    assert_eq!((old.round, old.settings), (3, None));
    let mut bad = u.clone();
    bad.settings = Some(LearnSettings {
        learning: crate::config::Learning {
            window: 0,
            ..s.learning
        },
        ..s
    });
    assert_eq!(
        decode_update(&encode_update(&bad)),
        Err(CodecError::Invalid("learning settings out of range"))
    );
}

/// Re-encodes `e`'s node model and decodes it again: what a SAVE and a restart do.
fn reloads(e: &mut Engine) -> Engine {
    let blob = crate::codec::encode_node(e);
    crate::codec::decode_node(&blob, e.config().clone()).expect("the node reloads")
}

fn update_blob(round: u64, views: u64) -> Vec<u8> {
    encode_update(&Update {
        node: "fed".into(),
        round,
        since: None,
        settings: None,
        rows_clock: Clock::default(),
        items_clock: Clock::default(),
        items: vec![UpdateItem {
            name: "X".into(),
            views,
            popularity: 1.0,
        }],
        rows: vec![],
    })
}

/// An aggregate claiming round 2^60 is refused (a round is an id, not a magnitude);
/// one claiming 2^60 views is held to what a node can persist, and the node reloads.
#[test]
fn out_of_range_rounds_are_refused_and_views_saturate() {
    assert_eq!(
        decode_update(&update_blob(1 << 60, 1)),
        Err(CodecError::Invalid("round or id out of range"))
    );
    let mut e = train(3).remove(0);
    let u = decode_update(&update_blob(1, 1 << 60)).unwrap();
    assert_eq!(u.items[0].views, MAX_COUNTER);
    assert!(e.import_update(&u, 0, 1).applied);
    let mut again = reloads(&mut e);
    assert_eq!(
        crate::codec::encode_node(&mut again),
        crate::codec::encode_node(&mut e)
    );
}

fn edge_at(half_life_ms: u64, ts: i64) -> Engine {
    let mut c = unit_config();
    c.half_life_ms = half_life_ms;
    c.popularity_half_life_ms = half_life_ms;
    let mut e = Engine::new(c).unwrap();
    let mut u = UserState::default();
    for (i, item) in ["A", "B", "C", "A", "B"].iter().enumerate() {
        let v = View {
            item,
            ts_ms: ts + i as i64,
            duration_s: None,
            device: None,
        };
        e.record(&mut u, &v);
    }
    e
}

/// A peer whose clock runs 200 half-lives ahead: imported counts stay finite (the
/// importer does not scale them by 2^200), the node reloads, and its own evidence
/// still counts.
#[test]
fn a_peer_clock_far_ahead_keeps_the_node_loadable() {
    let hour: u64 = 3_600_000;
    let now: i64 = 1_800_000_000_000;
    let mut near = edge_at(hour, now + hour as i64);
    let mut far = edge_at(hour, now + 200 * hour as i64);
    let u = far.export_update("far", None);
    assert!(near.import_update(&u, now, 1).applied);
    let g = near.model();
    assert!(g.catalog.iter().all(|(_, i)| i.peer_popularity.is_finite()
        && i.popularity > 0.0
        && i.peer_popularity > 0.0));
    for t in [&g.transitions, &g.peers.rows] {
        assert!(t.rows().iter().all(|r| r.total().is_finite()));
        assert!(t
            .rows()
            .iter()
            .flat_map(|r| r.entries())
            .all(|e| e.val.count.is_finite()));
    }
    let mut again = reloads(&mut near);
    assert_eq!(
        crate::codec::encode_node(&mut again),
        crate::codec::encode_node(&mut near)
    );
}

/// A fresh edge (no views of its own, clock at 0) adopts its peers' clock: their counts
/// are not scaled by 2^(decades / half-life), and they survive its first own view.
#[test]
fn a_fresh_edge_adopts_its_peers_clock() {
    let day: u64 = 86_400_000;
    let now: i64 = 1_800_000_000_000;
    let mut peer = edge_at(7 * day, now);
    let mut fresh = Engine::new(peer.config().clone()).unwrap();
    assert!(
        fresh
            .import_update(&peer.export_update("p", None), now, 1)
            .applied
    );
    let mut u = UserState::default();
    let v = View {
        item: "Z",
        ts_ms: now + 10,
        duration_s: None,
        device: None,
    };
    fresh.record(&mut u, &v);
    let g = fresh.model();
    let a = g
        .catalog
        .lookup("A")
        .and_then(|r| g.catalog.get(r))
        .unwrap();
    assert!(a.peer_popularity > 1.0, "{}", a.peer_popularity);
    assert!(a.peer_popularity.is_finite());
    let mut again = reloads(&mut fresh);
    assert_eq!(
        crate::codec::encode_node(&mut again),
        crate::codec::encode_node(&mut fresh)
    );
}

/// What an import may take from peers: never an own item, never more than `items-max`.
mod peer_bounds {
    use super::*;
    use crate::config::Config;
    use crate::engine::{Engine, View};
    use crate::learn::Entry;
    use crate::user::UserState;

    const ITEMS_MAX: usize = 200;
    const OWN_ITEMS: usize = 120;
    const PEER_ITEMS: usize = 1000;

    /// An edge with a 200-item catalog whose 40 viewers watched 120 items of its own.
    fn own_edge() -> (Engine, Vec<UserState>) {
        let c = Config {
            items_max: ITEMS_MAX,
            ..Config::default()
        };
        let mut e = Engine::new(c).unwrap();
        let mut users = vec![UserState::default(); 40];
        for step in 0..30usize {
            for (u, user) in users.iter_mut().enumerate() {
                let item = format!("own{}", (u * 7 + step * step + step / 3) % OWN_ITEMS);
                let v = View {
                    item: &item,
                    ts_ms: (step * 100 + u) as i64 * 1000,
                    duration_s: None,
                    device: None,
                };
                e.record(user, &v);
            }
        }
        (e, users)
    }

    /// An aggregate naming 1000 items this edge never saw, with popularity growing with the
    /// index (below every own item's, so they do not take over the popularity fill), and
    /// rows chaining them. Each has 10 views, the mean of the edge's own items (1200 views
    /// over 120), so the popularity level the affinity damping measures against stays
    /// where it was: what is left to change the predictions is only what was evicted.
    fn peers_update(round: u64) -> Update {
        let name = |i: usize| format!("peer{i}");
        let pop = |i: usize| 0.5 * (i + 1) as f64 / PEER_ITEMS as f64;
        Update {
            node: "fed".into(),
            round,
            since: None,
            settings: None,
            rows_clock: Clock::default(),
            items_clock: Clock::default(),
            // Least important first: interning in blob order would keep the wrong ones.
            items: (0..PEER_ITEMS)
                .map(|i| UpdateItem {
                    name: name(i),
                    views: 10,
                    popularity: pop(i),
                })
                .collect(),
            rows: (0..PEER_ITEMS - 1)
                .map(|i| UpdateRow {
                    from: name(i),
                    total: 1.0,
                    entries: vec![(name(i + 1), 1.0)],
                })
                .collect(),
        }
    }

    /// Own items, own rows (from, to, weight by names) and a sample of predictions.
    type Snapshot = (
        Vec<String>,
        Vec<(String, String, u32)>,
        Vec<Vec<String>>,
        Summary,
    );

    fn snapshot(e: &mut Engine, users: &[UserState]) -> Snapshot {
        let g = e.model();
        let mut own: Vec<String> = g
            .catalog
            .iter()
            .filter(|(_, i)| i.views > 0)
            .map(|(_, i)| i.name.to_string())
            .collect();
        own.sort();
        let mut rows = Vec::new();
        for (slot, row) in g.transitions.rows().iter().enumerate() {
            let Some((_, from)) = g.catalog.at(slot as u32) else {
                continue;
            };
            for en in row.entries() {
                let to = g
                    .catalog
                    .get(en.item)
                    .expect("own rows point at live items");
                rows.push((
                    from.name.to_string(),
                    to.name.to_string(),
                    en.val.count.to_bits(),
                ));
            }
        }
        rows.sort();
        let summary = summary(g);
        let preds = users
            .iter()
            .step_by(3)
            .map(|u| {
                e.predict(Some(u), 5, false)
                    .into_iter()
                    .map(|p| p.item)
                    .collect()
            })
            .collect();
        (own, rows, preds, summary)
    }

    fn peer_only(e: &mut Engine) -> Vec<String> {
        let g = e.model();
        let mut v: Vec<String> = g
            .catalog
            .iter()
            .filter(|&(r, _)| g.is_peer_only(r))
            .map(|(_, i)| i.name.to_string())
            .collect();
        v.sort();
        v
    }

    /// The most important `n` of the aggregate's items, by name.
    fn top_peers(n: usize) -> Vec<String> {
        let mut v: Vec<String> = (PEER_ITEMS - n..PEER_ITEMS)
            .map(|i| format!("peer{i}"))
            .collect();
        v.sort();
        v
    }

    /// Issue 12, item 6: an aggregate naming far more items than the catalog holds keeps
    /// every own item and row, leaves the viewers' predictions as they were, and takes only
    /// what own items leave of `items-max`, keeping the peers' most important items.
    #[test]
    fn an_import_never_evicts_own_items() {
        let (mut e, users) = own_edge();
        let before = snapshot(&mut e, &users);
        assert_eq!(before.0.len(), OWN_ITEMS);
        assert_eq!(e.model().views_total, 1200);
        assert!(before.3.own_rows > 0 && before.3.own_transitions > 0);

        let out = e.import_update(&peers_update(1), 0, 1);
        assert!(out.applied);
        let after = snapshot(&mut e, &users);
        assert_eq!(after.0, before.0, "every own item survives");
        assert_eq!(
            after.1, before.1,
            "every own row survives, weight for weight"
        );
        assert_eq!(after.2, before.2, "predictions unchanged");
        assert_eq!(after.3.own_rows, before.3.own_rows);
        assert_eq!(after.3.own_transitions, before.3.own_transitions);

        let share = ITEMS_MAX - OWN_ITEMS;
        assert_eq!(out.items, share, "counts set for the admitted items only");
        assert_eq!(e.catalog().len(), ITEMS_MAX);
        assert_eq!(
            peer_only(&mut e),
            top_peers(share),
            "the most important ones"
        );
        // The chain of rows among the admitted items came along (the last one has no row).
        assert_eq!(after.3.peer_rows as usize, share - 1);

        // A second round with other counts reshuffles within the share, still never
        // touching own evidence.
        let mut u = peers_update(2);
        u.items.reverse();
        for (i, it) in u.items.iter_mut().enumerate() {
            it.popularity = 0.5 * (i + 1) as f64 / PEER_ITEMS as f64;
        }
        assert!(e.import_update(&u, 0, 1).applied);
        let again = snapshot(&mut e, &users);
        assert_eq!(again.1, before.1);
        assert_eq!(again.2, before.2);
        let want: Vec<String> = {
            let mut v: Vec<String> = (0..share).map(|i| format!("peer{i}")).collect();
            v.sort();
            v
        };
        assert_eq!(peer_only(&mut e), want);

        // The node saves and reloads with the same model, and the same eviction order.
        let blob = crate::codec::encode_node(&mut e);
        let mut back = crate::codec::decode_node(&blob, e.config().clone()).unwrap();
        assert_eq!(snapshot(&mut back, &users), again);
        assert_eq!(back.model().peer_order, e.model().peer_order);
    }

    /// Learning a new own item into a full catalog takes the slot of the least important
    /// peer-only item, not an own one; with no peer item left, the least popular own item.
    #[test]
    fn learning_evicts_peer_items_first_least_important_first() {
        let (mut e, _) = own_edge();
        e.import_update(&peers_update(1), 0, 1);
        let mut viewer = UserState::default();
        let share = ITEMS_MAX - OWN_ITEMS;
        for n in 0..share {
            let item = format!("fresh{n}");
            let v = View {
                item: &item,
                ts_ms: 10_000_000 + n as i64,
                duration_s: None,
                device: None,
            };
            e.record(&mut viewer, &v);
            assert_eq!(
                peer_only(&mut e),
                top_peers(share - n - 1),
                "after {} new items",
                n + 1
            );
            let g = e.model();
            let own = g.catalog.iter().filter(|(_, i)| i.views > 0).count();
            assert_eq!(own, OWN_ITEMS + n + 1, "no own item evicted");
        }
        let v = View {
            item: "one-more",
            ts_ms: 20_000_000,
            duration_s: None,
            device: None,
        };
        e.record(&mut viewer, &v);
        assert_eq!(e.catalog().len(), ITEMS_MAX);
        assert!(e.catalog().lookup("one-more").is_some());
    }

    /// Memory stays bounded by `items-max` whatever an aggregate names, and a delta that
    /// names only rows' items admits them by the counts already known.
    #[test]
    fn the_peers_rows_count_in_the_models_memory() {
        // model-memory-max bounds what the model holds; an import's rows are most of it.
        let (mut e, _) = own_edge();
        let before = e.model().memory_bytes();
        let mut u = peers_update(1);
        let names: Vec<String> = u.items.iter().map(|i| i.name.clone()).collect();
        for r in &mut u.rows {
            r.entries = names.iter().map(|n| (n.clone(), 1.0)).collect();
        }
        assert!(e.import_update(&u, 0, 1).applied);
        let g = e.model();
        let entries = g.peers.rows.len();
        assert!(
            entries > 100,
            "the update stored {entries} peer transitions"
        );
        assert!(
            g.memory_bytes() >= before + entries * std::mem::size_of::<Entry>(),
            "{} bytes after, {before} before, {entries} entries",
            g.memory_bytes()
        );
    }

    #[test]
    fn a_huge_aggregate_stays_within_items_max() {
        let (mut e, _) = own_edge();
        let mut u = peers_update(1);
        u.items = (0..200_000)
            .map(|i| UpdateItem {
                name: format!("flood{i}"),
                views: i % 7,
                popularity: (i % 1000) as f64,
            })
            .collect();
        assert!(e.import_update(&u, 0, 1).applied);
        assert_eq!(e.catalog().len(), ITEMS_MAX);
        let g = e.model();
        let own = g.catalog.iter().filter(|(_, i)| i.views > 0).count();
        assert_eq!(own, OWN_ITEMS);
        // Everything admitted has the top popularity and views (999 and up to 6).
        assert!(g
            .catalog
            .iter()
            .filter(|&(r, _)| g.is_peer_only(r))
            .all(|(_, i)| i.peer_popularity == 999.0));
    }
}
