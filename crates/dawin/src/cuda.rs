//! The pipeline's models on a device: [`CudaClassifier`] runs a CLIP classifier's forward with
//! a [`VitDevice`] — [`CudaVit`] on a GPU (hand-written kernels, f16 or bf16 with f32
//! accumulation), or `dawin_vit::cuda::HostVit` (feature `host-device`: the same launch plans
//! by the host interpreter, for tests) — and implements [`Model`] and [`Interpolate`], so
//! [`crate::eval::evaluate`] runs unchanged on it, with everything on the device:
//!
//! * θ0 and θ1 are uploaded **once**, together ([`CudaClassifier::pair`]): both classifiers
//!   share one device model holding their two parameter arenas (and one kept workspace of
//!   activation buffers, sized for the largest batch and reused by every forward);
//! * `interpolate(θ1, λ)`: `θ(λ) = (1 − λ)θ0 + λθ1` by the lerp kernel, one launch over the whole
//!   arena, into an arena taken from a pool of spare arenas (a merged model gives its arena
//!   back when dropped: the WiSE-FT grid merges into the same arena over and over);
//! * `for_each_merged(θ1, [λ_1 … λ_K])` (the K components of the mixture): one multi-lerp
//!   launch writes K arenas (at most [`MERGE_GROUP`] per launch), then each is forwarded from
//!   its arena — no merged weight goes through the host;
//! * `per_sample_forward`: the blended forward over the two uploaded arenas (no upload);
//! * `row_stats`: entropies (and the other per-row statistics) of logits by the row-statistics
//!   kernel, from which the pipeline's coefficient stage takes `H_j` and λ(x).
//!
//! `merge(λ)` is exact at λ = 0 and 1 (the merge kernels copy `a` or `b` bit for bit), so
//! θ(0) and θ(1) are θ0 and θ1. Logits differ from the CPU's by the f16/bf16 rounding of weights
//! and activations (the host interpreter of the launch plan gives 7.6e-4 relative in f16 and
//! 7.7e-3 in bf16 at ViT-B/32 size).
//!
//! A dataset's batches run two deep ([`Model::forward_batches`] →
//! [`VitDevice::forward_stream`], on a GPU [`CudaVit::forward_stream`]): each batch's images
//! are copied into one of two page-locked buffers, their upload, the forward and the download
//! of the logits into a page-locked buffer are queued, and the next batch is loaded (JPEG
//! decoding, preprocessing) while the device works; batch i's logits are read once batch i + 1
//! is queued. Everything runs on the device's one stream, so the upload of batch i + 1 does not
//! overlap batch i's kernels (no separate copy stream: cudarc 0.19 has one —
//! `CudaContext::new_stream`, events — but its pinned buffers are copied whole and the
//! arenas', workspace's and images' cross-stream ordering would rest on cudarc's event
//! tracking, which nothing here can test without a GPU); the `vit_cuda` bench's
//! `forward_stream` row measures what that leaves.
//!
//! **This path has not run on a GPU yet** (see docs/gpu-runs.md): on a GPU it is checked by
//! `crates/dawin/tests/cuda_pipeline.rs` (in `scripts/gpu_session.sh run`); without one, the
//! same code runs on `dawin_vit::cuda::HostVit` (feature `host-device`) in this module's tests,
//! every method's accuracy and predictions compared with the CPU pipeline's.
use crate::error::{Error, Result};
use crate::model::{Interpolate, Model, PerSampleForward};
use dawin_core::stats::RowStats;
use dawin_kernels::Gpu;
use dawin_vit::cuda::{CudaError, CudaVit, Precision, VitDevice};
use dawin_vit::ClipClassifier;
use std::sync::{Arc, Mutex};

/// Most merged arenas one [`Interpolate::for_each_merged`] call holds at once (one multi-lerp
/// launch): K ≤ 8 components are merged in one launch; more in groups of 8. Bounds the device
/// memory to 8 model copies beside θ0 and θ1.
pub const MERGE_GROUP: usize = 8;

/// Spare arenas kept for later merges at most.
const POOL_MAX: usize = MERGE_GROUP;

pub(crate) fn cuda_err(e: CudaError) -> Error {
    if e.is_no_gpu() {
        Error::invalid("--device", format!("no usable CUDA device: {e}"))
    } else {
        Error::invalid("cuda", e.to_string())
    }
}

/// A device error as the pipeline reports it: no usable GPU names `--device`, anything else
/// `cuda`.
impl From<CudaError> for Error {
    fn from(e: CudaError) -> Error {
        cuda_err(e)
    }
}

