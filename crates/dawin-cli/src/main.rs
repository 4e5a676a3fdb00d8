//! The `dawin` command-line tool: a thin layer over the `dawin` library crate that parses
//! arguments, calls the pipeline and prints. Run `dawin --help`.
use clap::{Args, Parser, Subcommand, ValueEnum};
use dawin::core::{npy, StateDict};
use dawin::eval::{Coefficient, EvalConfig, Method, Named};
use dawin::vit::{ClipClassifier, LoadOptions};
use dawin::{Dataset, Error, ImageFolderDataset, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

mod demo;
mod mtl;

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
    Eval(EvalArgs),
    /// Run one checkpoint over a dataset and write its logits [N, C] (and features) as .npy.
    Logits(LogitsArgs),
    /// Interpolation coefficients λ(x) from two .npy logits files (θ0, θ1).
    Coef(CoefArgs),
    /// Fit a Beta (λ ∈ [0,1], shape [N]) or Dirichlet (rows on the simplex, [N, M]) mixture to an
    /// .npy file; print the components as JSON.
    Mixture(MixtureArgs),
    /// Write a merged checkpoint θ(λ) = (1−λ)θ0 + λθ1, or task arithmetic θ0 + s·Σ(θj − θ0).
    Merge(MergeArgs),
    /// Run `eval` with every method on the embedded demo (tiny CLIP ViTs on digits), in seconds.
    Demo(DemoArgs),
    /// Multi-task evaluation: a base encoder, M fine-tuned encoders and one head per dataset;
    /// individual models, weight averaging, task arithmetic, TIES-merging and DaWin (λ_j(x) =
    /// softmax_j(−H_j(x)), θ(x) = θ0 + s Σ_j λ_j(x) τ_j).
    EvalMtl(mtl::EvalMtlArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Eq {
    /// λ = e1 / (e0 + e1).
    #[value(name = "1")]
    One,
    /// λ = (e1 + O/T) / (e0 + e1 + O), the domain-offset form (default).
    #[value(name = "2")]
    Two,
}

/// Options shared by `eval` and `demo`.
#[derive(Args, Clone)]
struct Common {
    /// Methods, comma-separated: zs, ft, wise, ensemble, dcs, doe, dawin, dawin-sample,
    /// oracle-sample, oracle-domain (default: all).
    #[arg(long, value_delimiter = ',')]
    methods: Option<Vec<String>>,
    /// Components of the Beta mixture for `dawin`.
    #[arg(long, default_value_t = 3)]
    k: usize,
    /// Expertise metric: entropy, ce-oracle, pl-ensemble-soft, pl-ensemble-hard, pl-merged-soft,
    /// pl-merged-hard, max-logit, max-prob, top-gap.
    #[arg(long, default_value = "entropy")]
    expertise: String,
    /// Coefficient formula: 1 (Eq. 1) or 2 (Eq. 2, with the domain offset).
    #[arg(long, value_enum, default_value = "2")]
    eq: Eq,
    /// WiSE-FT plug-in: scale λ(x) by α ∈ [0, 1] (dawin, dawin-sample, doe).
    #[arg(long)]
    wise_alpha: Option<f32>,
    /// Temperatures T0,T1 (default: fitted on the validation set).
    #[arg(long, value_delimiter = ',', value_name = "T0,T1")]
    temperatures: Option<Vec<f32>>,
    /// Samples per forward batch.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Seed of the mixture fit.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Directory for report.json, per-sample .npy arrays and the plots (each as .png and .svg).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Logits cache directory (default: <out>/.dawin-cache).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Do not cache logits.
    #[arg(long)]
    no_cache: bool,
    /// Append the JSON report as one line to this JSONL file.
    #[arg(long)]
    results_db: Option<PathBuf>,
    /// Evaluate WiSE-FT's grid on every dataset (the curve of the ID-vs-OOD plot).
    #[arg(long)]
    wise_curve: bool,
    /// Skip the plots.
    #[arg(long)]
    no_plots: bool,
    /// Device: auto (the GPU if one works, else the CPU), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// No progress bars.
    #[arg(long, short)]
    quiet: bool,
    /// dawin-sample / oracle-sample: merge θ(λ) once per distinct λ instead of the blended
    /// per-sample forward (for checking it).
    #[arg(long)]
    exact_loop: bool,
    /// Refuse θ1 farther than this from θ0 in ‖θ1 − θ0‖/‖θ0‖ over the encoder (the demo's θ1:
    /// 0.16; unrelated weight sets of similar norm: about 1.41).
    #[arg(long, default_value_t = 1.0)]
    max_distance: f64,
    /// With --device cuda: weights and activations in bf16 or f16 (f32 accumulation).
    #[arg(long, value_enum, default_value = "bf16")]
    precision: CliPrecision,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum CliPrecision {
    Bf16,
    F16,
}

impl CliPrecision {
    fn get(self) -> dawin::vit::cuda::Precision {
        match self {
            CliPrecision::Bf16 => dawin::vit::cuda::Precision::Bf16,
            CliPrecision::F16 => dawin::vit::cuda::Precision::F16,
        }
    }
}

#[derive(Args)]
struct EvalArgs {
    /// Pre-trained / zero-shot checkpoint θ0 (.safetensors, OpenAI or Hugging Face naming, with
    /// classification_head.weight/.bias).
    #[arg(long)]
    theta0: PathBuf,
    /// Fine-tuned checkpoint θ1 (same architecture).
    #[arg(long)]
    theta1: PathBuf,
    /// Labelled ID validation set (safetensors `images`/`labels`, or an image-folder tree).
    #[arg(long)]
    val: PathBuf,
    /// ID test set (the table's first column).
    #[arg(long)]
    id: PathBuf,
    /// Shifted test sets, repeatable: PATH or NAME=PATH.
    #[arg(long = "test")]
    tests: Vec<String>,
    /// NAME=FILE, repeatable: dataset NAME is labelled over a subset of the head's classes
    /// (ImageNet-R/-A: 200 of 1000); FILE lists them in label order (.npy of integers, or text:
    /// integers separated by spaces, commas or newlines). Logits are restricted to those
    /// columns before entropies, λ and argmax.
    #[arg(long = "class-subset", value_name = "NAME=FILE")]
    class_subsets: Vec<String>,
    /// Attention heads, when the checkpoint does not say (default: metadata, else width/64).
    #[arg(long)]
    heads: Option<usize>,
    /// Streaming DaWin for test-time use: each test set is read --batch-size samples at a time
    /// (never held whole); per batch θ0 and θ1, λ from the batch (--eq), then the batch through
    /// θ(λ_i). Accuracy only; temperatures from --temperatures or fitted on --val.
    #[arg(long)]
    streaming: bool,
    /// With --streaming: replace each batch's λ by its component mean in a K-component Beta
    /// mixture fitted on that batch.
    #[arg(long, value_name = "K", requires = "streaming")]
    streaming_mixture: Option<usize>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct DemoArgs {
    /// Run the multi-task demo instead (M = 3 fine-tuned encoders, one head per task; `eval-mtl`
    /// with its defaults: K = 1, s = 0.3·M; --methods takes the multi-task names, --out,
    /// --batch-size, --seed and --quiet apply).
    #[arg(long)]
    multi_task: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct LogitsArgs {
    /// Checkpoint (.safetensors).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Dataset (safetensors or image folder).
    #[arg(long)]
    data: PathBuf,
    /// Output .npy for the logits [N, C] (f32).
    #[arg(long)]
    out: PathBuf,
    /// Also write the unit-norm features [N, E] to this .npy.
    #[arg(long)]
    features: Option<PathBuf>,
    /// Also write the labels [N] (i64) to this .npy.
    #[arg(long)]
    labels_out: Option<PathBuf>,
    /// Attention heads, when the checkpoint does not say.
    #[arg(long)]
    heads: Option<usize>,
    /// Samples per forward batch.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Device: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
}

#[derive(Args)]
struct CoefArgs {
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

#[derive(Clone, Copy, ValueEnum)]
enum MixtureKind {
    /// Beta mixture over λ ∈ [0, 1] (input [N]).
    Beta,
    /// Dirichlet mixture over rows on the simplex (input [N, M]).
    Dirichlet,
}

#[derive(Args)]
struct MixtureArgs {
    /// Input .npy (f32 or f64): [N] for beta, [N, M] for dirichlet.
    #[arg(long)]
    input: PathBuf,
    /// Mixture kind.
    #[arg(long, value_enum, default_value = "beta")]
    kind: MixtureKind,
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

#[derive(Args)]
struct MergeArgs {
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

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Eval(a) => cmd_eval(a),
        Cmd::Logits(a) => cmd_logits(a),
        Cmd::Coef(a) => cmd_coef(a),
        Cmd::Mixture(a) => cmd_mixture(a),
        Cmd::Merge(a) => cmd_merge(a),
        Cmd::Demo(a) if a.multi_task => mtl::demo(&mtl::MtlOpts::from_common(&a.common)),
        Cmd::Demo(a) => demo::run(a.common),
        Cmd::EvalMtl(a) => mtl::cmd_eval_mtl(a),
    };
    if let Err(e) = r {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Resolves `--device`. This build's ViT forward is CPU-only, so `auto` picks the CPU (and says
/// why) and `cuda` is an error.
/// Where the ViT forward runs: the CPU, or the CUDA device of this ordinal.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Device {
    Cpu,
    Cuda(usize),
}

/// `auto` stays on the CPU: the CUDA forward has not been validated on a GPU yet
/// (docs/gpu-runs.md), so it runs only when asked for with `cuda` or `cuda:N`.
fn resolve_device(dev: &str) -> Result<Device> {
    let bad = |d: &str| {
        Error::invalid(
            "--device",
            format!("`{d}`: expected auto, cpu, cuda or cuda:N"),
        )
    };
    match dev {
        "cpu" => Ok(Device::Cpu),
        "auto" => {
            eprintln!(
                "device: cpu (auto; the CUDA forward has not been validated on a GPU yet: \
                 --device cuda runs it)"
            );
            Ok(Device::Cpu)
        }
        "cuda" => Ok(Device::Cuda(0)),
        d => match d.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => Ok(Device::Cuda(n)),
            _ => Err(bad(d)),
        },
    }
}

/// The GPU of ordinal `n`; without one, an error naming `--device`.
fn open_gpu(n: usize) -> Result<std::sync::Arc<dawin::kernels::Gpu>> {
    dawin::kernels::Gpu::new_with_ordinal(n)
        .map(std::sync::Arc::new)
        .map_err(|e| Error::invalid("--device", format!("cuda:{n}: {e}")))
}

/// `m0`, `m1` on GPU `n` in `precision`, and the device as the report names it.
fn on_gpu(
    n: usize,
    m0: &ClipClassifier,
    m1: &ClipClassifier,
    precision: CliPrecision,
) -> Result<(
    dawin::cuda::CudaClassifier,
    dawin::cuda::CudaClassifier,
    String,
)> {
    let gpu = open_gpu(n)?;
    let name = format!("cuda:{n} ({}, {:?})", gpu.name(), precision);
    let up = |m: &ClipClassifier| {
        dawin::cuda::CudaClassifier::new(gpu.clone(), m.clone(), precision.get())
    };
    Ok((up(m0)?, up(m1)?, name))
}

fn load_model(path: &Path, heads: Option<usize>) -> Result<ClipClassifier> {
    if !path.exists() {
        return Err(Error::invalid(path.display().to_string(), "no such file"));
    }
    Ok(ClipClassifier::from_files(
        path,
        None,
        &LoadOptions {
            heads,
            layer_norm_eps: None,
        },
    )?)
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

fn open_data(name: String, path: &Path, image_size: usize) -> Result<ImageFolderDataset> {
    ImageFolderDataset::open(name, path, image_size)
}

/// `--temperatures T0,T1`: exactly two positive finite values.
fn temperatures(t: &Option<Vec<f32>>) -> Result<Option<(f32, f32)>> {
    match t {
        None => Ok(None),
        Some(v) if v.len() == 2 && v.iter().all(|x| x.is_finite() && *x > 0.0) => {
            Ok(Some((v[0], v[1])))
        }
        Some(v) => Err(Error::invalid(
            "--temperatures",
            format!("expected two positive values T0,T1, got {v:?}"),
        )),
    }
}

fn eval_config(
    c: &Common,
    device: String,
    default_out: Option<&Path>,
) -> Result<(EvalConfig, Option<PathBuf>)> {
    let methods = match &c.methods {
        None => Method::ALL.to_vec(),
        Some(v) => v
            .iter()
            .map(|s| Method::parse(s.trim()))
            .collect::<Result<_>>()?,
    };
    let out = c.out.clone().or_else(|| default_out.map(Path::to_path_buf));
    let cache_dir = if c.no_cache {
        None
    } else {
        c.cache_dir
            .clone()
            .or_else(|| out.as_ref().map(|o| o.join(".dawin-cache")))
            .or_else(|| Some(PathBuf::from(".dawin-cache")))
    };
    let cfg = EvalConfig {
        methods,
        k: c.k,
        expertise: c.expertise.clone(),
        coefficient: match c.eq {
            Eq::One => Coefficient::Eq1,
            Eq::Two => Coefficient::Eq2,
        },
        wise_alpha: c.wise_alpha,
        batch_size: c.batch_size.max(1),
        seed: c.seed,
        temperatures: temperatures(&c.temperatures)?,
        cache_dir,
        wise_curve: c.wise_curve,
        progress: !c.quiet,
        device,
        exact_loop: c.exact_loop,
        max_distance: c.max_distance,
    };
    Ok((cfg, out))
}

/// Runs the pipeline and prints/writes everything; shared by `eval` and `demo`.
pub(crate) fn run_eval(
    theta0: (&Path, &ClipClassifier),
    theta1: (&Path, &ClipClassifier),
    val: &dyn Dataset,
    id: &dyn Dataset,
    tests: &[&dyn Dataset],
    common: &Common,
    default_out: Option<&Path>,
) -> Result<()> {
    let device = resolve_device(&common.device)?;
    let (mut cfg, out) = eval_config(common, "cpu".into(), default_out)?;
    // Check the output paths before the work, so an unwritable one fails fast.
    if let Some(o) = &out {
        std::fs::create_dir_all(o).map_err(|e| Error::io(o, e))?;
    }
    let t = Instant::now();
    let (f0, f1) = (
        dawin::data::file_fingerprint(theta0.0)?,
        dawin::data::file_fingerprint(theta1.0)?,
    );
    let (s0, s1) = (stem(theta0.0), stem(theta1.0));
    let res = match device {
        Device::Cpu => dawin::eval::evaluate(
            &Named::new(s0, theta0.1, f0),
            &Named::new(s1, theta1.1, f1),
            val,
            id,
            tests,
            &cfg,
        )?,
        Device::Cuda(n) => {
            let (g0, g1, name) = on_gpu(n, theta0.1, theta1.1, common.precision)?;
            cfg.device = name;
            // Cached logits are the device's and precision's own.
            let tag = format!(":cuda-{:?}", common.precision);
            dawin::eval::evaluate(
                &Named::new(s0, &g0, f0 + &tag),
                &Named::new(s1, &g1, f1 + &tag),
                val,
                id,
                tests,
                &cfg,
            )?
        }
    };
    let r = &res.report;
    println!("{}", r.markdown());
    if let Some(p) = &r.per_sample_forward {
        println!("per-sample forward: {p}");
    }
    println!(
        "T0 = {:.4}, T1 = {:.4} ({}); WiSE-FT λ = {}; ensemble weight = {}; device: {}; {:.2} s",
        r.temperatures[0],
        r.temperatures[1],
        if r.temperatures_fitted {
            format!("fitted on {}", r.val)
        } else {
            "given".into()
        },
        r.wise_lambda.map_or("—".into(), |l| format!("{l:.1}")),
        r.ensemble_weight.map_or("—".into(), |l| format!("{l:.1}")),
        r.device,
        t.elapsed().as_secs_f64()
    );
    if let Some(o) = &out {
        dawin::report::write_outputs(&res, o)?;
        if !common.no_plots {
            // Each writes the .png and its .svg twin.
            dawin::plot::lambda_histograms(&res.per_sample, &o.join("lambda_hist.png"))?;
            dawin::plot::id_vs_ood(r, &o.join("id_vs_ood.png"))?;
        }
        println!("outputs: {}", o.display());
    }
    if let Some(db) = &common.results_db {
        dawin::report::append_results_db(r, db)?;
    }
    Ok(())
}

fn parse_test(s: &str) -> (String, PathBuf) {
    match s.split_once('=') {
        Some((n, p)) if !n.is_empty() && !n.contains('/') => (n.to_string(), PathBuf::from(p)),
        _ => (stem(Path::new(s)), PathBuf::from(s)),
    }
}

fn cmd_eval(a: EvalArgs) -> Result<()> {
    let m0 = load_model(&a.theta0, a.heads)?;
    let m1 = load_model(&a.theta1, a.heads)?;
    use dawin::Interpolate;
    m0.check_compatible(&m1).map_err(|e| {
        Error::invalid(
            format!("{} vs {}", a.theta0.display(), a.theta1.display()),
            e.to_string(),
        )
    })?;
    let s = m0.config().image_size;
    let mut subsets = Vec::new();
    for spec in &a.class_subsets {
        let (n, p) = spec
            .split_once('=')
            .filter(|(n, p)| !n.is_empty() && !p.is_empty())
            .ok_or_else(|| {
                Error::invalid("--class-subset", format!("`{spec}` is not NAME=FILE"))
            })?;
        subsets.push((n.to_string(), dawin::read_class_subset(p)?, false));
    }
    let mut open = |name: String, path: &Path| -> Result<Box<dyn Dataset>> {
        let d = open_data(name, path, s)?;
        match subsets.iter_mut().find(|(n, _, _)| n == d.name()) {
            Some((_, sub, used)) => {
                *used = true;
                Ok(Box::new(dawin::WithClassSubset::new(d, sub.clone())?))
            }
            None => Ok(Box::new(d)),
        }
    };
    let val = open(stem(&a.val), &a.val)?;
    let id = open(stem(&a.id), &a.id)?;
    let tests = a
        .tests
        .iter()
        .map(|t| {
            let (n, p) = parse_test(t);
            open(n, &p)
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some((n, _, _)) = subsets.iter().find(|(_, _, used)| !used) {
        return Err(Error::invalid(
            "--class-subset",
            format!("names `{n}`, which is none of the datasets"),
        ));
    }
    let refs: Vec<&dyn Dataset> = tests.iter().map(|d| &**d).collect();
    if a.streaming {
        let mut evals: Vec<&dyn Dataset> = vec![&*id];
        evals.extend_from_slice(&refs);
        return match resolve_device(&a.common.device)? {
            Device::Cpu => run_streaming(&a, &m0, &m1, "cpu".into(), &*val, &evals),
            Device::Cuda(n) => {
                let (g0, g1, name) = on_gpu(n, &m0, &m1, a.common.precision)?;
                run_streaming(&a, &g0, &g1, name, &*val, &evals)
            }
        };
    }
    run_eval(
        (&a.theta0, &m0),
        (&a.theta1, &m1),
        &*val,
        &*id,
        &refs,
        &a.common,
        None,
    )
}

/// `dawin eval --streaming`: [`dawin::eval::evaluate_streaming`] on each dataset.
fn run_streaming<M: dawin::Interpolate>(
    a: &EvalArgs,
    m0: &M,
    m1: &M,
    device: String,
    val: &dyn Dataset,
    evals: &[&dyn Dataset],
) -> Result<()> {
    let (cfg, _) = eval_config(&a.common, device, None)?;
    let c = m0.num_classes();
    let fit = |m: &M| -> Result<f32> {
        let bar = dawin::progress::bar(val.len(), format!("T on {}", val.name()), cfg.progress);
        let z = dawin::eval::forward_dataset(m, val, cfg.batch_size, &bar)?;
        bar.finish_and_clear();
        let z = dawin::eval::restrict_logits(z, c, val.class_subset());
        let cv = val.class_subset().map_or(c, |s| s.len());
        Ok(dawin::core::temperature::fit_temperature(&z, cv, val.labels())?.temperature)
    };
    let (t0, t1) = match cfg.temperatures {
        Some(t) => t,
        None => (fit(m0)?, fit(m1)?),
    };
    println!("| dataset | accuracy | correct | mean λ | batches |\n|---|---:|---:|---:|---:|");
    for d in evals {
        let r = dawin::eval::evaluate_streaming(m0, m1, *d, (t0, t1), &cfg, a.streaming_mixture)?;
        println!(
            "| {} | {:.2} | {}/{} | {:.4} | {} |",
            r.dataset,
            r.accuracy(),
            r.correct,
            r.n,
            r.mean_lambda,
            r.batches
        );
    }
    println!(
        "streaming: batch size {}, {}; T0 = {t0:.4}, T1 = {t1:.4}",
        cfg.batch_size,
        match a.streaming_mixture {
            Some(k) => format!("batch-wise Beta mixture K = {k}"),
            None => "per-sample λ".into(),
        }
    );
    Ok(())
}

fn cmd_logits(a: LogitsArgs) -> Result<()> {
    if let Device::Cuda(_) = resolve_device(&a.device)? {
        return Err(Error::invalid(
            "--device",
            "`dawin logits` runs on the CPU in this build (use `dawin eval --device cuda`)",
        ));
    }
    let m = load_model(&a.checkpoint, a.heads)?;
    let ds = dawin::vit::ImageDataset::open(&a.data, m.config().image_size)?;
    let p = m.predict_dataset(&ds, a.batch_size.max(1), false, a.features.is_some())?;
    let n = p.indices.len();
    npy::write_f32(&a.out, &p.logits, &[n, p.num_classes])?;
    if let (Some(f), Some(feat)) = (&a.features, &p.features) {
        npy::write_f32(f, feat, &[n, feat.len() / n])?;
    }
    if let (Some(f), Some(l)) = (&a.labels_out, &p.labels) {
        npy::write_i64(f, l, &[n])?;
    }
    if let Some(acc) = p.accuracy() {
        println!(
            "{n} samples, {} classes, accuracy {:.2} %",
            p.num_classes,
            100.0 * acc
        );
    } else {
        println!("{n} samples, {} classes", p.num_classes);
    }
    Ok(())
}

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

fn cmd_coef(a: CoefArgs) -> Result<()> {
    use dawin::core::{coef, expertise, stats, temperature, Context, ModelOutputs};
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
    let labels = match &a.labels {
        Some(p) => {
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
            Some(l.data)
        }
        None => None,
    };
    let (t0, t1) = match (temperatures(&a.temperatures)?, &labels) {
        (Some(t), _) => t,
        (None, Some(l)) => (
            temperature::fit_temperature(&z0, c, l)?.temperature,
            temperature::fit_temperature(&z1, c, l)?.temperature,
        ),
        (None, None) => (1.0, 1.0),
    };
    let metric = expertise::expertise_by_name(&a.expertise)?;
    let (o0, o1) = (ModelOutputs::new(&z0, c, t0), ModelOutputs::new(&z1, c, t1));
    let targets;
    let ctx = match metric.needs() {
        expertise::Needs::Nothing => Context::default(),
        expertise::Needs::Labels => Context {
            labels: Some(labels.as_deref().ok_or_else(|| {
                Error::invalid("--labels", format!("metric `{}` needs labels", a.expertise))
            })?),
            pseudo_targets: None,
        },
        expertise::Needs::PseudoTargets(expertise::PseudoSource::Ensemble) => {
            targets = expertise::ensemble_targets(&o0, &o1)?;
            Context {
                labels: None,
                pseudo_targets: Some(&targets),
            }
        }
        expertise::Needs::PseudoTargets(expertise::PseudoSource::Merged) => {
            return Err(Error::invalid(
                "--expertise",
                "pl-merged-* needs the merged model's logits; use `dawin eval`",
            ));
        }
    };
    let (e0, e1) = (
        metric.log_expertise(&o0, &ctx)?,
        metric.log_expertise(&o1, &ctx)?,
    );
    let h0 = stats::entropy(&z0, c, t0)?;
    let h1 = stats::entropy(&z1, c, t1)?;
    let lambda = match a.eq {
        Eq::One => coef::lambda_eq1(&e0, &e1)?,
        Eq::Two => coef::lambda_eq2(&e0, &e1, coef::domain_offset(&h0, &h1)?)?,
    };
    npy::write_f32(&a.out, &lambda, &[n])?;
    let mean = lambda.iter().map(|&l| l as f64).sum::<f64>() / n as f64;
    let mut js = serde_json::json!({
        "n": n, "classes": c, "temperatures": [t0, t1], "eq": match a.eq { Eq::One => 1, Eq::Two => 2 },
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

fn cmd_mixture(a: MixtureArgs) -> Result<()> {
    let x = npy::read_f64(&a.input)?;
    let name = a.input.display().to_string();
    let (js, assign) = match a.kind {
        MixtureKind::Beta => {
            if x.shape.len() != 1 {
                return Err(Error::invalid(
                    name,
                    format!("a Beta mixture takes λ of shape [N], got {:?}", x.shape),
                ));
            }
            let cfg = dawin::mixture::BetaMixtureConfig {
                k: a.k,
                seed: a.seed,
                ..Default::default()
            };
            let fit = dawin::mixture::BetaMixture::fit(&x.data, &cfg)
                .map_err(|e| Error::invalid(name.clone(), e.to_string()))?;
            let assign = fit.predict(&x.data)?;
            (
                serde_json::json!({"kind": "beta", "k": fit.k(), "weights": fit.weights(), "a": fit.a(), "b": fit.b(),
                    "means": fit.means(), "mean_log_likelihood": fit.mean_log_likelihood(), "n_iter": fit.n_iter(), "converged": fit.converged()}),
                assign,
            )
        }
        MixtureKind::Dirichlet => {
            if x.shape.len() != 2 {
                return Err(Error::invalid(
                    name,
                    format!(
                        "a Dirichlet mixture takes rows of shape [N, M], got {:?}",
                        x.shape
                    ),
                ));
            }
            let m = x.shape[1];
            let cfg = dawin::mixture::DirichletMixtureConfig {
                k: a.k,
                seed: a.seed,
                ..dawin::mixture::DirichletMixtureConfig::new(a.k)
            };
            let fit = dawin::mixture::DirichletMixture::fit(&x.data, m, &cfg)
                .map_err(|e| Error::invalid(name.clone(), e.to_string()))?;
            let assign = fit.predict(&x.data)?;
            let alphas: Vec<&[f64]> = (0..fit.k()).map(|k| fit.alpha(k)).collect();
            let means: Vec<&[f64]> = (0..fit.k()).map(|k| fit.mean(k)).collect();
            (
                serde_json::json!({"kind": "dirichlet", "k": fit.k(), "dim": fit.dim(), "weights": fit.weights(), "alphas": alphas,
                    "means": means, "mean_log_likelihood": fit.mean_log_likelihood(), "n_iter": fit.n_iter(), "converged": fit.converged()}),
                assign,
            )
        }
    };
    if let Some(p) = &a.assignments {
        let v: Vec<i64> = assign.iter().map(|&k| k as i64).collect();
        npy::write_i64(p, &v, &[v.len()])?;
    }
    println!("{}", serde_json::to_string_pretty(&js).expect("json"));
    Ok(())
}

fn open_sd(p: &Path) -> Result<StateDict> {
    if !p.exists() {
        return Err(Error::invalid(p.display().to_string(), "no such file"));
    }
    Ok(StateDict::open(p)?)
}

fn cmd_merge(a: MergeArgs) -> Result<()> {
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
