//! The parameters of a CLIP ViT classifier as plain f32 tensors, and their loading from a
//! checkpoint in either common naming.
//!
//! Fields are named after the OpenAI / open_clip checkpoint (`conv1`, `ln_pre`, `resblocks.N.attn`,
//! `ln_post`, `proj`); the doc comment of each field gives both checkpoint names. Every matrix is
//! stored as a PyTorch `nn.Linear` weight `[out, in]`, so `y = x Wᵀ + b` everywhere:
//!
//! | field | OpenAI / open_clip (`visual.` prefix) | Hugging Face (`vision_model.` prefix) |
//! |---|---|---|
//! | `conv1` `[W, 3P²]` | `conv1.weight` `[W,3,P,P]` | `embeddings.patch_embedding.weight` |
//! | `class_embedding` `[W]` | `class_embedding` | `embeddings.class_embedding` |
//! | `positional_embedding` `[T, W]` | `positional_embedding` | `embeddings.position_embedding.weight` |
//! | `ln_pre` | `ln_pre` | `pre_layrnorm` |
//! | `attn_in_proj` `[3W, W]` (q, k, v) | `transformer.resblocks.N.attn.in_proj_weight/_bias` | `encoder.layers.N.self_attn.{q,k,v}_proj` |
//! | `attn_out_proj` | `….attn.out_proj` | `….self_attn.out_proj` |
//! | `ln_1`, `ln_2` | `….ln_1`, `….ln_2` | `….layer_norm1`, `….layer_norm2` |
//! | `mlp_c_fc`, `mlp_c_proj` | `….mlp.c_fc`, `….mlp.c_proj` | `….mlp.fc1`, `….mlp.fc2` |
//! | `ln_post` | `ln_post` | `post_layernorm` |
//! | `proj` `[E, W]` | `proj` `[W, E]`, transposed on load | `visual_projection.weight` (no prefix) |
//! | head `[C, E]`, `[C]` | `classification_head.weight/.bias` | same |

use crate::config::VitConfig;
use crate::error::{Error, Result};
use crate::tensors::{fetch, shape_of, TensorSource, HEADS_METADATA_KEY};

/// A linear map `y = x Wᵀ + b` with `W` stored row-major as `[out_dim, in_dim]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    /// `[out_dim, in_dim]`, row-major.
    pub weight: Vec<f32>,
    /// `[out_dim]`, or `None` for a map without bias.
    pub bias: Option<Vec<f32>>,
    /// Output size.
    pub out_dim: usize,
    /// Input size.
    pub in_dim: usize,
}

/// Layer norm `y = (x − mean) / sqrt(var + eps) · weight + bias` over the last dimension
/// (biased variance, as PyTorch).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerNorm {
    /// Scale, `[width]`.
    pub weight: Vec<f32>,
    /// Shift, `[width]`.
    pub bias: Vec<f32>,
}

/// One residual attention block: `x += attn(ln_1(x)); x += mlp(ln_2(x))`.
#[derive(Clone, Debug, PartialEq)]
pub struct ResidualBlock {
    /// `ln_1` / `layer_norm1`.
    pub ln_1: LayerNorm,
    /// Packed q, k, v projection `[3W, W]` (`attn.in_proj_weight` / `self_attn.{q,k,v}_proj`).
    pub attn_in_proj: Linear,
    /// `attn.out_proj` / `self_attn.out_proj`, `[W, W]`.
    pub attn_out_proj: Linear,
    /// `ln_2` / `layer_norm2`.
    pub ln_2: LayerNorm,
    /// `mlp.c_fc` / `mlp.fc1`, `[M, W]`.
    pub mlp_c_fc: Linear,
    /// `mlp.c_proj` / `mlp.fc2`, `[W, M]`.
    pub mlp_c_proj: Linear,
}

/// The image tower: patch embedding, transformer, final norm and projection.
#[derive(Clone, Debug, PartialEq)]
pub struct VisionWeights {
    /// Patch embedding as a linear map `[W, 3·P·P]` without bias (conv weight `[W,3,P,P]` flattened
    /// in `(channel, row, column)` order).
    pub conv1: Linear,
    /// Class token, `[W]`.
    pub class_embedding: Vec<f32>,
    /// Positional embedding, `[T, W]`.
    pub positional_embedding: Vec<f32>,
    /// `ln_pre` / `pre_layrnorm`.
    pub ln_pre: LayerNorm,
    /// The blocks, in order.
    pub resblocks: Vec<ResidualBlock>,
    /// `ln_post` / `post_layernorm`, applied to the class token.
    pub ln_post: LayerNorm,
    /// Projection to the embedding, `[E, W]`, no bias.
    pub proj: Linear,
}

