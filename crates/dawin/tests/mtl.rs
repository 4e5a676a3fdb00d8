//! Multi-task evaluation tests: merges against hand-computed values, TIES on a hand-worked
//! example, the K = 1 Dirichlet mixture, and the per-sample blended forward against an explicit
//! merge-per-sample loop, on the embedded demo (crates/dawin-cli/demo/mtl).
use dawin::core::merge::ties_task_vector;
use dawin::mtl::{
    apply_head, evaluate_mtl, file_safe, lambda_vectors, load_mtl, merge_encoders, ties_merge,
    MtlConfig, MtlMethod, MtlModels, MtlTask,
};
use dawin::vit::{cpu, CheckpointEncoder, ClipClassifier, LoadOptions};
use dawin::{Dataset, InMemoryDataset};
use std::path::PathBuf;

const TASKS: [&str; 3] = ["digits", "rotation", "parity"];

fn demo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../dawin-cli/demo/mtl")
        .join(p)
}

fn load() -> MtlModels {
    let list = |sub: &str| -> Vec<(String, PathBuf)> {
        TASKS
            .iter()
            .map(|n| (n.to_string(), demo(&format!("{sub}{n}.safetensors"))))
            .collect()
    };
    load_mtl(
        &demo("base.safetensors"),
        &list(""),
        &list("heads/"),
        &LoadOptions::default(),
    )
    .unwrap()
}

fn data(name: &str, n: usize) -> InMemoryDataset {
    InMemoryDataset::open(name, demo(&format!("data/{name}.safetensors")), 16)
        .unwrap()
        .head(n)
}

/// The fine-tuned encoders with their names, as `evaluate_mtl` takes them.
fn named(m: &MtlModels) -> Vec<(String, &CheckpointEncoder)> {
    m.models.iter().map(|(n, c)| (n.clone(), c)).collect()
}

/// One task per demo dataset, with its head.
fn tasks_of<'a>(sets: &'a [InMemoryDataset], m: &MtlModels) -> Vec<MtlTask<'a>> {
    sets.iter()
        .zip(&m.heads)
        .map(|(d, (n, h))| MtlTask {
            name: n.clone(),
            head: h.clone(),
            data: d as &dyn Dataset,
        })
        .collect()
}

fn encoder_params(c: &ClipClassifier) -> Vec<f32> {
    let p = c.weights().params();
    let head = 1 + usize::from(c.weights().head.bias.is_some());
    p[..p.len() - head].concat()
}

#[test]
fn ties_matches_a_hand_worked_example() {
    let t1 = [0.5f32, -0.1, 0.3, -0.8, 0.05];
    let t2 = [-0.4f32, 0.2, 0.6, 0.1, -0.02];
    let t3 = [0.7f32, -0.3, -0.9, 0.2, 0.01];
    let taus: [&[f32]; 3] = [&t1, &t2, &t3];
    // top 0.4 of 5 → 2 kept per model:
    //   τ̂1 = [0.5, 0, 0, -0.8, 0], τ̂2 = [-0.4, 0, 0.6, 0, 0], τ̂3 = [0.7, 0, -0.9, 0, 0]
    //   Σ = [0.8, 0, -0.3, -0.8, 0] → signs [+, 0, −, −, 0]; majority of the signs (1−1−1 < 0): −
    //   disjoint mean: [(0.5+0.7)/2, none, -0.9, -0.8, none] = [0.6, 0, -0.9, -0.8, 0]
    let want = [0.6f32, 0.0, -0.9, -0.8, 0.0];
    let got = ties_task_vector(&taus, 0.4).unwrap();
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
    }
    // top 0.2 → 1 kept: τ̂1 = [0,0,0,-0.8,0], τ̂2 = [0,0,0.6,0,0], τ̂3 = [0,0,-0.9,0,0];
    //   Σ = [0,0,-0.3,-0.8,0], elected −; 0.6 disagrees and is dropped → [0, 0, -0.9, -0.8, 0]
    let want = [0.0f32, 0.0, -0.9, -0.8, 0.0];
    let got = ties_task_vector(&taus, 0.2).unwrap();
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
    }
    // top 1: nothing trimmed; index 1: Σ = -0.2 → −, mean(-0.1, -0.3) = -0.2;
    // index 4: Σ = 0.04 → +, mean(0.05, 0.01) = 0.03.
    let got = ties_task_vector(&taus, 1.0).unwrap();
    assert!(
        (got[1] + 0.2).abs() < 1e-6 && (got[4] - 0.03).abs() < 1e-6,
        "{got:?}"
    );
    assert!(ties_task_vector(&taus, 0.0).is_err());
    assert!(ties_task_vector(&[&t1[..], &t2[..3]], 0.2).is_err());
}

