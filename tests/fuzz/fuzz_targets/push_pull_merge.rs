//! `push_pull_merge`: see `swim_fuzz::push_pull_merge` (tests/fuzz/src/lib.rs). The input type reads any bytes
//! (its `Arbitrary` implementation is the byte format of `swim_fuzz::format`), so seeds
//! written from real traffic replay as written.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: swim_fuzz::MergeInput| {
    swim_fuzz::push_pull_merge(&input);
});
