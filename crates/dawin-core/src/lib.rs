//! # dawin-core
//!
//! The pure-Rust heart of [DaWin](https://openreview.net/forum?id=L8e7tBf4pP) (ICLR 2025):
//! training-free, per-sample dynamic weight interpolation between a pre-trained model θ0 and a
//! fine-tuned model θ1. This crate turns two models' logits into interpolation coefficients and
//! two checkpoints into merged ones, on the CPU:
//!
//! * [`stats`]: stable row statistics of logits (softmax, entropy, cross-entropy, margins);
//! * [`expertise`]: the [`Expertise`](expertise::Expertise) trait and the paper's metrics (negative entropy by default);
//! * [`coef`]: Eq. 1, Eq. 2 with the domain offset, M-model softmax weights, the WiSE-FT plug-in;
//! * [`temperature`]: temperature scaling fitted on labelled validation logits;
//! * [`metrics`]: accuracy (with class subsets), Pearson correlation, TT/TF/FT/FF splits;
//! * [`StateDict`] and [`merge`]: safetensors checkpoints through memmap2, and the CPU reference
//!   merges (lerp, multi-lerp, task arithmetic) in f32/f16/bf16 with f32 arithmetic; whole-model
//!   merges read parameter by parameter ([`merge::ParamSource`]: task arithmetic, TIES-merging)
//!   and the task-vector distance `‖θ − θ0‖/‖θ0‖`;
//! * [`npy`]: `.npy` arrays to and from NumPy;
//! * [`torch`]: PyTorch checkpoints read without Python and without running their code.
//!
//! ## PyTorch checkpoints
//!
//! [`torch::open_torch`] reads the files researchers hold: zip and legacy `torch.save` state dicts,
//! whole pickled `nn.Module`s (names rebuilt as `state_dict()` gives them), WiSE-FT's
//! `pickle.dump` files and TorchScript archives, through an inert unpickler that never imports or
//! calls anything and bounds every allocation by the file size. Tensors keep their dtype, shape
//! and strides and are read lazily from the memory map. [`CheckpointFile`] opens one file, PyTorch
//! or safetensors; both implement [`TensorSource`] (as do `dawin-vit`'s shard indexes and
//! directories), so callers treat them alike:
//!
//! ```no_run
//! use dawin_core::{CheckpointFile, TensorSource};
//! let ckpt = CheckpointFile::open("finetune_clipvitb32.pt")?; // or a .safetensors
//! for name in ckpt.tensor_names() {
//!     let (dtype, shape) = ckpt.tensor_meta(name)?;
//!     let values: Vec<f32> = ckpt.tensor_f32(name)?;
//!     # let _ = (dtype, shape, values);
//! }
//! # Ok::<(), dawin_core::Error>(())
//! ```
//!
//! ```
//! use dawin_core::coef;
//! use dawin_core::expertise::{Context, Expertise, ModelOutputs, NegEntropy};
//!
//! // Logits of θ0 (zero-shot) and θ1 (fine-tuned) on three samples, three classes.
//! let z0 = [3.0, 0.0, 0.0,   0.2, 0.1, 0.0,   1.0, 1.0, 0.0];
//! let z1 = [0.1, 0.0, 0.2,   4.0, 0.0, 0.0,   1.0, 1.0, 0.0];
//! let (m0, m1) = (ModelOutputs::new(&z0, 3, 1.0), ModelOutputs::new(&z1, 3, 1.0));
//! let ctx = Context::default();
//! let e0 = NegEntropy.log_expertise(&m0, &ctx)?; // ln e = −H
//! let e1 = NegEntropy.log_expertise(&m1, &ctx)?;
//! let lambda = coef::lambda_eq1(&e0, &e1)?;       // λ = e1 / (e0 + e1)
//! assert!(lambda[0] < 0.5);                       // θ0 is the expert on sample 0
//! assert!(lambda[1] > 0.5);                       // θ1 on sample 1
//! assert!((lambda[2] - 0.5).abs() < 1e-6);        // a tie
//! # Ok::<(), dawin_core::Error>(())
//! ```
#![warn(missing_docs)]

pub mod coef;
mod dtype;
mod error;
pub mod expertise;
pub mod merge;
pub mod metrics;
pub mod npy;
mod source;
mod state_dict;
pub mod stats;
pub mod temperature;
pub mod torch;

pub use dtype::{DType, Param};
pub use error::{Error, Result};
pub use source::{CheckpointFile, TensorSource};
pub use state_dict::{write_safetensors, OwnedTensor, StateDict, TensorView};

use std::path::Path;

/// Writes a file atomically: `write` fills a temporary file in the same directory as `path`,
/// which is then synced and renamed onto `path`. On error the temporary file is removed and
/// `path` is untouched, so a failed write never leaves a half-written output behind.
pub fn atomic_write(
    path: impl AsRef<Path>,
    write: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<()> {
    let path = path.as_ref();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::arg("path", format!("{} has no file name", path.display())))?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", file_name.to_string_lossy()))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io(path, e))?;
    write(tmp.path()).map_err(|e| Error::io(path, e))?;
    std::fs::File::open(tmp.path())
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}
