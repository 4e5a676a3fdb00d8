//! CLIP's text tower and zero-shot heads against open_clip 3.3.0, on the tiny random CLIPs of
//! `scripts/make_text_fixtures.py` (`tests/fixtures/text/clip_*`, both namings).

use std::io::Read;
use std::path::{Path, PathBuf};

use dawin_core::StateDict;
use dawin_core::TensorSource;
use dawin_vit::text::{
    computed_positions, zero_shot_head, ClipTextModel, TextConfig, TextNaming, TextOptions,
    TextPositions, TextWeights, META_CLASSES, META_TEMPLATES,
};
use dawin_vit::tokenizer::ClipTokenizer;
use dawin_vit::{Activation, Error, TensorMap};

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/text")
        .join(p)
}

/// `name.gz` of the fixtures decompressed into `dir` (as `name`).
fn gunzip_to(gz: &str, dir: &Path) -> PathBuf {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(fixture(gz)).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    let out = dir.join(Path::new(gz).file_stem().unwrap());
    std::fs::write(&out, bytes).unwrap();
    out
}

struct Expected {
    prompts: Vec<String>,
    classes: Vec<String>,
    templates: Vec<String>,
    input_ids: Vec<i64>,
    pool_index: Vec<usize>,
    features: Vec<f32>,
    normalized: Vec<f32>,
    head: Vec<f32>,
    heads: usize,
    activation: Activation,
}

fn expected(variant: &str) -> Expected {
    let sd = StateDict::open(fixture(&format!("clip_{variant}/expected.safetensors"))).unwrap();
    let meta = sd.metadata().unwrap().clone();
    let json = |k: &str| -> Vec<String> { serde_json::from_str(&meta[k]).unwrap() };
    let t = |n: &str| sd.tensor(n).unwrap();
    Expected {
        prompts: json("prompts"),
        classes: json("classnames"),
        templates: json("templates"),
        input_ids: t("input_ids").to_i64_vec().unwrap(),
        pool_index: (t("pool_index").to_i64_vec().unwrap())
            .iter()
            .map(|&p| p as usize)
            .collect(),
        features: t("text_features").to_f32_vec(),
        normalized: t("text_features_normalized").to_f32_vec(),
        head: t("classification_head.weight").to_f32_vec(),
        heads: meta["text_heads"].parse().unwrap(),
        activation: Activation::parse(&meta["activation"]).unwrap(),
    }
}

/// Largest `‖a_i − b_i‖∞ / ‖b_i‖∞` over the rows of width `w`.
fn max_rel(a: &[f32], b: &[f32], w: usize) -> f64 {
    assert_eq!(a.len(), b.len());
    a.chunks(w)
        .zip(b.chunks(w))
        .map(|(x, y)| {
            let d = x
                .iter()
                .zip(y)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0f32, f32::max);
            let m = y.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
            (d / m) as f64
        })
        .fold(0.0, f64::max)
}

fn normalized(f: &[f32], w: usize) -> Vec<f32> {
    f.chunks(w)
        .flat_map(|r| {
            let n = r.iter().map(|v| v * v).sum::<f32>().sqrt();
            r.iter().map(move |v| v / n)
        })
        .collect()
}

/// The checkpoint of `variant` in `naming` ("open_clip" or "hf"), unpacked into `dir`.
fn checkpoint(variant: &str, naming: &str, dir: &Path) -> PathBuf {
    match naming {
        "open_clip" => gunzip_to(&format!("clip_{variant}/open_clip.safetensors.gz"), dir),
        _ => gunzip_to(&format!("clip_{variant}/hf/model.safetensors.gz"), dir),
    }
}

