/work/main/target/debug/deps/edge_model-af08eaf4567f356e.d: model/src/lib.rs model/src/cache/mod.rs model/src/cache/list.rs model/src/catalog.rs model/src/codec.rs model/src/config.rs model/src/decay.rs model/src/engine.rs model/src/global.rs model/src/error.rs model/src/hash.rs model/src/scoring.rs model/src/stats.rs model/src/transitions.rs model/src/user.rs

/work/main/target/debug/deps/edge_model-af08eaf4567f356e: model/src/lib.rs model/src/cache/mod.rs model/src/cache/list.rs model/src/catalog.rs model/src/codec.rs model/src/config.rs model/src/decay.rs model/src/engine.rs model/src/global.rs model/src/error.rs model/src/hash.rs model/src/scoring.rs model/src/stats.rs model/src/transitions.rs model/src/user.rs

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
