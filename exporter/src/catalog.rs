//! What each metric means: the HELP text of every series the module's `INFO edge` gives
//! today, in one table, so an operator reading `/metrics` (or Grafana's tooltip) learns
//! what a number counts and why it matters without reading the module's source.
//!
//! A field the module adds later still gets exported (the rules in [`crate::info`] type
//! it by name) with a stand-in HELP that names its INFO source and says it is not in this
//! table yet; the end-to-end test fails on that stand-in, so a new field cannot ship
//! undocumented.

/// The words every stand-in HELP carries, so tests (and operators) can tell a field that
/// is not in the catalog yet from one that is.
pub const UNDOCUMENTED: &str = "not yet described in the exporter's catalog";

/// `(exported name, HELP)` of every module metric. Names are as exported (unit-normalised,
/// so `edge_maintenance_step_max_us` appears as `edge_maintenance_step_max_seconds`).
const HELP: &[(&str, &str)] = &[
    // The model.
    ("edge_users", "Viewers with a model key on this edge (EDGE.FORGET removes one); the per-viewer part of Redis memory grows with it."),
    ("edge_items", "Items in this node's catalog, own and learned from peers; bounded by edge_items_bound, beyond which the least popular are evicted."),
    ("edge_transitions", "Item-to-item transitions held by this node's own model: the co-occurrence table predictions are scored from (peers' are edge_peer_transitions)."),
    ("edge_records_total", "Views learned, from EDGE.RECORD and from EDGE.PLAY alike (a play is also a view); EDGE.RECORD alone is edge_command_calls_total{command=\"edge.record\"}."),
    ("edge_skips_total", "Learned views shorter than skip-threshold-pct of the usual watch time, counted as skips: a rising share means viewers abandon what they start."),
    ("edge_predictions_total", "Prediction lists computed, for EDGE.PREDICT, EDGE.PREFETCH and the prefetch step of each EDGE.PLAY (memoized answers included); EDGE.PREDICT alone is edge_command_calls_total{command=\"edge.predict\"}."),
    ("edge_predict_memo_hits_total", "Predictions answered from the viewer's memo instead of being recomputed (a subset of edge_predictions_total): what predict-staleness saves."),
    ("edge_plays_total", "EDGE.PLAY requests: views that went through the edge cache (each is a hit or a miss)."),
    ("edge_forgets_total", "Viewers whose history was erased on request (EDGE.FORGET, e.g. data-protection requests)."),
    ("edge_dp_clipped_total", "Views kept out of the exported model by the privacy clip (dp-clip); they still teach this edge. Always 0 while dp-clip is 0."),
    ("edge_model_memory_bytes", "Estimated memory of the node model (own and peers' rows); compare with edge_model_memory_max_bytes, past which items are evicted."),
    ("edge_model_memory_max_bytes", "The bound on the node model's memory (model-memory-max); 0 means unbounded, only items-max limits the model."),
    ("edge_items_bound", "Items the catalog may hold now: items-max, or fewer when model-memory-max was found to allow fewer."),
    ("edge_learner_batches_total", "Batches of row updates applied on the learner thread, off the server's main thread."),
    ("edge_learner_fork_waits_total", "Forks (BGSAVE, AOF rewrite, full sync) that waited for a batch on the learner thread: each one delayed a fork."),
    ("edge_maintenance_steps_total", "Maintenance steps run between client commands (evictions under model-memory-max, compactions)."),
    ("edge_maintenance_evictions_total", "Items evicted from the node model by maintenance to stay under model-memory-max; steadily rising means the bound is too small for the catalog."),
    ("edge_compactions_total", "Compactions of the model's tables that returned memory after evictions."),
    ("edge_maintenance_step_max_seconds", "Longest single maintenance step since the server started: the longest clients waited behind background model upkeep."),
    ("edge_import_decodes_pending", "Federation imports of 1 MiB or more waiting for or in their decoding off the event loop; their clients are blocked meanwhile."),
    ("edge_import_decodes_total", "Federation imports decoded off the event loop since the server started."),
    ("edge_import_apply_max_seconds", "Longest time one federation import held the event loop (its merge, or all of it when imported in place) since the server started."),
    ("edge_import_decode_max_seconds", "Longest off-loop decoding of a federation import since the server started."),
    ("edge_predict_latency_seconds", "Time spent computing EDGE.PREDICT answers, in seconds (memoized answers count as under a microsecond)."),
    ("edge_device_views_total", "Views learned, by the device the client reported (at most 32 devices; the rest count as \"other\")."),
    // The edge cache.
    ("edge_cache_hits_total", "Plays served from the edge cache; the hit ratio is this over hits plus edge_cache_misses_total."),
    ("edge_cache_misses_total", "Plays whose item was not in the edge cache: each one is an origin fetch a viewer waited for."),
    ("edge_prefetches_total", "Items fetched into the edge cache because they were predicted, before any request: origin fetches spent on predictions."),
    ("edge_prefetch_used_total", "Prefetched items played while still cached: prefetches that paid off (precision is this over edge_prefetches_total)."),
    ("edge_prefetch_unused_evicted_total", "Prefetched items evicted before anyone played them: origin fetches wasted on wrong predictions."),
    ("edge_cache_evictions_total", "Items evicted from the edge cache to make room, prefetched or not; churn at a steady hit ratio means the cache is too small."),
    ("edge_cache_items", "Items the edge cache holds now."),
    ("edge_cache_bytes", "Content bytes the edge cache holds now, by the sizes EDGE.PLAY reports (the cache's bookkeeping, not Redis memory); at most edge_cache_capacity_bytes."),
    ("edge_cache_capacity_bytes", "The edge cache's size in content bytes (cache-capacity-bytes)."),
    ("edge_prefetch_budget", "Origin fetches per request the prefetcher may spend, misses included (prefetch-budget; 0: fixed prefetch-k)."),
    ("edge_prefetch_price", "Confidence a prediction needs to be prefetched, set by the budget controller: rises when fetches run over the budget."),
    ("edge_prefetch_depth", "Predictions the prefetcher looks at per play."),
    ("edge_prefetch_credit", "Origin fetches the budget controller can spend now (negative: overspent, prefetching pauses until plays earn it back)."),
    // Federation.
    ("edge_federation_rounds_total", "Federation rounds imported from the federator; flat while the federator runs means this edge no longer learns from its peers."),
    ("edge_federation_last_import_round", "The federator round of the last import applied here."),
    ("edge_federation_last_import_timestamp_seconds", "When the last federation import was applied, as a Unix time in seconds (0: never); time() minus this is the age of what the edge knows from its peers."),
    ("edge_federation_last_import_bytes", "Size of the last imported aggregate, in bytes."),
    ("edge_federation_imports_total", "EDGE.MODEL.IMPORT calls this edge accepted."),
    ("edge_federation_import_bytes_total", "Bytes of the aggregates this edge accepted with EDGE.MODEL.IMPORT: federation traffic into the edge."),
    ("edge_federation_exports_total", "EDGE.MODEL.EXPORT calls answered (each closes a round of this edge's counts)."),
    ("edge_federation_export_bytes_total", "Bytes of the exports this edge answered: federation traffic out of the edge."),
    ("edge_export_round", "The round the next EDGE.MODEL.EXPORT closes."),
    ("edge_peer_rows", "Items with transitions learned from peer edges."),
    ("edge_peer_transitions", "Transitions learned from peer edges (memory counted in edge_model_memory_bytes)."),
    ("edge_peer_views", "Views the peer edges reported, summed over items: how much evidence federation brought."),
];