/// Text features and the zero-shot head equal open_clip's within 1e-4 relative, for both
/// variants (QuickGELU 1 head, exact GELU 4 heads) in both namings; the prompts tokenize to
/// open_clip's ids.
#[test]
fn features_and_head_equal_open_clip_in_both_namings() {
    let tok = ClipTokenizer::builtin();
    for variant in ["quickgelu", "gelu"] {
        let e = expected(variant);
        let batch = tok.tokenize_batch(&e.prompts);
        let ids: Vec<i64> = batch.ids.iter().map(|&i| i as i64).collect();
        assert_eq!(ids, e.input_ids, "{variant}: token ids");
        assert_eq!(batch.pool_index, e.pool_index, "{variant}: pool index");
        assert_eq!(
            batch.truncated.len(),
            1,
            "{variant}: one prompt is truncated"
        );
        for naming in ["open_clip", "hf"] {
            let dir = tempfile::tempdir().unwrap();
            let path = checkpoint(variant, naming, dir.path());
            // The 1-head QuickGELU model loads with the defaults (heads = 64/64, QuickGELU).
            let opts = match variant {
                "quickgelu" => TextOptions::default(),
                _ => TextOptions {
                    heads: Some(e.heads),
                    activation: Some(e.activation),
                    layer_norm_eps: None,
                },
            };
            let model = ClipTextModel::from_path(&path, &opts).unwrap();
            let cfg = model.config();
            assert_eq!(
                (
                    cfg.vocab_size,
                    cfg.context_length,
                    cfg.width,
                    cfg.layers,
                    cfg.mlp_dim,
                    cfg.embed_dim
                ),
                (49408, 77, 64, 2, 256, 32)
            );
            assert_eq!((cfg.heads, cfg.activation), (e.heads, e.activation));
            let want_naming = if naming == "hf" {
                TextNaming::HuggingFace {
                    root: String::new(),
                }
            } else {
                TextNaming::OpenAi {
                    prefix: String::new(),
                    root: String::new(),
                }
            };
            assert_eq!(model.naming(), Some(&want_naming));
            let f = model.encode(&batch).unwrap();
            let rel = max_rel(&f, &e.features, 32);
            let rel_n = max_rel(&normalized(&f, 32), &e.normalized, 32);
            let head = zero_shot_head(&model, &tok, &e.classes, &e.templates, &mut |_| {}).unwrap();
            let rel_h = max_rel(&head.weight, &e.head, 32);
            println!(
                "{variant} {naming}: features max rel {rel:.1e}, normalised {rel_n:.1e}, head {rel_h:.1e}"
            );
            assert!(
                rel < 1e-4 && rel_n < 1e-4 && rel_h < 1e-4,
                "{variant} {naming}"
            );
            assert!(head.truncated.is_empty());
            assert_eq!(head.classes, e.classes);
        }
    }
    // The comparison tells the variants apart: the 4-head GELU model read with the defaults
    // (1 head, QuickGELU) is far off.
    let dir = tempfile::tempdir().unwrap();
    let wrong = ClipTextModel::from_path(
        checkpoint("gelu", "open_clip", dir.path()),
        &Default::default(),
    )
    .unwrap();
    let e = expected("gelu");
    let f = wrong.encode(&tok.tokenize_batch(&e.prompts)).unwrap();
    assert!(max_rel(&f, &e.features, 32) > 1e-2);
}

