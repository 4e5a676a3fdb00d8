//! The one list of a CLIP text tower's tensors (the text counterpart of [`crate::ParamList`]).
//!
//! Every consumer of "all the text tower's tensors" is derived from the table at the end of this
//! file ([`text_tensor_list!`]): one row per kind of tensor, giving where it lives in
//! [`TextWeights`], what it is ([`TextModule`], [`Part`]), its shape as a function of
//! [`TextConfig`] (a linear map as `[out, in]`), and how each checkpoint naming stores it
//! ([`Stored`], shared with the vision list). From it: [`TextWeights::load`],
//! [`TextWeights::to_tensor_map`], [`TextWeights::check`], [`TextWeights::random`],
//! [`TextWeights::params`] and [`TextParamList`] (the list expanded for one config).
//!
//! | field | OpenAI / open_clip (after the prefix) | Hugging Face (after the root) |
//! |---|---|---|
//! | `token_embedding` `[V, W]` | `token_embedding.weight` | `text_model.embeddings.token_embedding.weight` |
//! | `positional_embedding` `[T, W]` | `positional_embedding` | `text_model.embeddings.position_embedding.weight` |
//! | block `ln_1`, `ln_2` | `transformer.resblocks.N.ln_1`, `….ln_2` | `text_model.encoder.layers.N.layer_norm1`, `….layer_norm2` |
//! | block `attn_in_proj` `[3W, W]` | `….attn.in_proj_weight/_bias` | `….self_attn.{q,k,v}_proj` |
//! | block `attn_out_proj` | `….attn.out_proj` | `….self_attn.out_proj` |
//! | block `mlp_c_fc`, `mlp_c_proj` | `….mlp.c_fc`, `….mlp.c_proj` | `….mlp.fc1`, `….mlp.fc2` |
//! | `ln_final` | `ln_final` | `text_model.final_layer_norm` |
//! | `text_projection` `[E, W]` | `text_projection` `[W, E]` (used as `x @ P`), transposed on load | `text_projection.weight` |
//! | `logit_scale` (optional) | `logit_scale` at the model's root | `logit_scale` |

use crate::params::{DataMut, Part, Stored};

use super::model::{TextConfig, TextNaming, TextWeights};

/// What a text-tower tensor parametrises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TextModule {
    /// The token embedding table, one row per vocabulary id.
    TokenEmbedding,
    /// The positional embedding, one row per position of the context.
    PositionalEmbedding,
    /// A block's first layer norm (`ln_1`).
    Ln1,
    /// A block's packed q, k, v projection (`attn.in_proj`).
    AttnInProj,
    /// A block's attention output projection (`attn.out_proj`).
    AttnOutProj,
    /// A block's second layer norm (`ln_2`).
    Ln2,
    /// A block's first MLP layer (`mlp.c_fc`).
    MlpFc,
    /// A block's second MLP layer (`mlp.c_proj`).
    MlpProj,
    /// The final layer norm (`ln_final`).
    LnFinal,
    /// The projection to the joint embedding (`text_projection`, no bias).
    TextProjection,
    /// CLIP's learned log temperature (`logit_scale`): logits = exp(logit_scale) · cos.
    LogitScale,
}

/// How the forward uses a tensor (what [`TextWeights::random`] draws for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TextRole {
    Embedding,
    LayerNorm,
    Linear,
    Scale,
}

/// Where a kind of tensor sits, which decides its name prefix in a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TextScope {
    /// Once per tower (OpenAI: after the text prefix; Hugging Face: after the root).
    Tower,
    /// Once per residual block.
    Block,
    /// Once per model, at its root (`logit_scale`).
    Root,
}

/// One row of the list: a kind of tensor (expanded per block by [`TextParamList`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct TextKind {
    pub(crate) module: TextModule,
    pub(crate) part: Part,
    pub(crate) role: TextRole,
    pub(crate) scope: TextScope,
    /// Shape as [`TextWeights`] stores it (`[]` for a scalar).
    pub(crate) shape: fn(&TextConfig) -> Vec<usize>,
    /// Whether the tensor may be absent from a checkpoint.
    pub(crate) optional: bool,
    pub(crate) openai: Stored,
    pub(crate) hf: Stored,
}

