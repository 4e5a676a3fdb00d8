//! The shape of a CLIP ViT image classifier.

use crate::error::{Error, Result};

/// The activation between the two linear maps of a transformer block's MLP.
///
/// OpenAI's CLIP towers (and open_clip's `-quickgelu` models) use QuickGELU; open_clip's
/// LAION/DataComp towers use exact GELU. Nothing in a state dict says which, so it is resolved
/// from flags, config files or a stated default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Activation {
    /// `x · σ(1.702 x)` (OpenAI CLIP, `open_clip` with `quick_gelu = true`).
    #[default]
    QuickGelu,
    /// `x · Φ(x) = ½ x (1 + erf(x / √2))` (PyTorch's `nn.GELU()`, `approximate='none'`).
    Gelu,
}

impl Activation {
    /// The name used on the command line and in reports: `quick-gelu` or `gelu`.
    pub fn name(self) -> &'static str {
        match self {
            Activation::QuickGelu => "quick-gelu",
            Activation::Gelu => "gelu",
        }
    }

    /// Parses `quick-gelu` (also `quick_gelu`, `quickgelu`) or `gelu`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "quick-gelu" | "quick_gelu" | "quickgelu" => Ok(Activation::QuickGelu),
            "gelu" => Ok(Activation::Gelu),
            other => Err(Error::arg(
                "activation",
                format!("`{other}`: expected `gelu` or `quick-gelu`"),
            )),
        }
    }
}

/// Shape hyper-parameters of a CLIP ViT image encoder with a linear classification head.
///
/// Tokens: `T = (image_size / patch_size)² + 1` (the class token first). Every block is
/// `x += attn(ln_1(x)); x += mlp(ln_2(x))` with `mlp = c_proj(act(c_fc(·)))`, `act` the
/// [`Activation`] (QuickGELU in OpenAI's CLIP).
#[derive(Clone, Debug, PartialEq)]
pub struct VitConfig {
    /// Input side in pixels (square inputs `[3, image_size, image_size]`).
    pub image_size: usize,
    /// Patch side in pixels (the stride of the patch-embedding convolution).
    pub patch_size: usize,
    /// Transformer width (token dimension).
    pub width: usize,
    /// Number of residual attention blocks.
    pub layers: usize,
    /// Attention heads per block (`width % heads == 0`).
    pub heads: usize,
    /// Hidden size of the MLP (4 × width in CLIP).
    pub mlp_dim: usize,
    /// Output size of the projection (the CLIP embedding).
    pub embed_dim: usize,
    /// Number of classes of the classification head.
    pub num_classes: usize,
    /// Layer-norm epsilon (1e-5 in CLIP).
    pub layer_norm_eps: f32,
    /// The MLP activation (QuickGELU for OpenAI's towers, exact GELU for open_clip's
    /// LAION/DataComp ones).
    pub activation: Activation,
    /// Whether every block scales its two residual branches by learned per-channel factors
    /// (open_clip's LayerScale, `ls_1.gamma` / `ls_2.gamma`):
    /// `x += γ1 ⊙ attn(ln_1(x)); x += γ2 ⊙ mlp(ln_2(x))`.
    pub layer_scale: bool,
}

impl VitConfig {
    fn clip(
        image_size: usize,
        patch_size: usize,
        width: usize,
        layers: usize,
        heads: usize,
        embed_dim: usize,
        num_classes: usize,
    ) -> Self {
        VitConfig {
            image_size,
            patch_size,
            width,
            layers,
            heads,
            mlp_dim: 4 * width,
            embed_dim,
            num_classes,
            layer_norm_eps: 1e-5,
            activation: Activation::QuickGelu,
            layer_scale: false,
        }
    }

    /// ViT-B/32 at 224 px: patch 32, width 768, 12 layers, 12 heads, embed 512, 50 tokens.
    pub fn vit_b32(num_classes: usize) -> Self {
        Self::clip(224, 32, 768, 12, 12, 512, num_classes)
    }

    /// ViT-B/16 at 224 px: patch 16, width 768, 12 layers, 12 heads, embed 512, 197 tokens.
    pub fn vit_b16(num_classes: usize) -> Self {
        Self::clip(224, 16, 768, 12, 12, 512, num_classes)
    }

    /// ViT-L/14 at 224 px: patch 14, width 1024, 24 layers, 16 heads, embed 768, 257 tokens.
    pub fn vit_l14(num_classes: usize) -> Self {
        Self::clip(224, 14, 1024, 24, 16, 768, num_classes)
    }

    /// open_clip's ViT-H-14 at 224 px (LAION-2B): patch 14, width 1280, 32 layers, 16 heads of
    /// 80, MLP 5120, embed 1024, exact GELU.
    pub fn vit_h14(num_classes: usize) -> Self {
        VitConfig {
            activation: Activation::Gelu,
            ..Self::clip(224, 14, 1280, 32, 16, 1024, num_classes)
        }
    }

    /// open_clip's ViT-g-14 at 224 px (LAION-2B): patch 14, width 1408, 40 layers, 16 heads of
    /// 88, MLP 6144, embed 1024, exact GELU.
    pub fn vit_g14(num_classes: usize) -> Self {
        VitConfig {
            mlp_dim: 6144,
            activation: Activation::Gelu,
            ..Self::clip(224, 14, 1408, 40, 16, 1024, num_classes)
        }
    }

    /// open_clip's ViT-bigG-14 at 224 px (LAION-2B): patch 14, width 1664, 48 layers, 16 heads
    /// of 104, MLP 8192, embed 1280, exact GELU.
    pub fn vit_bigg14(num_classes: usize) -> Self {
        VitConfig {
            mlp_dim: 8192,
            activation: Activation::Gelu,
            ..Self::clip(224, 14, 1664, 48, 16, 1280, num_classes)
        }
    }

