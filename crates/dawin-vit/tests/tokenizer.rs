//! CLIP's tokenizer against open_clip 3.3.0, and the prompt data, on the fixtures of
//! `scripts/make_text_fixtures.py` (`tests/fixtures/text/`).

use std::io::Read;
use std::path::{Path, PathBuf};

use dawin_vit::prompts::{self, PromptError};
use dawin_vit::tokenizer::{
    find_tokenizer_beside, ClipTokenizer, TokenizerError, TokenizerSource, END_ID, START_ID,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/text")
        .join(name)
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

struct Expected {
    strings: Vec<String>,
    /// open_clip's ids (non-padding part) for every string, except that strings whose text
    /// ftfy's `fix_encoding` changes hold the ids with fix_encoding=False (see `changed`).
    ids: Vec<Vec<u32>>,
    open_clip: Vec<Vec<u32>>,
    truncated: Vec<usize>,
    changed: Vec<usize>,
}

fn expected() -> Expected {
    let strings: Vec<String> =
        serde_json::from_slice(&std::fs::read(fixture("tokenizer_strings.json")).unwrap()).unwrap();
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("tokenizer_ids.json")).unwrap()).unwrap();
    let list = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    let indices = |v: &serde_json::Value| -> Vec<usize> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect()
    };
    let open_clip: Vec<Vec<u32>> = j["open_clip"]
        .as_array()
        .unwrap()
        .iter()
        .map(list)
        .collect();
    assert_eq!(open_clip.len(), strings.len());
    let changed = indices(&j["fix_encoding_changes"]);
    let mut ids = open_clip.clone();
    for &i in &changed {
        ids[i] = list(&j["open_clip_no_fix_encoding"][i.to_string()]);
    }
    Expected {
        strings,
        ids,
        open_clip,
        truncated: indices(&j["truncated"]),
        changed,
    }
}

/// Every committed string tokenizes to open_clip's ids (77, zero-padded, same truncation).
fn check_all(tok: &ClipTokenizer) {
    let e = expected();
    assert!(e.strings.len() >= 200);
    let mut bad = Vec::new();
    for (i, s) in e.strings.iter().enumerate() {
        let t = tok.tokenize(s);
        assert_eq!(t.ids.len(), 77);
        let want = &e.ids[i];
        if &t.ids[..t.len] != want.as_slice() || t.ids[t.len..].iter().any(|&x| x != 0) {
            bad.push(format!(
                "#{i} {s:?}: got {:?}, open_clip {:?}",
                &t.ids[..t.len],
                want
            ));
        }
        assert_eq!(t.truncated(), e.truncated.contains(&i), "#{i} {s:?}");
        let argmax = (0..77).rev().max_by_key(|&k| t.ids[k]).unwrap();
        assert_eq!(t.pool_index, argmax, "#{i}");
        assert_eq!(t.ids[t.len - 1], END_ID, "#{i}");
        assert_eq!(t.ids[0], START_ID, "#{i}");
    }
    assert!(
        bad.is_empty(),
        "{} of {} strings differ from open_clip ({}):\n{}",
        bad.len(),
        e.strings.len(),
        tok.source(),
        bad[..bad.len().min(20)].join("\n")
    );
}

#[test]
fn builtin_vocabulary_gives_open_clips_ids() {
    let tok = ClipTokenizer::builtin();
    assert_eq!(tok.source(), &TokenizerSource::Builtin);
    assert!(tok.is_standard());
    check_all(&tok);
}

#[test]
fn bpe_files_give_open_clips_ids() {
    // The gzip file by path, and the same merges as plain text through `from_file`.
    let tok = ClipTokenizer::from_bpe_file(data("bpe_simple_vocab_16e6.txt.gz")).unwrap();
    assert!(matches!(tok.source(), TokenizerSource::BpeFile(_)));
    check_all(&tok);
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("bpe_simple_vocab_16e6.txt");
    std::fs::write(&plain, gunzip(&data("bpe_simple_vocab_16e6.txt.gz"))).unwrap();
    let tok = ClipTokenizer::from_file(&plain).unwrap();
    assert!(tok.is_standard());
    assert_eq!(
        tok.tokenize("a photo of a tench.").ids,
        ClipTokenizer::builtin().tokenize("a photo of a tench.").ids
    );
}

