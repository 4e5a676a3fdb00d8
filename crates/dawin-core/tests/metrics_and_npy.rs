//! Metrics worked out by hand, and `.npy` round trips.

use dawin_core::metrics::{self, Split};
use dawin_core::npy;

#[test]
fn accuracy_with_and_without_a_class_subset() {
    // 3 samples, 4 classes. Full argmax: 3, 0, 2. Within subset {0, 1, 2}: 1, 0, 2.
    let z = [0.0, 1.0, 0.5, 9.0, 5.0, 1.0, 1.0, 1.0, 0.0, 0.0, 3.0, -1.0];
    let y = [1, 0, 2];
    assert_eq!(metrics::predictions(&z, 4, None).unwrap(), vec![3, 0, 2]);
    assert!((metrics::accuracy(&z, 4, &y, None).unwrap() - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(metrics::accuracy(&z, 4, &y, Some(&[0, 1, 2])).unwrap(), 1.0);
    assert!(metrics::accuracy(&z, 4, &y, Some(&[0, 7])).is_err());
}

#[test]
fn correctness_splits_and_summaries() {
    let c0 = [true, true, false, false, true];
    let c1 = [true, false, true, false, true];
    let s = metrics::correctness_split(&c0, &c1).unwrap();
    assert_eq!(
        s,
        vec![Split::TT, Split::TF, Split::FT, Split::FF, Split::TT]
    );
    let sum = metrics::split_summary(&s, &[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
    assert_eq!((sum[0].count, sum[0].mean), (2, Some(3.0)));
    assert_eq!((sum[1].count, sum[1].mean), (1, Some(2.0)));
    assert_eq!((sum[2].count, sum[2].mean), (1, Some(3.0)));
    assert_eq!((sum[3].count, sum[3].mean), (1, Some(4.0)));
    let s = metrics::correctness_split(&[true], &[true]).unwrap();
    assert_eq!(metrics::split_summary(&s, &[1.0]).unwrap()[3].mean, None);
}

#[test]
fn pearson_by_hand() {
    // y = 2x + 1 exactly → 1; reversed → −1; x = [1,2,3], y = [1,3,2] → 0.5.
    assert!((metrics::pearson(&[1.0, 2.0, 3.0], &[3.0, 5.0, 7.0]).unwrap() - 1.0).abs() < 1e-12);
    assert!((metrics::pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]).unwrap() + 1.0).abs() < 1e-12);
    assert!((metrics::pearson(&[1.0, 2.0, 3.0], &[1.0, 3.0, 2.0]).unwrap() - 0.5).abs() < 1e-12);
    assert!(metrics::pearson(&[1.0, 1.0], &[1.0, 2.0]).is_err());
    assert!(metrics::pearson(&[1.0], &[1.0]).is_err());
}

#[test]
fn npy_round_trips_every_dtype() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.npy");
    npy::write_f32(&p, &[1.5, -2.0, 3.25, 0.0, 1e-8, 7.0], &[2, 3]).unwrap();
    let a = npy::read_f32(&p).unwrap();
    assert_eq!(a.shape, vec![2, 3]);
    assert_eq!(a.data, vec![1.5, -2.0, 3.25, 0.0, 1e-8, 7.0]);
    assert_eq!(npy::read_f64(&p).unwrap().data[0], 1.5);
    npy::write_f64(&p, &[0.1, 0.2], &[2]).unwrap();
    assert_eq!(npy::read_f64(&p).unwrap().data, vec![0.1, 0.2]);
    assert_eq!(npy::read_f32(&p).unwrap().data, vec![0.1f32, 0.2f32]);
    npy::write_i64(&p, &[-3, 9], &[2, 1]).unwrap();
    let i = npy::read_i64(&p).unwrap();
    assert_eq!((i.data, i.shape), (vec![-3, 9], vec![2, 1]));
}

/// Bytes of `np.save(f, np.array([[1.0, 2.0], [3.0, 4.5]], dtype=np.float32))` (NumPy 2.1.3),
/// written out by hand from the format spec: magic, version 1.0, header length 118, header dict.
#[test]
fn reads_a_numpy_written_file() {
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
    let mut h = header.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((h.len() as u16).to_le_bytes());
    bytes.extend(h.as_bytes());
    for v in [1.0f32, 2.0, 3.0, 4.5] {
        bytes.extend(v.to_le_bytes());
    }
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("np.npy");
    std::fs::write(&p, bytes).unwrap();
    let a = npy::read_f32(&p).unwrap();
    assert_eq!((a.data, a.shape), (vec![1.0, 2.0, 3.0, 4.5], vec![2, 2]));
}
