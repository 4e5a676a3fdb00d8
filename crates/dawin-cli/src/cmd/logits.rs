//! `dawin logits`: one checkpoint over a dataset (or one shard of it, `--shard I/N`), its logits
//! (and features, labels) written as `.npy` and/or into the logits cache `dawin eval` reads
//! ([`dawin::eval::shard_logits`]).
use super::{checkpoint_fingerprint, load_model, model_tag, stem, warn_defaults};
use crate::args::{dataset_arg, BatchArg, DataArgs, DeviceArg, LoadArgs};
use crate::device::{resolve_device, Device};
use clap::Args;
use dawin::core::npy;
use dawin::eval::{map_logits, Named, Shard};
use dawin::{Dataset, Error, Result};
use std::path::PathBuf;

#[derive(Args)]
#[command(mut_arg("heads", |a| a.help("Attention heads, when the checkpoint does not say")))]
#[command(mut_arg("device", |a| a.help("Device: auto, cpu, cuda or cuda:N")))]
pub(crate) struct LogitsArgs {
    /// Checkpoint: .safetensors, .pt/.pth/.bin (torch.save, pickle, TorchScript), a shard index
    /// or a directory.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Classification head from a file (a pickled ClassificationHead, a state dict or
    /// safetensors with weight/bias or classification_head.*); replaces a head in the checkpoint.
    #[arg(long, value_name = "FILE")]
    head: Option<PathBuf>,
    /// Dataset, PATH or NAME=PATH: an image folder, WebDataset shards (`x.tar`, `a.tar::b.tar`,
    /// `val-{0000..0063}.tar`) or a safetensors file; NAME selects the convention as in
    /// `dawin eval --test` (imagenet, imagenet-v2, imagenet-r, imagenet-a, imagenet-sketch,
    /// objectnet). Give it exactly as `dawin eval` will, so that both agree on the dataset.
    #[arg(long, value_name = "[NAME=]PATH")]
    data: String,
    /// Output .npy for the logits [N, K] over the dataset's classes: the head's C, or the K of
    /// its convention's class mapping (ImageNet-R/-A: 200, ObjectNet: 113, max-pooled).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write the unit-norm features [N, E] to this .npy.
    #[arg(long)]
    features: Option<PathBuf>,
    /// Also write the labels [N] (i64) to this .npy.
    #[arg(long)]
    labels_out: Option<PathBuf>,
    /// Compute shard I of N only (0 ≤ I < N): the samples ⌊I·n/N⌋ … ⌊(I+1)·n/N⌋ − 1 of the n
    /// samples, in dataset order (contiguous; sizes differ by at most one). With --cache-dir the
    /// shard goes where `dawin eval --cache-dir` assembles the complete set. For a Slurm job
    /// array: --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// The logits cache `dawin eval --cache-dir` reads (content-addressed by the checkpoint's and
    /// the dataset's fingerprints): the head's logits are stored there (nothing is computed
    /// when they already are).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    batch: BatchArg,
    #[command(flatten)]
    device: DeviceArg,
    #[command(flatten)]
    reading: DataArgs,
}

pub(crate) fn run(a: LogitsArgs) -> Result<()> {
    if let Device::Cuda(_) = resolve_device(&a.device.device)? {
        return Err(Error::invalid(
            "--device",
            "`dawin logits` runs on the CPU in this build (use `dawin eval --device cuda`)",
        ));
    }
    if a.out.is_none() && a.cache_dir.is_none() {
        return Err(Error::invalid(
            "dawin logits",
            "nothing to write: give --out FILE.npy, --cache-dir DIR or both",
        ));
    }
    let shard = a.shard.as_deref().map(Shard::parse).transpose()?;
    let m = load_model(&a.checkpoint, a.head.as_deref(), &a.load.options())?;
    warn_defaults(&m.architecture().into_iter().collect::<Vec<_>>());
    // As `dawin eval` keys its cache: the file, then the architecture and head file.
    let fingerprint = checkpoint_fingerprint(&a.checkpoint)? + &model_tag(&m, a.head.as_deref())?;
    let c = m.config().num_classes;
    let batch = a.batch.batch_size.max(1);
    let opts = a.reading.options()?;
    let (name, path) = dataset_arg(&a.data);
    let d = a
        .reading
        .open(&opts, &name, &path, m.config().image_size, batch)?;
    dawin::check_head(&d, c)?;
    let n = d.len();
    let range = shard.map_or(0..n, |s| s.range(n));
    let (z, feats, cached) = match (&a.cache_dir, &a.features) {
        (Some(dir), None) => {
            let named = Named::new(stem(&a.checkpoint), &m, fingerprint.clone());
            let s = shard.unwrap_or(Shard::new(0, 1)?);
            let (z, _, cached) = dawin::eval::shard_logits(&named, &d, s, dir, batch, true)?;
            (z, None, cached)
        }
        _ => {
            let idx: Vec<usize> = range.clone().collect();
            let (mut z, mut f) = (Vec::new(), Vec::new());
            dawin::for_each_batch(&d, &idx, batch, |x, chunk| {
                let o = m.forward_with(x, chunk.len(), a.features.is_some())?;
                z.extend(o.logits);
                f.extend(o.features.unwrap_or_default());
                Ok(())
            })?;
            if let Some(dir) = &a.cache_dir {
                let key = dawin::eval::cache_key(&fingerprint, &d.fingerprint()?);
                let s = shard.filter(|s| s.count > 1);
                dawin::eval::store(dir, &key, s, &z, c)?;
            }
            (z, a.features.is_some().then_some(f), false)
        }
    };
    let rows = range.len();
    let labels = &d.labels()[range.clone()];
    let mapped = map_logits(z, c, d.class_mapping())?;
    let k = d.class_mapping().map_or(c, |m| m.len());
    if let Some(out) = &a.out {
        npy::write_f32(out, &mapped, &[rows, k])?;
    }
    if let (Some(f), Some(feat)) = (&a.features, &feats) {
        npy::write_f32(f, feat, &[rows, feat.len() / rows.max(1)])?;
    }
    if let Some(f) = &a.labels_out {
        npy::write_i64(f, labels, &[rows])?;
    }
    let pred = dawin::core::stats::argmax(&mapped, k)?;
    let correct = pred
        .iter()
        .zip(labels)
        .filter(|(&p, &y)| p as i64 == y)
        .count();
    let part = match shard {
        Some(s) => format!("shard {s}: samples {}..{} of {n}", range.start, range.end),
        None => format!("{n} samples"),
    };
    println!(
        "{part}, {k} classes, accuracy {:.2} %{}",
        100.0 * correct as f64 / rows.max(1) as f64,
        match (&a.cache_dir, cached) {
            (Some(dir), true) => format!("; already in the cache {}", dir.display()),
            (Some(dir), false) => format!("; stored in the cache {}", dir.display()),
            (None, _) => String::new(),
        }
    );
    Ok(())
}