fn hf_tokenizer_json(dir: &Path) -> PathBuf {
    let p = dir.join("tokenizer.json");
    std::fs::write(&p, gunzip(&fixture("tokenizer.json.gz"))).unwrap();
    p
}

#[test]
fn hugging_face_tokenizer_json_gives_open_clips_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = hf_tokenizer_json(dir.path());
    let tok = ClipTokenizer::from_tokenizer_json(&path).unwrap();
    assert_eq!(tok.source(), &TokenizerSource::TokenizerJson(path.clone()));
    assert!(tok.source().to_string().contains("tokenizer.json"));
    assert!(tok.is_standard(), "HF's merges are CLIP's 48 894");
    check_all(&tok);
    let via_file = ClipTokenizer::from_file(&path).unwrap();
    assert!(matches!(
        via_file.source(),
        TokenizerSource::TokenizerJson(_)
    ));
}

#[test]
fn mojibake_is_left_as_written_where_ftfy_repairs_it() {
    let e = expected();
    assert!(!e.changed.is_empty());
    let tok = ClipTokenizer::builtin();
    for &i in &e.changed {
        let t = tok.tokenize(&e.strings[i]);
        // open_clip (with ftfy's fix_encoding) differs; dawin-vit equals fix_encoding=False.
        assert_ne!(
            &t.ids[..t.len],
            e.open_clip[i].as_slice(),
            "{:?}",
            e.strings[i]
        );
        assert_eq!(&t.ids[..t.len], e.ids[i].as_slice(), "{:?}", e.strings[i]);
    }
}

#[test]
fn long_texts_are_truncated_and_reported() {
    let e = expected();
    let tok = ClipTokenizer::builtin();
    assert!(!e.truncated.is_empty());
    let batch = tok.tokenize_batch(&e.strings);
    assert_eq!(batch.len(), e.strings.len());
    assert_eq!(batch.truncated, e.truncated);
    for &i in &e.truncated {
        let row = batch.row(i);
        assert_eq!(row[76], END_ID);
        assert_eq!(batch.pool_index[i], 76);
        assert_eq!(batch.lens[i], 77);
    }
    // 75 one-token words fit exactly (77 with start and end); 76 do not.
    let fits = tok.tokenize(&vec!["a"; 75].join(" "));
    assert!(!fits.truncated());
    assert_eq!((fits.len, fits.full_len, fits.pool_index), (77, 77, 76));
    let cut = tok.tokenize(&vec!["a"; 76].join(" "));
    assert!(cut.truncated());
    assert_eq!((cut.len, cut.full_len), (77, 78));
}

#[test]
fn literal_end_token_is_where_the_tower_pools() {
    let tok = ClipTokenizer::builtin();
    let t = tok.tokenize("a photo of a goldfish <end_of_text> in a bowl.");
    assert_eq!(t.ids[t.pool_index], END_ID);
    assert!(
        t.pool_index < t.len - 1,
        "the first end token, not the last"
    );
}

