//! Parameter arenas: all tensors of a checkpoint in one contiguous buffer with an offset table.
//!
//! Every tensor starts at a multiple of [`ARENA_GRANULE`] elements (at least [`ARENA_ALIGN`]
//! bytes) and the gaps are zero, so a merge of a whole model is one kernel launch over the whole
//! buffer (padding included: merging zeros gives zeros), and every tensor is aligned for
//! 16-byte vector loads. The element offsets do not depend on the dtype, so a cast of a whole
//! arena is one launch too. [`ArenaLayout`] is the
//! offset table, [`HostArena`] the buffer in host memory (also what the CPU fallback merges),
//! and [`crate::DeviceArena`] the buffer on a GPU.

use crate::error::{Error, Result};
use dawin_core::{DType, OwnedTensor, Param, StateDict};
use std::collections::HashMap;

/// Granularity of tensor offsets and of the total length of an arena, in elements, for every
/// dtype: 256 bytes for f16/bf16, 512 bytes for f32.
pub const ARENA_GRANULE: usize = 128;

/// Minimum alignment of every tensor in an arena, in bytes (`ARENA_GRANULE` elements of the
/// smallest dtype).
pub const ARENA_ALIGN: usize = 256;

/// One tensor of an arena.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArenaEntry {
    /// Tensor name, as the checkpoint spells it.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Offset of the first element, in elements (a multiple of [`ARENA_GRANULE`]).
    pub offset: usize,
    /// Number of elements (product of the shape).
    pub len: usize,
}

impl ArenaEntry {
    /// The element range of the tensor inside the arena.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len
    }
}

/// The offset table of an arena: one dtype, tensors in a fixed order, each at an element offset
/// that is a multiple of [`ARENA_GRANULE`] (so at least [`ARENA_ALIGN`] bytes).
///
/// offset_0 = 0, offset_{i+1} = round_up(offset_i + len_i, G),
/// total = round_up(offset_last + len_last, G), with G = [`ARENA_GRANULE`] for every dtype.
#[derive(Clone, Debug)]
pub struct ArenaLayout {
    dtype: DType,
    entries: Vec<ArenaEntry>,
    index: HashMap<String, usize>,
    total: usize,
}

impl PartialEq for ArenaLayout {
    fn eq(&self, other: &Self) -> bool {
        self.dtype == other.dtype && self.entries == other.entries && self.total == other.total
    }
}

impl Eq for ArenaLayout {}

fn round_up(x: usize, to: usize) -> Option<usize> {
    x.checked_add(to - 1).map(|y| y / to * to)
}

