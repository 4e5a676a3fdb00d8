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

use crate::config::{Activation, VitConfig};
use crate::error::{Error, Result};
use crate::params::{
    Group, Module, ParamDef, ParamList, Part, Role, Scope, Stored, TensorKind, KINDS,
};
use crate::tensors::{fetch, shape_of, TensorMap, TensorSource, HEADS_METADATA_KEY};

/// A linear map `y = x Wᵀ + b` with `W` stored row-major as `[out_dim, in_dim]`.
#[derive(Clone, Debug, Default, PartialEq)]
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
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayerNorm {
    /// Scale, `[width]`.
    pub weight: Vec<f32>,
    /// Shift, `[width]`.
    pub bias: Vec<f32>,
}

/// One residual attention block: `x += attn(ln_1(x)); x += mlp(ln_2(x))`, or with LayerScale
/// `x += γ1 ⊙ attn(ln_1(x)); x += γ2 ⊙ mlp(ln_2(x))`.
#[derive(Clone, Debug, Default, PartialEq)]
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
    /// LayerScale γ1 of the attention branch, `[W]` (`ls_1.gamma`); `Some` exactly when the
    /// config has [`VitConfig::layer_scale`].
    pub ls_1: Option<Vec<f32>>,
    /// LayerScale γ2 of the MLP branch, `[W]` (`ls_2.gamma`); as `ls_1`.
    pub ls_2: Option<Vec<f32>>,
}

/// The image tower: patch embedding, transformer, final norm and projection.
#[derive(Clone, Debug, Default, PartialEq)]
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
#[derive(Clone, Debug, Default, PartialEq)]
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

/// The patch embedding's kind of tensor: its name in either naming marks a checkpoint.
fn patch_kind() -> &'static TensorKind {
    &KINDS[0]
}

impl CheckpointNaming {
    /// Detects the naming from the tensor names (the shortest matching prefix wins): OpenAI when
    /// a tensor ends in `visual.conv1.weight`, Hugging Face when one ends in
    /// `vision_model.embeddings.patch_embedding.weight`.
    pub fn detect(src: &dyn TensorSource) -> Result<Self> {
        let openai_mark = format!("visual.{}", patch_kind().openai.name());
        let hf_mark = patch_kind().hf.name();
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
        if let Some(root) = shortest(&openai_mark) {
            return Ok(CheckpointNaming::OpenAi {
                prefix: format!("{root}visual."),
            });
        }
        if let Some(root) = shortest(hf_mark) {
            return Ok(CheckpointNaming::HuggingFace { root });
        }
        Err(Error::NotClipVision {
            source_name: src.source_name(),
            reason: format!(
                "found neither `{openai_mark}` (OpenAI / open_clip) nor `{hf_mark}` (Hugging Face) among its {} tensors",
                names.len()
            ),
        })
    }

    /// What comes before a block's index in its tensors' names.
    pub(crate) fn block_prefix(&self) -> String {
        match self {
            Self::OpenAi { prefix } => format!("{prefix}transformer.resblocks."),
            Self::HuggingFace { root } => format!("{root}vision_model.encoder.layers."),
        }
    }

    /// The checkpoint name of a tensor of the tower or of block 0 (a tensor stored as one
    /// checkpoint tensor), from the list; needs no config.
    pub(crate) fn name_of(&self, module: Module, part: Part) -> String {
        let kind = KINDS
            .iter()
            .find(|k| k.module == module && k.part == part)
            .expect("a kind of the list");
        let stored = match self {
            Self::OpenAi { .. } => kind.openai,
            Self::HuggingFace { .. } => kind.hf,
        };
        let prefix = match (kind.scope, self) {
            (Scope::Block, n) => format!("{}0.", n.block_prefix()),
            (_, Self::OpenAi { prefix }) => prefix.clone(),
            (_, Self::HuggingFace { root }) => root.clone(),
        };
        format!("{prefix}{}", stored.name())
    }

    /// Whether this naming stores tensor `(module, part)` transposed.
    pub(crate) fn transposed(&self, module: Module, part: Part) -> bool {
        let kind = KINDS
            .iter()
            .find(|k| k.module == module && k.part == part)
            .expect("a kind of the list");
        let stored = match self {
            Self::OpenAi { .. } => kind.openai,
            Self::HuggingFace { .. } => kind.hf,
        };
        matches!(stored, Stored::Transposed(_))
    }
}

