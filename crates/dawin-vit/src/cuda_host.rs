//! Host check of the CUDA forward's orchestration, with no GPU: the arenas are built exactly as
//! [`super::CudaVit::new`] builds them (host side), the activation buffers get fake device
//! addresses, and the launch [`super::plan`] of a forward is executed by a small interpreter of
//! the kernels' documented formulas (f32 arithmetic, f16/bf16 rounding on every T store, as the
//! kernels do) over that memory, with every access bounds-checked against its buffer. The
//! result is compared with the CPU f32 forward (`cpu::forward`, `cpu::blended::forward`).
//!
//! This checks what the GPU tests check on the host side (tensor names and layouts in the
//! arena, padding of the patch dimension, every launch's shapes, strides, addresses and
//! epilogue flags, the blend coefficients); the kernels themselves are checked by the host
//! emulation of `crates/dawin-kernels/emulation/emulate_vit.cpp`.

use super::*;
use crate::cpu;
use crate::BlendedWeights;
use dawin_kernels::vit::check_gemm;

/// Buffers at fake device addresses (each 256-byte aligned, with gaps between them).
struct Mem {
    regions: Vec<(u64, Vec<u8>, &'static str)>,
    next: u64,
}

impl Mem {
    fn new() -> Self {
        Mem {
            regions: Vec::new(),
            next: 0x1000_0000,
        }
    }

    fn add(&mut self, bytes: Vec<u8>, name: &'static str) -> u64 {
        let a = self.next;
        self.next += (bytes.len() as u64).div_ceil(256) * 256 + 4096;
        self.regions.push((a, bytes, name));
        a
    }

    fn find(&mut self, addr: u64, bytes: usize) -> &mut [u8] {
        for (base, buf, name) in &mut self.regions {
            if addr >= *base && addr < *base + buf.len() as u64 {
                let off = (addr - *base) as usize;
                assert!(
                    off + bytes <= buf.len(),
                    "access of {bytes} bytes at offset {off} overruns buffer {name} ({} bytes)",
                    buf.len()
                );
                return &mut buf[off..off + bytes];
            }
        }
        panic!("address {addr:#x} is in no buffer");
    }

