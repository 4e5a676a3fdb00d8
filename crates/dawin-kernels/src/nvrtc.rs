//! Compiling `kernels/*.cu` to PTX with NVRTC, loaded at run time through cudarc.
//!
//! This is the one code path that turns kernel sources into PTX: `examples/gen_ptx.rs` uses it
//! to write the shipped `ptx/*.ptx`, and [`crate::Gpu`] uses it at run time when
//! `DAWIN_KERNELS_NVRTC=1` (for people editing kernels). cudarc looks for `libnvrtc.so.12` (and
//! a few other names) through the dynamic loader, so `LD_LIBRARY_PATH` must name the directory
//! that holds it, e.g. `.../site-packages/nvidia/cuda_nvrtc/lib` of the
//! `nvidia-cuda-nvrtc-cu12` Python package. The kernels include no CUDA header, only this
//! crate's own ([`crate::source::HEADERS`], handed to NVRTC by name), so nothing else of CUDA is
//! needed.

use crate::error::{Error, Result};
#[cfg(test)]
use crate::source::SHIPPED_ARCH;
use crate::source::{ptx_header, KernelSource, HEADERS, NVRTC_OPTIONS};
use cudarc::nvrtc::{self, result, sys};
use std::ffi::{c_char, c_int, CStr, CString};

/// True when the NVRTC library can be loaded (checked before any NVRTC call: cudarc panics
/// when the library is missing).
pub fn nvrtc_available() -> bool {
    // SAFETY: only tries to dlopen the library by its candidate names.
    unsafe { nvrtc::sys::is_culib_present() }
}

