//! Fuzz target `codec_node`: see `edge_fuzz::checks::codec_node` for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_fuzz::checks::codec_node(data));