#[test]
fn prompts_of_the_text_tower_fixtures_tokenize_as_in_python() {
    for variant in ["clip_quickgelu", "clip_gelu"] {
        let bytes = std::fs::read(fixture(&format!("{variant}/expected.safetensors"))).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().as_ref().unwrap();
        let prompts: Vec<String> = serde_json::from_str(&meta["prompts"]).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let ids = st.tensor("input_ids").unwrap();
        assert_eq!(ids.shape(), &[prompts.len(), 77]);
        let want: Vec<i64> = ids
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let pool = st.tensor("pool_index").unwrap();
        let want_pool: Vec<i64> = pool
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let batch = ClipTokenizer::builtin().tokenize_batch(&prompts);
        let got: Vec<i64> = batch.ids.iter().map(|&x| x as i64).collect();
        assert_eq!(got, want, "{variant}");
        let got_pool: Vec<i64> = batch.pool_index.iter().map(|&x| x as i64).collect();
        assert_eq!(got_pool, want_pool, "{variant}");
        assert_eq!(
            batch.truncated.len(),
            1,
            "{variant}: one prompt is past 77 tokens"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tokenizer files that are not CLIP's

fn not_clip(err: TokenizerError, path: &Path, needle: &str) {
    let msg = err.to_string();
    assert!(
        matches!(err, TokenizerError::NotClip { .. }),
        "expected NotClip, got {msg}"
    );
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
}

#[test]
fn other_tokenizer_kinds_are_refused() {
    let wp = fixture("not_clip_wordpiece.json");
    not_clip(
        ClipTokenizer::from_tokenizer_json(&wp).unwrap_err(),
        &wp,
        "WordPiece",
    );
    not_clip(ClipTokenizer::from_file(&wp).unwrap_err(), &wp, "WordPiece");
    let gpt = fixture("not_clip_gpt2.json");
    not_clip(
        ClipTokenizer::from_tokenizer_json(&gpt).unwrap_err(),
        &gpt,
        "</w>",
    );
}

fn edited_tokenizer_json(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let mut j: serde_json::Value =
        serde_json::from_slice(&gunzip(&fixture("tokenizer.json.gz"))).unwrap();
    edit(&mut j);
    let p = dir.join("edited_tokenizer.json");
    std::fs::write(&p, serde_json::to_vec(&j).unwrap()).unwrap();
    p
}

#[test]
fn a_tokenizer_json_with_other_ids_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // The special tokens' ids swapped.
    let p = edited_tokenizer_json(dir.path(), |j| {
        let v = j["model"]["vocab"].as_object_mut().unwrap();
        v.insert("<|startoftext|>".into(), 49407.into());
        v.insert("<|endoftext|>".into(), 49406.into());
    });
    not_clip(
        ClipTokenizer::from_tokenizer_json(&p).unwrap_err(),
        &p,
        "<|startoftext|>",
    );
    // A smaller vocabulary.
    let p = edited_tokenizer_json(dir.path(), |j| {
        j["model"]["vocab"]
            .as_object_mut()
            .unwrap()
            .remove("ing</w>");
    });
    not_clip(
        ClipTokenizer::from_tokenizer_json(&p).unwrap_err(),
        &p,
        "49408",
    );
    // Byte alphabet in another order.
    let p = edited_tokenizer_json(dir.path(), |j| {
        let v = j["model"]["vocab"].as_object_mut().unwrap();
        v.insert("!".into(), 1.into());
        v.insert("\"".into(), 0.into());
    });
    not_clip(
        ClipTokenizer::from_tokenizer_json(&p).unwrap_err(),
        &p,
        "byte alphabet",
    );
    // A merge whose result has no id.
    let p = edited_tokenizer_json(dir.path(), |j| {
        j["model"]["merges"].as_array_mut().unwrap()[0] = serde_json::json!(["q", "z"]);
    });
    not_clip(
        ClipTokenizer::from_tokenizer_json(&p).unwrap_err(),
        &p,
        "qz",
    );
    // No end-of-word suffix.
    let p = edited_tokenizer_json(dir.path(), |j| {
        j["model"]["end_of_word_suffix"] = serde_json::Value::Null;
    });
    not_clip(
        ClipTokenizer::from_tokenizer_json(&p).unwrap_err(),
        &p,
        "</w>",
    );
    // Not JSON at all.
    let p = dir.path().join("broken.json");
    std::fs::write(&p, b"{\"model\": ").unwrap();
    let err = ClipTokenizer::from_tokenizer_json(&p).unwrap_err();
    assert!(matches!(err, TokenizerError::Format { .. }), "{err}");
    assert!(err.to_string().contains("broken.json"), "{err}");
}

#[test]
fn a_bad_merges_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = gunzip(&data("bpe_simple_vocab_16e6.txt.gz"));
    let text = String::from_utf8(text).unwrap();
    // Too few merges.
    let short = dir.path().join("short.txt");
    let lines: Vec<&str> = text.split('\n').take(1000).collect();
    std::fs::write(&short, lines.join("\n")).unwrap();
    not_clip(
        ClipTokenizer::from_bpe_file(&short).unwrap_err(),
        &short,
        "48894",
    );
    // GPT-2 style merges (no `</w>`).
    let gpt = dir.path().join("merges.txt");
    let mut g = String::from("#version: 0.2\n");
    for i in 0..48894 {
        g.push_str(&format!("\u{120}{} x\n", i % 7));
    }
    std::fs::write(&gpt, g).unwrap();
    not_clip(
        ClipTokenizer::from_bpe_file(&gpt).unwrap_err(),
        &gpt,
        "</w>",
    );
    // A line that is not a pair.
    let odd = dir.path().join("odd.txt");
    let mut lines: Vec<&str> = text.split('\n').take(48895).collect();
    lines[10] = "a b c";
    std::fs::write(&odd, lines.join("\n")).unwrap();
    not_clip(
        ClipTokenizer::from_bpe_file(&odd).unwrap_err(),
        &odd,
        "line 11",
    );
    // A truncated gzip stream.
    let gz = std::fs::read(data("bpe_simple_vocab_16e6.txt.gz")).unwrap();
    let cut = dir.path().join("cut.txt.gz");
    std::fs::write(&cut, &gz[..gz.len() / 10]).unwrap();
    let err = ClipTokenizer::from_bpe_file(&cut).unwrap_err();
    assert!(matches!(err, TokenizerError::Format { .. }), "{err}");
    assert!(err.to_string().contains("cut.txt.gz"), "{err}");
    // A missing file.
    let missing = dir.path().join("nope.txt.gz");
    let err = ClipTokenizer::from_file(&missing).unwrap_err();
    assert!(matches!(err, TokenizerError::Io { .. }), "{err}");
    assert!(err.to_string().contains("nope.txt.gz"), "{err}");
    // Empty file.
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, b"").unwrap();
    not_clip(
        ClipTokenizer::from_file(&empty).unwrap_err(),
        &empty,
        "empty",
    );
}

