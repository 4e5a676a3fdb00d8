//! [`CudaVit::forward_stream`]: the forwards of a sequence of image batches, two deep, so that
//! the host's work on batch i + 1 (loading, decoding, preprocessing) overlaps the device's on
//! batch i.
//!
//! Per batch i, on the one stream of the [`Gpu`](dawin_kernels::Gpu), in order: the images are
//! copied into page-locked buffer `i mod 2` (waiting until the upload of batch i − 2 has read
//! it), uploaded asynchronously, the forward's kernels queued, and the download of the logits
//! into page-locked buffer `i mod 2` queued; only then are batch i − 1's logits read (waiting
//! for their download, which the stream runs before batch i's work) and handed over, and the
//! next batch requested while the device runs batch i. One stream orders everything: the
//! activation workspace and the device image buffer are reused by batch i + 1 only after batch
//! i's kernels and download. Page-locked buffers are copied whole (cudarc's `PinnedHostSlice`),
//! so each has its batch's exact size and is reallocated when the size changes (a dataset's
//! last batch). **Not run on a GPU yet**; `tests/cuda.rs` compares it with
//! [`CudaVit::forward_arenas`] batch by batch.

use dawin_kernels::{DeviceArena, DeviceVec, PinnedVec};

use super::{check_images, CudaError, CudaResult, CudaVit};

/// `slot`, reallocated (zero-filled) unless it holds exactly `len` elements.
fn exact<T: dawin_kernels::Param>(
    slot: &mut Option<PinnedVec<T>>,
    len: usize,
    gpu: &dawin_kernels::Gpu,
) -> CudaResult<()> {
    if slot.as_ref().is_none_or(|p| p.len() != len) {
        *slot = None;
        *slot = Some(gpu.pinned(len)?);
    }
    Ok(())
}

impl CudaVit {
    /// Logits `[batch, C]` of every batch that `next` gives (images `[batch, 3, S, S]`, `None`
    /// at the end), through `arena` (a model's weights of this layout), handed to `out` in
    /// order; batch i + 1 is requested while the device runs batch i (see the module docs of
    /// `stream.rs`). Equal, batch by batch, to [`CudaVit::forward_arenas`]. An error from
    /// `next`, `out` or the device stops the stream (work already queued completes).
    pub fn forward_stream<E: From<CudaError>>(
        &self,
        arena: &DeviceArena,
        next: &mut dyn FnMut() -> Result<Option<(Vec<f32>, usize)>, E>,
        out: &mut dyn FnMut(Vec<f32>) -> Result<(), E>,
    ) -> Result<(), E> {
        let gpu = self.gpu.clone();
        let c = self.cfg.num_classes;
        let mut inputs: [Option<PinnedVec<f32>>; 2] = [None, None];
        let mut outputs: [Option<PinnedVec<f32>>; 2] = [None, None];
        let mut images: Option<DeviceVec<f32>> = None;
        // The buffer slot of the batch queued last, whose logits are not handed over yet.
        let mut pending: Option<usize> = None;
        let mut i = 0usize;
        while let Some((x, batch)) = next()? {
            check_images(&x, batch, &self.cfg).map_err(CudaError::from)?;
            let s = i % 2;
            let queue = |inputs: &mut [Option<PinnedVec<f32>>; 2],
                         outputs: &mut [Option<PinnedVec<f32>>; 2],
                         images: &mut Option<DeviceVec<f32>>|
             -> CudaResult<()> {
                exact(&mut inputs[s], x.len(), &gpu)?;
                exact(&mut outputs[s], batch * c, &gpu)?;
                let pin = inputs[s].as_mut().expect("allocated above");
                pin.as_mut_slice()?.copy_from_slice(&x);
                if images.as_ref().is_none_or(|v| v.len() != x.len()) {
                    *images = None;
                    *images = Some(gpu.zeros(x.len())?);
                }
                let img = images.as_mut().expect("allocated above");
                gpu.upload_async(pin, &mut img.view_mut())?;
                let dst = outputs[s].as_mut().expect("allocated above");
                self.run_inner(img, batch, vec![arena], None, false, None, Some(dst))?;
                Ok(())
            };
            queue(&mut inputs, &mut outputs, &mut images)?;
            if let Some(p) = pending.take() {
                out(logits(&outputs[p])?)?;
            }
            pending = Some(s);
            i += 1;
        }
        if let Some(p) = pending {
            out(logits(&outputs[p])?)?;
        }
        Ok(())
    }
}

/// The logits a queued download wrote (waits for it).
fn logits(slot: &Option<PinnedVec<f32>>) -> CudaResult<Vec<f32>> {
    let p = slot.as_ref().expect("a queued batch has its buffer");
    Ok(p.as_slice()?.to_vec())
}
