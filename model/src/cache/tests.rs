use super::*;

fn lru(cap: u64) -> EdgeCache {
    EdgeCache::new(CachePolicy::Lru, cap)
}

#[test]
fn lru_evicts_least_recently_used() {
    let mut c = lru(3);
    for k in ["a", "b", "c"] {
        assert_eq!(c.request(k, 1, 1.0), CacheOutcome::Miss);
    }
    assert_eq!(c.request("a", 1, 2.0), CacheOutcome::Hit);
    assert_eq!(c.request("d", 1, 1.0), CacheOutcome::Miss); // evicts b
    assert!(!c.contains("b"));
    assert!(c.contains("a") && c.contains("c") && c.contains("d"));
    let s = c.stats();
    assert_eq!((s.hits, s.misses, s.evictions), (1, 4, 1));
}

#[test]
fn sizes_are_respected_and_oversized_items_are_not_admitted() {
    let mut c = lru(10);
    c.request("big", 6, 1.0);
    c.request("mid", 4, 1.0);
    assert_eq!(c.used_bytes(), 10);
    c.request("x", 5, 1.0); // evicts big (6) only
    assert!(!c.contains("big") && c.contains("mid") && c.contains("x"));
    assert_eq!(c.request("huge", 11, 1.0), CacheOutcome::Miss);
    assert!(!c.contains("huge"));
    assert_eq!(c.used_bytes(), 9);
}

#[test]
fn prefetch_accounting_counts_used_and_unused() {
    let mut c = lru(2);
    assert!(c.prefetch("p1", 1));
    assert!(!c.prefetch("p1", 1), "already cached: no fetch");
    assert!(c.prefetch("p2", 1));
    assert_eq!(c.request("p1", 1, 1.0), CacheOutcome::Hit);
    c.request("x", 1, 1.0); // evicts p2, unused
    let s = c.stats();
    assert_eq!(
        (s.prefetches, s.prefetch_used, s.prefetch_unused_evicted),
        (2, 1, 1)
    );
    assert_eq!(s.origin_fetches(), 3);
    assert_eq!(s.prefetch_precision(), 0.5);
}

/// A predictive cache of `cap` with the given split and prefetch budget.
fn configured(cap: u64, share: ShareMode, budget: Budget) -> EdgeCache {
    let mut c = EdgeCache::new(CachePolicy::Predictive, cap);
    c.configure(CachePolicy::Predictive, cap, share, budget);
    c
}

fn predictive(cap: u64, share: f64) -> EdgeCache {
    configured(cap, ShareMode::Fixed(share), Budget::default())
}

#[test]
fn predictive_core_evicts_least_frequent_then_oldest() {
    let mut c = predictive(3, 0.0);
    c.request("hot", 1, 10.0);
    c.request("warm", 1, 5.0);
    c.request("cold", 1, 1.0);
    c.request("new", 1, 1.0); // evicts cold (freq 1, older than new)
    assert!(!c.contains("cold"));
    c.request("newer", 1, 2.0); // evicts new (freq 1)
    assert!(c.contains("hot") && c.contains("warm") && c.contains("newer"));
}

#[test]
fn prefetches_never_evict_demand_items_and_are_refreshed() {
    let mut c = predictive(10, 0.2); // core 8, prefetch 2
    for (i, k) in ["a", "b", "c", "d", "e", "f", "g", "h"].iter().enumerate() {
        c.request(k, 1, i as f64 + 1.0);
    }
    assert!(c.prefetch("p1", 1));
    assert!(c.prefetch("p2", 1));
    assert!(!c.prefetch("p1", 1), "refresh is free");
    assert!(c.prefetch("p3", 1)); // evicts p2, the least recently predicted
    assert!(c.contains("p1") && c.contains("p3") && !c.contains("p2"));
    assert_eq!(c.len(), 10, "all eight demand items kept");
    // Demand churn does not touch the prefetch segment.
    for k in ["x", "y", "z"] {
        c.request(k, 1, 100.0);
    }
    assert!(c.contains("p1") && c.contains("p3"));
    // A used prefetch moves into the core.
    assert_eq!(c.request("p1", 1, 1000.0), CacheOutcome::Hit);
    assert_eq!(c.stats().prefetch_used, 1);
    assert!(c.prefetch("p4", 1));
    assert!(
        c.contains("p1"),
        "promoted entries are out of the prefetch segment's reach"
    );
}

