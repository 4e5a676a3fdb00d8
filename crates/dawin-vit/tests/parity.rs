//! Parity of the CPU forward with Hugging Face transformers' CLIP (Flax, float64), in both
//! checkpoint namings. Fixture: `scripts/make_vit_fixture.py` (tiny random model: image 32,
//! patch 8, width 64, 2 layers, 2 heads, MLP 128, embed 32, 10 classes; 4 random inputs).

mod common;

use common::{f32s, fixture, read_raw, rel_err, tensor_map};
use dawin_core::{write_safetensors, OwnedTensor, StateDict, TensorSource};
use dawin_vit::{CheckpointNaming, ClipClassifier, LoadOptions, TensorMap, VitConfig};

const TOL: f64 = 1e-4;

fn io() -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (raw, _) = read_raw(&fixture("tiny_io.safetensors"));
    (
        f32s(&raw, "inputs").1,
        f32s(&raw, "logits").1,
        f32s(&raw, "features").1,
    )
}

fn tiny_config() -> VitConfig {
    VitConfig {
        image_size: 32,
        patch_size: 8,
        width: 64,
        layers: 2,
        heads: 2,
        mlp_dim: 128,
        embed_dim: 32,
        num_classes: 10,
        layer_norm_eps: 1e-5,
        activation: Default::default(),
        layer_scale: false,
    }
}

fn check_parity(src: &dyn TensorSource) -> (f64, f64) {
    let model = ClipClassifier::from_source(src, None, &LoadOptions::default()).unwrap();
    assert_eq!(model.config(), &tiny_config(), "inferred config");
    let (inputs, logits, feats) = io();
    let out = model.forward_with(&inputs, 4, true).unwrap();
    let (el, ef) = (
        rel_err(&out.logits, &logits),
        rel_err(out.features.as_ref().unwrap(), &feats),
    );
    eprintln!(
        "{}: logits rel err {el:.2e}, features rel err {ef:.2e}",
        src.source_name()
    );
    assert!(el < TOL && ef < TOL, "logits {el:e}, features {ef:e}");
    (el, ef)
}

#[test]
fn hugging_face_naming_matches_transformers() {
    // The same tensors held in memory give the same model.
    check_parity(&tensor_map(&fixture("tiny_hf.safetensors")));
    let src = StateDict::open(fixture("tiny_hf.safetensors")).unwrap();
    assert_eq!(
        CheckpointNaming::detect(&src).unwrap(),
        CheckpointNaming::HuggingFace {
            root: String::new()
        }
    );
    check_parity(&src);
}

#[test]
fn openai_naming_matches_transformers() {
    let src = StateDict::open(fixture("tiny_openai.safetensors")).unwrap();
    assert_eq!(
        CheckpointNaming::detect(&src).unwrap(),
        CheckpointNaming::OpenAi {
            prefix: "visual.".into()
        }
    );
    check_parity(&src);
}

