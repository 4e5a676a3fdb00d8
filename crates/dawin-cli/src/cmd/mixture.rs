//! `dawin mixture`: the clustering stage on an `.npy` array ([`dawin::eval::fit_mixture`]): the
//! components printed as JSON, each sample's component written as `.npy`.
use clap::{Args, ValueEnum};
use dawin::core::npy;
use dawin::eval::MixtureKind;
use dawin::Result;
use std::path::PathBuf;

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    /// Beta mixture over λ ∈ [0, 1] (input [N]).
    Beta,
    /// Dirichlet mixture over rows on the simplex (input [N, M]).
    Dirichlet,
}

#[derive(Args)]
pub(crate) struct MixtureArgs {
    /// Input .npy (f32 or f64): [N] for beta, [N, M] for dirichlet.
    #[arg(long)]
    input: PathBuf,
    /// Mixture kind.
    #[arg(long, value_enum, default_value = "beta")]
    kind: Kind,
    /// Components.
    #[arg(long, default_value_t = 3)]
    k: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write each sample's component index [N] (i64) to this .npy.
    #[arg(long)]
    assignments: Option<PathBuf>,
}

pub(crate) fn run(a: MixtureArgs) -> Result<()> {
    let x = npy::read_f64(&a.input)?;
    let kind = match a.kind {
        Kind::Beta => MixtureKind::Beta,
        Kind::Dirichlet => MixtureKind::Dirichlet,
    };
    let name = a.input.display().to_string();
    let (fit, assign) = dawin::eval::fit_mixture(&x.data, &x.shape, kind, a.k, a.seed, &name)?;
    if let Some(p) = &a.assignments {
        let v: Vec<i64> = assign.iter().map(|&k| k as i64).collect();
        npy::write_i64(p, &v, &[v.len()])?;
    }
    // Through a JSON value: keys in order, as the report's readers expect them.
    let js = serde_json::to_value(&fit).expect("a mixture always serialises");
    println!("{}", serde_json::to_string_pretty(&js).expect("json"));
    Ok(())
}