/// How to load a checkpoint: what its tensors cannot tell, and what to do with tensors the model
/// does not use. Each field is a source of [`crate::arch`]'s resolution (flags outrank config
/// files, which outrank defaults; none may contradict the tensor shapes or the checkpoint's
/// metadata).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadOptions {
    /// Number of attention heads (`--heads`).
    pub heads: Option<usize>,
    /// Layer-norm epsilon (default 1e-5, CLIP's).
    pub layer_norm_eps: Option<f32>,
    /// One of open_clip's model names (`--arch ViT-B-32`, see
    /// [`crate::arch::OPEN_CLIP_PRESETS`]).
    pub arch: Option<String>,
    /// The MLP activation (`--activation gelu|quick-gelu`).
    pub activation: Option<Activation>,
    /// A config file to read (`--config`): a Hugging Face `config.json` or open_clip's
    /// `open_clip_config.json` (told by content), in place of the one of that kind beside the
    /// checkpoint.
    pub config: Option<std::path::PathBuf>,
    /// Do not read `config.json` / `open_clip_config.json` beside the checkpoint.
    pub no_config_files: bool,
    /// Load even when tensors under the vision tower's prefix are unused (they are listed in a
    /// warning instead of refused).
    pub ignore_unused: bool,
}

/// Where `classification_head.weight` is in `src` (top level first, then under any prefix):
/// the prefix of the head's tensor names.
pub(crate) fn head_root(src: &dyn TensorSource) -> Option<String> {
    const W: &str = "classification_head.weight";
    let names = src.tensor_names();
    let found = names
        .iter()
        .filter(|n| **n == W || n.ends_with(&format!(".{W}")))
        .min_by_key(|n| n.len())?;
    Some(found[..found.len() - W.len()].to_string())
}

/// Resolves the configuration of the checkpoint `src` ([`crate::arch`]: the tensor shapes, the
/// `dawin.vit.*` metadata, the options' flags and `opts.config`; no file beside it is read, as
/// `src` may be in memory) with the head from `head` if given, else from `src`'s
/// `classification_head.weight`. Unused tensors under the vision prefix are an error unless
/// `opts.ignore_unused`.
pub fn infer_config(
    src: &dyn TensorSource,
    head: Option<&dyn TensorSource>,
    opts: &LoadOptions,
) -> Result<(VitConfig, CheckpointNaming)> {
    let arch = crate::model::resolve_source(src, head, opts)?;
    arch.check_unused(opts.ignore_unused)?;
    Ok((arch.config()?, arch.naming))
}

/// Where one parameter (a slice of [`ClipWeights::params`]) lives in a checkpoint: one
/// tensor; several stacked row-wise (Hugging Face `q_proj`, `k_proj`, `v_proj` → the packed
/// `[3W, W]` projection); or one transposed (OpenAI `visual.proj` `[W, E]` → `[E, W]`).
/// Built from the parameter list by [`ClipWeights::encoder_specs`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    parts: Vec<(String, Vec<usize>)>,
    transpose: bool,
}

