//! Element types of checkpoints and the conversions between them.
//!
//! Arithmetic is always done in `f32`; [`Param`] is the storage type. Conversions to the half
//! types round to nearest, ties to even, and keep NaN a NaN.

use half::{bf16, f16};

/// The dtype of a tensor in a safetensors file, as far as DaWin handles it.
///
/// Parameters are `F32`, `F16` or `BF16` (see [`DType::is_float_param`]); `F64`, `I64` and `U8`
/// occur in datasets (labels, raw images) and in some checkpoints (e.g. `position_ids`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE single precision.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
    /// IEEE double precision.
    F64,
    /// Signed 64-bit integer.
    I64,
    /// Unsigned byte.
    U8,
}

impl DType {
    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::F64 | DType::I64 => 8,
            DType::U8 => 1,
        }
    }

    /// The lower-case name: `"f32"`, `"f16"`, `"bf16"`, `"f64"`, `"i64"`, `"u8"`.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F64 => "f64",
            DType::I64 => "i64",
            DType::U8 => "u8",
        }
    }

    /// Whether tensors of this dtype are interpolated by merges (`F32`, `F16`, `BF16`).
    /// Other tensors must be identical across checkpoints and are copied.
    pub fn is_float_param(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16)
    }

    pub(crate) fn from_safetensors(d: safetensors::Dtype) -> Option<Self> {
        use safetensors::Dtype as S;
        Some(match d {
            S::F32 => DType::F32,
            S::F16 => DType::F16,
            S::BF16 => DType::BF16,
            S::F64 => DType::F64,
            S::I64 => DType::I64,
            S::U8 => DType::U8,
            _ => return None,
        })
    }

    pub(crate) fn to_safetensors(self) -> safetensors::Dtype {
        use safetensors::Dtype as S;
        match self {
            DType::F32 => S::F32,
            DType::F16 => S::F16,
            DType::BF16 => S::BF16,
            DType::F64 => S::F64,
            DType::I64 => S::I64,
            DType::U8 => S::U8,
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A parameter storage type: `f32`, [`half::f16`] or [`half::bf16`]. Arithmetic is done in `f32`.
pub trait Param: bytemuck::Pod + PartialEq + std::fmt::Debug + Send + Sync + 'static {
    /// The matching [`DType`].
    const DTYPE: DType;
    /// Widen to `f32` (exact).
    fn to_f32(self) -> f32;
    /// Narrow from `f32`, rounding to nearest, ties to even; NaN stays NaN.
    fn from_f32(x: f32) -> Self;
    /// `dst[i] = src[i].to_f32()`, vectorised where the type allows. Lengths must match.
    fn slice_to_f32(src: &[Self], dst: &mut [f32]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = s.to_f32();
        }
    }
    /// `dst[i] = Self::from_f32(src[i])`, vectorised where the type allows. Lengths must match.
    fn slice_from_f32(src: &[f32], dst: &mut [Self]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = Self::from_f32(*s);
        }
    }
}

impl Param for f32 {
    const DTYPE: DType = DType::F32;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        x
    }
    fn slice_to_f32(src: &[Self], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
    fn slice_from_f32(src: &[f32], dst: &mut [Self]) {
        dst.copy_from_slice(src);
    }
}

impl Param for f16 {
    const DTYPE: DType = DType::F16;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        f16::from_f32(x)
    }
    fn slice_to_f32(src: &[Self], dst: &mut [f32]) {
        use half::slice::HalfFloatSliceExt;
        src.convert_to_f32_slice(dst);
    }
    fn slice_from_f32(src: &[f32], dst: &mut [Self]) {
        use half::slice::HalfFloatSliceExt;
        dst.convert_from_f32_slice(src);
    }
}

/// bf16 → f32: the bf16 bits are the high half of the f32 (exact).
#[inline(always)]
pub(crate) fn bf16_bits_to_f32(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// f32 → bf16 bits, round to nearest even, NaN quieted (same results as `half::bf16::from_f32`).
/// Branch-free so that slice loops vectorise.
#[inline(always)]
pub(crate) fn f32_to_bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let is_nan = (b & 0x7fff_ffff) > 0x7f80_0000;
    let rounded = (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16;
    let nan = ((b >> 16) as u16) | 0x0040;
    if is_nan {
        nan
    } else {
        rounded
    }
}

impl Param for bf16 {
    const DTYPE: DType = DType::BF16;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16_bits_to_f32(self.to_bits())
    }
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        bf16::from_bits(f32_to_bf16_bits(x))
    }
    fn slice_to_f32(src: &[Self], dst: &mut [f32]) {
        let src: &[u16] = bytemuck::cast_slice(src);
        for (d, s) in dst.iter_mut().zip(src) {
            *d = bf16_bits_to_f32(*s);
        }
    }
    fn slice_from_f32(src: &[f32], dst: &mut [Self]) {
        let dst: &mut [u16] = bytemuck::cast_slice_mut(dst);
        for (d, s) in dst.iter_mut().zip(src) {
            *d = f32_to_bf16_bits(*s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_conversion_matches_half_crate() {
        let specials = [
            0.0f32,
            -0.0,
            1.0,
            -1.5,
            f32::MAX,
            f32::MIN_POSITIVE,
            1e-40,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1.0 + f32::EPSILON,
            // Ties: 1 + 2^-8 is exactly halfway between two bf16 values.
            1.0 + 1.0 / 256.0,
            1.0 + 3.0 / 256.0,
        ];
        let mut x = 0x0123_4567u32;
        let mut values: Vec<f32> = specials.to_vec();
        for _ in 0..100_000 {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let v = f32::from_bits(x);
            if !v.is_nan() {
                values.push(v);
            }
        }
        for v in values {
            assert_eq!(
                <bf16 as Param>::from_f32(v).to_bits(),
                bf16::from_f32(v).to_bits(),
                "{v:e}"
            );
        }
        assert!(<bf16 as Param>::from_f32(f32::NAN).to_f32().is_nan());
        let mut out = [bf16::ZERO; 3];
        <bf16 as Param>::slice_from_f32(&[1.0, f32::NAN, -2.0], &mut out);
        assert!(out[1].is_nan());
        assert_eq!(out[2].to_f32(), -2.0);
    }

    #[test]
    fn f16_slice_conversion_matches_scalar() {
        let src: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) * 0.37).collect();
        let mut h = vec![f16::ZERO; src.len()];
        <f16 as Param>::slice_from_f32(&src, &mut h);
        let mut back = vec![0.0; src.len()];
        <f16 as Param>::slice_to_f32(&h, &mut back);
        for i in 0..src.len() {
            assert_eq!(h[i], f16::from_f32(src[i]));
            assert_eq!(back[i], h[i].to_f32());
        }
    }
}
