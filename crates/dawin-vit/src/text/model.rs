//! CLIP's text tower: its config, its weights as the checkpoints spell them, their loading in
//! either naming, and [`ClipTextModel`] (config + weights + the forward of
//! [`super::forward`]).

use std::path::Path;

use crate::config::Activation;
use crate::error::{Error, Result};
use crate::params::Part;
use crate::tensors::{fetch, shape_of, TensorMap, TensorSource};
use crate::tokenizer::TokenBatch;
use crate::weights::{transpose, LayerNorm, Linear, ResidualBlock};

use super::forward::{encode, TextPositions};
use super::params::{expand, TextModule, TextParamList, TextRole, TextScope, TEXT_KINDS};

/// Shape hyper-parameters of a CLIP text tower.
///
/// Forward: `x_t = token_embedding[id_t] + positional_embedding[t]`, then `layers` blocks
/// `x += attn(ln_1(x))` (causal: position t attends to positions ≤ t),
/// `x += c_proj(act(c_fc(ln_2(x))))`, then `f = ln_final(x_p) · P` at the end-of-text position
/// `p` (the largest id's), `P` = `text_projection`.
#[derive(Clone, Debug, PartialEq)]
pub struct TextConfig {
    /// Number of token ids (rows of the token embedding; 49 408 for CLIP's tokenizer).
    pub vocab_size: usize,
    /// Number of positions (rows of the positional embedding; 77 in CLIP).
    pub context_length: usize,
    /// Transformer width.
    pub width: usize,
    /// Number of residual blocks.
    pub layers: usize,
    /// Attention heads per block (`width % heads == 0`).
    pub heads: usize,
    /// Hidden size of the MLP (4 × width in CLIP).
    pub mlp_dim: usize,
    /// Output size of the projection (the joint embedding, the image tower's too).
    pub embed_dim: usize,
    /// Layer-norm epsilon (1e-5 in CLIP).
    pub layer_norm_eps: f32,
    /// The MLP activation (QuickGELU for OpenAI's CLIP, exact GELU for open_clip's
    /// LAION/DataComp models).
    pub activation: Activation,
}

impl TextConfig {
    /// The text tower of OpenAI's ViT-B/32 and ViT-B/16: width 512, 8 heads, 12 layers, context
    /// 77, vocabulary 49 408, embedding 512, QuickGELU.
    pub fn vit_b32() -> Self {
        TextConfig {
            vocab_size: crate::tokenizer::VOCAB_SIZE,
            context_length: crate::tokenizer::DEFAULT_CONTEXT_LENGTH,
            width: 512,
            layers: 12,
            heads: 8,
            mlp_dim: 2048,
            embed_dim: 512,
            layer_norm_eps: 1e-5,
            activation: Activation::QuickGelu,
        }
    }

    /// Width of one attention head, `width / heads`.
    pub fn head_dim(&self) -> usize {
        self.width / self.heads
    }

    /// Checks that the sizes are consistent (non-zero, heads divide width, eps > 0).
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("context_length", self.context_length),
            ("width", self.width),
            ("layers", self.layers),
            ("heads", self.heads),
            ("mlp_dim", self.mlp_dim),
            ("embed_dim", self.embed_dim),
        ] {
            if v == 0 {
                return Err(Error::Config(format!("text {name} must be > 0")));
            }
        }
        if !self.width.is_multiple_of(self.heads) {
            return Err(Error::Config(format!(
                "text heads {} do not divide the text width {}",
                self.heads, self.width
            )));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return Err(Error::Config(format!(
                "text layer_norm_eps {} must be finite and > 0",
                self.layer_norm_eps
            )));
        }
        Ok(())
    }

    /// Floating-point operations of one text of `tokens` positions, a multiply-add counted as 2:
    /// `L·(2·t·W·(4W + 2M) + 2·t·(t+1)·W)` (qkv, out, fc1, fc2; causal scores and weighted sum,
    /// `t(t+1)/2` pairs each) `+ 2·W·E` (projection); norms, softmax and activations not counted.
    pub fn forward_flops(&self, tokens: usize) -> f64 {
        let (t, w, m) = (tokens as f64, self.width as f64, self.mlp_dim as f64);
        let block = 2.0 * t * w * (4.0 * w + 2.0 * m) + 2.0 * t * (t + 1.0) * w;
        self.layers as f64 * block + 2.0 * w * self.embed_dim as f64
    }
}

