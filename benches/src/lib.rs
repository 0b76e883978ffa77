//! Benchmarks for swim: see `benches/README.md`.
