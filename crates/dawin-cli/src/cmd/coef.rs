//! `dawin coef`: the coefficient stage on two `.npy` logits files
//! ([`dawin::eval::coefficients_from_logits`]): λ(x) written as `.npy`, a JSON summary printed.
use crate::args::{temperatures, Eq};
use clap::Args;
use dawin::core::npy;
use dawin::{Error, Result};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub(crate) struct CoefArgs {
    /// θ0 logits [N, C] (.npy, f32 or f64).
    #[arg(long)]
    logits0: PathBuf,
    /// θ1 logits [N, C].
    #[arg(long)]
    logits1: PathBuf,
    /// Labels [N] (.npy, i64): with them, temperatures are fitted and accuracies printed.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Temperatures T0,T1 (default: fitted when labels are given, else 1,1).
    #[arg(long, value_delimiter = ',', value_name = "T0,T1")]
    temperatures: Option<Vec<f32>>,
    /// Coefficient formula: 1 or 2.
    #[arg(long, value_enum, default_value = "2")]
    eq: Eq,
    /// Expertise metric by name (see `eval --help`).
    #[arg(long, default_value = "entropy")]
    expertise: String,
    /// Output .npy for λ [N] (f32).
    #[arg(long)]
    out: PathBuf,
}

/// Logits `[N, C]` with N, C > 0 from an `.npy` file.
fn read_logits(p: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let a = npy::read_f32(p)?;
    if a.shape.len() != 2 || a.shape[0] == 0 || a.shape[1] == 0 {
        return Err(Error::invalid(
            p.display().to_string(),
            format!(
                "expected logits [N, C] with N, C > 0, got shape {:?}",
                a.shape
            ),
        ));
    }
    Ok((a.data, a.shape[0], a.shape[1]))
}

/// Labels `[N]`, each one of the `c` classes, from an `.npy` file.
fn read_labels(p: &Path, n: usize, c: usize) -> Result<Vec<i64>> {
    let l = npy::read_i64(p)?;
    if l.data.len() != n {
        return Err(Error::invalid(
            p.display().to_string(),
            format!("{} labels for {n} samples", l.data.len()),
        ));
    }
    if let Some(i) = l.data.iter().position(|&y| y < 0 || y >= c as i64) {
        return Err(Error::invalid(
            p.display().to_string(),
            format!(
                "label {} of sample {i} is not one of the {c} classes",
                l.data[i]
            ),
        ));
    }
    Ok(l.data)
}

pub(crate) fn run(a: CoefArgs) -> Result<()> {
    let (z0, n, c) = read_logits(&a.logits0)?;
    let (z1, n1, c1) = read_logits(&a.logits1)?;
    if (n, c) != (n1, c1) {
        return Err(Error::invalid(
            "--logits1",
            format!(
                "{} has shape [{n1}, {c1}] but {} has [{n}, {c}]",
                a.logits1.display(),
                a.logits0.display()
            ),
        ));
    }
    let labels = a
        .labels
        .as_deref()
        .map(|p| read_labels(p, n, c))
        .transpose()?;
    let out = dawin::eval::coefficients_from_logits(
        &z0,
        &z1,
        c,
        labels.as_deref(),
        temperatures(&a.temperatures)?,
        &a.expertise,
        a.eq.coefficient(),
    )?;
    let (lambda, (t0, t1)) = (out.lambda, out.temperatures);
    npy::write_f32(&a.out, &lambda, &[n])?;
    let mean = lambda.iter().map(|&l| l as f64).sum::<f64>() / n as f64;
    let eq = match a.eq {
        Eq::One => 1,
        Eq::Two => 2,
    };
    let mut js = serde_json::json!({
        "n": n, "classes": c, "temperatures": [t0, t1], "eq": eq,
        "expertise": a.expertise, "mean_lambda": mean, "out": a.out.display().to_string(),
    });
    if let Some(l) = &labels {
        let acc = |z: &[f32]| -> Result<f64> {
            Ok(100.0 * dawin::core::metrics::accuracy(z, c, l, None)?)
        };
        js["accuracy_theta0"] = acc(&z0)?.into();
        js["accuracy_theta1"] = acc(&z1)?.into();
    }
    println!("{}", serde_json::to_string_pretty(&js).expect("json"));
    Ok(())
}
