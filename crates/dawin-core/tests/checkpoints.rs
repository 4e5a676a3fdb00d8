//! Whole-checkpoint merges through safetensors files: dtypes kept, values as worked out by hand.

use dawin_core::{merge, write_safetensors, DType, OwnedTensor, StateDict};
use half::{bf16, f16};

fn ckpt(dir: &std::path::Path, name: &str, scale: f32) -> StateDict {
    let p = dir.join(name);
    let w: Vec<f32> = (0..6).map(|i| scale * i as f32).collect();
    let h: Vec<f16> = (0..5)
        .map(|i| f16::from_f32(scale * (i as f32 + 0.5)))
        .collect();
    let b: Vec<bf16> = (0..3)
        .map(|i| bf16::from_f32(scale * (1.0 - i as f32)))
        .collect();
    write_safetensors(
        &p,
        &[
            OwnedTensor::from_f32("visual.proj", vec![2, 3], &w),
            OwnedTensor::from_slice("visual.ln_pre.weight", vec![5], &h),
            OwnedTensor::from_slice("classification_head.bias", vec![3], &b),
            OwnedTensor::from_i64("position_ids", vec![1, 4], &[0, 1, 2, 3]),
        ],
        None,
    )
    .unwrap();
    StateDict::open(p).unwrap()
}

#[test]
fn lerp_of_checkpoints_keeps_dtypes_and_matches_hand_values() {
    let d = tempfile::tempdir().unwrap();
    let a = ckpt(d.path(), "a.safetensors", 1.0);
    let b = ckpt(d.path(), "b.safetensors", 3.0);
    // θ(0.25) = 0.75·θ0 + 0.25·θ1 = (0.75 + 0.75)·θ0 = 1.5·θ0 since θ1 = 3·θ0.
    let merged = merge::lerp_state_dicts(&a, &b, 0.25).unwrap();
    let out = d.path().join("m.safetensors");
    write_safetensors(&out, &merged, None).unwrap();
    let m = StateDict::open(&out).unwrap();
    m.check_compatible(&a).unwrap();
    assert_eq!(
        m.tensor("visual.proj").unwrap().to_f32_vec(),
        vec![0.0, 1.5, 3.0, 4.5, 6.0, 7.5]
    );
    let ln = m.tensor("visual.ln_pre.weight").unwrap();
    assert_eq!(ln.dtype, DType::F16);
    assert_eq!(ln.to_f32_vec(), vec![0.75, 2.25, 3.75, 5.25, 6.75]);
    let hb = m.tensor("classification_head.bias").unwrap();
    assert_eq!(hb.dtype, DType::BF16);
    assert_eq!(hb.to_f32_vec(), vec![1.5, 0.0, -1.5]);
    assert_eq!(
        m.tensor("position_ids").unwrap().to_i64_vec().unwrap(),
        vec![0, 1, 2, 3]
    );

    // λ = 0 and 1 reproduce the checkpoints byte for byte.
    for (l, src) in [(0.0, &a), (1.0, &b)] {
        for t in merge::lerp_state_dicts(&a, &b, l).unwrap() {
            assert_eq!(
                t.bytes,
                src.tensor(&t.name).unwrap().bytes,
                "{} at λ={l}",
                t.name
            );
        }
    }
    assert!(merge::lerp_state_dicts(&a, &b, 1.5).is_err());
    assert!(merge::lerp_state_dicts(&a, &b, f32::NAN).is_err());

    // Multi-lerp: K checkpoints from one pass, equal to separate lerps.
    let ks = [0.1, 0.5, 0.9];
    let multi = merge::multi_lerp_state_dicts(&a, &b, &ks).unwrap();
    for (k, &l) in ks.iter().enumerate() {
        assert_eq!(multi[k], merge::lerp_state_dicts(&a, &b, l).unwrap());
    }
}

