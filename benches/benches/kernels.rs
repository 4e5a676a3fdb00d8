//! dawin-kernels benches: achieved bandwidth of every kernel at ViT-B/32 size (88 M parameters),
//! next to a device-to-device copy that moves the same number of bytes, timed in the same run
//! with CUDA events.
//!
//! ```text
//! cargo bench -p dawin-benches --bench kernels
//! DAWIN_BENCH_PARAMS=10000000 cargo bench -p dawin-benches --bench kernels   # smaller model
//! ```
//!
//! Bytes moved = bytes read + bytes written by the kernel (lerp: 3·n·size, multi-lerp with K
//! outputs: (2 + K)·n·size, task arithmetic with M models: (M + 2)·n·size, cast:
//! n·(size_in + size_out), row statistics: the logits once plus 32 bytes per row). The copy
//! reference copies half that many bytes (it reads and writes each). Targets (issue 4): lerp and
//! multi-lerp at ≥ 85 % of the copy's bandwidth for f16 and bf16.
//!
//! Without a usable CUDA device this prints a `SKIPPED` line naming the cause and exits
//! successfully, or fails with `DAWIN_REQUIRE_GPU=1` (`dawin_kernels::harness`).

use criterion::{Criterion, Throughput};
use dawin_kernels::cudarc::driver::sys::CUevent_flags;
use dawin_kernels::{DeviceVec, Gpu, Param};
use half::{bf16, f16};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::time::Duration;

/// Parameters of the CLIP ViT-B/32 image encoder plus head, rounded (issue 4: "88 M").
const VIT_B32_PARAMS: usize = 88_000_000;
const MULTI_K: usize = 3;
const TASK_M: usize = 8;
const ROWS: usize = 50_000;
const CLASSES: usize = 1000;

