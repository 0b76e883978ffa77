//! `tls_name_sans`: see `swim_fuzz::tls_name_sans` (tests/fuzz/src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    swim_fuzz::tls_name_sans(data);
});
