//! The data path of a CLIP evaluation alone (no model), ours next to PyTorch's, in the same run:
//!
//! * **ours**: `dawin::ImageFolderDataset` (image folder, PIL-exact JPEG decoding through
//!   libjpeg-turbo, Pillow's bicubic resize, centre crop, normalisation at 224) read through
//!   `dawin::for_each_batch` (the pipelined loader `dawin eval` uses) with a `DecodePool` of N
//!   threads, every batch's first value read by the consumer;
//! * **torchvision**: `ImageFolder` + open_clip's eval transform + `DataLoader(num_workers=N)`,
//!   run by `benches/peer/dataloader.py` (pinned versions: scripts/requirements-torch.txt).
//!
//! Data: an ImageNet-like folder of 512 JPEGs (~500×375, quality 90, 4:2:0, ~100 kB each like ImageNet's, 8 class folders)
//! generated once by the peer script under `target/bench-data/` (never committed). Both sides
//! do one warm-up pass (files in the page cache, workers started) and then time 3 passes; batch
//! size 64. Rounds alternate ours and torchvision for N = 1 and 2 (the machine may be shared:
//! compare the ratios within a round).
//!
//! Run: `DAWIN_PEER_PYTHON=/path/to/venv/bin/python cargo bench -p dawin-benches --bench
//! dataloader` (default `python3`; `DAWIN_BENCH_WORKERS=1,2,4`, `DAWIN_BENCH_ROUNDS=3`). Without
//! a Python with the pinned packages it prints a SKIPPED line naming why.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use dawin::vit::{preprocess::jpeg_simd, DecodePool};
use dawin::{for_each_batch, DataOptions, Dataset, ImageFolderDataset};

const BATCH: usize = 64;
const EPOCHS: usize = 3;
const IMAGES: usize = 512;

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

fn python() -> String {
    std::env::var("DAWIN_PEER_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peer/dataloader.py")
}

/// Runs the peer script; its last stdout line is JSON.
fn peer(args: &[&str]) -> Result<serde_json::Value, String> {
    let out = Command::new(python())
        .arg(script())
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `{}`: {e}", python()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last: Vec<&str> = err.lines().rev().take(3).collect();
        return Err(format!("peer script failed: {}", last.join(" | ")));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or("");
    serde_json::from_str(line).map_err(|e| format!("peer printed `{line}`: {e}"))
}

/// Images per second of our data path with `workers` decode threads.
fn ours(root: &Path, workers: usize) -> f64 {
    let opts = DataOptions {
        pool: Some(Arc::new(DecodePool::new(workers).expect("decode pool"))),
        ..DataOptions::default()
    };
    let ds = ImageFolderDataset::open_with("bench", root, 224, &opts).expect("dataset");
    let idx: Vec<usize> = (0..ds.len()).collect();
    let mut checksum = 0f64;
    let mut pass = || {
        for_each_batch(&ds, &idx, BATCH, |x, _| {
            checksum += x[0] as f64;
            Ok(())
        })
        .expect("data path");
    };
    pass();
    let t = Instant::now();
    for _ in 0..EPOCHS {
        pass();
    }
    let ips = (EPOCHS * ds.len()) as f64 / t.elapsed().as_secs_f64();
    std::hint::black_box(checksum);
    ips
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("{cpu}, {cores} cores available, load average {load}")
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data/imagenet-like-512");
    let ready = root.join("class_07").is_dir() && walk_count(&root) >= IMAGES;
    if !ready {
        let r = peer(&[
            "generate",
            root.to_str().expect("UTF-8 path"),
            "--images",
            "512",
        ]);
        if let Err(e) = r {
            println!("SKIPPED dataloader bench: generating the JPEG folder needs the peer: {e}");
            return;
        }
    }
    let workers = env_list("DAWIN_BENCH_WORKERS", &[1, 2]);
    let rounds = env_list("DAWIN_BENCH_ROUNDS", &[3])[0].max(1);
    println!("data path alone: {IMAGES} JPEGs ~500×375 q90 4:2:0 → 3×224×224, batch {BATCH}, {EPOCHS} passes after a warm-up");
    println!("machine: {}", machine());
    println!(
        "libjpeg-turbo SIMD: {}",
        if jpeg_simd() {
            "yes"
        } else {
            "no (built without nasm: plain C)"
        }
    );
    println!("\n| round | workers | ours img/s | torchvision img/s | ours / torchvision |");
    println!("|---:|---:|---:|---:|---:|");
    let mut ours_all = vec![Vec::new(); workers.len()];
    let mut peer_all = vec![Vec::new(); workers.len()];
    let mut ratio_all = vec![Vec::new(); workers.len()];
    for r in 0..rounds {
        for (k, &n) in workers.iter().enumerate() {
            let a = ours(&root, n);
            let p = peer(&[
                "measure",
                root.to_str().expect("UTF-8 path"),
                "--workers",
                &n.to_string(),
                "--batch-size",
                &BATCH.to_string(),
                "--epochs",
                &EPOCHS.to_string(),
            ]);
            let b = match p {
                Ok(v) => v["images_per_s"].as_f64(),
                Err(e) => {
                    println!("(torchvision side SKIPPED: {e})");
                    None
                }
            };
            ours_all[k].push(a);
            match b {
                Some(b) => {
                    peer_all[k].push(b);
                    ratio_all[k].push(a / b);
                    println!("| {r} | {n} | {a:.1} | {b:.1} | {:.2}× |", a / b);
                }
                None => println!("| {r} | {n} | {a:.1} | — | — |"),
            }
        }
    }
    println!("\nmedians over {rounds} round(s):\n");
    println!("| workers | ours img/s | torchvision img/s | ours / torchvision (median of the rounds' ratios) | ours scaling | torchvision scaling |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let (o1, p1) = (median(&mut ours_all[0].clone()), peer_all[0].clone());
    let p1 = (!p1.is_empty()).then(|| median(&mut p1.clone()));
    for (k, &n) in workers.iter().enumerate() {
        let o = median(&mut ours_all[k]);
        let p = (!peer_all[k].is_empty()).then(|| median(&mut peer_all[k]));
        let ratio = (!ratio_all[k].is_empty()).then(|| median(&mut ratio_all[k]));
        let f = |v: Option<f64>, suffix: &str| {
            v.map_or("—".to_string(), |v| format!("{v:.2}{suffix}"))
        };
        println!(
            "| {n} | {o:.1} | {} | {} | {:.2}× ({:.0} % of linear) | {} |",
            f(p, ""),
            f(ratio, "×"),
            o / o1,
            100.0 * o / o1 / (n as f64 / workers[0] as f64),
            f(p.zip(p1).map(|(p, p1)| p / p1), "×"),
        );
    }
}

fn walk_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        walk_count(&p)
                    } else {
                        usize::from(p.extension().is_some_and(|x| x == "jpg"))
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
