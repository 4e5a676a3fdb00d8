//! Criterion benches for the dawin-rs workspace live in `benches/benches/`; this library is empty.
//!
//! Run them with `cargo bench -p dawin-benches --bench <name>`.