impl ParamSpec {
    pub(crate) fn new(def: &ParamDef, naming: &CheckpointNaming, head_root: &str) -> Self {
        ParamSpec {
            parts: def.checkpoint_tensors(naming, head_root),
            transpose: matches!(def.stored(naming), Stored::Transposed(_)),
        }
    }

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
        crate::params::check_config_tensors(cfg, naming, src)?;
        let list = ParamList::new(cfg);
        let hsrc = head.unwrap_or(src);
        let head_root = head_root(hsrc).ok_or_else(|| Error::MissingTensor {
            name: "classification_head.weight".into(),
            source_name: hsrc.source_name(),
        })?;
        let mut weights = Self::zeros(cfg);
        for (dst, def) in weights.params_mut().into_iter().zip(&list) {
            let (from, spec) = match def.group {
                Group::Encoder => (src, ParamSpec::new(def, naming, "")),
                Group::Head => (hsrc, ParamSpec::new(def, naming, &head_root)),
            };
            dst.copy_from_slice(&spec.load(from)?);
        }
        weights.check(cfg)?;
        Ok(weights)
    }

    /// Where each encoder parameter comes from in a checkpoint of `naming`: one [`ParamSpec`]
    /// per slice of [`ClipWeights::encoder_params`], in that order. Reading a model parameter
    /// by parameter through these (e.g. from a memory-mapped file) never holds more than one
    /// converted tensor: a merge of M checkpoints can run as one pass over them.
    pub fn encoder_specs(cfg: &VitConfig, naming: &CheckpointNaming) -> Vec<ParamSpec> {
        ParamList::new(cfg)
            .group(Group::Encoder)
            .map(|d| ParamSpec::new(d, naming, ""))
            .collect()
    }

    /// Weights of shape `cfg` (every tensor the config has present) with every tensor `sets`
    /// times as long, stacked along its first dimension (a linear map's `out_dim` times
    /// `sets`); `fill(def, stacked values)` gives the values. `sets = 1` is a plain model.
    pub(crate) fn build(
        cfg: &VitConfig,
        sets: usize,
        mut fill: impl FnMut(&ParamDef, &mut [f32]),
    ) -> Self {
        let mut w = ClipWeights {
            visual: VisionWeights {
                resblocks: vec![ResidualBlock::default(); cfg.layers],
                ..Default::default()
            },
            head: Linear::default(),
        };
        let kinds = crate::params::expand(cfg.layers);
        for (mut slot, (kind, layer)) in w.slots_mut().into_iter().zip(kinds) {
            if !(kind.present)(cfg) {
                slot.data.set(None);
                continue;
            }
            let def = crate::params::def(cfg, kind, layer);
            debug_assert_eq!(slot.key, def.key);
            let mut v = vec![0.0f32; sets * def.numel()];
            fill(&def, &mut v);
            slot.data.set(Some(v));
            if let Some((o, i)) = slot.dims {
                (*o, *i) = (sets * def.shape[0], def.shape[1]);
            }
        }
        w
    }

    /// Zero weights of shape `cfg`, to be filled by [`ClipWeights::load`].
    fn zeros(cfg: &VitConfig) -> Self {
        Self::build(cfg, 1, |_, _| {})
    }

    /// Random weights of shape `cfg` (for benches and tests): matrices `N(0, 1/in)`, biases and
    /// embeddings `N(0, 0.02²)`, identity norms, LayerScale factors `0.5 + 0.1·N(0, 1)` (far
    /// from the identity, so that a forward ignoring them is visibly wrong); deterministic for a
    /// given `seed`. The linear maps are drawn first (weight then bias, in list order), then the
    /// embeddings, then the LayerScale factors.
    pub fn random(cfg: &VitConfig, seed: u64) -> Result<Self> {
        use rand::{RngExt, SeedableRng};
        cfg.validate()?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut normal = move || -> f32 { rng.sample(rand_distr::StandardNormal) };
        let mut w = Self::build(cfg, 1, |def, v| {
            if def.role == Role::LayerNorm && def.key.part == Part::Weight {
                v.fill(1.0);
            }
        });
        let list = ParamList::new(cfg);
        for role in [Role::Linear, Role::Embedding, Role::LayerScale] {
            for (p, def) in w.params_mut().into_iter().zip(&list) {
                if def.role != role {
                    continue;
                }
                let (s, shift) = match (role, def.key.part) {
                    (Role::Linear, Part::Weight) => (1.0 / (def.shape[1] as f32).sqrt(), 0.0),
                    (Role::LayerScale, _) => (0.1, 0.5),
                    _ => (0.02, 0.0),
                };
                p.iter_mut().for_each(|x| *x = shift + s * normal());
            }
        }
        Ok(w)
    }

    /// Checks every tensor against `cfg` (presence, length, the dimensions of linear maps);
    /// errors name the tensor (OpenAI naming).
    pub fn check(&self, cfg: &VitConfig) -> Result<()> {
        if self.visual.resblocks.len() != cfg.layers {
            return Err(Error::Config(format!(
                "weights hold {} blocks (`resblocks`), config wants {}",
                self.visual.resblocks.len(),
                cfg.layers
            )));
        }
        let bad = |what: String, got: usize, want: usize| {
            Err(Error::Config(format!(
                "weights `{what}` hold {got} values, config wants {want}"
            )))
        };
        for (slot, (kind, layer)) in self
            .slots()
            .into_iter()
            .zip(crate::params::expand(cfg.layers))
        {
            let def = crate::params::def(cfg, kind, layer);
            debug_assert_eq!(slot.key, def.key);
            let want = if (kind.present)(cfg) { def.numel() } else { 0 };
            let got = slot.data.map_or(0, |d| d.len());
            if got != want || slot.data.is_some() != (kind.present)(cfg) {
                return bad(def.name(), got, want);
            }
            if let Some((o, i)) = slot.dims {
                if (o, i) != (def.shape[0], def.shape[1]) {
                    return Err(Error::Config(format!(
                        "weights `{}` are a [{o}, {i}] map, config wants {:?}",
                        def.name(),
                        def.shape
                    )));
                }
            }
        }
        Ok(())
    }
}

