//! `ImageFolderDataset` and the pipelined data path: the same inputs whatever the number of
//! workers, in order; fingerprints that follow the content and the convention; WebDataset
//! shards fingerprinted by their files.
use dawin::vit::{DecodePool, ImageDataset};
use dawin::{for_each_batch, DataOptions, Dataset, ImageFolderDataset};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A JPEG of `w × h` whose content depends on `seed`.
fn jpeg(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let px: Vec<u8> = (0..w * h)
        .flat_map(|i| {
            let (x, y) = (i % w, i / w);
            [
                ((x * 255) / w) as u8 ^ (seed as u8),
                ((y * 255) / h) as u8,
                if (x / 2 + y / 3 + seed).is_multiple_of(3) {
                    30
                } else {
                    200
                },
            ]
        })
        .collect();
    let mut buf = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 90)
        .encode(&px, w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
    buf
}

fn folder(root: &Path, classes: &[&str], per: u32) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for (c, name) in classes.iter().enumerate() {
        std::fs::create_dir_all(root.join(name)).unwrap();
        for i in 0..per {
            let seed = c as u32 * 50 + i;
            let f = root.join(name).join(format!("{i}.jpg"));
            std::fs::write(&f, jpeg(20 + seed % 17, 15 + seed % 11, seed)).unwrap();
            files.push(f);
        }
    }
    files
}

fn opts(workers: usize) -> DataOptions {
    DataOptions {
        pool: Some(Arc::new(DecodePool::new(workers).unwrap())),
        ..DataOptions::default()
    }
}

#[test]
fn batches_are_the_same_for_any_number_of_workers_and_in_order() {
    let t = tempfile::tempdir().unwrap();
    folder(t.path(), &["a", "b", "c"], 9);
    let reference = ImageDataset::open(t.path(), 16).unwrap();
    let per = 3 * 16 * 16;
    let mut want = vec![0f32; reference.len() * per];
    for (i, o) in want.chunks_mut(per).enumerate() {
        reference.load(i, o).unwrap();
    }
    // A permuted order, batches of 4 (the last one short).
    let idx: Vec<usize> = (0..27).map(|i| (i * 10) % 27).collect();
    for workers in [1, 2, 5] {
        let d = ImageFolderDataset::open_with("toy", t.path(), 16, &opts(workers)).unwrap();
        assert_eq!(d.pool().workers(), workers);
        let mut seen = Vec::new();
        for_each_batch(&d, &idx, 4, |x, chunk| {
            for (k, &i) in chunk.iter().enumerate() {
                assert_eq!(&x[k * per..(k + 1) * per], &want[i * per..(i + 1) * per]);
            }
            seen.extend_from_slice(chunk);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, idx, "{workers} workers");
    }
}

#[test]
fn folder_fingerprints_follow_content_and_convention_not_the_root() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let files = folder(&a, &["0", "1", "7"], 2);
    // A copy at another root that keeps modification times (cp -p).
    for f in &files {
        let rel = f.strip_prefix(&a).unwrap();
        std::fs::create_dir_all(b.join(rel).parent().unwrap()).unwrap();
        std::fs::copy(f, b.join(rel)).unwrap();
        let mtime = std::fs::metadata(f).unwrap().modified().unwrap();
        std::fs::File::options()
            .write(true)
            .open(b.join(rel))
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }
    let fp = |name: &str, root: &Path| {
        ImageFolderDataset::open(name, root, 16)
            .unwrap()
            .fingerprint()
            .unwrap()
    };
    let fa = fp("plain", &a);
    assert_eq!(
        fa,
        fp("other-name", &b),
        "same files, another root and name"
    );
    // The same folder read under another convention (integer folders: ImageNet-V2's labels are
    // the same integers, but the convention is part of the key).
    let v2 = ImageFolderDataset::open("imagenet-v2", &a, 16).unwrap();
    assert_eq!(v2.labels(), [0, 0, 1, 1, 7, 7]);
    assert_ne!(fa, v2.fingerprint().unwrap());
    // Another input size.
    let f32px = ImageFolderDataset::open("plain", &a, 32).unwrap();
    assert_ne!(fa, f32px.fingerprint().unwrap());
    // A changed file (size or modification time).
    std::fs::write(&files[3], jpeg(33, 21, 99)).unwrap();
    assert_ne!(fa, fp("plain", &a));
}

