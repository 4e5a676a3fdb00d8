//! The one list of a CLIP ViT classifier's tensors.
//!
//! Every consumer of "all the parameters" is derived from the table at the end of this file
//! ([`clip_tensor_list!`]): one row per kind of tensor, giving
//!
//! * where it lives in [`ClipWeights`] (the field path),
//! * what it is ([`Module`], [`Part`], [`Role`]) and whether it belongs to the encoder or the
//!   head ([`Group`]),
//! * its shape as a function of [`VitConfig`], as [`ClipWeights`] stores it (a linear map as
//!   `[out, in]`),
//! * how each checkpoint naming stores it ([`Stored`]: the name, and whether the tensor is a
//!   conv weight, transposed, or split into q, k, v),
//! * optionally, when it is present (a tensor that only some configs have).
//!
//! From it: [`ClipWeights::params`] / [`ClipWeights::params_mut`] (merges),
//! [`ClipWeights::encoder_params`] (multi-task merges), [`ClipWeights::load`] and
//! [`ClipWeights::encoder_specs`] (both namings), [`ClipWeights::to_tensor_map`] (saving),
//! [`ClipWeights::check`], [`ClipWeights::random`], the [`crate::BlendedWeights`] stacks and
//! the CUDA forward's parameter arena and the tensors each launch reads. [`ParamList`] is the
//! list expanded for one config (blocks repeated `layers` times). Adding a tensor kind (e.g.
//! LayerScale's `ls_1.gamma`) means adding its field to the weight struct and one row here.

use std::collections::HashMap;

use crate::config::VitConfig;
use crate::tensors::TensorSource;
use crate::weights::{CheckpointNaming, ClipWeights};

/// What a tensor parametrises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Module {
    /// The patch embedding, a linear map of the flattened patches (`conv1`, no bias).
    PatchEmbedding,
    /// The class token.
    ClassEmbedding,
    /// The positional embedding, one row per token.
    PositionalEmbedding,
    /// The layer norm before the blocks (`ln_pre`).
    LnPre,
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
    /// A block's LayerScale of the attention branch (`ls_1.gamma`, open_clip's
    /// `ls_init_value`): `x += γ1 ⊙ attn(ln_1(x))`.
    Ls1,
    /// A block's LayerScale of the MLP branch (`ls_2.gamma`): `x += γ2 ⊙ mlp(ln_2(x))`.
    Ls2,
    /// The layer norm of the class token (`ln_post`).
    LnPost,
    /// The projection to the embedding (`proj`, no bias).
    Proj,
    /// The classification head.
    Head,
}

/// Which tensor of its module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    /// A weight matrix, a norm's scale, or an embedding's values.
    Weight,
    /// A bias, or a norm's shift.
    Bias,
}

/// How the forward uses a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Added to the tokens (class and positional embeddings).
    Embedding,
    /// A layer norm's scale or shift.
    LayerNorm,
    /// A linear map's weight `[out, in]` or bias `[out]`.
    Linear,
    /// A per-channel factor `[width]` of a residual branch (LayerScale's γ).
    LayerScale,
}

/// Which part of the classifier a tensor belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Group {
    /// The image encoder (merged by the multi-task methods).
    Encoder,
    /// The classification head (one per task in the multi-task setting).
    Head,
}

/// Where a kind of tensor sits, which decides its name prefix in a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Scope {
    /// Once per tower (embeddings, `ln_pre`, `ln_post`, `proj`).
    Tower,
    /// Once per residual block.
    Block,
    /// Once, in the classification head.
    Head,
}

impl Scope {
    pub(crate) fn group(self) -> Group {
        match self {
            Scope::Head => Group::Head,
            Scope::Tower | Scope::Block => Group::Encoder,
        }
    }
}

