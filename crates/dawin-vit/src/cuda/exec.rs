//! The GPU executor of a [`plan`](super::plan::plan): each op's buffers become device views
//! (a parameter tensor of an arena, an activation buffer, the caller's images) and the op one
//! call of a safe launcher of `dawin-kernels`, which checks the views against the shape.

use std::time::Instant;

use dawin_kernels::{
    DeviceArena, DeviceVec, DeviceView, EmbedWeights, GemmWeights, Gpu, Half, NormWeights, Output,
    PinnedVec,
};

use super::plan::{Buf, Op, Work};
use super::{arg_err, CudaResult};
use crate::config::VitConfig;

/// An activation buffer on the device; its length is its capacity (at least what the current
/// forward needs: every view is cut to [`Work::size`]).
pub(super) enum Slot<T: Half> {
    F32(DeviceVec<f32>),
    Half(DeviceVec<T>),
}

impl<T: Half> Slot<T> {
    fn capacity(&self) -> usize {
        match self {
            Slot::F32(v) => v.len(),
            Slot::Half(v) => v.len(),
        }
    }

    fn output(&mut self, len: usize) -> CudaResult<Output<'_, T>> {
        Ok(match self {
            Slot::F32(v) => Output::F32(v.slice_mut(0..len)?),
            Slot::Half(v) => Output::Half(v.slice_mut(0..len)?),
        })
    }
}

/// The activation buffers of one model's forwards, kept between forwards (indexed by
/// `Work as usize`): allocated at the first forward, grown (reallocated, zero-filled once) when
/// a forward needs more than a buffer holds, never shrunk and never cleared between forwards.
/// No kernel of the plan reads an activation before an earlier op of the same forward wrote it
/// (the residual GEMMs accumulate into `X` only after `ln_pre` wrote it; im2col writes the
/// padding columns of `Cols` itself), so stale values of an earlier batch are never read: the
/// host interpreter checks this by poisoning its buffers with NaN and reusing them across
/// batches of different sizes.
pub(super) type Slots<T> = Vec<Option<Slot<T>>>;

/// The workspaces of a [`super::CudaVit`], one per activation type (only the model's own
/// precision is ever used).
#[derive(Default)]
pub(super) struct Workspaces {
    f16: Slots<half::f16>,
    bf16: Slots<half::bf16>,
}

impl Workspaces {
    /// Device bytes held.
    pub(super) fn bytes(&self) -> usize {
        fn of<T: Half>(s: &Slots<T>) -> usize {
            s.iter()
                .flatten()
                .map(|v| match v {
                    Slot::F32(v) => v.len() * 4,
                    Slot::Half(v) => v.len() * 2,
                })
                .sum()
        }
        of(&self.f16) + of(&self.bf16)
    }
}

/// The workspace of activation type T.
pub(super) trait WorkspaceOf: Half {
    fn slots(ws: &mut Workspaces) -> &mut Slots<Self>;
}
impl WorkspaceOf for half::f16 {
    fn slots(ws: &mut Workspaces) -> &mut Slots<Self> {
        &mut ws.f16
    }
}
impl WorkspaceOf for half::bf16 {
    fn slots(ws: &mut Workspaces) -> &mut Slots<Self> {
        &mut ws.bf16
    }
}

/// The buffers of one forward: the weight sets' arenas, the images and the activations.
pub(super) struct Exec<'a, T: Half> {
    gpu: &'a Gpu,
    /// The arena of each weight set of the plan.
    arenas: Vec<&'a DeviceArena>,
    images: &'a DeviceVec<f32>,
    /// Indexed by `Work as usize`; `None` for the images and while an op writes the buffer.
    work: Slots<T>,
    /// Elements of each buffer this forward uses (`Work::size`).
    lens: Vec<usize>,
}

