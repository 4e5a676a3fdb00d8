//! What a machine without a usable GPU sees: clear errors instead of panics, and a CPU backend
//! that gives the `dawin-core` results. These tests also pass on a GPU machine (they then check
//! a device ordinal that does not exist).

use dawin_kernels::{Backend, Error, Gpu};
use half::{bf16, f16};

#[test]
fn missing_gpu_is_a_clear_error_not_a_panic() {
    // SAFETY: only tries to dlopen the driver library.
    let driver = unsafe { dawin_kernels::cudarc::driver::sys::is_culib_present() };
    match Gpu::new() {
        Ok(g) => println!("a CUDA device is present: {}", g.name()),
        Err(e) => {
            println!("Gpu::new() on this machine: {e}");
            assert!(e.is_no_gpu(), "unexpected error kind: {e:?}");
            let msg = e.to_string();
            if driver {
                assert!(msg.contains("CUDA"), "{msg}");
            } else {
                assert!(matches!(e, Error::NoDriver), "{e:?}");
                assert!(
                    msg.contains("no CUDA driver") && msg.contains("libcuda"),
                    "{msg}"
                );
            }
        }
    }
    let e = Gpu::new_with_ordinal(4096).unwrap_err();
    assert!(e.is_no_gpu(), "{e:?}");
    if driver {
        assert!(e.to_string().contains("4096"), "{e}");
    }
}

#[test]
fn backend_falls_back_to_the_cpu_with_the_reason() {
    let (backend, why) = Backend::detect();
    match &backend {
        Backend::Cuda(g) => {
            assert!(why.is_none());
            assert!(backend.describe().contains(g.name()));
        }
        Backend::Cpu => {
            let why = why.expect("a reason for not using the GPU");
            assert!(why.is_no_gpu());
            assert_eq!(backend.describe(), "CPU");
            assert!(!backend.is_gpu());
        }
    }
}

/// The detected backend (GPU or CPU) against the CPU references, including their errors.
#[test]
fn backend_matches_the_cpu_references() {
    let (backend, _) = Backend::detect();
    let n = 1037;
    let a: Vec<f16> = (0..n)
        .map(|i| f16::from_f32((i as f32 * 0.37).sin()))
        .collect();
    let b: Vec<f16> = (0..n)
        .map(|i| f16::from_f32((i as f32 * 0.11).cos()))
        .collect();

    let mut got = vec![f16::ZERO; n];
    let mut want = vec![f16::ZERO; n];
    backend.lerp(&a, &b, 0.3, &mut got).unwrap();
    dawin_core::merge::lerp(&a, &b, 0.3, &mut want).unwrap();
    assert_eq!(got, want);

    let lambdas = [0.0, 0.5, 1.0];
    let mut g3 = vec![vec![f16::ZERO; n]; 3];
    let mut w3 = vec![vec![f16::ZERO; n]; 3];
    {
        let mut gr: Vec<&mut [f16]> = g3.iter_mut().map(|v| v.as_mut_slice()).collect();
        backend.multi_lerp(&a, &b, &lambdas, &mut gr).unwrap();
        let mut wr: Vec<&mut [f16]> = w3.iter_mut().map(|v| v.as_mut_slice()).collect();
        dawin_core::merge::multi_lerp(&a, &b, &lambdas, &mut wr).unwrap();
    }
    assert_eq!(g3, w3);
    assert_eq!(g3[0], a, "λ = 0 copies a");
    assert_eq!(g3[2], b, "λ = 1 copies b");

    backend
        .task_arithmetic(&a, &[&b, &a], &[0.3, 0.6], &mut got)
        .unwrap();
    dawin_core::merge::task_arithmetic(&a, &[&b, &a], &[0.3, 0.6], &mut want).unwrap();
    assert_eq!(got, want);

    let mut gb = vec![bf16::ZERO; n];
    let mut wb = vec![bf16::ZERO; n];
    backend.cast(&a, &mut gb).unwrap();
    dawin_core::merge::cast(&a, &mut wb).unwrap();
    assert_eq!(gb, wb);

    let c = 10;
    let logits: Vec<f32> = (0..c * 7)
        .map(|i| ((i * 37 % 101) as f32) / 10.0 - 5.0)
        .collect();
    let labels: Vec<i64> = (0..7).map(|i| (i * 3 % c) as i64).collect();
    let gs = backend.row_stats(&logits, c, 0.9576).unwrap();
    let ws = dawin_core::stats::row_stats(&logits, c, 0.9576).unwrap();
    let gc = backend.cross_entropy(&logits, c, 0.9576, &labels).unwrap();
    let wc = dawin_core::stats::cross_entropy_hard(&logits, c, 0.9576, &labels).unwrap();
    if backend.is_gpu() {
        for (g, w) in gs.iter().zip(&ws) {
            assert_eq!(g.argmax, w.argmax);
            assert!(
                (g.entropy - w.entropy).abs() < 1e-4 && (g.logsumexp - w.logsumexp).abs() < 1e-4
            );
        }
        for (g, w) in gc.iter().zip(&wc) {
            assert!((g - w).abs() < 1e-4);
        }
    } else {
        assert_eq!(gs, ws);
        assert_eq!(gc, wc);
    }
}

