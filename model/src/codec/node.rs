//! The node's model, edge cache and counters as one blob (the RDB aux payload).

use crate::cache::{
    Budget, BudgetParts, CacheStats, CachedItem, EdgeCache, GhostKey, LearnedShare, Segment,
    ShareMode,
};
use crate::catalog::{Catalog, Item, ItemRef};
use crate::config::Config;
use crate::decay::Decay;
use crate::engine::Engine;
use crate::error::CodecError;
use crate::hash::fingerprint;
use crate::learn::node::{Board, NodeModel, Peers};
use crate::learn::{Entry, Row, Transitions, Val};
use crate::stats::Stats;
use crate::wire::{Kind, Reader, Writer, MAX_NAME_LEN};

/// Current version of the node payload. Version 2 added the prefetch controller's price
/// and credit, version 3 the cache's demand clock and each item's demand, version 4 the
/// popularity board's order, version 5 what the cache's split learned (share, ghosts) and
/// the prefetch controller's window depth, version 6 the local-only rows of privacy-clipped
/// views, version 7 the controller's count of the window's prefetches and their uses,
/// version 8 the keys the cache dropped since its last play (what `EDGE.PLAY … DELTA`
/// reports next); older blobs still load (what they lack starts afresh).
pub const NODE_VERSION: u16 = 8;

pub(super) fn encode_rows(w: &mut Writer, t: &Transitions) {
    let rows = t.rows();
    w.varint(rows.len() as u64);
    for row in rows {
        w.f32(row.total());
        w.varint(u64::from(row.stamp()));
        w.varint(row.len() as u64);
        for en in row.entries() {
            w.varint(u64::from(en.item.slot));
            w.varint(u64::from(en.item.gen));
            w.f32(en.val.count);
            w.f32(en.val.error);
        }
    }
}

fn decode_rows(r: &mut Reader<'_>, catalog: &Catalog) -> Result<Vec<Row>, CodecError> {
    let n = r.count(6)?;
    if n > catalog.slot_count() {
        return Err(CodecError::Invalid("more rows than catalog slots"));
    }
    let mut rows = Vec::with_capacity(n);
    for _ in 0..n {
        let total = r.f32()?;
        let stamp =
            u32::try_from(r.varint()?).map_err(|_| CodecError::Invalid("stamp overflow"))?;
        let m = r.count(10)?;
        let mut entries = Vec::with_capacity(m);
        for _ in 0..m {
            let slot = r.varint()?;
            let gen = r.varint()?;
            let (count, error) = (r.f32()?, r.f32()?);
            if slot >= catalog.slot_count() as u64 || gen > u64::from(u32::MAX) {
                return Err(CodecError::Invalid("transition to an unknown slot"));
            }
            let item = ItemRef {
                slot: slot as u32,
                gen: gen as u32,
            };
            entries.push(Entry {
                item,
                val: Val {
                    gen: item.gen,
                    count,
                    error,
                },
            });
        }
        rows.push(Row::from_parts(entries, total, stamp));
    }
    Ok(rows)
}

fn segment_code(s: Segment) -> u8 {
    match s {
        Segment::Lru => 0,
        Segment::Core => 1,
        Segment::Prefetch => 2,
    }
}