    fn f32(&mut self, addr: u64, i: usize) -> f32 {
        f32::from_le_bytes(self.find(addr + 4 * i as u64, 4).try_into().unwrap())
    }
    fn set_f32(&mut self, addr: u64, i: usize, v: f32) {
        self.find(addr + 4 * i as u64, 4)
            .copy_from_slice(&v.to_le_bytes());
    }
    fn half(&mut self, dt: DType, addr: u64, i: usize) -> f32 {
        let b = u16::from_le_bytes(self.find(addr + 2 * i as u64, 2).try_into().unwrap());
        match dt {
            DType::F16 => f16::from_bits(b).to_f32(),
            _ => bf16::from_bits(b).to_f32(),
        }
    }
    fn set_half(&mut self, dt: DType, addr: u64, i: usize, v: f32) {
        let b = match dt {
            DType::F16 => f16::from_f32(v).to_bits(),
            _ => bf16::from_f32(v).to_bits(),
        };
        self.find(addr + 2 * i as u64, 2)
            .copy_from_slice(&b.to_le_bytes());
    }
}

fn coef(mem: &mut Mem, addr: u64, sets: u32, row: u32, rows_per: u32, s: u32) -> f32 {
    if addr == 0 {
        1.0
    } else {
        mem.f32(addr, ((row / rows_per) * sets + s) as usize)
    }
}

/// The kernels' formulas (kernels/vit.cu, dawin_kernels::vit module docs).
fn exec(mem: &mut Mem, dt: DType, op: &Op) {
    match *op {
        Op::Im2col {
            img,
            out,
            batch,
            size,
            patch,
            ld,
        } => {
            let (g, k) = (size / patch, 3 * patch * patch);
            for row in 0..batch * g * g {
                let (b, pi) = (row / (g * g), row % (g * g));
                let (gy, gx) = (pi / g, pi % g);
                for col in 0..ld {
                    let v = if col < k {
                        let (c, r) = (col / (patch * patch), col % (patch * patch));
                        let (ky, kx) = (r / patch, r % patch);
                        let i = ((b * 3 + c) * size + gy * patch + ky) * size + gx * patch + kx;
                        mem.f32(img, i as usize)
                    } else {
                        0.0
                    };
                    mem.set_half(dt, out, (row * ld + col) as usize, v);
                }
            }
        }
        Op::Gemm(ref p) => {
            check_gemm(p).unwrap();
            let (m, n, k) = (p.m as usize, p.n as usize, p.k as usize);
            let a: Vec<f32> = (0..m * k)
                .map(|i| mem.half(dt, p.a, (i / k) * p.lda as usize + i % k))
                .collect();
            let mut tot = vec![0.0f64; m * n];
            for s in 0..p.sets as usize {
                let w: Vec<f32> = (0..n * k).map(|i| mem.half(dt, p.w[s], i)).collect();
                let bias: Vec<f32> = (0..n)
                    .map(|j| {
                        if p.bias[s] != 0 {
                            mem.half(dt, p.bias[s], j)
                        } else {
                            0.0
                        }
                    })
                    .collect();
                for i in 0..m {
                    let c = f64::from(coef(
                        mem,
                        p.coef,
                        p.sets,
                        i as u32,
                        p.rows_per_coef,
                        s as u32,
                    ));
                    for j in 0..n {
                        let y: f64 = a[i * k..(i + 1) * k]
                            .iter()
                            .zip(&w[j * k..(j + 1) * k])
                            .map(|(x, y)| f64::from(*x) * f64::from(*y))
                            .sum::<f64>()
                            + f64::from(bias[j]);
                        tot[i * n + j] += c * y;
                    }
                }
            }
            for i in 0..m {
                for j in 0..n {
                    let mut v = tot[i * n + j] as f32;
                    if p.gelu == 1 {
                        v /= 1.0 + (-1.702 * v).exp();
                    }
                    let o = i * p.ldo as usize + j;
                    if p.res != 0 {
                        v += mem.f32(p.res, o);
                    }
                    if p.out_f32 == 1 {
                        mem.set_f32(p.out, o, v);
                    } else {
                        mem.set_half(dt, p.out, o, v);
                    }
                }
            }
        }
        Op::Embed(ref p) => {
            let seq = p.np + 1;
            for b in 0..p.batch {
                for t in 0..seq {
                    for col in 0..p.width {
                        let mut add = 0.0f32;
                        for s in 0..p.sets {
                            let c = coef(mem, p.coef, p.sets, b, 1, s);
                            let mut v =
                                mem.half(dt, p.pos[s as usize], (t * p.width + col) as usize);
                            if t == 0 {
                                v += mem.half(dt, p.cls[s as usize], col as usize);
                            }
                            add += c * v;
                        }
                        let patch = if t == 0 {
                            0.0
                        } else {
                            mem.f32(p.patches, ((b * p.np + t - 1) * p.width + col) as usize)
                        };
                        mem.set_f32(p.out, ((b * seq + t) * p.width + col) as usize, patch + add);
                    }
                }
            }
        }
        Op::LayerNorm(ref p) => {
            for r in 0..p.rows {
                let x: Vec<f32> = (0..p.d)
                    .map(|c| mem.f32(p.input, (r * p.in_stride + c) as usize))
                    .collect();
                let mean = x.iter().sum::<f32>() / p.d as f32;
                let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / p.d as f32;
                let rstd = 1.0 / (var + p.eps).sqrt();
                for c in 0..p.d {
                    let n = (x[c as usize] - mean) * rstd;
                    let mut y = 0.0f32;
                    for s in 0..p.sets {
                        let cf = coef(mem, p.coef, p.sets, r, p.rows_per_coef, s);
                        let g = mem.half(dt, p.gamma[s as usize], c as usize);
                        let b = mem.half(dt, p.beta[s as usize], c as usize);
                        y += cf * (g * n + b);
                    }
                    let o = (r * p.out_stride + c) as usize;
                    if p.out_f32 == 1 {
                        mem.set_f32(p.out, o, y);
                    } else {
                        mem.set_half(dt, p.out, o, y);
                    }
                }
            }
        }
        Op::Attention {
            qkv,
            out,
            batch,
            seq,
            heads,
            hd,
            scale,
        } => {
            let (width, ld) = (heads * hd, 3 * heads * hd);
            let all: Vec<f32> = (0..(batch * seq * ld) as usize)
                .map(|i| mem.half(dt, qkv, i))
                .collect();
            for b in 0..batch {
                for h in 0..heads {
                    let at = |t: u32, col: u32| all[((b * seq + t) * ld + col) as usize];
                    for q in 0..seq {
                        let s: Vec<f32> = (0..seq)
                            .map(|j| {
                                (0..hd)
                                    .map(|d| at(q, h * hd + d) * at(j, width + h * hd + d))
                                    .sum::<f32>()
                                    * scale
                            })
                            .collect();
                        let m = s.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                        let p: Vec<f32> = s.iter().map(|v| (v - m).exp()).collect();
                        let z: f32 = p.iter().sum();
                        for d in 0..hd {
                            let o: f32 = (0..seq)
                                .map(|j| p[j as usize] * at(j, 2 * width + h * hd + d))
                                .sum::<f32>()
                                / z;
                            mem.set_half(dt, out, ((b * seq + q) * width + h * hd + d) as usize, o);
                        }
                    }
                }
            }
        }
        Op::L2Norm {
            x,
            feats,
            out,
            rows,
            d,
        } => {
            for r in 0..rows {
                let v: Vec<f32> = (0..d).map(|c| mem.f32(x, (r * d + c) as usize)).collect();
                let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
                let inv = if n > 0.0 { 1.0 / n } else { 1.0 };
                for c in 0..d {
                    let f = v[c as usize] * inv;
                    mem.set_f32(feats, (r * d + c) as usize, f);
                    mem.set_half(dt, out, (r * d + c) as usize, f);
                }
            }
        }
    }
}

/// Runs the plan of a forward over `models` (several: blended with `coeffs` `[batch, M]`) on
/// the host; returns (logits, features).
/// The arena [`CudaVit::new`] uploads for `w`.
fn model_arena(cfg: &VitConfig, w: &ClipWeights, p: Precision) -> HostArena {
    let tensors = arena_tensors(cfg, w);
    match p {
        Precision::F16 => host_arena(&tensors, f16::from_f32).unwrap(),
        Precision::Bf16 => host_arena(&tensors, bf16::from_f32).unwrap(),
    }
}

fn host_forward(
    cfg: &VitConfig,
    models: &[&ClipWeights],
    p: Precision,
    images: &[f32],
    batch: usize,
    coeffs: Option<&[f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let arenas: Vec<HostArena> = models.iter().map(|m| model_arena(cfg, m, p)).collect();
    let refs: Vec<&HostArena> = arenas.iter().collect();
    host_forward_arenas(cfg, &refs, p, images, batch, coeffs)
}

/// The forward's launch plan interpreted over given parameter arenas.
fn host_forward_arenas(
    cfg: &VitConfig,
    arenas: &[&HostArena],
    p: Precision,
    images: &[f32],
    batch: usize,
    coeffs: Option<&[f32]>,
) -> (Vec<f32>, Vec<f32>) {
    check_config(cfg).unwrap();
    let mut mem = Mem::new();
    let mut ptrs = Vec::new();
    for host in arenas {
        let base = mem.add(host.bytes().to_vec(), "arena");
        ptrs.push(model_ptrs(base, host.layout(), cfg).unwrap());
    }
    let sets = arenas.len();
    let sizes = work_sizes(cfg, batch, sets);
    let mut a = Vec::new();
    for (name, n, is_f32) in sizes {
        let bytes = if is_f32 { 4 * n } else { 2 * n };
        // Poison: NaN in f32 buffers, 0xffff (NaN) in half ones, so a value read before it is
        // written shows up in the result.
        let mut buf = vec![0xffu8; bytes];
        if name == "img" {
            for (c, v) in buf.chunks_mut(4).zip(images) {
                c.copy_from_slice(&v.to_le_bytes());
            }
        }
        if name == "coef" {
            if let Some(w) = coeffs {
                let c = blend_coefficients(sets, batch, w).unwrap();
                for (o, v) in buf.chunks_mut(4).zip(c) {
                    o.copy_from_slice(&v.to_le_bytes());
                }
            }
        }
        a.push(if bytes == 0 { 0 } else { mem.add(buf, name) });
    }
    let wa = WorkAddrs {
        img: a[0],
        cols: a[1],
        patches: a[2],
        emb: a[3],
        x: a[4],
        h: a[5],
        qkv: a[6],
        att: a[7],
        mlp: a[8],
        pooled: a[9],
        feat_raw: a[10],
        feats: a[11],
        feat_t: a[12],
        logits: a[13],
        coef: a[14],
    };
    let dt = p.dtype();
    for op in plan(cfg, batch, &ptrs, &wa) {
        exec(&mut mem, dt, &op);
    }
    let logits = (0..batch * cfg.num_classes)
        .map(|i| mem.f32(wa.logits, i))
        .collect();
    let feats = (0..batch * cfg.embed_dim)
        .map(|i| mem.f32(wa.feats, i))
        .collect();
    (logits, feats)
}

fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().map(|v| f64::from(v.abs())).fold(1e-30, f64::max);
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from((x - y).abs()))
        .fold(0.0, f64::max)
        / scale
}