impl ArenaLayout {
    /// Lays out `tensors` (name, shape) in the given order for elements of `dtype`.
    ///
    /// Errors: a duplicate name, a size that overflows `usize`.
    pub fn new<N: Into<String>>(
        dtype: DType,
        tensors: impl IntoIterator<Item = (N, Vec<usize>)>,
    ) -> Result<ArenaLayout> {
        if !dtype.is_float_param() {
            return Err(Error::arg(
                "dtype",
                format!(
                    "an arena holds f32, f16 or bf16 parameters, not {}",
                    dtype.name()
                ),
            ));
        }
        let granule = ARENA_GRANULE;
        let mut entries = Vec::new();
        let mut index = HashMap::new();
        let mut offset = 0usize;
        let overflow = |name: &str| {
            Error::arg(
                "tensors",
                format!("tensor `{name}`: the arena size overflows usize"),
            )
        };
        for (name, shape) in tensors {
            let name: String = name.into();
            let len = shape
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| overflow(&name))?;
            if index.insert(name.clone(), entries.len()).is_some() {
                return Err(Error::arg(
                    "tensors",
                    format!("tensor `{name}` appears twice"),
                ));
            }
            let end = offset.checked_add(len).ok_or_else(|| overflow(&name))?;
            entries.push(ArenaEntry {
                name: name.clone(),
                shape,
                offset,
                len,
            });
            offset = round_up(end, granule).ok_or_else(|| overflow(&name))?;
        }
        offset
            .checked_mul(dtype.size())
            .ok_or_else(|| overflow("(total)"))?;
        Ok(ArenaLayout {
            dtype,
            entries,
            index,
            total: offset,
        })
    }

    /// The same tensors laid out for another dtype (for casts): the same element offsets.
    pub fn with_dtype(&self, dtype: DType) -> Result<ArenaLayout> {
        ArenaLayout::new(
            dtype,
            self.entries
                .iter()
                .map(|e| (e.name.clone(), e.shape.clone())),
        )
    }

    /// Element type of the arena.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The tensors, in arena order.
    pub fn entries(&self) -> &[ArenaEntry] {
        &self.entries
    }

    /// The entry of a tensor.
    pub fn get(&self, name: &str) -> Option<&ArenaEntry> {
        self.index.get(name).map(|&i| &self.entries[i])
    }

    /// The entry of a tensor, or [`Error::NoSuchTensor`].
    pub fn entry(&self, name: &str) -> Result<&ArenaEntry> {
        self.get(name)
            .ok_or_else(|| Error::NoSuchTensor(name.to_string()))
    }

    /// Total length of the buffer in elements, padding included.
    pub fn len(&self) -> usize {
        self.total
    }

    /// True when the arena holds no element.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Total size of the buffer in bytes, padding included (a multiple of [`ARENA_ALIGN`]).
    pub fn size_bytes(&self) -> usize {
        self.total * self.dtype.size()
    }

    /// Number of parameters (elements of all tensors, padding excluded).
    pub fn numel(&self) -> usize {
        self.entries.iter().map(|e| e.len).sum()
    }

    /// Checks that `other` holds the same tensors (names, shapes, order) with the same dtype,
    /// so that an element-wise operation over the two buffers pairs the right parameters.
    /// The error names the first tensor that differs.
    pub fn check_same(&self, other: &ArenaLayout, what: &str) -> Result<()> {
        self.check_same_tensors(other, what)?;
        if self.dtype != other.dtype {
            return Err(Error::LayoutMismatch(format!(
                "{what}: dtype {} vs {}",
                self.dtype.name(),
                other.dtype.name()
            )));
        }
        Ok(())
    }

    /// Like [`ArenaLayout::check_same`] but allows a different dtype (for casts).
    pub fn check_same_tensors(&self, other: &ArenaLayout, what: &str) -> Result<()> {
        if self.entries.len() != other.entries.len() {
            return Err(Error::LayoutMismatch(format!(
                "{what}: {} tensors vs {}",
                self.entries.len(),
                other.entries.len()
            )));
        }
        for (a, b) in self.entries.iter().zip(&other.entries) {
            if a.name != b.name || a.shape != b.shape {
                return Err(Error::LayoutMismatch(format!(
                    "{what}: tensor `{}` {:?} vs `{}` {:?}",
                    a.name, a.shape, b.name, b.shape
                )));
            }
        }
        Ok(())
    }
}

/// The names of the parameter tensors of `sd` (f32, f16, bf16), in name order. Other tensors
/// (integer buffers such as `position_ids`, tensors of dtypes dawin-core does not read) are not
/// parameters: merges copy them, and arenas leave them out.
pub fn param_names(sd: &StateDict) -> Vec<&str> {
    sd.names()
        .into_iter()
        .filter(|n| sd.get(n).is_some_and(|t| t.dtype.is_float_param()))
        .collect()
}

/// The dtype every tensor of `sd` will have in an arena: `want`, or the dtype the parameter
/// tensors share.
pub(crate) fn state_dict_dtype(sd: &StateDict, want: Option<DType>) -> Result<DType> {
    if let Some(d) = want {
        return Ok(d);
    }
    let mut found: Option<(DType, String)> = None;
    for name in param_names(sd) {
        let t = sd.tensor(name)?;
        match &found {
            None => found = Some((t.dtype, name.to_string())),
            Some((d, first)) if *d != t.dtype => {
                return Err(Error::arg(
                    "dtype",
                    format!(
                        "{}: tensor `{name}` is {} but `{first}` is {}; pass the arena dtype \
                         to convert",
                        sd.path().display(),
                        t.dtype.name(),
                        d.name()
                    ),
                ))
            }
            _ => {}
        }
    }
    found.map(|(d, _)| d).ok_or_else(|| {
        Error::arg(
            "state_dict",
            format!("{} holds no f32, f16 or bf16 tensor", sd.path().display()),
        )
    })
}