#[test]
fn tokenizer_files_are_found_beside_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("model.safetensors");
    std::fs::write(&ckpt, b"").unwrap();
    assert_eq!(find_tokenizer_beside(&ckpt), None);
    let json = hf_tokenizer_json(dir.path());
    assert_eq!(find_tokenizer_beside(&ckpt), Some(json.clone()));
    assert_eq!(find_tokenizer_beside(dir.path()), Some(json));
    let bpe = dir.path().join("bpe_simple_vocab_16e6.txt.gz");
    std::fs::copy(data("bpe_simple_vocab_16e6.txt.gz"), &bpe).unwrap();
    assert_eq!(
        find_tokenizer_beside(&ckpt),
        Some(bpe),
        "open_clip's own file first"
    );
}

// ---------------------------------------------------------------------------------------------
// Prompt data

#[test]
fn builtin_template_sets_are_the_published_ones() {
    // Counts as in OpenAI's notebook, open_clip and task_vectors' src/datasets/templates.py.
    let counts = [
        ("openai-imagenet", 80),
        ("openai-imagenet-7", 7),
        ("simple", 1),
        ("cars", 8),
        ("cifar10", 18),
        ("cifar100", 18),
        ("dtd", 8),
        ("eurosat", 3),
        ("food101", 1),
        ("gtsrb", 3),
        ("mnist", 1),
        ("resisc45", 18),
        ("stl10", 2),
        ("sun397", 2),
        ("svhn", 1),
    ];
    assert_eq!(prompts::template_set_names().len(), counts.len());
    for (name, n) in counts {
        assert_eq!(prompts::templates(name).unwrap().len(), n, "{name}");
    }
    let oi = prompts::templates("openai-imagenet").unwrap();
    assert_eq!(oi[0], "a bad photo of a {}.");
    assert_eq!(oi[44], "a origami {}.");
    assert_eq!(oi[57], "a embroidered {}.");
    assert_eq!(oi[79], "a tattoo of the {}.");
    assert!(oi.contains(&"itap of my {}."));
    assert_eq!(prompts::templates("simple").unwrap(), &["a photo of a {}."]);
    assert_eq!(
        prompts::templates("openai-imagenet-7").unwrap()[0],
        "itap of a {}."
    );
    assert_eq!(
        prompts::templates("EuroSAT").unwrap(),
        &[
            "a centered satellite photo of {}.",
            "a centered satellite photo of a {}.",
            "a centered satellite photo of the {}."
        ]
    );
    assert_eq!(
        prompts::templates("gtsrb").unwrap()[0],
        "a zoomed in photo of a \"{}\" traffic sign."
    );
    assert_eq!(
        prompts::templates("MNIST").unwrap(),
        &["a photo of the number: \"{}\"."]
    );
    assert_eq!(prompts::templates("cars").unwrap()[3], "i love my {}!");
    assert_eq!(
        prompts::templates("resisc45").unwrap()[17],
        "aerial view of the {}."
    );
    assert_eq!(prompts::templates("imagenet-80"), None);
    assert_eq!(prompts::fill("a origami {}.", "tench"), "a origami tench.");
}

