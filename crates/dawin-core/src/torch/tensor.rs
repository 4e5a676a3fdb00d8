//! One tensor of a [`TorchCheckpoint`]: its description and its data, read through its strides.

use std::borrow::Cow;

use half::{bf16, f16};

use super::{Entry, TorchCheckpoint, TorchDType};
use crate::dtype::{DType, Param};
use crate::error::{Error, Result};
use crate::state_dict::OwnedTensor;

/// A tensor of a [`TorchCheckpoint`]: element `i` (multi-index `(i₀, …, iₙ₋₁)`) is at element
/// `storage_offset + Σ iₖ·strideₖ` of its storage. Reading respects the strides (a transposed
/// tensor, a slice, an expanded tensor with stride 0, tensors sharing one storage).
#[derive(Clone, Copy)]
pub struct TorchTensor<'a> {
    ckpt: &'a TorchCheckpoint,
    e: &'a Entry,
}

impl std::fmt::Debug for TorchTensor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorchTensor")
            .field("name", &self.e.name)
            .field("dtype", &self.e.dtype)
            .field("shape", &self.e.shape)
            .field("strides", &self.e.strides)
            .field("offset", &self.e.offset)
            .finish()
    }
}

impl<'a> TorchTensor<'a> {
    pub(super) fn new(ckpt: &'a TorchCheckpoint, e: &'a Entry) -> Self {
        TorchTensor { ckpt, e }
    }