/// The version of the loaded NVRTC, e.g. `(12, 4)`.
pub fn nvrtc_version() -> Result<(i32, i32)> {
    if !nvrtc_available() {
        return Err(Error::NoNvrtc);
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: two valid out-pointers; the library is present (checked above).
    let r = unsafe { nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    r.result().map_err(|e| Error::Compile {
        file: "-".into(),
        log: format!("nvrtcVersion failed: {e:?}"),
    })?;
    Ok((major, minor))
}

/// The virtual architectures (`compute_XY`) the loaded NVRTC can generate PTX for, as `XY`.
pub fn nvrtc_supported_archs() -> Result<Vec<i32>> {
    if !nvrtc_available() {
        return Err(Error::NoNvrtc);
    }
    let mut n = 0;
    // SAFETY: valid out-pointer; the library is present.
    unsafe { nvrtc::sys::nvrtcGetNumSupportedArchs(&mut n) }
        .result()
        .map_err(|e| Error::Compile {
            file: "-".into(),
            log: format!("nvrtcGetNumSupportedArchs failed: {e:?}"),
        })?;
    let mut archs = vec![0; n.max(0) as usize];
    // SAFETY: `archs` has room for the `n` entries NVRTC writes.
    unsafe { nvrtc::sys::nvrtcGetSupportedArchs(archs.as_mut_ptr()) }
        .result()
        .map_err(|e| Error::Compile {
            file: "-".into(),
            log: format!("nvrtcGetSupportedArchs failed: {e:?}"),
        })?;
    Ok(archs)
}

/// An NVRTC program, destroyed on drop.
struct Program(sys::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: created by nvrtcCreateProgram and destroyed only here.
        let _ = unsafe { result::destroy_program(self.0) };
    }
}

fn c_string(file: &str, what: &str, text: &str) -> Result<CString> {
    CString::new(text).map_err(|_| Error::Compile {
        file: file.into(),
        log: format!("{what} contains a NUL byte"),
    })
}

/// Compiles one kernel source to PTX for the virtual architecture `arch` (e.g. `compute_70`)
/// with [`NVRTC_OPTIONS`] (whose architecture is replaced by `arch`), every header of
/// [`HEADERS`] given to NVRTC under its name. Returns NVRTC's PTX text.
pub fn compile_ptx(src: &KernelSource, arch: &str) -> Result<String> {
    if !nvrtc_available() {
        return Err(Error::NoNvrtc);
    }
    let options: Vec<String> = NVRTC_OPTIONS
        .iter()
        .map(|o| {
            if o.starts_with("--gpu-architecture=") {
                format!("--gpu-architecture={arch}")
            } else {
                (*o).to_string()
            }
        })
        .collect();
    let source = c_string(src.file, "the source", src.source)?;
    let name = c_string(src.file, "the file name", src.file)?;
    let texts = HEADERS
        .iter()
        .map(|h| c_string(src.file, h.name, h.source))
        .collect::<Result<Vec<_>>>()?;
    let names = HEADERS
        .iter()
        .map(|h| c_string(src.file, h.name, h.name))
        .collect::<Result<Vec<_>>>()?;
    let text_ptrs: Vec<*const c_char> = texts.iter().map(|c| c.as_ptr()).collect();
    let name_ptrs: Vec<*const c_char> = names.iter().map(|c| c.as_ptr()).collect();
    let mut prog: sys::nvrtcProgram = std::ptr::null_mut();
    // SAFETY: every pointer is a NUL-terminated string that outlives the program (they are
    // dropped after `program` below); the two arrays hold `HEADERS.len()` entries each.
    unsafe {
        sys::nvrtcCreateProgram(
            &mut prog,
            source.as_ptr(),
            name.as_ptr(),
            HEADERS.len() as c_int,
            text_ptrs.as_ptr(),
            name_ptrs.as_ptr(),
        )
    }
    .result()
    .map_err(|e| Error::Compile {
        file: src.file.into(),
        log: format!("nvrtcCreateProgram failed: {e:?}"),
    })?;
    let program = Program(prog);
    // SAFETY: a live program (created above, destroyed when `program` drops).
    if let Err(e) = unsafe { result::compile_program(program.0, &options) } {
        // SAFETY: as above.
        let log = unsafe { result::get_program_log(program.0) }
            .map(|l| {
                // SAFETY: NVRTC's log is NUL-terminated.
                unsafe { CStr::from_ptr(l.as_ptr()) }
                    .to_string_lossy()
                    .into_owned()
            })
            .unwrap_or_default();
        return Err(Error::Compile {
            file: src.file.into(),
            log: format!("{e:?}\n{log}"),
        });
    }
    // SAFETY: as above; the program compiled.
    let ptx = unsafe { result::get_ptx(program.0) }.map_err(|e| Error::Compile {
        file: src.file.into(),
        log: format!("nvrtcGetPTX failed: {e:?}"),
    })?;
    drop(program);
    let bytes: Vec<u8> = ptx
        .iter()
        .map(|&c| c as u8)
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8(bytes).map_err(|_| Error::Compile {
        file: src.file.into(),
        log: "NVRTC wrote PTX that is not UTF-8".into(),
    })
}

/// The content of the shipped `ptx/<stem>.ptx` for `src`: a header (source hash, NVRTC version,
/// options) followed by NVRTC's PTX for the source's architecture ([`KernelSource::arch`]).
pub fn generate_shipped_ptx(src: &KernelSource) -> Result<String> {
    let version = nvrtc_version()?;
    let body = compile_ptx(src, src.arch)?;
    let mut out = ptx_header(src, version);
    out.push_str(body.trim_end_matches('\0'));
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// True when an NVRTC of version `nvrtc` is newer than a driver of CUDA version `driver` (both
/// `(major, minor)`): the PTX it writes then needs a newer driver, which refuses it
/// (`CUDA_ERROR_UNSUPPORTED_PTX_VERSION`), so run-time compilation cannot be used there.
pub fn nvrtc_newer_than_driver(nvrtc: (i32, i32), driver: (i32, i32)) -> bool {
    nvrtc > driver
}

/// The virtual architecture to compile for at run time on a device of compute capability
/// `(major, minor)`: the newest one NVRTC supports that is not newer than the device.
pub fn runtime_arch(cc: (i32, i32), supported: &[i32]) -> Option<String> {
    let want = cc.0 * 10 + cc.1;
    supported
        .iter()
        .copied()
        .filter(|&a| a <= want)
        .max()
        .map(|a| format!("compute_{a}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_arch_picks_the_newest_supported_not_above_the_device() {
        let supported = [50, 52, 60, 70, 75, 80, 86, 89, 90];
        assert_eq!(
            runtime_arch((9, 0), &supported).as_deref(),
            Some("compute_90")
        );
        assert_eq!(
            runtime_arch((8, 7), &supported).as_deref(),
            Some("compute_86")
        );
        assert_eq!(
            runtime_arch((12, 0), &supported).as_deref(),
            Some("compute_90")
        );
        assert_eq!(runtime_arch((3, 5), &supported), None);
    }

    #[test]
    fn nvrtc_newer_than_the_driver() {
        assert!(nvrtc_newer_than_driver((12, 9), (12, 4)));
        assert!(nvrtc_newer_than_driver((13, 0), (12, 9)));
        assert!(!nvrtc_newer_than_driver((12, 4), (12, 4)));
        assert!(!nvrtc_newer_than_driver((12, 4), (12, 8)));
        assert!(!nvrtc_newer_than_driver((11, 8), (12, 0)));
    }

    #[test]
    fn missing_nvrtc_is_an_error_not_a_panic() {
        if nvrtc_available() {
            eprintln!("NVRTC is present: nothing to check for the missing-library case");
            return;
        }
        assert!(matches!(nvrtc_version(), Err(Error::NoNvrtc)));
        assert!(matches!(
            compile_ptx(&crate::source::MERGE, SHIPPED_ARCH),
            Err(Error::NoNvrtc)
        ));
    }
}
