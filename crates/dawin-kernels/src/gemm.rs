//! The tensor-core GEMM of `kernels/gemm.cu` on device views (sm_80 and newer):
//!
//! `out[i, n] = γ_i[n]·act(Σ_s c[i, s]·(Σ_k A[i, k]·W_s[n, k] + bias_s[n])) (+ out[i, n])`
//!
//! with `act` the identity, QuickGELU `x·σ(1.702x)` or exact GELU `x·½(1 + erf(x/√2))`
//! ([`GemmActivation`]), `γ_i[n] = Σ_s c[i, s]·γ_s[n]` a per-column scale when the weight sets
//! carry one (LayerScale: the merged model's γ times the merged model's branch) and 1 otherwise,
//! one weight set without coefficients (c = 1) and up to [`MAX_SETS`] with them (the per-sample
//! blend: `c[i, 0] = 1 − Σ_j w_ij`, `c[i, j] = w_ij` gives `Y0 + Σ_j w_ij (Y_j − Y0)`), f16 or
//! bf16 inputs, f32 accumulation.

use crate::buffer::DeviceView;
use crate::device::Gpu;
use crate::error::Result;
use crate::launch::{
    ensure, ensure_aligned16, ensure_len, struct_size, to_u32, Addresses, KernelArg,
};
use crate::ops::{check_sets, Half, Output};
use crate::source::{ArgKind, GEMM_PARAMS, MAX_SETS};
use cudarc::driver::{DeviceRepr, LaunchConfig};

/// How the GEMM kernels read the tensor-core fragments from shared memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragmentLoad {
    /// `ldmatrix.x4` (6 instructions per warp and k16 step): the default.
    Ldmatrix,
    /// Plain 32-bit shared loads (24 per warp and k16 step): the `gemm_*lds_*` kernels, for
    /// comparison and as a fallback.
    Lds,
}

impl FragmentLoad {
    /// [`FragmentLoad::Lds`] when the environment variable `DAWIN_VIT_GEMM` is `lds`, else
    /// [`FragmentLoad::Ldmatrix`] (what [`Gpu::gemm`] uses).
    pub fn from_env() -> FragmentLoad {
        match std::env::var("DAWIN_VIT_GEMM").as_deref() {
            Ok("lds") => FragmentLoad::Lds,
            _ => FragmentLoad::Ldmatrix,
        }
    }
}

/// The activation of a GEMM's epilogue, applied after the bias (and the blend).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GemmActivation {
    /// None.
    #[default]
    Identity,
    /// QuickGELU `x·σ(1.702x)` (OpenAI's CLIP).
    QuickGelu,
    /// Exact GELU `x·½(1 + erf(x/√2))` (PyTorch's `nn.GELU()`; CUDA's `erff`).
    Gelu,
}

impl GemmActivation {
    /// `GEMM_ACT_*` of `gemm.cu`.
    fn code(self) -> u32 {
        match self {
            GemmActivation::Identity => 0,
            GemmActivation::QuickGelu => 1,
            GemmActivation::Gelu => 2,
        }
    }
}

/// Block tile of the GEMM: rows (of A and of the output).
const TILE_M: usize = 128;
/// Block tile of the GEMM: columns (rows of W).
const TILE_N: usize = 128;

/// The shape of one [`Gpu::gemm`]: A `[m, k]` (row stride `lda`) times each weight set's
/// `W [n, k]ᵀ` into `[m, n]` (row stride `ldo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmShape {
    /// Rows of A and of the output.
    pub m: usize,
    /// Columns of the output (rows of each W).
    pub n: usize,
    /// Inner dimension; a positive multiple of 8.
    pub k: usize,
    /// Row stride of A in elements; a multiple of 8, at least `k`.
    pub lda: usize,
    /// Row stride of the output in elements, at least `n`.
    pub ldo: usize,
    /// Output rows per row of blend coefficients (e.g. tokens per image); 1 without a blend.
    pub rows_per_coef: usize,
    /// The activation after the bias (and the blend).
    pub act: GemmActivation,
    /// Add the result to what the f32 output holds (`out += y`, a residual connection).
    pub accumulate: bool,
}

