//! Fuzz target `codec_update`: see `edge_fuzz::checks::codec_update` for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_fuzz::checks::codec_update(data));