/// Everything the classifier's forward reads.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipWeights {
    /// The image tower.
    pub visual: VisionWeights,
    /// `classification_head`: `[C, E]` weight and `[C]` bias applied to the normalised features.
    pub head: Linear,
}

/// The two checkpoint namings this crate reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckpointNaming {
    /// OpenAI CLIP / open_clip / WiSE-FT: `{prefix}conv1.weight`, … where `prefix` ends in `visual.`.
    OpenAi {
        /// Everything before `conv1.weight`, e.g. `visual.` or `image_encoder.model.visual.`.
        prefix: String,
    },
    /// Hugging Face transformers: `{root}vision_model.…` and `{root}visual_projection.weight`.
    HuggingFace {
        /// Everything before `vision_model.`, usually empty.
        root: String,
    },
}

const OPENAI_MARK: &str = "visual.conv1.weight";
const HF_MARK: &str = "vision_model.embeddings.patch_embedding.weight";

impl CheckpointNaming {
    /// Detects the naming from the tensor names (the shortest matching prefix wins).
    pub fn detect(src: &dyn TensorSource) -> Result<Self> {
        let names = src.tensor_names();
        let shortest = |mark: &str| {
            names
                .iter()
                .filter(|n| {
                    n.ends_with(mark)
                        && (n.len() == mark.len() || n[..n.len() - mark.len()].ends_with('.'))
                })
                .min_by_key(|n| n.len())
                .map(|n| n[..n.len() - mark.len()].to_string())
        };
        if let Some(root) = shortest(OPENAI_MARK) {
            return Ok(CheckpointNaming::OpenAi {
                prefix: format!("{root}visual."),
            });
        }
        if let Some(root) = shortest(HF_MARK) {
            return Ok(CheckpointNaming::HuggingFace { root });
        }
        Err(Error::NotClipVision {
            source_name: src.source_name(),
            reason: format!(
                "found neither `{OPENAI_MARK}` (OpenAI / open_clip) nor `{HF_MARK}` (Hugging Face) among its {} tensors",
                names.len()
            ),
        })
    }

    fn patch(&self) -> String {
        match self {
            Self::OpenAi { prefix } => format!("{prefix}conv1.weight"),
            Self::HuggingFace { root } => format!("{root}{HF_MARK}"),
        }
    }
    fn class_embedding(&self) -> String {
        match self {
            Self::OpenAi { prefix } => format!("{prefix}class_embedding"),
            Self::HuggingFace { root } => format!("{root}vision_model.embeddings.class_embedding"),
        }
    }
    fn positional(&self) -> String {
        match self {
            Self::OpenAi { prefix } => format!("{prefix}positional_embedding"),
            Self::HuggingFace { root } => {
                format!("{root}vision_model.embeddings.position_embedding.weight")
            }
        }
    }
    fn ln_pre(&self) -> String {
        match self {
            Self::OpenAi { prefix } => format!("{prefix}ln_pre"),
            Self::HuggingFace { root } => format!("{root}vision_model.pre_layrnorm"),
        }
    }
    fn ln_post(&self) -> String {
        match self {
            Self::OpenAi { prefix } => format!("{prefix}ln_post"),
            Self::HuggingFace { root } => format!("{root}vision_model.post_layernorm"),
        }
    }
    fn proj(&self) -> String {
        match self {
            Self::OpenAi { prefix } => format!("{prefix}proj"),
            Self::HuggingFace { root } => format!("{root}visual_projection.weight"),
        }
    }
    fn block_prefix(&self) -> String {
        match self {
            Self::OpenAi { prefix } => format!("{prefix}transformer.resblocks."),
            Self::HuggingFace { root } => format!("{root}vision_model.encoder.layers."),
        }
    }
    fn mlp_in(&self, i: usize) -> String {
        match self {
            Self::OpenAi { .. } => format!("{}{i}.mlp.c_fc", self.block_prefix()),
            Self::HuggingFace { .. } => format!("{}{i}.mlp.fc1", self.block_prefix()),
        }
    }
}

