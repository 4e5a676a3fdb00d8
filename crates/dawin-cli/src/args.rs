//! Options shared by several subcommands, each defined once and flattened where it is used
//! (`#[command(flatten)]`); a subcommand whose option reads differently overrides only its help
//! text (`mut_arg`), so every flag and help line stays as it was.
use clap::{Args, ValueEnum};
use dawin::eval::{Coefficient, EvalConfig, Method};
use dawin::vit::text::TextOptions;
use dawin::vit::{Activation, LoadOptions};
use dawin::zeroshot::ZeroShotSpec;
use dawin::{Error, Result};
use std::path::{Path, PathBuf};

/// `--methods`, by name; the list in the help is `eval`'s (`eval-mtl` overrides it).
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct MethodsArg {
    /// Methods, comma-separated: zs, ft, wise, ensemble, dcs, doe, dawin, dawin-sample,
    /// oracle-sample, oracle-domain (default: all).
    #[arg(long, value_delimiter = ',')]
    pub methods: Option<Vec<String>>,
}

impl MethodsArg {
    /// The named methods parsed by `parse`, or `all` when none is named.
    pub fn parse<M: Copy>(&self, all: &[M], parse: fn(&str) -> Result<M>) -> Result<Vec<M>> {
        match &self.methods {
            None => Ok(all.to_vec()),
            Some(v) => v.iter().map(|s| parse(s.trim())).collect(),
        }
    }
}

/// `--batch-size`.
#[derive(Args, Clone, Debug)]
pub(crate) struct BatchArg {
    /// Samples per forward batch.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
}

/// `--out`, an output directory; the help is `eval`'s (`eval-mtl` overrides it).
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct OutDirArg {
    /// Directory for report.json, per-sample .npy arrays and the plots (each as .png and .svg).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl OutDirArg {
    /// `--out`, else `default`.
    pub fn or(&self, default: Option<&Path>) -> Option<PathBuf> {
        self.out.clone().or_else(|| default.map(Path::to_path_buf))
    }
}

/// `--device`; the help is `eval`'s (`logits` overrides it).
#[derive(Args, Clone, Debug)]
pub(crate) struct DeviceArg {
    /// Device: auto (the GPU if one works, else the CPU), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

/// How a checkpoint's architecture is resolved where its tensors cannot tell, and what to do
/// with tensors it does not use (every command that reads a checkpoint).
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct ArchArgs {
    /// open_clip model name fixing what the tensors cannot tell (and checked against them):
    /// ViT-B-32, ViT-B-32-quickgelu, ViT-B-16, ViT-B-16-quickgelu, ViT-L-14, ViT-L-14-quickgelu,
    /// ViT-L-14-336, ViT-L-14-336-quickgelu, ViT-H-14, ViT-H-14-quickgelu, ViT-g-14, ViT-bigG-14.
    #[arg(long, value_name = "NAME")]
    pub arch: Option<String>,
    /// MLP activation: gelu (exact; open_clip's LAION/DataComp towers) or quick-gelu (OpenAI's
    /// CLIP). Default: from a config file or the checkpoint's metadata, else quick-gelu with a
    /// warning.
    #[arg(long, value_parser = parse_activation)]
    pub activation: Option<Activation>,
    /// A Hugging Face config.json or open_clip's open_clip_config.json to read, in place of the
    /// one of that kind beside the checkpoint (read by default).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Do not read config.json / open_clip_config.json beside the checkpoint.
    #[arg(long)]
    pub no_config_files: bool,
    /// Run even when tensors under the vision tower's prefix are not used by the model (they
    /// are listed in a warning; default: an error naming them).
    #[arg(long)]
    pub ignore_unused: bool,
}

fn parse_activation(s: &str) -> std::result::Result<Activation, String> {
    Activation::parse(s).map_err(|e| e.to_string())
}

impl ArchArgs {
    /// The library's load options, with `heads`.
    pub fn options(&self, heads: Option<usize>) -> LoadOptions {
        LoadOptions {
            heads,
            layer_norm_eps: None,
            arch: self.arch.clone(),
            activation: self.activation,
            config: self.config.clone(),
            no_config_files: self.no_config_files,
            ignore_unused: self.ignore_unused,
        }
    }
}

/// How a checkpoint is read (`--heads` and [`ArchArgs`]); the help is `eval`'s (`logits`
/// overrides it).
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct LoadArgs {
    /// Attention heads, when no config file or metadata says (default: width/64, with a warning).
    #[arg(long)]
    pub heads: Option<usize>,
    #[command(flatten)]
    pub arch: ArchArgs,
}

impl LoadArgs {
    /// The library's load options.
    pub fn options(&self) -> LoadOptions {
        self.arch.options(self.heads)
    }
}

/// How a zero-shot head's text tower and tokenizer are read (`zeroshot-head`, `eval
/// --zeroshot-classes`, `eval-mtl --zeroshot-head`).
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct TextArgs {
    /// CLIP tokenizer: bpe_simple_vocab_16e6.txt.gz or a Hugging Face tokenizer.json (default:
    /// either found beside the checkpoint, else the built-in CLIP vocabulary).
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
    /// Attention heads of the text tower (default: width/64, OpenAI's and open_clip's).
    #[arg(long, value_name = "N")]
    pub text_heads: Option<usize>,
    /// MLP activation of the text tower: quick-gelu (OpenAI's CLIP, the default) or gelu
    /// (open_clip's LAION/DataComp models).
    #[arg(long, value_name = "quick-gelu|gelu")]
    pub text_activation: Option<String>,
}

impl TextArgs {
    /// Whether any option is given.
    pub fn any(&self) -> bool {
        self.tokenizer.is_some() || self.text_heads.is_some() || self.text_activation.is_some()
    }