#[test]
fn builtin_imagenet_classes_are_clips() {
    let c = prompts::imagenet_classes();
    assert_eq!(c.len(), 1000);
    assert_eq!(c[0], "tench");
    assert_eq!(c[21], "kite (bird of prey)");
    assert_eq!(c[999], "toilet paper");
    assert!(c.contains(&"yellow lady's slipper"));
    let (names, what) = prompts::resolve_classes("imagenet").unwrap();
    assert_eq!(names.len(), 1000);
    assert!(what.contains("ImageNet"));
}

fn write(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn templates_files_are_checked_line_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let ok = write(dir.path(), "t.txt", b"a photo of a {}.\r\nart of the {}.\n");
    assert_eq!(
        prompts::read_templates(&ok).unwrap(),
        vec!["a photo of a {}.", "art of the {}."]
    );
    let (t, what) = prompts::resolve_templates(ok.to_str().unwrap()).unwrap();
    assert_eq!(t.len(), 2);
    assert!(what.contains("t.txt"));
    let (t, what) = prompts::resolve_templates("openai-imagenet").unwrap();
    assert_eq!(
        (t.len(), what.as_str()),
        (80, "built-in set openai-imagenet")
    );

    let no_placeholder = write(dir.path(), "bad.txt", b"a photo of a {}.\na photo.\n");
    let err = prompts::read_templates(&no_placeholder).unwrap_err();
    assert!(matches!(err, PromptError::Line { line: 2, .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("bad.txt") && msg.contains("line 2") && msg.contains("{}"),
        "{msg}"
    );

    let two = write(dir.path(), "two.txt", b"a {} of {}.\n");
    let err = prompts::read_templates(&two).unwrap_err();
    assert!(err.to_string().contains("two.txt, line 1"), "{err}");

    let empty = write(dir.path(), "empty.txt", b"");
    let err = prompts::read_templates(&empty).unwrap_err();
    assert!(
        err.to_string().contains("empty.txt") && err.to_string().contains("empty"),
        "{err}"
    );

    let err = prompts::resolve_templates("no-such-set").unwrap_err();
    assert!(err.to_string().contains("openai-imagenet"), "{err}");
}

#[test]
fn classes_files_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let ok = write(
        dir.path(),
        "c.txt",
        "\u{feff}tench\ngoldfish\r\ncafé au lait".as_bytes(),
    );
    assert_eq!(
        prompts::read_classes(&ok).unwrap(),
        vec!["tench", "goldfish", "café au lait"]
    );
    let empty = write(dir.path(), "none.txt", b"");
    let err = prompts::read_classes(&empty).unwrap_err();
    assert!(matches!(err, PromptError::File { .. }), "{err}");
    assert!(
        err.to_string().contains("none.txt") && err.to_string().contains("empty"),
        "{err}"
    );
    let blank = write(dir.path(), "blank.txt", b"tench\n  \ngoldfish\n");
    let err = prompts::read_classes(&blank).unwrap_err();
    assert!(err.to_string().contains("blank.txt, line 2"), "{err}");
    let latin1 = write(dir.path(), "latin1.txt", b"caf\xe9\n");
    let err = prompts::read_classes(&latin1).unwrap_err();
    assert!(
        err.to_string().contains("latin1.txt") && err.to_string().contains("UTF-8"),
        "{err}"
    );
    let err = prompts::read_classes(dir.path().join("missing.txt")).unwrap_err();
    assert!(matches!(err, PromptError::Io { .. }) && err.to_string().contains("missing.txt"));
    let err = prompts::resolve_classes("missing.txt").unwrap_err();
    assert!(err.to_string().contains("imagenet"), "{err}");
}
