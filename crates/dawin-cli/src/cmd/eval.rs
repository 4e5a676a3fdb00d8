//! `dawin eval`: every method on an ID validation set, an ID test set and shifted test sets
//! ([`dawin::eval::evaluate`]), or streaming DaWin batch by batch
//! ([`dawin::eval::evaluate_streaming`]).
use super::{annotate_report, load_model, model_tag, stem, warn_defaults};
use crate::args::{dataset_arg, Common, DataArgs, LoadArgs, TextArgs};
use crate::device::{on_gpu, resolve_device, Device};
use clap::Args;
use dawin::eval::Named;
use dawin::vit::ClipClassifier;
use dawin::{Dataset, Error, Interpolate, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub(crate) struct EvalArgs {
    /// Pre-trained / zero-shot checkpoint θ0: .safetensors, .pt/.pth/.bin (torch.save, pickle,
    /// TorchScript), a shard index or a directory; OpenAI/open_clip or Hugging Face naming; with
    /// classification_head.weight/.bias unless --theta0-head is given, or a CLIP with its text
    /// tower and --zeroshot-classes.
    #[arg(long)]
    theta0: PathBuf,
    /// Fine-tuned checkpoint θ1 (same architecture, same forms).
    #[arg(long)]
    theta1: PathBuf,
    /// θ0's classification head from a file (a pickled ClassificationHead, a state dict or
    /// safetensors with weight/bias or classification_head.*); replaces a head in θ0.
    #[arg(long, value_name = "FILE", conflicts_with = "zeroshot_classes")]
    theta0_head: Option<PathBuf>,
    /// θ1's classification head from a file (as --theta0-head).
    #[arg(long, value_name = "FILE")]
    theta1_head: Option<PathBuf>,
    /// Labelled ID validation set, PATH or NAME=PATH: an image folder, WebDataset shards
    /// (`x.tar`, `a.tar::b.tar`, `val-{0000..0063}.tar`) or a safetensors file
    /// (`images`/`labels`); NAME selects the dataset's convention as for --test.
    #[arg(long, value_name = "[NAME=]PATH")]
    val: String,
    /// ID test set (the table's first column), PATH or NAME=PATH as --val.
    #[arg(long, value_name = "[NAME=]PATH")]
    id: String,
    /// Shifted test sets, repeatable: PATH or NAME=PATH. NAME imagenet, imagenet-v2,
    /// imagenet-r, imagenet-a, imagenet-sketch or objectnet applies that dataset's layout,
    /// labels, class subset (R, A) or max-pooled class mapping and border crop (ObjectNet), and
    /// the tool prints what it applied; any other NAME is a plain image folder (labelled by the
    /// folders' integers when every class folder name is an integer).
    #[arg(long = "test", value_name = "[NAME=]PATH")]
    tests: Vec<String>,
    /// NAME=FILE, repeatable: dataset NAME is labelled over a subset of the head's classes;
    /// FILE lists them in label order (.npy of integers, or text: integers separated by spaces,
    /// commas or newlines). Logits are restricted to those columns before entropies, λ and
    /// argmax. Not needed for imagenet-r / imagenet-a, whose subsets are built in.
    #[arg(long = "class-subset", value_name = "NAME=FILE")]
    class_subsets: Vec<String>,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    load: LoadArgs,
    /// Build θ0's head from these class names with θ0's CLIP text tower (FILE: one name per
    /// line; `imagenet`: CLIP's 1000 ImageNet names), cached in the logits cache directory; it
    /// replaces a head θ0 has, and θ1 gets it when θ1 has none.
    #[arg(long, value_name = "FILE|imagenet")]
    zeroshot_classes: Option<String>,
    /// With --zeroshot-classes: the templates, a built-in set (openai-imagenet, simple, …) or a
    /// file with one template per line (default: openai-imagenet).
    #[arg(long, value_name = "NAME|FILE", requires = "zeroshot_classes")]
    templates: Option<String>,
    #[command(flatten)]
    text: TextArgs,
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

/// θ0 and θ1, and what their logits cache keys add to the files' fingerprints: with
/// `--zeroshot-classes` θ0's head is built from its text tower (and given to a θ1 without one).
fn load_pair(a: &EvalArgs) -> Result<(ClipClassifier, ClipClassifier, [Option<String>; 2])> {
    use dawin::zeroshot::{classifier_with_head, has_classification_head, zero_shot_head_cached};
    let Some(classes) = &a.zeroshot_classes else {
        if a.text.any() {
            return Err(Error::invalid(
                "--tokenizer/--text-heads/--text-activation",
                "only apply with --zeroshot-classes",
            ));
        }
        let m0 = load_model(&a.theta0, a.theta0_head.as_deref(), &a.load.options())?;
        let m1 = load_model(&a.theta1, a.theta1_head.as_deref(), &a.load.options())?;
        return Ok((m0, m1, [None, None]));
    };
    let templates = a.templates.as_deref().unwrap_or("openai-imagenet");
    let spec = a.text.spec(classes.clone(), templates.to_string())?;
    let (cfg, _) = a.common.eval_config("cpu".into(), None)?;
    let zs = zero_shot_head_cached(&a.theta0, &spec, cfg.cache_dir.as_deref(), !a.common.quiet)?;
    for n in &zs.notes {
        eprintln!("{n}");
    }
    if has_classification_head(&a.theta0)? {
        eprintln!(
            "θ0 {}: its own classification_head is replaced by the zero-shot head",
            a.theta0.display()
        );
    }
    let tag = format!(":zeroshot-head={}", zs.key);
    let m0 = classifier_with_head(&a.theta0, &zs, &a.load.options())?;
    if a.theta1_head.is_some() || has_classification_head(&a.theta1)? {
        return Ok((
            m0,
            load_model(&a.theta1, a.theta1_head.as_deref(), &a.load.options())?,
            [Some(tag), None],
        ));
    }
    eprintln!(
        "θ1 {} has no classification_head: it gets θ0's zero-shot head",
        a.theta1.display()
    );
    let m1 = classifier_with_head(&a.theta1, &zs, &a.load.options())?;
    Ok((m0, m1, [Some(tag.clone()), Some(tag)]))
}

pub(crate) fn run(a: EvalArgs) -> Result<()> {
    let (m0, m1, tags) = load_pair(&a)?;
    let archs: Vec<_> = [&m0, &m1].iter().filter_map(|m| m.architecture()).collect();
    warn_defaults(&archs);
    // The cache keys also hold each model's head file and architecture (a flag such as
    // --activation changes the logits, not the file).
    let tags = [
        Some(tags[0].clone().unwrap_or_default() + &model_tag(&m0, a.theta0_head.as_deref())?),
        Some(tags[1].clone().unwrap_or_default() + &model_tag(&m1, a.theta1_head.as_deref())?),
    ];
    m0.check_compatible(&m1).map_err(|e| {
        Error::invalid(
            format!("{} vs {}", a.theta0.display(), a.theta1.display()),
            e.to_string(),
        )
    })?;
    let s = m0.config().image_size;
    let batch = a.common.batch.batch_size.max(1);
    let opts = a.data.options()?;
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
    let mut open = |spec: &str| -> Result<Box<dyn Dataset>> {
        let (name, path) = dataset_arg(spec);
        let d = a.data.open(&opts, &name, &path, s, batch)?;
        match subsets.iter_mut().find(|(n, _, _)| n == d.name()) {
            Some((_, sub, used)) => {
                *used = true;
                if d.class_mapping().is_some() {
                    return Err(Error::invalid(
                        format!("--class-subset {name}=…"),
                        format!(
                            "dataset `{name}` already has the class mapping of its convention                              ({}); drop --class-subset, or give the dataset another name to read                              it as a plain folder",
                            d.benchmark().name()
                        ),
                    ));
                }
                Ok(Box::new(dawin::WithClassMapping::subset(d, sub.clone())?))
            }
            None => Ok(Box::new(d)),
        }
    };
    let val = open(&a.val)?;
    let id = open(&a.id)?;
    let tests = a
        .tests
        .iter()
        .map(|t| open(t))
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
        return match resolve_device(&a.common.device.device)? {
            Device::Cpu => run_streaming(&a, &m0, &m1, "cpu".into(), &*val, &evals),
            Device::Cuda(n) => {
                let (g0, g1, name) = on_gpu(n, &m0, &m1, a.common.precision)?;
                run_streaming(&a, &g0, &g1, name, &*val, &evals)
            }
        };
    }
    let theta = ((a.theta0.as_path(), &m0), (a.theta1.as_path(), &m1));
    let tags = [tags[0].as_deref(), tags[1].as_deref()];
    run_eval_tagged(theta, tags, (&*val, &*id, &refs), &a.common, None)
}

/// Runs the pipeline ([`dawin::eval::evaluate`], on the CPU or a GPU) and prints the table,
/// writes the outputs and appends the results file; shared by `eval` and `demo`.
pub(crate) fn run_eval(
    theta: ((&Path, &ClipClassifier), (&Path, &ClipClassifier)),
    data: (&dyn Dataset, &dyn Dataset, &[&dyn Dataset]),
    common: &Common,
    default_out: Option<&Path>,
) -> Result<()> {
    run_eval_tagged(theta, [None, None], data, common, default_out)
}

/// [`run_eval`] with `tags` appended to θ0's and θ1's file fingerprints in the logits cache
/// keys (a head not from the file: the zero-shot head's key).
fn run_eval_tagged(
    (theta0, theta1): ((&Path, &ClipClassifier), (&Path, &ClipClassifier)),
    tags: [Option<&str>; 2],
    (val, id, tests): (&dyn Dataset, &dyn Dataset, &[&dyn Dataset]),
    common: &Common,
    default_out: Option<&Path>,
) -> Result<()> {
    let device = resolve_device(&common.device.device)?;
    let (mut cfg, out) = common.eval_config("cpu".into(), default_out)?;
    // Check the output paths before the work, so an unwritable one fails fast.
    if let Some(o) = &out {
        std::fs::create_dir_all(o).map_err(|e| Error::io(o, e))?;
    }
    let t = Instant::now();
    let (f0, f1) = (
        super::checkpoint_fingerprint(theta0.0)? + tags[0].unwrap_or(""),
        super::checkpoint_fingerprint(theta1.0)? + tags[1].unwrap_or(""),
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
            let up = Instant::now();
            let (g0, g1, name) = on_gpu(n, theta0.1, theta1.1, common.precision)?;
            let up = up.elapsed().as_secs_f64();
            cfg.device = name;
            // Cached logits are the device's and precision's own.
            let tag = format!(":cuda-{:?}", common.precision);
            let mut res = dawin::eval::evaluate(
                &Named::new(s0, &g0, f0 + &tag),
                &Named::new(s1, &g1, f1 + &tag),
                val,
                id,
                tests,
                &cfg,
            )?;
            res.report.timings.insert(0, ("upload".into(), up));
            res
        }
    };
    let r = &res.report;
    println!("{}", r.markdown());
    if let Some(p) = &r.per_sample_forward {
        println!("per-sample forward: {p}");
    }
    for (name, info) in &r.data {
        if let Some(k) = info.logits_from_shards.first() {
            println!(
                "cache: θ0/θ1 logits of `{name}` assembled from {k} shards (dawin logits --shard)"
            );
        }
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
        let archs: Vec<(String, &dawin::vit::arch::Architecture)> =
            [("theta0", theta0.1), ("theta1", theta1.1)]
                .into_iter()
                .filter_map(|(k, m)| m.architecture().map(|a| (k.to_string(), a)))
                .collect();
        annotate_report(o, &archs)?;
        if !common.no_plots {
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

/// `dawin eval --streaming`: [`dawin::eval::evaluate_streaming`] on each dataset, with the
/// temperatures given or fitted on `val` ([`dawin::eval::fit_temperatures`]).
fn run_streaming<M: Interpolate>(
    a: &EvalArgs,
    m0: &M,
    m1: &M,
    device: String,
    val: &dyn Dataset,
    evals: &[&dyn Dataset],
) -> Result<()> {
    let (cfg, _) = a.common.eval_config(device, None)?;
    let (t0, t1) = match cfg.temperatures {
        Some(t) => t,
        None => dawin::eval::fit_temperatures(m0, m1, val, cfg.batch_size, cfg.progress)?,
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