/// The HELP of a known metric.
pub fn known(name: &str) -> Option<&'static str> {
    HELP.iter().find(|(n, _)| *n == name).map(|(_, h)| *h)
}

/// The HELP text for `name`: the catalog's, or a stand-in naming the INFO field `source`
/// and the Prometheus `kind`, so a field newer than this table still passes
/// `promtool check metrics`.
pub fn help_for(name: &str, source: &str, kind: &str) -> String {
    known(name).map_or_else(
        || format!("{kind} from INFO edge field {source} ({UNDOCUMENTED})."),
        str::to_owned,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_unique_and_says_something() {
        for (i, (name, help)) in HELP.iter().enumerate() {
            assert!(crate::info::valid_name(name), "{name}");
            assert!(help.len() > 30 && help.ends_with('.'), "{name}: {help}");
            assert!(!help.contains(UNDOCUMENTED));
            assert!(
                HELP[..i].iter().all(|(n, _)| n != name),
                "{name} is listed twice"
            );
        }
    }

    #[test]
    fn unknown_fields_get_a_recognisable_stand_in() {
        let h = help_for("edge_new_thing_total", "edge_new_thing_total", "Counter");
        assert!(
            h.contains(UNDOCUMENTED) && h.contains("edge_new_thing_total"),
            "{h}"
        );
        assert_eq!(
            help_for("edge_users", "edge_users", "Gauge"),
            known("edge_users").unwrap()
        );
    }
}