/// Odd sizes: patch 6 (3·36 = 108, padded to 112), 17 tokens, 2 heads of 32, 5 classes.
fn cfg() -> VitConfig {
    VitConfig {
        image_size: 24,
        patch_size: 6,
        width: 64,
        layers: 2,
        heads: 2,
        mlp_dim: 96,
        embed_dim: 24,
        num_classes: 5,
        layer_norm_eps: 1e-5,
    }
}

fn weights(seed: u64) -> ClipWeights {
    use rand::{RngExt, SeedableRng};
    let c = cfg();
    let mut w = ClipWeights::random(&c, seed).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed + 77);
    for p in w.params_mut() {
        for v in p.iter_mut() {
            *v += rng.random_range(-0.05f32..0.05);
        }
    }
    w
}

fn images(batch: usize) -> Vec<f32> {
    (0..batch * cfg().image_numel())
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect()
}

fn tol(p: Precision) -> f64 {
    match p {
        Precision::F16 => 1e-2,
        Precision::Bf16 => 2e-2,
    }
}

#[test]
fn plan_on_the_host_matches_the_cpu_forward() {
    let (c, w) = (cfg(), weights(3));
    let x = images(3);
    let (want_l, want_f) = cpu::forward(&x, 3, &c, &w).unwrap();
    for p in [Precision::F16, Precision::Bf16] {
        let (l, f) = host_forward(&c, &[&w], p, &x, 3, None);
        let (el, ef) = (rel_err(&l, &want_l), rel_err(&f, &want_f));
        assert!(
            el < tol(p) && ef < tol(p),
            "{p:?}: logits {el:.2e}, features {ef:.2e}"
        );
        // Sensitivity: half precision is visibly not exact, so the comparison is not vacuous.
        assert!(el > 1e-6, "{p:?}: {el:e}");
    }
}