/// The two checkpoint namings of a text tower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TextNaming {
    /// OpenAI CLIP / open_clip: `{prefix}token_embedding.weight`, `{prefix}transformer.resblocks.N.…`,
    /// `{prefix}ln_final.*`, `{prefix}text_projection`, and `{root}logit_scale`.
    OpenAi {
        /// Everything before `token_embedding.weight`: empty for open_clip's `CLIP`, `text.`
        /// for its `CustomTextCLIP`, `model.` (or deeper) for wrapped checkpoints.
        prefix: String,
        /// Where `logit_scale` is: the prefix, or the prefix without its last part (`text.`).
        root: String,
    },
    /// Hugging Face transformers: `{root}text_model.…`, `{root}text_projection.weight`,
    /// `{root}logit_scale`.
    HuggingFace {
        /// Everything before `text_model.`, usually empty.
        root: String,
    },
}

const OPENAI_MARK: &str = "token_embedding.weight";
const HF_MARK: &str = "text_model.embeddings.token_embedding.weight";

impl TextNaming {
    /// Detects the naming from the tensor names (the shortest matching prefix wins): OpenAI when
    /// a tensor ends in `token_embedding.weight` (not under `text_model.embeddings.`), Hugging
    /// Face when one ends in `text_model.embeddings.token_embedding.weight`. An image-encoder
    /// checkpoint (no token embedding) is [`Error::NotClipText`], naming both tensors.
    pub fn detect(src: &dyn TensorSource) -> Result<Self> {
        let names = src.tensor_names();
        let roots = |mark: &str| -> Vec<String> {
            let mut r: Vec<String> = names
                .iter()
                .filter(|n| {
                    n.ends_with(mark)
                        && (n.len() == mark.len() || n[..n.len() - mark.len()].ends_with('.'))
                })
                .map(|n| n[..n.len() - mark.len()].to_string())
                .collect();
            r.sort_by_key(String::len);
            r
        };
        let openai = roots(OPENAI_MARK)
            .into_iter()
            .find(|p| !p.ends_with("text_model.embeddings."));
        if let Some(prefix) = openai {
            // logit_scale: at the prefix, or at a shorter prefix of it (CustomTextCLIP's root).
            let root = roots("logit_scale")
                .into_iter()
                .filter(|r| prefix.starts_with(r.as_str()))
                .max_by_key(String::len)
                .unwrap_or_else(|| prefix.clone());
            return Ok(TextNaming::OpenAi { prefix, root });
        }
        if let Some(root) = roots(HF_MARK).into_iter().next() {
            return Ok(TextNaming::HuggingFace { root });
        }
        Err(Error::NotClipText {
            source_name: src.source_name(),
            reason: format!(
                "found neither `{OPENAI_MARK}` (OpenAI / open_clip) nor `{HF_MARK}` (Hugging Face) \
                 among its {} tensors (an image-encoder-only checkpoint cannot build a zero-shot head)",
                names.len()
            ),
        })
    }

    /// What comes before a block's index in its tensors' names.
    pub(crate) fn block_prefix(&self) -> String {
        match self {
            Self::OpenAi { prefix, .. } => format!("{prefix}transformer.resblocks."),
            Self::HuggingFace { root } => format!("{root}text_model.encoder.layers."),
        }
    }

    /// The checkpoint name of a tower tensor or of block 0's (one checkpoint tensor each).
    fn name_of(&self, module: TextModule, part: Part) -> String {
        let kind = TEXT_KINDS
            .iter()
            .find(|k| k.module == module && k.part == part)
            .expect("a kind of the text list");
        let (stored, prefix) = match self {
            Self::OpenAi { prefix, root } => (
                kind.openai,
                match kind.scope {
                    TextScope::Root => root.clone(),
                    _ => prefix.clone(),
                },
            ),
            Self::HuggingFace { root } => (kind.hf, root.clone()),
        };
        let prefix = match kind.scope {
            TextScope::Block => format!("{}0.", self.block_prefix()),
            _ => prefix,
        };
        format!("{prefix}{}", stored.name())
    }
}

