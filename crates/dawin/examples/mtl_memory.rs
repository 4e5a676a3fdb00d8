//! Peak memory of a multi-task evaluation with M ViT-B/32 fine-tuned checkpoints: the encoders
//! read from memory-mapped checkpoints (what `dawin eval-mtl` does) against the same encoders
//! all loaded into memory first.
//!
//! ```text
//! cargo run --release -p dawin --example mtl_memory -- <dir> <M> <mmap|memory> [dawin-sample]
//! ```
//!
//! The first run writes a random base θ0 and M fine-tuned checkpoints θ_j = θ0 + 0.05·noise
//! (f32, OpenAI naming, ≈ 350 MB each) and a head into `<dir>`; later runs reuse them. It then
//! evaluates 8 random images with every method except `dawin-sample` (whose blended forward holds
//! all M + 1 encoders by design; with the argument `dawin-sample`, that method alone) and prints the peak anonymous memory (sampled every 5 ms from
//! `/proc/self/status` `RssAnon`: the process's own allocations, without the file pages of the
//! memory maps, which the kernel can drop at any time) and the peak resident set (`VmHWM`).
//! Linux only.
use dawin::mtl::{evaluate_mtl, load_mtl, MtlConfig, MtlMethod, MtlTask};
use dawin::vit::{CheckpointNaming, ClipClassifier, ClipWeights, LoadOptions, VitConfig};
use dawin::{Dataset, InMemoryDataset};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLASSES: usize = 10;

fn status_kib(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn write_weights(w: &ClipWeights, cfg: &VitConfig, path: &Path) {
    let naming = CheckpointNaming::OpenAi {
        prefix: "visual.".into(),
    };
    let map = w.to_tensor_map(cfg, &naming).expect("tensor map");
    let ts: Vec<dawin::core::OwnedTensor> = map
        .iter()
        .map(|(n, t)| dawin::core::OwnedTensor::from_f32(n, t.shape.clone(), &t.data))
        .collect();
    dawin::core::write_safetensors(path, &ts, None).expect("write checkpoint");
}

fn make_checkpoints(dir: &Path, m: usize, cfg: &VitConfig) {
    std::fs::create_dir_all(dir).expect("create dir");
    let base_path = dir.join("base.safetensors");
    let base = ClipWeights::random(cfg, 0).expect("random base");
    if !base_path.exists() {
        write_weights(&base, cfg, &base_path);
        write_weights(&base, cfg, &dir.join("head.safetensors"));
    }
    for j in 0..m {
        let p = dir.join(format!("ft{j}.safetensors"));
        if p.exists() {
            continue;
        }
        let mut w = ClipWeights::random(cfg, 1 + j as u64).expect("random noise");
        for (d, b) in w.params_mut().into_iter().zip(base.params()) {
            for (d, b) in d.iter_mut().zip(b) {
                *d = b + 0.05 * *d;
            }
        }
        write_weights(&w, cfg, &p);
        eprintln!("wrote {}", p.display());
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sample_only = args.get(4).map(String::as_str) == Some("dawin-sample");
    if !(4..=5).contains(&args.len())
        || !["mmap", "memory"].contains(&args[3].as_str())
        || (args.len() == 5 && !sample_only)
    {
        eprintln!("usage: mtl_memory <dir> <M> <mmap|memory> [dawin-sample]");
        std::process::exit(2);
    }
    let dir = PathBuf::from(&args[1]);
    let m: usize = args[2].parse().expect("M must be a number");
    let cfg = VitConfig::vit_b32(CLASSES);
    make_checkpoints(&dir, m, &cfg);

    // Peak anonymous memory, sampled.
    let peak = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(status_kib("RssAnon:"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let t = Instant::now();
    let models: Vec<(String, PathBuf)> = (0..m)
        .map(|j| (format!("t{j}"), dir.join(format!("ft{j}.safetensors"))))
        .collect();
    let heads = vec![("t0".to_string(), dir.join("head.safetensors"))];
    let loaded = load_mtl(
        &dir.join("base.safetensors"),
        &models,
        &heads,
        &LoadOptions::default(),
    )
    .expect("load");
    let n = 8;
    let data = InMemoryDataset::new(
        "t0",
        (0..n * cfg.image_numel())
            .map(|i| ((i * 7919) % 255) as f32 / 128.0 - 1.0)
            .collect(),
        cfg.image_numel(),
        (0..n as i64).map(|i| i % CLASSES as i64).collect(),
    )
    .expect("dataset");
    let tasks = vec![MtlTask {
        name: "t0".into(),
        head: loaded.heads[0].1.clone(),
        data: &data as &dyn Dataset,
    }];
    let config = MtlConfig {
        methods: MtlMethod::ALL
            .into_iter()
            .filter(|&x| (x == MtlMethod::DawinSample) == sample_only)
            .collect(),
        progress: false,
        ..MtlConfig::default()
    };
    let report = if args[3] == "mmap" {
        let named: Vec<_> = loaded.models.iter().map(|(n, c)| (n.clone(), c)).collect();
        evaluate_mtl(&loaded.base, &named, &tasks, &config)
    } else {
        let owned: Vec<(String, ClipClassifier)> = loaded
            .models
            .iter()
            .map(|(n, c)| (n.clone(), c.classifier().expect("load").into_owned()))
            .collect();
        let named: Vec<_> = owned.iter().map(|(n, c)| (n.clone(), c)).collect();
        evaluate_mtl(&loaded.base, &named, &tasks, &config)
    }
    .expect("evaluate");
    stop.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    let gib = |kib: u64| kib as f64 / (1024.0 * 1024.0);
    let model_gib = 4.0
        * loaded
            .base
            .weights()
            .params()
            .iter()
            .map(|p| p.len())
            .sum::<usize>() as f64
        / (1u64 << 30) as f64;
    println!(
        "| {}{} | M = {m} | peak anonymous {:.2} GiB | peak resident {:.2} GiB | one model {:.2} GiB | {} rows | {:.1} s |",
        args[3],
        if sample_only { ", dawin-sample" } else { "" },
        gib(peak.load(Ordering::Relaxed)),
        gib(status_kib("VmHWM:")),
        model_gib,
        report.methods.len(),
        t.elapsed().as_secs_f64()
    );
}
