//! The error type of this crate.

use cudarc::driver::DriverError;

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in `dawin-kernels`.
///
/// The first three variants mean "no usable GPU here": callers typically fall back to the CPU
/// (see [`crate::Backend`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The CUDA driver library (`libcuda.so` / `nvcuda.dll`) could not be loaded.
    #[error(
        "no CUDA driver: libcuda could not be loaded (no NVIDIA driver installed, or its library \
         is not on the loader path / LD_LIBRARY_PATH)"
    )]
    NoDriver,

    /// The driver is present but there is no device with the requested ordinal.
    #[error("no CUDA device with ordinal {ordinal}: {reason}")]
    NoDevice {
        /// The ordinal that was asked for.
        ordinal: usize,
        /// What the driver said (device count, or its error).
        reason: String,
    },

    /// The driver rejected the PTX shipped with the crate because it is older than the CUDA
    /// version of the NVRTC that produced it.
    #[error(
        "the CUDA driver (version {driver}) cannot load the PTX of {file} (PTX ISA {ptx_isa}, \
         made by NVRTC {nvrtc}): install driver {min_driver} or newer, or set \
         DAWIN_KERNELS_NVRTC=1 with an NVRTC no newer than the driver on LD_LIBRARY_PATH \
         to compile the kernels at run time ({source})"
    )]
    PtxUnsupported {
        /// Kernel source file, e.g. `merge.cu`.
        file: &'static str,
        /// Driver version as CUDA reports it, e.g. `12.2`.
        driver: String,
        /// `.version` of the PTX.
        ptx_isa: String,
        /// NVRTC version that generated the shipped PTX.
        nvrtc: &'static str,
        /// Minimum driver for that PTX.
        min_driver: &'static str,
        /// The driver error.
        source: DriverError,
    },

    /// A CUDA driver call failed.
    #[error("CUDA driver error while {context}: {source}")]
    Driver {
        /// What was being done.
        context: String,
        /// The driver error.
        source: DriverError,
    },

    /// The NVRTC library (`libnvrtc.so.12`) could not be loaded.
    #[error(
        "NVRTC not found: libnvrtc could not be loaded; install it (e.g. `pip install \
         nvidia-cuda-nvrtc-cu12`) and put its lib directory on LD_LIBRARY_PATH"
    )]
    NoNvrtc,

    /// NVRTC failed to compile a kernel source.
    #[error("NVRTC failed to compile {file}: {log}")]
    Compile {
        /// Kernel source file, e.g. `merge.cu`.
        file: String,
        /// The compiler log (or the NVRTC error).
        log: String,
    },

    /// An argument is invalid (wrong length, count, dtype, value).
    #[error("invalid argument `{arg}`: {msg}")]
    InvalidArgument {
        /// The argument's name.
        arg: &'static str,
        /// What is wrong with it.
        msg: String,
    },

    /// Two arenas that must hold the same tensors do not.
    #[error("arena layouts differ: {0}")]
    LayoutMismatch(String),

    /// A tensor name that the arena does not hold.
    #[error("no tensor named `{0}` in the arena")]
    NoSuchTensor(String),

    /// An error from `dawin-core` (CPU references, state dicts); for NaN logits this is the
    /// error the CPU reference returns for the same input.
    #[error(transparent)]
    Core(#[from] dawin_core::Error),
}

impl Error {
    /// True for the errors that mean "no usable GPU here" ([`Error::NoDriver`],
    /// [`Error::NoDevice`], [`Error::PtxUnsupported`]): the cases where a CPU fallback is the
    /// right answer rather than a bug report.
    pub fn is_no_gpu(&self) -> bool {
        matches!(
            self,
            Error::NoDriver | Error::NoDevice { .. } | Error::PtxUnsupported { .. }
        )
    }

    pub(crate) fn driver(context: impl Into<String>) -> impl FnOnce(DriverError) -> Error {
        let context = context.into();
        move |source| Error::Driver { context, source }
    }

    pub(crate) fn arg(arg: &'static str, msg: impl Into<String>) -> Error {
        Error::InvalidArgument {
            arg,
            msg: msg.into(),
        }
    }
}
