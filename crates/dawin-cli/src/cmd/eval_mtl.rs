//! `dawin eval-mtl`: the multi-task evaluation ([`dawin::mtl::evaluate_mtl_full`]) of a base
//! encoder, M fine-tuned encoders and one head per dataset; the tables printed, `report.json`,
//! the heat map and the per-sample arrays written.
use super::name_path;
use crate::args::MtlOpts;
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

pub(crate) fn run(a: EvalMtlArgs) -> Result<()> {
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
    run_mtl(&a.base, &models, &heads, &tests, &opts, &a.opts, None)
}

/// Loads everything ([`load_mtl`]), evaluates, prints the tables, writes `report.json`, the heat
/// map and the per-sample arrays into `--out` (or `default_out`); shared by `eval-mtl` and
/// `demo --multi-task`.
pub(crate) fn run_mtl(
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
    let methods = o.methods.parse(&MtlMethod::ALL, MtlMethod::parse)?;
    let out = o.out.or(default_out);
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
        dawin::plot::lambda_heatmap(r, &dir.join("lambda_heatmap.png"))?;
        println!("outputs: {}", dir.display());
    }
    Ok(())
}
