//! The row-statistics kernel of `kernels/row_stats.cu` on a device view: entropy, log-sum-exp,
//! max logit, argmax, max probability, top-1 minus top-2 probability and cross-entropy per row
//! of a logits matrix, as `dawin_core::stats` computes them.

use crate::buffer::DeviceView;
use crate::checks::{check_labels, check_logits};
use crate::device::Gpu;
use crate::error::{Error, Result};
use crate::launch::{row_stats_config, DevPtr};
use bytemuck::Zeroable;
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut};
use dawin_core::stats::RowStats;

impl Gpu {
    /// Per-row statistics of a row-major `[N, n_classes]` logits matrix at `temperature`, as
    /// `dawin_core::stats::row_stats` (one warp per row). A non-finite logit gives the error
    /// the CPU reference gives for the same matrix.
    pub fn row_stats(
        &self,
        logits: &DeviceView<'_, f32>,
        n_classes: usize,
        temperature: f32,
    ) -> Result<Vec<RowStats>> {
        let raw = self.row_stats_raw(logits, n_classes, temperature, None)?;
        raw.iter()
            .map(|r| r.to_row_stats())
            .collect::<Option<Vec<_>>>()
            .map_or_else(
                || Err(self.non_finite_error(logits, n_classes, temperature, None, &raw)),
                Ok,
            )
    }

    /// Cross-entropy against hard labels, `ce_i = lse_i − z_{i,y_i} / T`, as
    /// `dawin_core::stats::cross_entropy_hard`.
    pub fn cross_entropy(
        &self,
        logits: &DeviceView<'_, f32>,
        n_classes: usize,
        temperature: f32,
        labels: &[i64],
    ) -> Result<Vec<f32>> {
        let raw = self.row_stats_raw(logits, n_classes, temperature, Some(labels))?;
        if raw.iter().any(|r| r.bad_col != NO_BAD_COL) {
            return Err(self.non_finite_error(logits, n_classes, temperature, Some(labels), &raw));
        }
        Ok(raw.iter().map(|r| r.ce).collect())
    }

    fn row_stats_raw(
        &self,
        logits: &DeviceView<'_, f32>,
        n_classes: usize,
        temperature: f32,
        labels: Option<&[i64]>,
    ) -> Result<Vec<RowStatsRaw>> {
        let n_rows = check_logits(logits.len(), n_classes, temperature)?;
        if let Some(labels) = labels {
            check_labels(labels, n_rows, n_classes)?;
        }
        check_kernel_limits(n_rows, n_classes)?;
        let s = &*self.stream;
        let labels_dev: Option<CudaSlice<i64>> = match labels {
            Some(l) => Some(
                self.stream
                    .clone_htod(l)
                    .map_err(Error::driver("copying labels to the device"))?,
            ),
            None => None,
        };
        // SAFETY: written completely by the kernel (one struct per row) before it is read.
        let mut out = unsafe { self.stream.alloc::<u8>(n_rows * RowStatsRaw::SIZE) }
            .map_err(Error::driver("allocating row statistics"))?;
        {
            let (pz, _gz) = logits.bytes.device_ptr(s);
            let (pl, _gl) = match &labels_dev {
                Some(l) => {
                    let (p, g) = l.device_ptr(s);
                    (p, Some(g))
                }
                None => (0, None),
            };
            let (po, _go) = out.device_ptr_mut(s);
            let (pz, pl, po) = (DevPtr(pz), DevPtr(pl), DevPtr(po));
            let (rows, cols) = (n_rows as u32, n_classes as u32);
            let mut l = self.launch("row_stats_f32")?;
            l.arg(&pz)?.arg(&rows)?.arg(&cols)?.arg(&temperature)?;
            l.arg(&pl)?.arg(&po)?;
            l.run(row_stats_config(rows))?;
        }
        let mut host = vec![RowStatsRaw::zeroed(); n_rows];
        self.stream
            .memcpy_dtoh(&out, bytemuck::cast_slice_mut::<RowStatsRaw, u8>(&mut host))
            .map_err(Error::driver("copying row statistics from the device"))?;
        // Also the point after which the labels' host slice is no longer read.
        self.finish_host_copy("copying row statistics from the device")?;
        Ok(host)
    }