/// The device model the classifiers of one upload share, and its spare arenas.
struct Shared<V: VitDevice> {
    dev: V,
    pool: Mutex<Vec<V::Arena>>,
}

/// Which weights a classifier forwards.
enum Weights<A> {
    /// Uploaded model `i` of the device model.
    Uploaded(usize),
    /// An arena a merge on the device wrote (given back to the pool on drop).
    Merged(Option<A>),
}

/// A CLIP classifier on a device: an uploaded model, or a model merged there.
pub struct CudaClassifier<V: VitDevice = CudaVit> {
    shared: Arc<Shared<V>>,
    weights: Weights<V::Arena>,
    /// The host copy of an uploaded model (for [`Interpolate::relative_distance`]).
    host: Option<Arc<ClipClassifier>>,
}

impl CudaClassifier<CudaVit> {
    /// Uploads `host` alone to `gpu` in `precision` (merging it needs [`CudaClassifier::pair`]).
    /// Errors: a config the kernels cannot run (named), a GPU below compute capability 8.0, a
    /// failed upload.
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
        let mut v = Self::on_device(vit, vec![Some(host)])?;
        Ok(v.remove(0))
    }

    /// Uploads θ0 and θ1 once, into one device model, as the pipeline's pair: merges and the
    /// blended forward then run on their arenas with no further upload.
    pub fn pair(
        gpu: Arc<Gpu>,
        theta0: &ClipClassifier,
        theta1: &ClipClassifier,
        precision: Precision,
    ) -> Result<(Self, Self)> {
        theta0.check_compatible(theta1)?;
        let vit = CudaVit::new(
            gpu,
            theta0.config(),
            &[theta0.weights(), theta1.weights()],
            precision,
        )
        .map_err(cuda_err)?;
        let mut v = Self::on_device(vit, vec![Some(theta0.clone()), Some(theta1.clone())])?;
        let t1 = v.pop().expect("two models");
        Ok((v.pop().expect("two models"), t1))
    }
}

impl<V: VitDevice> CudaClassifier<V> {
    /// One classifier per model uploaded to `dev` (in upload order), sharing it; `hosts[i]` is
    /// model i's host copy when kept. Errors: a count that differs from `dev.models()`.
    pub fn on_device(dev: V, hosts: Vec<Option<ClipClassifier>>) -> Result<Vec<Self>> {
        if hosts.len() != dev.models() {
            return Err(Error::invalid(
                "hosts",
                format!("{} host copies for {} models", hosts.len(), dev.models()),
            ));
        }
        let shared = Arc::new(Shared {
            dev,
            pool: Mutex::new(Vec::new()),
        });
        Ok(hosts
            .into_iter()
            .enumerate()
            .map(|(i, h)| CudaClassifier {
                shared: shared.clone(),
                weights: Weights::Uploaded(i),
                host: h.map(Arc::new),
            })
            .collect())
    }

    /// The device model.
    pub fn device(&self) -> &V {
        &self.shared.dev
    }

    /// The host copy of an uploaded model (`None` for a merged one).
    pub fn host(&self) -> Option<&ClipClassifier> {
        self.host.as_deref()
    }

    /// The precision of the forward.
    pub fn precision(&self) -> Precision {
        self.shared.dev.precision()
    }

    fn arena(&self) -> &V::Arena {
        match &self.weights {
            Weights::Uploaded(i) => self.shared.dev.model(*i).expect("an uploaded model"),
            Weights::Merged(a) => a.as_ref().expect("present until dropped"),
        }
    }

    /// A spare arena of the pool, else a new one.
    fn take_arena(&self) -> Result<V::Arena> {
        let spare = self
            .shared
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        match spare {
            Some(a) => Ok(a),
            None => self.shared.dev.new_arena().map_err(cuda_err),
        }
    }

    fn merged(&self, arena: V::Arena) -> Self {
        CudaClassifier {
            shared: self.shared.clone(),
            weights: Weights::Merged(Some(arena)),
            host: None,
        }
    }
}

impl<V: VitDevice> Drop for CudaClassifier<V> {
    fn drop(&mut self) {
        if let Weights::Merged(a) = &mut self.weights {
            let mut pool = self.shared.pool.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < POOL_MAX {
                pool.extend(a.take());
            }
        }
    }
}

