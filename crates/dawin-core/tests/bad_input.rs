//! Bad input gets a clear error naming the file, tensor or argument; never a silent NaN.

use dawin_core::{
    coef, merge, metrics, npy, stats, temperature, write_safetensors, Error, OwnedTensor, StateDict,
};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn nan_logits_are_an_error_naming_row_and_column() {
    let z = [0.0, 1.0, f32::NAN, 2.0, 0.5, 0.1];
    let e = stats::row_stats(&z, 3, 1.0).unwrap_err();
    assert!(matches!(e, Error::NonFinite { .. }));
    assert!(e.to_string().contains("row 0, column 2"), "{e}");
    let z = [0.0, 1.0, 2.0, f32::INFINITY];
    assert!(stats::entropy(&z, 2, 1.0)
        .unwrap_err()
        .to_string()
        .contains("row 1, column 1"));
    assert!(coef::lambda_eq1(&[f64::NAN], &[0.0]).is_err());
}

#[test]
fn empty_arrays_are_errors() {
    assert!(stats::row_stats(&[], 3, 1.0)
        .unwrap_err()
        .to_string()
        .contains("empty"));
    assert!(coef::lambda_eq1(&[], &[]).is_err());
    assert!(coef::domain_offset(&[], &[]).is_err());
    assert!(coef::lambda_multi(&[], 3).is_err());
    assert!(temperature::fit_temperature(&[], 3, &[]).is_err());
    assert!(metrics::accuracy(&[], 3, &[], None).is_err());
    assert!(stats::row_stats(&[1.0, 2.0], 0, 1.0)
        .unwrap_err()
        .to_string()
        .contains("n_classes"));
    assert!(stats::row_stats(&[1.0, 2.0, 3.0], 2, 1.0)
        .unwrap_err()
        .to_string()
        .contains("multiple"));
    assert!(stats::row_stats(&[1.0, 2.0], 2, 0.0)
        .unwrap_err()
        .to_string()
        .contains("temperature"));
}

#[test]
fn labels_out_of_range_are_errors_naming_the_sample() {
    let z = [0.0, 1.0, 2.0, 3.0];
    let e = stats::cross_entropy_hard(&z, 2, 1.0, &[0, 2]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::LabelOutOfRange {
                index: 1,
                label: 2,
                n_classes: 2
            }
        ),
        "{e}"
    );
    assert!(metrics::accuracy(&z, 2, &[-1, 0], None).is_err());
    assert!(
        temperature::fit_temperature(&z, 2, &[0]).is_err(),
        "label count"
    );
}

#[test]
fn degenerate_domains_keep_lambda_finite() {
    // One sample: unbiased std undefined → O = 0, Eq. 2 reduces to Eq. 1.
    let off = coef::domain_offset(&[0.3], &[0.7]).unwrap();
    assert_eq!(off.offset, 0.0);
    let l = coef::lambda_eq2(&[-0.3], &[-0.7], off).unwrap();
    let l1 = coef::lambda_eq1(&[-0.3], &[-0.7]).unwrap();
    assert!((l[0] - l1[0]).abs() < 1e-7);
    // All entropies zero (one-hot predictions).
    let off = coef::domain_offset(&[0.0, 0.0], &[0.0, 0.0]).unwrap();
    let l = coef::lambda_eq2(&[0.0, 0.0], &[0.0, 0.0], off).unwrap();
    assert_eq!(l, vec![0.5, 0.5]);
    // Both models with no expertise at all.
    assert_eq!(
        coef::lambda_eq1(&[f64::NEG_INFINITY], &[f64::NEG_INFINITY]).unwrap(),
        vec![0.5]
    );
    assert!(coef::wise_plugin(&[0.5], 1.5).is_err());
}

fn write(path: &std::path::Path, tensors: &[OwnedTensor]) {
    write_safetensors(path, tensors, None).unwrap();
}