fn main() {
    let Some(gpu) = dawin_kernels::harness::gpu_or_skip("the kernel benches not run") else {
        return;
    };
    let n: usize = std::env::var("DAWIN_BENCH_PARAMS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(VIT_B32_PARAMS);
    println!(
        "dawin-kernels benches on {} ({} SMs, driver CUDA {}), n = {n} parameters",
        gpu.name(),
        gpu.sm_count(),
        gpu.driver_version()
    );
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let mut rows = Vec::new();
    let mut rng = StdRng::seed_from_u64(7);

    bench_merges::<f16>(&gpu, &mut c, &mut rng, n, &mut rows);
    bench_merges::<bf16>(&gpu, &mut c, &mut rng, n, &mut rows);
    bench_merges::<f32>(&gpu, &mut c, &mut rng, n, &mut rows);
    bench_cast::<f32, f16>(&gpu, &mut c, &mut rng, n, &mut rows);
    bench_cast::<f16, f32>(&gpu, &mut c, &mut rng, n, &mut rows);
    bench_cast::<bf16, f16>(&gpu, &mut c, &mut rng, n, &mut rows);
    bench_row_stats(&gpu, &mut c, &mut rng, &mut rows);
    c.final_summary();

    println!();
    println!(
        "Bandwidth on {} (same run; copy = device-to-device copy moving the same bytes):",
        gpu.name()
    );
    println!(
        "{:<26} {:>10} {:>10} {:>10} {:>10} {:>7}  target",
        "kernel", "MB moved", "ms", "GB/s", "copy GB/s", "ratio"
    );
    for r in &rows {
        let target = match r.target {
            Some(t) if r.ratio() >= t => format!(">= {t:.2}: met"),
            Some(t) => format!(">= {t:.2}: MISSED"),
            None => String::new(),
        };
        println!(
            "{:<26} {:>10.1} {:>10.4} {:>10.1} {:>10.1} {:>7.3}  {target}",
            r.name,
            r.bytes as f64 / 1e6,
            r.ms,
            r.gbps(),
            r.copy_gbps(),
            r.ratio()
        );
    }
}

struct Row {
    name: String,
    bytes: u64,
    ms: f64,
    copy_ms: f64,
    target: Option<f64>,
}

impl Row {
    fn gbps(&self) -> f64 {
        self.bytes as f64 / (self.ms * 1e-3) / 1e9
    }
    fn copy_gbps(&self) -> f64 {
        self.bytes as f64 / (self.copy_ms * 1e-3) / 1e9
    }
    fn ratio(&self) -> f64 {
        self.gbps() / self.copy_gbps()
    }
}

/// Milliseconds per call of `f` over `iters` back-to-back calls, timed with CUDA events.
fn time_ms(gpu: &Gpu, iters: u64, f: &mut dyn FnMut()) -> f64 {
    let s = gpu.stream();
    let start = s
        .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
        .unwrap();
    for _ in 0..iters {
        f();
    }
    let end = s
        .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
        .unwrap();
    f64::from(start.elapsed_ms(&end).unwrap()) / iters as f64
}

/// Median of 15 timings of 10 calls each, after a warm-up.
fn median_ms(gpu: &Gpu, f: &mut dyn FnMut()) -> f64 {
    time_ms(gpu, 3, f);
    let mut v: Vec<f64> = (0..15).map(|_| time_ms(gpu, 10, f)).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// A criterion bench of `f` (GB/s from the byte count) plus its median time for the table.
fn bench(
    gpu: &Gpu,
    c: &mut Criterion,
    group: &str,
    name: &str,
    bytes: u64,
    f: &mut dyn FnMut(),
) -> f64 {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::BytesDecimal(bytes));
    g.bench_function(name, |b| {
        b.iter_custom(|iters| Duration::from_secs_f64(time_ms(gpu, iters, f) * iters as f64 * 1e-3))
    });
    g.finish();
    median_ms(gpu, f)
}

/// The copy reference for a kernel moving `bytes`: copies bytes / 2 (read + write = bytes).
fn bench_copy(gpu: &Gpu, c: &mut Criterion, group: &str, bytes: u64) -> f64 {
    // f16 elements as 2-byte units: bytes / 4 of them copy bytes / 2 bytes.
    let elems = (bytes / 4) as usize;
    let src = gpu.zeros::<f16>(elems).unwrap();
    let mut dst = gpu.zeros::<f16>(elems).unwrap();
    bench(gpu, c, group, "copy (same bytes)", bytes, &mut || {
        gpu.stream()
            .memcpy_dtod(src.view().as_bytes(), dst.view_mut().as_bytes_mut())
            .unwrap();
    })
}

fn random<T: Param>(gpu: &Gpu, rng: &mut StdRng, n: usize) -> DeviceVec<T> {
    let v: Vec<T> = (0..n)
        .map(|_| T::from_f32(rng.random_range(-1.0f32..1.0)))
        .collect();
    gpu.upload(&v).unwrap()
}

fn bench_merges<T: Param>(
    gpu: &Gpu,
    c: &mut Criterion,
    rng: &mut StdRng,
    n: usize,
    rows: &mut Vec<Row>,
) {
    let d = T::DTYPE.name();
    let size = std::mem::size_of::<T>() as u64;
    let target = (T::DTYPE != dawin_kernels::DType::F32).then_some(0.85);
    let a = random::<T>(gpu, rng, n);
    let b = random::<T>(gpu, rng, n);

    // lerp
    let bytes = 3 * n as u64 * size;
    let group = format!("lerp/{d}");
    let mut out = gpu.zeros::<T>(n).unwrap();
    let ms = bench(gpu, c, &group, "lerp", bytes, &mut || {
        gpu.lerp(&a.view(), &b.view(), 0.3, &mut out.view_mut())
            .unwrap()
    });
    let copy_ms = bench_copy(gpu, c, &group, bytes);
    rows.push(Row {
        name: format!("lerp {d}"),
        bytes,
        ms,
        copy_ms,
        target,
    });
    drop(out);

    // multi-lerp, K outputs
    let bytes = (2 + MULTI_K as u64) * n as u64 * size;
    let group = format!("multi_lerp/{d}");
    let mut outs: Vec<DeviceVec<T>> = (0..MULTI_K).map(|_| gpu.zeros::<T>(n).unwrap()).collect();
    let lambdas = [0.25f32, 0.5, 0.75];
    let ms = bench(
        gpu,
        c,
        &group,
        &format!("multi_lerp K={MULTI_K}"),
        bytes,
        &mut || {
            let mut views: Vec<_> = outs.iter_mut().map(|o| o.view_mut()).collect();
            gpu.multi_lerp(&a.view(), &b.view(), &lambdas, &mut views)
                .unwrap()
        },
    );
    let copy_ms = bench_copy(gpu, c, &group, bytes);
    rows.push(Row {
        name: format!("multi_lerp K={MULTI_K} {d}"),
        bytes,
        ms,
        copy_ms,
        target,
    });
    drop(outs);

    // task arithmetic, M models (a plays the base)
    let bytes = (TASK_M as u64 + 2) * n as u64 * size;
    let group = format!("task_arithmetic/{d}");
    let models: Vec<DeviceVec<T>> = (0..TASK_M).map(|_| random::<T>(gpu, rng, n)).collect();
    let weights = vec![0.3f32; TASK_M];
    let mut out = gpu.zeros::<T>(n).unwrap();
    let ms = bench(
        gpu,
        c,
        &group,
        &format!("task_arithmetic M={TASK_M}"),
        bytes,
        &mut || {
            let views: Vec<_> = models.iter().map(|m| m.view()).collect();
            gpu.task_arithmetic(&a.view(), &views, &weights, &mut out.view_mut())
                .unwrap()
        },
    );
    let copy_ms = bench_copy(gpu, c, &group, bytes);
    rows.push(Row {
        name: format!("task_arith M={TASK_M} {d}"),
        bytes,
        ms,
        copy_ms,
        target: None,
    });
}

fn bench_cast<S: Param, D: Param>(
    gpu: &Gpu,
    c: &mut Criterion,
    rng: &mut StdRng,
    n: usize,
    rows: &mut Vec<Row>,
) {
    let name = format!("cast {}->{}", S::DTYPE.name(), D::DTYPE.name());
    let bytes = n as u64 * (std::mem::size_of::<S>() + std::mem::size_of::<D>()) as u64;
    let src = random::<S>(gpu, rng, n);
    let mut dst = gpu.zeros::<D>(n).unwrap();
    let group = format!("cast/{}_{}", S::DTYPE.name(), D::DTYPE.name());
    let ms = bench(gpu, c, &group, "cast", bytes, &mut || {
        gpu.cast(&src.view(), &mut dst.view_mut()).unwrap()
    });
    let copy_ms = bench_copy(gpu, c, &group, bytes);
    rows.push(Row {
        name,
        bytes,
        ms,
        copy_ms,
        target: None,
    });
}

fn bench_row_stats(gpu: &Gpu, c: &mut Criterion, rng: &mut StdRng, rows: &mut Vec<Row>) {
    let logits = random::<f32>(gpu, rng, ROWS * CLASSES);
    let bytes = (ROWS * CLASSES * 4 + ROWS * 32) as u64;
    let group = "row_stats/f32";
    // Includes copying the statistics (1.6 MB) back to the host: row_stats returns them there.
    let ms = bench(
        gpu,
        c,
        group,
        &format!("row_stats {ROWS}x{CLASSES}"),
        bytes,
        &mut || {
            gpu.row_stats(&logits.view(), CLASSES, 0.9576).unwrap();
        },
    );
    let copy_ms = bench_copy(gpu, c, group, bytes);
    rows.push(Row {
        name: format!("row_stats {ROWS}x{CLASSES} +D2H"),
        bytes,
        ms,
        copy_ms,
        target: None,
    });
}
