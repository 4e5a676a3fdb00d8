//! GPU tests: every kernel against its CPU reference from `dawin-core`, on fresh random data of
//! sizes that are not multiples of the vector width, with outputs pre-filled with a NaN sentinel
//! (every element must be written) and guard elements around them (none beyond may be).
//!
//! Tolerances: f32 within 1e-6 relative, f16/bf16 within one unit in the last place of the
//! output dtype (the kernels are designed to be bit-exact; the tolerance is the contract).
//! Row statistics: exact argmax and max logit, 1e-5 relative elsewhere (see `check_row_stats`).
//!
//! This file has its own `main` (harness = false) so that, without a device, the `SKIPPED` line
//! (with its cause; `DAWIN_REQUIRE_GPU=1` makes it a failure, see `dawin_kernels::harness`) is
//! printed by `cargo test` and not captured. The seed is
//! printed; `DAWIN_TEST_SEED=<n>` replays a run.

use dawin_core::stats::RowStats;
use dawin_core::{DType, OwnedTensor, Param, StateDict};
use dawin_kernels::source::MAX_MODELS;
use dawin_kernels::{ArenaLayout, DeviceArena, DeviceVec, Gpu, GpuOptions, HostArena, PtxSource};
use half::{bf16, f16};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::panic::{catch_unwind, AssertUnwindSafe};

type Test = fn(&Gpu, &mut StdRng);

const TESTS: &[(&str, Test)] = &[
    ("upload_download_round_trip", upload_download_round_trip),
    ("pinned_async_round_trip", pinned_async_round_trip),
    ("lerp_matches_cpu", lerp_matches_cpu),
    ("multi_lerp_matches_cpu", multi_lerp_matches_cpu),
    ("task_arithmetic_matches_cpu", task_arithmetic_matches_cpu),
    ("cast_matches_cpu", cast_matches_cpu),
    ("arena_merges_match_cpu", arena_merges_match_cpu),
    ("arena_from_state_dict", arena_from_state_dict),
    ("row_stats_match_cpu", row_stats_match_cpu),
    ("row_stats_extremes_and_ties", row_stats_extremes_and_ties),
    (
        "non_finite_logits_give_the_cpu_error",
        non_finite_logits_give_the_cpu_error,
    ),
    ("cross_entropy_matches_cpu", cross_entropy_matches_cpu),
    ("argument_errors", argument_errors),
    ("missing_ordinal_is_an_error", missing_ordinal_is_an_error),
    (
        "runtime_nvrtc_ptx_gives_the_same_results",
        runtime_nvrtc_ptx_gives_the_same_results,
    ),
];