    /// The error for a matrix with a non-finite logit: the CPU reference's own error, computed
    /// on the downloaded matrix, so both paths fail the same way.
    fn non_finite_error(
        &self,
        logits: &DeviceView<'_, f32>,
        n_classes: usize,
        temperature: f32,
        labels: Option<&[i64]>,
        raw: &[RowStatsRaw],
    ) -> Error {
        let host = match self.download(logits) {
            Ok(h) => h,
            Err(e) => return e,
        };
        let cpu = match labels {
            None => dawin_core::stats::row_stats(&host, n_classes, temperature).map(|_| ()),
            Some(l) => {
                dawin_core::stats::cross_entropy_hard(&host, n_classes, temperature, l).map(|_| ())
            }
        };
        match cpu {
            Err(e) => Error::Core(e),
            Ok(()) => {
                let (row, r) = raw
                    .iter()
                    .enumerate()
                    .find(|(_, r)| r.bad_col != NO_BAD_COL)
                    .map(|(i, r)| (i, *r))
                    .unwrap_or((0, RowStatsRaw::zeroed()));
                Error::arg(
                    "logits",
                    format!(
                        "non-finite logit at row {row}, column {} (found on the GPU only)",
                        r.bad_col
                    ),
                )
            }
        }
    }
}

/// The GPU kernel's own limit: rows and classes are 32-bit there.
fn check_kernel_limits(n_rows: usize, n_classes: usize) -> Result<()> {
    if n_rows > u32::MAX as usize || n_classes > u32::MAX as usize {
        return Err(Error::arg(
            "logits",
            format!("{n_rows} x {n_classes}: the GPU kernel takes at most 2^32 - 1 of each"),
        ));
    }
    Ok(())
}

const NO_BAD_COL: u32 = u32::MAX;

/// `struct RowStatsOut` of row_stats.cu (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct RowStatsRaw {
    pub entropy: f32,
    pub logsumexp: f32,
    pub max_logit: f32,
    pub argmax: u32,
    pub max_prob: f32,
    pub top1_minus_top2: f32,
    pub bad_col: u32,
    pub ce: f32,
}

impl RowStatsRaw {
    const SIZE: usize = std::mem::size_of::<RowStatsRaw>();

    /// `None` for a row with a non-finite logit.
    pub fn to_row_stats(self) -> Option<RowStats> {
        (self.bad_col == NO_BAD_COL).then_some(RowStats {
            entropy: self.entropy,
            logsumexp: self.logsumexp,
            max_logit: self.max_logit,
            argmax: self.argmax,
            max_prob: self.max_prob,
            top1_minus_top2: self.top1_minus_top2,
        })
    }
}
const _: () = assert!(RowStatsRaw::SIZE == 32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_row_stats_convert() {
        let r = RowStatsRaw {
            entropy: 0.5,
            logsumexp: 2.0,
            max_logit: 3.0,
            argmax: 4,
            max_prob: 0.75,
            top1_minus_top2: 0.5,
            bad_col: NO_BAD_COL,
            ce: f32::NAN,
        };
        let s = r.to_row_stats().unwrap();
        assert_eq!((s.entropy, s.logsumexp, s.max_logit), (0.5, 2.0, 3.0));
        assert_eq!((s.argmax, s.max_prob, s.top1_minus_top2), (4, 0.75, 0.5));
        assert!(RowStatsRaw { bad_col: 3, ..r }.to_row_stats().is_none());
    }

    #[test]
    fn kernel_limits() {
        check_kernel_limits(50_000, 1000).unwrap();
        assert!(check_kernel_limits(1 << 33, 2).is_err());
    }
}
