//! The host interpreter of the CUDA forward's launch plans, with no GPU: every activation
//! buffer is a host buffer poisoned with NaN when it is allocated, and each op of a [`plan`] is
//! run by a small interpreter of the kernels' documented formulas (f32 arithmetic, f16/bf16
//! rounding on every T store, as the kernels do) over that memory, each op first passing the
//! same shape and length checks as the launchers of `dawin-kernels` and every access
//! bounds-checked (a failed check panics: this is a checking tool).
//!
//! [`HostVit`] is a [`VitDevice`] on it: the arenas are built exactly as [`super::CudaVit::new`]
//! builds them, merges run the kernels' CPU references (`dawin_core::merge`, the same f32
//! operations as `kernels/merge.cu`), row statistics `dawin_core::stats::row_stats` (the
//! reference of `kernels/row_stats.cu`), and the activation buffers are kept between forwards
//! and reused for batches of any size as the GPU workspace is — so a device pipeline's sequence
//! of operations (upload once, merge into arenas, forward from them, reuse the workspace) runs
//! and is compared with the CPU without a GPU. It checks the orchestration, not the kernels
//! (those: `crates/dawin-kernels/emulation`). Slow (f64 GEMMs): for small test models.

use std::collections::HashMap;
use std::sync::Mutex;

use dawin_core::stats::RowStats;
use dawin_kernels::{ArenaLayout, DType, GemmActivation, HostArena};
use half::{bf16, f16};

use super::args::{blend_coefficients, check_sets, model_arena};
use super::plan::{plan, Buf, Op, Work};
use super::{check_config, CudaError, CudaResult, Precision, VitDevice};
use crate::config::VitConfig;
use crate::cpu;
use crate::model::ForwardOutput;
use crate::params::ParamList;
use crate::weights::ClipWeights;

/// One buffer: values as f32, rounded to the forward's 16-bit type on every store when `half`.
pub(super) struct HostBuf {
    data: Vec<f32>,
    half: bool,
}

/// Every buffer of one forward, by name.
pub(super) struct Mem {
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
pub(super) fn exec(mem: &mut Mem, op: &Op) {
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

/// Activation buffers kept between forwards, as the GPU workspace (`exec::Slots`): a buffer is
/// allocated (poisoned with NaN) when missing or smaller than a forward needs, else reused with
/// whatever an earlier forward left in it.
#[derive(Default)]
pub(super) struct HostWorkspace {
    bufs: HashMap<Work, HostBuf>,
    /// Buffers allocated so far (a reused buffer is not counted).
    pub(super) allocations: usize,
}

/// The forward's launch plan interpreted over given parameter arenas, with the activation
/// buffers of `ws`; returns (logits `[batch, C]`, features `[batch, E]`).
pub(super) fn run_plan(
    cfg: &VitConfig,
    arenas: &[&HostArena],
    p: Precision,
    (images, batch, coeffs): (&[f32], usize, Option<&[f32]>),
    ws: &mut HostWorkspace,
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
        let mut hb = match ws.bufs.remove(&w) {
            Some(hb) if hb.data.len() >= n => hb,
            _ => {
                ws.allocations += 1;
                // Poison: NaN, so that a value read before it is written shows up.
                HostBuf {
                    data: vec![f32::NAN; n],
                    half: !is_f32,
                }
            }
        };
        if w == Work::Images {
            hb.data[..n].copy_from_slice(images);
        }
        if w == Work::Coef {
            match coeffs {
                Some(c) => {
                    hb.data[..n].copy_from_slice(&blend_coefficients(sets, batch, c).unwrap())
                }
                None => {
                    ws.bufs.insert(w, hb);
                    continue;
                }
            }
        }
        bufs.insert(Buf::Work(w), hb);
    }
    let mut mem = Mem {
        bufs,
        dt: p.dtype(),
    };
    assert_eq!(mem.round(0.1), mem.round(mem.round(0.1)));
    for op in plan(cfg, &ParamList::new(cfg), batch, sets) {
        exec(&mut mem, &op);
    }
    let (c, e) = (cfg.num_classes, cfg.embed_dim);
    let out = (
        mem.get(Buf::Work(Work::Logits))[..batch * c].to_vec(),
        mem.get(Buf::Work(Work::Feats))[..batch * e].to_vec(),
    );
    for (b, hb) in mem.bufs {
        if let Buf::Work(w) = b {
            ws.bufs.insert(w, hb);
        }
    }
    out
}

/// A [`VitDevice`] run on the host by the plan interpreter (see the module docs): what
/// [`super::CudaVit`] does on a GPU, for tests and checks without one.
pub struct HostVit {
    cfg: VitConfig,
    precision: Precision,
    models: Vec<HostArena>,
    layout: ArenaLayout,
    workspace: Mutex<HostWorkspace>,
}

impl std::fmt::Debug for HostVit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostVit")
            .field("config", &self.cfg)
            .field("precision", &self.precision)
            .field("models", &self.models.len())
            .finish()
    }
}

fn host_err(e: dawin_kernels::Error) -> CudaError {
    CudaError::Gpu(e)
}

impl HostVit {
    /// Builds the arenas of `models` as [`super::CudaVit::new`] uploads them (same checks).
    pub fn new(cfg: &VitConfig, models: &[&ClipWeights], precision: Precision) -> CudaResult<Self> {
        check_config(cfg)?;
        let first = models
            .first()
            .ok_or_else(|| super::args::arg_err("models", "no model given".into()))?;
        first.check(cfg).map_err(|e| {
            super::args::arg_err("models", format!("model 0 does not match the config: {e}"))
        })?;
        let a0 = model_arena(cfg, first, precision)?;
        let mut v = HostVit {
            cfg: cfg.clone(),
            precision,
            layout: a0.layout().clone(),
            models: vec![a0],
            workspace: Mutex::new(HostWorkspace::default()),
        };
        for m in &models[1..] {
            v.push(m)?;
        }
        Ok(v)
    }