impl ClipWeights {
    /// Every parameter tensor as a flat slice, in the order of the parameter list
    /// ([`crate::ParamList`]: tower, blocks, `ln_post`, `proj`, head). Two weight sets of one
    /// config line up slice by slice, e.g. to merge them: `θ = (1 − λ) θ0 + λ θ1`.
    pub fn params(&self) -> Vec<&[f32]> {
        self.slots().into_iter().filter_map(|s| s.data).collect()
    }

    /// [`ClipWeights::params`], mutable.
    pub fn params_mut(&mut self) -> Vec<&mut [f32]> {
        self.slots_mut()
            .into_iter()
            .filter_map(|s| s.data.into_slice())
            .collect()
    }

    /// The parameters of the image encoder ([`Group::Encoder`]: everything but the
    /// classification head), in list order: what the multi-task methods merge, aligned with
    /// [`ClipWeights::encoder_specs`].
    pub fn encoder_params(&self) -> Vec<&[f32]> {
        self.slots()
            .into_iter()
            .filter(|s| s.scope.group() == Group::Encoder)
            .filter_map(|s| s.data)
            .collect()
    }

    /// [`ClipWeights::encoder_params`], mutable.
    pub fn encoder_params_mut(&mut self) -> Vec<&mut [f32]> {
        self.slots_mut()
            .into_iter()
            .filter(|s| s.scope.group() == Group::Encoder)
            .filter_map(|s| s.data.into_slice())
            .collect()
    }

    /// The group of each slice of [`ClipWeights::params`], in order (which are the encoder's and
    /// which the head's).
    pub fn param_groups(&self) -> Vec<Group> {
        self.slots()
            .into_iter()
            .filter(|s| s.data.is_some())
            .map(|s| s.scope.group())
            .collect()
    }

    /// The weights as checkpoint tensors in `naming` (the inverse of [`ClipWeights::load`]):
    /// OpenAI packs q, k, v into `in_proj_weight` and stores `proj` as `[W, E]`; Hugging Face
    /// splits q, k, v. The head is `classification_head.weight` / `.bias`; the map carries the
    /// [`HEADS_METADATA_KEY`] metadata with `cfg.heads`. Use it to convert a checkpoint from one
    /// naming to the other.
    pub fn to_tensor_map(&self, cfg: &VitConfig, naming: &CheckpointNaming) -> Result<TensorMap> {
        self.check(cfg)?;
        let mut m = TensorMap::new();
        for (data, def) in self.params().into_iter().zip(&ParamList::new(cfg)) {
            let parts = def.checkpoint_tensors(naming, "");
            match def.stored(naming) {
                Stored::Transposed(_) => {
                    let (name, shape) = &parts[0];
                    m.insert(
                        name.clone(),
                        shape.clone(),
                        transpose(data, shape[1], shape[0]),
                    )?;
                }
                _ => {
                    // One tensor, or q, k, v: consecutive row blocks of the stacked matrix.
                    let mut off = 0;
                    for (name, shape) in parts {
                        let n: usize = shape.iter().product();
                        m.insert(name, shape, data[off..off + n].to_vec())?;
                        off += n;
                    }
                }
            }
        }
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