/// Positions after a text's end token cannot change its features (causal attention): computing
/// every position of the 77 (open_clip's way) gives the same features as computing each text
/// only up to its end token, batched or alone, and with the padding replaced by other ids.
#[test]
fn computing_up_to_the_end_token_equals_the_full_context() {
    let dir = tempfile::tempdir().unwrap();
    let e = expected("gelu");
    let path = checkpoint("gelu", "open_clip", dir.path());
    let opts = TextOptions {
        heads: Some(4),
        activation: Some(Activation::Gelu),
        layer_norm_eps: None,
    };
    let model = ClipTextModel::from_path(&path, &opts).unwrap();
    let batch = ClipTokenizer::builtin().tokenize_batch(&e.prompts);
    let packed = model.encode(&batch).unwrap();
    let full = model
        .encode_ids(&batch.ids, 77, &batch.pool_index, TextPositions::Context)
        .unwrap();
    let rel = max_rel(&packed, &full, 32);
    println!("up to the end token vs all 77 positions: max rel {rel:.1e}");
    assert!(rel < 1e-5, "{rel}");
    // Other ids after the end token: same features, even when those positions are computed.
    let mut noisy = batch.ids.clone();
    for (i, row) in noisy.chunks_mut(77).enumerate() {
        for (t, id) in row.iter_mut().enumerate().skip(batch.pool_index[i] + 1) {
            *id = ((i * 7919 + t * 104_729) % 49_000) as u32;
        }
    }
    let full_noisy = model
        .encode_ids(&noisy, 77, &batch.pool_index, TextPositions::Context)
        .unwrap();
    assert!(max_rel(&full_noisy, &full, 32) < 1e-5);
    // One text at a time, truncated to its own length: the same.
    for i in [0, e.prompts.len() - 3, e.prompts.len() - 2] {
        let p = batch.pool_index[i];
        let alone = model
            .encode_ids(
                &batch.ids[i * 77..i * 77 + p + 1],
                p + 1,
                &[p],
                TextPositions::Context,
            )
            .unwrap();
        assert!(max_rel(&alone, &packed[i * 32..(i + 1) * 32], 32) < 1e-5);
    }
    // The work: positions up to the end tokens, the prompts' shared beginnings once.
    let up_to_pool: usize = batch.pool_index.iter().map(|p| p + 1).sum();
    let computed = computed_positions(&batch.ids, 77, &batch.pool_index, TextPositions::UpToPool);
    println!(
        "{} prompts: {} positions of 77 each, {up_to_pool} up to the end tokens, {computed} distinct prefixes",
        batch.len(),
        77 * batch.len()
    );
    assert!(2 * up_to_pool < 77 * batch.len() && computed < up_to_pool - 20);
}

/// Many prompts sharing their beginnings (ImageNet's 80 templates for 3 classes): the batch,
/// computed as a prefix tree, equals each prompt computed alone over all 77 positions.
#[test]
fn shared_beginnings_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    let model = ClipTextModel::from_path(
        checkpoint("quickgelu", "open_clip", dir.path()),
        &Default::default(),
    )
    .unwrap();
    let t = dawin_vit::prompts::templates("openai-imagenet").unwrap();
    let prompts: Vec<String> = ["goldfish", "great white shark", "tench"]
        .iter()
        .flat_map(|c| t.iter().map(move |t| dawin_vit::prompts::fill(t, c)))
        .collect();
    let batch = ClipTokenizer::builtin().tokenize_batch(&prompts);
    let shared = model.encode(&batch).unwrap();
    let computed = computed_positions(&batch.ids, 77, &batch.pool_index, TextPositions::UpToPool);
    let up_to_pool: usize = batch.pool_index.iter().map(|p| p + 1).sum();
    println!("240 prompts: {up_to_pool} positions up to the end tokens, {computed} computed");
    assert!(10 * computed < 6 * up_to_pool);
    let mut worst = 0.0f64;
    for i in 0..batch.len() {
        let alone = model
            .encode_ids(
                batch.row(i),
                77,
                &batch.pool_index[i..=i],
                TextPositions::Context,
            )
            .unwrap();
        worst = worst.max(max_rel(&alone, &shared[i * 32..(i + 1) * 32], 32));
    }
    println!("shared beginnings vs each prompt alone: max rel {worst:.1e}");
    assert!(worst < 1e-5, "{worst}");
}