fn main() {
    let Some(gpu) = dawin_kernels::harness::gpu_or_skip(&format!(
        "{} GPU tests not run: {}",
        TESTS.len(),
        TESTS.iter().map(|t| t.0).collect::<Vec<_>>().join(", ")
    )) else {
        return;
    };
    let seed = std::env::var("DAWIN_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    println!(
        "dawin-kernels GPU tests on {} (compute {}.{}, {} SMs, driver CUDA {}, {:?} PTX), \
         DAWIN_TEST_SEED={seed}",
        gpu.name(),
        gpu.compute_capability().0,
        gpu.compute_capability().1,
        gpu.sm_count(),
        gpu.driver_version(),
        gpu.ptx_source()
    );
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = Vec::new();
    for (i, (name, test)) in TESTS.iter().enumerate() {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let mut rng = StdRng::seed_from_u64(seed.wrapping_add(i as u64));
        let t0 = std::time::Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| test(&gpu, &mut rng)));
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        match r {
            Ok(()) => println!("test {name} ... ok ({ms:.0} ms)"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    if !failed.is_empty() {
        println!("{} GPU tests FAILED: {}", failed.len(), failed.join(", "));
        std::process::exit(1);
    }
    println!("all GPU tests passed");
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Sizes around the vector widths (4 f32 or 8 f16/bf16 per 16-byte vector, 8 per cast pack)
/// and larger odd sizes.
const SIZES: &[usize] = &[1, 3, 4, 5, 7, 8, 9, 15, 17, 255, 1023, 4097, 100_003];
/// Guard elements on each side of an output.
const GUARD: usize = 64;

fn random_vec<T: Param>(rng: &mut StdRng, n: usize, scale: f32) -> Vec<T> {
    (0..n)
        .map(|_| T::from_f32(rng.random_range(-1.0f32..1.0) * scale))
        .collect()
}

/// A NaN whose bits no kernel produces from finite inputs.
fn sentinel<T: Param>() -> T {
    match T::DTYPE {
        DType::F32 => bytemuck::cast::<u32, T>(0x7fc0_dead),
        DType::F16 => bytemuck::cast::<u16, T>(0x7e5a),
        DType::BF16 => bytemuck::cast::<u16, T>(0x7fda),
        _ => unreachable!("not a parameter dtype"),
    }
}

fn bits<T: Param>(x: T) -> u32 {
    match T::DTYPE {
        DType::F32 => bytemuck::cast::<T, u32>(x),
        _ => u32::from(bytemuck::cast::<T, u16>(x)),
    }
}

/// Distance in units in the last place between two 16-bit floats (sign-magnitude order).
fn ulps16(a: u16, b: u16) -> u32 {
    let key = |x: u16| -> i32 {
        if x & 0x8000 != 0 {
            -i32::from(x & 0x7fff)
        } else {
            i32::from(x)
        }
    };
    key(a).abs_diff(key(b))
}

/// GPU value `g` against CPU value `c`: f32 within 1e-6 relative, f16/bf16 within one ulp;
/// NaN only where the reference is NaN.
fn close<T: Param>(g: T, c: T) -> bool {
    let (gf, cf) = (g.to_f32(), c.to_f32());
    if cf.is_nan() || gf.is_nan() {
        return cf.is_nan() && gf.is_nan();
    }
    match T::DTYPE {
        DType::F32 => gf == cf || (gf - cf).abs() <= 1e-6 * cf.abs(),
        _ => ulps16(bits(g) as u16, bits(c) as u16) <= 1,
    }
}

fn assert_close<T: Param>(what: &str, gpu: &[T], cpu: &[T]) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths");
    let mut bad = 0;
    let mut exact = 0;
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        if bits(g) == bits(sentinel::<T>()) {
            panic!("{what}: element {i} of {} was not written", gpu.len());
        }
        if bits(g) == bits(c) {
            exact += 1;
        }
        if !close(g, c) {
            if bad < 5 {
                eprintln!("{what}: element {i}: gpu {g:?} cpu {c:?}");
            }
            bad += 1;
        }
    }
    assert_eq!(
        bad,
        0,
        "{what}: {bad} of {} elements outside tolerance",
        gpu.len()
    );
    if exact != gpu.len() {
        eprintln!(
            "note: {what}: {} of {} elements within tolerance but not bit-identical",
            gpu.len() - exact,
            gpu.len()
        );
    }
}

/// An output buffer of `n` elements between two guard regions, all set to the sentinel.
fn guarded_output<T: Param>(gpu: &Gpu, n: usize) -> DeviceVec<T> {
    gpu.upload(&vec![sentinel::<T>(); n + 2 * GUARD]).unwrap()
}

/// Downloads the middle `n` elements and checks the guards are untouched.
fn take_guarded<T: Param>(gpu: &Gpu, what: &str, buf: &DeviceVec<T>, n: usize) -> Vec<T> {
    let all = gpu.download(&buf.view()).unwrap();
    let s = bits(sentinel::<T>());
    assert!(
        all[..GUARD]
            .iter()
            .chain(&all[GUARD + n..])
            .all(|&x| bits(x) == s),
        "{what}: a kernel wrote outside its output"
    );
    all[GUARD..GUARD + n].to_vec()
}

fn for_each_dtype(f: &mut dyn FnMut(DType)) {
    for d in [DType::F32, DType::F16, DType::BF16] {
        f(d);
    }
}

