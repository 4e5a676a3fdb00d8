//! Page-locked ("pinned") host buffers ([`PinnedVec`]) and the asynchronous copies between them
//! and the device ([`Gpu::upload_async`], [`Gpu::download_async`]): a copy from or to pinned
//! memory is queued on the stream and the call returns at once, so the host can prepare the
//! next batch while the device copies and computes. Each buffer carries a CUDA event recorded
//! after the last copy that used it: [`PinnedVec::as_slice`] and [`PinnedVec::as_mut_slice`]
//! wait for it, so the host never reads a download that has not landed nor overwrites an upload
//! that has not been read (cudarc's `PinnedHostSlice`).

use crate::buffer::{DeviceView, DeviceViewMut};
use crate::checks::check_len;
use crate::device::Gpu;
use crate::error::{Error, Result};
use cudarc::driver::PinnedHostSlice;
use dawin_core::Param;
use std::marker::PhantomData;

/// `len` elements of `T` in page-locked host memory (see the module docs).
pub struct PinnedVec<T: Param> {
    buf: PinnedHostSlice<u8>,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: Param> std::fmt::Debug for PinnedVec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PinnedVec<{}>[{}]", T::DTYPE.name(), self.len)
    }
}

impl<T: Param> PinnedVec<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements, once every copy queued with this buffer has finished (waits for it).
    pub fn as_slice(&self) -> Result<&[T]> {
        let bytes = self
            .buf
            .as_slice()
            .map_err(Error::driver("waiting for a copy to pinned memory"))?;
        Ok(bytemuck::cast_slice(
            &bytes[..self.len * std::mem::size_of::<T>()],
        ))
    }

    /// The elements to write, once every copy queued with this buffer has finished (waits).
    pub fn as_mut_slice(&mut self) -> Result<&mut [T]> {
        let n = self.len * std::mem::size_of::<T>();
        let bytes = self
            .buf
            .as_mut_slice()
            .map_err(Error::driver("waiting for a copy from pinned memory"))?;
        Ok(bytemuck::cast_slice_mut(&mut bytes[..n]))
    }
}

impl Gpu {
    /// A zero-filled page-locked host buffer of `len` elements (portable, not write-combined,
    /// so the host may read it as fast as ordinary memory).
    pub fn pinned<T: Param>(&self, len: usize) -> Result<PinnedVec<T>> {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| Error::arg("len", format!("{len} elements overflow usize")))?
            .max(1);
        // SAFETY: the memory is uninitialised after the allocation; it is zero-filled through
        // the raw pointer below before any reference to it is made.
        let mut buf = unsafe {
            self.context()
                .alloc_pinned_with_flags::<u8>(bytes, cudarc::driver::sys::CU_MEMHOSTALLOC_PORTABLE)
        }
        .map_err(Error::driver(format!(
            "allocating {bytes} bytes of pinned memory"
        )))?;
        let ptr = buf
            .as_mut_ptr()
            .map_err(Error::driver("preparing pinned memory"))?;
        // SAFETY: `ptr` points to `bytes` writable bytes just allocated; no copy uses them yet.
        unsafe { std::ptr::write_bytes(ptr, 0, bytes) };
        Ok(PinnedVec {
            buf,
            len,
            _t: PhantomData,
        })
    }

    /// Queues the copy of the whole of `src` into `dst` (same length) on the stream and returns
    /// at once; writing `src` again waits until the copy has read it, and work queued after
    /// this on the stream sees the data.
    pub fn upload_async<T: Param>(
        &self,
        src: &PinnedVec<T>,
        dst: &mut DeviceViewMut<'_, T>,
    ) -> Result<()> {
        check_len("dst", dst.len(), src.len())?;
        if src.is_empty() {
            return Ok(());
        }
        if src.buf.len() != dst.bytes.len() {
            return Err(Error::arg(
                "src",
                "a pinned buffer is copied whole: its byte length must be the destination's",
            ));
        }
        self.stream
            .memcpy_htod(&src.buf, &mut dst.bytes)
            .map_err(Error::driver("queueing a copy to the device"))
    }

    /// Queues the copy of `src` into the whole of `dst` (same length) on the stream after the
    /// work already queued and returns at once; [`PinnedVec::as_slice`] waits for it.
    pub fn download_async<T: Param>(
        &self,
        src: &DeviceView<'_, T>,
        dst: &mut PinnedVec<T>,
    ) -> Result<()> {
        check_len("dst", dst.len(), src.len())?;
        if src.is_empty() {
            return Ok(());
        }
        if dst.buf.len() != src.bytes.len() {
            return Err(Error::arg(
                "dst",
                "a pinned buffer is copied whole: its byte length must be the source's",
            ));
        }
        self.stream
            .memcpy_dtoh(&src.bytes, &mut dst.buf)
            .map_err(Error::driver("queueing a copy from the device"))
    }
}