/// What the shapes of a checkpoint cannot tell about its text tower.
#[derive(Clone, Copy, Debug, Default)]
pub struct TextOptions {
    /// Attention heads (default `width / 64`, open_clip's and OpenAI's head width).
    pub heads: Option<usize>,
    /// The MLP activation (default QuickGELU, OpenAI's CLIP).
    pub activation: Option<Activation>,
    /// Layer-norm epsilon (default 1e-5, CLIP's).
    pub layer_norm_eps: Option<f32>,
}

/// The text tower's weights, as f32 tensors (linear maps `[out, in]`, as PyTorch stores
/// `nn.Linear`); the names of each field in both namings are listed by [`TextParamList`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TextWeights {
    /// `token_embedding.weight`, `[V, W]`.
    pub token_embedding: Vec<f32>,
    /// `positional_embedding`, `[T, W]`.
    pub positional_embedding: Vec<f32>,
    /// The blocks (`transformer.resblocks.N`), the vision tower's block type.
    pub resblocks: Vec<ResidualBlock>,
    /// `ln_final`.
    pub ln_final: LayerNorm,
    /// `text_projection` as a linear map `[E, W]` without bias (OpenAI stores `[W, E]`).
    pub text_projection: Linear,
    /// `logit_scale` (one value), when the checkpoint has it.
    pub logit_scale: Option<Vec<f32>>,
}

fn parse_block_index(name: &str, block_prefix: &str) -> Option<usize> {
    name.strip_prefix(block_prefix)?
        .split('.')
        .next()?
        .parse()
        .ok()
}

fn rank2(src: &dyn TensorSource, name: &str) -> Result<(usize, usize)> {
    let s = shape_of(src, name)?;
    if s.len() != 2 || s.contains(&0) {
        return Err(Error::TensorShape {
            name: name.to_string(),
            source_name: src.source_name(),
            got: s,
            expected: "a non-empty matrix".into(),
        });
    }
    Ok((s[0], s[1]))
}

/// A [`TextConfig`] inferred from a checkpoint, with what was assumed.
#[derive(Clone, Debug)]
pub struct InferredText {
    /// The config.
    pub config: TextConfig,
    /// The naming found.
    pub naming: TextNaming,
    /// One line per field the shapes did not determine: its value and where it came from
    /// (`heads = 8: width 512 / 64, the default head width`), for the user to see.
    pub assumptions: Vec<String>,
}

/// Infers the text tower's config from the tensor shapes of `src`: vocabulary and width from the
/// token embedding, context from the positional embedding, layers by counting blocks, MLP size
/// from block 0, embedding size from `text_projection`; heads and activation from `opts`, else
/// the stated defaults (`width / 64` heads, QuickGELU). A text tower with LayerScale
/// (`ls_1.gamma`) is refused.
pub fn infer_text_config(src: &dyn TensorSource, opts: &TextOptions) -> Result<InferredText> {
    let naming = TextNaming::detect(src)?;
    let tok = naming.name_of(TextModule::TokenEmbedding, Part::Weight);
    let (vocab_size, width) = rank2(src, &tok)?;
    let pos = naming.name_of(TextModule::PositionalEmbedding, Part::Weight);
    let (context_length, pw) = rank2(src, &pos)?;
    if pw != width {
        return Err(Error::TensorShape {
            name: pos,
            source_name: src.source_name(),
            got: vec![context_length, pw],
            expected: format!("[context, {width}] (the width of `{tok}`)"),
        });
    }
    let bp = naming.block_prefix();
    let names = src.tensor_names();
    let layers = names
        .iter()
        .filter_map(|n| parse_block_index(n, &bp))
        .max()
        .map_or(0, |m| m + 1);
    if layers == 0 {
        return Err(Error::NotClipText {
            source_name: src.source_name(),
            reason: format!("`{tok}` but no transformer block (no tensor named `{bp}0.…`)"),
        });
    }
    if let Some(ls) = names
        .iter()
        .find(|n| n.starts_with(&bp) && (n.ends_with(".ls_1.gamma") || n.ends_with(".ls_2.gamma")))
    {
        return Err(Error::Config(format!(
            "{}: the text tower has LayerScale (`{ls}`), which is not supported",
            src.source_name()
        )));
    }
    let fc = naming.name_of(TextModule::MlpFc, Part::Weight);
    let (mlp_dim, _) = rank2(src, &fc)?;
    let proj = naming.name_of(TextModule::TextProjection, Part::Weight);
    let (a, b) = rank2(src, &proj)?;
    let embed_dim = match naming {
        TextNaming::OpenAi { .. } => b,
        TextNaming::HuggingFace { .. } => a,
    };
    let mut assumptions = Vec::new();
    let heads = match opts.heads {
        Some(h) => {
            assumptions.push(format!("text heads = {h} (given)"));
            h
        }
        None => {
            if !width.is_multiple_of(64) {
                return Err(Error::Config(format!(
                    "text width {width} of {} is not a multiple of 64: give the number of text heads",
                    src.source_name()
                )));
            }
            assumptions.push(format!(
                "text heads = {} (not in the weights: width {width} / 64, the head width of OpenAI's \
                 and open_clip's text towers; override: `TextOptions::heads`, `--text-heads`)",
                width / 64
            ));
            width / 64
        }
    };
    let activation = match opts.activation {
        Some(a) => {
            assumptions.push(format!("text activation = {} (given)", a.name()));
            a
        }
        None => {
            assumptions.push(
                "text activation = quick-gelu (not in the weights: OpenAI's CLIP; open_clip's \
                 LAION/DataComp models use gelu, override: `TextOptions::activation`, `--text-activation`)"
                    .into(),
            );
            Activation::QuickGelu
        }
    };
    let config = TextConfig {
        vocab_size,
        context_length,
        width,
        layers,
        heads,
        mlp_dim,
        embed_dim,
        layer_norm_eps: opts.layer_norm_eps.unwrap_or(1e-5),
        activation,
    };
    config.validate()?;
    Ok(InferredText {
        config,
        naming,
        assumptions,
    })
}

