//! Reading CLIP's BPE vocabulary: OpenAI's merges file (`bpe_simple_vocab_16e6.txt[.gz]`) or a
//! Hugging Face `tokenizer.json`, into ids of the byte alphabet and a merge table over ids.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::{TokenizerError, END_ID, START_ID, VOCAB_SIZE};

/// Merges of the file that CLIP uses: `49152 − 256 − 2` (the vocabulary is 256 bytes, 256 bytes
/// ending a word, these merges and the two special tokens).
pub const CLIP_MERGES: usize = 49152 - 256 - 2;

/// `(left id, right id)` → `(rank, merged id)`.
pub(crate) type MergeTable = HashMap<(u32, u32), (u32, u32)>;

/// The vocabulary as the tokenizer uses it.
pub(crate) struct Vocab {
    /// Token string of every id (`decoder`), byte-level characters and `</w>`.
    pub tokens: Vec<String>,
    /// `(left id, right id)` → `(rank, merged id)`.
    pub merges: MergeTable,
    /// Id of byte `b` as a word-inner piece, and as a word's last piece (`</w>`).
    pub byte_ids: [u32; 256],
    /// Id of byte `b` + `</w>`.
    pub byte_end_ids: [u32; 256],
    /// The merges in rank order as `left right` lines (for the fingerprint).
    pub merge_lines: Vec<String>,
}

/// CLIP's `bytes_to_unicode`: byte → character, and the order of the 256 characters in the
/// vocabulary (printable Latin-1 `!..~`, `¡..¬`, `®..ÿ` as themselves first, then the other bytes
/// in increasing order as U+0100, U+0101, …).
pub fn bytes_to_unicode() -> ([char; 256], [u8; 256]) {
    let mut order: Vec<u8> = (b'!'..=b'~')
        .chain(0xa1..=0xac)
        .chain(0xae..=0xff)
        .collect();
    let mut chars = ['\0'; 256];
    for &b in &order {
        chars[b as usize] = char::from(b);
    }
    let mut n = 0u32;
    for b in 0..=255u8 {
        if !order.contains(&b) {
            order.push(b);
            chars[b as usize] = char::from_u32(256 + n).expect("valid char");
            n += 1;
        }
    }
    let mut ord = [0u8; 256];
    ord.copy_from_slice(&order);
    (chars, ord)
}

/// The 512 base tokens in id order: the byte characters, then each with `</w>`.
fn base_tokens() -> Vec<String> {
    let (chars, order) = bytes_to_unicode();
    let mut v: Vec<String> = order
        .iter()
        .map(|&b| chars[b as usize].to_string())
        .collect();
    let with_end: Vec<String> = v.iter().map(|s| format!("{s}</w>")).collect();
    v.extend(with_end);
    v
}

fn byte_id_tables(encoder: &HashMap<String, u32>) -> Option<([u32; 256], [u32; 256])> {
    let (chars, _) = bytes_to_unicode();
    let mut ids = [0u32; 256];
    let mut end_ids = [0u32; 256];
    for b in 0..256 {
        let c = chars[b].to_string();
        ids[b] = *encoder.get(&c)?;
        end_ids[b] = *encoder.get(&format!("{c}</w>"))?;
    }
    Some((ids, end_ids))
}

/// Builds the merge table as open_clip does: `bpe_ranks = dict(zip(merges, range))` (a repeated
/// pair keeps its last rank); a pair whose pieces have no id can never occur and is skipped.
fn merge_table(
    pairs: &[(String, String)],
    encoder: &HashMap<String, u32>,
    path: &Path,
) -> Result<MergeTable, TokenizerError> {
    let mut merges = HashMap::with_capacity(pairs.len());
    for (rank, (a, b)) in pairs.iter().enumerate() {
        let (Some(&ia), Some(&ib)) = (encoder.get(a), encoder.get(b)) else {
            continue;
        };
        let joined = format!("{a}{b}");
        let Some(&m) = encoder.get(&joined) else {
            return Err(TokenizerError::NotClip {
                path: path.to_path_buf(),
                reason: format!(
                    "merge {} (`{a} {b}`) gives `{joined}`, which is not in the vocabulary",
                    rank + 1
                ),
            });
        };
        merges.insert((ia, ib), (rank as u32, m));
    }
    Ok(merges)
}