/// How to resolve what the shapes of a checkpoint cannot tell.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadOptions {
    /// Number of attention heads. Resolution: the metadata key `dawin.vit.heads` when present
    /// (an override that disagrees with it is an error), else this value, else `width / 64`.
    pub heads: Option<usize>,
    /// Layer-norm epsilon (default 1e-5, CLIP's).
    pub layer_norm_eps: Option<f32>,
}

fn parse_block_index(name: &str, block_prefix: &str) -> Option<usize> {
    let rest = name.strip_prefix(block_prefix)?;
    let idx = rest.split('.').next()?;
    idx.parse().ok()
}

fn dim(src: &dyn TensorSource, name: &str, shape: &[usize], rank: usize) -> Result<()> {
    if shape.len() != rank || shape.contains(&0) {
        return Err(Error::TensorShape {
            name: name.to_string(),
            source_name: src.source_name(),
            got: shape.to_vec(),
            expected: format!("a non-empty tensor of rank {rank}"),
        });
    }
    Ok(())
}

/// Finds `classification_head.weight` in `src` (top level first, then under any prefix).
fn head_names(src: &dyn TensorSource) -> Option<(String, String)> {
    const W: &str = "classification_head.weight";
    let names = src.tensor_names();
    let found = names
        .iter()
        .filter(|n| n.as_str() == W || n.ends_with(&format!(".{W}")))
        .min_by_key(|n| n.len())?;
    let root = &found[..found.len() - W.len()];
    Some((found.clone(), format!("{root}classification_head.bias")))
}

/// Infers the configuration of the checkpoint `src` from its tensor shapes:
/// patch size and width from the patch embedding, image size from the positional embedding
/// (`T = (image/patch)² + 1`), layers by counting blocks, MLP size from block 0, embedding size
/// from the projection and classes from the classification head (in `head` if given, else in `src`).
pub fn infer_config(
    src: &dyn TensorSource,
    head: Option<&dyn TensorSource>,
    opts: &LoadOptions,
) -> Result<(VitConfig, CheckpointNaming)> {
    let naming = CheckpointNaming::detect(src)?;
    let pname = naming.patch();
    let ps = shape_of(src, &pname)?;
    if ps.len() != 4 || ps[1] != 3 || ps[2] != ps[3] || ps[0] == 0 || ps[2] == 0 {
        return Err(Error::TensorShape {
            name: pname,
            source_name: src.source_name(),
            got: ps,
            expected: "[width, 3, patch, patch]".into(),
        });
    }
    let (width, patch) = (ps[0], ps[2]);
    let posname = naming.positional();
    let pos = shape_of(src, &posname)?;
    let grid = pos
        .first()
        .map(|&t| ((t.saturating_sub(1)) as f64).sqrt().round() as usize);
    let ok =
        pos.len() == 2 && pos[1] == width && grid.is_some_and(|g| g > 0 && g * g + 1 == pos[0]);
    if !ok {
        return Err(Error::TensorShape {
            name: posname,
            source_name: src.source_name(),
            got: pos,
            expected: format!("[g² + 1, {width}] for some grid g"),
        });
    }
    let image_size = grid.unwrap_or(0) * patch;

    let bp = naming.block_prefix();
    let layers = src
        .tensor_names()
        .iter()
        .filter_map(|n| parse_block_index(n, &bp))
        .max()
        .map_or(0, |m| m + 1);
    if layers == 0 {
        return Err(Error::NotClipVision {
            source_name: src.source_name(),
            reason: format!("no transformer block (no tensor named `{bp}0.…`)"),
        });
    }
    let fc = format!("{}.weight", naming.mlp_in(0));
    let fcs = shape_of(src, &fc)?;
    dim(src, &fc, &fcs, 2)?;
    let mlp_dim = fcs[0];

    let projname = naming.proj();
    let prs = shape_of(src, &projname)?;
    dim(src, &projname, &prs, 2)?;
    let embed_dim = match naming {
        CheckpointNaming::OpenAi { .. } => prs[1],
        CheckpointNaming::HuggingFace { .. } => prs[0],
    };

    let hsrc = head.unwrap_or(src);
    let (hw, _) = head_names(hsrc).ok_or_else(|| Error::MissingTensor {
        name: "classification_head.weight".into(),
        source_name: hsrc.source_name(),
    })?;
    let hs = shape_of(hsrc, &hw)?;
    dim(hsrc, &hw, &hs, 2)?;
    let num_classes = hs[0];

    let meta_heads = match src.metadata_value(HEADS_METADATA_KEY) {
        Some(v) => Some(v.trim().parse::<usize>().map_err(|_| {
            Error::Config(format!(
                "metadata `{HEADS_METADATA_KEY}` = {v:?} of {} is not a number",
                src.source_name()
            ))
        })?),
        None => None,
    };
    let heads = match (meta_heads, opts.heads) {
        (Some(m), Some(o)) if m != o => {
            return Err(Error::Config(format!(
                "heads = {o} was asked for, but {} says `{HEADS_METADATA_KEY}` = {m}",
                src.source_name()
            )))
        }
        (Some(m), _) => m,
        (None, Some(o)) => o,
        (None, None) => {
            if width % 64 != 0 {
                return Err(Error::Config(format!(
                    "width {width} of {} is not a multiple of 64: give the number of heads \
                     (metadata `{HEADS_METADATA_KEY}` or an explicit override)",
                    src.source_name()
                )));
            }
            width / 64
        }
    };
    let cfg = VitConfig {
        image_size,
        patch_size: patch,
        width,
        layers,
        heads,
        mlp_dim,
        embed_dim,
        num_classes,
        layer_norm_eps: opts.layer_norm_eps.unwrap_or(1e-5),
    };
    cfg.validate()?;
    Ok((cfg, naming))
}