/// Both namings hold the same weights, and a model converts from one naming to the other and
/// back; the `model.` wrapper and open_clip's `CustomTextCLIP` layout (`text.` prefix,
/// `logit_scale` at the root) are found.
#[test]
fn namings_and_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let a = ClipTextModel::from_path(
        checkpoint("quickgelu", "open_clip", dir.path()),
        &Default::default(),
    )
    .unwrap();
    let b = ClipTextModel::from_path(
        checkpoint("quickgelu", "hf", dir.path()),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(a.weights(), b.weights());
    assert!((a.logit_scale().unwrap() - (1.0f32 / 0.07).ln() - 0.1).abs() < 1e-6);
    let cfg = a.config().clone();
    let hf = TextNaming::HuggingFace {
        root: "clip.".into(),
    };
    let map = a.weights().to_tensor_map(&cfg, &hf).unwrap();
    assert_eq!(TextNaming::detect(&map).unwrap(), hf);
    assert!(map
        .get("clip.text_model.encoder.layers.1.self_attn.k_proj.weight")
        .is_some());
    assert_eq!(TextWeights::load(&map, &cfg, &hf).unwrap(), *a.weights());

    let rename = |m: &TensorMap, f: &dyn Fn(&str) -> String| {
        let mut out = TensorMap::new();
        for (n, t) in m.iter() {
            out.insert(f(n), t.shape.clone(), t.data.clone()).unwrap();
        }
        out
    };
    let oa = TextNaming::OpenAi {
        prefix: String::new(),
        root: String::new(),
    };
    let plain = a.weights().to_tensor_map(&cfg, &oa).unwrap();
    let wrapped = rename(&plain, &|n| format!("model.{n}"));
    assert_eq!(
        TextNaming::detect(&wrapped).unwrap(),
        TextNaming::OpenAi {
            prefix: "model.".into(),
            root: "model.".into()
        }
    );
    let custom = rename(&plain, &|n| match n {
        "logit_scale" => n.to_string(),
        _ => format!("text.{n}"),
    });
    let naming = TextNaming::detect(&custom).unwrap();
    assert_eq!(
        naming,
        TextNaming::OpenAi {
            prefix: "text.".into(),
            root: String::new()
        }
    );
    let m = ClipTextModel::from_source(&custom, &Default::default()).unwrap();
    assert_eq!(m.weights(), a.weights());
}

#[test]
fn bad_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let model = ClipTextModel::from_path(
        checkpoint("quickgelu", "open_clip", dir.path()),
        &Default::default(),
    )
    .unwrap();
    let cfg = model.config().clone();
    let tok = ClipTokenizer::builtin();
    let err = |r: Result<dawin_vit::text::ZeroShotHead, Error>| r.unwrap_err().to_string();

    // A checkpoint without a text tower: the demo's image classifier.
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dawin-cli/demo/theta0.safetensors");
    let e = ClipTextModel::from_path(&demo, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no CLIP text tower") && e.contains("token_embedding.weight"),
        "{e}"
    );
    println!("{e}");

    // Empty classes, an empty class name, no template, a template without `{}`.
    let none: [&str; 0] = [];
    assert!(err(zero_shot_head(&model, &tok, &none, &["a {}."], &mut |_| {})).contains("no class"));
    assert!(err(zero_shot_head(
        &model,
        &tok,
        &["cat", " "],
        &["a {}."],
        &mut |_| {}
    ))
    .contains("class 1"));
    assert!(
        err(zero_shot_head(&model, &tok, &["cat"], &none, &mut |_| {})).contains("no template")
    );
    let e = err(zero_shot_head(
        &model,
        &tok,
        &["cat"],
        &["a photo."],
        &mut |_| {},
    ));
    assert!(e.contains("a photo.") && e.contains("{}"), "{e}");

    // A tower without logit_scale (Hugging Face's CLIPTextModelWithProjection).
    let oa = TextNaming::OpenAi {
        prefix: String::new(),
        root: String::new(),
    };
    let mut map = model.weights().to_tensor_map(&cfg, &oa).unwrap();
    map.remove("logit_scale");
    let m = ClipTextModel::from_source(&map, &Default::default()).unwrap();
    assert!(m.logit_scale().is_none());
    let e = err(zero_shot_head(&m, &tok, &["cat"], &["a {}."], &mut |_| {}));
    assert!(e.contains("`logit_scale`"), "{e}");

    // A missing tensor, a misshapen one, LayerScale, a bad id.
    let mut m2 = model.weights().to_tensor_map(&cfg, &oa).unwrap();
    m2.remove("transformer.resblocks.1.mlp.c_proj.bias");
    let e = ClipTextModel::from_source(&m2, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("transformer.resblocks.1.mlp.c_proj.bias"), "{e}");
    let mut m3 = model.weights().to_tensor_map(&cfg, &oa).unwrap();
    m3.insert("ln_final.weight", vec![63], vec![1.0; 63])
        .unwrap();
    let e = ClipTextModel::from_source(&m3, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("ln_final.weight") && e.contains("[63]"), "{e}");
    let mut m4 = model.weights().to_tensor_map(&cfg, &oa).unwrap();
    m4.insert(
        "transformer.resblocks.0.ls_1.gamma",
        vec![64],
        vec![1.0; 64],
    )
    .unwrap();
    let e = ClipTextModel::from_source(&m4, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("LayerScale"), "{e}");
    let e = model
        .encode_ids(&[49406, 60000, 49407], 3, &[2], TextPositions::UpToPool)
        .unwrap_err()
        .to_string();
    assert!(e.contains("60000") && e.contains("position 1"), "{e}");
    // Heads that do not divide the width.
    let e = ClipTextModel::from_source(
        &map,
        &TextOptions {
            heads: Some(3),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("heads 3"), "{e}");
}