#[test]
fn blended_plan_on_the_host_matches_the_cpu_blended_forward() {
    let c = cfg();
    let ws: Vec<ClipWeights> = (0..4).map(|s| weights(10 + s)).collect();
    let x = images(4);
    // Two models: λ = 0, 1, 0.3, 0.8.
    let bw = BlendedWeights::new(&c, &ws[0], &[&ws[1]]).unwrap();
    let lambdas = [0.0f32, 1.0, 0.3, 0.8];
    let (want, _) = cpu::blended::forward(&x, 4, &bw, &lambdas).unwrap();
    // M = 3: one row selects θ0, one θ2, two are random mixtures.
    let bw3 = BlendedWeights::new(&c, &ws[0], &[&ws[1], &ws[2], &ws[3]]).unwrap();
    let co3 = [
        0.0f32, 0.0, 0.0, 0.0, 1.0, 0.0, 0.2, 0.5, 0.1, 0.6, 0.1, 0.25,
    ];
    let (want3, _) = cpu::blended::forward(&x, 4, &bw3, &co3).unwrap();
    for p in [Precision::F16, Precision::Bf16] {
        let (l, _) = host_forward(&c, &[&ws[0], &ws[1]], p, &x, 4, Some(&lambdas));
        let e = rel_err(&l, &want);
        assert!(e < tol(p), "{p:?} M=1: {e:.2e}");
        let (l3, _) = host_forward(&c, &[&ws[0], &ws[1], &ws[2], &ws[3]], p, &x, 4, Some(&co3));
        let e3 = rel_err(&l3, &want3);
        assert!(e3 < tol(p), "{p:?} M=3: {e3:.2e}");
        // Per sample: the λ = 1 row is θ1's forward.
        let (one, _) =
            cpu::forward(&x[c.image_numel()..2 * c.image_numel()], 1, &c, &ws[1]).unwrap();
        let e1 = rel_err(&l[c.num_classes..2 * c.num_classes], &one);
        assert!(e1 < tol(p), "{p:?} λ=1 row: {e1:.2e}");
    }
}