/// The layout of a state dict's parameter tensors (in name order).
pub(crate) fn state_dict_layout(sd: &StateDict, dtype: DType) -> Result<ArenaLayout> {
    let mut tensors = Vec::new();
    for name in param_names(sd) {
        let t = sd.tensor(name)?;
        tensors.push((name.to_string(), t.shape.to_vec()));
    }
    ArenaLayout::new(dtype, tensors)
}

/// Bytes of one tensor of `sd` as `dtype` (converted through f32 when the dtypes differ).
pub(crate) fn tensor_bytes_as<'a>(
    sd: &'a StateDict,
    name: &str,
    dtype: DType,
) -> Result<std::borrow::Cow<'a, [u8]>> {
    let t = sd.tensor(name)?;
    let want_bytes = t.numel() * t.dtype.size();
    if t.bytes.len() != want_bytes {
        return Err(Error::arg(
            "state_dict",
            format!(
                "{}: tensor `{name}` has {} bytes, its shape {:?} and dtype {} need {want_bytes}",
                sd.path().display(),
                t.bytes.len(),
                t.shape,
                t.dtype.name()
            ),
        ));
    }
    if t.dtype == dtype {
        return Ok(std::borrow::Cow::Borrowed(t.bytes));
    }
    let f = t.to_f32_vec();
    let bytes = match dtype {
        DType::F32 => bytemuck::cast_slice(&f).to_vec(),
        DType::F16 => bytes_from_f32::<half::f16>(&f),
        DType::BF16 => bytes_from_f32::<half::bf16>(&f),
        other => {
            return Err(Error::arg(
                "dtype",
                format!(
                    "an arena holds f32, f16 or bf16 parameters, not {}",
                    other.name()
                ),
            ))
        }
    };
    Ok(std::borrow::Cow::Owned(bytes))
}

fn bytes_from_f32<T: Param>(f: &[f32]) -> Vec<u8> {
    let v: Vec<T> = f.iter().map(|&x| T::from_f32(x)).collect();
    bytemuck::cast_slice(&v).to_vec()
}

/// An arena in host memory: the CPU side of [`crate::DeviceArena`], and what the CPU fallback
/// merges (`dawin_core::merge` over [`HostArena::as_slice`]).
#[derive(Clone, Debug, PartialEq)]
pub struct HostArena {
    layout: ArenaLayout,
    /// 8-byte words, so that the buffer is aligned for every dtype.
    words: Vec<u64>,
}

impl HostArena {
    /// A zero-filled arena.
    pub fn zeros(layout: ArenaLayout) -> HostArena {
        let words = vec![0u64; layout.size_bytes() / 8];
        HostArena { layout, words }
    }

    /// Packs the parameter tensors (f32, f16, bf16; see [`param_names`]) of a state dict,
    /// converted to `dtype` (or in their common dtype when `dtype` is `None`; mixed dtypes are
    /// then an error naming the tensor). Integer tensors are left out.
    pub fn from_state_dict(sd: &StateDict, dtype: Option<DType>) -> Result<HostArena> {
        let dtype = state_dict_dtype(sd, dtype)?;
        let mut arena = HostArena::zeros(state_dict_layout(sd, dtype)?);
        let entries = arena.layout.entries.clone();
        let size = dtype.size();
        for e in &entries {
            let bytes = tensor_bytes_as(sd, &e.name, dtype)?;
            arena.bytes_mut()[e.offset * size..(e.offset + e.len) * size].copy_from_slice(&bytes);
        }
        Ok(arena)
    }

