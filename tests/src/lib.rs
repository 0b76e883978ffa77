//! Cross-crate integration tests; see `tests/` in this crate.