#[test]
fn mismatched_checkpoints_name_the_tensor_and_both_shapes() {
    let d = tmp();
    let (a, b, c) = (
        d.path().join("a.safetensors"),
        d.path().join("b.safetensors"),
        d.path().join("c.safetensors"),
    );
    write(
        &a,
        &[
            OwnedTensor::from_f32("w", vec![2, 2], &[1.0; 4]),
            OwnedTensor::from_f32("z", vec![1], &[0.0]),
        ],
    );
    write(
        &b,
        &[
            OwnedTensor::from_f32("w", vec![4, 1], &[1.0; 4]),
            OwnedTensor::from_f32("z", vec![1], &[0.0]),
        ],
    );
    write(&c, &[OwnedTensor::from_f32("w", vec![2, 2], &[1.0; 4])]);
    let (a, b, c) = (
        StateDict::open(&a).unwrap(),
        StateDict::open(&b).unwrap(),
        StateDict::open(&c).unwrap(),
    );
    let e = a.check_compatible(&b).unwrap_err().to_string();
    assert!(
        e.contains("`w`") && e.contains("[2, 2]") && e.contains("[4, 1]"),
        "{e}"
    );
    let e = a.check_compatible(&c).unwrap_err().to_string();
    assert!(e.contains("`z`") && e.contains("not in"), "{e}");
    assert!(merge::lerp_state_dicts(&a, &b, 0.5).is_err());
    let e = a.tensor("nope").unwrap_err().to_string();
    assert!(e.contains("nope") && e.contains("a.safetensors"), "{e}");
}

#[test]
fn truncated_and_foreign_files_are_format_errors_naming_the_file() {
    let d = tmp();
    let good = d.path().join("good.safetensors");
    write(&good, &[OwnedTensor::from_f32("w", vec![16], &[1.0; 16])]);
    let bytes = std::fs::read(&good).unwrap();
    let trunc = d.path().join("trunc.safetensors");
    std::fs::write(&trunc, &bytes[..bytes.len() - 3]).unwrap();
    let e = StateDict::open(&trunc).unwrap_err();
    assert!(
        matches!(e, Error::Format { .. }) && e.to_string().contains("trunc.safetensors"),
        "{e}"
    );
    let text = d.path().join("notes.safetensors");
    std::fs::write(&text, b"this is not a checkpoint at all").unwrap();
    assert!(StateDict::open(&text)
        .unwrap_err()
        .to_string()
        .contains("notes.safetensors"));
    let empty = d.path().join("empty.safetensors");
    std::fs::write(&empty, b"").unwrap();
    assert!(StateDict::open(&empty).is_err());
    let e = StateDict::open(d.path().join("missing.safetensors")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }) && e.to_string().contains("missing.safetensors"));
}

#[test]
fn failed_writes_leave_nothing_behind() {
    let d = tmp();
    let out = d.path().join("no-such-dir").join("x.safetensors");
    assert!(write_safetensors(&out, &[OwnedTensor::from_f32("w", vec![1], &[1.0])], None).is_err());
    // An existing output is only replaced when the new file is complete.
    let out = d.path().join("keep.npy");
    npy::write_f32(&out, &[1.0, 2.0], &[2]).unwrap();
    assert!(npy::write_f32(&out, &[1.0, 2.0, 3.0], &[2]).is_err());
    assert_eq!(npy::read_f32(&out).unwrap().data, vec![1.0, 2.0]);
    let leftovers: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

#[test]
fn wrong_npy_dtype_is_an_error() {
    let d = tmp();
    let p = d.path().join("labels.npy");
    npy::write_i64(&p, &[1, 2, 3], &[3]).unwrap();
    let e = npy::read_f32(&p).unwrap_err().to_string();
    assert!(e.contains("labels.npy") && e.contains("<i8"), "{e}");
    assert_eq!(npy::read_i64(&p).unwrap().data, vec![1, 2, 3]);
}
