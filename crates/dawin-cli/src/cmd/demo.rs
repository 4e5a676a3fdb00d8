//! `dawin demo`: the embedded demos (see demo/README.md) written to a temporary directory and
//! evaluated with every method: two models ([`super::eval::run_eval`]) or, with
//! `--multi-task`, M = 3 fine-tuned encoders ([`super::eval_mtl::run_mtl`]).
use super::eval::run_eval;
use super::eval_mtl::run_mtl;
use crate::args::{Common, MtlOpts};
use clap::Args;
use dawin::vit::{ClipClassifier, LoadOptions};
use dawin::{Dataset, Error, InMemoryDataset, Result};
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct DemoArgs {
    /// Run the multi-task demo instead (M = 3 fine-tuned encoders, one head per task; `eval-mtl`
    /// with its defaults: K = 1, s = 0.3·M; --methods takes the multi-task names, --out,
    /// --batch-size, --seed and --quiet apply).
    #[arg(long)]
    multi_task: bool,
    #[command(flatten)]
    common: Common,
}

pub(crate) fn run(a: DemoArgs) -> Result<()> {
    match a.multi_task {
        true => multi_task(&MtlOpts::from_common(&a.common)),
        false => two_models(a.common),
    }
}

/// The two-model demo's files (crates/dawin-cli/demo).
const FILES_2: [(&str, &[u8]); 9] = [
    (
        "theta0.safetensors",
        include_bytes!("../../demo/theta0.safetensors"),
    ),
    (
        "theta1.safetensors",
        include_bytes!("../../demo/theta1.safetensors"),
    ),
    (
        "val.safetensors",
        include_bytes!("../../demo/data/val.safetensors"),
    ),
    (
        "id.safetensors",
        include_bytes!("../../demo/data/id.safetensors"),
    ),
    (
        "rotate.safetensors",
        include_bytes!("../../demo/data/rotate.safetensors"),
    ),
    (
        "noise.safetensors",
        include_bytes!("../../demo/data/noise.safetensors"),
    ),
    (
        "invert.safetensors",
        include_bytes!("../../demo/data/invert.safetensors"),
    ),
    (
        "blur.safetensors",
        include_bytes!("../../demo/data/blur.safetensors"),
    ),
    (
        "occlude.safetensors",
        include_bytes!("../../demo/data/occlude.safetensors"),
    ),
];

/// The demo's towers were trained by scripts/make_demo.py with QuickGELU (x·σ(1.702x)); their
/// files say the heads (`dawin.vit.heads`) but not the activation, so it is given here.
fn demo_options() -> LoadOptions {
    LoadOptions {
        activation: Some(dawin::vit::Activation::QuickGelu),
        ..LoadOptions::default()
    }
}

/// Shifted test sets of the demo, in table order.
const TESTS: [&str; 5] = ["rotate", "noise", "invert", "blur", "occlude"];

fn two_models(mut common: Common) -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    for (name, bytes) in FILES_2 {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))?;
    }
    let p = |n: &str| dir.path().join(format!("{n}.safetensors"));
    let opts = demo_options();
    let m0 = ClipClassifier::from_files(p("theta0"), None, &opts)?;
    let m1 = ClipClassifier::from_files(p("theta1"), None, &opts)?;
    let s = m0.config().image_size;
    let val = InMemoryDataset::open("val", p("val"), s)?;
    let id = InMemoryDataset::open("id", p("id"), s)?;
    let tests = TESTS
        .iter()
        .map(|n| InMemoryDataset::open(*n, p(n), s))
        .collect::<Result<Vec<_>>>()?;
    let refs: Vec<&dyn Dataset> = tests.iter().map(|d| d as &dyn Dataset).collect();
    // The demo draws WiSE-FT's whole curve; its outputs go to <tmp>/dawin-demo unless --out.
    common.wise_curve = true;
    let default_out = std::env::temp_dir().join("dawin-demo");
    let (p0, p1) = (p("theta0"), p("theta1"));
    let theta = ((p0.as_path(), &m0), (p1.as_path(), &m1));
    run_eval(theta, (&val, &id, &refs), &common, Some(&default_out))
}

/// Tasks of the multi-task demo, in table order.
const TASKS: [&str; 3] = ["digits", "rotation", "parity"];

/// The multi-task demo's files (crates/dawin-cli/demo/mtl).
const FILES_MTL: [(&str, &[u8]); 10] = [
    (
        "base.safetensors",
        include_bytes!("../../demo/mtl/base.safetensors"),
    ),
    (
        "digits.safetensors",
        include_bytes!("../../demo/mtl/digits.safetensors"),
    ),
    (
        "rotation.safetensors",
        include_bytes!("../../demo/mtl/rotation.safetensors"),
    ),
    (
        "parity.safetensors",
        include_bytes!("../../demo/mtl/parity.safetensors"),
    ),
    (
        "heads/digits.safetensors",
        include_bytes!("../../demo/mtl/heads/digits.safetensors"),
    ),
    (
        "heads/rotation.safetensors",
        include_bytes!("../../demo/mtl/heads/rotation.safetensors"),
    ),
    (
        "heads/parity.safetensors",
        include_bytes!("../../demo/mtl/heads/parity.safetensors"),
    ),
    (
        "data/digits.safetensors",
        include_bytes!("../../demo/mtl/data/digits.safetensors"),
    ),
    (
        "data/rotation.safetensors",
        include_bytes!("../../demo/mtl/data/rotation.safetensors"),
    ),
    (
        "data/parity.safetensors",
        include_bytes!("../../demo/mtl/data/parity.safetensors"),
    ),
];

/// `dawin demo --multi-task`: the embedded M = 3 demo (demo/mtl, see demo/README.md) written to a
/// temporary directory and evaluated with every multi-task method.
fn multi_task(o: &MtlOpts) -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    for (name, bytes) in FILES_MTL {
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
    run_mtl(
        &dir.path().join("base.safetensors"),
        &list(""),
        &list("heads"),
        &list("data"),
        &demo_options(),
        o,
        None,
        Some(&default_out),
    )
}
