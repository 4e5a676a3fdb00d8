//! Every PyTorch fixture form (scripts/make_torch_fixtures.py, written by PyTorch 2.15) reads to
//! exactly the tensors PyTorch's own `state_dict()` / dict holds: same names in the same order,
//! same dtype, same shape, bit-identical values (compared with the contiguous copies PyTorch wrote
//! to safetensors).

use std::path::PathBuf;

use dawin_core::torch::open_torch;
use dawin_core::torch::{Attr, TorchDType, TorchFormat};
use dawin_core::{CheckpointFile, StateDict, TensorSource};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torch")
        .join(name)
}

fn manifest() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// safetensors dtype name for a torch dtype (the expected files are safetensors).
fn st_dtype(d: TorchDType) -> &'static str {
    match d {
        TorchDType::F64 => "F64",
        TorchDType::F32 => "F32",
        TorchDType::F16 => "F16",
        TorchDType::BF16 => "BF16",
        TorchDType::I64 => "I64",
        TorchDType::I32 => "I32",
        TorchDType::I16 => "I16",
        TorchDType::I8 => "I8",
        TorchDType::U8 => "U8",
        TorchDType::Bool => "BOOL",
    }
}

fn check_fixture(name: &str, entry: &serde_json::Value) {
    let ckpt = open_torch(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let expected_file = entry["expected"].as_str().unwrap();
    let raw = std::fs::read(fixture(expected_file)).unwrap();
    let expected = safetensors::SafeTensors::deserialize(&raw).unwrap();
    let pairs = entry["tensors"].as_array().unwrap();
    let want: Vec<&str> = pairs.iter().map(|p| p[0].as_str().unwrap()).collect();
    assert_eq!(ckpt.names(), want, "{name}: names or order differ");
    for p in pairs {
        let (ours, theirs) = (p[0].as_str().unwrap(), p[1].as_str().unwrap());
        let t = ckpt.tensor(ours).unwrap();
        let e = expected.tensor(theirs).unwrap();
        assert_eq!(t.shape(), e.shape(), "{name}: {ours} shape");
        assert_eq!(
            format!("{:?}", e.dtype()),
            st_dtype(t.dtype()),
            "{name}: {ours} dtype"
        );
        assert!(
            t.contiguous_bytes().as_ref() == e.data(),
            "{name}: {ours} values differ"
        );
    }
}

#[test]
fn every_fixture_form_reads_to_pytorchs_state_dict() {
    let m = manifest();
    let forms = m.as_object().unwrap();
    assert!(
        forms.len() >= 12,
        "{} fixtures in the manifest",
        forms.len()
    );
    for (name, entry) in forms {
        check_fixture(name, entry);
    }
}

#[test]
fn formats_are_recognised() {
    for (name, f) in [
        ("sd_zip.pt", TorchFormat::Zip),
        ("sd_legacy.pt", TorchFormat::Legacy),
        ("wiseft.pkl", TorchFormat::Pickle),
        ("jit.pt", TorchFormat::TorchScript),
        ("zeroshot.pt", TorchFormat::Zip),
        ("strided_deflated.pt", TorchFormat::Zip),
    ] {
        assert_eq!(open_torch(fixture(name)).unwrap().format(), f, "{name}");
    }
}

#[test]
fn whole_modules_expose_their_classes_and_attributes() {
    let head = open_torch(fixture("head_Tiny.pt")).unwrap();
    assert_eq!(head.names(), ["weight", "bias"]);
    assert_eq!(head.attribute("normalize"), Some(&Attr::Bool(true)));
    assert_eq!(head.class_at(""), Some("src.modeling.ClassificationHead"));
    let w = head.tensor("weight").unwrap();
    assert_eq!(w.shape(), [5, 32]);

    let enc = open_torch(fixture("zeroshot.pt")).unwrap();
    assert_eq!(enc.class_at(""), Some("src.modeling.ImageEncoder"));
    assert_eq!(enc.class_at("model"), Some("open_clip.model.CLIP"));
    assert_eq!(
        enc.attribute("cache_dir").and_then(Attr::as_str),
        Some("/checkpoints/cache")
    );
    // The torchvision transforms are plain attributes: reported, not walked.
    assert!(
        enc.ignored().iter().any(|(p, _)| p == "train_preprocess"),
        "{:?}",
        enc.ignored()
    );

    let clf = open_torch(fixture("wiseft.pkl")).unwrap();
    assert_eq!(
        clf.class_at(""),
        Some("src.models.modeling.ImageClassifier")
    );
    assert_eq!(
        clf.attribute("classification_head.normalize"),
        Some(&Attr::Bool(true))
    );
    assert_eq!(clf.attribute("process_images"), Some(&Attr::Bool(true)));

    let jit = open_torch(fixture("jit.pt")).unwrap();
    assert_eq!(jit.class_at(""), Some("__torch__.open_clip.model.CLIP"));
    assert_eq!(jit.attribute("context_length"), Some(&Attr::Int(8)));
}

#[test]
fn strides_and_shared_storages_are_respected() {
    for name in ["strided.pt", "strided_legacy.pt"] {
        let c = open_torch(fixture(name)).unwrap();
        let (w, wt) = (c.tensor("w").unwrap(), c.tensor("w_t").unwrap());
        assert_eq!(
            w.storage_key(),
            wt.storage_key(),
            "{name}: w and w.t() share a storage"
        );
        assert_eq!(wt.strides(), [1, 4]);
        assert!(w.is_contiguous() && !wt.is_contiguous());
        assert!(wt.raw_bytes().is_none());
        let (a, b) = (w.to_f32_vec(), wt.to_f32_vec());
        for i in 0..6 {
            for j in 0..4 {
                assert_eq!(a[i * 4 + j], b[j * 6 + i]);
            }
        }
        let (q, k) = (c.tensor("q").unwrap(), c.tensor("k").unwrap());
        assert_eq!(q.storage_key(), k.storage_key());
        assert_eq!((q.storage_offset(), k.storage_offset()), (0, 20));
        assert!(k.raw_bytes().is_some(), "a row slice is contiguous");
        assert_eq!(c.tensor("expand").unwrap().strides(), [0, 1]);
        assert_eq!(
            c.tensor("expand").unwrap().to_f32_vec(),
            [0., 1., 2., 0., 1., 2., 0., 1., 2., 0., 1., 2.]
        );
        assert_eq!(c.tensor("scalar").unwrap().to_f32_vec(), [3.5]);
        assert_eq!(c.tensor("bool").unwrap().to_f32_vec(), [1., 0., 1.]);
        assert_eq!(c.tensor("i32").unwrap().dtype(), TorchDType::I32);
        assert_eq!(c.tensor("f64").unwrap().dtype(), TorchDType::F64);
        // A half tensor reads in its own dtype.
        let h = c.tensor("f16_t").unwrap();
        assert_eq!(h.to_vec::<half::f16>().unwrap().len(), 15);
        assert!(h.to_vec::<f32>().is_none());
    }
}

#[test]
fn checkpoint_enum_treats_safetensors_and_pytorch_alike() {
    let pt = CheckpointFile::open(fixture("sd_zip.pt")).unwrap();
    let st = CheckpointFile::open(fixture("tiny_f32.safetensors")).unwrap();
    assert!(matches!(pt, CheckpointFile::Torch(_)));
    assert!(matches!(st, CheckpointFile::Safetensors(_)));
    let a = pt.tensor_f32("model.visual.proj").unwrap();
    let b = st.tensor_f32("visual.proj").unwrap();
    assert_eq!(a, b);
    assert_eq!(
        pt.tensor_meta("model.visual.proj").unwrap(),
        st.tensor_meta("visual.proj").unwrap()
    );
    let bf = CheckpointFile::open(fixture("sd_bf16.pt")).unwrap();
    let v: Vec<half::bf16> = bf.tensor_vec("model.visual.conv1.weight").unwrap();
    let sd = StateDict::open(fixture("tiny_bf16.safetensors")).unwrap();
    assert_eq!(
        v,
        sd.tensor("visual.conv1.weight")
            .unwrap()
            .to_vec::<half::bf16>()
            .unwrap()
    );
    assert!(bf.tensor_vec::<f32>("model.visual.conv1.weight").is_err());
    // i32 has no DType on the safetensors side: listed, but a clear error on read.
    let s = CheckpointFile::open(fixture("strided.pt")).unwrap();
    let e = s.tensor_meta("i32").unwrap_err().to_string();
    assert!(e.contains("i32") && e.contains("strided.pt"), "{e}");
    assert_eq!(s.tensor_owned("w_t").unwrap().shape, [4, 6]);
}

/// The towers written for the integration task (architecture resolution, logits parity) read
/// with open_clip's names, LayerScale included, and match their io files' shapes.
#[test]
fn integration_towers_read() {
    for (tag, width, layers) in [
        ("quickgelu", 64, 2),
        ("gelu", 64, 2),
        ("ls", 64, 2),
        ("hw48", 96, 1),
    ] {
        let c = open_torch(fixture(&format!("arch_{tag}.pt"))).unwrap();
        assert_eq!(c.tensor("visual.class_embedding").unwrap().shape(), [width]);
        let blocks = c
            .names()
            .iter()
            .filter(|n| n.ends_with(".attn.in_proj_weight"))
            .count();
        assert_eq!(blocks, layers, "{tag}");
        let ls = c.names().iter().any(|n| n.ends_with("ls_1.gamma"));
        assert_eq!(ls, tag == "ls", "{tag}");
        assert_eq!(
            c.tensor("classification_head.weight").unwrap().shape(),
            [5, 32]
        );
        let io = StateDict::open(fixture(&format!("arch_{tag}_io.safetensors"))).unwrap();
        assert_eq!(io.tensor("logits").unwrap().shape, [3, 5]);
        assert_eq!(io.tensor("inputs").unwrap().shape, [3, 3, 32, 32]);
    }
}