fn linear(
    src: &dyn TensorSource,
    wname: &str,
    bname: Option<&str>,
    out_dim: usize,
    in_dim: usize,
) -> Result<Linear> {
    let weight = fetch(src, wname, &[out_dim, in_dim])?;
    let bias = match bname {
        Some(b) => Some(fetch(src, b, &[out_dim])?),
        None => None,
    };
    Ok(Linear {
        weight,
        bias,
        out_dim,
        in_dim,
    })
}

/// Where one encoder parameter (a slice of [`ClipWeights::params`]) lives in a checkpoint: one
/// tensor; several stacked row-wise (Hugging Face `q_proj`, `k_proj`, `v_proj` → the packed
/// `[3W, W]` projection); or one transposed (OpenAI `visual.proj` `[W, E]` → `[E, W]`).
/// Built by [`ClipWeights::encoder_specs`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    parts: Vec<(String, Vec<usize>)>,
    transpose: bool,
}

impl ParamSpec {
    /// The checkpoint tensors it reads, in stacking order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().map(|(n, _)| n.as_str())
    }

    /// Number of values of the parameter.
    pub fn len(&self) -> usize {
        self.parts
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }

    /// Whether the parameter holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks that every tensor is present with its expected shape, reading no value. Errors
    /// name the tensor and the source.
    pub fn check(&self, src: &dyn TensorSource) -> Result<()> {
        for (name, expected) in &self.parts {
            let got = shape_of(src, name)?;
            if got != *expected {
                return Err(Error::TensorShape {
                    name: name.clone(),
                    source_name: src.source_name(),
                    got,
                    expected: format!("{expected:?}"),
                });
            }
        }
        Ok(())
    }

    /// Reads the parameter as f32, in the layout of [`ClipWeights::params`]. Errors name the
    /// tensor and the source (missing, misshapen, unreadable dtype).
    pub fn load(&self, src: &dyn TensorSource) -> Result<Vec<f32>> {
        if let [(name, shape)] = &self.parts[..] {
            let data = fetch(src, name, shape)?;
            return Ok(if self.transpose {
                transpose(&data, shape[0], shape[1])
            } else {
                data
            });
        }
        let mut out = Vec::with_capacity(self.len());
        for (name, shape) in &self.parts {
            out.extend(fetch(src, name, shape)?);
        }
        Ok(out)
    }
}

/// Transposes a row-major `[rows, cols]` matrix.
pub(crate) fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; a.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = a[r * cols + c];
        }
    }
    t
}

impl ClipWeights {
    /// Loads every tensor `cfg` needs from `src` in the given naming, and the head from `head`
    /// (or from `src` when `head` is `None`). Shapes must match `cfg` exactly; a missing or
    /// misshapen tensor is an error naming it.
    pub fn load(
        src: &dyn TensorSource,
        head: Option<&dyn TensorSource>,
        cfg: &VitConfig,
        naming: &CheckpointNaming,
    ) -> Result<Self> {
        cfg.validate()?;
        let mut weights = Self::zeros(cfg);
        for (dst, spec) in weights
            .params_mut()
            .into_iter()
            .zip(Self::encoder_specs(cfg, naming))
        {
            dst.copy_from_slice(&spec.load(src)?);
        }
        let hsrc = head.unwrap_or(src);
        let (hw, hb) = head_names(hsrc).ok_or_else(|| Error::MissingTensor {
            name: "classification_head.weight".into(),
            source_name: hsrc.source_name(),
        })?;
        weights.head = linear(hsrc, &hw, Some(&hb), cfg.num_classes, cfg.embed_dim)?;
        weights.check(cfg)?;
        Ok(weights)
    }

