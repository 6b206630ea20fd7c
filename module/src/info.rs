//! The `INFO edge` sections.
//!
//! Redis prefixes everything with the module name, so the section `stats` prints as
//! `# edge_stats` and the field `records_total` as `edge_records_total`. Counters end in
//! `_total` and gauges do not, so the exporter maps them onto Prometheus types by name.
//! The latency histogram is a dictionary of cumulative buckets (`le_<µs>=count`, then
//! `le_inf`), which maps one-to-one onto a Prometheus histogram. The `federation` section
//! reports rounds imported, bytes exchanged and the peers' table (see EDGE.MODEL.INFO).
//! The `prefetch_*` gauges show the budget controller at work: the confidence a prediction
//! must reach to be fetched (its price), how deep it looks, and its credit in fetches.

use redis_module::{InfoContext, RedisResult};

use crate::state;

/// A gauge that is not a whole number: the INFO builder takes integers and text only.
fn float(v: f64) -> String {
    format!("{v:.6}")
}

/// Fills the module's INFO sections.
pub fn add_sections(ctx: &InfoContext, for_crash_report: bool) -> RedisResult<()> {
    // A crash report runs on whichever thread crashed, perhaps holding the engine or being
    // the learner thread: it must neither wait for the lock nor for a batch.
    if for_crash_report {
        return crash_section(ctx);
    }
    let mut engine = state::engine();
    let memory = engine.memory_bytes();
    let items_bound = engine.items_bound();
    let memory_max = engine.config().model_memory_max;
    let fed = state::federation(&mut engine);
    let f = |name: &str| fed.iter().find(|(n, _)| *n == name).map_or(0, |&(_, v)| v);
    let (g, cache, s) = engine.parts();
    let cs = cache.stats();
    let u = |v: usize| v as u64;

    let stats = ctx
        .builder()
        .add_section("stats")
        .field("users", state::users().max(0) as u64)?
        .field("items", u(g.catalog.len()))?
        .field("transitions", u(g.transitions.len()))?
        .field("records_total", s.records)?
        .field("skips_total", s.skips)?
        .field("predictions_total", s.predictions)?
        .field("predict_memo_hits_total", s.predict_memo_hits)?
        .field("plays_total", s.plays)?
        .field("forgets_total", s.forgets)?
        .field("dp_clipped_total", s.dp_clipped)?
        .field("cache_hits_total", cs.hits)?
        .field("cache_misses_total", cs.misses)?
        .field("prefetches_total", cs.prefetches)?
        .field("prefetch_used_total", cs.prefetch_used)?
        .field("prefetch_unused_evicted_total", cs.prefetch_unused_evicted)?
        .field("cache_evictions_total", cs.evictions)?
        .field("cache_items", u(cache.len()))?
        .field("cache_bytes", cache.used_bytes())?
        .field("cache_capacity_bytes", cache.capacity())?
        .field("cache_policy", cache.policy().as_str())?
        .field("prefetch_budget", float(cache.budget().target()))?
        .field("prefetch_price", float(cache.budget().price()))?
        .field("prefetch_depth", u(cache.budget().depth()))?
        .field("prefetch_credit", float(cache.budget().credit()))?
        .field("model_memory_bytes", u(memory))?
        .field("model_memory_max_bytes", memory_max)?
        .field("items_bound", u(items_bound))?
        .field("learner_batches_total", g.transitions.handed_off())?
        .field("learner_fork_waits_total", state::fork_waits())?;
    let stats = state::maintenance()
        .into_iter()
        .try_fold(stats, |b, (name, v)| b.field(name, v))?;

    let mut latency = stats
        .build_section()?
        .add_section("latency")
        .add_dictionary("predict_latency_us");
    for (le, count) in s.predict_latency.cumulative() {
        let name = le.map_or_else(|| "le_inf".to_owned(), |b| format!("le_{b}"));
        latency = latency.field(&name, count)?;
    }
    let latency = latency
        .build_dictionary()?
        .field("predict_latency_us_sum", s.predict_latency.sum_us())?
        .field("predict_latency_us_count", s.predict_latency.count())?;

    let devices = latency.build_section()?.add_section("devices");
    // An empty dictionary would print a bare `edge_device_views_total:` line.
    let devices = if s.device_views.is_empty() {
        devices
    } else {
        let mut dict = devices.add_dictionary("device_views_total");
        for (d, n) in &s.device_views {
            dict = dict.field(d, *n)?;
        }
        dict.build_dictionary()?
    };
    let federation = devices
        .build_section()?
        .add_section("federation")
        .field("federation_rounds_total", f("rounds_imported"))?
        .field("federation_last_import_round", f("last_import_round"))?
        .field("federation_last_import_timestamp_ms", f("last_import_ms"))?
        .field("federation_last_import_bytes", f("last_import_bytes"))?
        .field("federation_imports_total", f("imports_total"))?
        .field("federation_import_bytes_total", f("import_bytes_total"))?
        .field("federation_exports_total", f("exports_total"))?
        .field("federation_export_bytes_total", f("export_bytes_total"))?
        .field("export_round", f("export_round"))?
        .field("peer_rows", f("peer_rows"))?
        .field("peer_transitions", f("peer_transitions"))?
        .field("peer_views", f("peer_views"))?;
    crate::import::counters()
        .into_iter()
        .try_fold(federation, |b, (name, v)| b.field(name, v))?
        .build_section()?
        .build_info()?;
    Ok(())
}

/// What a crash report can tell without waiting: the counters, if the engine is free.
fn crash_section(ctx: &InfoContext) -> RedisResult<()> {
    let Some(engine) = state::try_engine() else {
        return Ok(());
    };
    let s = engine.stats();
    ctx.builder()
        .add_section("stats")
        .field("users", state::users().max(0) as u64)?
        .field("items", engine.catalog().len() as u64)?
        .field("records_total", s.records)?
        .field("predictions_total", s.predictions)?
        .field("plays_total", s.plays)?
        .build_section()?
        .build_info()?;
    Ok(())
}
