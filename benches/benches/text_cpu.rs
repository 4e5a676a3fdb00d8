//! CLIP ViT-B/32's text tower on the CPU (random weights, f32) next to PyTorch's, in one run.
//!
//! Prompts: ImageNet's first `TEXT_BENCH_CLASSES` class names (default 1) × the 80
//! openai-imagenet templates, one batch, tokenized by dawin-vit's tokenizer (open_clip's ids).
//! Criterion measures our forward, which computes each prompt only up to its end token. The
//! table printed at the end times, in the same process and with the same thread count: ours
//! that way and over all 77 positions (what open_clip computes), and, when `TEXT_BENCH_PYTHON`
//! names a Python with `scripts/requirements-torch.txt`, PyTorch's (`benches/peer/text_forward.py`
//! as a child process: open_clip's `encode_text` over 77 positions, and the same layers on the
//! batch truncated to its longest prompt); then the time to build ImageNet's zero-shot head for
//! `TEXT_BENCH_HEAD_CLASSES` classes × 80 templates (default 64, the head's chunk of classes),
//! extrapolated to 1000 classes.
//!
//! Run: `TEXT_BENCH_PYTHON=/work/pyenv/bin/python cargo bench -p dawin-benches --bench text_cpu`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use dawin_benches::median_secs;
use dawin_vit::prompts::{imagenet_classes, templates};
use dawin_vit::text::{
    computed_positions, zero_shot_head, ClipTextModel, TextConfig, TextPositions, TextWeights,
};
use dawin_vit::tokenizer::{ClipTokenizer, TokenBatch};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn prompts(classes: &[&str]) -> Vec<String> {
    let t = templates("openai-imagenet").expect("built in");
    classes
        .iter()
        .flat_map(|c| t.iter().map(move |t| dawin_vit::prompts::fill(t, c)))
        .collect()
}

/// PyTorch's rates (prompts/s) from the peer script: (open_clip encode_text, truncated, torch).
fn peer(python: &str, classes: usize, threads: usize) -> Option<(f64, f64, String)> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/peer/text_forward.py");
    let out = std::process::Command::new(python)
        .args([script, "--threads", &threads.to_string()])
        .args(["--classes", &classes.to_string(), "--iters", "3"])
        .output()
        .map_err(|e| eprintln!("peer: {python}: {e}"))
        .ok()?;
    if !out.status.success() {
        eprintln!("peer failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let j: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    Some((
        j["open_clip"].as_f64()?,
        j["truncated"].as_f64()?,
        j["torch"].as_str()?.to_string(),
    ))
}

fn main() {
    let cfg = TextConfig::vit_b32();
    let model = ClipTextModel::new(cfg.clone(), TextWeights::random(&cfg, 7).unwrap()).unwrap();
    let tok = ClipTokenizer::builtin();
    let n_classes = env("TEXT_BENCH_CLASSES", 1);
    let batch: TokenBatch = tok.tokenize_batch(&prompts(&imagenet_classes()[..n_classes]));
    let n = batch.len();
    let rows: usize = batch.pool_index.iter().map(|p| p + 1).sum();
    let computed = computed_positions(&batch.ids, 77, &batch.pool_index, TextPositions::UpToPool);
    let threads = rayon::current_num_threads();

    let mut crit = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(20))
        .configure_from_args();
    let mut g = crit.benchmark_group("text_b32_cpu");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(format!("encode_{n}_prompts"), |b| {
        b.iter(|| black_box(model.encode(black_box(&batch)).unwrap()))
    });
    g.finish();

    let t_ours = median_secs(3, || {
        black_box(model.encode(&batch).unwrap());
    });
    let t_77 = median_secs(2, || {
        black_box(
            model
                .encode_ids(&batch.ids, 77, &batch.pool_index, TextPositions::Context)
                .unwrap(),
        );
    });
    let flops: f64 = batch
        .pool_index
        .iter()
        .map(|p| cfg.forward_flops(p + 1))
        .sum();
    println!();
    println!(
        "CLIP ViT-B/32 text tower (width 512, 8 heads, 12 layers, context 77, vocabulary 49408), \
         random f32 weights, {n} prompts ({} classes × 80 openai-imagenet templates, {:.1} tokens \
         on average up to the end token, {rows} in all, {computed} distinct prefixes), {threads} \
         threads",
        n_classes,
        rows as f64 / n as f64
    );
    println!("| forward | time | prompts/s |");
    println!("|---|---:|---:|");
    println!(
        "| dawin-vit, up to the end tokens, shared prefixes once | {:.2} s | {:.1} ({:.1} GFLOP/s \
         of the positions up to the end tokens) |",
        t_ours,
        n as f64 / t_ours,
        flops / t_ours / 1e9
    );
    println!(
        "| dawin-vit, all 77 positions | {:.2} s | {:.1} |",
        t_77,
        n as f64 / t_77
    );
    let ours = n as f64 / t_ours;
    match std::env::var("TEXT_BENCH_PYTHON") {
        Ok(py) => match peer(&py, n_classes, threads) {
            Some((oc, trunc, version)) => {
                println!(
                    "| PyTorch {version} open_clip encode_text (77 positions) | {:.2} s | {oc:.1} |",
                    n as f64 / oc
                );
                println!(
                    "| PyTorch {version}, truncated to the longest prompt | {:.2} s | {trunc:.1} |",
                    n as f64 / trunc
                );
                println!(
                    "dawin-vit / PyTorch: {:.2}× open_clip's encode_text, {:.2}× the truncated \
                     batch; all 77 positions: {:.2}× encode_text (target >= 1)",
                    ours / oc,
                    ours / trunc,
                    n as f64 / t_77 / oc
                );
            }
            None => println!("(PyTorch peer failed; see above)"),
        },
        Err(_) => println!("(set TEXT_BENCH_PYTHON to run the PyTorch peer in the same run)"),
    }

    // ImageNet's head: a subset of the classes, extrapolated.
    let k = env("TEXT_BENCH_HEAD_CLASSES", 64);
    let classes = &imagenet_classes()[..k];
    let t80 = templates("openai-imagenet").expect("built in");
    let t = Instant::now();
    let head = zero_shot_head(&model, &tok, classes, t80, &mut |_| {}).unwrap();
    let secs = t.elapsed().as_secs_f64();
    black_box(head);
    println!(
        "ImageNet zero-shot head: {k} classes × 80 templates in {secs:.1} s (tokenizer included) \
         → 1000 classes × 80 templates ≈ {:.0} s extrapolated ({:.1} prompts/s)",
        secs * 1000.0 / k as f64,
        80.0 * k as f64 / secs
    );
}