    /// Where each encoder parameter comes from in a checkpoint of `naming`: one [`ParamSpec`]
    /// per slice of [`ClipWeights::params`], in that order, the head excluded. Reading a model
    /// parameter by parameter through these (e.g. from a memory-mapped file) never holds more
    /// than one converted tensor: a merge of M checkpoints can run as one pass over them.
    pub fn encoder_specs(cfg: &VitConfig, naming: &CheckpointNaming) -> Vec<ParamSpec> {
        let (w, m, e, p) = (cfg.width, cfg.mlp_dim, cfg.embed_dim, cfg.patch_size);
        let one = |name: String, shape: &[usize]| ParamSpec {
            parts: vec![(name, shape.to_vec())],
            transpose: false,
        };
        let norm = |prefix: &str| {
            [
                one(format!("{prefix}.weight"), &[w]),
                one(format!("{prefix}.bias"), &[w]),
            ]
        };
        let lin = |prefix: &str, out_dim: usize, in_dim: usize| {
            [
                one(format!("{prefix}.weight"), &[out_dim, in_dim]),
                one(format!("{prefix}.bias"), &[out_dim]),
            ]
        };
        let mut v = vec![
            one(naming.patch(), &[w, 3, p, p]),
            one(naming.class_embedding(), &[w]),
            one(naming.positional(), &[cfg.num_tokens(), w]),
        ];
        v.extend(norm(&naming.ln_pre()));
        let bp = naming.block_prefix();
        for i in 0..cfg.layers {
            let b = format!("{bp}{i}");
            match naming {
                CheckpointNaming::OpenAi { .. } => {
                    v.extend(norm(&format!("{b}.ln_1")));
                    v.extend(norm(&format!("{b}.ln_2")));
                    v.push(one(format!("{b}.attn.in_proj_weight"), &[3 * w, w]));
                    v.push(one(format!("{b}.attn.in_proj_bias"), &[3 * w]));
                    v.extend(lin(&format!("{b}.attn.out_proj"), w, w));
                    v.extend(lin(&format!("{b}.mlp.c_fc"), m, w));
                    v.extend(lin(&format!("{b}.mlp.c_proj"), w, m));
                }
                CheckpointNaming::HuggingFace { .. } => {
                    v.extend(norm(&format!("{b}.layer_norm1")));
                    v.extend(norm(&format!("{b}.layer_norm2")));
                    let qkv = |what: &str, shape: &[usize]| ParamSpec {
                        parts: ["q", "k", "v"]
                            .iter()
                            .map(|q| (format!("{b}.self_attn.{q}_proj.{what}"), shape.to_vec()))
                            .collect(),
                        transpose: false,
                    };
                    v.push(qkv("weight", &[w, w]));
                    v.push(qkv("bias", &[w]));
                    v.extend(lin(&format!("{b}.self_attn.out_proj"), w, w));
                    v.extend(lin(&format!("{b}.mlp.fc1"), m, w));
                    v.extend(lin(&format!("{b}.mlp.fc2"), w, m));
                }
            }
        }
        v.extend(norm(&naming.ln_post()));
        v.push(match naming {
            CheckpointNaming::OpenAi { .. } => ParamSpec {
                parts: vec![(naming.proj(), vec![w, e])],
                transpose: true,
            },
            CheckpointNaming::HuggingFace { .. } => one(naming.proj(), &[e, w]),
        });
        v
    }

