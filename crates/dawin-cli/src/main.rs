//! The `dawin` command-line tool: a thin layer over the `dawin` library crate. This file parses
//! the command line and dispatches; each subcommand lives in `cmd/` and calls one library
//! function; options several subcommands share are defined once in `args.rs`. Run
//! `dawin --help`.
use clap::{Parser, Subcommand};

mod args;
mod cmd;
mod device;

/// DaWin (ICLR 2025): training-free dynamic weight interpolation between a pre-trained (θ0) and a
/// fine-tuned (θ1) CLIP ViT, with the paper's baselines, on the CPU.
#[derive(Parser)]
#[command(name = "dawin", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Evaluate every method (ZS, FT, WiSE-FT, ensemble, DCS, DOE, DaWin, oracles) on an ID
    /// validation set, an ID test set and shifted test sets; print the Markdown table.
    Eval(Box<cmd::eval::EvalArgs>),
    /// Run one checkpoint over a dataset and write its logits [N, C] (and features) as .npy.
    Logits(cmd::logits::LogitsArgs),
    /// Interpolation coefficients λ(x) from two .npy logits files (θ0, θ1).
    Coef(cmd::coef::CoefArgs),
    /// Fit a Beta (λ ∈ [0,1], shape [N]) or Dirichlet (rows on the simplex, [N, M]) mixture to an
    /// .npy file; print the components as JSON.
    Mixture(cmd::mixture::MixtureArgs),
    /// Write a merged checkpoint θ(λ) = (1−λ)θ0 + λθ1, or task arithmetic θ0 + s·Σ(θj − θ0).
    Merge(cmd::merge::MergeArgs),
    /// Run `eval` with every method on the embedded demo (tiny CLIP ViTs on digits), in seconds.
    Demo(cmd::demo::DemoArgs),
    /// Multi-task evaluation: a base encoder, M fine-tuned encoders and one head per dataset;
    /// individual models, weight averaging, task arithmetic, TIES-merging and DaWin (λ_j(x) =
    /// softmax_j(−H_j(x)), θ(x) = θ0 + s Σ_j λ_j(x) τ_j).
    EvalMtl(cmd::eval_mtl::EvalMtlArgs),
    /// Show a checkpoint's form, naming and architecture, every field with its source (tensor
    /// shapes, a config file, a flag, a default), and the tensors ignored or unused.
    Inspect(cmd::inspect::InspectArgs),
    /// Write any readable checkpoint as safetensors in the tool's naming, its architecture in
    /// the metadata (optionally sharded with a Hugging Face index).
    Convert(cmd::convert::ConvertArgs),
    /// Build a CLIP checkpoint's zero-shot classification head from class names and prompt
    /// templates with its text tower; write it as classification_head.weight / .bias.
    ZeroshotHead(cmd::zeroshot_head::ZeroShotHeadArgs),
}

fn main() {
    let r = match Cli::parse().cmd {
        Cmd::Eval(a) => cmd::eval::run(*a),
        Cmd::Logits(a) => cmd::logits::run(a),
        Cmd::Coef(a) => cmd::coef::run(a),
        Cmd::Mixture(a) => cmd::mixture::run(a),
        Cmd::Merge(a) => cmd::merge::run(a),
        Cmd::Demo(a) => cmd::demo::run(a),
        Cmd::EvalMtl(a) => cmd::eval_mtl::run(a),
        Cmd::Inspect(a) => cmd::inspect::run(a),
        Cmd::Convert(a) => cmd::convert::run(a),
        Cmd::ZeroshotHead(a) => cmd::zeroshot_head::run(a),
    };
    if let Err(e) = r {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