impl<V: VitDevice> Model for CudaClassifier<V> {
    fn num_classes(&self) -> usize {
        self.shared.dev.config().num_classes
    }
    fn input_numel(&self) -> usize {
        self.shared.dev.config().image_numel()
    }
    fn forward(&self, inputs: &[f32], batch: usize) -> Result<Vec<f32>> {
        Ok(self
            .shared
            .dev
            .forward(&[self.arena()], inputs, batch, None, false)
            .map_err(cuda_err)?
            .logits)
    }
    /// Two deep on a GPU: batch i + 1 is loaded while the device runs batch i
    /// ([`VitDevice::forward_stream`]).
    fn forward_batches(
        &self,
        next: &mut dyn FnMut() -> Result<Option<(Vec<f32>, usize)>>,
        out: &mut dyn FnMut(Vec<f32>) -> Result<()>,
    ) -> Result<()> {
        self.shared.dev.forward_stream(self.arena(), next, out)
    }
    /// By the device's row statistics (the row-statistics kernel on a GPU).
    fn row_stats(&self, logits: &[f32], c: usize, t: f32) -> Option<Result<Vec<RowStats>>> {
        Some(self.shared.dev.row_stats(logits, c, t).map_err(cuda_err))
    }
}

/// θ0's and θ1's arenas, run by the blended forward.
struct CudaBlend<'a, V: VitDevice> {
    dev: &'a V,
    arenas: [&'a V::Arena; 2],
}

impl<V: VitDevice> PerSampleForward for CudaBlend<'_, V> {
    fn forward(&self, inputs: &[f32], batch: usize, lambdas: &[f32]) -> Result<Vec<f32>> {
        Ok(self
            .dev
            .forward(&self.arenas, inputs, batch, Some(lambdas), false)
            .map_err(cuda_err)?
            .logits)
    }
}

fn check_lambda(lambda: f32) -> Result<()> {
    if !(0.0..=1.0).contains(&lambda) {
        return Err(Error::invalid(
            "lambda",
            format!("must lie in [0, 1], got {lambda}"),
        ));
    }
    Ok(())
}

impl<V: VitDevice> Interpolate for CudaClassifier<V> {
    /// Both must live on the same device model ([`CudaClassifier::pair`]).
    fn check_compatible(&self, other: &Self) -> Result<()> {
        if !Arc::ptr_eq(&self.shared, &other.shared) {
            return Err(Error::invalid(
                "cuda",
                "θ0 and θ1 were uploaded separately; upload them together with \
                 CudaClassifier::pair so that they can be merged on the device",
            ));
        }
        Ok(())
    }
    /// The lerp kernel into a pooled arena.
    fn interpolate(&self, other: &Self, lambda: f32) -> Result<Self> {
        check_lambda(lambda)?;
        self.check_compatible(other)?;
        let mut out = self.take_arena()?;
        (self.shared.dev)
            .lerp(self.arena(), other.arena(), lambda, &mut out)
            .map_err(cuda_err)?;
        Ok(self.merged(out))
    }
    /// One multi-lerp launch per [`MERGE_GROUP`] coefficients, writing pooled arenas.
    fn for_each_merged(
        &self,
        other: &Self,
        lambdas: &[f32],
        f: &mut dyn FnMut(usize, &dyn Model) -> Result<()>,
    ) -> Result<()> {
        self.check_compatible(other)?;
        for (g, group) in lambdas.chunks(MERGE_GROUP).enumerate() {
            for &l in group {
                check_lambda(l)?;
            }
            let mut arenas = (group.iter())
                .map(|_| self.take_arena())
                .collect::<Result<Vec<_>>>()?;
            let mut outs: Vec<&mut V::Arena> = arenas.iter_mut().collect();
            (self.shared.dev)
                .multi_lerp(self.arena(), other.arena(), group, &mut outs)
                .map_err(cuda_err)?;
            let models: Vec<Self> = arenas.into_iter().map(|a| self.merged(a)).collect();
            for (k, m) in models.iter().enumerate() {
                f(g * MERGE_GROUP + k, m)?;
            }
        }
        Ok(())
    }
    /// The blended forward over the two arenas when `other` is an uploaded model of the same
    /// device (its arena is then the device's, which `self` may borrow); `None` otherwise.
    fn per_sample_forward(&self, other: &Self) -> Option<Result<Box<dyn PerSampleForward + '_>>> {
        if let Err(e) = self.check_compatible(other) {
            return Some(Err(e));
        }
        let b = match other.weights {
            Weights::Uploaded(i) => self.shared.dev.model(i)?,
            Weights::Merged(_) => return None,
        };
        Some(Ok(Box::new(CudaBlend {
            dev: &self.shared.dev,
            arenas: [self.arena(), b],
        })))
    }
    /// From the host copies (`None` without them).
    fn relative_distance(&self, other: &Self) -> Option<f64> {
        self.host()?.relative_distance(other.host()?)
    }
}

pub mod mtl;

#[cfg(test)]
mod tests;
