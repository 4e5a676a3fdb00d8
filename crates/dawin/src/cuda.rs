//! The pipeline's models on a GPU: [`CudaClassifier`] runs a CLIP classifier's forward with
//! [`dawin_vit::cuda::CudaVit`] (hand-written kernels, f16 or bf16 with f32 accumulation) and
//! implements [`Model`] and [`Interpolate`], so [`crate::eval::evaluate`] runs unchanged on it:
//!
//! * `forward`: the CUDA forward of the model's weights;
//! * `interpolate(θ1, λ)`: `θ(λ) = (1 − λ)θ0 + λθ1` merged on the CPU in f32 (the reference
//!   merge, exact at λ = 0 and 1), then uploaded;
//! * `per_sample_forward`: θ0 and θ1 uploaded once, each batch through
//!   [`CudaVit::forward_blended`] (sample i through θ(λ_i), no merge).
//!
//! Logits differ from the CPU's by the f16/bf16 rounding of weights and activations (the host
//! interpreter of the launch plan gives 7.6e-4 relative in f16 and 7.7e-3 in bf16 at ViT-B/32
//! size). **This path has not run on a GPU yet** (see docs/gpu-runs.md).
use crate::error::{Error, Result};
use crate::model::{Interpolate, Model, PerSampleForward};
use dawin_kernels::Gpu;
use dawin_vit::cuda::{CudaError, CudaVit, Precision};
use dawin_vit::ClipClassifier;
use std::sync::Arc;

fn cuda_err(e: CudaError) -> Error {
    if e.is_no_gpu() {
        Error::invalid("--device", format!("no usable CUDA device: {e}"))
    } else {
        Error::invalid("cuda", e.to_string())
    }
}

/// A CLIP classifier with its weights on the host (for merges and checks) and on a GPU (for the
/// forward).
pub struct CudaClassifier {
    host: ClipClassifier,
    vit: CudaVit,
    precision: Precision,
}

impl CudaClassifier {
    /// Uploads `host` to `gpu` in `precision`. Errors: a config the kernels cannot run (named),
    /// a GPU below compute capability 8.0, a failed upload.
    pub fn new(gpu: Arc<Gpu>, host: ClipClassifier, precision: Precision) -> Result<Self> {
        if !host.head_normalize() {
            return Err(Error::invalid(
                "--device",
                "the CUDA forward applies the head to L2-normalised features; this model's head \
                 has normalize = false: run it on the CPU (--device cpu)",
            ));
        }
        let vit =
            CudaVit::new(gpu, host.config(), &[host.weights()], precision).map_err(cuda_err)?;
        Ok(CudaClassifier {
            host,
            vit,
            precision,
        })
    }

    /// The host copy.
    pub fn host(&self) -> &ClipClassifier {
        &self.host
    }

    /// The precision of the forward.
    pub fn precision(&self) -> Precision {
        self.precision
    }
}

impl Model for CudaClassifier {
    fn num_classes(&self) -> usize {
        self.host.config().num_classes
    }
    fn input_numel(&self) -> usize {
        self.host.config().image_numel()
    }
    fn forward(&self, inputs: &[f32], batch: usize) -> Result<Vec<f32>> {
        Ok(self
            .vit
            .forward(inputs, batch, false)
            .map_err(cuda_err)?
            .logits)
    }
}

/// θ0 and θ1 on the GPU for [`CudaVit::forward_blended`].
struct CudaBlend(CudaVit);

impl PerSampleForward for CudaBlend {
    fn forward(&self, inputs: &[f32], batch: usize, lambdas: &[f32]) -> Result<Vec<f32>> {
        Ok(self
            .0
            .forward_blended(inputs, batch, lambdas, false)
            .map_err(cuda_err)?
            .logits)
    }
}

impl Interpolate for CudaClassifier {
    fn check_compatible(&self, other: &Self) -> Result<()> {
        self.host.check_compatible(&other.host)?;
        if self.precision != other.precision {
            return Err(Error::invalid(
                "cuda",
                format!(
                    "θ0 runs in {:?}, θ1 in {:?}",
                    self.precision, other.precision
                ),
            ));
        }
        Ok(())
    }
    fn interpolate(&self, other: &Self, lambda: f32) -> Result<Self> {
        let merged = self.host.interpolate(&other.host, lambda)?;
        CudaClassifier::new(self.vit.gpu().clone(), merged, self.precision)
    }
    fn per_sample_forward(&self, other: &Self) -> Option<Result<Box<dyn PerSampleForward + '_>>> {
        Some(self.check_compatible(other).and_then(|()| {
            let vit = CudaVit::new(
                self.vit.gpu().clone(),
                self.host.config(),
                &[self.host.weights(), other.host.weights()],
                self.precision,
            )
            .map_err(cuda_err)?;
            Ok(Box::new(CudaBlend(vit)) as Box<dyn PerSampleForward>)
        }))
    }
    fn relative_distance(&self, other: &Self) -> Option<f64> {
        self.host.relative_distance(&other.host)
    }
}