    /// Zero weights of shape `cfg` (every bias present), to be filled by [`ClipWeights::load`].
    fn zeros(cfg: &VitConfig) -> Self {
        let (w, m, e, c) = (cfg.width, cfg.mlp_dim, cfg.embed_dim, cfg.num_classes);
        let lin = |out_dim: usize, in_dim: usize, bias: bool| Linear {
            weight: vec![0.0; out_dim * in_dim],
            bias: bias.then(|| vec![0.0; out_dim]),
            out_dim,
            in_dim,
        };
        let norm = || LayerNorm {
            weight: vec![0.0; w],
            bias: vec![0.0; w],
        };
        ClipWeights {
            visual: VisionWeights {
                conv1: lin(w, cfg.patch_dim(), false),
                class_embedding: vec![0.0; w],
                positional_embedding: vec![0.0; cfg.num_tokens() * w],
                ln_pre: norm(),
                resblocks: (0..cfg.layers)
                    .map(|_| ResidualBlock {
                        ln_1: norm(),
                        attn_in_proj: lin(3 * w, w, true),
                        attn_out_proj: lin(w, w, true),
                        ln_2: norm(),
                        mlp_c_fc: lin(m, w, true),
                        mlp_c_proj: lin(w, m, true),
                    })
                    .collect(),
                ln_post: norm(),
                proj: lin(e, w, false),
            },
            head: lin(c, e, true),
        }
    }

    /// Random weights of shape `cfg` (for benches and tests): matrices `N(0, 1/in)`, biases and
    /// embeddings `N(0, 0.02²)`, identity norms; deterministic for a given `seed`.
    pub fn random(cfg: &VitConfig, seed: u64) -> Result<Self> {
        use rand::{RngExt, SeedableRng};
        cfg.validate()?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut normal = move || -> f32 { rng.sample(rand_distr::StandardNormal) };
        let (w, m, e, c) = (cfg.width, cfg.mlp_dim, cfg.embed_dim, cfg.num_classes);
        let mut lin = |out_dim: usize, in_dim: usize, bias: bool| {
            let s = 1.0 / (in_dim as f32).sqrt();
            Linear {
                weight: (0..out_dim * in_dim).map(|_| s * normal()).collect(),
                bias: bias.then(|| (0..out_dim).map(|_| 0.02 * normal()).collect()),
                out_dim,
                in_dim,
            }
        };
        let conv1 = lin(w, cfg.patch_dim(), false);
        let mut resblocks = Vec::new();
        for _ in 0..cfg.layers {
            resblocks.push(ResidualBlock {
                ln_1: LayerNorm::identity(w),
                attn_in_proj: lin(3 * w, w, true),
                attn_out_proj: lin(w, w, true),
                ln_2: LayerNorm::identity(w),
                mlp_c_fc: lin(m, w, true),
                mlp_c_proj: lin(w, m, true),
            });
        }
        let proj = lin(e, w, false);
        let head = lin(c, e, true);
        let class_embedding = (0..w).map(|_| 0.02 * normal()).collect();
        let positional_embedding = (0..cfg.num_tokens() * w).map(|_| 0.02 * normal()).collect();
        Ok(ClipWeights {
            visual: VisionWeights {
                conv1,
                class_embedding,
                positional_embedding,
                ln_pre: LayerNorm::identity(w),
                resblocks,
                ln_post: LayerNorm::identity(w),
                proj,
            },
            head,
        })
    }

    /// Checks every tensor's length against `cfg`; errors name the field.
    pub fn check(&self, cfg: &VitConfig) -> Result<()> {
        let (w, m, e, c) = (cfg.width, cfg.mlp_dim, cfg.embed_dim, cfg.num_classes);
        let bad = |what: String, got: usize, want: usize| {
            Err(Error::Config(format!(
                "weights `{what}` hold {got} values, config wants {want}"
            )))
        };
        let check_lin =
            |what: &str, l: &Linear, out_dim: usize, in_dim: usize, bias: bool| -> Result<()> {
                if l.out_dim != out_dim || l.in_dim != in_dim || l.weight.len() != out_dim * in_dim
                {
                    return bad(format!("{what}.weight"), l.weight.len(), out_dim * in_dim);
                }
                match (&l.bias, bias) {
                    (Some(b), true) if b.len() == out_dim => Ok(()),
                    (None, false) => Ok(()),
                    (b, _) => bad(
                        format!("{what}.bias"),
                        b.as_ref().map_or(0, |b| b.len()),
                        if bias { out_dim } else { 0 },
                    ),
                }
            };
        let check_ln = |what: &str, l: &LayerNorm| -> Result<()> {
            if l.weight.len() != w || l.bias.len() != w {
                return bad(what.to_string(), l.weight.len().min(l.bias.len()), w);
            }
            Ok(())
        };
        let v = &self.visual;
        check_lin("conv1", &v.conv1, w, cfg.patch_dim(), false)?;
        if v.class_embedding.len() != w {
            return bad("class_embedding".into(), v.class_embedding.len(), w);
        }
        if v.positional_embedding.len() != cfg.num_tokens() * w {
            return bad(
                "positional_embedding".into(),
                v.positional_embedding.len(),
                cfg.num_tokens() * w,
            );
        }
        check_ln("ln_pre", &v.ln_pre)?;
        check_ln("ln_post", &v.ln_post)?;
        if v.resblocks.len() != cfg.layers {
            return bad("resblocks".into(), v.resblocks.len(), cfg.layers);
        }
        for (i, b) in v.resblocks.iter().enumerate() {
            check_ln(&format!("resblocks.{i}.ln_1"), &b.ln_1)?;
            check_ln(&format!("resblocks.{i}.ln_2"), &b.ln_2)?;
            check_lin(
                &format!("resblocks.{i}.attn.in_proj"),
                &b.attn_in_proj,
                3 * w,
                w,
                true,
            )?;
            check_lin(
                &format!("resblocks.{i}.attn.out_proj"),
                &b.attn_out_proj,
                w,
                w,
                true,
            )?;
            check_lin(&format!("resblocks.{i}.mlp.c_fc"), &b.mlp_c_fc, m, w, true)?;
            check_lin(
                &format!("resblocks.{i}.mlp.c_proj"),
                &b.mlp_c_proj,
                w,
                m,
                true,
            )?;
        }
        check_lin("proj", &v.proj, e, w, false)?;
        check_lin("classification_head", &self.head, c, e, true)
    }
}

