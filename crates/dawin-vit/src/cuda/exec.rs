//! The GPU executor of a [`plan`](super::plan::plan): each op's buffers become device views
//! (a parameter tensor of an arena, an activation buffer, the caller's images) and the op one
//! call of a safe launcher of `dawin-kernels`, which checks the views against the shape.

use std::time::Instant;

use dawin_kernels::{
    DeviceArena, DeviceVec, DeviceView, EmbedWeights, GemmWeights, Gpu, Half, NormWeights, Output,
};

use super::plan::{Buf, Op, Work};
use super::{arg_err, CudaResult};
use crate::config::VitConfig;

/// An activation buffer on the device.
enum Slot<T: Half> {
    F32(DeviceVec<f32>),
    Half(DeviceVec<T>),
}

impl<T: Half> Slot<T> {
    fn output(&mut self) -> Output<'_, T> {
        match self {
            Slot::F32(v) => Output::F32(v.view_mut()),
            Slot::Half(v) => Output::Half(v.view_mut()),
        }
    }
}

/// The buffers of one forward: the weight sets' arenas, the images and the activations.
pub(super) struct Exec<'a, T: Half> {
    gpu: &'a Gpu,
    /// The arena of each weight set of the plan.
    arenas: Vec<&'a DeviceArena>,
    images: &'a DeviceVec<f32>,
    /// Indexed by `Work as usize`; `None` for the images and while an op writes the buffer.
    work: Vec<Option<Slot<T>>>,
}

impl<'a, T: Half> Exec<'a, T> {
    /// Allocates the activation buffers of a forward of `batch` images over the weight sets
    /// `arenas` (zero-filled; blend coefficients uploaded when given).
    pub(super) fn new(
        gpu: &'a Gpu,
        cfg: &VitConfig,
        arenas: Vec<&'a DeviceArena>,
        images: &'a DeviceVec<f32>,
        batch: usize,
        coef: Option<&[f32]>,
    ) -> CudaResult<Self> {
        let sets = arenas.len();
        let mut work = Vec::with_capacity(Work::ALL.len());
        for b in Work::ALL {
            let (len, f32) = b.size(cfg, batch, sets);
            work.push(match (b, f32) {
                (Work::Images, _) => None,
                (Work::Coef, _) => match coef {
                    Some(c) => Some(Slot::F32(gpu.upload(c)?)),
                    None => None,
                },
                (_, true) => Some(Slot::F32(gpu.zeros(len)?)),
                (_, false) => Some(Slot::Half(gpu.zeros(len)?)),
            });
        }
        Ok(Exec {
            gpu,
            arenas,
            images,
            work,
        })
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
                Some(Slot::Half(v)) => Ok(v.view()),
                _ => Err(Self::missing(b)),
            },
        }
    }

    /// An f32 buffer to read.
    fn f32(&self, b: Buf) -> CudaResult<DeviceView<'_, f32>> {
        match b {
            Buf::Work(Work::Images) => Ok(self.images.view()),
            Buf::Work(w) => match &self.work[w as usize] {
                Some(Slot::F32(v)) => Ok(v.view()),
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
        let mut o = self.take(out)?;
        let r = self.launch_into(op, &mut o);
        self.put(out, o);
        r
    }

    fn launch_into(&mut self, op: &Op, o: &mut Slot<T>) -> CudaResult<()> {
        let bad_out = || arg_err("plan", format!("{op:?} writes a buffer of the wrong type"));
        let coef = |c: &Option<Buf>| c.map(|c| self.f32(c)).transpose();
        match op {
            Op::Im2col { shape, images, .. } => {
                let Slot::Half(o) = o else {
                    return Err(bad_out());
                };
                self.gpu
                    .im2col(shape, &self.f32(*images)?, &mut o.view_mut())?;
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
                    .gemm(shape, &self.half(*a)?, &weights, c.as_ref(), o.output())?;
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
                    &mut o.view_mut(),
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
                    .layer_norm(shape, &self.f32(*x)?, &weights, c.as_ref(), o.output())?;
            }
            Op::Attention { shape, qkv, .. } => {
                let Slot::Half(o) = o else {
                    return Err(bad_out());
                };
                self.gpu
                    .attention(shape, &self.half(*qkv)?, &mut o.view_mut())?;
            }
            Op::L2Norm {
                shape, x, feats, ..
            } => {
                let Slot::Half(o) = o else {
                    return Err(bad_out());
                };
                let mut f = self.take(*feats)?;
                let r = match &mut f {
                    Slot::F32(f) => self
                        .gpu
                        .l2_normalize(shape, &self.f32(*x)?, &mut f.view_mut(), &mut o.view_mut())
                        .map_err(Into::into),
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
}