macro_rules! dispatch {
    ($dtype:expr, $f:ident, $($arg:expr),*) => {
        match $dtype {
            DType::F32 => $f::<f32>($($arg),*),
            DType::F16 => $f::<f16>($($arg),*),
            DType::BF16 => $f::<bf16>($($arg),*),
            _ => unreachable!("not a parameter dtype"),
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Tests.

fn upload_download_round_trip(gpu: &Gpu, rng: &mut StdRng) {
    fn run<T: Param>(gpu: &Gpu, rng: &mut StdRng) {
        for &n in SIZES.iter().chain(&[0]) {
            let x: Vec<T> = random_vec(rng, n, 10.0);
            let d = gpu.upload(&x).unwrap();
            assert_eq!(d.len(), n);
            let back = gpu.download(&d.view()).unwrap();
            assert!(x.iter().zip(&back).all(|(a, b)| bits(*a) == bits(*b)));
            let z = gpu.zeros::<T>(n).unwrap();
            assert!(gpu
                .download(&z.view())
                .unwrap()
                .iter()
                .all(|&v| bits(v) == 0));
        }
    }
    for_each_dtype(&mut |d| dispatch!(d, run, gpu, rng));
}

/// Pinned buffers and queued copies: two buffers in flight, each reused for another batch as
/// soon as `as_mut_slice` lets it (the previous copy read it), every value back bit for bit;
/// `upload_into` into a reused device buffer; length mismatches refused.
fn pinned_async_round_trip(gpu: &Gpu, rng: &mut StdRng) {
    fn run<T: Param>(gpu: &Gpu, rng: &mut StdRng) {
        for &n in SIZES {
            let xs: Vec<Vec<T>> = (0..4).map(|_| random_vec(rng, n, 10.0)).collect();
            let mut pin = [gpu.pinned::<T>(n).unwrap(), gpu.pinned::<T>(n).unwrap()];
            let mut back = [gpu.pinned::<T>(n).unwrap(), gpu.pinned::<T>(n).unwrap()];
            assert!(pin[0].as_slice().unwrap().iter().all(|&v| bits(v) == 0));
            let mut dev = [gpu.zeros::<T>(n).unwrap(), gpu.zeros::<T>(n).unwrap()];
            for (i, x) in xs.iter().enumerate() {
                let s = i % 2;
                pin[s].as_mut_slice().unwrap().copy_from_slice(x);
                gpu.upload_async(&pin[s], &mut dev[s].view_mut()).unwrap();
                gpu.download_async(&dev[s].view(), &mut back[s]).unwrap();
                if i >= 1 {
                    let p = 1 - s;
                    let got = back[p].as_slice().unwrap();
                    assert!(xs[i - 1].iter().zip(got).all(|(a, b)| bits(*a) == bits(*b)));
                }
            }
            let last = back[1].as_slice().unwrap();
            assert!(xs[3].iter().zip(last).all(|(a, b)| bits(*a) == bits(*b)));
            let mut d = gpu.zeros::<T>(n + 3).unwrap();
            gpu.upload_into(&xs[0], &mut d.slice_mut(0..n).unwrap())
                .unwrap();
            let got = gpu.download(&d.slice(0..n).unwrap()).unwrap();
            assert!(xs[0].iter().zip(&got).all(|(a, b)| bits(*a) == bits(*b)));
            assert!(gpu.upload_async(&pin[0], &mut d.view_mut()).is_err());
            assert!(gpu.download_async(&d.view(), &mut back[0]).is_err());
        }
    }
    for_each_dtype(&mut |d| dispatch!(d, run, gpu, rng));
}

fn lerp_matches_cpu(gpu: &Gpu, rng: &mut StdRng) {
    fn run<T: Param>(gpu: &Gpu, rng: &mut StdRng) {
        for &n in SIZES {
            let lambdas = [0.0, 1.0, 0.5, rng.random_range(0.0f32..1.0), -0.25, 1.5];
            // offset 0: every pointer 16-byte aligned (vector path + tail);
            // offset 1: inputs misaligned (scalar path).
            for offset in [0usize, 1] {
                let a: Vec<T> = random_vec(rng, n + offset, 4.0);
                let b: Vec<T> = random_vec(rng, n + offset, 4.0);
                let (da, db) = (gpu.upload(&a).unwrap(), gpu.upload(&b).unwrap());
                for &l in &lambdas {
                    let what = format!("lerp {} n={n} offset={offset} λ={l}", T::DTYPE.name());
                    let mut out = guarded_output::<T>(gpu, n);
                    {
                        let va = da.slice(offset..offset + n).unwrap();
                        let vb = db.slice(offset..offset + n).unwrap();
                        let mut vo = out.slice_mut(GUARD..GUARD + n).unwrap();
                        gpu.lerp(&va, &vb, l, &mut vo).unwrap();
                    }
                    let got = take_guarded(gpu, &what, &out, n);
                    let mut want = vec![T::from_f32(0.0); n];
                    dawin_core::merge::lerp(&a[offset..], &b[offset..], l, &mut want).unwrap();
                    assert_close(&what, &got, &want);
                    if l == 0.0 || l == 1.0 {
                        let src = if l == 0.0 { &a[offset..] } else { &b[offset..] };
                        assert!(
                            got.iter().zip(src).all(|(g, s)| bits(*g) == bits(*s)),
                            "{what}: λ = {l} must copy its input bit for bit"
                        );
                    }
                }
            }
        }
    }
    for_each_dtype(&mut |d| dispatch!(d, run, gpu, rng));
}

fn multi_lerp_matches_cpu(gpu: &Gpu, rng: &mut StdRng) {
    fn run<T: Param>(gpu: &Gpu, rng: &mut StdRng) {
        for &n in &[1usize, 9, 1023, 100_003] {
            let a: Vec<T> = random_vec(rng, n, 2.0);
            let b: Vec<T> = random_vec(rng, n, 2.0);
            let (da, db) = (gpu.upload(&a).unwrap(), gpu.upload(&b).unwrap());
            // 20 outputs: two launches (16 + 4).
            for k in [1usize, 3, 16, 20] {
                let mut lambdas: Vec<f32> =
                    (0..k).map(|_| rng.random_range(-0.5f32..1.5)).collect();
                lambdas[0] = 0.0;
                if k > 1 {
                    lambdas[1] = 1.0;
                }
                let mut outs: Vec<DeviceVec<T>> =
                    (0..k).map(|_| guarded_output::<T>(gpu, n)).collect();
                {
                    let mut views: Vec<_> = outs
                        .iter_mut()
                        .map(|o| o.slice_mut(GUARD..GUARD + n).unwrap())
                        .collect();
                    gpu.multi_lerp(&da.view(), &db.view(), &lambdas, &mut views)
                        .unwrap();
                }
                let mut want: Vec<Vec<T>> = vec![vec![T::from_f32(0.0); n]; k];
                {
                    let mut refs: Vec<&mut [T]> =
                        want.iter_mut().map(|w| w.as_mut_slice()).collect();
                    dawin_core::merge::multi_lerp(&a, &b, &lambdas, &mut refs).unwrap();
                }
                for (j, (o, w)) in outs.iter().zip(&want).enumerate() {
                    let what = format!("multi_lerp {} n={n} K={k} output {j}", T::DTYPE.name());
                    let got = take_guarded(gpu, &what, o, n);
                    assert_close(&what, &got, w);
                }
            }
        }
    }
    for_each_dtype(&mut |d| dispatch!(d, run, gpu, rng));
}

fn task_arithmetic_matches_cpu(gpu: &Gpu, rng: &mut StdRng) {
    fn run<T: Param>(gpu: &Gpu, rng: &mut StdRng) {
        for &n in &[1usize, 7, 17, 4097, 100_003] {
            for m in [1usize, 3, 8, MAX_MODELS] {
                let base: Vec<T> = random_vec(rng, n, 1.0);
                let models: Vec<Vec<T>> = (0..m).map(|_| random_vec(rng, n, 1.0)).collect();
                let weights: Vec<f32> = (0..m).map(|_| rng.random_range(-1.0f32..1.0)).collect();
                let dbase = gpu.upload(&base).unwrap();
                let dmodels: Vec<DeviceVec<T>> =
                    models.iter().map(|x| gpu.upload(x).unwrap()).collect();
                let views: Vec<_> = dmodels.iter().map(|d| d.view()).collect();
                let mut out = guarded_output::<T>(gpu, n);
                gpu.task_arithmetic(
                    &dbase.view(),
                    &views,
                    &weights,
                    &mut out.slice_mut(GUARD..GUARD + n).unwrap(),
                )
                .unwrap();
                let what = format!("task_arithmetic {} n={n} M={m}", T::DTYPE.name());
                let got = take_guarded(gpu, &what, &out, n);
                let refs: Vec<&[T]> = models.iter().map(|x| x.as_slice()).collect();
                let mut want = vec![T::from_f32(0.0); n];
                dawin_core::merge::task_arithmetic(&base, &refs, &weights, &mut want).unwrap();
                assert_close(&what, &got, &want);
            }
        }
    }
    for_each_dtype(&mut |d| dispatch!(d, run, gpu, rng));
    // No model: the reference's error.
    let base = gpu.upload(&[1.0f32, 2.0]).unwrap();
    let mut out = gpu.zeros::<f32>(2).unwrap();
    let e = gpu
        .task_arithmetic(&base.view(), &[], &[], &mut out.view_mut())
        .unwrap_err();
    let w = dawin_core::merge::task_arithmetic::<f32>(&[1.0, 2.0], &[], &[], &mut [0.0; 2])
        .unwrap_err();
    assert_eq!(e.to_string(), w.to_string());
}

fn cast_matches_cpu(gpu: &Gpu, rng: &mut StdRng) {
    fn run<S: Param, D: Param>(gpu: &Gpu, rng: &mut StdRng) {
        // Random values plus the edge cases of the conversions: f16 max and overflow,
        // subnormals of every dtype, signed zeros, infinities, NaN, values halfway between two
        // bf16/f16 numbers (round to nearest even).
        let specials = [
            0.0f32,
            -0.0,
            65504.0,
            65520.0,
            70000.0,
            -70000.0,
            6.0e-8,
            3.0e-5,
            1.0e-40,
            -1.0e-39,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            1.0 + 1.0 / 256.0,
            1.0 + 3.0 / 256.0,
            1.0 + 1.0 / 2048.0,
            3.0e38,
        ];
        for &n in SIZES {
            let mut src: Vec<S> = random_vec(rng, n, 1000.0);
            for (i, &x) in specials.iter().enumerate().take(n) {
                src[(i * 7919) % n] = S::from_f32(x);
            }
            let dsrc = gpu.upload(&src).unwrap();
            let mut out = guarded_output::<D>(gpu, n);
            gpu.cast(&dsrc.view(), &mut out.slice_mut(GUARD..GUARD + n).unwrap())
                .unwrap();
            let what = format!("cast {} -> {} n={n}", S::DTYPE.name(), D::DTYPE.name());
            // The sentinel check would fire on NaN inputs: compare by hand.
            let all = gpu.download(&out.view()).unwrap();
            let s = bits(sentinel::<D>());
            assert!(all[..GUARD]
                .iter()
                .chain(&all[GUARD + n..])
                .all(|&x| bits(x) == s));
            let got = &all[GUARD..GUARD + n];
            let mut want = vec![D::from_f32(0.0); n];
            dawin_core::merge::cast(&src, &mut want).unwrap();
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    close(g, w) && (w.to_f32().is_nan() || bits(g) != s),
                    "{what}: element {i}: src {:?} gpu {g:?} cpu {w:?}",
                    src[i]
                );
            }
        }
    }
    macro_rules! pairs {
        ($($s:ty => $d:ty),*) => { $( run::<$s, $d>(gpu, rng); )* };
    }
    pairs!(f32 => f16, f32 => bf16, f16 => f32, bf16 => f32, f16 => bf16, bf16 => f16,
           f32 => f32, f16 => f16, bf16 => bf16);
}

fn random_arena<T: Param>(rng: &mut StdRng, shapes: &[(&str, Vec<usize>)]) -> HostArena {
    let data: Vec<Vec<T>> = shapes
        .iter()
        .map(|(_, s)| random_vec(rng, s.iter().product(), 1.0))
        .collect();
    let t: Vec<(&str, &[usize], &[T])> = shapes
        .iter()
        .zip(&data)
        .map(|((n, s), d)| (*n, s.as_slice(), d.as_slice()))
        .collect();
    HostArena::from_slices(&t).unwrap()
}

fn arena_merges_match_cpu(gpu: &Gpu, rng: &mut StdRng) {
    fn run<T: Param>(gpu: &Gpu, rng: &mut StdRng) {
        let shapes = vec![
            ("visual.conv1.weight", vec![7, 3, 5, 5]),
            ("visual.class_embedding", vec![77]),
            ("visual.ln_pre.bias", vec![1]),
            (
                "visual.transformer.resblocks.0.attn.in_proj_weight",
                vec![33, 11],
            ),
            ("classification_head.weight", vec![10, 13]),
            ("classification_head.bias", vec![10]),
        ];
        let ha = random_arena::<T>(rng, &shapes);
        let hb = random_arena::<T>(rng, &shapes);
        let (da, db) = (
            DeviceArena::upload(gpu, &ha).unwrap(),
            DeviceArena::upload(gpu, &hb).unwrap(),
        );
        let layout = ha.layout().clone();
        let name = T::DTYPE.name();

        // lerp: one launch over the whole arena; padding stays zero.
        let mut out = DeviceArena::zeros(gpu, layout.clone()).unwrap();
        gpu.lerp_arena(&da, &db, 0.37, &mut out).unwrap();
        let got = out.to_host(gpu).unwrap();
        let mut want = HostArena::zeros(layout.clone());
        dawin_core::merge::lerp(
            ha.as_slice::<T>().unwrap(),
            hb.as_slice::<T>().unwrap(),
            0.37,
            want.as_mut_slice::<T>().unwrap(),
        )
        .unwrap();
        assert!(got.padding_is_zero(), "lerp_arena {name}: padding written");
        for e in layout.entries() {
            assert_close(
                &format!("lerp_arena {name} {}", e.name),
                got.tensor::<T>(&e.name).unwrap(),
                want.tensor::<T>(&e.name).unwrap(),
            );
        }
        // A tensor view of the merged arena is what a forward pass reads.
        let w = out.tensor::<T>("classification_head.weight").unwrap();
        assert_eq!(w.len(), 130);
        assert_close(
            "tensor view",
            &gpu.download(&w).unwrap(),
            want.tensor::<T>("classification_head.weight").unwrap(),
        );

        // multi-lerp, task arithmetic.
        let lambdas = [0.1f32, 0.5, 0.9];
        let mut o1 = DeviceArena::zeros(gpu, layout.clone()).unwrap();
        let mut o2 = DeviceArena::zeros(gpu, layout.clone()).unwrap();
        let mut o3 = DeviceArena::zeros(gpu, layout.clone()).unwrap();
        gpu.multi_lerp_arena(&da, &db, &lambdas, &mut [&mut o1, &mut o2, &mut o3])
            .unwrap();
        for (o, &l) in [&o1, &o2, &o3].into_iter().zip(&lambdas) {
            let mut w = HostArena::zeros(layout.clone());
            dawin_core::merge::lerp(
                ha.as_slice::<T>().unwrap(),
                hb.as_slice::<T>().unwrap(),
                l,
                w.as_mut_slice::<T>().unwrap(),
            )
            .unwrap();
            let g = o.to_host(gpu).unwrap();
            assert!(g.padding_is_zero());
            assert_close(
                &format!("multi_lerp_arena {name} λ={l}"),
                g.as_slice::<T>().unwrap(),
                w.as_slice::<T>().unwrap(),
            );
        }
        let hc = random_arena::<T>(rng, &shapes);
        let dc = DeviceArena::upload(gpu, &hc).unwrap();
        let mut ta = DeviceArena::zeros(gpu, layout.clone()).unwrap();
        gpu.task_arithmetic_arena(&da, &[&db, &dc], &[0.6, 0.6], &mut ta)
            .unwrap();
        let mut w = HostArena::zeros(layout.clone());
        dawin_core::merge::task_arithmetic(
            ha.as_slice::<T>().unwrap(),
            &[hb.as_slice::<T>().unwrap(), hc.as_slice::<T>().unwrap()],
            &[0.6, 0.6],
            w.as_mut_slice::<T>().unwrap(),
        )
        .unwrap();
        let g = ta.to_host(gpu).unwrap();
        assert!(g.padding_is_zero());
        assert_close(
            &format!("task_arithmetic_arena {name}"),
            g.as_slice::<T>().unwrap(),
            w.as_slice::<T>().unwrap(),
        );

        // Cast of the whole arena to f32: one launch, same element offsets.
        let mut f = DeviceArena::zeros(gpu, layout.with_dtype(DType::F32).unwrap()).unwrap();
        gpu.cast_arena(&da, &mut f).unwrap();
        let g = f.to_host(gpu).unwrap();
        for e in layout.entries() {
            let want: Vec<f32> = ha
                .tensor::<T>(&e.name)
                .unwrap()
                .iter()
                .map(|x| x.to_f32())
                .collect();
            assert_eq!(
                g.tensor::<f32>(&e.name).unwrap(),
                &want[..],
                "cast_arena {}",
                e.name
            );
        }

        // Mismatched arenas are refused, naming the tensor.
        let other =
            ArenaLayout::new(T::DTYPE, vec![("visual.conv1.weight", vec![7, 3, 5, 4])]).unwrap();
        let dx = DeviceArena::zeros(gpu, other).unwrap();
        let e = gpu
            .lerp_arena(&da, &dx, 0.5, &mut out)
            .unwrap_err()
            .to_string();
        assert!(e.contains("lerp: b"), "{e}");
    }
    for_each_dtype(&mut |d| dispatch!(d, run, gpu, rng));
}

fn arena_from_state_dict(gpu: &Gpu, rng: &mut StdRng) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ft.safetensors");
    let w: Vec<f32> = random_vec(rng, 3 * 37, 1.0);
    let b: Vec<f32> = random_vec(rng, 37, 1.0);
    dawin_core::write_safetensors(
        &path,
        &[
            OwnedTensor::from_f32("head.weight", vec![37, 3], &w),
            OwnedTensor::from_f32("head.bias", vec![37], &b),
        ],
        None,
    )
    .unwrap();
    let sd = StateDict::open(&path).unwrap();
    for dtype in [None, Some(DType::F16), Some(DType::BF16)] {
        let d = DeviceArena::from_state_dict(gpu, &sd, dtype).unwrap();
        let h = HostArena::from_state_dict(&sd, dtype).unwrap();
        assert_eq!(d.to_host(gpu).unwrap(), h, "dtype {dtype:?}");
    }
}

