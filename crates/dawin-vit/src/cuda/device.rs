//! [`VitDevice`]: what a device-resident pipeline needs from a ViT on a device — parameter
//! arenas uploaded once, merges of whole arenas on the device, the forward (plain or blended)
//! over arenas, and per-row statistics of logits — implemented by [`CudaVit`] (the GPU: the
//! kernels of `dawin-kernels`) and, with the `host-device` feature or in tests, by
//! `HostVit` (the same launch plans run by the host interpreter, the merges and
//! statistics by the kernels' CPU references), so the device pipeline's sequences of
//! operations run and are checked without a GPU.

use dawin_core::stats::RowStats;
use dawin_kernels::DeviceArena;

use super::{CudaError, CudaResult, CudaVit, Precision};
use crate::config::VitConfig;
use crate::model::ForwardOutput;
use crate::weights::ClipWeights;

/// A ViT on a device: arenas of one layout (config and precision), merges and forwards.
///
/// Every merge is element-wise over the whole arena in f32, rounded once to the arena's type,
/// exactly as `dawin_core::merge` computes it (λ = 0 and λ = 1 copy bit for bit).
pub trait VitDevice: Send + Sync {
    /// A parameter arena on the device.
    type Arena: Send + Sync;

    /// The config of every arena.
    fn config(&self) -> &VitConfig;
    /// The storage precision of weights and activations.
    fn precision(&self) -> Precision;
    /// What the device is, for reports (e.g. `NVIDIA H100 80GB HBM3`).
    fn describe(&self) -> String;
    /// Number of models uploaded at construction (or by `push`).
    fn models(&self) -> usize;
    /// The arena of uploaded model `i`.
    fn model(&self, i: usize) -> Option<&Self::Arena>;
    /// Uploads one more model; returns its index.
    fn push(&mut self, w: &ClipWeights) -> CudaResult<usize>;
    /// Uploads `w` into a new arena the caller holds (e.g. a model merged on the host).
    fn upload(&self, w: &ClipWeights) -> CudaResult<Self::Arena>;
    /// A new (zero-filled) arena of the models' layout.
    fn new_arena(&self) -> CudaResult<Self::Arena>;
    /// `out = (1 − λ)·a + λ·b` over the whole arena.
    fn lerp(
        &self,
        a: &Self::Arena,
        b: &Self::Arena,
        lambda: f32,
        out: &mut Self::Arena,
    ) -> CudaResult<()>;
    /// `outs[k] = (1 − λ_k)·a + λ_k·b` for every k from one read of `a` and `b`.
    fn multi_lerp(
        &self,
        a: &Self::Arena,
        b: &Self::Arena,
        lambdas: &[f32],
        outs: &mut [&mut Self::Arena],
    ) -> CudaResult<()>;
    /// `out = θ0 + Σ_j w_j (θ_j − θ0)`, computed as `(1 − Σ_j w_j)·θ0 + Σ_j w_j θ_j`.
    fn task_arithmetic(
        &self,
        base: &Self::Arena,
        models: &[&Self::Arena],
        weights: &[f32],
        out: &mut Self::Arena,
    ) -> CudaResult<()>;
    /// One arena, no `coeffs`: the forward of its weights. Several: the blended forward, sample
    /// i through `θ0 + Σ_j w_ij (θ_j − θ0)` with `w_ij = coeffs[i·M + j]` (arena 0 is θ0).
    fn forward(
        &self,
        arenas: &[&Self::Arena],
        images: &[f32],
        batch: usize,
        coeffs: Option<&[f32]>,
        features: bool,
    ) -> CudaResult<ForwardOutput>;
    /// Logits of every batch `next` gives (`None` at the end) through `arena`, handed to `out`
    /// in order. The default runs [`VitDevice::forward`] batch by batch; a GPU requests batch
    /// i + 1 while it computes batch i ([`CudaVit::forward_stream`]).
    fn forward_stream<E: From<CudaError>>(
        &self,
        arena: &Self::Arena,
        next: &mut dyn FnMut() -> Result<Option<(Vec<f32>, usize)>, E>,
        out: &mut dyn FnMut(Vec<f32>) -> Result<(), E>,
    ) -> Result<(), E>
    where
        Self: Sized,
    {
        while let Some((x, batch)) = next()? {
            out(self.forward(&[arena], &x, batch, None, false)?.logits)?;
        }
        Ok(())
    }
    /// Per-row statistics of logits `[N, c]` at temperature `t` (entropy
    /// `H = −Σ_k p_k ln p_k` of `p = softmax(z/t)`, max probability, argmax, …), as
    /// `dawin_core::stats::row_stats`.
    fn row_stats(&self, logits: &[f32], c: usize, t: f32) -> CudaResult<Vec<RowStats>>;
}

impl VitDevice for CudaVit {
    type Arena = DeviceArena;

    fn config(&self) -> &VitConfig {
        CudaVit::config(self)
    }
    fn precision(&self) -> Precision {
        CudaVit::precision(self)
    }
    fn describe(&self) -> String {
        self.gpu().name().to_string()
    }
    fn models(&self) -> usize {
        CudaVit::models(self)
    }
    fn model(&self, i: usize) -> Option<&DeviceArena> {
        self.arena(i)
    }
    fn push(&mut self, w: &ClipWeights) -> CudaResult<usize> {
        self.push_model(w)
    }
    fn upload(&self, w: &ClipWeights) -> CudaResult<DeviceArena> {
        self.upload_arena(w)
    }
    fn new_arena(&self) -> CudaResult<DeviceArena> {
        CudaVit::new_arena(self)
    }
    fn lerp(
        &self,
        a: &DeviceArena,
        b: &DeviceArena,
        l: f32,
        out: &mut DeviceArena,
    ) -> CudaResult<()> {
        Ok(self.gpu().lerp_arena(a, b, l, out)?)
    }
    fn multi_lerp(
        &self,
        a: &DeviceArena,
        b: &DeviceArena,
        lambdas: &[f32],
        outs: &mut [&mut DeviceArena],
    ) -> CudaResult<()> {
        Ok(self.gpu().multi_lerp_arena(a, b, lambdas, outs)?)
    }
    fn task_arithmetic(
        &self,
        base: &DeviceArena,
        models: &[&DeviceArena],
        weights: &[f32],
        out: &mut DeviceArena,
    ) -> CudaResult<()> {
        Ok(self
            .gpu()
            .task_arithmetic_arena(base, models, weights, out)?)
    }
    fn forward(
        &self,
        arenas: &[&DeviceArena],
        images: &[f32],
        batch: usize,
        coeffs: Option<&[f32]>,
        features: bool,
    ) -> CudaResult<ForwardOutput> {
        self.forward_arenas(arenas, images, batch, coeffs, features)
    }
    fn forward_stream<E: From<CudaError>>(
        &self,
        arena: &DeviceArena,
        next: &mut dyn FnMut() -> Result<Option<(Vec<f32>, usize)>, E>,
        out: &mut dyn FnMut(Vec<f32>) -> Result<(), E>,
    ) -> Result<(), E> {
        CudaVit::forward_stream(self, arena, next, out)
    }
    /// The logits are uploaded (`N·c` f32) and reduced by the row-statistics kernel, one warp
    /// per row.
    fn row_stats(&self, logits: &[f32], c: usize, t: f32) -> CudaResult<Vec<RowStats>> {
        let z = self.gpu().upload(logits)?;
        Ok(self.gpu().row_stats(&z.view(), c, t)?)
    }
}