#[test]
fn switching_policy_or_capacity_keeps_what_fits() {
    let mut c = lru(4);
    for k in ["a", "b", "c"] {
        c.request(k, 1, 1.0);
    }
    c.prefetch("p", 1);
    c.configure(
        CachePolicy::Predictive,
        4,
        ShareMode::Fixed(0.25),
        Budget::default(),
    );
    assert_eq!(c.len(), 4);
    c.configure(
        CachePolicy::Predictive,
        2,
        ShareMode::Fixed(0.5),
        Budget::default(),
    );
    assert!(c.used_bytes() <= 2);
    assert_eq!(c.stats().misses, 3, "counters survive reconfiguration");
    assert_eq!(
        c.stats().evictions,
        2,
        "what no longer fits counts as evicted"
    );
}

#[test]
fn entries_round_trip_through_restore() {
    let mut c = predictive(5, 0.4);
    c.request("a", 1, 3.0);
    c.prefetch("b", 2);
    c.request("c", 1, 1.0);
    let mut d = predictive(5, 0.4);
    d.restore(c.entries(), *c.stats(), c.tick(), c.budget().clone());
    assert_eq!(d.entries(), c.entries());
    assert_eq!(d.stats(), c.stats());
    assert_eq!(d.used_bytes(), 4);
    assert_eq!(d.tick(), c.tick());
}

#[test]
fn rescale_keeps_core_order() {
    let mut c = predictive(2, 0.0);
    c.request("a", 1, 4.0);
    c.request("b", 1, 2.0);
    c.rescale(1e-6);
    c.request("c", 1, 3e-6); // evicts b (2e-6 < 3e-6)
    assert!(c.contains("a") && c.contains("c"));
}

#[test]
fn core_refuses_newcomers_rarer_than_its_victim() {
    let mut c = predictive(2, 0.0);
    c.request("a", 1, 5.0);
    c.request("b", 1, 3.0);
    assert_eq!(c.request("rare", 1, 1.0), CacheOutcome::Miss);
    assert!(!c.contains("rare"), "less frequent than b: not admitted");
    assert!(c.contains("a") && c.contains("b"));
    assert_eq!(c.stats().evictions, 0);
    c.request("tie", 1, 3.0); // as frequent as b and newer: b goes
    assert!(c.contains("tie") && !c.contains("b"));
}

#[test]
fn offers_are_bought_only_when_confident_and_affordable() {
    let mut c = configured(10, ShareMode::Fixed(0.5), Budget::new(1.0, 3));
    assert!(!c.offer("p", || 1, 0, 0.9), "no credit before any request");
    c.request("a", 1, 1.0); // a miss: spends the request's whole budget
    assert!(!c.offer("p", || 1, 0, 0.9));
    c.request("a", 1, 2.0); // a hit earns one fetch
    assert!(!c.offer("weak", || 1, 0, 0.01), "below the price");
    assert!(c.offer("p", || 1, 0, 0.9));
    assert!(!c.offer("q", || 1, 1, 0.9), "credit spent");
    assert!(
        !c.offer("p", || 1, 0, 0.9),
        "cached: refreshed, not fetched"
    );
    assert_eq!(c.stats().prefetches, 1);
    assert_eq!(c.prefetch_k(3), budget::DEPTH_MIN, "depth, not the fixed k");
}

#[test]
fn a_budget_holds_origin_fetches_per_request() {
    // Every request names fresh items, so the prefetcher could spend without limit.
    let mut c = configured(20, ShareMode::Fixed(0.5), Budget::new(1.0, 3));
    for t in 0..5000u32 {
        let item = format!("i{}", t % 40);
        c.request(&item, 1, 1.0);
        for r in 0..10 {
            c.offer(&format!("p{}", t * 10 + r), || 1, r as usize, 0.5);
        }
    }
    let f = c.stats().fetches_per_request();
    assert!(f <= 1.0 + 1e-3 && f > 0.95, "fetches/request {f}");
}