#[test]
fn task_arithmetic_of_checkpoints() {
    let d = tempfile::tempdir().unwrap();
    let base = ckpt(d.path(), "base.safetensors", 1.0);
    let m1 = ckpt(d.path(), "m1.safetensors", 2.0);
    let m2 = ckpt(d.path(), "m2.safetensors", 5.0);
    // θ0 + 0.5(2θ0 − θ0) + 0.25(5θ0 − θ0) = 2.5·θ0.
    let out = merge::task_arithmetic_state_dicts(&base, &[&m1, &m2], &[0.5, 0.25]).unwrap();
    let proj = out.iter().find(|t| t.name == "visual.proj").unwrap();
    assert_eq!(
        proj.view().to_f32_vec(),
        vec![0.0, 2.5, 5.0, 7.5, 10.0, 12.5]
    );
    // Weight averaging is task arithmetic with s = 1/M.
    let avg = merge::task_arithmetic_state_dicts(&base, &[&m1, &m2], &[0.5, 0.5]).unwrap();
    let proj = avg.iter().find(|t| t.name == "visual.proj").unwrap();
    assert_eq!(
        proj.view().to_f32_vec(),
        vec![0.0, 3.5, 7.0, 10.5, 14.0, 17.5]
    );
    assert!(merge::task_arithmetic_state_dicts(&base, &[], &[]).is_err());
    assert!(merge::task_arithmetic_state_dicts(&base, &[&m1], &[0.5, 0.5]).is_err());
}

#[test]
fn differing_integer_tensors_cannot_be_merged() {
    let d = tempfile::tempdir().unwrap();
    let pa = d.path().join("a.safetensors");
    let pb = d.path().join("b.safetensors");
    write_safetensors(&pa, &[OwnedTensor::from_i64("ids", vec![2], &[0, 1])], None).unwrap();
    write_safetensors(&pb, &[OwnedTensor::from_i64("ids", vec![2], &[1, 0])], None).unwrap();
    let e = merge::lerp_state_dicts(
        &StateDict::open(&pa).unwrap(),
        &StateDict::open(&pb).unwrap(),
        0.5,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("`ids`"), "{e}");
}

#[test]
fn metadata_and_names_round_trip() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("m.safetensors");
    let meta = [("dawin.vit.heads".to_string(), "4".to_string())]
        .into_iter()
        .collect();
    write_safetensors(
        &p,
        &[
            OwnedTensor::from_f32("b", vec![1], &[1.0]),
            OwnedTensor::from_u8("a", vec![2], &[7, 9]),
        ],
        Some(meta),
    )
    .unwrap();
    let s = StateDict::open(&p).unwrap();
    assert_eq!(s.names(), vec!["a", "b"]);
    assert_eq!(s.metadata().unwrap()["dawin.vit.heads"], "4");
    assert_eq!(s.tensor("a").unwrap().to_f32_vec(), vec![7.0, 9.0]);
    assert_eq!(
        s.tensor("b").unwrap().as_slice::<f32>(),
        Some(&[1.0f32][..])
    );
}

/// A safetensors file whose 8-byte header length starts with the bytes of a pickle (`0x80`) or
/// of a zip (`PK`) is still opened as safetensors by `Checkpoint::open`: the header length fits
/// the file and the JSON header follows.
#[test]
fn safetensors_whose_header_length_looks_like_a_pickle_or_a_zip_opens_as_safetensors() {
    use dawin_core::{CheckpointFile, TensorSource};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.safetensors");
    let header_len = |pad: usize| {
        let meta = std::collections::HashMap::from([("pad".to_string(), "x".repeat(pad))]);
        write_safetensors(
            &p,
            &[OwnedTensor::from_f32("w", vec![2], &[1.0, 2.0])],
            Some(meta),
        )
        .unwrap();
        let b = std::fs::read(&p).unwrap();
        u64::from_le_bytes(b[..8].try_into().unwrap()) as usize
    };
    let base = header_len(0);
    for (low, high, target) in [(0x80u8, None, 0x180usize), (b'P', Some(b'K'), 0x4b50)] {
        let mut found = false;
        for pad in target.saturating_sub(base + 16)..target + 16 - base {
            let meta = std::collections::HashMap::from([("pad".to_string(), "x".repeat(pad))]);
            write_safetensors(
                &p,
                &[OwnedTensor::from_f32("w", vec![2], &[1.0, 2.0])],
                Some(meta),
            )
            .unwrap();
            let bytes = std::fs::read(&p).unwrap();
            if bytes[0] == low && high.is_none_or(|h| bytes[1] == h) {
                let ck = CheckpointFile::open(&p).unwrap();
                assert_eq!(ck.format_name(), "safetensors");
                assert_eq!(ck.tensor_f32("w").unwrap(), [1.0, 2.0]);
                found = true;
                break;
            }
        }
        assert!(
            found,
            "no padding gives a header length starting with {low:#x}"
        );
    }
}