impl TextWeights {
    /// Weights of shape `cfg`, every tensor present (`logit_scale` included), with the values
    /// `fill` gives.
    fn build(cfg: &TextConfig, mut fill: impl FnMut(&super::TextParamDef, &mut [f32])) -> Self {
        let mut w = TextWeights {
            resblocks: vec![ResidualBlock::default(); cfg.layers],
            ..Default::default()
        };
        for (mut slot, (kind, layer)) in w.slots_mut().into_iter().zip(expand(cfg.layers)) {
            let def = super::params::def(cfg, kind, layer);
            debug_assert_eq!(slot.key, def.key);
            let mut v = vec![0.0f32; def.numel()];
            fill(&def, &mut v);
            slot.data.set(Some(v));
            if let Some((o, i)) = slot.dims {
                (*o, *i) = (def.shape[0], def.shape[1]);
            }
        }
        w
    }

    /// Loads every tensor `cfg` needs from `src` in `naming`; shapes must match exactly
    /// (`logit_scale` may be `[]` or `[1]`, and may be absent). Errors name the tensor.
    pub fn load(src: &dyn TensorSource, cfg: &TextConfig, naming: &TextNaming) -> Result<Self> {
        cfg.validate()?;
        let list = TextParamList::new(cfg);
        let mut w = Self::build(cfg, |_, _| {});
        for (mut slot, def) in w.slots_mut().into_iter().zip(&list) {
            let parts = def.checkpoint_tensors(naming);
            if def.key.module == TextModule::LogitScale {
                let name = &parts[0].0;
                let v = match src.tensor_shape(name) {
                    None if !src.tensor_names().contains(&name.as_str()) => None,
                    _ => {
                        let s = shape_of(src, name)?;
                        if s.iter().product::<usize>() != 1 || s.len() > 1 {
                            return Err(Error::TensorShape {
                                name: name.clone(),
                                source_name: src.source_name(),
                                got: s,
                                expected: "a scalar ([] or [1])".into(),
                            });
                        }
                        Some(src.tensor_f32(name)?)
                    }
                };
                slot.data.set(v);
                continue;
            }
            let values = match (&parts[..], def.stored(naming)) {
                ([(name, shape)], crate::Stored::Transposed(_)) => {
                    transpose(&fetch(src, name, shape)?, shape[0], shape[1])
                }
                _ => {
                    let mut v = Vec::with_capacity(def.numel());
                    for (name, shape) in &parts {
                        v.extend(fetch(src, name, shape)?);
                    }
                    v
                }
            };
            slot.data.set(Some(values));
        }
        w.check(cfg)?;
        Ok(w)
    }