    /// The pipeline's description of a head of `classes` × `templates`.
    pub fn spec(&self, classes: String, templates: String) -> Result<ZeroShotSpec> {
        let activation = self
            .text_activation
            .as_deref()
            .map(|s| {
                Activation::parse(s).map_err(|e| Error::invalid("--text-activation", e.to_string()))
            })
            .transpose()?;
        Ok(ZeroShotSpec {
            classes,
            templates,
            tokenizer: self.tokenizer.clone(),
            text: TextOptions {
                heads: self.text_heads,
                activation,
                layer_norm_eps: None,
            },
        })
    }
}

/// How datasets are read (`eval`, `logits`, `eval-mtl`): the decode workers and what to do
/// with files that do not fit.
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct DataArgs {
    /// Threads decoding and preprocessing images, pipelined with the forward (default: one per
    /// core).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Leave out images that cannot be decoded (corrupt or truncated files): every image is
    /// decoded once first, the bad ones are counted and listed (report.json: `data`), and the
    /// dataset's fingerprint records them. Without it a bad image is an error naming the file.
    #[arg(long)]
    pub skip_bad_files: bool,
    /// Plain image folders: label by the sorted folder names (torchvision ImageFolder) even when
    /// every class folder name is an integer (by default such folders are labelled by their
    /// integer).
    #[arg(long)]
    pub sorted_labels: bool,
    /// WebDataset shards: skip (and count) samples without an image or a .cls label instead of
    /// failing.
    #[arg(long)]
    pub skip_incomplete: bool,
}

impl DataArgs {
    /// The library's options, with one decode pool for every dataset of the run.
    pub fn options(&self) -> Result<dawin::DataOptions> {
        if self.workers == Some(0) {
            return Err(Error::invalid("--workers", "must be ≥ 1"));
        }
        let pool = dawin::vit::DecodePool::new(self.workers.unwrap_or(0))?;
        Ok(dawin::DataOptions {
            pool: Some(std::sync::Arc::new(pool)),
            sorted_labels: self.sorted_labels,
            skip_incomplete: self.skip_incomplete,
        })
    }

    /// Opens dataset `name` at `path` (the name selects the convention: imagenet, imagenet-v2,
    /// imagenet-r, imagenet-a, imagenet-sketch, objectnet; any other is a plain image folder),
    /// leaves out undecodable images with `--skip-bad-files`, and prints (on stderr) what was
    /// applied and the notes.
    pub fn open(
        &self,
        opts: &dawin::DataOptions,
        name: &str,
        path: &Path,
        image_size: usize,
        batch: usize,
    ) -> Result<dawin::ImageFolderDataset> {
        use dawin::Dataset;
        let mut d = dawin::ImageFolderDataset::open_with(name, path, image_size, opts)?;
        if self.skip_bad_files {
            d.skip_bad_files(batch)?;
        }
        // On stderr, beside the progress bars: stdout stays the results (tables, JSON).
        eprintln!(
            "data `{name}`: {}",
            d.describe().unwrap_or_else(|| path.display().to_string())
        );
        for n in d.notes() {
            eprintln!("  note: {n}");
        }
        Ok(d)
    }
}

/// `PATH` or `NAME=PATH` of a dataset argument: the name (which selects the dataset's
/// convention) and the path; without `NAME=` the name is the path's stem.
pub(crate) fn dataset_arg(s: &str) -> (String, PathBuf) {
    match s.split_once('=') {
        Some((n, p)) if !n.is_empty() && !n.contains('/') && !p.is_empty() => {
            (n.to_string(), PathBuf::from(p))
        }
        _ => {
            let p = Path::new(s);
            let stem = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| s.to_string());
            (stem, PathBuf::from(s))
        }
    }
}

