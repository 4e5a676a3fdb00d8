//! Typed device buffers ([`DeviceVec`]) and views ([`DeviceView`], [`DeviceViewMut`]), and the
//! copies between them and the host.

use crate::checks::check_len;
use crate::device::Gpu;
use crate::error::{Error, Result};
use cudarc::driver::{CudaSlice, CudaView, CudaViewMut};
use dawin_core::{DType, Param};
use std::marker::PhantomData;
use std::ops::Range;

impl Gpu {
    /// Copies host data to a new device buffer. Returns once the copy has completed, so `data`
    /// may be changed or freed right away.
    pub fn upload<T: Param>(&self, data: &[T]) -> Result<DeviceVec<T>> {
        let mut v = self.alloc_uninit::<T>(data.len())?;
        if !data.is_empty() {
            let mut view = v.buf.slice_mut(0..std::mem::size_of_val(data));
            self.stream
                .memcpy_htod(bytemuck::cast_slice::<T, u8>(data), &mut view)
                .map_err(Error::driver("copying to the device"))?;
            self.finish_host_copy("copying to the device")?;
        }
        Ok(v)
    }

    /// Copies host data into an existing device view of the same length (e.g. a reused
    /// workspace buffer): no allocation. Returns once the copy has completed.
    pub fn upload_into<T: Param>(&self, data: &[T], dst: &mut DeviceViewMut<'_, T>) -> Result<()> {
        check_len("dst", dst.len(), data.len())?;
        if data.is_empty() {
            return Ok(());
        }
        self.stream
            .memcpy_htod(bytemuck::cast_slice::<T, u8>(data), &mut dst.bytes)
            .map_err(Error::driver("copying to the device"))?;
        self.finish_host_copy("copying to the device")
    }

    /// Waits for a copy between the device and pageable host memory just queued on the stream.
    ///
    /// cudarc's `memcpy_htod` / `memcpy_dtoh` with a plain host slice are
    /// `cuMemcpyHtoDAsync` / `cuMemcpyDtoHAsync` with nothing after them (the slice's
    /// `SyncOnDrop` is `Sync(None)`), and the CUDA driver API documents ("API synchronization
    /// behavior", asynchronous memcpy) only that a transfer between device memory and pageable
    /// host memory *might* be synchronous with respect to the host. So the host slice may be
    /// read (H2D) or written (D2H) after the call returns: a download must not be read, and an
    /// upload's source must not be freed or changed, before the stream is synchronised.
    pub(crate) fn finish_host_copy(&self, what: &str) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(Error::driver(format!("{what} (waiting for the copy)")))
    }

    /// A zero-filled device buffer of `len` elements.
    pub fn zeros<T: Param>(&self, len: usize) -> Result<DeviceVec<T>> {
        let mut v = self.alloc_uninit::<T>(len)?;
        self.stream
            .memset_zeros(&mut v.buf)
            .map_err(Error::driver("zeroing device memory"))?;
        Ok(v)
    }

    fn alloc_uninit<T: Param>(&self, len: usize) -> Result<DeviceVec<T>> {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| Error::arg("len", format!("{len} elements overflow usize")))?;
        // SAFETY: the buffer is written (copy or memset) before it is read; a zero-length
        // buffer gets one byte so that it has a valid address.
        let buf = unsafe { self.stream.alloc::<u8>(bytes.max(1)) }
            .map_err(Error::driver(format!("allocating {bytes} bytes")))?;
        Ok(DeviceVec {
            buf,
            len,
            _t: PhantomData,
        })
    }

    /// Copies a device view back to the host.
    pub fn download<T: Param>(&self, src: &DeviceView<'_, T>) -> Result<Vec<T>> {
        let mut out = vec![T::zeroed(); src.len()];
        self.download_into(src, &mut out)?;
        Ok(out)
    }

    /// Copies a device view into a host slice of the same length.
    pub fn download_into<T: Param>(&self, src: &DeviceView<'_, T>, dst: &mut [T]) -> Result<()> {
        check_len("dst", dst.len(), src.len())?;
        if dst.is_empty() {
            return Ok(());
        }
        self.stream
            .memcpy_dtoh(&src.bytes, bytemuck::cast_slice_mut::<T, u8>(dst))
            .map_err(Error::driver("copying from the device"))?;
        self.finish_host_copy("copying from the device")
    }
}