fn random_logits(rng: &mut StdRng, n: usize, c: usize, scale: f32) -> Vec<f32> {
    (0..n * c)
        .map(|_| {
            // Sum of uniforms: roughly normal, with a few large margins.
            let x: f32 = (0..4).map(|_| rng.random_range(-1.0f32..1.0)).sum();
            x * scale
        })
        .collect()
}

/// Row statistics within tolerance: argmax and max logit exact; log-sum-exp 1e-5 relative;
/// probabilities 1e-5 absolute; entropy 1e-5 * max(1, max|z/T|) absolute (the reference computes
/// it as lse − Σ p·z/T, which cancels to that precision).
fn check_row_stats(
    what: &str,
    logits: &[f32],
    c: usize,
    t: f32,
    got: &[RowStats],
    want: &[RowStats],
) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let row = &logits[i * c..(i + 1) * c];
        let scale = row.iter().fold(1.0f32, |m, z| m.max((z / t).abs()));
        let ok = g.argmax == w.argmax
            && g.max_logit == w.max_logit
            && (g.logsumexp - w.logsumexp).abs() <= 1e-5 * w.logsumexp.abs().max(1.0)
            && (g.max_prob - w.max_prob).abs() <= 1e-5
            && (g.top1_minus_top2 - w.top1_minus_top2).abs() <= 1e-5
            && (g.entropy - w.entropy).abs() <= 1e-5 * scale;
        assert!(ok, "{what}: row {i}: gpu {g:?} cpu {w:?}");
    }
}