impl ClipWeights {
    /// Every parameter tensor as a flat slice, in a fixed order (the order of
    /// [`ClipWeights::to_tensor_map`] with the OpenAI naming, head last). Two weight sets of one
    /// config line up slice by slice, e.g. to merge them: `θ = (1 − λ) θ0 + λ θ1`.
    pub fn params(&self) -> Vec<&[f32]> {
        let mut v: Vec<&[f32]> = Vec::new();
        let w = &self.visual;
        v.push(&w.conv1.weight);
        v.push(&w.class_embedding);
        v.push(&w.positional_embedding);
        v.push(&w.ln_pre.weight);
        v.push(&w.ln_pre.bias);
        for b in &w.resblocks {
            for l in [&b.ln_1, &b.ln_2] {
                v.push(&l.weight);
                v.push(&l.bias);
            }
            for l in [
                &b.attn_in_proj,
                &b.attn_out_proj,
                &b.mlp_c_fc,
                &b.mlp_c_proj,
            ] {
                v.push(&l.weight);
                v.extend(l.bias.as_deref());
            }
        }
        v.push(&w.ln_post.weight);
        v.push(&w.ln_post.bias);
        v.push(&w.proj.weight);
        v.push(&self.head.weight);
        v.extend(self.head.bias.as_deref());
        v
    }

    /// [`ClipWeights::params`], mutable.
    pub fn params_mut(&mut self) -> Vec<&mut [f32]> {
        let mut v: Vec<&mut [f32]> = Vec::new();
        let w = &mut self.visual;
        v.push(&mut w.conv1.weight);
        v.push(&mut w.class_embedding);
        v.push(&mut w.positional_embedding);
        v.push(&mut w.ln_pre.weight);
        v.push(&mut w.ln_pre.bias);
        for b in &mut w.resblocks {
            for l in [&mut b.ln_1, &mut b.ln_2] {
                v.push(&mut l.weight);
                v.push(&mut l.bias);
            }
            for l in [
                &mut b.attn_in_proj,
                &mut b.attn_out_proj,
                &mut b.mlp_c_fc,
                &mut b.mlp_c_proj,
            ] {
                v.push(&mut l.weight);
                v.extend(l.bias.as_deref_mut());
            }
        }
        v.push(&mut w.ln_post.weight);
        v.push(&mut w.ln_post.bias);
        v.push(&mut w.proj.weight);
        v.push(&mut self.head.weight);
        v.extend(self.head.bias.as_deref_mut());
        v
    }

