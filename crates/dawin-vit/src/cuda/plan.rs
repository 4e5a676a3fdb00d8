//! The launches of one forward as data: every op names its shape (the kernels' own shape types)
//! and the buffers it reads and writes, a parameter tensor of a weight set (found through the
//! parameter list) or an activation buffer. The GPU executor (`exec.rs`) turns the buffers into
//! device views and calls the safe launchers of `dawin-kernels`; the host interpreter
//! (`host.rs`, tests) runs the same ops on host memory.

use dawin_kernels::{
    AttentionShape, EmbedShape, GemmActivation, GemmShape, Im2colShape, L2NormShape, LayerNormShape,
};

use crate::config::{Activation, VitConfig};
use crate::params::{Module, ParamKey, ParamList, Part};

/// An activation buffer of one forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Work {
    /// The preprocessed images, f32 `[B, 3, S, S]` (the caller's).
    Images,
    /// Patch rows, T `[B·G², K']`.
    Cols,
    /// Patch embeddings, f32 `[B·G², W]`.
    Patches,
    /// Token embeddings before `ln_pre`, f32 `[B·T, W]`.
    Emb,
    /// The residual stream, f32 `[B·T, W]`.
    X,
    /// A normalised stream, T `[B·T, W]`.
    H,
    /// q | k | v, T `[B·T, 3W]`.
    Qkv,
    /// Attention output, T `[B·T, W]`.
    Att,
    /// MLP hidden activations, T `[B·T, M]`.
    Mlp,
    /// `ln_post` of the class tokens, T `[B, W]`.
    Pooled,
    /// Projected features, f32 `[B, E]`.
    FeatRaw,
    /// Normalised features, f32 `[B, E]`.
    Feats,
    /// Normalised features, T `[B, E]` (the head's input).
    FeatT,
    /// Logits, f32 `[B, C]`.
    Logits,
    /// Blend coefficients, f32 `[B, sets]` (a blended forward only).
    Coef,
}

impl Work {
    /// Every activation buffer, in allocation order.
    pub(crate) const ALL: [Work; 15] = [
        Work::Images,
        Work::Cols,
        Work::Patches,
        Work::Emb,
        Work::X,
        Work::H,
        Work::Qkv,
        Work::Att,
        Work::Mlp,
        Work::Pooled,
        Work::FeatRaw,
        Work::Feats,
        Work::FeatT,
        Work::Logits,
        Work::Coef,
    ];

    /// Elements of the buffer for a forward of `batch` images over `sets` weight sets, and
    /// whether it holds f32 (else T).
    pub(crate) fn size(self, cfg: &VitConfig, batch: usize, sets: usize) -> (usize, bool) {
        let rows = batch * cfg.num_tokens();
        let np = batch * cfg.num_patches();
        let w = cfg.width;
        match self {
            Work::Images => (batch * cfg.image_numel(), true),
            Work::Cols => (np * patch_dim_padded(cfg), false),
            Work::Patches => (np * w, true),
            Work::Emb => (rows * w, true),
            Work::X => (rows * w, true),
            Work::H => (rows * w, false),
            Work::Qkv => (rows * 3 * w, false),
            Work::Att => (rows * w, false),
            Work::Mlp => (rows * cfg.mlp_dim, false),
            Work::Pooled => (batch * w, false),
            Work::FeatRaw | Work::Feats => (batch * cfg.embed_dim, true),
            Work::FeatT => (batch * cfg.embed_dim, false),
            Work::Logits => (batch * cfg.num_classes, true),
            Work::Coef => (if sets > 1 { batch * sets } else { 0 }, true),
        }
    }
}

/// `K' = ⌈3P² / 8⌉·8`, the padded patch dimension.
pub(crate) fn patch_dim_padded(cfg: &VitConfig) -> usize {
    cfg.patch_dim().div_ceil(8) * 8
}

/// A buffer an op reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Buf {
    /// Tensor `tensor` (its index in the parameter list, and in the arena) of weight set `set`.
    Param { set: usize, tensor: usize },
    /// An activation buffer.
    Work(Work),
}