/// Encodes a node's model, cache contents and counters (the RDB aux payload).
///
/// Slots left free by evictions are written as they are (two or three bytes each), and a
/// save changes nothing: where the next items go depends on which slots are free, so a
/// reload must find the same ones. Free slots are transient: the maintenance step that
/// ends a shrink, and every import, compact them away (see [`Engine::maintain`]).
pub fn encode_node(e: &mut Engine) -> Vec<u8> {
    let (g, cache, s) = e.parts();
    let mut w = Writer::frame(Kind::Node, NODE_VERSION);
    for d in [&g.decay, &g.pop_decay] {
        w.varint(d.half_life());
        w.ivarint(d.landmark());
    }
    w.varint(g.views_total);
    w.varint(g.catalog.hand() as u64);
    w.varint(g.catalog.slot_count() as u64);
    for (gen, item) in g.catalog.slots() {
        w.varint(u64::from(gen));
        match item {
            None => w.u8(0),
            Some(i) => {
                w.u8(1);
                w.str(&i.name);
                w.f64(i.popularity);
                w.varint(i.views);
                w.f32(i.mean_duration_s);
                w.varint(i.size_bytes);
                w.varint(u64::from(i.stamp));
                w.varint(i.peer_views);
                w.f64(i.peer_popularity);
            }
        }
    }
    encode_rows(&mut w, &g.transitions);
    w.varint(u64::from(g.transitions.epoch()));
    w.ivarint(g.last_ts_ms);
    w.varint(u64::from(g.landmark_epoch));
    let p = &g.peers;
    encode_rows(&mut w, &p.rows);
    for v in [p.views_total, p.round, p.rounds, p.last_import_bytes] {
        w.varint(v);
    }
    w.ivarint(p.last_import_ms);
    let entries = cache.entries();
    w.varint(entries.len() as u64);
    for c in &entries {
        w.str(&c.key);
        w.varint(c.size);
        w.u8(segment_code(c.segment));
        w.u8(u8::from(c.unused_prefetch));
        w.f64(c.freq);
        w.varint(c.last);
    }
    w.varint(cache.tick());
    let b = cache.budget().parts();
    w.f64(b.target);
    w.varint(b.k as u64);
    w.varint(u64::from(b.window_requests));
    w.varint(u64::from(b.window_fetches));
    w.f64(b.price);
    w.f64(b.credit);
    let cs = cache.stats();
    for v in [
        cs.hits,
        cs.misses,
        cs.prefetches,
        cs.prefetch_used,
        cs.prefetch_unused_evicted,
        cs.evictions,
    ] {
        w.varint(v);
    }
    for v in [
        s.records,
        s.skips,
        s.predictions,
        s.plays,
        s.forgets,
        s.dp_clipped,
    ] {
        w.varint(v);
    }
    w.varint(s.device_views.len() as u64);
    for (d, n) in &s.device_views {
        w.str(d);
        w.varint(*n);
    }
    // Version 3: the cache's demand clock and each live item's demand, in slot order.
    w.varint(g.demand_ticks);
    w.varint(g.demand_decay.half_life());
    w.ivarint(g.demand_decay.landmark());
    for (_, item) in g.catalog.slots() {
        if let Some(i) = item {
            w.f64(i.demand);
        }
    }
    // Version 4: the popularity board, leaders first.
    let board = g.board.items();
    w.varint(board.len() as u64);
    for r in board {
        w.varint(u64::from(r.slot));
    }
    encode_learning(&mut w, cache);
    // Version 6: the local-only rows of privacy-clipped views.
    encode_rows(&mut w, &g.local);
    // Version 7: the controller's window use.
    encode_window_use(&mut w, cache);
    // Version 8: the drops the next play reports.
    encode_dropped(&mut w, cache);
    w.finish()
}

/// The version 6 section: the controller's count of the window's prefetches and their
/// uses, which decide whether the price may fall.
pub(super) fn encode_window_use(w: &mut Writer, cache: &EdgeCache) {
    let b = cache.budget().parts();
    w.varint(u64::from(b.window_prefetches));
    w.varint(u64::from(b.window_used));
}

/// The version 8 section: the keys dropped since the last play, and the overflow flag.
pub(super) fn encode_dropped(w: &mut Writer, cache: &EdgeCache) {
    let (keys, overflow) = cache.dropped();
    w.varint(keys.len() as u64);
    for k in keys {
        w.str(k);
    }
    w.u8(u8::from(overflow));
}

/// The version 5 section: the controller's window depth and what the cache's split learned.
pub(super) fn encode_learning(w: &mut Writer, cache: &EdgeCache) {
    w.varint(cache.budget().parts().window_deepest as u64);
    let learned = cache.learned();
    let (mode, start) = match learned.mode {
        ShareMode::Fixed(s) => (0, s),
        ShareMode::Adaptive(s) => (1, s),
    };
    w.u8(mode);
    w.f64(start);
    w.f64(learned.share);
    for ghost in [&learned.core, &learned.prefetch] {
        w.varint(ghost.len() as u64);
        for g in ghost {
            w.str(&g.key);
            w.varint(g.size);
            w.f64(g.freq);
        }
    }
}

fn decode_ghost(r: &mut Reader<'_>) -> Result<Vec<GhostKey>, CodecError> {
    let n = r.count(10)?;
    let mut keys = Vec::with_capacity(n);
    for _ in 0..n {
        let key = r.str(MAX_NAME_LEN)?.to_owned();
        let size = r.counter()?;
        let freq = r.f64()?;
        if freq < 0.0 {
            return Err(CodecError::Invalid("negative ghost frequency"));
        }
        keys.push(GhostKey { key, size, freq });
    }
    Ok(keys)
}