/// How a checkpoint naming stores a tensor, relative to the layout of [`ClipWeights`].
///
/// Names are relative to the naming's prefix: for OpenAI, `{prefix}` (ending in `visual.`) for
/// the tower and `{prefix}transformer.resblocks.{i}.` for a block; for Hugging Face, the root
/// (usually empty) for the tower and `{root}vision_model.encoder.layers.{i}.` for a block; the
/// head's names are relative to where `classification_head.weight` is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// One tensor of the same shape.
    Same(&'static str),
    /// One conv weight `[out, 3, P, P]`: the `[out, 3·P·P]` matrix, same values in the same order.
    Conv(&'static str),
    /// One tensor `[in, out]`, the transpose of the `[out, in]` matrix (OpenAI's `proj`, used as
    /// `x @ proj`).
    Transposed(&'static str),
    /// Three tensors, each a third of the rows (q, k, v), named by replacing `{}` with `q`, `k`,
    /// `v` (Hugging Face's `self_attn.{q,k,v}_proj`).
    SplitQkv(&'static str),
}

impl Stored {
    /// The name (the template, for [`Stored::SplitQkv`]).
    pub fn name(&self) -> &'static str {
        match *self {
            Stored::Same(n) | Stored::Conv(n) | Stored::Transposed(n) | Stored::SplitQkv(n) => n,
        }
    }
}

/// One row of the list: a kind of tensor (expanded per block by [`ParamList`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct TensorKind {
    pub(crate) module: Module,
    pub(crate) part: Part,
    pub(crate) role: Role,
    pub(crate) scope: Scope,
    /// Shape as [`ClipWeights`] stores it.
    pub(crate) shape: fn(&VitConfig) -> Vec<usize>,
    /// Whether a model of this config has the tensor.
    pub(crate) present: fn(&VitConfig) -> bool,
    pub(crate) openai: Stored,
    pub(crate) hf: Stored,
}

/// The identity of one tensor: its module, its part, and its block for per-block tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamKey {
    /// What it parametrises.
    pub module: Module,
    /// Which tensor of the module.
    pub part: Part,
    /// The block, for per-block tensors.
    pub layer: Option<usize>,
}

impl ParamKey {
    /// A tensor of the tower or the head.
    pub const fn new(module: Module, part: Part) -> Self {
        ParamKey {
            module,
            part,
            layer: None,
        }
    }

    /// A tensor of block `layer`.
    pub const fn block(module: Module, part: Part, layer: usize) -> Self {
        ParamKey {
            module,
            part,
            layer: Some(layer),
        }
    }
}

/// One tensor of a model of a given config.
#[derive(Clone, Debug)]
pub struct ParamDef {
    /// Which tensor.
    pub key: ParamKey,
    /// How the forward uses it.
    pub role: Role,
    /// Encoder or head.
    pub group: Group,
    /// Shape as [`ClipWeights`] stores it (`[out, in]` for a linear map).
    pub shape: Vec<usize>,
    kind: &'static TensorKind,
    patch_size: usize,
}

impl ParamDef {
    /// Number of values, the product of the shape.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The name in the OpenAI naming without prefix, e.g. `conv1.weight`,
    /// `transformer.resblocks.3.attn.in_proj_weight`, `proj`, `classification_head.bias` (the
    /// names of the CUDA forward's parameter arena).
    pub fn name(&self) -> String {
        self.naming_tensors(&CheckpointNaming::OpenAi {
            prefix: String::new(),
        })
        .remove(0)
        .0
    }

    /// How a checkpoint in `naming` stores it (the head's names relative to the root where
    /// `classification_head.weight` is found, see [`ParamDef::checkpoint_tensors`]).
    pub fn stored(&self, naming: &CheckpointNaming) -> Stored {
        match naming {
            CheckpointNaming::OpenAi { .. } => self.kind.openai,
            CheckpointNaming::HuggingFace { .. } => self.kind.hf,
        }
    }