impl<'a, T: Half> Exec<'a, T> {
    /// Takes the activation buffers of a forward of `batch` images over the weight sets
    /// `arenas` from `work` (a kept workspace: buffers too small, or missing, are allocated
    /// zero-filled; the others are reused as they are) and uploads the blend coefficients when
    /// given. [`Exec::into_work`] gives the workspace back.
    pub(super) fn new(
        gpu: &'a Gpu,
        cfg: &VitConfig,
        arenas: Vec<&'a DeviceArena>,
        images: &'a DeviceVec<f32>,
        (batch, coef): (usize, Option<&[f32]>),
        mut work: Slots<T>,
    ) -> CudaResult<Self> {
        let sets = arenas.len();
        work.resize_with(Work::ALL.len(), || None);
        let mut lens = Vec::with_capacity(Work::ALL.len());
        for b in Work::ALL {
            let (len, f32) = b.size(cfg, batch, sets);
            lens.push(len);
            let slot = &mut work[b as usize];
            if b == Work::Images || (b == Work::Coef && coef.is_none()) {
                continue;
            }
            if slot.as_ref().is_none_or(|s| s.capacity() < len) {
                *slot = None; // free the small buffer before allocating the larger one
                *slot = Some(if f32 {
                    Slot::F32(gpu.zeros(len)?)
                } else {
                    Slot::Half(gpu.zeros(len)?)
                });
            }
            if let (Work::Coef, Some(c), Some(Slot::F32(v))) = (b, coef, slot.as_mut()) {
                gpu.upload_into(c, &mut v.slice_mut(0..len)?)?;
            }
        }
        Ok(Exec {
            gpu,
            arenas,
            images,
            work,
            lens,
        })
    }

    /// The workspace, to keep for the next forward.
    pub(super) fn into_work(self) -> Slots<T> {
        self.work
    }

    fn missing(b: Buf) -> super::CudaError {
        arg_err("plan", format!("{b:?} is not a buffer of this forward"))
    }

