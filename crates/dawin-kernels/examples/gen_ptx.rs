//! Regenerates the shipped PTX, `crates/dawin-kernels/ptx/<stem>.ptx`, from `kernels/*.cu` with
//! NVRTC, through the same code path the library uses at run time
//! (`dawin_kernels::nvrtc::compile_ptx`).
//!
//! ```text
//! LD_LIBRARY_PATH=<dir with libnvrtc.so.12> cargo run -p dawin-kernels --example gen_ptx [-- OUT_DIR]
//! ```
//!
//! The shipped PTX is made with NVRTC 12.4 (pinned in `scripts/check_kernels.sh`): another
//! NVRTC gives other PTX, and a newer one PTX that needs a newer driver. The example refuses
//! another version unless `DAWIN_ALLOW_ANY_NVRTC=1`.

use dawin_kernels::nvrtc::{generate_shipped_ptx, nvrtc_version};
use dawin_kernels::source::{SHIPPED_NVRTC, SOURCES};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ptx"));
    let (major, minor) = nvrtc_version()?;
    let version = format!("{major}.{minor}");
    if version != SHIPPED_NVRTC && std::env::var("DAWIN_ALLOW_ANY_NVRTC").as_deref() != Ok("1") {
        return Err(format!(
            "NVRTC {version} found, the shipped PTX is made with NVRTC {SHIPPED_NVRTC} \
             (set DAWIN_ALLOW_ANY_NVRTC=1 to write it anyway)"
        )
        .into());
    }
    std::fs::create_dir_all(&out_dir)?;
    for src in SOURCES {
        let ptx = generate_shipped_ptx(src)?;
        let path = out_dir.join(format!("{}.ptx", src.stem()));
        // Write to a temporary file and rename it into place.
        let tmp = path.with_extension("ptx.tmp");
        std::fs::write(&tmp, &ptx)?;
        std::fs::rename(&tmp, &path)?;
        println!(
            "{}: {} kernels, {} lines of PTX (NVRTC {version})",
            path.display(),
            src.kernels.len(),
            ptx.lines().count()
        );
    }
    Ok(())
}