/// A class name too long for the context: its prompts are truncated as open_clip truncates them
/// (first 76 ids, then the end token) and the head says which class.
#[test]
fn long_class_names_are_truncated_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let model = ClipTextModel::from_path(
        checkpoint("quickgelu", "open_clip", dir.path()),
        &Default::default(),
    )
    .unwrap();
    let tok = ClipTokenizer::builtin();
    let long = vec!["word"; 100].join(" ");
    let head = zero_shot_head(
        &model,
        &tok,
        &["cat", &long],
        &["a {}.", "b {}."],
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(head.truncated, vec![1]);
    // Its row is the head of the truncated prompts: the same as for a name cut at 76 − 2 words
    // ("a" + 74 words fill ids 1..=75; the end token goes to 76).
    let cut = vec!["word"; 75].join(" ");
    let h2 = zero_shot_head(
        &model,
        &tok,
        &["cat", &cut],
        &["a {}.", "b {}."],
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(h2.truncated, vec![1]);
    assert!(max_rel(&head.weight, &h2.weight, 32) < 1e-6);
}

/// The head file: weight and zero bias, class names and templates in the metadata.
#[test]
fn the_head_file_holds_the_head_and_what_it_was_built_from() {
    let dir = tempfile::tempdir().unwrap();
    let model = ClipTextModel::from_path(
        checkpoint("quickgelu", "open_clip", dir.path()),
        &Default::default(),
    )
    .unwrap();
    let tok = ClipTokenizer::builtin();
    let mut seen = Vec::new();
    let head = zero_shot_head(
        &model,
        &tok,
        &["cat", "dog", "bird"],
        &["a {}."],
        &mut |d| seen.push(d),
    )
    .unwrap();
    assert_eq!(seen.last(), Some(&3));
    let out = dir.path().join("head.safetensors");
    let extra = [(
        "dawin.zeroshot.checkpoint_sha256".to_string(),
        "abc".to_string(),
    )]
    .into();
    head.write(&out, &extra).unwrap();
    let sd = StateDict::open(&out).unwrap();
    assert_eq!(
        sd.tensor("classification_head.weight")
            .unwrap()
            .to_f32_vec(),
        head.weight
    );
    assert_eq!(
        sd.tensor("classification_head.bias").unwrap().to_f32_vec(),
        vec![0.0; 3]
    );
    let meta = sd.metadata().unwrap();
    assert_eq!(meta[META_CLASSES], r#"["cat","dog","bird"]"#);
    assert_eq!(meta[META_TEMPLATES], r#"["a {}."]"#);
    assert_eq!(meta["dawin.zeroshot.checkpoint_sha256"], "abc");
    let lin = dawin_vit::load_head(&out).unwrap().linear;
    assert_eq!((lin.out_dim, lin.in_dim), (3, 32));
    assert_eq!(head.tensor_map().tensor_names().len(), 2);
}

/// The B/32 preset has the published size: 63.4M text parameters (OpenAI's "63M").
#[test]
fn b32_text_tower_sizes() {
    let cfg = TextConfig::vit_b32();
    let list = dawin_vit::text::TextParamList::new(&cfg);
    let n: usize = list.iter().map(|d| d.numel()).sum();
    // Token embedding 49408·512, positions 77·512, 12 blocks of 3 152 384 (by hand: norms 2048,
    // in_proj 786 432 + 1536, out_proj 262 144 + 512, c_fc 1 048 576 + 2048, c_proj 1 048 576 +
    // 512), ln_final 1024, projection 512·512, logit_scale 1.
    assert_eq!(n, 25_296_896 + 39_424 + 12 * 3_152_384 + 1024 + 262_144 + 1);
}