    /// The dotted state-dict name.
    pub fn name(&self) -> &'a str {
        &self.e.name
    }

    /// The element type.
    pub fn dtype(&self) -> TorchDType {
        self.e.dtype
    }

    /// The shape.
    pub fn shape(&self) -> &'a [usize] {
        &self.e.shape
    }

    /// The strides, in elements.
    pub fn strides(&self) -> &'a [usize] {
        &self.e.strides
    }

    /// The offset of element 0 in its storage, in elements.
    pub fn storage_offset(&self) -> usize {
        self.e.offset
    }

    /// The key of its storage (`data/<key>` in a zip archive); tensors sharing a key share data.
    pub fn storage_key(&self) -> &'a str {
        &self.ckpt.storages[self.e.storage].key
    }

    /// Number of elements (1 for a scalar, 0 for an empty tensor).
    pub fn numel(&self) -> usize {
        self.e.shape.iter().product()
    }

    /// Whether the elements are stored row-major without gaps (sizes-1 dims and empty tensors
    /// ignore their strides, as in PyTorch's `is_contiguous`).
    pub fn is_contiguous(&self) -> bool {
        if self.numel() == 0 {
            return true;
        }
        let mut want = 1usize;
        for (&n, &s) in self.e.shape.iter().zip(&self.e.strides).rev() {
            if n != 1 && s != want {
                return false;
            }
            want *= n;
        }
        true
    }

    /// The raw little-endian bytes, borrowed from the file, when the tensor is contiguous.
    pub fn raw_bytes(&self) -> Option<&'a [u8]> {
        if !self.is_contiguous() {
            return None;
        }
        let es = self.e.dtype.size();
        let start = self.e.offset * es;
        let data = self.ckpt.storage_bytes(self.e.storage);
        Some(&data[start.min(data.len())..][..self.numel() * es])
    }

    /// The elements in row-major order as little-endian bytes: borrowed when contiguous,
    /// gathered through the strides otherwise.
    pub fn contiguous_bytes(&self) -> Cow<'a, [u8]> {
        if let Some(b) = self.raw_bytes() {
            return Cow::Borrowed(b);
        }
        Cow::Owned(gather(
            self.ckpt.storage_bytes(self.e.storage),
            self.e.dtype.size(),
            self.e.offset,
            &self.e.shape,
            &self.e.strides,
        ))
    }

    /// The elements as `T` (`f32`, `f16`, `bf16`), in their own dtype; `None` if it differs.
    pub fn to_vec<T: Param>(&self) -> Option<Vec<T>> {
        (self.e.dtype.to_dtype() == Some(T::DTYPE))
            .then(|| bytemuck::pod_collect_to_vec(&self.contiguous_bytes()))
    }

    /// The elements converted to `f32` (floats widened or rounded to nearest, integers cast with
    /// `as`, bools as 0/1), row-major.
    pub fn to_f32_vec(&self) -> Vec<f32> {
        let b = self.contiguous_bytes();
        fn conv<T: bytemuck::Pod>(b: &[u8], f: impl Fn(T) -> f32) -> Vec<f32> {
            let v: Vec<T> = bytemuck::pod_collect_to_vec(b);
            v.into_iter().map(f).collect()
        }
        match self.e.dtype {
            TorchDType::F32 => bytemuck::pod_collect_to_vec(&b),
            TorchDType::F16 => conv::<f16>(&b, |x| x.to_f32()),
            TorchDType::BF16 => conv::<bf16>(&b, |x| x.to_f32()),
            TorchDType::F64 => conv::<f64>(&b, |x| x as f32),
            TorchDType::I64 => conv::<i64>(&b, |x| x as f32),
            TorchDType::I32 => conv::<i32>(&b, |x| x as f32),
            TorchDType::I16 => conv::<i16>(&b, |x| x as f32),
            TorchDType::I8 => b.iter().map(|&x| x as i8 as f32).collect(),
            TorchDType::U8 | TorchDType::Bool => b.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The tensor as an [`OwnedTensor`] (contiguous copy) when its dtype has a [`DType`]; the
    /// error names the tensor, the file and the dtype otherwise.
    pub fn to_owned_tensor(&self) -> Result<OwnedTensor> {
        let dtype = self.dtype_or_err()?;
        Ok(OwnedTensor {
            name: self.e.name.clone(),
            dtype,
            shape: self.e.shape.clone(),
            bytes: self.contiguous_bytes().into_owned(),
        })
    }

    pub(crate) fn dtype_or_err(&self) -> Result<DType> {
        self.e
            .dtype
            .to_dtype()
            .ok_or_else(|| Error::UnsupportedDtype {
                name: format!("{} in {}", self.e.name, self.ckpt.path.display()),
                dtype: self.e.dtype.name().to_string(),
            })
    }
}

/// Gathers `shape` elements of `elem` bytes at `offset + Σ i·stride` (elements) of `src`, in
/// row-major order. Bounds were checked when the checkpoint was opened.
fn gather(src: &[u8], elem: usize, offset: usize, shape: &[usize], strides: &[usize]) -> Vec<u8> {
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n * elem);
    if n == 0 {
        return out;
    }
    let nd = shape.len();
    if nd == 0 {
        out.extend_from_slice(&src[offset * elem..(offset + 1) * elem]);
        return out;
    }
    let (inner, istride) = (shape[nd - 1], strides[nd - 1]);
    let mut idx = vec![0usize; nd - 1];
    loop {
        let base = offset + idx.iter().zip(strides).map(|(&i, &s)| i * s).sum::<usize>();
        if istride == 1 {
            out.extend_from_slice(&src[base * elem..(base + inner) * elem]);
        } else {
            for j in 0..inner {
                let o = (base + j * istride) * elem;
                out.extend_from_slice(&src[o..o + elem]);
            }
        }
        let mut d = nd - 1;
        loop {
            if d == 0 {
                return out;
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::gather;

    #[test]
    fn gather_transposed_and_strided() {
        // A 2×3 matrix 0..6 stored row-major; its transpose has shape [3, 2], strides [1, 3].
        let src: Vec<u8> = (0u8..6).collect();
        assert_eq!(gather(&src, 1, 0, &[3, 2], &[1, 3]), vec![0, 3, 1, 4, 2, 5]);
        // Column 1: shape [2], stride 3, offset 1.
        assert_eq!(gather(&src, 1, 1, &[2], &[3]), vec![1, 4]);
        // Expanded: stride 0.
        assert_eq!(gather(&src, 1, 2, &[3], &[0]), vec![2, 2, 2]);
        // Scalar and empty.
        assert_eq!(gather(&src, 1, 5, &[], &[]), vec![5]);
        assert!(gather(&src, 1, 0, &[0, 3], &[3, 1]).is_empty());
        // Two-byte elements.
        let src: Vec<u8> = (0u8..8).collect();
        assert_eq!(
            gather(&src, 2, 0, &[2, 2], &[1, 2]),
            vec![0, 1, 4, 5, 2, 3, 6, 7]
        );
    }
}