/// The tensors of one weight set of a GEMM.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GemmSet {
    /// `[n, k]`.
    pub(crate) weight: Buf,
    /// `[n]`, if the map has a bias.
    pub(crate) bias: Option<Buf>,
    /// `[n]`: the LayerScale factors of the residual branch the GEMM ends, if any.
    pub(crate) scale: Option<Buf>,
}

/// One kernel launch of a forward.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    Im2col {
        shape: Im2colShape,
        images: Buf,
        out: Buf,
    },
    Gemm {
        shape: GemmShape,
        a: Buf,
        /// Weight, bias and scale (LayerScale γ) of each set.
        sets: Vec<GemmSet>,
        coef: Option<Buf>,
        out: Buf,
    },
    Embed {
        shape: EmbedShape,
        patches: Buf,
        /// Class and positional embedding of each set.
        sets: Vec<(Buf, Buf)>,
        coef: Option<Buf>,
        out: Buf,
    },
    LayerNorm {
        shape: LayerNormShape,
        x: Buf,
        /// Scale and shift of each set.
        sets: Vec<(Buf, Buf)>,
        coef: Option<Buf>,
        out: Buf,
    },
    Attention {
        shape: AttentionShape,
        qkv: Buf,
        out: Buf,
    },
    L2Norm {
        shape: L2NormShape,
        x: Buf,
        feats: Buf,
        out: Buf,
    },
}

impl Op {
    /// The kind of kernel, for timing breakdowns: `gemm`, `attention`, `layernorm`, `other`.
    pub(crate) fn kind(&self) -> usize {
        match self {
            Op::Gemm { .. } => 0,
            Op::Attention { .. } => 1,
            Op::LayerNorm { .. } => 2,
            _ => 3,
        }
    }
}