fn row_stats_match_cpu(gpu: &Gpu, rng: &mut StdRng) {
    for &c in &[1usize, 2, 31, 32, 33, 200, 1000, 4099] {
        for &n in &[1usize, 7, 9, 257] {
            for &t in &[0.9576f32, 0.5, 2.0] {
                let logits = random_logits(rng, n, c, 3.0);
                let d = gpu.upload(&logits).unwrap();
                let got = gpu.row_stats(&d.view(), c, t).unwrap();
                let want = dawin_core::stats::row_stats(&logits, c, t).unwrap();
                check_row_stats(
                    &format!("row_stats N={n} C={c} T={t}"),
                    &logits,
                    c,
                    t,
                    &got,
                    &want,
                );
            }
        }
    }
    // An empty matrix: the reference's error.
    let d = gpu.upload::<f32>(&[]).unwrap();
    let e = gpu.row_stats(&d.view(), 10, 1.0).unwrap_err().to_string();
    let w = dawin_core::stats::row_stats(&[], 10, 1.0)
        .unwrap_err()
        .to_string();
    assert_eq!(e, w);
}

fn row_stats_extremes_and_ties(gpu: &Gpu, rng: &mut StdRng) {
    let c = 1000;
    let mut logits = Vec::new();
    // ±1e4 logits, a confident row, an all-equal row, a two-way tie, a row with the max last.
    logits.extend((0..c).map(|i| if i % 2 == 0 { 1.0e4 } else { -1.0e4 }));
    logits.extend((0..c).map(|i| {
        if i == 17 {
            60.0
        } else {
            rng.random_range(-1.0f32..1.0)
        }
    }));
    logits.extend(std::iter::repeat_n(0.25f32, c));
    logits.extend((0..c).map(|i| if i == 3 || i == 900 { 5.0 } else { 0.0 }));
    logits.extend((0..c).map(|i| i as f32 * 1e-3));
    let n = logits.len() / c;
    let d = gpu.upload(&logits).unwrap();
    for t in [1.0f32, 0.9733] {
        let got = gpu.row_stats(&d.view(), c, t).unwrap();
        let want = dawin_core::stats::row_stats(&logits, c, t).unwrap();
        check_row_stats(&format!("extremes T={t}"), &logits, c, t, &got, &want);
        assert_eq!(got[2].argmax, 0, "all-equal row: first index");
        assert!((got[2].entropy - (c as f32).ln()).abs() < 1e-4);
        assert_eq!(got[3].argmax, 3, "tie: first index");
        assert_eq!(got[3].top1_minus_top2, 0.0, "tie: top1 - top2");
        assert_eq!(got[4].argmax as usize, c - 1);
        assert!(got
            .iter()
            .all(|s| s.entropy.is_finite() && s.entropy >= 0.0));
    }
    assert_eq!(n, 5);
}