/// The identity of one text-tower tensor: its module, its part, its block for per-block ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TextParamKey {
    /// What it parametrises.
    pub module: TextModule,
    /// Which tensor of the module.
    pub part: Part,
    /// The block, for per-block tensors.
    pub layer: Option<usize>,
}

/// One tensor of a text tower of a given config.
#[derive(Clone, Debug)]
pub struct TextParamDef {
    /// Which tensor.
    pub key: TextParamKey,
    /// Shape as [`TextWeights`] stores it (`[out, in]` for a linear map, `[]` for a scalar).
    pub shape: Vec<usize>,
    /// Whether a checkpoint may lack it (`logit_scale`: a text encoder without CLIP's
    /// temperature, e.g. Hugging Face's `CLIPTextModelWithProjection`).
    pub optional: bool,
    kind: &'static TextKind,
}

impl TextParamDef {
    /// Number of values, the product of the shape.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The name in the OpenAI / open_clip naming without prefix, e.g. `token_embedding.weight`,
    /// `transformer.resblocks.3.attn.in_proj_weight`, `text_projection`, `logit_scale`.
    pub fn name(&self) -> String {
        let naming = TextNaming::OpenAi {
            prefix: String::new(),
            root: String::new(),
        };
        self.checkpoint_tensors(&naming).remove(0).0
    }

    /// How a checkpoint in `naming` stores it.
    pub fn stored(&self, naming: &TextNaming) -> Stored {
        match naming {
            TextNaming::OpenAi { .. } => self.kind.openai,
            TextNaming::HuggingFace { .. } => self.kind.hf,
        }
    }

    pub(crate) fn role(&self) -> TextRole {
        self.kind.role
    }

    /// The checkpoint tensors (name, shape) that hold it in `naming`, in stacking order.
    pub fn checkpoint_tensors(&self, naming: &TextNaming) -> Vec<(String, Vec<usize>)> {
        let prefix = match (self.kind.scope, naming) {
            (TextScope::Block, n) => {
                format!("{}{}.", n.block_prefix(), self.key.layer.unwrap_or(0))
            }
            (TextScope::Tower, TextNaming::OpenAi { prefix, .. }) => prefix.clone(),
            (TextScope::Root, TextNaming::OpenAi { root, .. }) => root.clone(),
            (_, TextNaming::HuggingFace { root }) => root.clone(),
        };
        let s = &self.shape;
        match self.stored(naming) {
            Stored::Same(n) | Stored::Conv(n) => vec![(format!("{prefix}{n}"), s.clone())],
            Stored::Transposed(n) => vec![(format!("{prefix}{n}"), vec![s[1], s[0]])],
            Stored::SplitQkv(n) => {
                let mut third = s.clone();
                third[0] /= 3;
                ["q", "k", "v"]
                    .iter()
                    .map(|q| (format!("{prefix}{}", n.replace("{}", q)), third.clone()))
                    .collect()
            }
        }
    }
}

/// The tensors of a CLIP text tower of one config, in the order of [`TextWeights::params`]:
/// the embeddings, each block's tensors, `ln_final`, `text_projection`, `logit_scale`.
///
/// ```
/// use dawin_vit::text::{TextConfig, TextModule, TextParamKey, TextParamList};
/// use dawin_vit::Part;
///
/// let list = TextParamList::new(&TextConfig::vit_b32());
/// assert_eq!(list.len(), 2 + 12 * 12 + 3 + 1);
/// let key = TextParamKey { module: TextModule::AttnInProj, part: Part::Weight, layer: Some(3) };
/// let def = list.iter().find(|d| d.key == key).unwrap();
/// assert_eq!(def.name(), "transformer.resblocks.3.attn.in_proj_weight");
/// assert_eq!(def.shape, vec![3 * 512, 512]);
/// ```
#[derive(Clone, Debug)]
pub struct TextParamList {
    defs: Vec<TextParamDef>,
}

