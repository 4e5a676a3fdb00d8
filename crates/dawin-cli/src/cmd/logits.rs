//! `dawin logits`: one checkpoint over a dataset ([`dawin::vit::ClipClassifier::predict_dataset`]),
//! its logits (and features, labels) written as `.npy`.
use super::{load_model, warn_defaults};
use crate::args::{BatchArg, DeviceArg, LoadArgs};
use crate::device::{resolve_device, Device};
use clap::Args;
use dawin::core::npy;
use dawin::{Error, Result};
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
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    batch: BatchArg,
    #[command(flatten)]
    device: DeviceArg,
}

pub(crate) fn run(a: LogitsArgs) -> Result<()> {
    if let Device::Cuda(_) = resolve_device(&a.device.device)? {
        return Err(Error::invalid(
            "--device",
            "`dawin logits` runs on the CPU in this build (use `dawin eval --device cuda`)",
        ));
    }
    let m = load_model(&a.checkpoint, a.head.as_deref(), &a.load.options())?;
    warn_defaults(&m.architecture().into_iter().collect::<Vec<_>>());
    let ds = dawin::vit::ImageDataset::open(&a.data, m.config().image_size)?;
    let batch = a.batch.batch_size.max(1);
    let p = m.predict_dataset(&ds, batch, false, a.features.is_some())?;
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