    /// The checkpoint tensors (name, shape) that hold it in `naming`, in stacking order; the
    /// head's names are given relative to `head_root`.
    pub fn checkpoint_tensors(
        &self,
        naming: &CheckpointNaming,
        head_root: &str,
    ) -> Vec<(String, Vec<usize>)> {
        let prefix = match (self.kind.scope, naming, self.key.layer) {
            (Scope::Head, _, _) => head_root.to_string(),
            (Scope::Tower, CheckpointNaming::OpenAi { prefix }, _) => prefix.clone(),
            (Scope::Tower, CheckpointNaming::HuggingFace { root }, _) => root.clone(),
            (Scope::Block, n, i) => format!("{}{}.", n.block_prefix(), i.unwrap_or(0)),
        };
        let s = &self.shape;
        match self.stored(naming) {
            Stored::Same(n) => vec![(format!("{prefix}{n}"), s.clone())],
            Stored::Conv(n) => {
                let p = self.patch_size;
                vec![(format!("{prefix}{n}"), vec![s[0], 3, p, p])]
            }
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

    fn naming_tensors(&self, naming: &CheckpointNaming) -> Vec<(String, Vec<usize>)> {
        self.checkpoint_tensors(naming, "")
    }
}

/// The tensors of a CLIP ViT classifier of one config, in the order of
/// [`ClipWeights::params`]: the tower's embeddings and `ln_pre`, each block's tensors, `ln_post`
/// and `proj`, then the head.
///
/// ```
/// use dawin_vit::{Module, ParamKey, ParamList, Part, VitConfig};
///
/// let list = ParamList::new(&VitConfig::vit_b32(1000));
/// assert_eq!(list.len(), 5 + 12 * 12 + 3 + 2);
/// let i = list.index_of(&ParamKey::block(Module::AttnInProj, Part::Weight, 3)).unwrap();
/// assert_eq!(list.get(i).unwrap().name(), "transformer.resblocks.3.attn.in_proj_weight");
/// assert_eq!(list.get(i).unwrap().shape, vec![3 * 768, 768]);
/// ```
#[derive(Clone, Debug)]
pub struct ParamList {
    defs: Vec<ParamDef>,
    index: HashMap<ParamKey, usize>,
}

/// Every row of the table expanded for `layers` blocks, absent tensors included, in list order.
pub(crate) fn expand(layers: usize) -> Vec<(&'static TensorKind, Option<usize>)> {
    let mut out = Vec::new();
    let mut k = 0;
    while k < KINDS.len() {
        if KINDS[k].scope == Scope::Block {
            let run = KINDS[k..]
                .iter()
                .take_while(|x| x.scope == Scope::Block)
                .count();
            for i in 0..layers {
                out.extend(KINDS[k..k + run].iter().map(|kind| (kind, Some(i))));
            }
            k += run;
        } else {
            out.push((&KINDS[k], None));
            k += 1;
        }
    }
    out
}

pub(crate) fn def(cfg: &VitConfig, kind: &'static TensorKind, layer: Option<usize>) -> ParamDef {
    ParamDef {
        key: ParamKey {
            module: kind.module,
            part: kind.part,
            layer,
        },
        role: kind.role,
        group: kind.scope.group(),
        shape: (kind.shape)(cfg),
        kind,
        patch_size: cfg.patch_size,
    }
}

impl ParamList {
    /// The list for `cfg`: the tensors a model of this config has.
    pub fn new(cfg: &VitConfig) -> Self {
        let defs: Vec<ParamDef> = expand(cfg.layers)
            .into_iter()
            .filter(|(kind, _)| (kind.present)(cfg))
            .map(|(kind, layer)| def(cfg, kind, layer))
            .collect();
        let index = defs.iter().enumerate().map(|(i, d)| (d.key, i)).collect();
        ParamList { defs, index }
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.defs.len()
    }

    /// True when the list is empty (never, for a valid config).
    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    /// The tensors, in list order.
    pub fn iter(&self) -> std::slice::Iter<'_, ParamDef> {
        self.defs.iter()
    }

    /// Tensor `i`.
    pub fn get(&self, i: usize) -> Option<&ParamDef> {
        self.defs.get(i)
    }

    /// The position of a tensor in the list (and in [`ClipWeights::params`]).
    pub fn index_of(&self, key: &ParamKey) -> Option<usize> {
        self.index.get(key).copied()
    }

    /// The tensors of one group, in list order.
    pub fn group(&self, group: Group) -> impl Iterator<Item = &ParamDef> {
        self.defs.iter().filter(move |d| d.group == group)
    }
}

/// Checks, before loading, that `src` holds the tensors that only some configs have (LayerScale's
/// `ls_1.gamma` / `ls_2.gamma` when `cfg.layer_scale`): an error names every missing one (the
/// first 6 and a count) and says why they are needed.
pub(crate) fn check_config_tensors(
    cfg: &VitConfig,
    naming: &CheckpointNaming,
    src: &dyn TensorSource,
) -> crate::Result<()> {
    if !cfg.layer_scale {
        return Ok(());
    }
    let names: std::collections::HashSet<&str> = src.tensor_names().into_iter().collect();
    let missing: Vec<String> = ParamList::new(cfg)
        .iter()
        .filter(|d| matches!(d.key.module, Module::Ls1 | Module::Ls2))
        .flat_map(|d| d.checkpoint_tensors(naming, ""))
        .map(|(n, _)| n)
        .filter(|n| !names.contains(n.as_str()))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = missing.iter().take(6).map(|n| format!("`{n}`")).collect();
    let more = match missing.len() {
        n if n > 6 => format!(" and {} more", n - 6),
        _ => String::new(),
    };
    let hf = match naming {
        CheckpointNaming::HuggingFace { .. } => {
            " (Hugging Face's CLIP has no LayerScale: a checkpoint in its naming holds them \
             only if written by this tool)"
        }
        CheckpointNaming::OpenAi { .. } => "",
    };
    Err(crate::Error::Config(format!(
        "the config has LayerScale (layer_scale = true), but {} lacks {} of its {} factors: \
         {}{more}{hf}; load it with layer_scale = false if the tower has none",
        src.source_name(),
        missing.len(),
        2 * cfg.layers,
        shown.join(", ")
    )))
}

impl<'a> IntoIterator for &'a ParamList {
    type Item = &'a ParamDef;
    type IntoIter = std::slice::Iter<'a, ParamDef>;
    fn into_iter(self) -> Self::IntoIter {
        self.defs.iter()
    }
}

// ---------------------------------------------------------------------------------------------
// Where each tensor lives in ClipWeights.

/// One tensor of a [`ClipWeights`], read-only, in list order ([`ClipWeights::slots`]).
pub(crate) struct Slot<'a> {
    pub(crate) key: ParamKey,
    pub(crate) scope: Scope,
    /// `None` for an optional tensor that is absent.
    pub(crate) data: Option<&'a [f32]>,
    /// `(out_dim, in_dim)` of the linear map whose weight it is.
    pub(crate) dims: Option<(usize, usize)>,
}