/// A device buffer of `len` elements of `T` (f32, f16 or bf16), made by [`Gpu::upload`] or
/// [`Gpu::zeros`].
pub struct DeviceVec<T: Param> {
    buf: CudaSlice<u8>,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: Param> DeviceVec<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole buffer.
    pub fn view(&self) -> DeviceView<'_, T> {
        DeviceView::new(self.buf.slice(0..self.len * std::mem::size_of::<T>()))
    }

    /// The whole buffer, mutable.
    pub fn view_mut(&mut self) -> DeviceViewMut<'_, T> {
        let bytes = self.len * std::mem::size_of::<T>();
        DeviceViewMut::new(self.buf.slice_mut(0..bytes))
    }

    /// Elements `range`.
    pub fn slice(&self, range: Range<usize>) -> Result<DeviceView<'_, T>> {
        self.view().slice(range)
    }

    /// Elements `range`, mutable.
    pub fn slice_mut(&mut self, range: Range<usize>) -> Result<DeviceViewMut<'_, T>> {
        check_range(&range, self.len)?;
        let size = std::mem::size_of::<T>();
        Ok(DeviceViewMut::new(
            self.buf.slice_mut(range.start * size..range.end * size),
        ))
    }
}

fn check_range(range: &Range<usize>, len: usize) -> Result<()> {
    if range.start > range.end || range.end > len {
        return Err(Error::arg(
            "range",
            format!("{range:?} is outside 0..{len}"),
        ));
    }
    Ok(())
}

/// A read-only view of device elements of `T` (like `&[T]`).
pub struct DeviceView<'a, T: Param> {
    pub(crate) bytes: CudaView<'a, u8>,
    _t: PhantomData<T>,
}

impl<'a, T: Param> DeviceView<'a, T> {
    pub(crate) fn new(bytes: CudaView<'a, u8>) -> Self {
        debug_assert_eq!(bytes.len() % std::mem::size_of::<T>(), 0);
        DeviceView {
            bytes,
            _t: PhantomData,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.bytes.len() / std::mem::size_of::<T>()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        T::DTYPE
    }

    /// Elements `range` of this view.
    pub fn slice(&self, range: Range<usize>) -> Result<DeviceView<'a, T>> {
        check_range(&range, self.len())?;
        let size = std::mem::size_of::<T>();
        let v = self
            .bytes
            .try_slice(range.start * size..range.end * size)
            .ok_or_else(|| Error::arg("range", format!("{range:?} is outside the view")))?;
        Ok(DeviceView::new(v))
    }

    /// The bytes, as a cudarc view (for launching other kernels on them).
    pub fn as_bytes(&self) -> &CudaView<'a, u8> {
        &self.bytes
    }
}

/// A mutable view of device elements of `T` (like `&mut [T]`).
pub struct DeviceViewMut<'a, T: Param> {
    pub(crate) bytes: CudaViewMut<'a, u8>,
    _t: PhantomData<T>,
}

impl<'a, T: Param> DeviceViewMut<'a, T> {
    pub(crate) fn new(bytes: CudaViewMut<'a, u8>) -> Self {
        debug_assert_eq!(bytes.len() % std::mem::size_of::<T>(), 0);
        DeviceViewMut {
            bytes,
            _t: PhantomData,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.bytes.len() / std::mem::size_of::<T>()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// A read-only view of the same elements.
    pub fn as_view(&self) -> DeviceView<'_, T> {
        DeviceView::new(self.bytes.as_view())
    }

    /// The bytes, as a cudarc view.
    pub fn as_bytes_mut(&mut self) -> &mut CudaViewMut<'a, u8> {
        &mut self.bytes
    }
}

impl<T: Param> std::fmt::Debug for DeviceVec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceVec<{}>[{}]", T::DTYPE.name(), self.len)
    }
}

impl<T: Param> std::fmt::Debug for DeviceView<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceView<{}>[{}]", T::DTYPE.name(), self.len())
    }
}

impl<T: Param> std::fmt::Debug for DeviceViewMut<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceViewMut<{}>[{}]", T::DTYPE.name(), self.len())
    }
}