    /// Random weights of shape `cfg` (benches and tests): matrices `N(0, 1/in)`, biases and
    /// embeddings `N(0, 0.02²)`, identity norms, `logit_scale = ln(1/0.07)` (CLIP's initial
    /// value); deterministic for a given `seed`.
    pub fn random(cfg: &TextConfig, seed: u64) -> Result<Self> {
        use rand::{RngExt, SeedableRng};
        cfg.validate()?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut normal = move || -> f32 { rng.sample(rand_distr::StandardNormal) };
        Ok(Self::build(cfg, |def, v| {
            match (def.role(), def.key.part) {
                (TextRole::LayerNorm, Part::Weight) => v.fill(1.0),
                (TextRole::LayerNorm, Part::Bias) => {}
                (TextRole::Scale, _) => v.fill((1.0f32 / 0.07).ln()),
                (TextRole::Linear, Part::Weight) => {
                    let s = 1.0 / (def.shape[1] as f32).sqrt();
                    v.iter_mut().for_each(|x| *x = s * normal());
                }
                _ => v.iter_mut().for_each(|x| *x = 0.02 * normal()),
            }
        }))
    }

    /// Checks every tensor against `cfg` (length, the dimensions of linear maps); errors name
    /// the tensor (OpenAI naming).
    pub fn check(&self, cfg: &TextConfig) -> Result<()> {
        if self.resblocks.len() != cfg.layers {
            return Err(Error::Config(format!(
                "text weights hold {} blocks, the config wants {}",
                self.resblocks.len(),
                cfg.layers
            )));
        }
        for (slot, def) in self.slots().into_iter().zip(&TextParamList::new(cfg)) {
            debug_assert_eq!(slot.key, def.key);
            match slot.data {
                None if def.optional => {}
                None => return Err(Error::Config(format!("text weights lack `{}`", def.name()))),
                Some(d) if d.len() != def.numel() => {
                    return Err(Error::Config(format!(
                        "text weights `{}` hold {} values, the config wants {}",
                        def.name(),
                        d.len(),
                        def.numel()
                    )))
                }
                Some(_) => {}
            }
            if let Some((o, i)) = slot.dims {
                if [o, i] != def.shape[..] {
                    return Err(Error::Config(format!(
                        "text weights `{}` are a [{o}, {i}] map, the config wants {:?}",
                        def.name(),
                        def.shape
                    )));
                }
            }
        }
        Ok(())
    }

    /// Every tensor present as a flat slice, in list order ([`TextParamList`]; an absent
    /// `logit_scale` is skipped).
    pub fn params(&self) -> Vec<&[f32]> {
        self.slots().into_iter().filter_map(|s| s.data).collect()
    }

    /// `logit_scale`, when present.
    pub fn logit_scale(&self) -> Option<f32> {
        self.logit_scale.as_ref().and_then(|v| v.first().copied())
    }

    /// The weights as checkpoint tensors in `naming` (the inverse of [`TextWeights::load`]):
    /// OpenAI packs q, k, v and stores `text_projection` as `[W, E]`; Hugging Face splits q, k,
    /// v. `logit_scale` is a scalar (`[]`).
    pub fn to_tensor_map(&self, cfg: &TextConfig, naming: &TextNaming) -> Result<TensorMap> {
        self.check(cfg)?;
        let mut m = TensorMap::new();
        for (slot, def) in self.slots().into_iter().zip(&TextParamList::new(cfg)) {
            let Some(data) = slot.data else { continue };
            let parts = def.checkpoint_tensors(naming);
            if let crate::Stored::Transposed(_) = def.stored(naming) {
                let (name, shape) = &parts[0];
                m.insert(
                    name.clone(),
                    shape.clone(),
                    transpose(data, shape[1], shape[0]),
                )?;
                continue;
            }
            let mut off = 0;
            for (name, shape) in parts {
                let n: usize = shape.iter().product();
                m.insert(name, shape, data[off..off + n].to_vec())?;
                off += n;
            }
        }
        Ok(m)
    }
}