/// The storage of one tensor of a [`ClipWeights`], mutable.
pub(crate) enum DataMut<'a> {
    /// A tensor every model has.
    Required(&'a mut Vec<f32>),
    /// A tensor only some configs have (or an optional bias).
    Optional(&'a mut Option<Vec<f32>>),
}

impl<'a> DataMut<'a> {
    /// The values, `None` for an absent optional tensor.
    pub(crate) fn into_slice(self) -> Option<&'a mut [f32]> {
        match self {
            DataMut::Required(v) => Some(v),
            DataMut::Optional(v) => v.as_deref_mut(),
        }
    }

    /// Replaces the values (`None`: absent; a required tensor then becomes empty).
    pub(crate) fn set(&mut self, values: Option<Vec<f32>>) {
        match self {
            DataMut::Required(v) => **v = values.unwrap_or_default(),
            DataMut::Optional(v) => **v = values,
        }
    }
}

/// One tensor of a [`ClipWeights`], mutable ([`ClipWeights::slots_mut`]); `dims` are the
/// `(out_dim, in_dim)` fields of the linear map whose weight it is.
pub(crate) struct SlotMut<'a> {
    pub(crate) key: ParamKey,
    pub(crate) scope: Scope,
    pub(crate) data: DataMut<'a>,
    pub(crate) dims: Option<(&'a mut usize, &'a mut usize)>,
}

