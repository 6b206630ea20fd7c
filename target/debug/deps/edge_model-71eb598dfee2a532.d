/work/main/target/debug/deps/edge_model-71eb598dfee2a532.d: model/src/lib.rs model/src/cache/mod.rs model/src/cache/list.rs model/src/catalog.rs model/src/codec.rs model/src/config.rs model/src/decay.rs model/src/engine.rs model/src/global.rs model/src/error.rs model/src/hash.rs model/src/scoring.rs model/src/stats.rs model/src/transitions.rs model/src/user.rs Cargo.toml

/work/main/target/debug/deps/libedge_model-71eb598dfee2a532.rmeta: model/src/lib.rs model/src/cache/mod.rs model/src/cache/list.rs model/src/catalog.rs model/src/codec.rs model/src/config.rs model/src/decay.rs model/src/engine.rs model/src/global.rs model/src/error.rs model/src/hash.rs model/src/scoring.rs model/src/stats.rs model/src/transitions.rs model/src/user.rs Cargo.toml

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
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