impl GemmShape {
    /// Contiguous `[m, k] × [n, k]ᵀ → [m, n]`: `lda = k`, `ldo = n`, one coefficient row per
    /// output row, no activation, no accumulation.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        GemmShape {
            m,
            n,
            k,
            lda: k,
            ldo: n,
            rows_per_coef: 1,
            act: GemmActivation::Identity,
            accumulate: false,
        }
    }

    /// Elements A must hold, `(m − 1)·lda + k`.
    pub fn a_len(&self) -> usize {
        (self.m.max(1) - 1) * self.lda + self.k
    }

    /// Elements each W must hold, `n·k`.
    pub fn weight_len(&self) -> usize {
        self.n * self.k
    }

    /// Elements each bias (and each scale) must hold, `n`.
    pub fn bias_len(&self) -> usize {
        self.n
    }

    /// Elements the output must hold, `(m − 1)·ldo + n`.
    pub fn out_len(&self) -> usize {
        (self.m.max(1) - 1) * self.ldo + self.n
    }

    /// Coefficients a blend over `sets` weight sets needs, `⌈m / rows_per_coef⌉·sets`.
    pub fn coef_len(&self, sets: usize) -> usize {
        self.m.div_ceil(self.rows_per_coef.max(1)) * sets
    }

    /// The checks of [`Gpu::gemm`] that need no buffer, for `sets` weight sets, blended or not,
    /// writing f32 or not; errors name the field.
    pub fn check(&self, sets: usize, blended: bool, out_f32: bool) -> Result<()> {
        let (m, n, k) = (self.m, self.n, self.k);
        ensure(k > 0 && k.is_multiple_of(8), "k", || {
            format!("{k} must be a positive multiple of 8")
        })?;
        ensure(self.lda.is_multiple_of(8) && self.lda >= k, "lda", || {
            format!("{} must be a multiple of 8 and ≥ k = {k}", self.lda)
        })?;
        ensure(self.ldo >= n, "ldo", || format!("{} < n = {n}", self.ldo))?;
        ensure(m > 0 && n > 0, "m, n", || format!("empty GEMM ({m} × {n})"))?;
        check_sets("sets", sets, blended)?;
        ensure(self.rows_per_coef > 0, "rows_per_coef", || {
            "must be > 0".into()
        })?;
        ensure(!self.accumulate || out_f32, "accumulate", || {
            "accumulating (a residual) needs an f32 output".into()
        })?;
        ensure(m.div_ceil(TILE_M) <= 65_535, "m", || {
            format!("{m} rows need more than 65535 row tiles")
        })?;
        for (arg, v) in [("m", m), ("n", n), ("lda", self.lda), ("ldo", self.ldo)] {
            to_u32(arg, v)?;
        }
        Ok(())
    }
}

/// One weight set of a GEMM: `W [n, k]` row-major (a linear map's weight, 16-byte aligned), its
/// bias `[n]`, if any, and its per-column output scale `γ [n]` (LayerScale), if any: every set
/// of a launch has a scale or none has.
#[derive(Debug)]
pub struct GemmWeights<'a, T: Half> {
    /// The weight.
    pub weight: DeviceView<'a, T>,
    /// The bias.
    pub bias: Option<DeviceView<'a, T>>,
    /// The scale γ applied after the activation (LayerScale).
    pub scale: Option<DeviceView<'a, T>>,
}

/// `struct GemmParams` of `gemm.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct GemmParams {
    a: u64,
    w: [u64; MAX_SETS],
    bias: [u64; MAX_SETS],
    scale: [u64; MAX_SETS],
    out: u64,
    res: u64,
    coef: u64,
    m: u32,
    n: u32,
    k: u32,
    lda: u32,
    ldo: u32,
    sets: u32,
    rows_per_coef: u32,
    act: u32,
    out_f32: u32,
    pad: u32,
}
// SAFETY: #[repr(C)] plain data with the layout of the C struct (size checked below and against
// the PTX by the registry tests).
unsafe impl DeviceRepr for GemmParams {}
impl KernelArg for GemmParams {
    const KIND: ArgKind = GEMM_PARAMS;
}
const _: () = assert!(std::mem::size_of::<GemmParams>() == struct_size(GEMM_PARAMS));