#[test]
fn backend_errors_name_the_argument() {
    let (backend, _) = Backend::detect();
    let a = [1.0f32, 2.0];
    let b = [1.0f32, 2.0, 3.0];
    let mut out = [0.0f32; 2];
    assert!(
        backend.lerp(&a, &b, 0.5, &mut out).is_err(),
        "length mismatch"
    );
    assert!(
        backend.lerp(&a, &a, f32::NAN, &mut out).is_err(),
        "NaN lambda"
    );
    let mut logits = vec![0.5f32; 12];
    logits[7] = f32::NAN;
    let e = backend.row_stats(&logits, 4, 1.0).unwrap_err();
    let w = dawin_core::stats::row_stats(&logits, 4, 1.0).unwrap_err();
    assert_eq!(
        e.to_string(),
        w.to_string(),
        "NaN logits: the CPU reference's error"
    );
    assert!(
        backend.row_stats(&[1.0; 12], 5, 1.0).is_err(),
        "ragged matrix"
    );
    assert!(backend.row_stats(&[1.0; 12], 4, 0.0).is_err(), "T = 0");
    assert!(
        backend
            .cross_entropy(&[1.0; 12], 4, 1.0, &[0, 1, 4])
            .is_err(),
        "label out of range"
    );
}

/// With NVRTC on the loader path (as in `scripts/check_kernels.sh`), the library's run-time
/// compile path reproduces the shipped PTX; without it, this says so.
#[test]
fn nvrtc_reproduces_the_shipped_ptx() {
    use dawin_kernels::nvrtc::{compile_ptx, generate_shipped_ptx, nvrtc_available, nvrtc_version};
    use dawin_kernels::source::{SHIPPED_ARCH, SHIPPED_NVRTC, SOURCES};
    if !nvrtc_available() {
        println!("SKIPPED: libnvrtc not on the loader path; scripts/check_kernels.sh runs this");
        return;
    }
    let bad = dawin_kernels::source::KernelSource {
        file: "broken.cu",
        source: "extern \"C\" __global__ void k(float* x) { x[0] = undefined_name; }",
        shipped_ptx: "",
        arch: SHIPPED_ARCH,
        kernels: &[],
    };
    let e = compile_ptx(&bad, SHIPPED_ARCH).unwrap_err().to_string();
    assert!(
        e.contains("broken.cu") && e.contains("undefined_name"),
        "{e}"
    );
    let (major, minor) = nvrtc_version().unwrap();
    for src in SOURCES {
        if format!("{major}.{minor}") == SHIPPED_NVRTC {
            assert_eq!(
                generate_shipped_ptx(src).unwrap(),
                src.shipped_ptx,
                "ptx/{}.ptx is stale: run `cargo run -p dawin-kernels --example gen_ptx`",
                src.stem()
            );
        } else {
            let ptx = compile_ptx(src, src.arch).unwrap();
            for k in src.kernels {
                assert!(ptx.contains(&format!(".entry {}(", k.name)), "{}", k.name);
            }
        }
    }
}