/// The kinds in list order with their block, blocks repeated `layers` times.
pub(crate) fn expand(layers: usize) -> Vec<(&'static TextKind, Option<usize>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < TEXT_KINDS.len() {
        if TEXT_KINDS[i].scope != TextScope::Block {
            out.push((&TEXT_KINDS[i], None));
            i += 1;
            continue;
        }
        let end = (i..TEXT_KINDS.len())
            .find(|&j| TEXT_KINDS[j].scope != TextScope::Block)
            .unwrap_or(TEXT_KINDS.len());
        for l in 0..layers {
            out.extend(TEXT_KINDS[i..end].iter().map(|k| (k, Some(l))));
        }
        i = end;
    }
    out
}

pub(crate) fn def(cfg: &TextConfig, kind: &'static TextKind, layer: Option<usize>) -> TextParamDef {
    TextParamDef {
        key: TextParamKey {
            module: kind.module,
            part: kind.part,
            layer,
        },
        shape: (kind.shape)(cfg),
        optional: kind.optional,
        kind,
    }
}

impl TextParamList {
    /// The list for `cfg` (blocks repeated `cfg.layers` times).
    pub fn new(cfg: &TextConfig) -> Self {
        TextParamList {
            defs: expand(cfg.layers)
                .into_iter()
                .map(|(k, l)| def(cfg, k, l))
                .collect(),
        }
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.defs.len()
    }

    /// Whether the list is empty (never, for a valid config).
    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    /// The tensors, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, TextParamDef> {
        self.defs.iter()
    }

    /// Tensor `i`.
    pub fn get(&self, i: usize) -> Option<&TextParamDef> {
        self.defs.get(i)
    }
}

impl<'a> IntoIterator for &'a TextParamList {
    type Item = &'a TextParamDef;
    type IntoIter = std::slice::Iter<'a, TextParamDef>;
    fn into_iter(self) -> Self::IntoIter {
        self.defs.iter()
    }
}

/// One tensor of a [`TextWeights`], read-only, in list order (`None`: an absent optional one).
pub(crate) struct TextSlot<'a> {
    pub(crate) key: TextParamKey,
    pub(crate) data: Option<&'a [f32]>,
    /// `(out_dim, in_dim)` of the linear map whose weight it is.
    pub(crate) dims: Option<(usize, usize)>,
}

/// One tensor of a [`TextWeights`], mutable.
pub(crate) struct TextSlotMut<'a> {
    pub(crate) key: TextParamKey,
    pub(crate) data: DataMut<'a>,
    pub(crate) dims: Option<(&'a mut usize, &'a mut usize)>,
}