#[test]
fn one_model_with_scale_one_is_that_model_and_scale_zero_is_the_base() {
    let m = load();
    let ft = &m.models[0].1;
    let merged = merge_encoders(&m.base, &[ft], &[1.0]).unwrap();
    assert_eq!(
        encoder_params(&merged),
        encoder_params(&ft.classifier().unwrap())
    );
    let merged = merge_encoders(&m.base, &[ft], &[0.0]).unwrap();
    assert_eq!(encoder_params(&merged), encoder_params(&m.base));
}

#[test]
fn weight_averaging_is_the_mean_of_the_fine_tuned_encoders() {
    let m = load();
    let refs: Vec<&CheckpointEncoder> = m.models.iter().map(|(_, c)| c).collect();
    let avg = merge_encoders(&m.base, &refs, &[1.0 / 3.0; 3]).unwrap();
    let ps: Vec<Vec<f32>> = refs
        .iter()
        .map(|c| encoder_params(&c.classifier().unwrap()))
        .collect();
    for (i, v) in encoder_params(&avg).iter().enumerate() {
        let want = (ps[0][i] as f64 + ps[1][i] as f64 + ps[2][i] as f64) / 3.0;
        assert!((*v as f64 - want).abs() < 1e-5, "param {i}: {v} vs {want}");
    }
    // And in the evaluation, weight-avg equals task arithmetic with s = 1/M.
    let sets: Vec<InMemoryDataset> = TASKS.iter().map(|n| data(n, 40)).collect();
    let tasks = tasks_of(&sets, &m);
    let named = named(&m);
    let r = evaluate_mtl(
        &m.base,
        &named,
        &tasks,
        &MtlConfig {
            methods: vec![MtlMethod::WeightAvg, MtlMethod::TaskArithmetic],
            ta_scale: 1.0 / 3.0,
            progress: false,
            ..MtlConfig::default()
        },
    )
    .unwrap();
    assert_eq!(r.methods[0].accuracy, r.methods[1].accuracy);
}

