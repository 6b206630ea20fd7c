//! Fuzz target `request`: see `edge_fuzz::checks::request` for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_fuzz::checks::request(data));
