//! CLIP ViT forward for DaWin (filled by issue 5).
