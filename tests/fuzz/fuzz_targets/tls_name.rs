//! `tls_name`: see `swim_fuzz::tls_name` (tests/fuzz/src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    swim_fuzz::tls_name(data);
});
