//! `--device`: where the ViT forward runs, and the models uploaded there.
use crate::args::CliPrecision;
use dawin::cuda::CudaClassifier;
use dawin::vit::ClipClassifier;
use dawin::{Error, Result};
use std::sync::Arc;

/// Where the ViT forward runs: the CPU, or the CUDA device of this ordinal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Device {
    Cpu,
    Cuda(usize),
}

/// Resolves `--device`. `auto` stays on the CPU (and says why): the CUDA forward has not been
/// validated on a GPU yet (docs/gpu-runs.md), so it runs only when asked for with `cuda` or
/// `cuda:N`.
pub(crate) fn resolve_device(dev: &str) -> Result<Device> {
    let bad = |d: &str| {
        Error::invalid(
            "--device",
            format!("`{d}`: expected auto, cpu, cuda or cuda:N"),
        )
    };
    match dev {
        "cpu" => Ok(Device::Cpu),
        "auto" => {
            eprintln!(
                "device: cpu (auto; the CUDA forward has not been validated on a GPU yet: \
                 --device cuda runs it)"
            );
            Ok(Device::Cpu)
        }
        "cuda" => Ok(Device::Cuda(0)),
        d => match d.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => Ok(Device::Cuda(n)),
            _ => Err(bad(d)),
        },
    }
}

/// The GPU of ordinal `n`; without one, an error naming `--device`.
fn open_gpu(n: usize) -> Result<Arc<dawin::kernels::Gpu>> {
    dawin::kernels::Gpu::new_with_ordinal(n)
        .map(Arc::new)
        .map_err(|e| Error::invalid("--device", format!("cuda:{n}: {e}")))
}

/// `m0`, `m1` on GPU `n` in `precision`, and the device as the report names it.
pub(crate) fn on_gpu(
    n: usize,
    m0: &ClipClassifier,
    m1: &ClipClassifier,
    precision: CliPrecision,
) -> Result<(CudaClassifier, CudaClassifier, String)> {
    let gpu = open_gpu(n)?;
    let name = format!("cuda:{n} ({}, {:?})", gpu.name(), precision);
    // θ0 and θ1 uploaded once, together: merges then run on the device (CudaClassifier::pair).
    let (g0, g1) = CudaClassifier::pair(gpu, m0, m1, precision.get())?;
    Ok((g0, g1, name))
}

/// θ0 and the multi-task encoders `models` uploaded once to GPU `n` in `precision` (for
/// `dawin::mtl::evaluate_mtl_device`), and the device as the report names it.
pub(crate) fn mtl_on_gpu(
    n: usize,
    base: &ClipClassifier,
    models: &[&dawin::vit::CheckpointEncoder],
    precision: CliPrecision,
) -> Result<(dawin::cuda::mtl::CudaEncoders, String)> {
    let gpu = open_gpu(n)?;
    let name = format!("cuda:{n} ({}, {:?})", gpu.name(), precision);
    let enc = dawin::cuda::mtl::CudaEncoders::upload(gpu, base, models, precision.get())?;
    Ok((enc, name))
}