#[test]
fn dirichlet_k1_gives_each_dataset_its_mean_lambda_and_dawin_sample_is_exact() {
    let m = load();
    let sets: Vec<InMemoryDataset> = TASKS.iter().map(|n| data(n, 24)).collect();
    let tasks = tasks_of(&sets, &m);
    let named = named(&m);
    let r = evaluate_mtl(
        &m.base,
        &named,
        &tasks,
        &MtlConfig {
            progress: false,
            ..MtlConfig::default()
        },
    )
    .unwrap();
    assert!((r.scale - 0.9).abs() < 1e-6, "s = 0.3·M by default");
    let refs: Vec<&CheckpointEncoder> = m.models.iter().map(|(_, c)| c).collect();
    for t in &tasks {
        let mix = &r.mixtures[&t.name];
        assert_eq!(mix.k, 1);
        assert_eq!(mix.counts, vec![t.data.len()]);
        // The λ vectors from first principles: entropies (T = 1) of each model with the head.
        let x = t.data.load(&(0..t.data.len()).collect::<Vec<_>>()).unwrap();
        let n = t.data.len();
        let zs: Vec<Vec<f32>> = refs
            .iter()
            .map(|c| {
                let c = c.classifier().unwrap();
                let (_, f) = cpu::forward(&x, n, c.config(), c.weights()).unwrap();
                apply_head(&t.head, &f).unwrap()
            })
            .collect();
        let c = t.head.out_dim;
        let mut mean = [0f64; 3];
        let mut lam = vec![0f32; n * 3];
        for i in 0..n {
            let h: Vec<f64> = zs
                .iter()
                .map(|z| {
                    let row = &z[i * c..(i + 1) * c];
                    let mx = row.iter().cloned().fold(f32::MIN, f32::max) as f64;
                    let s: f64 = row.iter().map(|&v| (v as f64 - mx).exp()).sum();
                    -row.iter()
                        .map(|&v| {
                            let p = (v as f64 - mx).exp() / s;
                            if p > 0.0 {
                                p * p.ln()
                            } else {
                                0.0
                            }
                        })
                        .sum::<f64>()
                })
                .collect();
            let e: Vec<f64> = h.iter().map(|h| (-h).exp()).collect();
            let se: f64 = e.iter().sum();
            for j in 0..3 {
                lam[i * 3 + j] = (e[j] / se) as f32;
                mean[j] += e[j] / se / n as f64;
            }
        }
        let zr: Vec<&[f32]> = zs.iter().map(|z| &z[..]).collect();
        let lib = lambda_vectors(&zr, c).unwrap();
        for (a, b) in lib.iter().zip(&lam) {
            assert!((a - b).abs() < 1e-5);
        }
        for (j, (name, _)) in m.models.iter().enumerate() {
            assert!(
                (mix.means[0][j] - mean[j]).abs() < 1e-5,
                "{:?} vs {mean:?}",
                mix.means
            );
            assert!((r.mean_lambda[&t.name][name] - mean[j]).abs() < 1e-5);
        }
        // dawin-sample vs an explicit loop: merge θ0 + s Σ λ_ij τ_j per sample, forward alone.
        let want_pred: Vec<usize> = (0..n)
            .map(|i| {
                let w: Vec<f32> = lam[i * 3..i * 3 + 3].iter().map(|l| 0.9 * l).collect();
                let merged = merge_encoders(&m.base, &refs, &w).unwrap();
                let xi = &x[i * 768..(i + 1) * 768];
                let (_, f) = cpu::forward(xi, 1, merged.config(), merged.weights()).unwrap();
                let z = apply_head(&t.head, &f).unwrap();
                (0..c).fold(0, |b, k| if z[k] > z[b] { k } else { b })
            })
            .collect();
        let ok = want_pred
            .iter()
            .zip(t.data.labels())
            .filter(|(p, y)| **p as i64 == **y)
            .count();
        let want_acc = 100.0 * ok as f64 / n as f64;
        let row = r
            .methods
            .iter()
            .find(|r| r.method == "dawin-sample")
            .unwrap();
        assert!((row.accuracy[&t.name] - want_acc).abs() < 1e-9);
    }
    // The Fig. 7 heat map: cell (row r, column c) from the origin, sampled at its centre; its
    // colour from the mean λ; the own expert's cell framed in black and, here, darkest in its row.
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("heat.png");
    dawin::plot::lambda_heatmap(&r, &png).unwrap();
    let img = image::open(&png).unwrap().to_rgb8();
    let (cell, (ox, oy)) = (dawin::plot::HEATMAP_CELL, dawin::plot::HEATMAP_ORIGIN);
    assert_eq!(
        (img.width(), img.height()),
        (ox + 3 * cell + 4, oy + 3 * cell + 4)
    );
    let centre = |row: usize, col: usize| {
        img.get_pixel(
            ox + cell * col as u32 + cell / 2,
            oy + cell * row as u32 + cell / 2,
        )
        .0
    };
    for (ri, d) in TASKS.iter().enumerate() {
        let own = centre(ri, ri);
        for (c, mname) in TASKS.iter().enumerate() {
            let px = centre(ri, c);
            assert_eq!(px, dawin::plot::heat_color(r.mean_lambda[*d][*mname]));
            if c != ri {
                assert!(own[0] < px[0], "{d}: the own expert's cell is darker");
            }
        }
        assert_eq!(
            img.get_pixel(ox + cell * ri as u32, oy + cell * ri as u32 + cell / 2)
                .0,
            [0, 0, 0]
        );
        // The row's label: ink left of the cells.
        let ink = (0..ox - 4)
            .flat_map(|x| (0..cell).map(move |y| (x, oy + cell * ri as u32 + y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0 == [0, 0, 0])
            .count();
        assert!(ink > 20, "{d}: row label drawn ({ink} pixels)");
    }
    assert_eq!(dawin::plot::heat_color(0.0), [255, 255, 255]);
    assert_eq!(dawin::plot::heat_color(1.0), [8, 48, 107]);
    // individual† picks the model of the dataset's name.
    let dag = r
        .methods
        .iter()
        .find(|r| r.method == "individual†")
        .unwrap();
    for t in TASKS {
        let own = r
            .methods
            .iter()
            .find(|r| r.method == format!("ft:{t}"))
            .unwrap();
        assert_eq!(dag.accuracy[t], own.accuracy[t]);
    }
}

#[test]
fn bad_inputs_are_named() {
    let m = load();
    let d = data("digits", 8);
    let named = named(&m);
    // A head whose width is not the encoder's embedding width.
    let mut h = m.heads[0].1.clone();
    h.in_dim = 16;
    h.weight.truncate(h.out_dim * 16);
    let tasks = [MtlTask {
        name: "digits".into(),
        head: h,
        data: &d,
    }];
    let e = evaluate_mtl(&m.base, &named, &tasks, &MtlConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("head of `digits`") && e.contains("16"), "{e}");
    // A NaN in a head gives NaN logits: an error, not a silent accuracy.
    let mut h = m.heads[0].1.clone();
    h.weight[3] = f32::NAN;
    let tasks = [MtlTask {
        name: "digits".into(),
        head: h,
        data: &d,
    }];
    let e = evaluate_mtl(&m.base, &named, &tasks, &MtlConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("non-finite logit"), "{e}");
    // No model.
    let tasks = [MtlTask {
        name: "digits".into(),
        head: m.heads[0].1.clone(),
        data: &d,
    }];
    assert!(evaluate_mtl::<ClipClassifier>(&m.base, &[], &tasks, &MtlConfig::default()).is_err());
    // Labels outside the head's classes (parity has 2 classes, digits' labels go to 9).
    let tasks = [MtlTask {
        name: "digits".into(),
        head: m.heads[2].1.clone(),
        data: &d,
    }];
    let e = evaluate_mtl(&m.base, &named, &tasks, &MtlConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not a class of its head"), "{e}");
}

fn write_map(map: &dawin::vit::TensorMap, path: &std::path::Path, skip: &[&str]) {
    let ts: Vec<dawin::core::OwnedTensor> = map
        .iter()
        .filter(|(n, _)| !skip.contains(n))
        .map(|(n, t)| dawin::core::OwnedTensor::from_f32(n, t.shape.clone(), &t.data))
        .collect();
    dawin::core::write_safetensors(path, &ts, None).unwrap();
}

fn heads_list() -> Vec<(String, PathBuf)> {
    vec![("digits".into(), demo("heads/digits.safetensors"))]
}

#[test]
fn sharded_checkpoints_load_like_the_single_file() {
    let dir = tempfile::tempdir().unwrap();
    let sd = dawin::core::StateDict::open(demo("digits.safetensors")).unwrap();
    let names = sd.names();
    let (a, b): (Vec<&str>, Vec<&str>) = names.iter().partition(|n| n.contains("resblocks.0"));
    let mut weight_map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", &a),
        ("model-00002-of-00002.safetensors", &b),
    ] {
        let ts: Vec<_> = part
            .iter()
            .map(|n| sd.tensor(n).unwrap().to_owned_tensor())
            .collect();
        dawin::core::write_safetensors(dir.path().join(file), &ts, None).unwrap();
        for n in part.iter() {
            weight_map.insert(n.to_string(), serde_json::Value::from(file));
        }
    }
    let index = dir.path().join("model.safetensors.index.json");
    std::fs::write(
        &index,
        serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map}).to_string(),
    )
    .unwrap();
    let single = load_mtl(
        &demo("base.safetensors"),
        &[("digits".into(), demo("digits.safetensors"))],
        &heads_list(),
        &LoadOptions::default(),
    )
    .unwrap();
    for path in [index.clone(), dir.path().to_path_buf()] {
        let sharded = load_mtl(
            &demo("base.safetensors"),
            &[("digits".into(), path)],
            &heads_list(),
            &LoadOptions::default(),
        )
        .unwrap();
        assert_eq!(
            encoder_params(&sharded.models[0].1.classifier().unwrap()),
            encoder_params(&single.models[0].1.classifier().unwrap())
        );
    }
    // An index naming a tensor its shard lacks.
    weight_map.insert(
        "visual.not_there".into(),
        serde_json::Value::from("model-00001-of-00002.safetensors"),
    );
    std::fs::write(
        &index,
        serde_json::json!({"weight_map": weight_map}).to_string(),
    )
    .unwrap();
    let e = load_mtl(
        &demo("base.safetensors"),
        &[("digits".into(), index)],
        &heads_list(),
        &LoadOptions::default(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("model-00001-of-00002.safetensors") && e.contains("visual.not_there"),
        "{e}"
    );
}

#[test]
fn a_hugging_face_vision_tower_takes_the_base_projection() {
    use dawin::vit::CheckpointNaming;
    let dir = tempfile::tempdir().unwrap();
    let m = load();
    let hf = CheckpointNaming::HuggingFace {
        root: String::new(),
    };
    let ft = m.models[0].1.classifier().unwrap();
    // The fine-tuned encoder in Hugging Face naming, without projection and head
    // (CLIPVisionModel). Its own projection differs from the base's, so taking it would show.
    assert_ne!(
        ft.weights().visual.proj.weight,
        m.base.weights().visual.proj.weight
    );
    let w = ft.weights().clone();
    let map = w.to_tensor_map(ft.config(), &hf).unwrap();
    let tower = dir.path().join("tower.safetensors");
    write_map(
        &map,
        &tower,
        &[
            "visual_projection.weight",
            "classification_head.weight",
            "classification_head.bias",
        ],
    );
    let opts = LoadOptions {
        heads: Some(4),
        ..Default::default()
    };
    // Base in OpenAI naming (the demo file) and in Hugging Face naming.
    let hf_base = dir.path().join("hf_base.safetensors");
    write_map(
        &m.base
            .weights()
            .to_tensor_map(m.base.config(), &hf)
            .unwrap(),
        &hf_base,
        &["classification_head.weight", "classification_head.bias"],
    );
    for base in [demo("base.safetensors"), hf_base] {
        let got = load_mtl(
            &base,
            &[("digits".into(), tower.clone())],
            &heads_list(),
            &opts,
        )
        .unwrap();
        assert_eq!(got.vision_only, vec!["digits".to_string()]);
        let g = got.models[0].1.classifier().unwrap();
        let g = &g.weights().visual;
        assert_eq!(g.proj.weight, m.base.weights().visual.proj.weight);
        assert_eq!(g.conv1.weight, ft.weights().visual.conv1.weight);
        assert_eq!(
            g.resblocks[1].mlp_c_fc.weight,
            ft.weights().visual.resblocks[1].mlp_c_fc.weight
        );
    }
}

#[test]
fn dawin_with_k_components_merges_once_per_used_component() {
    let m = load();
    let sets: Vec<InMemoryDataset> = TASKS.iter().map(|n| data(n, 30)).collect();
    let tasks = tasks_of(&sets, &m);
    let named = named(&m);
    let cfg = |k| MtlConfig {
        methods: vec![MtlMethod::Dawin],
        k,
        progress: false,
        ..MtlConfig::default()
    };
    let r1 = evaluate_mtl(&m.base, &named, &tasks, &cfg(1)).unwrap();
    assert_eq!(r1.methods[0].merges, Some(3), "one merge per dataset");
    let r = evaluate_mtl(&m.base, &named, &tasks, &cfg(2)).unwrap();
    let used: usize = r
        .mixtures
        .values()
        .map(|x| {
            assert_eq!(x.k, 2);
            assert_eq!(x.counts.iter().sum::<usize>(), 30);
            for mean in &x.means {
                assert!((mean.iter().sum::<f64>() - 1.0).abs() < 1e-6);
            }
            x.counts.iter().filter(|&&c| c > 0).count()
        })
        .sum();
    assert_eq!(r.methods[0].merges, Some(used));
    // K = 0 is refused.
    assert!(evaluate_mtl(&m.base, &named, &tasks, &cfg(0)).is_err());
}

#[test]
fn row_names_become_file_safe() {
    assert_eq!(file_safe("ft:digits"), "ft_digits");
    assert_eq!(file_safe("individual†"), "individual-oracle");
    assert_eq!(file_safe("weight-avg"), "weight-avg");
    assert_eq!(file_safe("ft:a/b c"), "ft_a_b_c");
}

#[test]
fn memory_mapped_encoders_give_the_results_of_in_memory_ones() {
    let m = load();
    let owned: Vec<(String, ClipClassifier)> = m
        .models
        .iter()
        .map(|(n, c)| (n.clone(), c.classifier().unwrap().into_owned()))
        .collect();
    // Merges read parameter by parameter from the checkpoints equal merges of loaded models.
    let lazy: Vec<&CheckpointEncoder> = m.models.iter().map(|(_, c)| c).collect();
    let mem: Vec<&ClipClassifier> = owned.iter().map(|(_, c)| c).collect();
    let w = [0.5f32, -0.25, 1.5];
    assert_eq!(
        encoder_params(&merge_encoders(&m.base, &lazy, &w).unwrap()),
        encoder_params(&merge_encoders(&m.base, &mem, &w).unwrap())
    );
    // Streaming TIES equals `ties_task_vector` over the flattened task vectors, value for value.
    let base = encoder_params(&m.base);
    let taus: Vec<Vec<f32>> = mem
        .iter()
        .map(|c| {
            encoder_params(c)
                .iter()
                .zip(&base)
                .map(|(x, y)| x - y)
                .collect()
        })
        .collect();
    let tr: Vec<&[f32]> = taus.iter().map(|t| &t[..]).collect();
    for (top, scale) in [(0.2f32, 0.3f32), (0.05, 1.0), (1.0, 0.5)] {
        let tm = ties_task_vector(&tr, top).unwrap();
        let want: Vec<f32> = base.iter().zip(&tm).map(|(b, t)| b + scale * t).collect();
        let got = encoder_params(&ties_merge(&m.base, &lazy, top, scale).unwrap());
        assert_eq!(got, want, "top {top}, scale {scale}");
    }
    // The whole evaluation: every method, same report from either kind of encoder.
    let sets: Vec<InMemoryDataset> = TASKS.iter().map(|n| data(n, 16)).collect();
    let tasks = tasks_of(&sets, &m);
    let cfg = MtlConfig {
        progress: false,
        ..MtlConfig::default()
    };
    let named_lazy = named(&m);
    let named_mem: Vec<(String, &ClipClassifier)> =
        owned.iter().map(|(n, c)| (n.clone(), c)).collect();
    let a = evaluate_mtl(&m.base, &named_lazy, &tasks, &cfg).unwrap();
    let b = evaluate_mtl(&m.base, &named_mem, &tasks, &cfg).unwrap();
    assert_eq!(a.methods.len(), b.methods.len());
    for (x, y) in a.methods.iter().zip(&b.methods) {
        assert_eq!((&x.method, &x.accuracy), (&y.method, &y.accuracy));
    }
    assert_eq!(a.mean_lambda, b.mean_lambda);
}

#[test]
fn an_encoder_from_another_base_is_refused_and_distances_are_reported() {
    let m = load();
    // ‖θ_j − θ0‖/‖θ0‖ of the demo's encoders, computed independently with numpy (float64) by
    // scripts/task_distance.py.
    let want = [
        ("digits", 0.09531703242575534),
        ("rotation", 0.13346955370420582),
        ("parity", 0.12318062500223785),
    ];
    for ((name, enc), (wn, wd)) in m.models.iter().zip(want) {
        assert_eq!(name, wn);
        let d = dawin::mtl::relative_distance(&m.base, enc).unwrap();
        assert!((d - wd).abs() < 1e-6, "{name}: {d} vs {wd}");
    }
    let sets: Vec<InMemoryDataset> = TASKS.iter().map(|n| data(n, 8)).collect();
    let tasks = tasks_of(&sets, &m);
    let named = named(&m);
    let cfg = MtlConfig {
        methods: vec![MtlMethod::Base],
        progress: false,
        ..MtlConfig::default()
    };
    let r = evaluate_mtl(&m.base, &named, &tasks, &cfg).unwrap();
    assert!((r.relative_distance["rotation"] - want[1].1).abs() < 1e-6);
    // An encoder of the same shapes pre-trained separately (random weights here).
    let other = dawin::vit::ClipWeights::random(m.base.config(), 7).unwrap();
    let other = ClipClassifier::new(m.base.config().clone(), other).unwrap();
    let d = dawin::mtl::relative_distance(&m.base, &other).unwrap();
    assert!(d > 1.0, "{d}");
    let mixed: Vec<(String, &ClipClassifier)> = vec![("other".into(), &other)];
    let e = evaluate_mtl(&m.base, &mixed, &tasks, &cfg)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("model `other`") && e.contains("another pre-trained model"),
        "{e}"
    );
    // Accepted when the limit is raised; a non-positive limit is an argument error.
    let loose = MtlConfig {
        max_distance: 10.0,
        ..cfg.clone()
    };
    assert!(evaluate_mtl(&m.base, &mixed, &tasks, &loose).is_ok());
    let bad = MtlConfig {
        max_distance: 0.0,
        ..cfg
    };
    let e = evaluate_mtl(&m.base, &mixed, &tasks, &bad)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--max-distance"), "{e}");
}
