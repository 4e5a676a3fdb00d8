//! CPU lerp θ(λ) = (1 − λ)θ0 + λθ1 (dawin-core's reference merge) next to a plain memory copy.
//!
//! Both move bytes through memory: lerp reads θ0 and θ1 and writes θ(λ) (3 arrays); the copy
//! reads and writes the same number of bytes (1.5 arrays' worth each way), with the same thread
//! pool (rayon, all cores). GB/s counts bytes read plus bytes written. Criterion reports each; a
//! table at the end gives, from timings taken in the same run, GB/s and lerp/copy ratios
//! (target ≥ 0.70 for f32 and bf16). Size: `LERP_BENCH_ELEMS` parameters (default 16 Mi, far
//! larger than the caches).
//!
//! Run: `cargo bench -p dawin-benches --bench lerp`.

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use dawin_benches::median_secs;
use dawin_core::{merge, Param};
use half::{bf16, f16};
use rayon::prelude::*;

fn elems() -> usize {
    std::env::var("LERP_BENCH_ELEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16 << 20)
}

/// Parallel copy in the same chunking as the merges.
fn par_copy(src: &[u8], dst: &mut [u8]) {
    dst.par_chunks_mut(256 << 10)
        .zip(src.par_chunks(256 << 10))
        .for_each(|(d, s)| d.copy_from_slice(s));
}

struct Case<T> {
    a: Vec<T>,
    b: Vec<T>,
    out: Vec<T>,
    /// Copy buffers of 1.5 arrays each, so copy moves as many bytes as lerp.
    src: Vec<u8>,
    dst: Vec<u8>,
}

impl<T: Param> Case<T> {
    fn new(n: usize) -> Self {
        let a: Vec<T> = (0..n)
            .map(|i| T::from_f32((i % 1000) as f32 * 1e-3))
            .collect();
        let b: Vec<T> = (0..n)
            .map(|i| T::from_f32((i % 777) as f32 * -1e-3))
            .collect();
        let bytes = n * std::mem::size_of::<T>() * 3 / 2;
        Case {
            a,
            b,
            out: vec![T::from_f32(0.0); n],
            src: vec![1u8; bytes],
            dst: vec![0u8; bytes],
        }
    }
    fn moved_bytes(&self) -> usize {
        3 * self.a.len() * std::mem::size_of::<T>()
    }
    fn lerp(&mut self) {
        merge::lerp(&self.a, &self.b, black_box(0.37), &mut self.out).unwrap();
    }
    fn copy(&mut self) {
        par_copy(&self.src, &mut self.dst);
    }
}

fn bench<T: Param>(c: &mut Criterion, name: &str, n: usize) -> (f64, f64) {
    let mut case = Case::<T>::new(n);
    let mut g = c.benchmark_group(format!("lerp_{name}"));
    g.sample_size(10);
    g.throughput(Throughput::Bytes(case.moved_bytes() as u64));
    g.bench_function("lerp", |bch| bch.iter(|| case.lerp()));
    g.bench_function("copy", |bch| bch.iter(|| case.copy()));
    g.finish();
    let gb = case.moved_bytes() as f64 / 1e9;
    let lerp = gb / median_secs(9, || case.lerp());
    let copy = gb / median_secs(9, || case.copy());
    (lerp, copy)
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let n = elems();
    let rows = [
        ("f32", bench::<f32>(&mut c, "f32", n)),
        ("f16", bench::<f16>(&mut c, "f16", n)),
        ("bf16", bench::<bf16>(&mut c, "bf16", n)),
    ];
    c.final_summary();
    println!(
        "\nCPU lerp vs memory copy, {n} parameters, {} threads (same run)",
        rayon::current_num_threads()
    );
    println!("| dtype | lerp GB/s | copy GB/s | lerp / copy |");
    println!("|---|---|---|---|");
    for (name, (l, cp)) in rows {
        println!("| {name} | {l:.2} | {cp:.2} | {:.2} |", l / cp);
    }
}