impl Gpu {
    /// One GEMM with its fused epilogue (bias, activation, blend over weight sets, scale,
    /// accumulation into an f32 output); the blend kernel runs when `coef` is given
    /// (`[⌈m / rows_per_coef⌉, sets]` f32). Checks (errors name the argument): the shape
    /// ([`GemmShape::check`]), every view's length, A and every W 16-byte aligned, a scale on
    /// every set or on none, 1 ..= [`MAX_SETS`] sets (one without coefficients), a device of
    /// compute capability 8.0 or newer.
    ///
    /// Fragments are read with [`FragmentLoad::from_env`] (`ldmatrix` unless
    /// `DAWIN_VIT_GEMM=lds`).
    pub fn gemm<T: Half>(
        &self,
        shape: &GemmShape,
        a: &DeviceView<'_, T>,
        sets: &[GemmWeights<'_, T>],
        coef: Option<&DeviceView<'_, f32>>,
        out: Output<'_, T>,
    ) -> Result<()> {
        self.gemm_with(shape, a, sets, coef, out, FragmentLoad::from_env())
    }

    /// [`Gpu::gemm`] with an explicit fragment load.
    pub fn gemm_with<T: Half>(
        &self,
        shape: &GemmShape,
        a: &DeviceView<'_, T>,
        sets: &[GemmWeights<'_, T>],
        coef: Option<&DeviceView<'_, f32>>,
        mut out: Output<'_, T>,
        load: FragmentLoad,
    ) -> Result<()> {
        let s = shape;
        s.check(sets.len(), coef.is_some(), out.is_f32())?;
        ensure_len("a", a.len(), s.a_len())?;
        for w in sets {
            ensure_len("weight", w.weight.len(), s.weight_len())?;
            if let Some(b) = &w.bias {
                ensure_len("bias", b.len(), s.bias_len())?;
            }
            if let Some(g) = &w.scale {
                ensure_len("scale", g.len(), s.bias_len())?;
            }
        }
        check_scales(&sets.iter().map(|w| w.scale.is_some()).collect::<Vec<_>>())?;
        if let Some(c) = coef {
            ensure_len("coef", c.len(), s.coef_len(sets.len()))?;
        }
        ensure_len("out", out.len(), s.out_len())?;
        let mut addr = Addresses::new(self);
        let mut p = GemmParams {
            a: addr.of(a),
            coef: coef.map_or(0, |c| addr.of(c)),
            m: to_u32("m", s.m)?,
            n: to_u32("n", s.n)?,
            k: to_u32("k", s.k)?,
            lda: to_u32("lda", s.lda)?,
            ldo: to_u32("ldo", s.ldo)?,
            sets: sets.len() as u32,
            rows_per_coef: to_u32("rows_per_coef", s.rows_per_coef)?,
            act: s.act.code(),
            out_f32: u32::from(out.is_f32()),
            ..Default::default()
        };
        ensure_aligned16("a", p.a)?;
        for (i, w) in sets.iter().enumerate() {
            p.w[i] = addr.of(&w.weight);
            ensure_aligned16("weight", p.w[i])?;
            p.bias[i] = w.bias.as_ref().map_or(0, |b| addr.of(b));
            p.scale[i] = w.scale.as_ref().map_or(0, |g| addr.of(g));
        }
        p.out = out.address(&mut addr);
        if s.accumulate {
            p.res = p.out;
        }
        let blend = if coef.is_some() { "blend_" } else { "" };
        let lds = if load == FragmentLoad::Lds {
            "lds_"
        } else {
            ""
        };
        let name = format!("gemm_{blend}{lds}{}", T::DTYPE.name());
        let cfg = LaunchConfig {
            grid_dim: (s.n.div_ceil(TILE_N) as u32, s.m.div_ceil(TILE_M) as u32, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = self.launch(&name)?;
        l.arg(&p)?;
        l.run(cfg)
    }
}

/// The scales of a launch: on every weight set or on none (the kernel reads `scale[0]` to
/// decide).
pub(crate) fn check_scales(has_scale: &[bool]) -> Result<()> {
    let n = has_scale.iter().filter(|&&s| s).count();
    ensure(n == 0 || n == has_scale.len(), "scale", || {
        format!(
            "{n} of {} weight sets have a scale: every set needs one, or none",
            has_scale.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> GemmShape {
        GemmShape::new(5, 10, 16)
    }

    type Mutation = fn(&mut GemmShape);

    #[test]
    fn gemm_requirements_name_the_field() {
        ok().check(1, false, false).unwrap();
        let cases: [(&str, Mutation); 5] = [
            ("`k`", |p| p.k = 12),
            ("`lda`", |p| p.lda = 12),
            ("`ldo`", |p| p.ldo = 9),
            ("`rows_per_coef`", |p| p.rows_per_coef = 0),
            ("`m, n`", |p| p.m = 0),
        ];
        for (field, f) in cases {
            let mut p = ok();
            f(&mut p);
            let e = p.check(1, false, false).unwrap_err().to_string();
            assert!(e.contains(field), "{field}: {e}");
        }
        // Two sets need coefficients; more than MAX_SETS are refused; accumulation needs f32.
        assert!(ok()
            .check(2, false, false)
            .unwrap_err()
            .to_string()
            .contains("`sets`"));
        ok().check(2, true, false).unwrap();
        let e = ok().check(9, true, false).unwrap_err().to_string();
        assert!(e.contains("1..=8"), "{e}");
        let acc = GemmShape {
            accumulate: true,
            ..ok()
        };
        assert!(acc
            .check(1, false, false)
            .unwrap_err()
            .to_string()
            .contains("accumulate"));
        acc.check(1, false, true).unwrap();
        check_scales(&[true, true]).unwrap();
        check_scales(&[false, false]).unwrap();
        let e = check_scales(&[true, false]).unwrap_err().to_string();
        assert!(e.contains("`scale`") && e.contains("1 of 2"), "{e}");
    }

    #[test]
    fn the_parameter_struct_is_the_registered_argument() {
        let (_, sig) = crate::source::find_kernel("gemm_blend_lds_bf16").unwrap();
        crate::launch::check_arg::<GemmParams>(sig, 0).unwrap();
        assert!(crate::launch::check_arg::<u64>(sig, 0).is_err());
    }

    #[test]
    fn lengths_follow_the_strides() {
        let s = GemmShape {
            lda: 24,
            ldo: 12,
            rows_per_coef: 2,
            ..ok()
        };
        assert_eq!(s.a_len(), 4 * 24 + 16);
        assert_eq!(s.out_len(), 4 * 12 + 10);
        assert_eq!((s.weight_len(), s.bias_len()), (160, 10));
        assert_eq!(s.coef_len(3), 3 * 3);
    }
}
