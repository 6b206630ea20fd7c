//! Fuzz target `codec_user`: see `edge_fuzz::checks::codec_user` for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_fuzz::checks::codec_user(data));