fn finish(
    tokens: Vec<String>,
    encoder: &HashMap<String, u32>,
    pairs: Vec<(String, String)>,
    path: &Path,
) -> Result<Vocab, TokenizerError> {
    let (byte_ids, byte_end_ids) =
        byte_id_tables(encoder).ok_or_else(|| TokenizerError::NotClip {
            path: path.to_path_buf(),
            reason: "the vocabulary lacks CLIP's byte alphabet (bytes_to_unicode and `</w>`)"
                .into(),
        })?;
    let merges = merge_table(&pairs, encoder, path)?;
    let merge_lines = pairs.into_iter().map(|(a, b)| format!("{a} {b}")).collect();
    Ok(Vocab {
        tokens,
        merges,
        byte_ids,
        byte_end_ids,
        merge_lines,
    })
}

/// Reads OpenAI's merges file (gzip or plain text): line 0 is a header, lines 1..=48894 are the
/// merges `left right` CLIP uses (the rest of the file is ignored, as open_clip does). Ids:
/// 0..255 bytes, 256..511 bytes + `</w>`, 512.. the merges in order, then `<start_of_text>`
/// (49406) and `<end_of_text>` (49407); a repeated token string keeps its last id, as Python's
/// `dict(zip(vocab, range))`.
pub(crate) fn from_bpe_reader(
    reader: impl Read,
    gz: bool,
    path: &Path,
) -> Result<Vocab, TokenizerError> {
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let mut lines = BufReader::new(reader).lines();
    let io_err = |e: std::io::Error| TokenizerError::Format {
        path: path.to_path_buf(),
        msg: if gz {
            format!("cannot decompress or decode the gzip stream ({e})")
        } else {
            format!("cannot read as UTF-8 text ({e})")
        },
    };
    match lines.next() {
        Some(Ok(_header)) => {}
        Some(Err(e)) => return Err(io_err(e)),
        None => {
            return Err(TokenizerError::NotClip {
                path: path.to_path_buf(),
                reason: "empty file (a CLIP merges file has a header line and 48 894+ merges)"
                    .into(),
            })
        }
    }
    let mut pairs = Vec::with_capacity(CLIP_MERGES);
    let mut any_end = false;
    for i in 0..CLIP_MERGES {
        let line = match lines.next() {
            Some(l) => l.map_err(io_err)?,
            None => {
                return Err(TokenizerError::NotClip {
                    path: path.to_path_buf(),
                    reason: format!("{i} merges, CLIP's vocabulary uses the first {CLIP_MERGES}"),
                })
            }
        };
        let mut parts = line.split_whitespace();
        let (Some(a), Some(b), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(TokenizerError::NotClip {
                path: path.to_path_buf(),
                reason: format!("line {} is {line:?}, not a merge `left right`", i + 2),
            });
        };
        any_end |= b.ends_with("</w>");
        pairs.push((a.to_string(), b.to_string()));
    }
    if !any_end {
        return Err(TokenizerError::NotClip {
            path: path.to_path_buf(),
            reason: "no merge ends a word with `</w>` (a GPT-2-style BPE, not CLIP's)".into(),
        });
    }
    let mut tokens = base_tokens();
    tokens.extend(pairs.iter().map(|(a, b)| format!("{a}{b}")));
    tokens.push("<start_of_text>".into());
    tokens.push("<end_of_text>".into());
    debug_assert_eq!(tokens.len(), VOCAB_SIZE);
    let mut encoder = HashMap::with_capacity(tokens.len());
    for (i, t) in tokens.iter().enumerate() {
        encoder.insert(t.clone(), i as u32);
    }
    finish(tokens, &encoder, pairs, path)
}

