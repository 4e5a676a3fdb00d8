//! `dawin demo`: the embedded two-model demo (see demo/README.md), written to a temporary
//! directory and evaluated with every method.
use crate::{run_eval, Common};
use dawin::vit::{ClipClassifier, LoadOptions};
use dawin::{Dataset, Error, InMemoryDataset, Result};

const FILES: [(&str, &[u8]); 9] = [
    (
        "theta0.safetensors",
        include_bytes!("../demo/theta0.safetensors"),
    ),
    (
        "theta1.safetensors",
        include_bytes!("../demo/theta1.safetensors"),
    ),
    (
        "val.safetensors",
        include_bytes!("../demo/data/val.safetensors"),
    ),
    (
        "id.safetensors",
        include_bytes!("../demo/data/id.safetensors"),
    ),
    (
        "rotate.safetensors",
        include_bytes!("../demo/data/rotate.safetensors"),
    ),
    (
        "noise.safetensors",
        include_bytes!("../demo/data/noise.safetensors"),
    ),
    (
        "invert.safetensors",
        include_bytes!("../demo/data/invert.safetensors"),
    ),
    (
        "blur.safetensors",
        include_bytes!("../demo/data/blur.safetensors"),
    ),
    (
        "occlude.safetensors",
        include_bytes!("../demo/data/occlude.safetensors"),
    ),
];

/// Shifted test sets of the demo, in table order.
const TESTS: [&str; 5] = ["rotate", "noise", "invert", "blur", "occlude"];

pub(crate) fn run(mut common: Common) -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    for (name, bytes) in FILES {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))?;
    }
    let p = |n: &str| dir.path().join(format!("{n}.safetensors"));
    let opts = LoadOptions::default();
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
    run_eval(
        (&p("theta0"), &m0),
        (&p("theta1"), &m1),
        &val,
        &id,
        &refs,
        &common,
        Some(&default_out),
    )
}