    /// Activation buffers allocated so far by all forwards (a reused buffer is not counted):
    /// one plain forward allocates 14, a larger batch reallocates only what grew.
    pub fn workspace_allocations(&self) -> usize {
        self.workspace
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .allocations
    }

    fn check_layout(&self, a: &HostArena, what: &str) -> CudaResult<()> {
        self.layout.check_same(a.layout(), what).map_err(host_err)
    }
}

/// Runs `f` with `T` the arena's element type.
macro_rules! typed {
    ($p:expr, $T:ident => $body:expr) => {
        match $p {
            Precision::F16 => {
                type $T = f16;
                $body
            }
            Precision::Bf16 => {
                type $T = bf16;
                $body
            }
        }
    };
}

impl VitDevice for HostVit {
    type Arena = HostArena;

    fn config(&self) -> &VitConfig {
        &self.cfg
    }
    fn precision(&self) -> Precision {
        self.precision
    }
    fn describe(&self) -> String {
        "host interpreter of the CUDA launch plans".into()
    }
    fn models(&self) -> usize {
        self.models.len()
    }
    fn model(&self, i: usize) -> Option<&HostArena> {
        self.models.get(i)
    }
    fn push(&mut self, w: &ClipWeights) -> CudaResult<usize> {
        let j = self.models.len();
        w.check(&self.cfg).map_err(|e| {
            super::args::arg_err(
                "models",
                format!("model {j} does not match the config: {e}"),
            )
        })?;
        self.models.push(model_arena(&self.cfg, w, self.precision)?);
        Ok(j)
    }
    fn upload(&self, w: &ClipWeights) -> CudaResult<HostArena> {
        w.check(&self.cfg).map_err(|e| {
            super::args::arg_err("model", format!("does not match the config: {e}"))
        })?;
        model_arena(&self.cfg, w, self.precision)
    }
    fn new_arena(&self) -> CudaResult<HostArena> {
        Ok(HostArena::zeros(self.layout.clone()))
    }
    fn lerp(&self, a: &HostArena, b: &HostArena, l: f32, out: &mut HostArena) -> CudaResult<()> {
        self.multi_lerp(a, b, &[l], &mut [out])
    }
    fn multi_lerp(
        &self,
        a: &HostArena,
        b: &HostArena,
        lambdas: &[f32],
        outs: &mut [&mut HostArena],
    ) -> CudaResult<()> {
        self.check_layout(a, "multi_lerp: a")?;
        self.check_layout(b, "multi_lerp: b")?;
        for o in outs.iter() {
            self.check_layout(o, "multi_lerp: out")?;
        }
        typed!(self.precision, T => {
            let mut views: Vec<&mut [T]> = outs
                .iter_mut()
                .map(|o| o.as_mut_slice::<T>())
                .collect::<Result<_, _>>()
                .map_err(host_err)?;
            let (a, b) = (a.as_slice::<T>().map_err(host_err)?, b.as_slice::<T>().map_err(host_err)?);
            dawin_core::merge::multi_lerp(a, b, lambdas, &mut views)
                .map_err(|e| host_err(dawin_kernels::Error::Core(e)))
        })
    }
    fn task_arithmetic(
        &self,
        base: &HostArena,
        models: &[&HostArena],
        weights: &[f32],
        out: &mut HostArena,
    ) -> CudaResult<()> {
        self.check_layout(base, "task_arithmetic: base")?;
        for m in models {
            self.check_layout(m, "task_arithmetic: model")?;
        }
        self.check_layout(out, "task_arithmetic: out")?;
        typed!(self.precision, T => {
            let ms: Vec<&[T]> = models
                .iter()
                .map(|m| m.as_slice::<T>())
                .collect::<Result<_, _>>()
                .map_err(host_err)?;
            let b = base.as_slice::<T>().map_err(host_err)?;
            let o = out.as_mut_slice::<T>().map_err(host_err)?;
            dawin_core::merge::task_arithmetic(b, &ms, weights, o)
                .map_err(|e| host_err(dawin_kernels::Error::Core(e)))
        })
    }
    fn forward(
        &self,
        arenas: &[&HostArena],
        images: &[f32],
        batch: usize,
        coeffs: Option<&[f32]>,
        features: bool,
    ) -> CudaResult<ForwardOutput> {
        cpu::check_images(images, batch, &self.cfg)?;
        check_sets(arenas.len())?;
        for a in arenas {
            self.check_layout(a, "forward: arena")?;
        }
        match (arenas.len(), coeffs) {
            (1, None) => {}
            (n, Some(w)) => {
                blend_coefficients(n, batch, w)?;
            }
            (_, None) => {
                return Err(super::args::arg_err(
                    "coeffs",
                    "a blended forward needs them".into(),
                ))
            }
        }
        let mut ws = self.workspace.lock().unwrap_or_else(|e| e.into_inner());
        let (logits, feats) = run_plan(
            &self.cfg,
            arenas,
            self.precision,
            (images, batch, coeffs),
            &mut ws,
        );
        Ok(ForwardOutput {
            logits,
            features: features.then_some(feats),
            batch,
            num_classes: self.cfg.num_classes,
        })
    }
    fn row_stats(&self, logits: &[f32], c: usize, t: f32) -> CudaResult<Vec<RowStats>> {
        dawin_core::stats::row_stats(logits, c, t)
            .map_err(|e| host_err(dawin_kernels::Error::Core(e)))
    }
}