/// Declares THE text list: the table `TEXT_KINDS` and the walks over [`TextWeights`] that
/// yield its tensors in the same order, read-only and mutable, from one set of rows.
///
/// A section is `tower` (fields of [`TextWeights`]), `block` (fields of one
/// [`crate::ResidualBlock`], repeated for every block) or `root`; a row is
/// `req|opt|may [path] field => Module Part Role, shape, OpenAI, Hugging Face;` with `req` a
/// `Vec<f32>` field, `opt` an `Option<Vec<f32>>` field every checkpoint has (a bias), `may` one
/// a checkpoint may lack (`logit_scale`).
macro_rules! text_tensor_list {
    (
        $( $scope:ident {
            $( $req:ident [$($p:ident).*] $f:ident => $module:ident $part:ident $role:ident,
               $shape:expr, $oa:expr, $hf:expr ; )*
        } )*
    ) => {
        /// The kinds of tensor, in list order (blocks: the rows of one block).
        pub(crate) const TEXT_KINDS: &[TextKind] = &[ $( $(
            TextKind {
                module: TextModule::$module,
                part: Part::$part,
                role: TextRole::$role,
                scope: text_tensor_list!(@scope $scope),
                shape: $shape,
                optional: text_tensor_list!(@optional $req),
                openai: $oa,
                hf: $hf,
            },
        )* )* ];

        impl TextWeights {
            /// Every tensor, in list order, read-only (absent optional tensors included).
            pub(crate) fn slots(&self) -> Vec<TextSlot<'_>> {
                let w = self;
                let mut out = Vec::new();
                $( text_tensor_list!(@section ref w out $scope {
                    $( $req [$($p).*] $f $module $part $role; )*
                }); )*
                out
            }

            /// Every tensor, in list order, mutable (absent optional tensors included).
            pub(crate) fn slots_mut(&mut self) -> Vec<TextSlotMut<'_>> {
                let w = self;
                let mut out = Vec::new();
                $( text_tensor_list!(@section mut w out $scope {
                    $( $req [$($p).*] $f $module $part $role; )*
                }); )*
                out
            }
        }
    };
    (@scope tower) => { TextScope::Tower };
    (@scope block) => { TextScope::Block };
    (@scope root) => { TextScope::Root };
    (@optional may) => { true };
    (@optional $req:ident) => { false };
    (@section $r:tt $w:ident $out:ident block {
        $( $req:ident [$($p:ident).*] $f:ident $module:ident $part:ident $role:ident; )*
    }) => {
        for (i, b) in text_tensor_list!(@borrow $r $w.resblocks).into_iter().enumerate() {
            $( $out.push(text_tensor_list!(@slot $r $req (b $(.$p)*) $f $module $part $role Some(i))); )*
        }
    };
    (@section $r:tt $w:ident $out:ident $scope:ident {
        $( $req:ident [$($p:ident).*] $f:ident $module:ident $part:ident $role:ident; )*
    }) => {
        $( $out.push(text_tensor_list!(@slot $r $req ($w $(.$p)*) $f $module $part $role None)); )*
    };
    (@borrow ref $e:expr) => { &$e };
    (@borrow mut $e:expr) => { &mut $e };
    (@key $module:ident $part:ident $layer:expr) => {
        TextParamKey { module: TextModule::$module, part: Part::$part, layer: $layer }
    };
    (@slot ref $req:ident $base:tt $f:ident $module:ident $part:ident $role:ident $layer:expr) => {
        TextSlot {
            key: text_tensor_list!(@key $module $part $layer),
            data: text_tensor_list!(@get $req $base.$f),
            dims: text_tensor_list!(@dims ref $part $role $base),
        }
    };
    (@slot mut $req:ident $base:tt $f:ident $module:ident $part:ident $role:ident $layer:expr) => {
        TextSlotMut {
            key: text_tensor_list!(@key $module $part $layer),
            data: text_tensor_list!(@data $req $base.$f),
            dims: text_tensor_list!(@dims mut $part $role $base),
        }
    };
    (@get req $e:expr) => { Some(&$e[..]) };
    (@get opt $e:expr) => { $e.as_deref() };
    (@get may $e:expr) => { $e.as_deref() };
    (@dims ref Weight Linear $base:tt) => { Some(($base.out_dim, $base.in_dim)) };
    (@dims mut Weight Linear $base:tt) => { Some((&mut $base.out_dim, &mut $base.in_dim)) };
    (@dims $r:tt $part:ident $role:ident $base:tt) => { None };
    (@data req $e:expr) => { DataMut::Required(&mut $e) };
    (@data opt $e:expr) => { DataMut::Optional(&mut $e) };
    (@data may $e:expr) => { DataMut::Optional(&mut $e) };
}

use Stored::{Same, SplitQkv, Transposed};