    /// Packs host tensors (name, shape, data). Errors name the tensor whose data length does
    /// not match its shape.
    pub fn from_slices<T: Param>(tensors: &[(&str, &[usize], &[T])]) -> Result<HostArena> {
        let layout = ArenaLayout::new(
            T::DTYPE,
            tensors.iter().map(|(n, s, _)| (n.to_string(), s.to_vec())),
        )?;
        let mut arena = HostArena::zeros(layout);
        for ((name, _, data), e) in tensors.iter().zip(arena.layout.entries.clone()) {
            if data.len() != e.len {
                return Err(Error::arg(
                    "tensors",
                    format!(
                        "tensor `{name}`: {} elements for shape {:?} ({} expected)",
                        data.len(),
                        e.shape,
                        e.len
                    ),
                ));
            }
            arena.as_mut_slice::<T>()?[e.range()].copy_from_slice(data);
        }
        Ok(arena)
    }

    /// Wraps a buffer of `layout.size_bytes()` bytes (e.g. downloaded from a device).
    pub fn from_bytes(layout: ArenaLayout, bytes: &[u8]) -> Result<HostArena> {
        if bytes.len() != layout.size_bytes() {
            return Err(Error::arg(
                "bytes",
                format!(
                    "{} bytes for an arena of {} bytes",
                    bytes.len(),
                    layout.size_bytes()
                ),
            ));
        }
        let mut arena = HostArena::zeros(layout);
        arena.bytes_mut().copy_from_slice(bytes);
        Ok(arena)
    }

    /// The offset table.
    pub fn layout(&self) -> &ArenaLayout {
        &self.layout
    }

