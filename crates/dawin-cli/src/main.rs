//! The `dawin` command-line tool (filled by issue 6).
fn main() {}