fn non_finite_logits_give_the_cpu_error(gpu: &Gpu, rng: &mut StdRng) {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let (n, c) = (9, 33);
        let mut logits = random_logits(rng, n, c, 1.0);
        logits[4 * c + 20] = bad;
        logits[6 * c + 2] = bad;
        let d = gpu.upload(&logits).unwrap();
        let g = gpu.row_stats(&d.view(), c, 1.0).unwrap_err().to_string();
        let w = dawin_core::stats::row_stats(&logits, c, 1.0)
            .unwrap_err()
            .to_string();
        assert_eq!(g, w, "logit {bad}");
        let labels: Vec<i64> = (0..n as i64).map(|i| i % c as i64).collect();
        let g = gpu
            .cross_entropy(&d.view(), c, 1.0, &labels)
            .unwrap_err()
            .to_string();
        let w = dawin_core::stats::cross_entropy_hard(&logits, c, 1.0, &labels)
            .unwrap_err()
            .to_string();
        assert_eq!(g, w, "cross-entropy, logit {bad}");
    }
}

fn cross_entropy_matches_cpu(gpu: &Gpu, rng: &mut StdRng) {
    for &c in &[1usize, 10, 1000] {
        for &n in &[1usize, 33, 500] {
            let logits = random_logits(rng, n, c, 3.0);
            let labels: Vec<i64> = (0..n).map(|_| rng.random_range(0..c as i64)).collect();
            let d = gpu.upload(&logits).unwrap();
            for t in [1.0f32, 0.9576] {
                let got = gpu.cross_entropy(&d.view(), c, t, &labels).unwrap();
                let want = dawin_core::stats::cross_entropy_hard(&logits, c, t, &labels).unwrap();
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                        "cross_entropy N={n} C={c} T={t} sample {i}: gpu {g} cpu {w}"
                    );
                }
            }
            let mut bad = labels.clone();
            bad[n - 1] = c as i64;
            let e = gpu
                .cross_entropy(&d.view(), c, 1.0, &bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("sample {}", n - 1)), "{e}");
        }
    }
}