#[test]
fn arena_holds_every_tensor_with_its_shape() {
    let (c, w) = (cfg(), weights(1));
    let tensors = arena_tensors(&c, &w);
    let host = host_arena(&tensors, f16::from_f32).unwrap();
    let l = host.layout();
    assert_eq!(l.entry("conv1.weight").unwrap().shape, vec![64, 112]);
    assert_eq!(l.entry("proj").unwrap().shape, vec![24, 64]);
    assert_eq!(l.entry("positional_embedding").unwrap().shape, vec![17, 64]);
    assert_eq!(
        l.entry("transformer.resblocks.1.attn.in_proj_weight")
            .unwrap()
            .shape,
        vec![192, 64]
    );
    // Padding columns of the patch weight are zero; the others are the weight's values.
    let conv = host.tensor::<f16>("conv1.weight").unwrap();
    assert!(conv
        .chunks(112)
        .all(|r| r[108..].iter().all(|v| v.to_f32() == 0.0)));
    assert_eq!(
        conv[1].to_f32(),
        f16::from_f32(w.visual.conv1.weight[1]).to_f32()
    );
    assert_eq!(
        conv[112].to_f32(),
        f16::from_f32(w.visual.conv1.weight[108]).to_f32()
    );
}

/// What [`CudaVit::merge_into`] launches (one merge kernel over whole arenas), done here by the
/// kernels' CPU reference over host arenas built as `CudaVit::new` builds them: the plan
/// interpreted over the merged arena matches the CPU forward of the f32 merge.
#[test]
fn plan_over_a_merged_arena_matches_the_cpu_merge() {
    fn merge<T: dawin_kernels::Param>(a: &[&HostArena], w: &[f32]) -> HostArena {
        let mut out = HostArena::zeros(a[0].layout().clone());
        let base = a[0].as_slice::<T>().unwrap();
        let dst = out.as_mut_slice::<T>().unwrap();
        if a.len() == 2 {
            dawin_core::merge::lerp(base, a[1].as_slice::<T>().unwrap(), w[0], dst).unwrap();
        } else {
            let ms: Vec<&[T]> = a[1..].iter().map(|m| m.as_slice::<T>().unwrap()).collect();
            dawin_core::merge::task_arithmetic(base, &ms, w, dst).unwrap();
        }
        out
    }
    let c = cfg();
    let ws: Vec<ClipWeights> = (0..4).map(|s| weights(30 + s)).collect();
    let x = images(2);
    for p in [Precision::F16, Precision::Bf16] {
        let arenas: Vec<HostArena> = ws.iter().map(|w| model_arena(&c, w, p)).collect();
        let refs: Vec<&HostArena> = arenas.iter().collect();
        for (inputs, w) in [
            (2usize, vec![0.35f32]),
            (2, vec![1.0]),
            (4, vec![0.3, 0.25, 0.2]),
        ] {
            let merged = match p {
                Precision::F16 => merge::<f16>(&refs[..inputs], &w),
                Precision::Bf16 => merge::<bf16>(&refs[..inputs], &w),
            };
            assert!(merged.padding_is_zero());
            let (l, _) = host_forward_arenas(&c, &[&merged], p, &x, 2, None);
            // Reference: f32 merge of the f32 weights, CPU forward.
            let mut mw = ws[0].clone();
            let others: Vec<Vec<&[f32]>> = ws[1..inputs].iter().map(|o| o.params()).collect();
            let base = ws[0].params();
            for (k, o) in mw.params_mut().into_iter().enumerate() {
                let ms: Vec<&[f32]> = others.iter().map(|p| p[k]).collect();
                dawin_core::merge::task_arithmetic(base[k], &ms, &w, o).unwrap();
            }
            let (want, _) = cpu::forward(&x, 2, &c, &mw).unwrap();
            let e = rel_err(&l, &want);
            assert!(e < tol(p), "{p:?} {} inputs, w = {w:?}: {e:.2e}", inputs);
        }
    }
}

/// The CUDA arena is the parameter list: the same tensors, names, order and shapes (the patch
/// embedding padded to `K'` columns), and every address the forward reads is a tensor of it.
#[test]
fn arena_layout_agrees_with_the_parameter_list() {
    let (c, w) = (cfg(), weights(2));
    let list = ParamList::new(&c);
    let host = model_arena(&c, &w, Precision::F16);
    let entries = host.layout().entries();
    assert_eq!(entries.len(), list.len());
    for (e, d) in entries.iter().zip(&list) {
        assert_eq!(e.name, d.name());
        let mut shape = d.shape.clone();
        if d.key == ParamKey::new(Module::PatchEmbedding, Part::Weight) {
            shape[1] = patch_dim_padded(&c);
        }
        assert_eq!(e.shape, shape, "{}", e.name);
    }
}
