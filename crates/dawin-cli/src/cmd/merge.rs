//! `dawin merge`: a merged checkpoint written to disk, θ(λ) = (1−λ)θ0 + λθ1
//! ([`dawin::core::merge::lerp_state_dicts`]) or task arithmetic θ0 + s·Σ_j (θ_j − θ0)
//! ([`dawin::core::merge::task_arithmetic_state_dicts`]).
use clap::Args;
use dawin::core::StateDict;
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
}

fn open_sd(p: &Path) -> Result<StateDict> {
    if !p.exists() {
        return Err(Error::invalid(p.display().to_string(), "no such file"));
    }
    Ok(StateDict::open(p)?)
}

pub(crate) fn run(a: MergeArgs) -> Result<()> {
    let base = open_sd(&a.theta0)?;
    let meta = base.metadata().cloned();
    let tensors = match (&a.theta1, a.lambda, a.models.is_empty()) {
        (Some(t1), Some(l), true) => {
            let t1 = open_sd(t1)?;
            base.check_compatible(&t1)?;
            dawin::core::merge::lerp_state_dicts(&base, &t1, l)?
        }
        (None, None, false) => {
            let ms = a.models.iter().map(|p| open_sd(p)).collect::<Result<Vec<_>>>()?;
            for m in &ms {
                base.check_compatible(m)?;
            }
            let refs: Vec<&StateDict> = ms.iter().collect();
            let w = vec![a.scale; refs.len()];
            dawin::core::merge::task_arithmetic_state_dicts(&base, &refs, &w)?
        }
        _ => {
            return Err(Error::invalid(
                "merge",
                "give either --theta1 and --lambda (interpolation) or one or more --model (task arithmetic)",
            ))
        }
    };
    dawin::core::write_safetensors(&a.out, &tensors, meta)?;
    println!("wrote {} ({} tensors)", a.out.display(), tensors.len());
    Ok(())
}