fn argument_errors(gpu: &Gpu, rng: &mut StdRng) {
    let a = gpu.upload::<f16>(&random_vec(rng, 10, 1.0)).unwrap();
    let b = gpu.upload::<f16>(&random_vec(rng, 11, 1.0)).unwrap();
    let mut o = gpu.zeros::<f16>(10).unwrap();
    let e = gpu
        .lerp(&a.view(), &b.view(), 0.5, &mut o.view_mut())
        .unwrap_err();
    assert!(e.to_string().contains("`b`"), "{e}");
    let e = gpu
        .lerp(&a.view(), &a.view(), f32::NAN, &mut o.view_mut())
        .unwrap_err();
    assert!(e.to_string().contains("`lambda`"), "{e}");
    let models: Vec<_> = (0..MAX_MODELS + 1).map(|_| a.view()).collect();
    let w = vec![0.1; MAX_MODELS + 1];
    let e = gpu
        .task_arithmetic(&a.view(), &models, &w, &mut o.view_mut())
        .unwrap_err();
    assert!(e.to_string().contains("at most"), "{e}");
    let l = gpu.upload(&[1.0f32, 2.0, 3.0]).unwrap();
    assert!(gpu.row_stats(&l.view(), 2, 1.0).is_err());
    assert!(gpu.row_stats(&l.view(), 3, 0.0).is_err());
    assert!(gpu.row_stats(&l.view(), 0, 1.0).is_err());
}