    /// The whole buffer as bytes (padding included).
    pub fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.words)
    }

    /// The whole buffer as bytes, mutable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        bytemuck::cast_slice_mut(&mut self.words)
    }

    fn check_dtype<T: Param>(&self) -> Result<()> {
        if T::DTYPE != self.layout.dtype {
            return Err(Error::arg(
                "T",
                format!(
                    "the arena holds {}, not {}",
                    self.layout.dtype.name(),
                    T::DTYPE.name()
                ),
            ));
        }
        Ok(())
    }

    /// The whole buffer as elements (padding included): what a whole-model merge runs over.
    pub fn as_slice<T: Param>(&self) -> Result<&[T]> {
        self.check_dtype::<T>()?;
        Ok(bytemuck::cast_slice(&self.words))
    }

    /// The whole buffer as elements, mutable.
    pub fn as_mut_slice<T: Param>(&mut self) -> Result<&mut [T]> {
        self.check_dtype::<T>()?;
        Ok(bytemuck::cast_slice_mut(&mut self.words))
    }

    /// One tensor's elements.
    pub fn tensor<T: Param>(&self, name: &str) -> Result<&[T]> {
        let r = self.layout.entry(name)?.range();
        Ok(&self.as_slice::<T>()?[r])
    }

    /// One tensor's elements, mutable.
    pub fn tensor_mut<T: Param>(&mut self, name: &str) -> Result<&mut [T]> {
        let r = self.layout.entry(name)?.range();
        Ok(&mut self.as_mut_slice::<T>()?[r])
    }

    /// Unpacks the arena into owned tensors (for `dawin_core::write_safetensors`).
    pub fn to_owned_tensors(&self) -> Vec<OwnedTensor> {
        let size = self.layout.dtype.size();
        self.layout
            .entries
            .iter()
            .map(|e| OwnedTensor {
                name: e.name.clone(),
                dtype: self.layout.dtype,
                shape: e.shape.clone(),
                bytes: self.bytes()[e.offset * size..(e.offset + e.len) * size].to_vec(),
            })
            .collect()
    }

    /// True when every padding element is zero (an invariant of arenas; merges keep it).
    pub fn padding_is_zero(&self) -> bool {
        let size = self.layout.dtype.size();
        let bytes = self.bytes();
        let mut pos = 0;
        for e in &self.layout.entries {
            if bytes[pos..e.offset * size].iter().any(|&b| b != 0) {
                return false;
            }
            pos = (e.offset + e.len) * size;
        }
        bytes[pos..].iter().all(|&b| b == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};
    use proptest::prelude::*;

    #[test]
    fn offsets_are_aligned_and_padded() {
        let l = ArenaLayout::new(
            DType::F16,
            vec![
                ("a", vec![3, 5]),
                ("b", vec![128]),
                ("c", vec![]),
                ("d", vec![0, 7]),
                ("e", vec![129]),
            ],
        )
        .unwrap();
        // f16: 128 elements per 256 bytes.
        let offs: Vec<usize> = l.entries().iter().map(|e| e.offset).collect();
        assert_eq!(offs, vec![0, 128, 256, 384, 384]);
        let lens: Vec<usize> = l.entries().iter().map(|e| e.len).collect();
        assert_eq!(lens, vec![15, 128, 1, 0, 129]);
        assert_eq!(l.len(), 384 + 256);
        assert_eq!(l.size_bytes(), 1280);
        assert_eq!(l.numel(), 15 + 128 + 1 + 129);
        assert_eq!(l.get("e").unwrap().range(), 384..513);
        assert!(l.get("z").is_none());
        assert!(matches!(l.entry("z"), Err(Error::NoSuchTensor(n)) if n == "z"));

        // Same element offsets for f32 (512-byte aligned there).
        let f = l.with_dtype(DType::F32).unwrap();
        let offs: Vec<usize> = f.entries().iter().map(|e| e.offset).collect();
        assert_eq!(offs, vec![0, 128, 256, 384, 384]);
        assert_eq!(f.len(), l.len());
        assert_eq!(f.size_bytes(), 640 * 4);
        l.check_same_tensors(&f, "cast").unwrap();
        assert!(l.check_same(&f, "lerp").is_err());
    }

    #[test]
    fn empty_layout_and_errors() {
        let l = ArenaLayout::new::<&str>(DType::F32, vec![]).unwrap();
        assert!(l.is_empty());
        assert_eq!(l.size_bytes(), 0);
        let e = ArenaLayout::new(DType::F32, vec![("w", vec![2]), ("w", vec![3])]).unwrap_err();
        assert!(e.to_string().contains("`w` appears twice"), "{e}");
        let e = ArenaLayout::new(DType::F32, vec![("big", vec![usize::MAX, 2])]).unwrap_err();
        assert!(e.to_string().contains("`big`"), "{e}");
    }

    #[test]
    fn mismatch_names_the_tensor() {
        let a = ArenaLayout::new(DType::F32, vec![("x", vec![2]), ("y", vec![3])]).unwrap();
        let b = ArenaLayout::new(DType::F32, vec![("x", vec![2]), ("y", vec![4])]).unwrap();
        let e = a.check_same(&b, "lerp b").unwrap_err().to_string();
        assert!(
            e.contains("`y` [3] vs `y` [4]") && e.contains("lerp b"),
            "{e}"
        );
        let c = ArenaLayout::new(DType::F32, vec![("x", vec![2])]).unwrap();
        assert!(a.check_same(&c, "x").is_err());
    }

    #[test]
    fn host_arena_dtype_and_length_errors() {
        let e = HostArena::from_slices::<f32>(&[("w", &[2, 2], &[1.0, 2.0, 3.0])]).unwrap_err();
        assert!(e.to_string().contains("`w`"), "{e}");
        let a = HostArena::from_slices::<f32>(&[("w", &[2], &[1.0, 2.0])]).unwrap();
        assert!(a.as_slice::<f16>().is_err());
        assert!(HostArena::from_bytes(a.layout().clone(), &[0u8; 3]).is_err());
    }

    #[test]
    fn state_dict_round_trip_and_conversion() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let w: Vec<f32> = (0..37).map(|i| i as f32 * 0.25 - 3.0).collect();
        let b: Vec<f32> = vec![1.5, -2.0, 0.125];
        dawin_core::write_safetensors(
            &path,
            &[
                OwnedTensor::from_f32("layer.weight", vec![37], &w),
                OwnedTensor::from_f32("layer.bias", vec![3], &b),
            ],
            None,
        )
        .unwrap();
        let sd = StateDict::open(&path).unwrap();
        let a = HostArena::from_state_dict(&sd, None).unwrap();
        assert_eq!(a.layout().dtype(), DType::F32);
        assert_eq!(a.tensor::<f32>("layer.weight").unwrap(), &w[..]);
        assert_eq!(a.tensor::<f32>("layer.bias").unwrap(), &b[..]);
        assert!(a.padding_is_zero());
        // Converted to bf16 on the way in: the values are exact in bf16.
        let h = HostArena::from_state_dict(&sd, Some(DType::BF16)).unwrap();
        let got: Vec<f32> = h
            .tensor::<bf16>("layer.weight")
            .unwrap()
            .iter()
            .map(|x| x.to_f32())
            .collect();
        assert_eq!(got, w);
        // Unpack and repack: same arena.
        let back = h.to_owned_tensors();
        assert_eq!(back.len(), 2);
        let p2 = dir.path().join("m2.safetensors");
        dawin_core::write_safetensors(&p2, &back, None).unwrap();
        let again = HostArena::from_state_dict(&StateDict::open(&p2).unwrap(), None).unwrap();
        assert_eq!(again, h);
    }

    #[test]
    fn integer_tensors_are_left_out_and_arenas_hold_parameters_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hf.safetensors");
        dawin_core::write_safetensors(
            &path,
            &[
                OwnedTensor::from_f32(
                    "vision_model.post_layernorm.bias",
                    vec![3],
                    &[1.0, 2.0, 3.0],
                ),
                OwnedTensor::from_i64(
                    "vision_model.embeddings.position_ids",
                    vec![1, 4],
                    &[0, 1, 2, 3],
                ),
            ],
            None,
        )
        .unwrap();
        let sd = StateDict::open(&path).unwrap();
        assert_eq!(param_names(&sd), vec!["vision_model.post_layernorm.bias"]);
        let a = HostArena::from_state_dict(&sd, None).unwrap();
        assert_eq!(a.layout().entries().len(), 1);
        assert!(a
            .layout()
            .get("vision_model.embeddings.position_ids")
            .is_none());
        let e = ArenaLayout::new(DType::I64, vec![("x", vec![2])]).unwrap_err();
        assert!(e.to_string().contains("i64"), "{e}");
    }

    #[test]
    fn mixed_dtypes_need_an_explicit_dtype() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mixed.safetensors");
        dawin_core::write_safetensors(
            &path,
            &[
                OwnedTensor::from_f32("a", vec![2], &[1.0, 2.0]),
                OwnedTensor::from_slice::<f16>("b", vec![1], &[f16::from_f32(3.0)]),
            ],
            None,
        )
        .unwrap();
        let sd = StateDict::open(&path).unwrap();
        let e = HostArena::from_state_dict(&sd, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`b`") && e.contains("mixed.safetensors"), "{e}");
        let a = HostArena::from_state_dict(&sd, Some(DType::F32)).unwrap();
        assert_eq!(a.tensor::<f32>("b").unwrap(), &[3.0]);
    }

    fn collect<T: bytemuck::Pod>(bytes: &[u8]) -> Vec<T> {
        let mut v = vec![T::zeroed(); bytes.len() / std::mem::size_of::<T>()];
        bytemuck::cast_slice_mut(&mut v).copy_from_slice(bytes);
        v
    }

    fn shapes() -> impl Strategy<Value = Vec<Vec<usize>>> {
        prop::collection::vec(prop::collection::vec(0usize..40, 0..3), 0..12)
    }

    proptest! {
        #[test]
        fn pack_unpack_round_trip(shapes in shapes(), dt in 0usize..3, seed in any::<u64>()) {
            let dtype = [DType::F32, DType::F16, DType::BF16][dt];
            let names: Vec<String> = (0..shapes.len()).map(|i| format!("t{i}")).collect();
            let layout = ArenaLayout::new(dtype, names.iter().cloned().zip(shapes.clone())).unwrap();
            // Invariants of the offset table.
            let granule = ARENA_GRANULE;
            prop_assert!(granule * dtype.size() >= ARENA_ALIGN);
            let mut end = 0;
            for e in layout.entries() {
                prop_assert_eq!(e.offset % granule, 0);
                prop_assert!(e.offset >= end);
                prop_assert!(e.offset - end < granule);
                prop_assert_eq!(e.len, e.shape.iter().product::<usize>());
                end = e.offset + e.len;
            }
            prop_assert_eq!(layout.len() % granule, 0);
            prop_assert!(layout.len() >= end && layout.len() - end < granule.max(1));
            // Data round trip through an arena and back.
            let mut state = seed | 1;
            let mut next = || { state ^= state << 13; state ^= state >> 7; state ^= state << 17; state };
            let data: Vec<Vec<f32>> = layout.entries().iter()
                .map(|e| (0..e.len).map(|_| (next() % 2001) as f32 / 8.0 - 125.0).collect())
                .collect();
            let arena = match dtype {
                DType::F32 => {
                    let t: Vec<(&str, &[usize], &[f32])> = names.iter().zip(&shapes).zip(&data)
                        .map(|((n, s), d)| (n.as_str(), s.as_slice(), d.as_slice())).collect();
                    HostArena::from_slices(&t).unwrap()
                }
                DType::F16 => {
                    let dd: Vec<Vec<f16>> = data.iter().map(|d| d.iter().map(|&x| f16::from_f32(x)).collect()).collect();
                    let t: Vec<(&str, &[usize], &[f16])> = names.iter().zip(&shapes).zip(&dd)
                        .map(|((n, s), d)| (n.as_str(), s.as_slice(), d.as_slice())).collect();
                    HostArena::from_slices(&t).unwrap()
                }
                DType::BF16 => {
                    let dd: Vec<Vec<bf16>> = data.iter().map(|d| d.iter().map(|&x| bf16::from_f32(x)).collect()).collect();
                    let t: Vec<(&str, &[usize], &[bf16])> = names.iter().zip(&shapes).zip(&dd)
                        .map(|((n, s), d)| (n.as_str(), s.as_slice(), d.as_slice())).collect();
                    HostArena::from_slices(&t).unwrap()
                }
                _ => unreachable!(),
            };
            prop_assert_eq!(arena.layout(), &layout);
            let other = layout.with_dtype(DType::F32).unwrap();
            prop_assert_eq!(other.len(), layout.len());
            for (x, y) in other.entries().iter().zip(layout.entries()) {
                prop_assert_eq!(x.range(), y.range());
            }
            prop_assert!(arena.padding_is_zero());
            let tensors = arena.to_owned_tensors();
            let again = HostArena::from_bytes(layout.clone(), arena.bytes()).unwrap();
            prop_assert_eq!(&again, &arena);
            for ((t, e), d) in tensors.iter().zip(layout.entries()).zip(&data) {
                prop_assert_eq!(&t.name, &e.name);
                prop_assert_eq!(&t.shape, &e.shape);
                let v: Vec<f32> = match dtype {
                    DType::F32 => collect::<f32>(&t.bytes),
                    DType::F16 => collect::<f16>(&t.bytes).iter().map(|x| x.to_f32()).collect(),
                    DType::BF16 => collect::<bf16>(&t.bytes).iter().map(|x| x.to_f32()).collect(),
                    _ => unreachable!(),
                };
                // Values k/8 - 125 with |v| <= 125 are exact in f16; bf16 keeps 8 significant bits.
                let want: Vec<f32> = match dtype {
                    DType::BF16 => d.iter().map(|&x| bf16::from_f32(x).to_f32()).collect(),
                    _ => d.clone(),
                };
                prop_assert_eq!(v, want);
            }
        }
    }
}
