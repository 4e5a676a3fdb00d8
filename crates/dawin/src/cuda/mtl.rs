//! The multi-task evaluation's encoders on a device ([`CudaEncoders`], a [`MtlDevice`]): the
//! base θ0 and the M fine-tuned encoders uploaded once (one at a time, so the host holds one
//! copy at a time), and every encoder the evaluation runs made there:
//!
//! * θ0 and θ_j: the uploaded arenas;
//! * task arithmetic `θ0 + Σ_j w_j τ_j` (weight averaging `w_j = 1/M`, task arithmetic
//!   `w_j = 0.3`, DaWin's per-component merges `w_j = s·λ̄_kj`): the task-arithmetic kernel, one
//!   launch over the whole arena, into one arena kept for the next merge;
//! * TIES-merging, which has no kernel: merged on the host, uploaded;
//! * `dawin-sample`, sample i through `θ0 + Σ_j w_ij τ_j`: the blended forward over the M + 1
//!   arenas when M + 1 ≤ [`dawin_kernels::source::MAX_SETS`] (else `None`: the pipeline runs it
//!   on the CPU).
//!
//! Each forward returns the normalised features; the heads (one per dataset) are applied on the
//! host. **Not run on a GPU yet**; checked on `dawin_vit::cuda::HostVit` (feature
//! `host-device`) in the tests.
use super::cuda_err;
use crate::error::{Error, Result};
use crate::pipeline::mtl::device::{probe, Encoder, EncoderForward, MtlDevice};
use crate::pipeline::mtl::task_arithmetic::encoder_of;
use dawin_core::merge::ParamSource;
use dawin_kernels::source::MAX_SETS;
use dawin_kernels::Gpu;
use dawin_vit::cuda::{CudaVit, Precision, VitDevice};
use dawin_vit::ClipClassifier;
use std::sync::{Arc, Mutex};

/// θ0 and the M fine-tuned encoders on a [`VitDevice`] (model 0 = θ0, model j + 1 = θ_j), and
/// one kept arena for merges.
pub struct CudaEncoders<V: VitDevice = CudaVit> {
    dev: V,
    spare: Mutex<Option<V::Arena>>,
    /// [`crate::mtl::probe`] of θ0 and of each encoder, as uploaded.
    probes: Vec<Vec<f32>>,
}

impl CudaEncoders<CudaVit> {
    /// Uploads `base` and every encoder of `models` (read one at a time into a copy of the
    /// base, as [`crate::mtl::evaluate_mtl`] reads them) to `gpu` in `precision`.
    pub fn upload<E: ParamSource + ?Sized>(
        gpu: Arc<Gpu>,
        base: &ClipClassifier,
        models: &[&E],
        precision: Precision,
    ) -> Result<Self>
    where
        Error: From<E::Error>,
    {
        let vit =
            CudaVit::new(gpu, base.config(), &[base.weights()], precision).map_err(cuda_err)?;
        Self::with_models(vit, base, models)
    }
}

impl<V: VitDevice> CudaEncoders<V> {
    /// `dev` holding θ0 (model 0) gets the encoders of `models` pushed after it.
    pub fn with_models<E: ParamSource + ?Sized>(
        mut dev: V,
        base: &ClipClassifier,
        models: &[&E],
    ) -> Result<Self>
    where
        Error: From<E::Error>,
    {
        if dev.models() != 1 {
            return Err(Error::invalid(
                "device",
                format!("holds {} models; it must hold θ0 alone", dev.models()),
            ));
        }
        let mut probes = vec![probe::<[&[f32]]>(&base.weights().encoder_params()[..])?];
        for m in models {
            let enc = encoder_of(base, *m)?;
            dev.push(enc.weights()).map_err(cuda_err)?;
            probes.push(probe::<[&[f32]]>(&enc.weights().encoder_params()[..])?);
        }
        Ok(CudaEncoders {
            dev,
            spare: Mutex::new(None),
            probes,
        })
    }

    /// The device model.
    pub fn device(&self) -> &V {
        &self.dev
    }

    fn arena(&self, i: usize) -> Result<&V::Arena> {
        self.dev.model(i).ok_or_else(|| {
            Error::invalid(
                "encoder",
                format!("model {i} of {} on the device", self.dev.models()),
            )
        })
    }
}

/// The forward of one or more arenas.
struct Forward<'a, V: VitDevice> {
    dev: &'a V,
    arenas: Vec<&'a V::Arena>,
}

impl<V: VitDevice> EncoderForward for Forward<'_, V> {
    fn features(&self, images: &[f32], batch: usize, coeffs: Option<&[f32]>) -> Result<Vec<f32>> {
        let out = (self.dev)
            .forward(&self.arenas, images, batch, coeffs, true)
            .map_err(cuda_err)?;
        Ok(out.features.expect("features asked for"))
    }
}

/// The forward of an arena made for it (merged or uploaded), kept for the next merge after.
struct Owned<'a, V: VitDevice> {
    enc: &'a CudaEncoders<V>,
    arena: Option<V::Arena>,
}

impl<V: VitDevice> EncoderForward for Owned<'_, V> {
    fn features(&self, images: &[f32], batch: usize, coeffs: Option<&[f32]>) -> Result<Vec<f32>> {
        let a = self.arena.as_ref().expect("present until dropped");
        let out = (self.enc.dev)
            .forward(&[a], images, batch, coeffs, true)
            .map_err(cuda_err)?;
        Ok(out.features.expect("features asked for"))
    }
}

impl<V: VitDevice> Drop for Owned<'_, V> {
    fn drop(&mut self) {
        *self.enc.spare.lock().unwrap_or_else(|e| e.into_inner()) = self.arena.take();
    }
}

impl<V: VitDevice> MtlDevice for CudaEncoders<V> {
    fn describe(&self) -> String {
        format!("{} ({:?})", self.dev.describe(), self.dev.precision())
    }

    fn probes(&self) -> &[Vec<f32>] {
        &self.probes
    }

    fn encoder<'s>(&'s self, enc: Encoder<'_>) -> Result<Option<Box<dyn EncoderForward + 's>>> {
        let m = self.dev.models() - 1;
        let dev = &self.dev;
        let plain = |arenas: Vec<&'s V::Arena>| -> Box<dyn EncoderForward + 's> {
            Box::new(Forward { dev, arenas })
        };
        Ok(Some(match enc {
            Encoder::Base => plain(vec![self.arena(0)?]),
            Encoder::Task(j) => plain(vec![self.arena(j + 1)?]),
            Encoder::Blended => {
                if m + 1 > MAX_SETS {
                    return Ok(None);
                }
                plain((0..=m).map(|i| self.arena(i)).collect::<Result<_>>()?)
            }
            Encoder::Merged(w) => {
                if w.len() != m {
                    return Err(Error::invalid(
                        "weights",
                        format!("{} weights for {m} task vectors", w.len()),
                    ));
                }
                let spare = self.spare.lock().unwrap_or_else(|e| e.into_inner()).take();
                let mut out = match spare {
                    Some(a) => a,
                    None => self.dev.new_arena().map_err(cuda_err)?,
                };
                let models = (1..=m).map(|i| self.arena(i)).collect::<Result<Vec<_>>>()?;
                (self.dev)
                    .task_arithmetic(self.arena(0)?, &models, w, &mut out)
                    .map_err(cuda_err)?;
                Box::new(Owned {
                    enc: self,
                    arena: Some(out),
                })
            }
            Encoder::Host(c) => Box::new(Owned {
                enc: self,
                arena: Some(self.dev.upload(c.weights()).map_err(cuda_err)?),
            }),
        }))
    }
}
