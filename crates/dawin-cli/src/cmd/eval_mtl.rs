//! `dawin eval-mtl`: the multi-task evaluation ([`dawin::mtl::evaluate_mtl_full`]) of a base
//! encoder, M fine-tuned encoders and one head per dataset; the tables printed, `report.json`,
//! the heat map and the per-sample arrays written.
use super::{annotate_report, name_path, warn_defaults};
use crate::args::{ArchArgs, DataArgs, MtlOpts, TextArgs};
use crate::device::{mtl_on_gpu, resolve_device, Device};
use clap::Args;
use dawin::mtl::{
    evaluate_mtl_device, evaluate_mtl_full, load_mtl, write_mtl_outputs, MtlConfig, MtlMethod,
    MtlTask,
};
use dawin::vit::LoadOptions;
use dawin::{Dataset, Error, ImageFolderDataset, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub(crate) struct EvalMtlArgs {
    /// Base (pre-trained) checkpoint θ0: the image encoder (.safetensors, .pt/.pth/.bin of any
    /// PyTorch kind, a shard index, or a directory; a head in it is ignored).
    #[arg(long)]
    base: PathBuf,
    /// Fine-tuned checkpoint, repeatable: NAME=PATH (same architecture as the base; any form of
    /// --base; a Hugging Face CLIPVisionModel takes the base's projection).
    #[arg(long = "model", required = true)]
    models: Vec<String>,
    /// Classification head of a dataset, repeatable: NAME=FILE (a pickled ClassificationHead such
    /// as task_vectors' head_<Task>.pt, a state dict or safetensors with weight/bias or
    /// classification_head.weight [C, E] / .bias [C]).
    #[arg(long = "head", required_unless_present = "zeroshot_heads")]
    heads: Vec<String>,
    /// Zero-shot head of a dataset from the base's CLIP text tower, repeatable:
    /// NAME=CLASSES[:TEMPLATES] (CLASSES a file, one name per line, or `imagenet`; TEMPLATES a
    /// built-in set or a file, default the built-in set named NAME if any, else
    /// openai-imagenet); cached in <out>/.dawin-cache (./.dawin-cache without --out).
    #[arg(long = "zeroshot-head", value_name = "NAME=CLASSES[:TEMPLATES]")]
    zeroshot_heads: Vec<String>,
    #[command(flatten)]
    text: TextArgs,
    /// Evaluation dataset, repeatable: NAME=PATH (an image folder, WebDataset shards or a
    /// safetensors file); NAME must have a --head. NAME imagenet, imagenet-v2, imagenet-r,
    /// imagenet-a, imagenet-sketch or objectnet applies that dataset's convention (as
    /// `dawin eval --test`), any other a plain image folder.
    #[arg(long = "test", required = true)]
    tests: Vec<String>,
    #[command(flatten)]
    data: DataArgs,
    /// Attention heads, when the checkpoint does not say (default: metadata, else width/64).
    #[arg(long)]
    vit_heads: Option<usize>,
    #[command(flatten)]
    arch: ArchArgs,
    #[command(flatten)]
    opts: MtlOpts,
}

pub(crate) fn run(a: EvalMtlArgs) -> Result<()> {
    let models = a
        .models
        .iter()
        .map(|s| name_path("--model", s))
        .collect::<Result<Vec<_>>>()?;
    let mut heads = a
        .heads
        .iter()
        .map(|s| name_path("--head", s))
        .collect::<Result<Vec<_>>>()?;
    heads.extend(zero_shot_heads(&a, &heads)?);
    let tests = a
        .tests
        .iter()
        .map(|s| name_path("--test", s))
        .collect::<Result<Vec<_>>>()?;
    let opts = a.arch.options(a.vit_heads);
    let data = Some(&a.data);
    run_mtl(&a.base, &models, &heads, &tests, &opts, &a.opts, data, None)
}

/// `NAME=CLASSES[:TEMPLATES]` of `--zeroshot-head`: the templates part only when what precedes
/// the last `:` is a class list (`imagenet` or an existing file).
fn parse_zero_shot(s: &str) -> Result<(String, String, Option<String>)> {
    let (name, rest) = name_path("--zeroshot-head", s)?;
    let rest = rest.to_string_lossy().into_owned();
    match rest.rsplit_once(':') {
        Some((c, t))
            if !t.is_empty() && (c.eq_ignore_ascii_case("imagenet") || Path::new(c).is_file()) =>
        {
            Ok((name, c.to_string(), Some(t.to_string())))
        }
        _ => Ok((name, rest, None)),
    }
}

/// The `--zeroshot-head` heads, built with the base's text tower (or read from the cache) and
/// given as (name, cached head file).
fn zero_shot_heads(a: &EvalMtlArgs, given: &[(String, PathBuf)]) -> Result<Vec<(String, PathBuf)>> {
    if a.zeroshot_heads.is_empty() {
        if a.text.any() {
            return Err(Error::invalid(
                "--tokenizer/--text-heads/--text-activation",
                "only apply with --zeroshot-head",
            ));
        }
        return Ok(Vec::new());
    }
    let cache = a.opts.out.or(None).unwrap_or_default().join(".dawin-cache");
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for s in &a.zeroshot_heads {
        let (name, classes, templates) = parse_zero_shot(s)?;
        if given.iter().chain(&out).any(|(n, _)| *n == name) {
            return Err(Error::invalid(
                format!("--zeroshot-head {s}"),
                format!("dataset `{name}` already has a head"),
            ));
        }
        let templates = templates.unwrap_or_else(|| {
            let t = match dawin::vit::prompts::templates(&name) {
                Some(_) => name.to_ascii_lowercase(),
                None => "openai-imagenet".to_string(),
            };
            eprintln!("dataset `{name}`: templates {t} (give NAME=CLASSES:TEMPLATES to choose)");
            t
        });
        let spec = a.text.spec(classes, templates)?;
        let built =
            dawin::zeroshot::zero_shot_head_cached(&a.base, &spec, Some(&cache), !a.opts.quiet)?;
        for n in &built.notes {
            eprintln!("{n}");
        }
        out.push((name, built.path.expect("a cache directory was given")));
    }
    Ok(out)
}

/// Loads everything ([`load_mtl`]), evaluates, prints the tables, writes `report.json`, the heat
/// map and the per-sample arrays into `--out` (or `default_out`); shared by `eval-mtl` and
/// `demo --multi-task`. Datasets are opened with `data`'s options and what was applied is
/// printed; with `None` (the demo) with the defaults, silently.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_mtl(
    base: &Path,
    models: &[(String, PathBuf)],
    heads: &[(String, PathBuf)],
    tests: &[(String, PathBuf)],
    load: &LoadOptions,
    o: &MtlOpts,
    data: Option<&DataArgs>,
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
    let methods = o.methods.parse(&MtlMethod::ALL, MtlMethod::parse)?;
    let out = o.out.or(default_out);
    if let Some(dir) = &out {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let loaded = load_mtl(base, models, heads, load)?;
    warn_defaults(
        &loaded
            .architectures
            .iter()
            .map(|(_, a)| a)
            .collect::<Vec<_>>(),
    );
    for n in &loaded.vision_only {
        eprintln!("model `{n}`: a vision tower only (no visual_projection.weight); projection taken from the base");
    }
    let s = loaded.base.config().image_size;
    let batch = o.batch.batch_size.max(1);
    let data = match data {
        Some(args) => {
            let opts = args.options()?;
            tests
                .iter()
                .map(|(n, p)| args.open(&opts, n, p, s, batch))
                .collect::<Result<Vec<_>>>()?
        }
        None => tests
            .iter()
            .map(|(n, p)| ImageFolderDataset::open(n.clone(), p, s))
            .collect::<Result<Vec<_>>>()?,
    };
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
        batch_size: o.batch.batch_size.max(1),
        seed: o.seed,
        progress: !o.quiet,
        max_distance: o.max_distance,
    };
    let (output, device) = match resolve_device(&o.device.device)? {
        Device::Cpu => (
            evaluate_mtl_full(&loaded.base, &refs, &tasks, &cfg)?,
            "cpu".to_string(),
        ),
        Device::Cuda(n) => {
            // θ0 and the M encoders uploaded once; merges by the task-arithmetic kernel.
            let encoders: Vec<_> = refs.iter().map(|(_, m)| *m).collect();
            let up = Instant::now();
            let (dev, name) = mtl_on_gpu(n, &loaded.base, &encoders, o.precision)?;
            let up = up.elapsed().as_secs_f64();
            let mut output = evaluate_mtl_device(&dev, &loaded.base, &refs, &tasks, &cfg)?;
            output.report.timings.insert(0, ("upload".into(), up));
            (output, name)
        }
    };
    let r = &output.report;
    println!("{}", r.markdown());
    println!("{}", r.lambda_markdown());
    println!(
        "M = {}, s = {:.3}, task arithmetic s = {:.3}, TIES top {:.3} scale {:.3}, K = {}; device: {device}; {:.2} s",
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
        let archs: Vec<(String, &dawin::vit::arch::Architecture)> = loaded
            .architectures
            .iter()
            .map(|(n, a)| (n.clone(), a))
            .collect();
        annotate_report(dir, &archs)?;
        dawin::plot::lambda_heatmap(r, &dir.join("lambda_heatmap.png"))?;
        println!("outputs: {}", dir.display());
    }
    Ok(())
}
