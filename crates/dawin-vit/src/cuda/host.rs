//! Host check of the CUDA forward's orchestration, with no GPU: the arenas are built exactly as
//! [`super::CudaVit::new`] builds them (host side), every activation buffer of the forward is a
//! host buffer poisoned with NaN, and the launch [`plan`] of a forward is executed by a small
//! interpreter of the kernels' documented formulas (f32 arithmetic, f16/bf16 rounding on every T
//! store, as the kernels do) over that memory, each op first passing the same shape and length
//! checks as the launchers of `dawin-kernels` and every access bounds-checked. The result is
//! compared with the CPU f32 forward (`cpu::forward`, `cpu::blended::forward`).
//!
//! This checks what the GPU tests check on the host side (tensor names and layouts in the
//! arena, padding of the patch dimension, every launch's shapes, strides, buffers and epilogue
//! flags, the blend coefficients); the kernels themselves are checked by the host emulation of
//! `crates/dawin-kernels/emulation/emulate_forward.cpp`.

use std::collections::HashMap;

use dawin_kernels::GemmActivation;

use super::plan::{plan, Buf, Op, Work};
use super::*;
use crate::cpu;
use crate::BlendedWeights;

/// One buffer: values as f32, rounded to the forward's 16-bit type on every store when `half`.
struct HostBuf {
    data: Vec<f32>,
    half: bool,
}

/// Every buffer of one forward, by name.
struct Mem {
    bufs: HashMap<Buf, HostBuf>,
    dt: DType,
}

impl Mem {
    fn get(&self, b: Buf) -> &[f32] {
        &self
            .bufs
            .get(&b)
            .unwrap_or_else(|| panic!("{b:?} is no buffer"))
            .data
    }

    /// A T buffer (a parameter or a half activation).
    fn half(&self, b: Buf, need: usize) -> &[f32] {
        let hb = &self.bufs[&b];
        assert!(hb.half, "{b:?} is f32, the op reads T");
        assert!(hb.data.len() >= need, "{b:?}: {} < {need}", hb.data.len());
        &hb.data
    }

    /// An f32 buffer.
    fn f32(&self, b: Buf, need: usize) -> &[f32] {
        let hb = &self.bufs[&b];
        assert!(!hb.half, "{b:?} is T, the op reads f32");
        assert!(hb.data.len() >= need, "{b:?}: {} < {need}", hb.data.len());
        &hb.data
    }

    fn coef(&self, c: Option<Buf>, need: usize) -> Option<&[f32]> {
        c.map(|c| self.f32(c, need))
    }

    fn take(&mut self, b: Buf, need: usize) -> HostBuf {
        let hb = self.bufs.remove(&b).expect("a buffer to write");
        assert!(hb.data.len() >= need, "{b:?}: {} < {need}", hb.data.len());
        hb
    }

    fn put(&mut self, b: Buf, hb: HostBuf) {
        self.bufs.insert(b, hb);
    }

    fn round(&self, v: f32) -> f32 {
        match self.dt {
            DType::F16 => f16::from_f32(v).to_f32(),
            _ => bf16::from_f32(v).to_f32(),
        }
    }
}

impl HostBuf {
    fn store(&mut self, i: usize, v: f32, mem_round: impl Fn(f32) -> f32) {
        self.data[i] = if self.half { mem_round(v) } else { v };
    }
}

fn coef_at(c: Option<&[f32]>, sets: usize, row: usize, rows_per: usize, s: usize) -> f32 {
    c.map_or(1.0, |c| c[(row / rows_per) * sets + s])
}