/// Decodes a node blob into an engine running under `config`.
pub fn decode_node(blob: &[u8], config: Config) -> Result<Engine, CodecError> {
    let (mut r, version) = Reader::open(blob, Kind::Node, NODE_VERSION)?;
    let decay = Decay::new(r.counter()?, r.time()?);
    let pop_decay = Decay::new(r.counter()?, r.time()?);
    let views_total = r.counter()?;
    let hand = r.varint()? as usize;
    let n = r.count(2)?;
    let mut slots = Vec::with_capacity(n);
    for _ in 0..n {
        let gen =
            u32::try_from(r.varint()?).map_err(|_| CodecError::Invalid("generation overflow"))?;
        let item = match r.u8()? {
            0 => None,
            1 => {
                let name = r.str(MAX_NAME_LEN)?;
                let popularity = r.f64()?;
                let views = r.counter()?;
                let mean_duration_s = r.f32()?;
                let size_bytes = r.counter()?;
                let stamp = u32::try_from(r.varint()?)
                    .map_err(|_| CodecError::Invalid("stamp overflow"))?;
                let peer_views = r.counter()?;
                let peer_popularity = r.f64()?;
                Some(Item {
                    name: name.into(),
                    fp: fingerprint(name.as_bytes()),
                    popularity,
                    views,
                    ln_views: (1.0 + (views + peer_views) as f32).ln(),
                    mean_duration_s,
                    size_bytes,
                    stamp,
                    peer_views,
                    peer_popularity,
                    demand: 0.0,
                })
            }
            _ => return Err(CodecError::Invalid("bad slot flag")),
        };
        slots.push((gen, item));
    }
    let mut seen_fp = std::collections::HashSet::with_capacity(slots.len());
    for (_, item) in &slots {
        if let Some(i) = item {
            if !seen_fp.insert(i.fp) {
                return Err(CodecError::Invalid("duplicate item in catalog"));
            }
        }
    }
    let catalog = Catalog::from_slots(slots, hand);
    let rows = decode_rows(&mut r, &catalog)?;
    let epoch = u32::try_from(r.varint()?).map_err(|_| CodecError::Invalid("epoch overflow"))?;
    let last_ts_ms = r.time()?;
    let landmark_epoch =
        u32::try_from(r.varint()?).map_err(|_| CodecError::Invalid("epoch overflow"))?;
    let peer_rows = decode_rows(&mut r, &catalog)?;
    let mut pv = [0u64; 4];
    for v in &mut pv {
        *v = r.counter()?;
    }
    let peers = Peers {
        rows: Transitions::from_rows(peer_rows, 0),
        views_total: pv[0],
        round: pv[1],
        rounds: pv[2],
        last_import_bytes: pv[3],
        last_import_ms: r.time()?,
    };
    let board = Board::rebuild(&catalog);
    let mut model = NodeModel {
        catalog,
        transitions: Transitions::from_rows(rows, epoch),
        decay,
        pop_decay,
        demand_decay: Decay::new(0, 0),
        demand_ticks: 0,
        board,
        views_total,
        peers,
        local: Transitions::default(),
        last_ts_ms,
        landmark_epoch,
        peer_order: Vec::new(),
    };
    model.rebuild_peer_order();
    let n = r.count(13)?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let key = r.str(MAX_NAME_LEN)?.to_owned();
        let size = r.varint()?;
        let segment = match r.u8()? {
            0 => Segment::Lru,
            1 => Segment::Core,
            2 => Segment::Prefetch,
            _ => return Err(CodecError::Invalid("bad cache segment")),
        };
        let unused_prefetch = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(CodecError::Invalid("bad prefetch flag")),
        };
        let freq = r.f64()?;
        let last = r.counter()?;
        entries.push(CachedItem {
            key,
            size,
            segment,
            freq,
            last,
            unused_prefetch,
        });
    }
    let tick = r.counter()?;
    let target = r.f64()?;
    let k = r.varint()? as usize;
    let wr = u32::try_from(r.varint()?).map_err(|_| CodecError::Invalid("window overflow"))?;
    let wf = u32::try_from(r.varint()?).map_err(|_| CodecError::Invalid("window overflow"))?;
    let fresh = Budget::new(target, k).parts();
    let (price, credit) = if version >= 2 {
        (r.f64()?, r.f64()?)
    } else {
        (fresh.price, fresh.credit)
    };
    let mut budget = BudgetParts {
        target,
        k,
        window_requests: wr,
        window_fetches: wf,
        price,
        credit,
        window_deepest: 0,
        window_prefetches: 0,
        window_used: 0,
    };
    let mut cs = [0u64; 6];
    for v in &mut cs {
        *v = r.counter()?;
    }
    let cache_stats = CacheStats {
        hits: cs[0],
        misses: cs[1],
        prefetches: cs[2],
        prefetch_used: cs[3],
        prefetch_unused_evicted: cs[4],
        evictions: cs[5],
    };
    let mut st = [0u64; 6];
    for v in &mut st {
        *v = r.counter()?;
    }
    let mut stats = Stats {
        records: st[0],
        skips: st[1],
        predictions: st[2],
        plays: st[3],
        forgets: st[4],
        dp_clipped: st[5],
        ..Stats::default()
    };
    let n = r.count(2)?;
    for _ in 0..n {
        let d = r.str(MAX_NAME_LEN)?.to_owned();
        stats.device_views.insert(d, r.counter()?);
    }
    if version >= 3 {
        model.demand_ticks = r.counter()?;
        model.demand_decay = Decay::new(r.counter()?, r.time()?);
        // A clock set ahead of its own time would weigh every new request 0 for good.
        if !(0..=model.demand_ticks as i64).contains(&model.demand_decay.landmark()) {
            return Err(CodecError::Invalid("demand clock out of range"));
        }
        for item in model.catalog.items_mut() {
            item.demand = r.f64()?;
            if item.demand < 0.0 {
                return Err(CodecError::Invalid("negative demand"));
            }
        }
    } else {
        // Before version 3 the cache was ordered by popularity, on another clock: start
        // its frequencies afresh (recency still orders the core until requests return).
        model.demand_ticks = model.views_total;
        model.demand_decay = Decay::new(config.demand_half_life(), model.views_total as i64);
        for e in &mut entries {
            e.freq = 0.0;
        }
    }
    if version >= 4 {
        let n = r.count(1)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            let slot = u32::try_from(r.varint()?)
                .ok()
                .and_then(|s| model.catalog.at(s))
                .ok_or(CodecError::Invalid("board names an empty slot"))?;
            items.push(slot.0);
        }
        model.board = Board::restore(items, &model.catalog)
            .ok_or(CodecError::Invalid("board repeats an item or is too long"))?;
    }
    let mut learned = None;
    if version >= 5 {
        budget.window_deepest = r.varint()?.min(u64::from(u32::MAX)) as usize;
        let mode = match (r.u8()?, r.f64()?) {
            (0, s) => ShareMode::Fixed(s),
            (1, s) => ShareMode::Adaptive(s),
            _ => return Err(CodecError::Invalid("bad share mode")),
        };
        learned = Some(LearnedShare {
            mode,
            share: r.f64()?,
            core: decode_ghost(&mut r)?,
            prefetch: decode_ghost(&mut r)?,
        });
    }
    if version >= 6 {
        model.local = Transitions::from_rows(decode_rows(&mut r, &model.catalog)?, 0);
    }
    if version >= 7 {
        let mut count =
            || u32::try_from(r.varint()?).map_err(|_| CodecError::Invalid("window overflow"));
        budget.window_prefetches = count()?;
        budget.window_used = count()?;
    }
    let mut dropped = (Vec::new(), false);
    if version >= 8 {
        let n = r.count(1)?;
        if n > crate::cache::DROPPED_MAX {
            return Err(CodecError::Invalid("too many dropped keys"));
        }
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            keys.push(Box::from(r.str(MAX_NAME_LEN)?));
        }
        let overflow = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(CodecError::Invalid("bad dropped-overflow flag")),
        };
        dropped = (keys, overflow);
    }
    r.end()?;
    let mut cache = EdgeCache::new(config.cache_policy, config.cache_capacity_bytes);
    cache.configure(
        config.cache_policy,
        config.cache_capacity_bytes,
        config.share_mode(),
        Budget::default(),
    );
    if let Some(l) = learned {
        cache.adopt(l);
    }
    cache.restore(entries, cache_stats, tick, Budget::from_parts(budget));
    // After the restore, which must not count as drops of its own.
    cache.set_dropped(dropped.0, dropped.1);
    Ok(Engine::from_parts(config, model, cache, stats))
}
