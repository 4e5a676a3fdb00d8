//! [`Backend`]: the same operations on host data, run on a GPU when there is one and on the CPU
//! (the `dawin-core` references) otherwise.

use crate::checks::{
    check_labels, check_len, check_lerp, check_logits, check_multi_lerp, check_task_arithmetic,
};
use crate::device::Gpu;
use crate::error::{Error, Result};
use dawin_core::stats::RowStats;
use dawin_core::Param;

/// Where host-in, host-out operations run.
///
/// ```
/// use dawin_kernels::Backend;
///
/// let (backend, why_not_gpu) = Backend::detect();
/// if let Some(e) = why_not_gpu {
///     eprintln!("{e}; using the CPU");
/// }
/// let a = [1.0f32, 2.0, 3.0];
/// let b = [3.0f32, 2.0, 1.0];
/// let mut out = [0.0f32; 3];
/// backend.lerp(&a, &b, 0.25, &mut out)?;
/// assert_eq!(out, [1.5, 2.0, 2.5]);
/// # Ok::<(), dawin_kernels::Error>(())
/// ```
#[derive(Debug)]
pub enum Backend {
    /// A CUDA device: data is uploaded, processed and downloaded.
    Cuda(Gpu),
    /// The CPU references of `dawin-core`.
    Cpu,
}

impl Backend {
    /// [`Gpu::new`] when it succeeds; otherwise the CPU, with the reason the GPU is not used.
    pub fn detect() -> (Backend, Option<Error>) {
        match Gpu::new() {
            Ok(g) => (Backend::Cuda(g), None),
            Err(e) => (Backend::Cpu, Some(e)),
        }
    }

    /// True for [`Backend::Cuda`].
    pub fn is_gpu(&self) -> bool {
        matches!(self, Backend::Cuda(_))
    }

    /// A short description, e.g. `CUDA device 0 (NVIDIA H100 80GB HBM3)` or `CPU`.
    pub fn describe(&self) -> String {
        match self {
            Backend::Cuda(g) => format!("CUDA device {} ({})", g.context().ordinal(), g.name()),
            Backend::Cpu => "CPU".to_string(),
        }
    }

    /// `out = (1 − λ)·a + λ·b`, as `dawin_core::merge::lerp`.
    pub fn lerp<T: Param>(&self, a: &[T], b: &[T], lambda: f32, out: &mut [T]) -> Result<()> {
        match self {
            Backend::Cpu => Ok(dawin_core::merge::lerp(a, b, lambda, out)?),
            Backend::Cuda(g) => {
                check_lerp(a.len(), b.len(), out.len(), lambda)?;
                let (da, db) = (g.upload(a)?, g.upload(b)?);
                let mut dout = g.zeros::<T>(out.len())?;
                g.lerp(&da.view(), &db.view(), lambda, &mut dout.view_mut())?;
                g.download_into(&dout.view(), out)
            }
        }
    }

    /// `outs[k] = (1 − λ_k)·a + λ_k·b`, as `dawin_core::merge::multi_lerp`.
    pub fn multi_lerp<T: Param>(
        &self,
        a: &[T],
        b: &[T],
        lambdas: &[f32],
        outs: &mut [&mut [T]],
    ) -> Result<()> {
        match self {
            Backend::Cpu => Ok(dawin_core::merge::multi_lerp(a, b, lambdas, outs)?),
            Backend::Cuda(g) => {
                check_multi_lerp(a.len(), b.len(), lambdas, outs.iter().map(|o| o.len()))?;
                if a.is_empty() {
                    return Ok(());
                }
                let (da, db) = (g.upload(a)?, g.upload(b)?);
                let mut douts = (0..outs.len())
                    .map(|_| g.zeros::<T>(a.len()))
                    .collect::<Result<Vec<_>>>()?;
                {
                    let mut views: Vec<_> = douts.iter_mut().map(|d| d.view_mut()).collect();
                    g.multi_lerp(&da.view(), &db.view(), lambdas, &mut views)?;
                }
                for (d, o) in douts.iter().zip(outs.iter_mut()) {
                    g.download_into(&d.view(), o)?;
                }
                Ok(())
            }
        }
    }

    /// `out = θ0 + Σ_j w_j (θ_j − θ0)`, as `dawin_core::merge::task_arithmetic`.
    pub fn task_arithmetic<T: Param>(
        &self,
        base: &[T],
        models: &[&[T]],
        weights: &[f32],
        out: &mut [T],
    ) -> Result<()> {
        match self {
            Backend::Cpu => Ok(dawin_core::merge::task_arithmetic(
                base, models, weights, out,
            )?),
            Backend::Cuda(g) => {
                check_task_arithmetic(
                    base.len(),
                    models.iter().map(|m| m.len()),
                    weights,
                    out.len(),
                )?;
                let dbase = g.upload(base)?;
                let dmodels = models
                    .iter()
                    .map(|m| g.upload(m))
                    .collect::<Result<Vec<_>>>()?;
                let views: Vec<_> = dmodels.iter().map(|m| m.view()).collect();
                let mut dout = g.zeros::<T>(base.len())?;
                g.task_arithmetic(&dbase.view(), &views, weights, &mut dout.view_mut())?;
                g.download_into(&dout.view(), out)
            }
        }
    }

    /// `dst[i] = D(src[i])`, as `dawin_core::merge::cast`.
    pub fn cast<S: Param, D: Param>(&self, src: &[S], dst: &mut [D]) -> Result<()> {
        match self {
            Backend::Cpu => Ok(dawin_core::merge::cast(src, dst)?),
            Backend::Cuda(g) => {
                check_len("dst", dst.len(), src.len())?;
                let dsrc = g.upload(src)?;
                let mut ddst = g.zeros::<D>(dst.len())?;
                g.cast(&dsrc.view(), &mut ddst.view_mut())?;
                g.download_into(&ddst.view(), dst)
            }
        }
    }

    /// Per-row statistics of a `[N, n_classes]` logits matrix, as `dawin_core::stats::row_stats`.
    pub fn row_stats(
        &self,
        logits: &[f32],
        n_classes: usize,
        temperature: f32,
    ) -> Result<Vec<RowStats>> {
        match self {
            Backend::Cpu => Ok(dawin_core::stats::row_stats(
                logits,
                n_classes,
                temperature,
            )?),
            Backend::Cuda(g) => {
                check_logits(logits.len(), n_classes, temperature)?;
                let d = g.upload(logits)?;
                g.row_stats(&d.view(), n_classes, temperature)
            }
        }
    }

    /// Cross-entropy against hard labels, as `dawin_core::stats::cross_entropy_hard`.
    pub fn cross_entropy(
        &self,
        logits: &[f32],
        n_classes: usize,
        temperature: f32,
        labels: &[i64],
    ) -> Result<Vec<f32>> {
        match self {
            Backend::Cpu => Ok(dawin_core::stats::cross_entropy_hard(
                logits,
                n_classes,
                temperature,
                labels,
            )?),
            Backend::Cuda(g) => {
                let n_rows = check_logits(logits.len(), n_classes, temperature)?;
                check_labels(labels, n_rows, n_classes)?;
                let d = g.upload(logits)?;
                g.cross_entropy(&d.view(), n_classes, temperature, labels)
            }
        }
    }
}
