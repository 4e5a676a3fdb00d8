//! `dawin inspect`: a checkpoint's form, naming and every architecture field with its source
//! ([`dawin::vit::inspect_checkpoint`]), read without loading the weights.
use crate::args::LoadArgs;
use clap::Args;
use dawin::{Error, Result};
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct InspectArgs {
    /// Checkpoint: .safetensors, .pt/.pth/.bin/.pkl (torch.save zip or legacy, pickle.dump,
    /// whole pickled modules, TorchScript), a shard index (*.index.json) or a directory.
    checkpoint: PathBuf,
    /// A head file whose head replaces the checkpoint's (a pickled ClassificationHead, a state
    /// dict or safetensors with weight/bias or classification_head.*).
    #[arg(long, value_name = "FILE")]
    head: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    load: LoadArgs,
}

pub(crate) fn run(a: InspectArgs) -> Result<()> {
    if !a.checkpoint.exists() {
        return Err(Error::invalid(
            a.checkpoint.display().to_string(),
            "no such file",
        ));
    }
    let arch = dawin::vit::inspect_checkpoint(&a.checkpoint, a.head.as_deref(), &a.load.options())?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&arch.to_json()).expect("JSON")
        );
    } else {
        print!("{}", arch.render());
    }
    Ok(())
}
