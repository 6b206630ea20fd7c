/work/main/target/debug/deps/edge_model-ab27289a7d3e361d.d: model/src/lib.rs model/src/cache/mod.rs model/src/cache/list.rs model/src/catalog.rs model/src/codec.rs model/src/config.rs model/src/decay.rs model/src/engine.rs model/src/global.rs model/src/error.rs model/src/hash.rs model/src/scoring.rs model/src/stats.rs model/src/transitions.rs model/src/user.rs

/work/main/target/debug/deps/libedge_model-ab27289a7d3e361d.rlib: model/src/lib.rs model/src/cache/mod.rs model/src/cache/list.rs model/src/catalog.rs model/src/codec.rs model/src/config.rs model/src/decay.rs model/src/engine.rs model/src/global.rs model/src/error.rs model/src/hash.rs model/src/scoring.rs model/src/stats.rs model/src/transitions.rs model/src/user.rs

/work/main/target/debug/deps/libedge_model-ab27289a7d3e361d.rmeta: model/src/lib.rs model/src/cache/mod.rs model/src/cache/list.rs model/src/catalog.rs model/src/codec.rs model/src/config.rs model/src/decay.rs model/src/engine.rs model/src/global.rs model/src/error.rs model/src/hash.rs model/src/scoring.rs model/src/stats.rs model/src/transitions.rs model/src/user.rs

model/src/lib.rs:
model/src/cache/mod.rs:
model/src/cache/list.rs:
model/src/catalog.rs:
model/src/codec.rs:
model/src/config.rs:
model/src/decay.rs:
model/src/engine.rs:
model/src/global.rs:
model/src/error.rs:
model/src/hash.rs:
model/src/scoring.rs:
model/src/stats.rs:
model/src/transitions.rs:
model/src/user.rs:
