//! CLIP's byte-level BPE tokenizer, exactly as open_clip 3.3.0's default tokenizer
//! (`open_clip.tokenize`, `SimpleTokenizer` with `clean='lower'`) behaves.
//!
//! `tokenize(text)`:
//! 1. cleaning ([`clean::clean`]): ftfy's `fix_text` (the part ordinary text needs, see
//!    [`clean::fix_text`] for what is not implemented), Python's `html.unescape` twice, strip,
//!    whitespace runs → one space, lower case;
//! 2. splitting, left to right, with open_clip's pattern
//!    `<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`
//!    (case-insensitive: `'ſ` is a contraction too): letter runs, single digits ("747" is three
//!    words) and runs of other non-space characters; a literal `<start_of_text>` or
//!    `<end_of_text>` in the text is that special token; U+0345 belongs to no alternative under
//!    Python's case-insensitive matching and separates words;
//! 3. each word's UTF-8 bytes as CLIP's byte characters (`bytes_to_unicode`), the last one
//!    carrying `</w>`, merged by BPE: repeatedly the adjacent pair of lowest rank among the first
//!    48 894 merges of the vocabulary file, every occurrence left to right; results are cached
//!    per word;
//! 4. `[49406] + ids + [49407]`; over the context length (77) the first 77 are kept and the last
//!    one overwritten by 49407; padded with 0.
//!
//! CLIP's text tower pools at the position of the largest id ([`Tokens::pool_index`]), i.e. the
//! first end token.
//!
//! Vocabulary sources ([`TokenizerSource`]): the standard `bpe_simple_vocab_16e6.txt.gz` embedded
//! in this crate ([`ClipTokenizer::builtin`], MIT-licensed by OpenAI, `data/LICENSE-CLIP`), a
//! merges file given by path ([`ClipTokenizer::from_bpe_file`]), or a Hugging Face
//! `tokenizer.json` of CLIP ([`ClipTokenizer::from_tokenizer_json`]; its vocabulary and merges
//! only). [`find_tokenizer_beside`] looks for either next to a checkpoint.
//!
//! Written here rather than with the `tokenizers` crate: that crate does not reproduce open_clip's
//! ids on its own (no ftfy, no HTML unescaping, its own special-token handling), and it would pull
//! a large dependency tree for a merge loop of a few dozen lines.
//!
//! ```
//! use dawin_vit::tokenizer::ClipTokenizer;
//!
//! let tok = ClipTokenizer::builtin();
//! let t = tok.tokenize("a photo of a Boeing 747.");
//! assert_eq!(&t.ids[..4], &[49406, 320, 1125, 539]); // <start> a photo of
//! assert_eq!(t.ids.len(), 77);
//! assert_eq!(t.ids[t.pool_index], 49407);              // the end token
//! assert!(!t.truncated());
//! ```

pub mod clean;
mod vocab;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{OnceLock, RwLock};

use regex::Regex;
use sha2::{Digest, Sha256};

pub use vocab::{bytes_to_unicode, CLIP_MERGES};

/// Id of the start-of-text token.
pub const START_ID: u32 = 49406;
/// Id of the end-of-text token (the largest id: the text tower pools where it first appears).
pub const END_ID: u32 = 49407;
/// Number of ids of CLIP's vocabulary.
pub const VOCAB_SIZE: usize = 49408;
/// CLIP's context length.
pub const DEFAULT_CONTEXT_LENGTH: usize = 77;
/// Id used for padding (open_clip pads with 0).
pub const PAD_ID: u32 = 0;

/// File name of OpenAI's merges file, as shipped with CLIP and open_clip.
pub const BPE_FILE_NAME: &str = "bpe_simple_vocab_16e6.txt.gz";
/// SHA-256 of the standard `bpe_simple_vocab_16e6.txt.gz` (the embedded copy).
pub const BPE_SHA256: &str = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a";
/// SHA-256 over the 48 894 merges CLIP uses, each as `left right\n`, of the standard vocabulary:
/// a vocabulary with this fingerprint tokenizes exactly as CLIP's, whatever file it came from.
pub const MERGES_FINGERPRINT: &str =
    "d308b7377a8ceaa9707a21614fe8c831b9196e197b7aeb69833359362907af02";

static BUILTIN_BPE: &[u8] = include_bytes!("../data/bpe_simple_vocab_16e6.txt.gz");

/// Errors of reading a tokenizer file; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is damaged or not in a format read here (bad gzip, bad JSON, not text).
    #[error("{}: {msg}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A readable tokenizer file that is not CLIP's tokenizer.
    #[error("{} is not CLIP's tokenizer: {reason}", path.display())]
    NotClip {
        /// The file.
        path: PathBuf,
        /// What was looked for and not found.
        reason: String,
    },
    /// A context length below 2 (the start and end tokens).
    #[error("invalid context length {0}: it must hold at least the start and end tokens (2)")]
    ContextLength(usize),
}

/// Where a tokenizer's vocabulary came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenizerSource {
    /// The copy of `bpe_simple_vocab_16e6.txt.gz` embedded in this crate.
    Builtin,
    /// OpenAI's merges file at this path (gzip or plain text).
    BpeFile(PathBuf),
    /// A Hugging Face `tokenizer.json` at this path (vocabulary and merges only).
    TokenizerJson(PathBuf),
}

impl fmt::Display for TokenizerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenizerSource::Builtin => write!(f, "built-in CLIP vocabulary ({BPE_FILE_NAME})"),
            TokenizerSource::BpeFile(p) => write!(f, "CLIP BPE vocabulary {}", p.display()),
            TokenizerSource::TokenizerJson(p) => write!(
                f,
                "Hugging Face tokenizer.json {} (its vocabulary and merges; cleaning as open_clip)",
                p.display()
            ),
        }
    }
}

/// One tokenized text: `context_length` ids, padded with [`PAD_ID`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tokens {
    /// `[START_ID, BPE ids…, END_ID, 0, 0, …]`, `context_length` long.
    pub ids: Vec<u32>,
    /// Number of ids before the padding (start and end tokens included).
    pub len: usize,
    /// Number of ids the text needs (start and end included): above `ids.len()` it was truncated.
    pub full_len: usize,
    /// Position of the largest id, the first one if repeated (`argmax`): where CLIP's text tower
    /// takes its features (the end token).
    pub pool_index: usize,
}

impl Tokens {
    /// Whether the text was cut to the context length (its last id then is the end token).
    pub fn truncated(&self) -> bool {
        self.full_len > self.ids.len()
    }
}

/// A batch of tokenized texts, row-major `[n, context_length]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBatch {
    /// `n × context_length` ids.
    pub ids: Vec<u32>,
    /// Ids per row.
    pub context_length: usize,
    /// [`Tokens::pool_index`] of every row.
    pub pool_index: Vec<usize>,
    /// [`Tokens::len`] of every row.
    pub lens: Vec<usize>,
    /// Rows whose text was truncated (ascending).
    pub truncated: Vec<usize>,
}

impl TokenBatch {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.pool_index.len()
    }
    /// Whether the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.pool_index.is_empty()
    }
    /// Row `i`'s ids.
    pub fn row(&self, i: usize) -> &[u32] {
        &self.ids[i * self.context_length..(i + 1) * self.context_length]
    }
}

/// Entries a per-word cache holds before it is emptied (it only saves time).
const CACHE_LIMIT: usize = 200_000;

/// Word → BPE ids.
type WordCache = HashMap<String, Vec<u32>>;

/// CLIP's tokenizer (see the module documentation). `Send + Sync`; the per-word BPE cache is
/// shared behind a lock.
pub struct ClipTokenizer {
    vocab: vocab::Vocab,
    source: TokenizerSource,
    context_length: usize,
    fingerprint: String,
    cache: RwLock<WordCache>,
}

impl fmt::Debug for ClipTokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClipTokenizer")
            .field("source", &self.source)
            .field("context_length", &self.context_length)
            .field("standard", &self.is_standard())
            .finish()
    }
}

fn split_pattern() -> &'static Regex {
    static PAT: OnceLock<Regex> = OnceLock::new();
    PAT.get_or_init(|| {
        // open_clip compiles its pattern with re.IGNORECASE. For the literal alternatives that
        // folds `ſ` (U+017F) into `s`: `'ſ` is a contraction and `<ſtart_of_text>` matches the
        // special-token alternative (then BPE'd as one word: only the exact strings are special).
        // For the classes it changes one character only: U+0345 (combining ypogegrammeni, whose
        // case folding is ι) is matched by neither `[\p{L}]` nor `[^\s\p{L}\p{N}]` in Python's
        // `regex`, so it separates words like a space. Rust's case-insensitive classes would put
        // it in `\p{L}`, hence the classes are written case-sensitively with U+0345 left out.
        Regex::new(
            r"(?i:<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d)|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}\x{345}]+",
        )
        .expect("valid regex")
    })
}

impl ClipTokenizer {
    fn new(vocab: vocab::Vocab, source: TokenizerSource) -> Self {
        let mut h = Sha256::new();
        for line in vocab.merge_lines.iter().take(CLIP_MERGES) {
            h.update(line.as_bytes());
            h.update(b"\n");
        }
        let fingerprint = h
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        ClipTokenizer {
            vocab,
            source,
            context_length: DEFAULT_CONTEXT_LENGTH,
            fingerprint,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// CLIP's standard vocabulary, embedded in this crate (`bpe_simple_vocab_16e6.txt.gz`, SHA-256
    /// [`BPE_SHA256`]).
    pub fn builtin() -> Self {
        let vocab = vocab::from_bpe_reader(BUILTIN_BPE, true, Path::new("<built-in>"))
            .expect("the embedded vocabulary is CLIP's (tested)");
        Self::new(vocab, TokenizerSource::Builtin)
    }

    /// OpenAI's merges file at `path`, gzip-compressed (as shipped) or plain text: a header line,
    /// then at least 48 894 lines `left right`; only those first merges are used.
    pub fn from_bpe_file(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let bytes = vocab::read_file(path)?;
        let gz = bytes.starts_with(&[0x1f, 0x8b]);
        let vocab = vocab::from_bpe_reader(bytes.as_slice(), gz, path)?;
        Ok(Self::new(
            vocab,
            TokenizerSource::BpeFile(path.to_path_buf()),
        ))
    }

    /// A Hugging Face `tokenizer.json` of CLIP (checked: byte-level BPE with `</w>`, 49 408 ids,
    /// `<|startoftext|>` 49406, `<|endoftext|>` 49407, CLIP's byte alphabet at 0..511). Its
    /// vocabulary and merges are used with open_clip's cleaning and splitting.
    pub fn from_tokenizer_json(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let bytes = vocab::read_file(path)?;
        let vocab = vocab::from_tokenizer_json(&bytes, path)?;
        Ok(Self::new(
            vocab,
            TokenizerSource::TokenizerJson(path.to_path_buf()),
        ))
    }

    /// Either kind of file, told apart by content: gzip or a first line that is not JSON → merges
    /// file, JSON → `tokenizer.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let bytes = vocab::read_file(path)?;
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'{') {
            let vocab = vocab::from_tokenizer_json(&bytes, path)?;
            Ok(Self::new(
                vocab,
                TokenizerSource::TokenizerJson(path.to_path_buf()),
            ))
        } else {
            let gz = bytes.starts_with(&[0x1f, 0x8b]);
            let vocab = vocab::from_bpe_reader(bytes.as_slice(), gz, path)?;
            Ok(Self::new(
                vocab,
                TokenizerSource::BpeFile(path.to_path_buf()),
            ))
        }
    }

    /// The same tokenizer with another context length (≥ 2; CLIP's is 77).
    pub fn with_context_length(mut self, context_length: usize) -> Result<Self, TokenizerError> {
        if context_length < 2 {
            return Err(TokenizerError::ContextLength(context_length));
        }
        self.context_length = context_length;
        Ok(self)
    }

    /// Where the vocabulary came from (for messages: `Display` says it in words).
    pub fn source(&self) -> &TokenizerSource {
        &self.source
    }

    /// Whether the merges are CLIP's standard ones ([`MERGES_FINGERPRINT`]), whatever the file.
    pub fn is_standard(&self) -> bool {
        self.fingerprint == MERGES_FINGERPRINT
    }

    /// SHA-256 over the merges in use, each as `left right\n`.
    pub fn merges_fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The context length (number of ids per text).
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// The BPE ids of `text` without start and end tokens and without truncation (open_clip's
    /// `SimpleTokenizer.encode`).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        self.encode_into(text, &mut out, None);
        out
    }

    /// [`Self::encode`] appending to `out`; words are looked up in `local` when given (a batch's
    /// per-thread cache), else in the shared cache.
    fn encode_into(&self, text: &str, out: &mut Vec<u32>, mut local: Option<&mut WordCache>) {
        let cleaned = clean::clean(text);
        for m in split_pattern().find_iter(&cleaned) {
            match m.as_str() {
                "<start_of_text>" => out.push(START_ID),
                "<end_of_text>" => out.push(END_ID),
                word => match local.as_deref_mut() {
                    Some(cache) => {
                        if let Some(ids) = cache.get(word) {
                            out.extend_from_slice(ids);
                        } else {
                            let ids = self.bpe(word.as_bytes());
                            out.extend_from_slice(&ids);
                            if cache.len() >= CACHE_LIMIT {
                                cache.clear();
                            }
                            cache.insert(word.to_string(), ids);
                        }
                    }
                    None => self.bpe_shared(word, out),
                },
            }
        }
    }

    fn bpe_shared(&self, word: &str, out: &mut Vec<u32>) {
        if let Some(ids) = self.cache.read().expect("cache lock").get(word) {
            out.extend_from_slice(ids);
            return;
        }
        let ids = self.bpe(word.as_bytes());
        out.extend_from_slice(&ids);
        let mut cache = self.cache.write().expect("cache lock");
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(word.to_string(), ids);
    }

    /// BPE of one word's bytes: start from the byte pieces (the last with `</w>`), then merge the
    /// lowest-ranked adjacent pair, all its occurrences left to right, until none is a merge.
    fn bpe(&self, bytes: &[u8]) -> Vec<u32> {
        let v = &self.vocab;
        let n = bytes.len();
        if n == 0 {
            return Vec::new();
        }
        let mut parts: Vec<u32> = bytes[..n - 1]
            .iter()
            .map(|&b| v.byte_ids[b as usize])
            .collect();
        parts.push(v.byte_end_ids[bytes[n - 1] as usize]);
        let mut next = Vec::with_capacity(parts.len());
        while parts.len() > 1 {
            let mut best: Option<(u32, u32, u32, u32)> = None; // (rank, a, b, merged)
            for w in parts.windows(2) {
                if let Some(&(rank, m)) = v.merges.get(&(w[0], w[1])) {
                    if best.is_none_or(|(r, ..)| rank < r) {
                        best = Some((rank, w[0], w[1], m));
                    }
                }
            }
            let Some((_, a, b, m)) = best else { break };
            next.clear();
            let mut i = 0;
            while i < parts.len() {
                if i + 1 < parts.len() && parts[i] == a && parts[i + 1] == b {
                    next.push(m);
                    i += 2;
                } else {
                    next.push(parts[i]);
                    i += 1;
                }
            }
            std::mem::swap(&mut parts, &mut next);
        }
        parts
    }

    /// Tokenizes one text (module documentation, steps 1–4).
    pub fn tokenize(&self, text: &str) -> Tokens {
        let mut buf = Vec::new();
        let mut ids = vec![PAD_ID; self.context_length];
        let (len, full_len, pool_index) = self.tokenize_into(text, &mut ids, &mut buf, None);
        Tokens {
            ids,
            len,
            full_len,
            pool_index,
        }
    }

    /// Writes `text`'s ids into `row` (`context_length` long, all [`PAD_ID`]); returns `(len,
    /// full_len, pool_index)` as in [`Tokens`]. `buf` is scratch space.
    fn tokenize_into(
        &self,
        text: &str,
        row: &mut [u32],
        buf: &mut Vec<u32>,
        local: Option<&mut WordCache>,
    ) -> (usize, usize, usize) {
        let ctx = self.context_length;
        buf.clear();
        buf.push(START_ID);
        self.encode_into(text, buf, local);
        buf.push(END_ID);
        let full_len = buf.len();
        let len = full_len.min(ctx);
        row[..len].copy_from_slice(&buf[..len]);
        row[len - 1] = END_ID; // already so unless truncated
        (len, full_len, argmax_first(row))
    }

    /// Tokenizes every text, in parallel over texts (each thread with its own word cache),
    /// row-major `[n, context_length]`.
    pub fn tokenize_batch<S: AsRef<str> + Sync>(&self, texts: &[S]) -> TokenBatch {
        use rayon::prelude::*;
        let ctx = self.context_length;
        let mut ids = vec![PAD_ID; texts.len() * ctx];
        let mut meta = vec![(0usize, 0usize, 0usize); texts.len()];
        ids.par_chunks_mut(ctx)
            .zip(meta.par_iter_mut())
            .zip(texts.par_iter())
            .with_min_len(256)
            .for_each_init(
                || (WordCache::new(), Vec::new()),
                |(cache, buf), ((row, m), text)| {
                    *m = self.tokenize_into(text.as_ref(), row, buf, Some(cache));
                },
            );
        TokenBatch {
            ids,
            context_length: ctx,
            truncated: (0..meta.len()).filter(|&i| meta[i].1 > ctx).collect(),
            lens: meta.iter().map(|m| m.0).collect(),
            pool_index: meta.iter().map(|m| m.2).collect(),
        }
    }

    /// The token string of `id` (byte characters, `</w>` ending a word), or `None` past the
    /// vocabulary.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.vocab.tokens.get(id as usize).map(String::as_str)
    }

    /// Text of `ids` (open_clip's `decode`): the tokens' bytes as UTF-8 (invalid sequences
    /// replaced), `</w>` read as a space; padding ids are decoded like any other id, so pass
    /// `&tokens.ids[..tokens.len]`.
    pub fn decode(&self, ids: &[u32]) -> String {
        let (chars, _) = bytes_to_unicode();
        let mut byte_of = HashMap::with_capacity(256);
        for (b, c) in chars.iter().enumerate() {
            byte_of.insert(*c, b as u8);
        }
        let mut bytes = Vec::new();
        for &id in ids {
            let Some(tok) = self.token(id) else { continue };
            if id == START_ID || id == END_ID {
                bytes.extend_from_slice(tok.as_bytes());
                continue;
            }
            let (body, end) = match tok.strip_suffix("</w>") {
                Some(b) => (b, true),
                None => (tok, false),
            };
            bytes.extend(body.chars().filter_map(|c| byte_of.get(&c).copied()));
            if end {
                bytes.push(b' ');
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Index of the first largest value (`torch.argmax` on a row of ids).
fn argmax_first(ids: &[u32]) -> usize {
    let mut best = 0;
    for (i, &v) in ids.iter().enumerate() {
        if v > ids[best] {
            best = i;
        }
    }
    best
}

/// A tokenizer file next to a checkpoint: in the checkpoint's folder (or the folder itself), the
/// first of `bpe_simple_vocab_16e6.txt.gz` and `tokenizer.json` that exists.
pub fn find_tokenizer_beside(checkpoint: impl AsRef<Path>) -> Option<PathBuf> {
    let p = checkpoint.as_ref();
    let dir = if p.is_dir() { p } else { p.parent()? };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    [BPE_FILE_NAME, "tokenizer.json"]
        .iter()
        .map(|n| dir.join(n))
        .find(|c| c.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_vocabulary_is_the_standard_one() {
        let digest: String = Sha256::digest(BUILTIN_BPE)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(digest, BPE_SHA256);
        let tok = ClipTokenizer::builtin();
        assert_eq!(tok.vocab.tokens.len(), VOCAB_SIZE);
        assert_eq!(tok.merges_fingerprint(), MERGES_FINGERPRINT);
        assert!(tok.is_standard());
        assert_eq!(tok.token(START_ID), Some("<start_of_text>"));
        assert_eq!(tok.token(END_ID), Some("<end_of_text>"));
    }

    #[test]
    fn truncation_keeps_the_end_token_last() {
        let tok = ClipTokenizer::builtin().with_context_length(5).unwrap();
        let t = tok.tokenize("one two three four five");
        assert_eq!(t.ids.len(), 5);
        assert_eq!(t.ids[0], START_ID);
        assert_eq!(t.ids[4], END_ID);
        assert!(t.truncated());
        assert_eq!(t.full_len, 7);
        assert_eq!(t.pool_index, 4);
        assert!(ClipTokenizer::builtin().with_context_length(1).is_err());
    }

    #[test]
    fn decode_round_trips_ordinary_text() {
        let tok = ClipTokenizer::builtin();
        let t = tok.tokenize("A photo of a café, 3.5-inch!");
        let text = tok.decode(&t.ids[1..t.len - 1]);
        assert_eq!(text.trim_end(), "a photo of a café , 3 . 5 - inch !");
    }
}