fn tar_of(path: &Path, members: &[(String, Vec<u8>)]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, data) in members {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    b.finish().unwrap();
}

#[test]
fn webdataset_shards_are_read_like_the_folder_and_fingerprinted_by_their_files() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("f");
    let files = folder(&root, &["a", "b"], 3);
    let members: Vec<(String, Vec<u8>)> = files
        .iter()
        .enumerate()
        .flat_map(|(i, f)| {
            [
                (format!("s{i:03}.jpg"), std::fs::read(f).unwrap()),
                (format!("s{i:03}.cls"), format!("{}", i / 3).into_bytes()),
            ]
        })
        .collect();
    tar_of(&t.path().join("w-0.tar"), &members[..6]);
    tar_of(&t.path().join("w-1.tar"), &members[6..]);
    let spec = format!("{}/w-{{0..1}}.tar", t.path().display());
    let w = ImageFolderDataset::open_with("wds", &spec, 16, &opts(2)).unwrap();
    let f = ImageFolderDataset::open_with("folder", &root, 16, &opts(2)).unwrap();
    assert_eq!(w.labels(), f.labels());
    let idx: Vec<usize> = (0..6).collect();
    assert_eq!(w.load(&idx).unwrap(), f.load(&idx).unwrap());
    assert!(w.describe().unwrap().contains("2 WebDataset shard(s)"));
    let fp = w.fingerprint().unwrap();
    assert_eq!(
        fp,
        ImageFolderDataset::open("x", &spec, 16)
            .unwrap()
            .fingerprint()
            .unwrap()
    );
    // Rewriting a shard with other content changes the fingerprint.
    tar_of(&t.path().join("w-1.tar"), &members[4..]);
    let w2 = ImageFolderDataset::open("wds", &spec, 16).unwrap();
    assert_ne!(fp, w2.fingerprint().unwrap());
    // A missing shard is named.
    let e = ImageFolderDataset::open("wds", format!("{}/w-{{0..2}}.tar", t.path().display()), 16)
        .unwrap_err()
        .to_string();
    assert!(e.contains("w-2.tar"), "{e}");
}

#[test]
fn skip_bad_files_leaves_them_out_and_changes_the_fingerprint() {
    let t = tempfile::tempdir().unwrap();
    let files = folder(t.path(), &["a", "b"], 4);
    let fine = ImageFolderDataset::open("d", t.path(), 16).unwrap();
    std::fs::write(&files[2], b"\xFF\xD8\xFF\xE0 truncated").unwrap();
    let mut d = ImageFolderDataset::open_with("d", t.path(), 16, &opts(2)).unwrap();
    let e = d.load(&[1, 2, 3]).unwrap_err().to_string();
    assert!(e.contains("a/2.jpg"), "{e}");
    let before = d.fingerprint().unwrap();
    let left = d.skip_bad_files(3).unwrap().to_vec();
    assert_eq!(left.len(), 1);
    assert!(left[0].name.ends_with("a/2.jpg"));
    assert_eq!(d.len(), 7);
    assert_eq!(d.labels(), [0, 0, 0, 1, 1, 1, 1]);
    assert!(d.sample_name(2).ends_with("a/3.jpg"));
    assert_ne!(before, d.fingerprint().unwrap());
    // The kept samples are the same inputs as before.
    assert_eq!(d.load(&[2]).unwrap(), fine.load(&[3]).unwrap());
    assert!(d.notes().iter().any(|n| n.contains("1 file(s)")));
}
