//! Criterion benches for the dawin-rs workspace live in `benches/benches/`; this library holds
//! what they share.
//!
//! Run them with `cargo bench -p dawin-benches --bench <name>`.

use std::time::Instant;

/// Median wall-clock seconds of `reps` runs of `f`, after one warm-up run. The benches use it to
/// time the rows of the ratio tables they print, all in the same run.
pub fn median_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t[t.len() / 2]
}