/// The launches of one forward of `batch` images over `sets` weight sets (one: a plain forward;
/// several: the blend with coefficients in [`Work::Coef`]), in order (see the module docs of
/// [`crate::cuda`]); every parameter is found in `list` by its key.
pub(crate) fn plan(cfg: &VitConfig, list: &ParamList, batch: usize, sets: usize) -> Vec<Op> {
    use Work::*;
    let w = |b: Work| Buf::Work(b);
    let (wd, e, c, t) = (cfg.width, cfg.embed_dim, cfg.num_classes, cfg.num_tokens());
    let (kp, np) = (patch_dim_padded(cfg), cfg.num_patches());
    let rows = batch * t;
    let coef = (sets > 1).then_some(w(Coef));
    // Tensor `key` of every set (a tensor the config does not have: None).
    let param = |key: ParamKey, s: usize| {
        list.index_of(&key)
            .map(|tensor| Buf::Param { set: s, tensor })
    };
    let required = |key: ParamKey, s: usize| param(key, s).expect("a tensor every model has");
    let key = |module: Module, part: Part, layer: Option<usize>| ParamKey {
        module,
        part,
        layer,
    };
    // A linear map of every set, scaled by the LayerScale `scale` (a module of the list, present
    // or not) when the config has it.
    let scaled = |module: Module, layer: Option<usize>, scale: Option<Module>| -> Vec<GemmSet> {
        (0..sets)
            .map(|s| GemmSet {
                weight: required(key(module, Part::Weight, layer), s),
                bias: param(key(module, Part::Bias, layer), s),
                scale: scale.and_then(|g| param(key(g, Part::Weight, layer), s)),
            })
            .collect()
    };
    let linear = |module: Module, layer: Option<usize>| scaled(module, layer, None);
    let norm = |module: Module, layer: Option<usize>| -> Vec<(Buf, Buf)> {
        (0..sets)
            .map(|s| {
                (
                    required(key(module, Part::Weight, layer), s),
                    required(key(module, Part::Bias, layer), s),
                )
            })
            .collect()
    };
    let gemm =
        |m: usize, k: usize, n: usize, per: usize, act: GemmActivation, add: bool| GemmShape {
            rows_per_coef: per,
            act,
            accumulate: add,
            ..GemmShape::new(m, n, k)
        };
    let none = GemmActivation::Identity;
    let mlp_act = match cfg.activation {
        Activation::QuickGelu => GemmActivation::QuickGelu,
        Activation::Gelu => GemmActivation::Gelu,
    };
    let ln = |rows: usize, in_stride: usize, per: usize| LayerNormShape {
        rows,
        d: wd,
        in_stride,
        out_stride: wd,
        rows_per_coef: per,
        eps: cfg.layer_norm_eps,
    };

    let mut ops = Vec::with_capacity(7 + 7 * cfg.layers);
    ops.push(Op::Im2col {
        shape: Im2colShape {
            batch,
            image_size: cfg.image_size,
            patch: cfg.patch_size,
            ld: kp,
        },
        images: w(Images),
        out: w(Cols),
    });
    ops.push(Op::Gemm {
        shape: gemm(batch * np, kp, wd, np, none, false),
        a: w(Cols),
        sets: linear(Module::PatchEmbedding, None),
        coef,
        out: w(Patches),
    });
    ops.push(Op::Embed {
        shape: EmbedShape {
            batch,
            patches: np,
            width: wd,
        },
        patches: w(Patches),
        sets: (0..sets)
            .map(|s| {
                (
                    required(key(Module::ClassEmbedding, Part::Weight, None), s),
                    required(key(Module::PositionalEmbedding, Part::Weight, None), s),
                )
            })
            .collect(),
        coef,
        out: w(Emb),
    });
    ops.push(Op::LayerNorm {
        shape: ln(rows, wd, t),
        x: w(Emb),
        sets: norm(Module::LnPre, None),
        coef,
        out: w(X),
    });
    let scale = 1.0 / (cfg.head_dim() as f32).sqrt();
    for l in 0..cfg.layers {
        let layer = Some(l);
        ops.push(Op::LayerNorm {
            shape: ln(rows, wd, t),
            x: w(X),
            sets: norm(Module::Ln1, layer),
            coef,
            out: w(H),
        });
        ops.push(Op::Gemm {
            shape: gemm(rows, wd, 3 * wd, t, none, false),
            a: w(H),
            sets: linear(Module::AttnInProj, layer),
            coef,
            out: w(Qkv),
        });
        ops.push(Op::Attention {
            shape: AttentionShape {
                batch,
                seq: t,
                heads: cfg.heads,
                head_dim: cfg.head_dim(),
                scale,
            },
            qkv: w(Qkv),
            out: w(Att),
        });
        ops.push(Op::Gemm {
            shape: gemm(rows, wd, wd, t, none, true),
            a: w(Att),
            sets: scaled(Module::AttnOutProj, layer, Some(Module::Ls1)),
            coef,
            out: w(X),
        });
        ops.push(Op::LayerNorm {
            shape: ln(rows, wd, t),
            x: w(X),
            sets: norm(Module::Ln2, layer),
            coef,
            out: w(H),
        });
        ops.push(Op::Gemm {
            shape: gemm(rows, wd, cfg.mlp_dim, t, mlp_act, false),
            a: w(H),
            sets: linear(Module::MlpFc, layer),
            coef,
            out: w(Mlp),
        });
        ops.push(Op::Gemm {
            shape: gemm(rows, cfg.mlp_dim, wd, t, none, true),
            a: w(Mlp),
            sets: scaled(Module::MlpProj, layer, Some(Module::Ls2)),
            coef,
            out: w(X),
        });
    }
    // Class tokens: rows b·T of x.
    ops.push(Op::LayerNorm {
        shape: ln(batch, t * wd, 1),
        x: w(X),
        sets: norm(Module::LnPost, None),
        coef,
        out: w(Pooled),
    });
    ops.push(Op::Gemm {
        shape: gemm(batch, wd, e, 1, none, false),
        a: w(Pooled),
        sets: linear(Module::Proj, None),
        coef,
        out: w(FeatRaw),
    });
    ops.push(Op::L2Norm {
        shape: L2NormShape { rows: batch, d: e },
        x: w(FeatRaw),
        feats: w(Feats),
        out: w(FeatT),
    });
    ops.push(Op::Gemm {
        shape: gemm(batch, e, c, 1, none, false),
        a: w(FeatT),
        sets: linear(Module::Head, None),
        coef,
        out: w(Logits),
    });
    ops
}