text_tensor_list! {
    tower {
        // Before the blocks. OpenAI names follow the text prefix, Hugging Face names the root.
        req [] token_embedding => TokenEmbedding Weight Embedding,
            |c| vec![c.vocab_size, c.width],
            Same("token_embedding.weight"), Same("text_model.embeddings.token_embedding.weight");
        req [] positional_embedding => PositionalEmbedding Weight Embedding,
            |c| vec![c.context_length, c.width],
            Same("positional_embedding"), Same("text_model.embeddings.position_embedding.weight");
    }
    block {
        // One residual block (the vision tower's block type); names follow the block prefix.
        req [ln_1] weight => Ln1 Weight LayerNorm,
            |c| vec![c.width], Same("ln_1.weight"), Same("layer_norm1.weight");
        req [ln_1] bias => Ln1 Bias LayerNorm,
            |c| vec![c.width], Same("ln_1.bias"), Same("layer_norm1.bias");
        req [ln_2] weight => Ln2 Weight LayerNorm,
            |c| vec![c.width], Same("ln_2.weight"), Same("layer_norm2.weight");
        req [ln_2] bias => Ln2 Bias LayerNorm,
            |c| vec![c.width], Same("ln_2.bias"), Same("layer_norm2.bias");
        req [attn_in_proj] weight => AttnInProj Weight Linear,
            |c| vec![3 * c.width, c.width],
            Same("attn.in_proj_weight"), SplitQkv("self_attn.{}_proj.weight");
        opt [attn_in_proj] bias => AttnInProj Bias Linear,
            |c| vec![3 * c.width],
            Same("attn.in_proj_bias"), SplitQkv("self_attn.{}_proj.bias");
        req [attn_out_proj] weight => AttnOutProj Weight Linear,
            |c| vec![c.width, c.width],
            Same("attn.out_proj.weight"), Same("self_attn.out_proj.weight");
        opt [attn_out_proj] bias => AttnOutProj Bias Linear,
            |c| vec![c.width], Same("attn.out_proj.bias"), Same("self_attn.out_proj.bias");
        req [mlp_c_fc] weight => MlpFc Weight Linear,
            |c| vec![c.mlp_dim, c.width], Same("mlp.c_fc.weight"), Same("mlp.fc1.weight");
        opt [mlp_c_fc] bias => MlpFc Bias Linear,
            |c| vec![c.mlp_dim], Same("mlp.c_fc.bias"), Same("mlp.fc1.bias");
        req [mlp_c_proj] weight => MlpProj Weight Linear,
            |c| vec![c.width, c.mlp_dim], Same("mlp.c_proj.weight"), Same("mlp.fc2.weight");
        opt [mlp_c_proj] bias => MlpProj Bias Linear,
            |c| vec![c.width], Same("mlp.c_proj.bias"), Same("mlp.fc2.bias");
    }
    tower {
        // After the blocks.
        req [ln_final] weight => LnFinal Weight LayerNorm,
            |c| vec![c.width], Same("ln_final.weight"), Same("text_model.final_layer_norm.weight");
        req [ln_final] bias => LnFinal Bias LayerNorm,
            |c| vec![c.width], Same("ln_final.bias"), Same("text_model.final_layer_norm.bias");
        req [text_projection] weight => TextProjection Weight Linear,
            |c| vec![c.embed_dim, c.width],
            Transposed("text_projection"), Same("text_projection.weight");
    }
    root {
        // CLIP's temperature, a scalar at the model's root.
        may [] logit_scale => LogitScale Weight Scale,
            |_| vec![], Same("logit_scale"), Same("logit_scale");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::TextWeights;

    fn cfg() -> TextConfig {
        TextConfig {
            vocab_size: 50,
            context_length: 7,
            width: 16,
            layers: 2,
            heads: 2,
            mlp_dim: 24,
            embed_dim: 8,
            layer_norm_eps: 1e-5,
            activation: Default::default(),
        }
    }

    /// The list against the checkpoints' names, written out by hand (open_clip's `CLIP` state
    /// dict and transformers' `CLIPModel` text part), shapes as the checkpoints store them.
    #[test]
    fn the_list_has_every_tensor_of_both_namings() {
        let c = cfg();
        let list = TextParamList::new(&c);
        let oa = TextNaming::OpenAi {
            prefix: String::new(),
            root: String::new(),
        };
        let hf = TextNaming::HuggingFace {
            root: String::new(),
        };
        let tensors = |n: &TextNaming| -> Vec<(String, Vec<usize>)> {
            list.iter().flat_map(|d| d.checkpoint_tensors(n)).collect()
        };
        let mut want = vec![
            ("token_embedding.weight".to_string(), vec![50, 16]),
            ("positional_embedding".to_string(), vec![7, 16]),
        ];
        let mut want_hf = vec![
            (
                "text_model.embeddings.token_embedding.weight".to_string(),
                vec![50, 16],
            ),
            (
                "text_model.embeddings.position_embedding.weight".to_string(),
                vec![7, 16],
            ),
        ];
        for i in 0..2 {
            let b = format!("transformer.resblocks.{i}.");
            for (n, s) in [
                ("ln_1.weight", vec![16]),
                ("ln_1.bias", vec![16]),
                ("ln_2.weight", vec![16]),
                ("ln_2.bias", vec![16]),
                ("attn.in_proj_weight", vec![48, 16]),
                ("attn.in_proj_bias", vec![48]),
                ("attn.out_proj.weight", vec![16, 16]),
                ("attn.out_proj.bias", vec![16]),
                ("mlp.c_fc.weight", vec![24, 16]),
                ("mlp.c_fc.bias", vec![24]),
                ("mlp.c_proj.weight", vec![16, 24]),
                ("mlp.c_proj.bias", vec![16]),
            ] {
                want.push((format!("{b}{n}"), s));
            }
            let b = format!("text_model.encoder.layers.{i}.");
            for (n, s) in [
                ("layer_norm1.weight", vec![16]),
                ("layer_norm1.bias", vec![16]),
                ("layer_norm2.weight", vec![16]),
                ("layer_norm2.bias", vec![16]),
                ("self_attn.q_proj.weight", vec![16, 16]),
                ("self_attn.k_proj.weight", vec![16, 16]),
                ("self_attn.v_proj.weight", vec![16, 16]),
                ("self_attn.q_proj.bias", vec![16]),
                ("self_attn.k_proj.bias", vec![16]),
                ("self_attn.v_proj.bias", vec![16]),
                ("self_attn.out_proj.weight", vec![16, 16]),
                ("self_attn.out_proj.bias", vec![16]),
                ("mlp.fc1.weight", vec![24, 16]),
                ("mlp.fc1.bias", vec![24]),
                ("mlp.fc2.weight", vec![16, 24]),
                ("mlp.fc2.bias", vec![16]),
            ] {
                want_hf.push((format!("{b}{n}"), s));
            }
        }
        want.extend([
            ("ln_final.weight".to_string(), vec![16]),
            ("ln_final.bias".to_string(), vec![16]),
            ("text_projection".to_string(), vec![16, 8]),
            ("logit_scale".to_string(), vec![]),
        ]);
        want_hf.extend([
            ("text_model.final_layer_norm.weight".to_string(), vec![16]),
            ("text_model.final_layer_norm.bias".to_string(), vec![16]),
            ("text_projection.weight".to_string(), vec![8, 16]),
            ("logit_scale".to_string(), vec![]),
        ]);
        assert_eq!(tensors(&oa), want);
        assert_eq!(tensors(&hf), want_hf);
        // The weights' walk visits the same tensors in the same order, with these sizes.
        let w = TextWeights::random(&c, 1).unwrap();
        let sizes: Vec<usize> = w.params().iter().map(|p| p.len()).collect();
        let want_sizes: Vec<usize> = list.iter().map(TextParamDef::numel).collect();
        assert_eq!(sizes, want_sizes);
        let keys: Vec<TextParamKey> = w.slots().iter().map(|s| s.key).collect();
        assert_eq!(keys, list.iter().map(|d| d.key).collect::<Vec<_>>());
    }
}
