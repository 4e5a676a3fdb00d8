//! `dawin zeroshot-head`: a CLIP checkpoint's zero-shot classification head from class names
//! and prompt templates, with its own text tower ([`dawin::zeroshot::write_zero_shot_head`]).
use crate::args::TextArgs;
use clap::Args;
use dawin::Result;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
#[command(mut_arg("text_activation", |a| a.visible_alias("activation")))]
pub(crate) struct ZeroShotHeadArgs {
    /// CLIP checkpoint with its text tower (.safetensors, a shard index, or a directory;
    /// OpenAI / open_clip or Hugging Face naming).
    #[arg(long)]
    clip: PathBuf,
    /// Class names: a file with one name per line (class-index order), or `imagenet` (the 1000
    /// ImageNet names of CLIP's evaluation).
    #[arg(long, value_name = "FILE|imagenet")]
    classes: String,
    /// Templates, each with one `{}` for the class name: a built-in set (openai-imagenet,
    /// openai-imagenet-7, simple, cars, cifar10, cifar100, dtd, eurosat, food101, gtsrb, mnist,
    /// resisc45, stl10, sun397, svhn) or a file with one template per line.
    #[arg(long, value_name = "NAME|FILE")]
    templates: String,
    #[command(flatten)]
    text: TextArgs,
    /// Output .safetensors: classification_head.weight [C, E] = exp(logit_scale) × the class
    /// embeddings, classification_head.bias [C] = 0, what it was built from in the metadata.
    #[arg(long)]
    out: PathBuf,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

pub(crate) fn run(a: ZeroShotHeadArgs) -> Result<()> {
    let spec = a.text.spec(a.classes.clone(), a.templates.clone())?;
    let t = Instant::now();
    let built = dawin::zeroshot::write_zero_shot_head(&a.clip, &spec, &a.out, !a.quiet)?;
    for n in &built.notes {
        eprintln!("{n}");
    }
    println!(
        "wrote {}: classification_head.weight [{}, {}], bias zeros; {:.2} s",
        a.out.display(),
        built.head.out_dim,
        built.head.in_dim,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