/// The kernels' formulas (kernels/*.cu, the module docs of dawin_kernels' launchers), after the
/// launchers' own checks of the shape and of every buffer's length.
fn exec(mem: &mut Mem, op: &Op) {
    let dt = mem.dt;
    let round = move |v: f32| match dt {
        DType::F16 => f16::from_f32(v).to_f32(),
        _ => bf16::from_f32(v).to_f32(),
    };
    match op {
        Op::Im2col { shape, images, out } => {
            shape.check().unwrap();
            let mut o = mem.take(*out, shape.out_len());
            assert!(o.half);
            let img = mem.f32(*images, shape.images_len());
            let (size, patch, ld) = (shape.image_size, shape.patch, shape.ld);
            let (g, k) = (size / patch, 3 * patch * patch);
            for row in 0..shape.batch * g * g {
                let (b, pi) = (row / (g * g), row % (g * g));
                let (gy, gx) = (pi / g, pi % g);
                for col in 0..ld {
                    let v = if col < k {
                        let (c, r) = (col / (patch * patch), col % (patch * patch));
                        let (ky, kx) = (r / patch, r % patch);
                        img[((b * 3 + c) * size + gy * patch + ky) * size + gx * patch + kx]
                    } else {
                        0.0
                    };
                    o.store(row * ld + col, v, round);
                }
            }
            mem.put(*out, o);
        }
        Op::Gemm {
            shape: p,
            a,
            sets,
            coef,
            out,
        } => {
            let mut o = mem.take(*out, p.out_len());
            p.check(sets.len(), coef.is_some(), !o.half).unwrap();
            let (m, n, k) = (p.m, p.n, p.k);
            let a = mem.half(*a, p.a_len());
            let c = mem.coef(*coef, p.coef_len(sets.len()));
            let mut tot = vec![0.0f64; m * n];
            // LayerScale: on every set or none (the launcher's check), blended per row as the
            // branch is: γ_i = Σ_s c_is γ_s.
            let n_scaled = sets.iter().filter(|s| s.scale.is_some()).count();
            assert!(
                n_scaled == 0 || n_scaled == sets.len(),
                "scale on some sets only"
            );
            let mut gamma = vec![0.0f32; if n_scaled > 0 { m * n } else { 0 }];
            for (s, set) in sets.iter().enumerate() {
                let w = mem.half(set.weight, p.weight_len());
                let bias = set.bias.map(|b| mem.half(b, p.bias_len()));
                let scale = set.scale.map(|g| mem.half(g, p.bias_len()));
                for i in 0..m {
                    let cf32 = coef_at(c, sets.len(), i, p.rows_per_coef, s);
                    let cf = f64::from(cf32);
                    for j in 0..n {
                        let y: f64 = a[i * p.lda..i * p.lda + k]
                            .iter()
                            .zip(&w[j * k..(j + 1) * k])
                            .map(|(x, y)| f64::from(*x) * f64::from(*y))
                            .sum::<f64>()
                            + f64::from(bias.map_or(0.0, |b| b[j]));
                        tot[i * n + j] += cf * y;
                        if let Some(g) = scale {
                            gamma[i * n + j] += cf32 * g[j];
                        }
                    }
                }
            }
            for i in 0..m {
                for j in 0..n {
                    let mut v = tot[i * n + j] as f32;
                    match p.act {
                        GemmActivation::Identity => {}
                        GemmActivation::QuickGelu => v /= 1.0 + (-1.702 * v).exp(),
                        GemmActivation::Gelu => {
                            v *= 0.5 * (1.0 + cpu::erf_approx(v * std::f32::consts::FRAC_1_SQRT_2))
                        }
                    }
                    if n_scaled > 0 {
                        v *= gamma[i * n + j];
                    }
                    let idx = i * p.ldo + j;
                    if p.accumulate {
                        v += o.data[idx];
                    }
                    o.store(idx, v, round);
                }
            }
            mem.put(*out, o);
        }
        Op::Embed {
            shape: p,
            patches,
            sets,
            coef,
            out,
        } => {
            p.check(sets.len(), coef.is_some()).unwrap();
            let mut o = mem.take(*out, p.out_len());
            assert!(!o.half);
            let patches = mem.f32(*patches, p.patches_len());
            let c = mem.coef(*coef, p.coef_len(sets.len()));
            let (seq, w) = (p.patches + 1, p.width);
            for b in 0..p.batch {
                for t in 0..seq {
                    for col in 0..w {
                        let mut add = 0.0f32;
                        for (s, &(cls, pos)) in sets.iter().enumerate() {
                            let cf = coef_at(c, sets.len(), b, 1, s);
                            let mut v = mem.half(pos, p.positional_len())[t * w + col];
                            if t == 0 {
                                v += mem.half(cls, p.class_len())[col];
                            }
                            add += cf * v;
                        }
                        let patch = if t == 0 {
                            0.0
                        } else {
                            patches[(b * p.patches + t - 1) * w + col]
                        };
                        o.store((b * seq + t) * w + col, patch + add, round);
                    }
                }
            }
            mem.put(*out, o);
        }
        Op::LayerNorm {
            shape: p,
            x,
            sets,
            coef,
            out,
        } => {
            p.check(sets.len(), coef.is_some()).unwrap();
            let mut o = mem.take(*out, p.out_len());
            let xs = mem.f32(*x, p.in_len());
            let c = mem.coef(*coef, p.coef_len(sets.len()));
            for r in 0..p.rows {
                let x = &xs[r * p.in_stride..r * p.in_stride + p.d];
                let mean = x.iter().sum::<f32>() / p.d as f32;
                let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / p.d as f32;
                let rstd = 1.0 / (var + p.eps).sqrt();
                for (col, &xc) in x.iter().enumerate() {
                    let nrm = (xc - mean) * rstd;
                    let mut y = 0.0f32;
                    for (s, &(g, b)) in sets.iter().enumerate() {
                        let cf = coef_at(c, sets.len(), r, p.rows_per_coef, s);
                        y += cf * (mem.half(g, p.d)[col] * nrm + mem.half(b, p.d)[col]);
                    }
                    o.store(r * p.out_stride + col, y, round);
                }
            }
            mem.put(*out, o);
        }
        Op::Attention { shape: p, qkv, out } => {
            p.check().unwrap();
            let mut o = mem.take(*out, p.out_len());
            assert!(o.half);
            let all = mem.half(*qkv, p.qkv_len());
            let (hd, seq) = (p.head_dim, p.seq);
            let (width, ld) = (p.heads * hd, 3 * p.heads * hd);
            for b in 0..p.batch {
                for h in 0..p.heads {
                    let at = |t: usize, col: usize| all[(b * seq + t) * ld + col];
                    for q in 0..seq {
                        let s: Vec<f32> = (0..seq)
                            .map(|j| {
                                (0..hd)
                                    .map(|d| at(q, h * hd + d) * at(j, width + h * hd + d))
                                    .sum::<f32>()
                                    * p.scale
                            })
                            .collect();
                        let m = s.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                        let e: Vec<f32> = s.iter().map(|v| (v - m).exp()).collect();
                        let z: f32 = e.iter().sum();
                        for d in 0..hd {
                            let v: f32 = (0..seq)
                                .map(|j| e[j] * at(j, 2 * width + h * hd + d))
                                .sum::<f32>()
                                / z;
                            o.store((b * seq + q) * width + h * hd + d, v, round);
                        }
                    }
                }
            }
            mem.put(*out, o);
        }
        Op::L2Norm {
            shape: p,
            x,
            feats,
            out,
        } => {
            p.check().unwrap();
            let mut o = mem.take(*out, p.len());
            let mut f = mem.take(*feats, p.len());
            assert!(o.half && !f.half);
            let xs = mem.f32(*x, p.len());
            for r in 0..p.rows {
                let v = &xs[r * p.d..(r + 1) * p.d];
                let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
                let inv = if n > 0.0 { 1.0 / n } else { 1.0 };
                for (c, &vc) in v.iter().enumerate() {
                    f.store(r * p.d + c, vc * inv, round);
                    o.store(r * p.d + c, vc * inv, round);
                }
            }
            mem.put(*out, o);
            mem.put(*feats, f);
        }
    }
}

