//! Loading a ViT-B/32-sized vision state dict (88 M f32 parameters, ~350 MB) from a PyTorch zip
//! `.pt` (dawin-core's inert reader) next to its safetensors twin (dawin-core's `StateDict`), in
//! the same run. Both files are written once into `CARGO_TARGET_TMPDIR` from the same random data:
//! the safetensors by `write_safetensors`, the `.pt` by a small writer below that lays out exactly
//! what `torch.save` writes (a protocol-2 `data.pkl` of `_rebuild_tensor_v2` calls and one stored,
//! 64-byte aligned `data/<key>` entry per storage). Both are checked to hold identical tensors.
//!
//! Rows: `open` (parse the header / run the pickle), `load` (open, then every tensor read into a
//! `Vec<f32>`: what a model load does). The table at the end gives pt/safetensors ratios from
//! timings in the same run (target: load within 1.5×). The files stay in the page cache between
//! runs, so this measures the readers, not the disk.
//!
//! Run: `cargo bench -p dawin-benches --bench torch_load`.

use std::io::Write;
use std::path::{Path, PathBuf};

use criterion::Criterion;
use dawin_benches::median_secs;
use dawin_core::torch::open_torch;
use dawin_core::{write_safetensors, OwnedTensor, StateDict};

/// Names and shapes of open_clip's ViT-B/32 vision tower.
fn b32_shapes() -> Vec<(String, Vec<usize>)> {
    let (w, mlp, embed) = (768usize, 3072usize, 512usize);
    let mut v: Vec<(String, Vec<usize>)> = vec![
        ("visual.class_embedding".into(), vec![w]),
        ("visual.positional_embedding".into(), vec![50, w]),
        ("visual.proj".into(), vec![w, embed]),
        ("visual.conv1.weight".into(), vec![w, 3, 32, 32]),
        ("visual.ln_pre.weight".into(), vec![w]),
        ("visual.ln_pre.bias".into(), vec![w]),
    ];
    for l in 0..12 {
        let p = format!("visual.transformer.resblocks.{l}");
        for (n, s) in [
            ("ln_1.weight", vec![w]),
            ("ln_1.bias", vec![w]),
            ("attn.in_proj_weight", vec![3 * w, w]),
            ("attn.in_proj_bias", vec![3 * w]),
            ("attn.out_proj.weight", vec![w, w]),
            ("attn.out_proj.bias", vec![w]),
            ("ln_2.weight", vec![w]),
            ("ln_2.bias", vec![w]),
            ("mlp.c_fc.weight", vec![mlp, w]),
            ("mlp.c_fc.bias", vec![mlp]),
            ("mlp.c_proj.weight", vec![w, mlp]),
            ("mlp.c_proj.bias", vec![w]),
        ] {
            v.push((format!("{p}.{n}"), s));
        }
    }
    v.push(("visual.ln_post.weight".into(), vec![w]));
    v.push(("visual.ln_post.bias".into(), vec![w]));
    v
}

fn pickle_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'X');
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn pickle_int(out: &mut Vec<u8>, i: usize) {
    out.push(b'J');
    out.extend_from_slice(&(i as i32).to_le_bytes());
}

