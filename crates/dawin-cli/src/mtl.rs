//! `dawin eval-mtl` (M fine-tuned models, one head per dataset) and `dawin demo --multi-task`.
use clap::Args;
use dawin::mtl::{evaluate_mtl_full, load_mtl, write_mtl_outputs, MtlConfig, MtlMethod, MtlTask};
use dawin::vit::LoadOptions;
use dawin::{Dataset, Error, ImageFolderDataset, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Options of `eval-mtl` (and, except the inputs, of `demo --multi-task`).
#[derive(Args, Clone)]
pub(crate) struct MtlOpts {
    /// DaWin's scale s in θ0 + s Σ_j λ_j τ_j (default 0.3·M, the paper's Table 6).
    #[arg(long)]
    scale: Option<f32>,
    /// Task arithmetic's scale.
    #[arg(long, default_value_t = 0.3)]
    ta_scale: f32,
    /// Components of the Dirichlet mixture for `dawin` (1 = the mean λ vector per dataset).
    #[arg(long, default_value_t = 1)]
    k: usize,
    /// TIES-merging: fraction of each task vector's largest magnitudes kept.
    #[arg(long, default_value_t = 0.2)]
    ties_top: f32,
    /// TIES-merging: scale of the merged task vector.
    #[arg(long, default_value_t = 0.3)]
    ties_scale: f32,
    /// Methods, comma-separated: individual, individual-oracle, base, weight-avg,
    /// task-arithmetic, ties, dawin, dawin-sample (default: all).
    #[arg(long, value_delimiter = ',')]
    methods: Option<Vec<String>>,
    /// Samples per forward batch.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Seed of the mixture fit.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Directory for report.json, lambda_heatmap.png (mean λ_j per dataset, the paper's Fig. 7)
    /// and per dataset <dataset>/{entropy,lambda}.npy [N, M], cluster.npy, labels.npy,
    /// pred_<row>.npy and correct_<row>.npy.
    #[arg(long)]
    out: Option<PathBuf>,
    /// No progress bars.
    #[arg(long, short)]
    quiet: bool,
    /// Refuse a fine-tuned encoder farther than this from the base in ‖θ − θ0‖/‖θ0‖ (the demo's:
    /// 0.10–0.16; unrelated weight sets of similar norm: about 1.41).
    #[arg(long, default_value_t = 1.0)]
    max_distance: f64,
}

#[derive(Args)]
pub(crate) struct EvalMtlArgs {
    /// Base (pre-trained) checkpoint θ0: the image encoder (.safetensors, a shard index
    /// model.safetensors.index.json, or a directory with either; a head in it is ignored).
    #[arg(long)]
    base: PathBuf,
    /// Fine-tuned checkpoint, repeatable: NAME=PATH (same architecture as the base; file, shard
    /// index or directory; a Hugging Face CLIPVisionModel takes the base's projection).
    #[arg(long = "model", required = true)]
    models: Vec<String>,
    /// Classification head of a dataset, repeatable: NAME=PATH (classification_head.weight [C, E]).
    #[arg(long = "head", required = true)]
    heads: Vec<String>,
    /// Evaluation dataset, repeatable: NAME=PATH; NAME must have a --head.
    #[arg(long = "test", required = true)]
    tests: Vec<String>,
    /// Attention heads, when the checkpoint does not say (default: metadata, else width/64).
    #[arg(long)]
    vit_heads: Option<usize>,
    #[command(flatten)]
    opts: MtlOpts,
}

fn name_path(arg: &str, s: &str) -> Result<(String, PathBuf)> {
    match s.split_once('=') {
        Some((n, p)) if !n.is_empty() && !p.is_empty() => Ok((n.to_string(), PathBuf::from(p))),
        _ => Err(Error::invalid(arg, format!("`{s}`: expected NAME=PATH"))),
    }
}

impl MtlOpts {
    /// `demo --multi-task`: the multi-task defaults with `--methods`, `--batch-size`, `--seed`,
    /// `--out` and `--quiet` of the demo's options.
    pub(crate) fn from_common(c: &crate::Common) -> Self {
        MtlOpts {
            scale: None,
            ta_scale: 0.3,
            k: 1,
            ties_top: 0.2,
            ties_scale: 0.3,
            methods: c.methods.clone(),
            batch_size: c.batch_size,
            seed: c.seed,
            out: c.out.clone(),
            quiet: c.quiet,
            max_distance: 1.0,
        }
    }
}

pub(crate) fn cmd_eval_mtl(a: EvalMtlArgs) -> Result<()> {
    let models = a
        .models
        .iter()
        .map(|s| name_path("--model", s))
        .collect::<Result<Vec<_>>>()?;
    let heads = a
        .heads
        .iter()
        .map(|s| name_path("--head", s))
        .collect::<Result<Vec<_>>>()?;
    let tests = a
        .tests
        .iter()
        .map(|s| name_path("--test", s))
        .collect::<Result<Vec<_>>>()?;
    let opts = LoadOptions {
        heads: a.vit_heads,
        layer_norm_eps: None,
    };
    run(&a.base, &models, &heads, &tests, &opts, &a.opts, None)
}

/// Loads everything, evaluates, prints the tables, writes `report.json`, the heat map and the
/// per-sample arrays into `--out` (or `default_out`).
pub(crate) fn run(
    base: &Path,
    models: &[(String, PathBuf)],
    heads: &[(String, PathBuf)],
    tests: &[(String, PathBuf)],
    load: &LoadOptions,
    o: &MtlOpts,
    default_out: Option<&Path>,
) -> Result<()> {
    let t = Instant::now();
    // Every dataset needs a head, before anything is loaded.
    for (n, p) in tests {
        if !heads.iter().any(|(h, _)| h == n) {
            return Err(Error::invalid(
                format!("--test {n}={}", p.display()),
                format!("dataset `{n}` has no head: add --head {n}=PATH"),
            ));
        }
    }
    let methods = match &o.methods {
        None => MtlMethod::ALL.to_vec(),
        Some(v) => v
            .iter()
            .map(|s| MtlMethod::parse(s.trim()))
            .collect::<Result<_>>()?,
    };
    let out = o.out.clone().or_else(|| default_out.map(Path::to_path_buf));
    if let Some(dir) = &out {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let loaded = load_mtl(base, models, heads, load)?;
    for n in &loaded.vision_only {
        eprintln!("model `{n}`: a vision tower only (no visual_projection.weight); projection taken from the base");
    }
    let s = loaded.base.config().image_size;
    let data = tests
        .iter()
        .map(|(n, p)| ImageFolderDataset::open(n.clone(), p, s))
        .collect::<Result<Vec<_>>>()?;
    let tasks: Vec<MtlTask<'_>> = data
        .iter()
        .map(|d| {
            let head = loaded
                .heads
                .iter()
                .find(|(h, _)| h == d.name())
                .map(|(_, h)| h.clone())
                .expect("checked above");
            MtlTask {
                name: d.name().to_string(),
                head,
                data: d as &dyn Dataset,
            }
        })
        .collect();
    let refs: Vec<(String, &dawin::vit::CheckpointEncoder)> =
        loaded.models.iter().map(|(n, m)| (n.clone(), m)).collect();
    let cfg = MtlConfig {
        methods,
        scale: o.scale,
        ta_scale: o.ta_scale,
        k: o.k,
        ties_top: o.ties_top,
        ties_scale: o.ties_scale,
        batch_size: o.batch_size.max(1),
        seed: o.seed,
        progress: !o.quiet,
        max_distance: o.max_distance,
    };
    let output = evaluate_mtl_full(&loaded.base, &refs, &tasks, &cfg)?;
    let r = &output.report;
    println!("{}", r.markdown());
    println!("{}", r.lambda_markdown());
    println!(
        "M = {}, s = {:.3}, task arithmetic s = {:.3}, TIES top {:.3} scale {:.3}, K = {}; {:.2} s",
        r.models.len(),
        r.scale,
        r.ta_scale,
        r.ties_top,
        r.ties_scale,
        r.k,
        t.elapsed().as_secs_f64()
    );
    let dist: Vec<String> = r
        .models
        .iter()
        .map(|m| format!("{m} {:.3}", r.relative_distance[m]))
        .collect();
    println!("‖θ_j − θ0‖/‖θ0‖: {}", dist.join(", "));
    if let Some(dir) = &out {
        write_mtl_outputs(&output, dir)?;
        dawin::plot::lambda_heatmap(r, &dir.join("lambda_heatmap.png"))?;
        println!("outputs: {}", dir.display());
    }
    Ok(())
}

const TASKS: [&str; 3] = ["digits", "rotation", "parity"];

const FILES: [(&str, &[u8]); 10] = [
    (
        "base.safetensors",
        include_bytes!("../demo/mtl/base.safetensors"),
    ),
    (
        "digits.safetensors",
        include_bytes!("../demo/mtl/digits.safetensors"),
    ),
    (
        "rotation.safetensors",
        include_bytes!("../demo/mtl/rotation.safetensors"),
    ),
    (
        "parity.safetensors",
        include_bytes!("../demo/mtl/parity.safetensors"),
    ),
    (
        "heads/digits.safetensors",
        include_bytes!("../demo/mtl/heads/digits.safetensors"),
    ),
    (
        "heads/rotation.safetensors",
        include_bytes!("../demo/mtl/heads/rotation.safetensors"),
    ),
    (
        "heads/parity.safetensors",
        include_bytes!("../demo/mtl/heads/parity.safetensors"),
    ),
    (
        "data/digits.safetensors",
        include_bytes!("../demo/mtl/data/digits.safetensors"),
    ),
    (
        "data/rotation.safetensors",
        include_bytes!("../demo/mtl/data/rotation.safetensors"),
    ),
    (
        "data/parity.safetensors",
        include_bytes!("../demo/mtl/data/parity.safetensors"),
    ),
];

/// `dawin demo --multi-task`: the embedded M = 3 demo (demo/mtl, see demo/README.md) written to a
/// temporary directory and evaluated with every multi-task method.
pub(crate) fn demo(o: &MtlOpts) -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    for (name, bytes) in FILES {
        let p = dir.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))?;
    }
    let at = |sub: &str, n: &str| dir.path().join(sub).join(format!("{n}.safetensors"));
    let list = |sub: &str| -> Vec<(String, PathBuf)> {
        TASKS.iter().map(|n| (n.to_string(), at(sub, n))).collect()
    };
    let default_out = std::env::temp_dir().join("dawin-demo-mtl");
    run(
        &dir.path().join("base.safetensors"),
        &list(""),
        &list("heads"),
        &list("data"),
        &LoadOptions::default(),
        o,
        Some(&default_out),
    )
}