/// The arena [`CudaVit::new`] uploads for `w`.
fn model_arena(cfg: &VitConfig, w: &ClipWeights, p: Precision) -> HostArena {
    let tensors = arena_tensors(cfg, w);
    match p {
        Precision::F16 => host_arena(&tensors, f16::from_f32).unwrap(),
        Precision::Bf16 => host_arena(&tensors, bf16::from_f32).unwrap(),
    }
}

/// Runs the plan of a forward over `models` (several: blended with `coeffs` `[batch, M]`) on
/// the host; returns (logits, features).
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

/// Tensor `i` of a host arena as f32 values.
fn arena_tensor(host: &HostArena, i: usize, p: Precision) -> Vec<f32> {
    let e = &host.layout().entries()[i];
    match p {
        Precision::F16 => host.as_slice::<f16>().unwrap()[e.range()]
            .iter()
            .map(|v| v.to_f32())
            .collect(),
        Precision::Bf16 => host.as_slice::<bf16>().unwrap()[e.range()]
            .iter()
            .map(|v| v.to_f32())
            .collect(),
    }
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
    let sets = arenas.len();
    let mut bufs = HashMap::new();
    for (s, host) in arenas.iter().enumerate() {
        for i in 0..host.layout().entries().len() {
            let data = arena_tensor(host, i, p);
            bufs.insert(
                Buf::Param { set: s, tensor: i },
                HostBuf { data, half: true },
            );
        }
    }
    for w in Work::ALL {
        let (n, is_f32) = w.size(cfg, batch, sets);
        // Poison: NaN, so that a value read before it is written shows up in the result.
        let mut data = vec![f32::NAN; n];
        if w == Work::Images {
            data.copy_from_slice(images);
        }
        if w == Work::Coef {
            match coeffs {
                Some(c) => data = blend_coefficients(sets, batch, c).unwrap(),
                None => continue,
            }
        }
        bufs.insert(
            Buf::Work(w),
            HostBuf {
                data,
                half: !is_f32,
            },
        );
    }
    let mut mem = Mem {
        bufs,
        dt: p.dtype(),
    };
    assert_eq!(mem.round(0.1), mem.round(mem.round(0.1)));
    for op in plan(cfg, &ParamList::new(cfg), batch, sets) {
        exec(&mut mem, &op);
    }
    (
        mem.get(Buf::Work(Work::Logits)).to_vec(),
        mem.get(Buf::Work(Work::Feats)).to_vec(),
    )
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
        activation: Default::default(),
        layer_scale: false,
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

// Exact GELU, LayerScale, head widths other than 64, and the open_clip towers saved by PyTorch.
mod arch;