#[test]
fn a_ghost_is_bounded_in_bytes_and_forgets_lowest_rank_then_oldest() {
    let mut g = share::Ghost::default();
    g.push("a", 1, 5, 3);
    g.push("b", 1, 1, 3);
    g.push("c", 1, 5, 3);
    g.push("d", 1, 5, 3); // over 3 bytes: b (lowest rank) goes
    assert!(!g.contains("b") && g.contains("a") && g.contains("d"));
    g.push("e", 2, 5, 3); // a and c, the oldest of equal rank, go
    assert!(!g.contains("a") && !g.contains("c"));
    assert_eq!((g.len(), g.bytes()), (2, 3));
    assert!(g.remove("d") && !g.remove("d"));
    g.push("huge", 4, 9, 3);
    assert!(!g.contains("huge") && g.bytes() <= 3);
}

fn adaptive(cap: u64, start: f64) -> EdgeCache {
    configured(cap, ShareMode::Adaptive(start), Budget::default())
}

#[test]
fn prefetch_ghost_hits_grow_the_prefetch_share() {
    let mut c = adaptive(100, 0.1); // prefetch segment: 10 items
    for t in 0..200 {
        c.prefetch(&format!("p{t}"), 1); // evicts p(t-10) into the prefetch ghost
        if t >= 15 {
            c.request(&format!("p{}", t - 12), 1, 1.0); // just evicted: a ghost hit
        }
    }
    // Each item is used 12 prefetches after it was fetched: the segment grows to hold
    // that many, then stops (the requests hit, so the ghost sees nothing more).
    let s = c.prefetch_share();
    assert!((0.12..=0.2).contains(&s), "share {s}");
    let hits = c.stats().hits;
    c.prefetch("p200", 1);
    assert_eq!(c.request("p188", 1, 1.0), CacheOutcome::Hit);
    assert_eq!(c.stats().hits, hits + 1);
    assert!(c.used_bytes() <= 100);
}

#[test]
fn requests_for_items_the_core_refused_grow_the_core() {
    let mut c = adaptive(100, 0.5); // core: 50 items
    for i in 0..50 {
        c.request(&format!("hot{i}"), 1, 100.0);
    }
    // Items a bit rarer than the core's victims are refused, then come back.
    for round in 0..20 {
        for i in 0..8 {
            c.request(&format!("warm{i}"), 1, 10.0 + round as f64);
        }
    }
    assert!(c.prefetch_share() < 0.5, "share {}", c.prefetch_share());
    assert!(c.prefetch_share() >= SHARE_MIN - 1e-12);
    assert!(c.used_bytes() <= 100);
}

#[test]
fn a_fixed_share_never_moves_and_a_learned_one_survives_reconfiguration() {
    let mut fixed = predictive(100, 0.1);
    let mut learned = adaptive(100, 0.1);
    for c in [&mut fixed, &mut learned] {
        for t in 0..200 {
            c.prefetch(&format!("p{t}"), 1);
            if t >= 15 {
                c.request(&format!("p{}", t - 12), 1, 1.0);
            }
        }
    }
    assert_eq!(fixed.prefetch_share(), 0.1);
    let s = learned.prefetch_share();
    assert!(s > 0.1 + 1e-9);
    learned.configure(
        CachePolicy::Predictive,
        100,
        ShareMode::Adaptive(0.1),
        Budget::new(1.0, 3),
    );
    assert_eq!(
        learned.prefetch_share(),
        s,
        "same mode: the learned share stays"
    );
    learned.configure(
        CachePolicy::Predictive,
        100,
        ShareMode::Fixed(0.3),
        Budget::new(1.0, 3),
    );
    assert_eq!(learned.prefetch_share(), 0.3, "an explicit share pins it");
    let (core, prefetch) = learned.ghosts.parts();
    assert_eq!(
        core.len() + prefetch.len(),
        0,
        "a pinned share keeps no ghosts"
    );
}

#[test]
fn pages_list_every_entry_once_in_key_order() {
    let mut c = EdgeCache::new(CachePolicy::Lru, 100);
    for i in 0..37 {
        c.request(&format!("k{i:02}"), 1 + i % 3, 1.0);
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page: Vec<(String, u64)> = c
            .page(after.as_deref(), 5)
            .into_iter()
            .map(|(k, s)| (k.to_owned(), s))
            .collect();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 5);
        after = page.last().map(|(k, _)| k.clone());
        seen.extend(page);
    }
    let mut all: Vec<(String, u64)> = c.entries().into_iter().map(|e| (e.key, e.size)).collect();
    all.sort();
    assert_eq!(seen, all, "every entry once, in key order, with its size");
    assert_eq!(seen.len(), 37);
}