    /// A T buffer to read.
    fn half(&self, b: Buf) -> CudaResult<DeviceView<'_, T>> {
        match b {
            Buf::Param { set, tensor } => {
                let arena = self.arenas.get(set).ok_or_else(|| Self::missing(b))?;
                Ok(arena.tensor_at::<T>(tensor)?)
            }
            Buf::Work(w) => match &self.work[w as usize] {
                Some(Slot::Half(v)) => Ok(v.slice(0..self.lens[w as usize])?),
                _ => Err(Self::missing(b)),
            },
        }
    }

    /// An f32 buffer to read.
    fn f32(&self, b: Buf) -> CudaResult<DeviceView<'_, f32>> {
        match b {
            Buf::Work(Work::Images) => Ok(self.images.view()),
            Buf::Work(w) => match &self.work[w as usize] {
                Some(Slot::F32(v)) => Ok(v.slice(0..self.lens[w as usize])?),
                _ => Err(Self::missing(b)),
            },
            Buf::Param { .. } => Err(Self::missing(b)),
        }
    }

    /// Takes the buffer an op writes out of the set, so that the op can read the others.
    fn take(&mut self, b: Buf) -> CudaResult<Slot<T>> {
        match b {
            Buf::Work(w) if w != Work::Images => {
                self.work[w as usize].take().ok_or_else(|| Self::missing(b))
            }
            _ => Err(Self::missing(b)),
        }
    }

    fn put(&mut self, b: Buf, slot: Slot<T>) {
        if let Buf::Work(w) = b {
            self.work[w as usize] = Some(slot);
        }
    }

    /// Runs `ops` in order; with `times`, synchronises after every launch and adds its time to
    /// its kind ([`Op::kind`]).
    pub(super) fn run(
        &mut self,
        ops: &[Op],
        mut times: Option<&mut Vec<(&'static str, f64)>>,
    ) -> CudaResult<()> {
        if times.is_some() {
            self.gpu.synchronize()?;
        }
        for op in ops {
            let t0 = Instant::now();
            self.launch(op)?;
            if let Some(times) = times.as_deref_mut() {
                self.gpu.synchronize()?;
                times[op.kind()].1 += t0.elapsed().as_secs_f64();
            }
        }
        Ok(())
    }

    fn launch(&mut self, op: &Op) -> CudaResult<()> {
        let out = match op {
            Op::Im2col { out, .. }
            | Op::Gemm { out, .. }
            | Op::Embed { out, .. }
            | Op::LayerNorm { out, .. }
            | Op::Attention { out, .. }
            | Op::L2Norm { out, .. } => *out,
        };
        let len = self.len_of(out);
        let mut o = self.take(out)?;
        let r = self.launch_into(op, &mut o, len);
        self.put(out, o);
        r
    }

    /// Elements of activation buffer `b` in this forward.
    fn len_of(&self, b: Buf) -> usize {
        match b {
            Buf::Work(w) => self.lens[w as usize],
            Buf::Param { .. } => 0,
        }
    }

    /// Launches `op` writing `o` (`len` elements of it).
    fn launch_into(&mut self, op: &Op, o: &mut Slot<T>, len: usize) -> CudaResult<()> {
        let bad_out = || arg_err("plan", format!("{op:?} writes a buffer of the wrong type"));
        let coef = |c: &Option<Buf>| c.map(|c| self.f32(c)).transpose();
        match op {
            Op::Im2col { shape, images, .. } => {
                let Slot::Half(o) = o else {
                    return Err(bad_out());
                };
                self.gpu
                    .im2col(shape, &self.f32(*images)?, &mut o.slice_mut(0..len)?)?;
            }
            Op::Gemm {
                shape,
                a,
                sets,
                coef: c,
                ..
            } => {
                let weights = sets
                    .iter()
                    .map(|s| {
                        Ok(GemmWeights {
                            weight: self.half(s.weight)?,
                            bias: s.bias.map(|b| self.half(b)).transpose()?,
                            scale: s.scale.map(|g| self.half(g)).transpose()?,
                        })
                    })
                    .collect::<CudaResult<Vec<_>>>()?;
                let c = coef(c)?;
                self.gpu
                    .gemm(shape, &self.half(*a)?, &weights, c.as_ref(), o.output(len)?)?;
            }
            Op::Embed {
                shape,
                patches,
                sets,
                coef: c,
                ..
            } => {
                let Slot::F32(o) = o else {
                    return Err(bad_out());
                };
                let weights = sets
                    .iter()
                    .map(|&(cls, pos)| {
                        Ok(EmbedWeights {
                            class: self.half(cls)?,
                            positional: self.half(pos)?,
                        })
                    })
                    .collect::<CudaResult<Vec<_>>>()?;
                let c = coef(c)?;
                self.gpu.embed_tokens(
                    shape,
                    &self.f32(*patches)?,
                    &weights,
                    c.as_ref(),
                    &mut o.slice_mut(0..len)?,
                )?;
            }
            Op::LayerNorm {
                shape,
                x,
                sets,
                coef: c,
                ..
            } => {
                let weights = sets
                    .iter()
                    .map(|&(g, b)| {
                        Ok(NormWeights {
                            weight: self.half(g)?,
                            bias: self.half(b)?,
                        })
                    })
                    .collect::<CudaResult<Vec<_>>>()?;
                let c = coef(c)?;
                self.gpu
                    .layer_norm(shape, &self.f32(*x)?, &weights, c.as_ref(), o.output(len)?)?;
            }
            Op::Attention { shape, qkv, .. } => {
                let Slot::Half(o) = o else {
                    return Err(bad_out());
                };
                self.gpu
                    .attention(shape, &self.half(*qkv)?, &mut o.slice_mut(0..len)?)?;
            }
            Op::L2Norm {
                shape, x, feats, ..
            } => {
                let Slot::Half(o) = o else {
                    return Err(bad_out());
                };
                let flen = self.len_of(*feats);
                let mut f = self.take(*feats)?;
                let r = match &mut f {
                    Slot::F32(f) => f.slice_mut(0..flen).map_err(Into::into).and_then(|mut fv| {
                        Ok(self.gpu.l2_normalize(
                            shape,
                            &self.f32(*x)?,
                            &mut fv,
                            &mut o.slice_mut(0..len)?,
                        )?)
                    }),
                    Slot::Half(_) => Err(bad_out()),
                };
                self.put(*feats, f);
                r?;
            }
        }
        Ok(())
    }

    /// Downloads an f32 activation buffer.
    pub(super) fn download(&self, b: Work) -> CudaResult<Vec<f32>> {
        Ok(self.gpu.download(&self.f32(Buf::Work(b))?)?)
    }

    /// Queues the download of an f32 activation buffer into `dst` (same length) after the
    /// forward's launches, without waiting.
    pub(super) fn download_async(&self, b: Work, dst: &mut PinnedVec<f32>) -> CudaResult<()> {
        Ok(self.gpu.download_async(&self.f32(Buf::Work(b))?, dst)?)
    }
}