fn missing_ordinal_is_an_error(_gpu: &Gpu, _rng: &mut StdRng) {
    let e = Gpu::new_with_ordinal(4096).unwrap_err();
    assert!(e.is_no_gpu(), "{e:?}");
    assert!(e.to_string().contains("4096"), "{e}");
}

fn runtime_nvrtc_ptx_gives_the_same_results(gpu: &Gpu, rng: &mut StdRng) {
    use dawin_kernels::nvrtc::{nvrtc_available, nvrtc_newer_than_driver, nvrtc_version};
    if !nvrtc_available() {
        println!("  (NVRTC not on the loader path: run-time compilation not checked)");
        return;
    }
    let nvrtc = nvrtc_version().unwrap();
    if nvrtc_newer_than_driver(nvrtc, gpu.driver_version_number()) {
        println!(
            "  SKIPPED: the NVRTC found ({}.{}) is newer than the driver (CUDA {}): the driver \
             would reject its PTX; run-time compilation not checked",
            nvrtc.0,
            nvrtc.1,
            gpu.driver_version()
        );
        return;
    }
    let g2 = Gpu::with_options(GpuOptions {
        ordinal: gpu.context().ordinal(),
        ptx: Some(PtxSource::Nvrtc),
    })
    .unwrap();
    assert_eq!(g2.ptx_source(), PtxSource::Nvrtc);
    let n = 100_003;
    let a: Vec<bf16> = random_vec(rng, n, 1.0);
    let b: Vec<bf16> = random_vec(rng, n, 1.0);
    let mut outs = Vec::new();
    for g in [gpu, &g2] {
        let (da, db) = (g.upload(&a).unwrap(), g.upload(&b).unwrap());
        let mut o = g.zeros::<bf16>(n).unwrap();
        g.lerp(&da.view(), &db.view(), 0.3, &mut o.view_mut())
            .unwrap();
        outs.push(g.download(&o.view()).unwrap());
    }
    assert!(outs[0]
        .iter()
        .zip(&outs[1])
        .all(|(x, y)| x.to_bits() == y.to_bits()));
}