    /// The weights as checkpoint tensors in `naming` (the inverse of [`ClipWeights::load`]):
    /// OpenAI packs q, k, v into `in_proj_weight` and stores `proj` as `[W, E]`; Hugging Face
    /// splits q, k, v. The head is `classification_head.weight` / `.bias`; the map carries the
    /// [`HEADS_METADATA_KEY`] metadata with `cfg.heads`. Use it to convert a checkpoint from one
    /// naming to the other.
    pub fn to_tensor_map(
        &self,
        cfg: &VitConfig,
        naming: &CheckpointNaming,
    ) -> Result<crate::tensors::TensorMap> {
        self.check(cfg)?;
        let mut m = crate::tensors::TensorMap::new();
        let (w, e, p) = (cfg.width, cfg.embed_dim, cfg.patch_size);
        let v = &self.visual;
        let ln = |m: &mut crate::tensors::TensorMap, name: String, l: &LayerNorm| -> Result<()> {
            m.insert(format!("{name}.weight"), vec![w], l.weight.clone())?;
            m.insert(format!("{name}.bias"), vec![w], l.bias.clone())
        };
        let lin = |m: &mut crate::tensors::TensorMap, name: String, l: &Linear| -> Result<()> {
            m.insert(
                format!("{name}.weight"),
                vec![l.out_dim, l.in_dim],
                l.weight.clone(),
            )?;
            if let Some(b) = &l.bias {
                m.insert(format!("{name}.bias"), vec![l.out_dim], b.clone())?;
            }
            Ok(())
        };
        m.insert(naming.patch(), vec![w, 3, p, p], v.conv1.weight.clone())?;
        m.insert(naming.class_embedding(), vec![w], v.class_embedding.clone())?;
        m.insert(
            naming.positional(),
            vec![cfg.num_tokens(), w],
            v.positional_embedding.clone(),
        )?;
        ln(&mut m, naming.ln_pre(), &v.ln_pre)?;
        ln(&mut m, naming.ln_post(), &v.ln_post)?;
        let bp = naming.block_prefix();
        for (i, blk) in v.resblocks.iter().enumerate() {
            let b = format!("{bp}{i}");
            match naming {
                CheckpointNaming::OpenAi { .. } => {
                    ln(&mut m, format!("{b}.ln_1"), &blk.ln_1)?;
                    ln(&mut m, format!("{b}.ln_2"), &blk.ln_2)?;
                    let ip = &blk.attn_in_proj;
                    m.insert(
                        format!("{b}.attn.in_proj_weight"),
                        vec![3 * w, w],
                        ip.weight.clone(),
                    )?;
                    m.insert(
                        format!("{b}.attn.in_proj_bias"),
                        vec![3 * w],
                        ip.bias.clone().unwrap_or_default(),
                    )?;
                    lin(&mut m, format!("{b}.attn.out_proj"), &blk.attn_out_proj)?;
                    lin(&mut m, format!("{b}.mlp.c_fc"), &blk.mlp_c_fc)?;
                    lin(&mut m, format!("{b}.mlp.c_proj"), &blk.mlp_c_proj)?;
                }
                CheckpointNaming::HuggingFace { .. } => {
                    ln(&mut m, format!("{b}.layer_norm1"), &blk.ln_1)?;
                    ln(&mut m, format!("{b}.layer_norm2"), &blk.ln_2)?;
                    let ip = &blk.attn_in_proj;
                    let bias = ip.bias.clone().unwrap_or_default();
                    for (j, q) in ["q", "k", "v"].iter().enumerate() {
                        m.insert(
                            format!("{b}.self_attn.{q}_proj.weight"),
                            vec![w, w],
                            ip.weight[j * w * w..(j + 1) * w * w].to_vec(),
                        )?;
                        m.insert(
                            format!("{b}.self_attn.{q}_proj.bias"),
                            vec![w],
                            bias[j * w..(j + 1) * w].to_vec(),
                        )?;
                    }
                    lin(
                        &mut m,
                        format!("{b}.self_attn.out_proj"),
                        &blk.attn_out_proj,
                    )?;
                    lin(&mut m, format!("{b}.mlp.fc1"), &blk.mlp_c_fc)?;
                    lin(&mut m, format!("{b}.mlp.fc2"), &blk.mlp_c_proj)?;
                }
            }
        }
        match naming {
            CheckpointNaming::OpenAi { .. } => {
                m.insert(naming.proj(), vec![w, e], transpose(&v.proj.weight, e, w))?
            }
            CheckpointNaming::HuggingFace { .. } => {
                m.insert(naming.proj(), vec![e, w], v.proj.weight.clone())?
            }
        }
        lin(&mut m, "classification_head".into(), &self.head)?;
        m.set_metadata(HEADS_METADATA_KEY, cfg.heads.to_string());
        Ok(m)
    }
}

impl LayerNorm {
    /// The identity norm: weight 1, bias 0.
    pub fn identity(width: usize) -> Self {
        LayerNorm {
            weight: vec![1.0; width],
            bias: vec![0.0; width],
        }
    }
}
