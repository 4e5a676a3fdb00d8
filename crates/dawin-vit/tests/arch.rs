//! `--arch` presets against open_clip 3.3.0's own model configs, dumped by
//! `scripts/dump_open_clip_presets.py` into `tests/fixtures/open_clip_presets.json`.

use dawin_vit::arch::{open_clip_preset, OPEN_CLIP_PRESETS};
use serde_json::Value;

#[test]
fn every_preset_is_open_clips_config() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/open_clip_presets.json"
    );
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let want = json.as_object().unwrap();
    assert_eq!(want.len(), OPEN_CLIP_PRESETS.len());
    let u = |v: &Value| v.as_u64().unwrap() as usize;
    for p in OPEN_CLIP_PRESETS {
        let w = &want[p.name];
        assert_eq!(p.width, u(&w["width"]), "{}", p.name);
        assert_eq!(p.layers, u(&w["layers"]), "{}", p.name);
        assert_eq!(p.head_width, u(&w["head_width"]), "{}", p.name);
        assert_eq!(p.patch_size, u(&w["patch_size"]), "{}", p.name);
        assert_eq!(p.image_size, u(&w["image_size"]), "{}", p.name);
        assert_eq!(p.mlp_ratio, w["mlp_ratio"].as_f64().unwrap(), "{}", p.name);
        assert_eq!(p.embed_dim, u(&w["embed_dim"]), "{}", p.name);
        assert_eq!(
            p.quick_gelu,
            w["quick_gelu"].as_bool().unwrap(),
            "{}",
            p.name
        );
        assert!(w["ls_init_value"].is_null(), "{}: LayerScale", p.name);
        let text: Vec<usize> = w["text"].as_array().unwrap().iter().map(u).collect();
        assert_eq!(p.text.to_vec(), text, "{}", p.name);
        // Looked up case-insensitively.
        assert_eq!(
            open_clip_preset(&p.name.to_lowercase()).unwrap().name,
            p.name
        );
    }
    let e = open_clip_preset("ViT-X-99").unwrap_err().to_string();
    assert!(e.contains("ViT-X-99") && e.contains("ViT-bigG-14"), "{e}");
}
