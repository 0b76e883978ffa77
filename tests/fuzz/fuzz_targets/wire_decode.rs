//! `wire_decode`: see `swim_fuzz::wire_decode` (tests/fuzz/src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    swim_fuzz::wire_decode(data);
});
