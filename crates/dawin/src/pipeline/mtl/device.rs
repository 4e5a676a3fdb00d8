//! Where the multi-task evaluation's encoders run: [`MtlDevice`] prepares each [`Encoder`] the
//! evaluation needs (an uploaded model, a merge, an upload of a host merge, the blended
//! forward) and returns its [`EncoderForward`]; [`crate::cuda::mtl::CudaEncoders`] implements
//! it on a GPU (or on the host interpreter, for tests). Without one, everything runs on the
//! CPU.
use crate::error::{Error, Result};
use dawin_core::merge::ParamSource;
use dawin_vit::ClipClassifier;

/// An encoder of the multi-task evaluation, as [`MtlDevice::encoder`] prepares it.
#[derive(Clone, Copy, Debug)]
pub enum Encoder<'a> {
    /// θ0.
    Base,
    /// Fine-tuned encoder j (0-based).
    Task(usize),
    /// Task arithmetic `θ0 + Σ_j w_j τ_j`, `τ_j = θ_j − θ0` (M weights).
    Merged(&'a [f32]),
    /// An encoder merged on the host (e.g. TIES), to upload.
    Host(&'a ClipClassifier),
    /// Per sample `θ0 + Σ_j w_ij τ_j`, the coefficients `[batch, M]` given with each batch.
    Blended,
}

/// A prepared encoder's forward: normalised features `f/‖f‖` `[batch, E]` of preprocessed
/// images `[batch, 3, S, S]` (`coeffs` `[batch, M]` for [`Encoder::Blended`] only).
pub trait EncoderForward {
    /// The features.
    fn features(&self, images: &[f32], batch: usize, coeffs: Option<&[f32]>) -> Result<Vec<f32>>;
}

/// Where the multi-task evaluation's encoders run ([`crate::mtl::evaluate_mtl_device`]; implemented by
/// [`crate::cuda::mtl::CudaEncoders`]).
pub trait MtlDevice: Send + Sync {
    /// The device, for the report.
    fn describe(&self) -> String;
    /// A probe of each encoder it holds (θ0 first, then the M fine-tuned ones):
    /// [`probe`] of its parameters, so that the evaluation refuses a device that holds other
    /// models, or the same in another order, than it is given.
    fn probes(&self) -> &[Vec<f32>];
    /// Prepares `enc` on the device (a merge, an upload, nothing) and returns its forward;
    /// `None` when this device cannot run it (the pipeline then runs it on the CPU).
    fn encoder(&self, enc: Encoder<'_>) -> Result<Option<Box<dyn EncoderForward + '_>>>;
}

/// The first 8 values of the encoder parameters at indices 0, n/3, 2n/3 and n − 1 (n
/// parameters), read from `model`: cheap (four tensors), and different between two fine-tunes
/// unless all four tensors were frozen in both — a probe, not a proof.
pub fn probe<E: ParamSource + ?Sized>(model: &E) -> Result<Vec<f32>>
where
    Error: From<E::Error>,
{
    let n = model.param_count();
    let mut out = Vec::new();
    if n == 0 {
        return Ok(out);
    }
    let mut at = vec![0, n / 3, 2 * n / 3, n - 1];
    at.dedup();
    for i in at {
        let p = model.param(i)?;
        out.extend_from_slice(&p[..p.len().min(8)]);
    }
    Ok(out)
}