/// `--eq`: the coefficient formula.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Eq {
    /// λ = e1 / (e0 + e1).
    #[value(name = "1")]
    One,
    /// λ = (e1 + O/T) / (e0 + e1 + O), the domain-offset form (default).
    #[value(name = "2")]
    Two,
}

impl Eq {
    /// The library's formula.
    pub fn coefficient(self) -> Coefficient {
        match self {
            Eq::One => Coefficient::Eq1,
            Eq::Two => Coefficient::Eq2,
        }
    }
}

/// `--precision` of the CUDA forward.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum CliPrecision {
    Bf16,
    F16,
}

impl CliPrecision {
    /// The library's precision.
    pub fn get(self) -> dawin::vit::cuda::Precision {
        match self {
            CliPrecision::Bf16 => dawin::vit::cuda::Precision::Bf16,
            CliPrecision::F16 => dawin::vit::cuda::Precision::F16,
        }
    }
}

/// Options shared by `eval` and `demo`.
#[derive(Args, Clone)]
pub(crate) struct Common {
    #[command(flatten)]
    pub methods: MethodsArg,
    /// Components of the Beta mixture for `dawin`.
    #[arg(long, default_value_t = 3)]
    pub k: usize,
    /// Expertise metric: entropy, ce-oracle, pl-ensemble-soft, pl-ensemble-hard, pl-merged-soft,
    /// pl-merged-hard, max-logit, max-prob, top-gap.
    #[arg(long, default_value = "entropy")]
    pub expertise: String,
    /// Coefficient formula: 1 (Eq. 1) or 2 (Eq. 2, with the domain offset).
    #[arg(long, value_enum, default_value = "2")]
    pub eq: Eq,
    /// WiSE-FT plug-in: scale λ(x) by α ∈ [0, 1] (dawin, dawin-sample, doe).
    #[arg(long)]
    pub wise_alpha: Option<f32>,
    /// Temperatures T0,T1 (default: fitted on the validation set).
    #[arg(long, value_delimiter = ',', value_name = "T0,T1")]
    pub temperatures: Option<Vec<f32>>,
    #[command(flatten)]
    pub batch: BatchArg,
    /// Seed of the mixture fit.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub out: OutDirArg,
    /// Logits cache directory (default: <out>/.dawin-cache).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Do not cache logits.
    #[arg(long)]
    pub no_cache: bool,
    /// When the cache holds only some shards of a dataset's logits (`dawin logits --shard I/N`),
    /// compute the missing shards here instead of failing.
    #[arg(long)]
    pub compute_missing_shards: bool,
    /// Append the JSON report as one line to this JSONL file.
    #[arg(long)]
    pub results_db: Option<PathBuf>,
    /// Evaluate WiSE-FT's grid on every dataset (the curve of the ID-vs-OOD plot).
    #[arg(long)]
    pub wise_curve: bool,
    /// Skip the plots.
    #[arg(long)]
    pub no_plots: bool,
    #[command(flatten)]
    pub device: DeviceArg,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
    /// dawin-sample / oracle-sample: merge θ(λ) once per distinct λ instead of the blended
    /// per-sample forward (for checking it).
    #[arg(long)]
    pub exact_loop: bool,
    /// Refuse θ1 farther than this from θ0 in ‖θ1 − θ0‖/‖θ0‖ over the encoder (the demo's θ1:
    /// 0.16; unrelated weight sets of similar norm: about 1.41).
    #[arg(long, default_value_t = 1.0)]
    pub max_distance: f64,
    /// With --device cuda: weights and activations in bf16 or f16 (f32 accumulation).
    #[arg(long, value_enum, default_value = "bf16")]
    pub precision: CliPrecision,
}