#[test]
fn half_precision_checkpoints_and_separate_head_files_load() {
    // The OpenAI fixture stored in f16 (the head in bf16, in its own file): the model equals the
    // f32 model built from the same rounded values, and stays close to the f32 reference.
    let src = tensor_map(&fixture("tiny_openai.safetensors"));
    let dir = tempfile::tempdir().unwrap();
    let mut tower = Vec::new();
    let mut head = Vec::new();
    let mut rounded = TensorMap::new();
    for (name, t) in src.iter() {
        if name.starts_with("classification_head") {
            let v: Vec<half::bf16> = t.data.iter().map(|&x| half::bf16::from_f32(x)).collect();
            rounded
                .insert(
                    name,
                    t.shape.clone(),
                    v.iter().map(|x| x.to_f32()).collect(),
                )
                .unwrap();
            head.push(OwnedTensor::from_slice(name, t.shape.clone(), &v));
        } else {
            let v: Vec<half::f16> = t.data.iter().map(|&x| half::f16::from_f32(x)).collect();
            rounded
                .insert(
                    name,
                    t.shape.clone(),
                    v.iter().map(|x| x.to_f32()).collect(),
                )
                .unwrap();
            tower.push(OwnedTensor::from_slice(name, t.shape.clone(), &v));
        }
    }
    rounded.set_metadata(dawin_vit::HEADS_METADATA_KEY, "2");
    let meta = std::collections::HashMap::from([(
        dawin_vit::HEADS_METADATA_KEY.to_string(),
        "2".to_string(),
    )]);
    let (tp, hp) = (
        dir.path().join("tower_f16.safetensors"),
        dir.path().join("head_bf16.safetensors"),
    );
    write_safetensors(&tp, &tower, Some(meta)).unwrap();
    write_safetensors(&hp, &head, None).unwrap();
    let from_file =
        ClipClassifier::from_files(&tp, Some(hp.as_path()), &LoadOptions::default()).unwrap();
    let in_memory = ClipClassifier::from_source(&rounded, None, &LoadOptions::default()).unwrap();
    assert_eq!(from_file.weights(), in_memory.weights());
    let (inputs, logits, _) = io();
    let err = rel_err(&from_file.forward(&inputs, 4).unwrap(), &logits);
    assert!(err > 1e-6 && err < 2e-2, "{err}");
    // A head file without a head names what it lacks and the file.
    let err = ClipClassifier::from_files(&tp, Some(tp.as_path()), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("classification_head.weight") && err.contains("tower_f16"),
        "{err}"
    );
}