/// CLIP's text tower: a config with its weights and the batched CPU forward.
///
/// ```
/// use dawin_vit::text::{ClipTextModel, TextConfig, TextWeights};
/// use dawin_vit::tokenizer::ClipTokenizer;
///
/// let cfg = TextConfig { width: 32, layers: 1, heads: 2, mlp_dim: 64, embed_dim: 16,
///                        ..TextConfig::vit_b32() };
/// let model = ClipTextModel::new(cfg.clone(), TextWeights::random(&cfg, 0)?)?;
/// let tokens = ClipTokenizer::builtin().tokenize_batch(&["a photo of a cat.", "a dog"]);
/// let f = model.encode(&tokens)?;                // [2, 16], not normalised
/// assert_eq!(f.len(), 2 * 16);
/// # Ok::<(), dawin_vit::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ClipTextModel {
    config: TextConfig,
    weights: TextWeights,
    naming: Option<TextNaming>,
    assumptions: Vec<String>,
    source_name: String,
}

impl ClipTextModel {
    /// A model from weights in memory, checked against `config`.
    pub fn new(config: TextConfig, weights: TextWeights) -> Result<Self> {
        config.validate()?;
        weights.check(&config)?;
        Ok(ClipTextModel {
            config,
            weights,
            naming: None,
            assumptions: Vec::new(),
            source_name: "<memory>".into(),
        })
    }

    /// Loads the text tower of a checkpoint in either naming (detected, config inferred:
    /// [`infer_text_config`]). Errors: [`Error::NotClipText`] without a text tower, a missing or
    /// misshapen tensor named.
    pub fn from_source(src: &dyn TensorSource, opts: &TextOptions) -> Result<Self> {
        let inferred = infer_text_config(src, opts)?;
        let weights = TextWeights::load(src, &inferred.config, &inferred.naming)?;
        Ok(ClipTextModel {
            config: inferred.config,
            weights,
            naming: Some(inferred.naming),
            assumptions: inferred.assumptions,
            source_name: src.source_name(),
        })
    }

    /// Loads the text tower of a checkpoint file, a shard index or a directory
    /// ([`crate::open_checkpoint`]); see [`ClipTextModel::from_source`].
    pub fn from_path(path: impl AsRef<Path>, opts: &TextOptions) -> Result<Self> {
        let ck = crate::open_checkpoint(path.as_ref())?;
        Self::from_source(&ck, opts)
    }

    /// The configuration.
    pub fn config(&self) -> &TextConfig {
        &self.config
    }

    /// The weights.
    pub fn weights(&self) -> &TextWeights {
        &self.weights
    }

    /// The checkpoint's naming (`None` when built in memory).
    pub fn naming(&self) -> Option<&TextNaming> {
        self.naming.as_ref()
    }

    /// What loading assumed about fields the weights do not determine (see
    /// [`InferredText::assumptions`]); empty when built in memory.
    pub fn assumptions(&self) -> &[String] {
        &self.assumptions
    }

    /// `logit_scale`, when the checkpoint has it.
    pub fn logit_scale(&self) -> Option<f32> {
        self.weights.logit_scale()
    }

    /// The checkpoint `logit_scale` is read from (its name in the checkpoint's naming).
    pub(crate) fn logit_scale_name(&self) -> String {
        match &self.naming {
            Some(n) => n.name_of(TextModule::LogitScale, Part::Weight),
            None => "logit_scale".into(),
        }
    }

    /// How errors name where the model came from: the checkpoint's path, or `<memory>`.
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// The unnormalised text features `[n, E]` of a tokenized batch (open_clip's
    /// `encode_text`): each text computed over its positions up to its end token only, and the
    /// prefixes texts share computed once ([`TextPositions::UpToPool`], exact under the causal
    /// mask; `text::forward`).
    pub fn encode(&self, tokens: &TokenBatch) -> Result<Vec<f32>> {
        self.encode_ids(
            &tokens.ids,
            tokens.context_length,
            &tokens.pool_index,
            TextPositions::UpToPool,
        )
    }

    /// The unnormalised text features `[n, E]` of `ids` (`n` rows of `row_len` ids), pooled
    /// at `pool_index[i]` of each row, over the `positions` asked for.
    pub fn encode_ids(
        &self,
        ids: &[u32],
        row_len: usize,
        pool_index: &[usize],
        positions: TextPositions,
    ) -> Result<Vec<f32>> {
        encode(
            ids,
            row_len,
            pool_index,
            positions,
            &self.config,
            &self.weights,
        )
    }
}
