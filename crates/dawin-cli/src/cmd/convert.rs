//! `dawin convert`: any readable checkpoint written as safetensors in the tool's naming, with
//! its resolved architecture in the metadata ([`dawin::vit::convert`]), optionally sharded with a
//! Hugging Face index.
use super::warn_defaults;
use crate::args::LoadArgs;
use clap::{Args, ValueEnum};
use dawin::core::DType;
use dawin::vit::{convert, open_resolved, parse_size, ConvertOptions};
use dawin::{Error, Result};
use std::path::PathBuf;

/// `--dtype` of the output.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum OutDtype {
    /// The vision tower's own dtype (f32 for a mix).
    Keep,
    F32,
    F16,
    Bf16,
}

#[derive(Args)]
pub(crate) struct ConvertArgs {
    /// Input checkpoint: any form `dawin inspect` reads.
    input: PathBuf,
    /// Output .safetensors (with --shard-size: <stem>-0000i-of-0000n.safetensors and
    /// <stem>.safetensors.index.json beside it).
    output: PathBuf,
    /// Write shards of at most this much tensor data (e.g. 2GB, 500MB, 64KiB) and a Hugging Face
    /// shard index.
    #[arg(long, value_name = "SIZE")]
    shard_size: Option<String>,
    /// A head file whose head is written instead of the checkpoint's.
    #[arg(long, value_name = "FILE")]
    head: Option<PathBuf>,
    /// Output dtype.
    #[arg(long, value_enum, default_value = "keep")]
    dtype: OutDtype,
    #[command(flatten)]
    load: LoadArgs,
}

pub(crate) fn run(a: ConvertArgs) -> Result<()> {
    if !a.input.exists() {
        return Err(Error::invalid(
            a.input.display().to_string(),
            "no such file",
        ));
    }
    let opts = a.load.options();
    let shard_size = a.shard_size.as_deref().map(parse_size).transpose()?;
    let opened = open_resolved(&a.input, a.head.as_deref(), &opts)?;
    warn_defaults(&[&opened.arch]);
    if let Some(w) = opened.arch.check_unused(opts.ignore_unused)? {
        eprintln!("warning: {w}");
    }
    let dtype = match a.dtype {
        OutDtype::Keep => None,
        OutDtype::F32 => Some(DType::F32),
        OutDtype::F16 => Some(DType::F16),
        OutDtype::Bf16 => Some(DType::BF16),
    };
    let done = convert(
        &opened,
        &a.output,
        &ConvertOptions { shard_size, dtype },
        opts.ignore_unused,
    )?;
    let a_ = &opened.arch;
    println!(
        "read {} ({}, {}): {} tensors, {} bytes of {} tensor data",
        a_.checkpoint,
        a_.format,
        a_.naming.describe(),
        done.tensors,
        done.total_size,
        done.dtype
    );
    match &done.index {
        Some(ix) => println!("wrote {} shards and {}", done.files.len(), ix.display()),
        None => println!("wrote {}", done.files[0].display()),
    }
    if a_.head.is_none() {
        println!("no classification head: the output holds the encoder alone");
    }
    Ok(())
}