/// Declares THE list: the table of tensor kinds `KINDS` and the walks over [`ClipWeights`]
/// that yield its tensors in the same order, read-only and mutable, from one set of rows.
///
/// A section is `tower`, `block` (the rows of one residual block, repeated for every block)
/// or `head`; a row is
/// `req|opt [path] field => Module Part Role, shape, OpenAI, Hugging Face [, if present];`
/// with `path` the field path of the module (relative to `visual`, to the block, or to
/// `head`), `opt` for an `Option<Vec<f32>>` field, `shape` a `fn(&VitConfig) -> Vec<usize>`,
/// the two [`Stored`] forms, and `present` a `fn(&VitConfig) -> bool` for tensors only some
/// configs have.
macro_rules! clip_tensor_list {
    (
        $( $scope:ident {
            $( $req:ident [$($p:ident).*] $f:ident => $module:ident $part:ident $role:ident,
               $shape:expr, $oa:expr, $hf:expr $(, if $present:expr)? ; )*
        } )*
    ) => {
        /// The kinds of tensor, in list order (blocks: the rows of one block).
        pub(crate) const KINDS: &[TensorKind] = &[ $( $(
            TensorKind {
                module: Module::$module,
                part: Part::$part,
                role: Role::$role,
                scope: clip_tensor_list!(@scope $scope),
                shape: $shape,
                present: clip_tensor_list!(@present $($present)?),
                openai: $oa,
                hf: $hf,
            },
        )* )* ];

        impl ClipWeights {
            /// Every tensor, in list order, read-only (absent optional tensors included).
            pub(crate) fn slots(&self) -> Vec<Slot<'_>> {
                let w = self;
                let mut out = Vec::with_capacity(KINDS.len() * w.visual.resblocks.len().max(1));
                $( clip_tensor_list!(@section ref w out $scope {
                    $( $req [$($p).*] $f $module $part $role; )*
                }); )*
                out
            }

            /// Every tensor, in list order, mutable (absent optional tensors included).
            pub(crate) fn slots_mut(&mut self) -> Vec<SlotMut<'_>> {
                let w = self;
                let mut out = Vec::with_capacity(KINDS.len() * w.visual.resblocks.len().max(1));
                $( clip_tensor_list!(@section mut w out $scope {
                    $( $req [$($p).*] $f $module $part $role; )*
                }); )*
                out
            }
        }
    };
    (@scope tower) => { Scope::Tower };
    (@scope block) => { Scope::Block };
    (@scope head) => { Scope::Head };
    (@present) => { |_| true };
    (@present $p:expr) => { $p };
    (@section $r:tt $w:ident $out:ident tower {
        $( $req:ident [$($p:ident).*] $f:ident $module:ident $part:ident $role:ident; )*
    }) => {
        $( $out.push(clip_tensor_list!(@slot $r $req ($w.visual $(.$p)*) $f
            $module $part $role Tower None)); )*
    };
    (@section $r:tt $w:ident $out:ident block {
        $( $req:ident [$($p:ident).*] $f:ident $module:ident $part:ident $role:ident; )*
    }) => {
        for (i, b) in clip_tensor_list!(@borrow $r $w.visual.resblocks).into_iter().enumerate() {
            $( $out.push(clip_tensor_list!(@slot $r $req (b $(.$p)*) $f
                $module $part $role Block Some(i))); )*
        }
    };
    (@section $r:tt $w:ident $out:ident head {
        $( $req:ident [$($p:ident).*] $f:ident $module:ident $part:ident $role:ident; )*
    }) => {
        $( $out.push(clip_tensor_list!(@slot $r $req ($w.head $(.$p)*) $f
            $module $part $role Head None)); )*
    };
    (@borrow ref $e:expr) => { &$e };
    (@borrow mut $e:expr) => { &mut $e };
    (@key $module:ident $part:ident $layer:expr) => {
        ParamKey { module: Module::$module, part: Part::$part, layer: $layer }
    };
    (@slot ref $req:ident $base:tt $f:ident $module:ident $part:ident $role:ident $scope:ident $layer:expr) => {
        Slot {
            key: clip_tensor_list!(@key $module $part $layer),
            scope: Scope::$scope,
            data: clip_tensor_list!(@get $req $base.$f),
            dims: clip_tensor_list!(@dims ref $part $role $base),
        }
    };
    (@slot mut $req:ident $base:tt $f:ident $module:ident $part:ident $role:ident $scope:ident $layer:expr) => {
        SlotMut {
            key: clip_tensor_list!(@key $module $part $layer),
            scope: Scope::$scope,
            data: clip_tensor_list!(@data $req $base.$f),
            dims: clip_tensor_list!(@dims mut $part $role $base),
        }
    };
    (@get req $e:expr) => { Some(&$e[..]) };
    (@get opt $e:expr) => { $e.as_deref() };
    (@dims ref Weight Linear $base:tt) => { Some(($base.out_dim, $base.in_dim)) };
    (@dims mut Weight Linear $base:tt) => { Some((&mut $base.out_dim, &mut $base.in_dim)) };
    (@dims $r:tt $part:ident $role:ident $base:tt) => { None };
    (@data req $e:expr) => { DataMut::Required(&mut $e) };
    (@data opt $e:expr) => { DataMut::Optional(&mut $e) };
}

use Stored::{Conv, Same, SplitQkv, Transposed};

