//! Hostile and broken PyTorch files: refused with an error naming the file and the tensor, key,
//! pickle offset or opcode; a payload that would create a file never runs.

use std::path::{Path, PathBuf};

use dawin_core::torch::open_torch;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torch")
        .join(name)
}

/// The error of opening `path`, which must name the file.
fn error_of(path: &Path) -> String {
    let e = open_torch(path).expect_err("must be refused").to_string();
    let file = path.file_name().unwrap().to_str().unwrap();
    assert!(e.contains(file), "the error does not name the file: {e}");
    println!("{e}");
    e
}

const PWNED: &str = "/tmp/dawin_torch_pwned_";

/// Each payload names a file under /tmp that it would create if anything ran it.
#[test]
fn payloads_never_run() {
    for (name, tag, callee) in [
        ("evil_system.pkl", "system", "os.system"),
        ("evil_exec.pkl", "exec", "builtins.exec"),
        ("evil_popen.pkl", "popen", "subprocess.Popen"),
        ("evil_reduce_class.pkl", "reduce_class", "system"),
        ("evil_legacy.pt", "legacy", "os.system"),
    ] {
        let marker = format!("{PWNED}{tag}");
        let _ = std::fs::remove_file(&marker);
        let e = error_of(&fixture(name));
        assert!(e.contains("holds no tensors"), "{name}: {e}");
        assert!(e.contains(callee) && e.contains("not run"), "{name}: {e}");
        assert!(!Path::new(&marker).exists(), "{name}: {marker} appeared");
    }
    // A payload next to a good tensor: the tensor is read, the call is reported, inert.
    let marker = format!("{PWNED}zip");
    let _ = std::fs::remove_file(&marker);
    let c = open_torch(fixture("evil_zip.pt")).unwrap();
    assert_eq!(c.names(), ["w"]);
    assert_eq!(c.tensor("w").unwrap().to_f32_vec(), [0.0, 1.0, 2.0, 3.0]);
    let (path, why) = &c.ignored()[0];
    assert_eq!(path, "x");
    assert!(
        why.contains("os.system") && why.contains("not run"),
        "{why}"
    );
    assert!(!Path::new(&marker).exists());
}

#[test]
fn truncated_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "sd_zip.pt",
        "sd_legacy.pt",
        "wiseft.pkl",
        "jit.pt",
        "strided_deflated.pt",
    ] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        for keep in [
            0,
            10,
            bytes.len() / 3,
            bytes.len() / 2,
            bytes.len() - 30,
            bytes.len() - 1,
        ] {
            let p = dir.path().join(format!("cut_{keep}_{name}"));
            std::fs::write(&p, &bytes[..keep]).unwrap();
            let e = error_of(&p);
            assert!(!e.is_empty(), "{name} cut at {keep}");
        }
    }
    // Cut inside the legacy data: the storage that runs past the end is named.
    let bytes = std::fs::read(fixture("strided_legacy.pt")).unwrap();
    let p = dir.path().join("cut_legacy.pt");
    std::fs::write(&p, &bytes[..bytes.len() - 5]).unwrap();
    let e = error_of(&p);
    assert!(e.contains("storage `") && e.contains("truncated"), "{e}");
}

#[test]
fn a_zip_without_data_pkl_is_an_error() {
    let e = error_of(&fixture("no_data_pkl.pt"));
    assert!(e.contains("data.pkl"), "{e}");
}

#[test]
fn a_missing_storage_entry_names_the_tensor_and_the_key() {
    let e = error_of(&fixture("missing_key.pt"));
    assert!(e.contains("tensor `") && e.contains("data/3"), "{e}");
}

#[test]
fn unsupported_dtypes_name_the_tensor() {
    let e = error_of(&fixture("complex.pt"));
    assert!(e.contains("tensor `c`") && e.contains("complex64"), "{e}");
    // float8 goes through _rebuild_tensor_v3 (an untyped storage plus a dtype reference).
    let e = error_of(&fixture("float8.pt"));
    assert!(
        e.contains("tensor `f8`") && e.contains("float8_e4m3fn"),
        "{e}"
    );
    let e = error_of(&fixture("quantized.pt"));
    assert!(e.contains("tensor `q`") && e.contains("quantized"), "{e}");
}

#[test]
fn unhandled_protocols_and_opcodes_name_the_offset_and_opcode() {
    let e = error_of(&fixture("proto_bad_opcode.pkl"));
    assert!(e.contains("byte 2") && e.contains("EXT1"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str); 6] = [
        ("proto6.pkl", b"\x80\x06N.", "protocol 6"),
        ("unknown_op.pkl", b"\x80\x02\xffN.", "0xff"),
        ("oob.pkl", b"\x80\x05\x97.", "out-of-band"),
        // BINBYTES declaring 4 GiB in a 12-byte file: refused before any allocation.
        ("huge_bytes.pkl", b"\x80\x03B\xff\xff\xff\xff.", "remain"),
        ("no_stop.pkl", b"\x80\x02}", "without a STOP"),
        ("bad_get.pkl", b"\x80\x02h\x07.", "memo entry 7"),
    ];
    for (name, bytes, want) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let e = error_of(&p);
        assert!(e.contains(want), "{name}: {e}");
    }
    let p = dir.path().join("text.pt");
    std::fs::write(&p, "hello, not a checkpoint").unwrap();
    assert!(error_of(&p).contains("neither a zip archive nor a pickle"));
}

#[test]
fn a_torchscript_archive_without_tensors_is_an_error() {
    let e = error_of(&fixture("jit_no_tensors.pt"));
    assert!(
        e.contains("holds no tensors") && e.contains("TorchScript"),
        "{e}"
    );
}

#[test]
fn a_big_endian_archive_is_refused() {
    use std::io::{Read, Write};
    let src = std::fs::File::open(fixture("strided.pt")).unwrap();
    let mut zin = zip::ZipArchive::new(src).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big_endian.pt");
    let mut zout = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .with_alignment(64);
    for i in 0..zin.len() {
        let mut f = zin.by_index(i).unwrap();
        let name = f.name().unwrap().into_owned();
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        if name.ends_with("/byteorder") {
            data = b"big".to_vec();
        }
        zout.start_file(name, opts).unwrap();
        zout.write_all(&data).unwrap();
    }
    zout.finish().unwrap();
    let e = error_of(&p);
    assert!(e.contains("big-endian"), "{e}");
}