/// Reads a Hugging Face `tokenizer.json` of CLIP: `model.type` `BPE` with `end_of_word_suffix`
/// `</w>`, a vocabulary of 49 408 ids with `<|startoftext|>` = 49406, `<|endoftext|>` = 49407 and
/// CLIP's byte alphabet at ids 0..511, and `model.merges` (`"a b"` strings or `["a", "b"]` pairs)
/// whose results are in the vocabulary. Only the vocabulary and the merges are used: the cleaning
/// and splitting are open_clip's (HF's CLIP normalizer is NFC + whitespace + lower case, without
/// ftfy or HTML unescaping).
pub(crate) fn from_tokenizer_json(bytes: &[u8], path: &Path) -> Result<Vocab, TokenizerError> {
    let not_clip = |reason: String| TokenizerError::NotClip {
        path: path.to_path_buf(),
        reason,
    };
    let json: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| TokenizerError::Format {
            path: path.to_path_buf(),
            msg: format!("not valid JSON ({e})"),
        })?;
    let model = json
        .get("model")
        .and_then(|m| m.as_object())
        .ok_or_else(|| not_clip("no `model` object (not a Hugging Face tokenizer.json)".into()))?;
    let kind = model
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or("(none)");
    if kind != "BPE" {
        return Err(not_clip(format!(
            "model.type is {kind}, CLIP's tokenizer is a byte-level BPE (`BPE`)"
        )));
    }
    let suffix = model.get("end_of_word_suffix").and_then(|t| t.as_str());
    if suffix != Some("</w>") {
        return Err(not_clip(format!(
            "model.end_of_word_suffix is {suffix:?}, CLIP's BPE marks word ends with `</w>` \
             (a GPT-2-style BPE has none)"
        )));
    }
    if let Some(p) = model
        .get("continuing_subword_prefix")
        .and_then(|t| t.as_str())
    {
        if !p.is_empty() {
            return Err(not_clip(format!(
                "model.continuing_subword_prefix is {p:?}, CLIP's is empty"
            )));
        }
    }
    let vocab = model
        .get("vocab")
        .and_then(|v| v.as_object())
        .ok_or_else(|| not_clip("model.vocab is not an object of token → id".into()))?;
    if vocab.len() != VOCAB_SIZE {
        return Err(not_clip(format!(
            "model.vocab has {} tokens, CLIP's has {VOCAB_SIZE}",
            vocab.len()
        )));
    }
    let mut tokens = vec![String::new(); VOCAB_SIZE];
    let mut encoder = HashMap::with_capacity(VOCAB_SIZE);
    for (tok, id) in vocab {
        let id = id
            .as_u64()
            .filter(|&i| (i as usize) < VOCAB_SIZE)
            .ok_or_else(|| {
                not_clip(format!(
                    "token {tok:?} has id {id}, outside 0..{VOCAB_SIZE}"
                ))
            })?;
        if !tokens[id as usize].is_empty() {
            return Err(not_clip(format!(
                "id {id} is given to both {:?} and {tok:?}",
                tokens[id as usize]
            )));
        }
        tokens[id as usize] = tok.clone();
        encoder.insert(tok.clone(), id as u32);
    }
    for (name, want) in [("<|startoftext|>", START_ID), ("<|endoftext|>", END_ID)] {
        match encoder.get(name) {
            Some(&id) if id == want => {}
            got => {
                return Err(not_clip(format!(
                    "special token {name} has id {got:?}, CLIP's is {want}"
                )))
            }
        }
    }
    for (i, t) in base_tokens().iter().enumerate() {
        if tokens[i] != *t {
            return Err(not_clip(format!(
                "id {i} is {:?}, CLIP's byte alphabet has {t:?} there",
                tokens[i]
            )));
        }
    }
    let merges = model
        .get("merges")
        .and_then(|m| m.as_array())
        .ok_or_else(|| not_clip("model.merges is not a list".into()))?;
    let mut pairs = Vec::with_capacity(merges.len());
    for (i, m) in merges.iter().enumerate() {
        let pair = match m {
            serde_json::Value::String(s) => {
                let mut p = s.split(' ');
                match (p.next(), p.next(), p.next()) {
                    (Some(a), Some(b), None) => Some((a.to_string(), b.to_string())),
                    _ => None,
                }
            }
            serde_json::Value::Array(a) if a.len() == 2 => match (a[0].as_str(), a[1].as_str()) {
                (Some(x), Some(y)) => Some((x.to_string(), y.to_string())),
                _ => None,
            },
            _ => None,
        };
        pairs.push(pair.ok_or_else(|| not_clip(format!("model.merges[{i}] is {m}, not a pair")))?);
    }
    finish(tokens, &encoder, pairs, path)
}

/// Reads a whole file, with an error naming it.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, TokenizerError> {
    std::fs::read(path).map_err(|source| TokenizerError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_alphabet_matches_clip() {
        let (chars, order) = bytes_to_unicode();
        assert_eq!(chars[b'a' as usize], 'a');
        assert_eq!(chars[b' ' as usize], '\u{120}'); // 'Ġ': space is the 33rd non-printable byte
        assert_eq!(chars[0], '\u{100}');
        assert_eq!(chars[0xad], '\u{143}'); // soft hyphen is the last one
        assert_eq!(order[0], b'!');
        assert_eq!(order[188], 0); // 94 + 12 + 82 printable first
        let mut sorted = order.to_vec();
        sorted.sort();
        assert_eq!(sorted, (0..=255).collect::<Vec<u8>>());
    }
}