/// A zip `torch.save` of f32 tensors, as PyTorch lays it out (stored entries, 64-byte aligned).
fn write_pt(path: &Path, tensors: &[OwnedTensor]) {
    let mut pkl = vec![0x80, 0x02, b'}', b'('];
    for (key, t) in tensors.iter().enumerate() {
        pickle_str(&mut pkl, &t.name);
        pkl.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((");
        pickle_str(&mut pkl, "storage");
        pkl.extend_from_slice(b"ctorch\nFloatStorage\n");
        pickle_str(&mut pkl, &key.to_string());
        pickle_str(&mut pkl, "cpu");
        pickle_int(&mut pkl, t.shape.iter().product());
        pkl.extend_from_slice(b"tQ");
        pickle_int(&mut pkl, 0);
        pkl.push(b'(');
        for &d in &t.shape {
            pickle_int(&mut pkl, d);
        }
        pkl.extend_from_slice(b"t(");
        let mut stride = 1;
        let mut strides = vec![0; t.shape.len()];
        for (i, &d) in t.shape.iter().enumerate().rev() {
            strides[i] = stride;
            stride *= d;
        }
        for s in strides {
            pickle_int(&mut pkl, s);
        }
        pkl.extend_from_slice(b"t\x89ccollections\nOrderedDict\n)RtR");
    }
    pkl.extend_from_slice(b"u.");
    let file = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true)
        .with_alignment(64);
    z.start_file("b32/data.pkl", opts).unwrap();
    z.write_all(&pkl).unwrap();
    z.start_file("b32/byteorder", opts).unwrap();
    z.write_all(b"little").unwrap();
    for (key, t) in tensors.iter().enumerate() {
        z.start_file(format!("b32/data/{key}"), opts).unwrap();
        z.write_all(&t.bytes).unwrap();
    }
    z.start_file("b32/version", opts).unwrap();
    z.write_all(b"3\n").unwrap();
    z.finish().unwrap().flush().unwrap();
}

fn files() -> (PathBuf, PathBuf) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let (pt, st) = (
        dir.join("torch_load_b32.pt"),
        dir.join("torch_load_b32.safetensors"),
    );
    if pt.exists() && st.exists() {
        return (pt, st);
    }
    let mut x = 0x9e37_79b9u32;
    let tensors: Vec<OwnedTensor> = b32_shapes()
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n)
                .map(|_| {
                    x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (x >> 8) as f32 / (1u32 << 24) as f32 - 0.5
                })
                .collect();
            OwnedTensor::from_f32(name, shape, &data)
        })
        .collect();
    write_safetensors(&st, &tensors, None).unwrap();
    write_pt(&pt, &tensors);
    (pt, st)
}

fn load_pt(p: &Path) -> usize {
    let c = open_torch(p).unwrap();
    c.tensors().map(|t| t.to_f32_vec().len()).sum()
}

fn load_st(p: &Path) -> usize {
    let s = StateDict::open(p).unwrap();
    s.tensors()
        .unwrap()
        .iter()
        .map(|t| t.to_f32_vec().len())
        .sum()
}

fn main() {
    let (pt, st) = files();
    // Same tensors, same order of magnitude of work.
    {
        let (a, b) = (open_torch(&pt).unwrap(), StateDict::open(&st).unwrap());
        assert_eq!(a.len(), b.len());
        for t in a.tensors() {
            assert_eq!(
                t.raw_bytes().unwrap(),
                b.tensor(t.name()).unwrap().bytes,
                "{}",
                t.name()
            );
        }
    }
    let params = load_st(&st);
    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("torch_load_b32");
    g.sample_size(10);
    g.bench_function("open/safetensors", |b| {
        b.iter(|| StateDict::open(&st).unwrap().len())
    });
    g.bench_function("open/pt", |b| b.iter(|| open_torch(&pt).unwrap().len()));
    g.bench_function("load/safetensors", |b| b.iter(|| load_st(&st)));
    g.bench_function("load/pt", |b| b.iter(|| load_pt(&pt)));
    g.finish();
    let o_st = median_secs(15, || {
        StateDict::open(&st).unwrap();
    });
    let o_pt = median_secs(15, || {
        open_torch(&pt).unwrap();
    });
    let l_st = median_secs(7, || {
        load_st(&st);
    });
    let l_pt = median_secs(7, || {
        load_pt(&pt);
    });
    println!(
        "\nViT-B/32 vision state dict, {params} f32 parameters ({} MB):",
        params * 4 / 1_000_000
    );
    println!(
        "{:<8} {:>14} {:>14} {:>8}",
        "", "safetensors", ".pt", "pt/st"
    );
    println!(
        "{:<8} {:>11.3} ms {:>11.3} ms {:>7.2}x",
        "open",
        o_st * 1e3,
        o_pt * 1e3,
        o_pt / o_st
    );
    println!(
        "{:<8} {:>11.1} ms {:>11.1} ms {:>7.2}x   (target <= 1.5x)",
        "load",
        l_st * 1e3,
        l_pt * 1e3,
        l_pt / l_st
    );
    c.final_summary();
}