/// `--temperatures T0,T1`: exactly two positive finite values.
pub(crate) fn temperatures(t: &Option<Vec<f32>>) -> Result<Option<(f32, f32)>> {
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

impl Common {
    /// The pipeline's settings on `device` and the output directory (`--out`, else
    /// `default_out`).
    pub fn eval_config(
        &self,
        device: String,
        default_out: Option<&Path>,
    ) -> Result<(EvalConfig, Option<PathBuf>)> {
        let methods = self.methods.parse(&Method::ALL, Method::parse)?;
        let out = self.out.or(default_out);
        let cache_dir = if self.no_cache {
            None
        } else {
            self.cache_dir
                .clone()
                .or_else(|| out.as_ref().map(|o| o.join(".dawin-cache")))
                .or_else(|| Some(PathBuf::from(".dawin-cache")))
        };
        let cfg = EvalConfig {
            methods,
            k: self.k,
            expertise: self.expertise.clone(),
            coefficient: self.eq.coefficient(),
            wise_alpha: self.wise_alpha,
            batch_size: self.batch.batch_size.max(1),
            seed: self.seed,
            temperatures: temperatures(&self.temperatures)?,
            cache_dir,
            wise_curve: self.wise_curve,
            progress: !self.quiet,
            device,
            exact_loop: self.exact_loop,
            max_distance: self.max_distance,
            compute_missing_shards: self.compute_missing_shards,
        };
        Ok((cfg, out))
    }
}

/// Options of `eval-mtl` (and, except the inputs, of `demo --multi-task`).
#[derive(Args, Clone)]
#[command(mut_arg("methods", |a| a.help(
    "Methods, comma-separated: individual, individual-oracle, base, weight-avg, \
     task-arithmetic, ties, dawin, dawin-sample (default: all)"
)))]
#[command(mut_arg("out", |a| a.help(
    "Directory for report.json, lambda_heatmap.png and .svg (mean λ_j per dataset, Fig. 7) \
     and per dataset <dataset>/{entropy,lambda}.npy [N, M], cluster.npy, labels.npy, \
     pred_<row>.npy and correct_<row>.npy"
)))]
pub(crate) struct MtlOpts {
    /// DaWin's scale s in θ0 + s Σ_j λ_j τ_j (default 0.3·M, the paper's Table 6).
    #[arg(long)]
    pub scale: Option<f32>,
    /// Task arithmetic's scale.
    #[arg(long, default_value_t = 0.3)]
    pub ta_scale: f32,
    /// Components of the Dirichlet mixture for `dawin` (1 = the mean λ vector per dataset).
    #[arg(long, default_value_t = 1)]
    pub k: usize,
    /// TIES-merging: fraction of each task vector's largest magnitudes kept.
    #[arg(long, default_value_t = 0.2)]
    pub ties_top: f32,
    /// TIES-merging: scale of the merged task vector.
    #[arg(long, default_value_t = 0.3)]
    pub ties_scale: f32,
    #[command(flatten)]
    pub methods: MethodsArg,
    #[command(flatten)]
    pub batch: BatchArg,
    /// Seed of the mixture fit.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub out: OutDirArg,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
    /// Refuse a fine-tuned encoder farther than this from the base in ‖θ − θ0‖/‖θ0‖ (the demo's:
    /// 0.10–0.16; unrelated weight sets of similar norm: about 1.41).
    #[arg(long, default_value_t = 1.0)]
    pub max_distance: f64,
    #[command(flatten)]
    pub device: DeviceArg,
    /// With --device cuda: weights and activations in bf16 or f16 (f32 accumulation).
    #[arg(long, value_enum, default_value = "bf16")]
    pub precision: CliPrecision,
}

impl MtlOpts {
    /// `demo --multi-task`: the multi-task defaults with `--methods`, `--batch-size`, `--seed`,
    /// `--out` and `--quiet` of the demo's options.
    pub fn from_common(c: &Common) -> Self {
        MtlOpts {
            scale: None,
            ta_scale: 0.3,
            k: 1,
            ties_top: 0.2,
            ties_scale: 0.3,
            methods: c.methods.clone(),
            batch: c.batch.clone(),
            seed: c.seed,
            out: c.out.clone(),
            quiet: c.quiet,
            max_distance: 1.0,
            device: c.device.clone(),
            precision: c.precision,
        }
    }
}
