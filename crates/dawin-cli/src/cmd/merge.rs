//! `dawin merge`: a merged checkpoint written to disk, θ(λ) = (1−λ)θ0 + λθ1
//! ([`dawin::core::merge::lerp_state_dicts`]) or task arithmetic θ0 + s·Σ_j (θ_j − θ0)
//! ([`dawin::core::merge::task_arithmetic_state_dicts`]). Safetensors files are merged tensor by
//! tensor as they are; any other form (`.pt`/`.pth`/`.bin`, shard indexes, directories) is first
//! converted to the tool's naming ([`dawin::vit::convert`], every input alike).
use super::warn_defaults;
use crate::args::LoadArgs;
use clap::Args;
use dawin::core::StateDict;
use dawin::vit::{convert, open_resolved, ConvertOptions};
use dawin::{Error, Result};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub(crate) struct MergeArgs {
    /// θ0 (or the base model for task arithmetic).
    #[arg(long)]
    theta0: PathBuf,
    /// θ1, for interpolation with --lambda.
    #[arg(long)]
    theta1: Option<PathBuf>,
    /// λ ∈ [0, 1] of θ(λ) = (1−λ)θ0 + λθ1.
    #[arg(long)]
    lambda: Option<f32>,
    /// Fine-tuned models for task arithmetic θ0 + s·Σ_j (θj − θ0) (repeatable).
    #[arg(long = "model")]
    models: Vec<PathBuf>,
    /// Task-arithmetic scale s.
    #[arg(long, default_value_t = 0.3)]
    scale: f32,
    /// Output .safetensors (written atomically; θ0's metadata is kept).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    load: LoadArgs,
}

/// Whether `p` is one safetensors file (merged as it is).
fn is_safetensors(p: &Path) -> bool {
    p.is_file() && p.extension().is_some_and(|e| e == "safetensors")
}

/// The inputs as safetensors: themselves when every one is a safetensors file, else each
/// converted to the tool's naming in `tmp` (so that all of them share one naming).
fn as_safetensors(a: &MergeArgs, inputs: &[&Path], tmp: &Path) -> Result<Vec<PathBuf>> {
    if inputs.iter().all(|p| is_safetensors(p)) {
        return Ok(inputs.iter().map(|p| p.to_path_buf()).collect());
    }
    let opts = a.load.options();
    let mut archs = Vec::new();
    let mut out = Vec::new();
    for (i, p) in inputs.iter().enumerate() {
        if !p.exists() {
            return Err(Error::invalid(p.display().to_string(), "no such file"));
        }
        let mut opened = open_resolved(p, None, &opts)?;
        // Every input is θ0's architecture: what a default decided takes θ0's value, and any
        // field that then differs (activation, heads, LayerScale, …) is an error naming both.
        if let Some(base) = archs.first() {
            opened.arch.inherit_from(base).map_err(|e| {
                Error::invalid(
                    format!("{} vs {}", p.display(), inputs[0].display()),
                    e.to_string(),
                )
            })?;
        }
        let dst = tmp.join(format!("{i}.safetensors"));
        convert(
            &opened,
            &dst,
            &ConvertOptions::default(),
            opts.ignore_unused,
        )?;
        println!(
            "read {} ({}) in the tool's naming",
            p.display(),
            opened.arch.format
        );
        archs.push(opened.arch);
        out.push(dst);
    }
    warn_defaults(&archs.iter().collect::<Vec<_>>());
    Ok(out)
}

fn open_sd(p: &Path) -> Result<StateDict> {
    if !p.exists() {
        return Err(Error::invalid(p.display().to_string(), "no such file"));
    }
    Ok(StateDict::open(p)?)
}

pub(crate) fn run(a: MergeArgs) -> Result<()> {
    let valid = matches!(
        (&a.theta1, a.lambda, a.models.is_empty()),
        (Some(_), Some(_), true) | (None, None, false)
    );
    if !valid {
        return Err(Error::invalid(
            "merge",
            "give either --theta1 and --lambda (interpolation) or one or more --model (task arithmetic)",
        ));
    }
    // Conversions (of non-safetensors inputs) go next to the output, not to a small /tmp.
    let out_dir = match a.out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::tempdir_in(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
    let mut inputs: Vec<&Path> = vec![&a.theta0];
    inputs.extend(a.theta1.as_deref());
    inputs.extend(a.models.iter().map(PathBuf::as_path));
    let files = as_safetensors(&a, &inputs, tmp.path())?;
    let base = open_sd(&files[0])?;
    let meta = base.metadata().cloned();
    let tensors = match (&a.theta1, a.lambda, a.models.is_empty()) {
        (Some(_), Some(l), true) => {
            let t1 = open_sd(&files[1])?;
            base.check_compatible(&t1)?;
            dawin::core::merge::lerp_state_dicts(&base, &t1, l)?
        }
        (None, None, false) => {
            let ms = files[1..]
                .iter()
                .map(|p| open_sd(p))
                .collect::<Result<Vec<_>>>()?;
            for m in &ms {
                base.check_compatible(m)?;
            }
            let refs: Vec<&StateDict> = ms.iter().collect();
            let w = vec![a.scale; refs.len()];
            dawin::core::merge::task_arithmetic_state_dicts(&base, &refs, &w)?
        }
        _ => unreachable!("checked above"),
    };
    dawin::core::write_safetensors(&a.out, &tensors, meta)?;
    println!("wrote {} ({} tensors)", a.out.display(), tensors.len());
    Ok(())
}