clip_tensor_list! {
    tower {
        // Before the blocks. Paths are relative to `ClipWeights::visual`; OpenAI names follow
        // the prefix (`visual.`), Hugging Face names the root.
        req [conv1] weight => PatchEmbedding Weight Linear,
            |c| vec![c.width, c.patch_dim()],
            Conv("conv1.weight"), Conv("vision_model.embeddings.patch_embedding.weight");
        req [] class_embedding => ClassEmbedding Weight Embedding,
            |c| vec![c.width],
            Same("class_embedding"), Same("vision_model.embeddings.class_embedding");
        req [] positional_embedding => PositionalEmbedding Weight Embedding,
            |c| vec![c.num_tokens(), c.width],
            Same("positional_embedding"), Same("vision_model.embeddings.position_embedding.weight");
        req [ln_pre] weight => LnPre Weight LayerNorm,
            |c| vec![c.width], Same("ln_pre.weight"), Same("vision_model.pre_layrnorm.weight");
        req [ln_pre] bias => LnPre Bias LayerNorm,
            |c| vec![c.width], Same("ln_pre.bias"), Same("vision_model.pre_layrnorm.bias");
    }
    block {
        // One residual block; paths relative to the block, names to the block prefix.
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
        // LayerScale (open_clip's `ls_init_value`), only in configs with `layer_scale`.
        // Hugging Face's CLIP has none: a Hugging Face checkpoint of such a config must carry
        // them under the block prefix with open_clip's names (as `to_tensor_map` writes them).
        opt [] ls_1 => Ls1 Weight LayerScale,
            |c| vec![c.width], Same("ls_1.gamma"), Same("ls_1.gamma"), if |c| c.layer_scale;
        opt [] ls_2 => Ls2 Weight LayerScale,
            |c| vec![c.width], Same("ls_2.gamma"), Same("ls_2.gamma"), if |c| c.layer_scale;
    }
    tower {
        // After the blocks.
        req [ln_post] weight => LnPost Weight LayerNorm,
            |c| vec![c.width], Same("ln_post.weight"), Same("vision_model.post_layernorm.weight");
        req [ln_post] bias => LnPost Bias LayerNorm,
            |c| vec![c.width], Same("ln_post.bias"), Same("vision_model.post_layernorm.bias");
        req [proj] weight => Proj Weight Linear,
            |c| vec![c.embed_dim, c.width],
            Transposed("proj"), Same("visual_projection.weight");
    }
    head {
        // Paths relative to `ClipWeights::head`.
        req [] weight => Head Weight Linear,
            |c| vec![c.num_classes, c.embed_dim],
            Same("classification_head.weight"), Same("classification_head.weight");
        opt [] bias => Head Bias Linear,
            |c| vec![c.num_classes],
            Same("classification_head.bias"), Same("classification_head.bias");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensors::TensorSource;
    use crate::BlendedWeights;

    fn cfg() -> VitConfig {
        VitConfig {
            image_size: 24,
            patch_size: 6,
            width: 64,
            layers: 3,
            heads: 2,
            mlp_dim: 96,
            embed_dim: 24,
            num_classes: 5,
            layer_norm_eps: 1e-5,
            activation: Default::default(),
            layer_scale: false,
        }
    }

    fn namings() -> [CheckpointNaming; 2] {
        [
            CheckpointNaming::OpenAi {
                prefix: "visual.".into(),
            },
            CheckpointNaming::HuggingFace {
                root: String::new(),
            },
        ]
    }

    /// The list itself, against the architecture as the paper and the checkpoints define it
    /// (written out by hand here, independently of the table).
    #[test]
    fn the_list_has_every_tensor_of_the_architecture() {
        let c = cfg();
        let list = ParamList::new(&c);
        assert_eq!(list.len(), 5 + 12 * c.layers + 3 + 2);
        let names: Vec<String> = list.iter().map(ParamDef::name).collect();
        let mut want: Vec<String> = [
            "conv1.weight",
            "class_embedding",
            "positional_embedding",
            "ln_pre.weight",
            "ln_pre.bias",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for i in 0..c.layers {
            for t in [
                "ln_1.weight",
                "ln_1.bias",
                "ln_2.weight",
                "ln_2.bias",
                "attn.in_proj_weight",
                "attn.in_proj_bias",
                "attn.out_proj.weight",
                "attn.out_proj.bias",
                "mlp.c_fc.weight",
                "mlp.c_fc.bias",
                "mlp.c_proj.weight",
                "mlp.c_proj.bias",
            ] {
                want.push(format!("transformer.resblocks.{i}.{t}"));
            }
        }
        for t in [
            "ln_post.weight",
            "ln_post.bias",
            "proj",
            "classification_head.weight",
            "classification_head.bias",
        ] {
            want.push(t.to_string());
        }
        assert_eq!(names, want);
        // Shapes of the tensors with the most structure, and the groups.
        let shape = |k: ParamKey| list.get(list.index_of(&k).unwrap()).unwrap().shape.clone();
        let (w, m) = (c.width, c.mlp_dim);
        assert_eq!(
            shape(ParamKey::new(Module::PatchEmbedding, Part::Weight)),
            [w, 108]
        );
        assert_eq!(
            shape(ParamKey::block(Module::AttnInProj, Part::Weight, 2)),
            [3 * w, w]
        );
        assert_eq!(
            shape(ParamKey::block(Module::MlpProj, Part::Weight, 0)),
            [w, m]
        );
        assert_eq!(shape(ParamKey::new(Module::Proj, Part::Weight)), [24, w]);
        assert_eq!(shape(ParamKey::new(Module::Head, Part::Bias)), [5]);
        let heads: Vec<usize> = list
            .iter()
            .enumerate()
            .filter(|(_, d)| d.group == Group::Head)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(heads, [list.len() - 2, list.len() - 1]);
        // Every key appears once and is found again.
        for (i, d) in list.iter().enumerate() {
            assert_eq!(list.index_of(&d.key), Some(i));
        }
    }

    /// Every list derived from the table agrees with [`ParamList`]: names, order, shapes and
    /// count of `params`, `encoder_params`, `param_groups`, `encoder_specs` and `to_tensor_map`
    /// in both namings, and the blended stacks. (The CUDA arena: `cuda/host.rs`.)
    #[test]
    fn every_derived_list_agrees_with_the_one_list() {
        let c = cfg();
        let list = ParamList::new(&c);
        let w = ClipWeights::random(&c, 3).unwrap();
        w.check(&c).unwrap();
        let params = w.params();
        assert_eq!(params.len(), list.len());
        for (p, d) in params.iter().zip(&list) {
            assert_eq!(p.len(), d.numel(), "{}", d.name());
        }
        let groups: Vec<Group> = list.iter().map(|d| d.group).collect();
        assert_eq!(w.param_groups(), groups);
        let enc: Vec<&[f32]> = params
            .iter()
            .zip(&list)
            .filter(|(_, d)| d.group == Group::Encoder)
            .map(|(p, _)| *p)
            .collect();
        assert_eq!(w.encoder_params(), enc);
        let mut w2 = w.clone();
        assert_eq!(w2.encoder_params_mut().len(), enc.len());
        assert_eq!(w2.params_mut().len(), list.len());

        for naming in namings() {
            // Encoder specs: one per encoder tensor, in order, with the list's names and sizes.
            let specs = ClipWeights::encoder_specs(&c, &naming);
            let encoder: Vec<&ParamDef> = list.group(Group::Encoder).collect();
            assert_eq!(specs.len(), encoder.len());
            for (s, d) in specs.iter().zip(&encoder) {
                let want: Vec<String> = d
                    .checkpoint_tensors(&naming, "")
                    .into_iter()
                    .map(|t| t.0)
                    .collect();
                assert_eq!(s.names().collect::<Vec<_>>(), want);
                assert_eq!(s.len(), d.numel());
            }
            // The saved map: exactly the list's checkpoint tensors, with their shapes, and it
            // loads back to the same weights, every spec reading its own values.
            let map = w.to_tensor_map(&c, &naming).unwrap();
            let mut want: Vec<(String, Vec<usize>)> = list
                .iter()
                .flat_map(|d| d.checkpoint_tensors(&naming, ""))
                .collect();
            want.sort();
            let got: Vec<(String, Vec<usize>)> = map
                .iter()
                .map(|(n, t)| (n.to_string(), t.shape.clone()))
                .collect();
            assert_eq!(got, want, "{naming:?}");
            let q = ParamKey::block(Module::AttnInProj, Part::Weight, 1);
            let n_parts = list
                .get(list.index_of(&q).unwrap())
                .unwrap()
                .checkpoint_tensors(&naming, "")
                .len();
            let split = matches!(naming, CheckpointNaming::HuggingFace { .. });
            assert_eq!(n_parts, if split { 3 } else { 1 });
            assert_eq!(CheckpointNaming::detect(&map).unwrap(), naming);
            let back = ClipWeights::load(&map, None, &c, &naming).unwrap();
            assert_eq!(back, w, "{naming:?}");
            for (s, p) in specs.iter().zip(&enc) {
                assert_eq!(&s.load(&map).unwrap()[..], *p);
            }
            assert_eq!(map.tensor_names().len(), want.len());
        }

        // Blended stacks: one per tensor, (M + 1) sets long, θ0 first.
        let others = [
            ClipWeights::random(&c, 4).unwrap(),
            ClipWeights::random(&c, 5).unwrap(),
        ];
        let bw = BlendedWeights::new(&c, &w, &[&others[0], &others[1]]).unwrap();
        let stacked = bw.stacked.params();
        assert_eq!(stacked.len(), list.len());
        for (k, (s, d)) in stacked.iter().zip(&list).enumerate() {
            let n = d.numel();
            assert_eq!(s.len(), 3 * n, "{}", d.name());
            assert_eq!(&s[..n], params[k]);
            assert_eq!(s[2 * n], others[1].params()[k][0] - params[k][0]);
        }
        let total: usize = list.iter().map(ParamDef::numel).sum();
        assert_eq!(bw.memory_bytes(), 4 * 3 * total);
    }

    /// LayerScale: two more tensors per block, named as open_clip names them, in every derived
    /// list (params, saving and loading in both namings, blended stacks); a checkpoint without
    /// them cannot be loaded as a LayerScale config (the error names them).
    #[test]
    fn layer_scale_adds_two_factors_per_block() {
        let c = VitConfig {
            layer_scale: true,
            ..cfg()
        };
        let list = ParamList::new(&c);
        assert_eq!(list.len(), 5 + 14 * c.layers + 3 + 2);
        for (module, t) in [(Module::Ls1, "ls_1.gamma"), (Module::Ls2, "ls_2.gamma")] {
            let d = list
                .get(
                    list.index_of(&ParamKey::block(module, Part::Weight, 2))
                        .unwrap(),
                )
                .unwrap();
            assert_eq!(d.name(), format!("transformer.resblocks.2.{t}"));
            assert_eq!(
                (d.shape.clone(), d.role, d.group),
                (vec![64], Role::LayerScale, Group::Encoder)
            );
        }
        assert!(ParamList::new(&cfg())
            .iter()
            .all(|d| d.role != Role::LayerScale));
        let w = ClipWeights::random(&c, 4).unwrap();
        w.check(&c).unwrap();
        let g = w.visual.resblocks[1].ls_2.as_ref().unwrap();
        assert!(g.iter().all(|v| (0.0..1.0).contains(v)) && g[0] != g[1]);
        assert_eq!(w.params().len(), list.len());
        assert_eq!(w.encoder_params().len(), list.len() - 2);
        // A LayerScale model is not a model without it, and the reverse.
        let mut plain = w.clone();
        plain.visual.resblocks[0].ls_1 = None;
        assert!(plain
            .check(&c)
            .unwrap_err()
            .to_string()
            .contains("ls_1.gamma"));
        assert!(w
            .check(&cfg())
            .unwrap_err()
            .to_string()
            .contains("ls_1.gamma"));
        for naming in namings() {
            let map = w.to_tensor_map(&c, &naming).unwrap();
            let back = ClipWeights::load(&map, None, &c, &naming).unwrap();
            assert_eq!(back, w, "{naming:?}");
            // The same checkpoint without its factors, loaded as a LayerScale config.
            let without = ClipWeights::random(&cfg(), 4)
                .unwrap()
                .to_tensor_map(&cfg(), &naming)
                .unwrap();
            let e = ClipWeights::load(&without, None, &c, &naming)
                .unwrap_err()
                .to_string();
            let first = format!("{}0.ls_1.gamma", naming.block_prefix());
            assert!(e.contains(&first) && e.contains("lacks 6 of its 6"), "{e}");
            let hf = matches!(naming, CheckpointNaming::HuggingFace { .. });
            assert_eq!(
                e.contains("Hugging Face's CLIP has no LayerScale"),
                hf,
                "{e}"
            );
        }
        let bw = BlendedWeights::new(&c, &w, &[&ClipWeights::random(&c, 5).unwrap()]).unwrap();
        let stacked = bw.stacked.visual.resblocks[0].ls_1.as_ref().unwrap();
        assert_eq!(stacked.len(), 2 * c.width);
    }

    #[test]
    fn check_names_the_tensor_at_fault() {
        let c = cfg();
        let mut w = ClipWeights::random(&c, 0).unwrap();
        w.visual.resblocks[1].mlp_c_fc.bias = None;
        let e = w.check(&c).unwrap_err().to_string();
        assert!(e.contains("transformer.resblocks.1.mlp.c_fc.bias"), "{e}");
        let mut w = ClipWeights::random(&c, 0).unwrap();
        w.visual.positional_embedding.pop();
        let e = w.check(&c).unwrap_err().to_string();
        assert!(e.contains("positional_embedding"), "{e}");
        let mut w = ClipWeights::random(&c, 0).unwrap();
        w.visual.resblocks.pop();
        assert!(w.check(&c).unwrap_err().to_string().contains("blocks"));
        let mut w = ClipWeights::random(&c, 0).unwrap();
        w.head.in_dim += 1;
        let e = w.check(&c).unwrap_err().to_string();
        assert!(e.contains("classification_head.weight"), "{e}");
    }

    /// `random` draws the linear maps (weight, then bias) first and the embeddings last, norms
    /// are the identity: the values of a given seed are those of the per-field constructor the
    /// list replaced (first and last draws checked against an RNG driven by hand).
    #[test]
    fn random_weights_draw_in_the_documented_order() {
        use rand::{RngExt, SeedableRng};
        let c = cfg();
        let w = ClipWeights::random(&c, 11).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut normal = move || -> f32 { rng.sample(rand_distr::StandardNormal) };
        let s = 1.0 / (c.patch_dim() as f32).sqrt();
        assert_eq!(w.visual.conv1.weight[0], s * normal());
        assert!(w.visual.ln_pre.weight.iter().all(|&v| v == 1.0));
        assert!(w.visual.resblocks[2].ln_2.bias.iter().all(|&v| v == 0.0));
        let n_linear: usize = ParamList::new(&c)
            .iter()
            .filter(|d| d.role == Role::Linear)
            .map(ParamDef::numel)
            .sum();
        for _ in 1..n_linear {
            normal();
        }
        assert_eq!(w.visual.class_embedding[0], 0.02 * normal());
    }
}