#[test]
fn both_namings_give_the_same_weights_and_batches_are_independent() {
    let hf = ClipClassifier::from_source(
        &tensor_map(&fixture("tiny_hf.safetensors")),
        None,
        &LoadOptions::default(),
    )
    .unwrap();
    let oa = ClipClassifier::from_source(
        &tensor_map(&fixture("tiny_openai.safetensors")),
        None,
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(hf.weights(), oa.weights());
    // One sample at a time gives the batch's rows.
    let (inputs, _, _) = io();
    let all = hf.forward(&inputs, 4).unwrap();
    let per = tiny_config().image_numel();
    for i in 0..4 {
        let one = hf.forward(&inputs[i * per..(i + 1) * per], 1).unwrap();
        assert!(rel_err(&one, &all[i * 10..(i + 1) * 10]) < 1e-5);
    }
}

#[test]
fn prefixed_names_and_a_separate_head_file() {
    // WiSE-FT style: the tower under `image_encoder.model.visual.`, the head in another source.
    let src = tensor_map(&fixture("tiny_openai.safetensors"));
    let mut tower = TensorMap::new();
    let mut head = TensorMap::new();
    for (name, t) in src.iter() {
        if name.starts_with("classification_head") {
            head.insert(name, t.shape.clone(), t.data.clone()).unwrap();
        } else {
            tower
                .insert(
                    format!("image_encoder.model.{name}"),
                    t.shape.clone(),
                    t.data.clone(),
                )
                .unwrap();
        }
    }
    tower.set_metadata(dawin_vit::HEADS_METADATA_KEY, "2");
    let model = ClipClassifier::from_source(&tower, Some(&head), &LoadOptions::default()).unwrap();
    let (inputs, logits, _) = io();
    assert!(rel_err(&model.forward(&inputs, 4).unwrap(), &logits) < TOL);
    // Without the head anywhere: an error naming it.
    let err = ClipClassifier::from_source(&tower, None, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("classification_head.weight"), "{err}");
}

#[test]
fn heads_come_from_metadata_or_an_override() {
    let mut src = tensor_map(&fixture("tiny_hf.safetensors"));
    // Conflicting override: an error naming both.
    let err = ClipClassifier::from_source(
        &src,
        None,
        &LoadOptions {
            heads: Some(4),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("dawin.vit.heads"), "{err}");
    // No metadata: width/64 = 1 head, a different model that no longer matches.
    let mut plain = TensorMap::new();
    for (name, t) in src.iter() {
        plain.insert(name, t.shape.clone(), t.data.clone()).unwrap();
    }
    let one_head = ClipClassifier::from_source(&plain, None, &LoadOptions::default()).unwrap();
    assert_eq!(one_head.config().heads, 1);
    let (inputs, logits, _) = io();
    assert!(rel_err(&one_head.forward(&inputs, 4).unwrap(), &logits) > 1e-3);
    // The override restores it.
    let two = ClipClassifier::from_source(
        &plain,
        None,
        &LoadOptions {
            heads: Some(2),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(rel_err(&two.forward(&inputs, 4).unwrap(), &logits) < TOL);
    src.set_metadata(dawin_vit::HEADS_METADATA_KEY, "two");
    assert!(ClipClassifier::from_source(&src, None, &LoadOptions::default()).is_err());
}

#[test]
fn missing_or_misshapen_tensors_are_named() {
    let src = tensor_map(&fixture("tiny_openai.safetensors"));
    let mut m = src.clone();
    m.remove("visual.transformer.resblocks.0.mlp.c_proj.bias")
        .unwrap();
    let err = ClipClassifier::from_source(&m, None, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("visual.transformer.resblocks.0.mlp.c_proj.bias") && err.contains("missing"),
        "{err}"
    );

    // A missing block in the middle: block 1 is gone but a block 2 exists.
    let mut m = TensorMap::new();
    for (name, t) in src.iter() {
        let name = name.replace("resblocks.1.", "resblocks.2.");
        m.insert(name, t.shape.clone(), t.data.clone()).unwrap();
    }
    m.set_metadata(dawin_vit::HEADS_METADATA_KEY, "2");
    let err = ClipClassifier::from_source(&m, None, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("visual.transformer.resblocks.1.ln_1.weight"),
        "{err}"
    );

    let mut m = src.clone();
    let t = m.remove("visual.ln_post.bias").unwrap();
    m.insert(
        "visual.ln_post.bias",
        vec![t.data.len() - 1],
        t.data[1..].to_vec(),
    )
    .unwrap();
    let err = ClipClassifier::from_source(&m, None, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("visual.ln_post.bias") && err.contains("[63]"),
        "{err}"
    );

    // A B/32-sized config on the tiny checkpoint: the first differing tensor is named.
    let err = ClipClassifier::from_source_with_config(&src, None, VitConfig::vit_b32(10))
        .unwrap_err()
        .to_string();
    assert!(err.contains("visual.conv1.weight"), "{err}");
}

#[test]
fn a_text_model_is_not_a_vision_checkpoint() {
    let mut text = TensorMap::new();
    text.insert(
        "text_model.embeddings.token_embedding.weight",
        vec![99, 16],
        vec![0.0; 99 * 16],
    )
    .unwrap();
    text.insert("text_projection.weight", vec![32, 16], vec![0.0; 32 * 16])
        .unwrap();
    let err = ClipClassifier::from_source(&text, None, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not a CLIP ViT image encoder") && err.contains("visual.conv1.weight"),
        "{err}"
    );
}

#[test]
fn a_resnet_clip_checkpoint_is_rejected_naming_the_missing_tensor() {
    // OpenAI RN50 also has `visual.conv1.weight` (a 3×3 stem) but no ViT positional embedding.
    let mut rn = TensorMap::new();
    rn.insert("visual.conv1.weight", vec![32, 3, 3, 3], vec![0.0; 32 * 27])
        .unwrap();
    rn.insert(
        "visual.attnpool.positional_embedding",
        vec![50, 2048],
        vec![0.0; 50 * 2048],
    )
    .unwrap();
    let err = ClipClassifier::from_source(&rn, None, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`visual.positional_embedding` is missing"),
        "{err}"
    );
}

#[test]
fn wrong_input_size_and_non_finite_inputs_are_errors() {
    let model = ClipClassifier::from_source(
        &tensor_map(&fixture("tiny_hf.safetensors")),
        None,
        &LoadOptions::default(),
    )
    .unwrap();
    let err = model
        .forward(&vec![0.0; 2 * 3 * 64 * 64], 2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("64×64") && err.contains("32×32"), "{err}");
    assert!(model.forward(&[], 0).is_err());
    let mut x = vec![0.0; 2 * 3 * 32 * 32];
    x[3 * 32 * 32 + 5] = f32::NAN;
    let err = model.forward(&x, 2).unwrap_err().to_string();
    assert!(err.contains("image 1"), "{err}");
}

#[test]
fn converting_between_namings_gives_the_other_fixture_exactly() {
    let hf_src = tensor_map(&fixture("tiny_hf.safetensors"));
    let oa_src = tensor_map(&fixture("tiny_openai.safetensors"));
    let model = ClipClassifier::from_source(&hf_src, None, &LoadOptions::default()).unwrap();
    let cfg = model.config();
    let to_oa = model
        .weights()
        .to_tensor_map(
            cfg,
            &CheckpointNaming::OpenAi {
                prefix: "visual.".into(),
            },
        )
        .unwrap();
    let to_hf = model
        .weights()
        .to_tensor_map(
            cfg,
            &CheckpointNaming::HuggingFace {
                root: String::new(),
            },
        )
        .unwrap();
    for (ours, theirs) in [(&to_oa, &oa_src), (&to_hf, &hf_src)] {
        assert_eq!(ours.len(), theirs.len());
        for (name, t) in theirs.iter() {
            assert_eq!(ours.get(name), Some(t), "{name}");
        }
    }
    // params() lines up two weight sets of one config; params_mut() edits them in place.
    let mut w = model.weights().clone();
    let n: usize = w.params().iter().map(|p| p.len()).sum();
    let expected: usize = oa_src.iter().map(|(_, t)| t.data.len()).sum();
    assert_eq!(n, expected);
    for p in w.params_mut() {
        p.iter_mut().for_each(|v| *v *= 2.0);
    }
    assert_eq!(w.head.weight[3], 2.0 * model.weights().head.weight[3]);
    assert_eq!(
        w.visual.resblocks[1].mlp_c_proj.bias.as_ref().unwrap()[0],
        2.0 * model.weights().visual.resblocks[1]
            .mlp_c_proj
            .bias
            .as_ref()
            .unwrap()[0]
    );
}

#[test]
fn param_specs_read_each_parameter_alone_in_both_namings() {
    let cfg = tiny_config();
    for (file, naming) in [
        (
            "tiny_openai.safetensors",
            CheckpointNaming::OpenAi {
                prefix: "visual.".into(),
            },
        ),
        (
            "tiny_hf.safetensors",
            CheckpointNaming::HuggingFace {
                root: String::new(),
            },
        ),
    ] {
        let src = tensor_map(&fixture(file));
        let model = ClipClassifier::from_source(&src, None, &LoadOptions::default()).unwrap();
        let params = model.weights().params();
        let specs = dawin_vit::ClipWeights::encoder_specs(&cfg, &naming);
        // Every parameter but the head's weight and bias, in `params()` order.
        assert_eq!(specs.len(), params.len() - 2, "{file}");
        for (spec, p) in specs.iter().zip(&params) {
            spec.check(&src).unwrap();
            assert_eq!(spec.len(), p.len());
            assert_eq!(&spec.load(&src).unwrap()[..], *p, "{file}: {spec:?}");
        }
        // A misshapen tensor is named by `check` without reading values.
        let spec = &specs[specs.len() - 1];
        let name = spec.names().next().unwrap().to_string();
        let mut m = src.clone();
        let t = m.remove(&name).unwrap();
        m.insert(name.clone(), vec![t.data.len()], t.data).unwrap();
        let err = spec.check(&m).unwrap_err().to_string();
        assert!(err.contains(&name), "{err}");
    }
}