    /// Patches per side, `image_size / patch_size`.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Number of patches, `grid²`.
    pub fn num_patches(&self) -> usize {
        self.grid() * self.grid()
    }

    /// Number of tokens, `num_patches + 1`.
    pub fn num_tokens(&self) -> usize {
        self.num_patches() + 1
    }

    /// Width of one attention head, `width / heads`.
    pub fn head_dim(&self) -> usize {
        self.width / self.heads
    }

    /// Number of f32 values of one preprocessed input image, `3 · image_size²`.
    pub fn image_numel(&self) -> usize {
        3 * self.image_size * self.image_size
    }

    /// Length of one flattened patch, `3 · patch_size²`.
    pub fn patch_dim(&self) -> usize {
        3 * self.patch_size * self.patch_size
    }

    /// Checks that the sizes are consistent (non-zero, patch divides image, heads divide width).
    pub fn validate(&self) -> Result<()> {
        let fields = [
            ("image_size", self.image_size),
            ("patch_size", self.patch_size),
            ("width", self.width),
            ("layers", self.layers),
            ("heads", self.heads),
            ("mlp_dim", self.mlp_dim),
            ("embed_dim", self.embed_dim),
            ("num_classes", self.num_classes),
        ];
        for (name, v) in fields {
            if v == 0 {
                return Err(Error::Config(format!("{name} must be > 0")));
            }
        }
        if !self.image_size.is_multiple_of(self.patch_size) {
            return Err(Error::Config(format!(
                "patch_size {} does not divide image_size {}",
                self.patch_size, self.image_size
            )));
        }
        if !self.width.is_multiple_of(self.heads) {
            return Err(Error::Config(format!(
                "heads {} does not divide width {}",
                self.heads, self.width
            )));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return Err(Error::Config(format!(
                "layer_norm_eps {} must be finite and > 0",
                self.layer_norm_eps
            )));
        }
        Ok(())
    }

    /// Floating-point operations of one image's forward, counting a multiply-add as 2:
    ///
    /// `2·N·(3P²)·W` (patch embedding)
    /// `+ L·(2·T·W·(3W + W + 2M) + 4·T²·W)` (qkv, out, fc1, fc2; scores and weighted sum)
    /// `+ 2·W·E + 2·E·C` (projection and head); norms, softmax and activations are not counted.
    pub fn forward_flops(&self) -> f64 {
        let (n, t, w, m) = (
            self.num_patches() as f64,
            self.num_tokens() as f64,
            self.width as f64,
            self.mlp_dim as f64,
        );
        let (e, c, l) = (
            self.embed_dim as f64,
            self.num_classes as f64,
            self.layers as f64,
        );
        let patch = 2.0 * n * self.patch_dim() as f64 * w;
        let block = 2.0 * t * w * (4.0 * w + 2.0 * m) + 4.0 * t * t * w;
        patch + l * block + 2.0 * w * e + 2.0 * e * c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_the_paper_sizes() {
        let b32 = VitConfig::vit_b32(1000);
        assert_eq!((b32.num_tokens(), b32.head_dim()), (50, 64));
        assert_eq!(VitConfig::vit_b16(1000).num_tokens(), 197);
        let l14 = VitConfig::vit_l14(1000);
        assert_eq!(
            (l14.num_tokens(), l14.head_dim(), l14.mlp_dim),
            (257, 64, 4096)
        );
        for c in [b32, VitConfig::vit_b16(10), l14] {
            c.validate().unwrap();
        }
        // open_clip's model configs (ViT-H-14.json, ViT-g-14.json, ViT-bigG-14.json):
        // width, layers, head_width, mlp_ratio, embed_dim.
        for (c, w, l, hw, mlp, e) in [
            (VitConfig::vit_h14(10), 1280, 32, 80, 5120, 1024),
            (VitConfig::vit_g14(10), 1408, 40, 88, 6144, 1024),
            (VitConfig::vit_bigg14(10), 1664, 48, 104, 8192, 1280),
        ] {
            c.validate().unwrap();
            assert_eq!(
                (c.width, c.layers, c.head_dim(), c.mlp_dim, c.embed_dim),
                (w, l, hw, mlp, e)
            );
            assert_eq!((c.num_tokens(), c.activation), (257, Activation::Gelu));
        }
    }

    #[test]
    fn b32_flops_match_the_review_thread() {
        // The review thread quotes 4.41 GFLOPs per sample for B/32, i.e. multiply-adds: 2 × 4.41 G.
        let f = VitConfig::vit_b32(1000).forward_flops();
        assert!((f / 2e9 - 4.41).abs() < 0.02, "{f}");
    }

    #[test]
    fn activation_names_round_trip() {
        for a in [Activation::QuickGelu, Activation::Gelu] {
            assert_eq!(Activation::parse(a.name()).unwrap(), a);
        }
        assert_eq!(
            Activation::parse("quick_gelu").unwrap(),
            Activation::QuickGelu
        );
        let e = Activation::parse("relu").unwrap_err().to_string();
        assert!(e.contains("activation") && e.contains("relu"), "{e}");
    }

    #[test]
    fn validate_rejects_inconsistent_sizes() {
        let mut c = VitConfig::vit_b32(10);
        c.heads = 7;
        assert!(c.validate().unwrap_err().to_string().contains("heads 7"));
        let mut c = VitConfig::vit_b32(10);
        c.image_size = 100;
        assert!(c.validate().unwrap_err().to_string().contains("patch_size"));
        let mut c = VitConfig::vit_b32(10);
        c.num_classes = 0;
        assert!(c.validate().is_err());
    }
}
