//! Tokenizer throughput on ImageNet's zero-shot prompts (1000 classes × 80 openai-imagenet
//! templates = 80 000 prompts), next to open_clip's tokenizer in Python in the same run.
//!
//! ```text
//! cargo run --release -p dawin-vit --example tokenizer_throughput
//! cargo run --release -p dawin-vit --example tokenizer_throughput -- --python /work/pyenv/bin/python
//! ```
//!
//! With `--python`, `scripts/make_text_fixtures.py --time` is run with that interpreter (open_clip
//! 3.3.0, one thread, its per-word cache cold then warm) and the ratios are printed.

use std::process::Command;
use std::time::Instant;

use dawin_vit::prompts;
use dawin_vit::tokenizer::ClipTokenizer;

fn rate(n: usize, secs: f64) -> String {
    format!("{:.0} prompts/s ({secs:.3} s)", n as f64 / secs)
}

/// `prompts/s` numbers of the Python script's line, cold then warm.
fn python_rates(line: &str) -> Option<(f64, f64)> {
    let nums: Vec<f64> = line
        .split(" prompts/s")
        .filter_map(|part| part.rsplit(' ').next()?.parse().ok())
        .collect();
    (nums.len() == 2).then(|| (nums[0], nums[1]))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let python = args
        .iter()
        .position(|a| a == "--python")
        .and_then(|i| args.get(i + 1).cloned());

    let templates = prompts::templates("openai-imagenet").expect("built in");
    let texts: Vec<String> = prompts::imagenet_classes()
        .iter()
        .flat_map(|c| templates.iter().map(move |t| prompts::fill(t, c)))
        .collect();
    let n = texts.len();

    let t0 = Instant::now();
    let tok = ClipTokenizer::builtin();
    let load = t0.elapsed().as_secs_f64();

    let t0 = Instant::now();
    let mut checksum = 0u64;
    for t in &texts {
        checksum += tok.tokenize(t).ids.iter().map(|&x| x as u64).sum::<u64>();
    }
    let cold = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    for t in &texts {
        checksum += tok.tokenize(t).ids.iter().map(|&x| x as u64).sum::<u64>();
    }
    let warm = t0.elapsed().as_secs_f64();
    let threads = rayon::current_num_threads();
    let fresh = ClipTokenizer::builtin();
    let t0 = Instant::now();
    let batch = fresh.tokenize_batch(&texts);
    let batch_secs = t0.elapsed().as_secs_f64();
    checksum += batch.ids.iter().map(|&x| x as u64).sum::<u64>();

    println!("dawin-vit ClipTokenizer, {n} prompts (ImageNet × 80 templates); checksum {checksum}");
    println!("  load built-in vocabulary: {load:.3} s");
    println!("  1 thread, cold cache: {}", rate(n, cold));
    println!("  1 thread, warm cache: {}", rate(n, warm));
    println!(
        "  tokenize_batch, {threads} threads, cold cache: {}",
        rate(n, batch_secs)
    );

    let Some(py) = python else { return };
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/make_text_fixtures.py"
    );
    let out = Command::new(&py)
        .args([script, "--time"])
        .output()
        .expect("run the Python interpreter");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("").to_string();
    println!("{line}");
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        return;
    }
    if let Some((py_cold, py_warm)) = python_rates(&line) {
        println!(
            "ratio dawin-vit / open_clip (1 thread): cold {:.1}×, warm {:.1}×",
            n as f64 / cold / py_cold,
            n as f64 / warm / py_warm
        );
    }
}
