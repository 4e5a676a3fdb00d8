//! open_clip's text cleaning (`_clean_lower`): `whitespace_clean(basic_clean(text)).lower()` with
//! `basic_clean(t) = html.unescape(html.unescape(ftfy.fix_text(t))).strip()`.
//!
//! [`fix_text`] is the part of ftfy 6.3.1's `fix_text` (default configuration) that text without
//! mojibake needs, in ftfy's order; what is not implemented is listed on [`fix_text`].
//! [`html_unescape`] is Python's `html.unescape` exactly (all HTML5 named references, legacy names
//! without `;`, the longest-prefix rule, numeric references with the HTML5 replacement table).

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::{Captures, Regex};
use unicode_normalization::UnicodeNormalization;

/// open_clip's cleaning: [`fix_text`], then [`html_unescape`] twice, strip, whitespace runs
/// collapsed to one space ([`python_isspace`] characters, as Python's `str.split()`), and
/// lower-case (full Unicode mapping with the final-sigma rule, as Python's `str.lower()`).
pub fn clean(text: &str) -> String {
    let fixed = fix_text(text);
    let once = html_unescape(&fixed);
    let twice = html_unescape(&once);
    let mut out = String::with_capacity(twice.len());
    for word in twice.split(python_isspace).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.is_ascii() {
        out.make_ascii_lowercase();
        out
    } else {
        out.to_lowercase()
    }
}

/// Python's `str.isspace()` for one character (what `str.split()` and `str.strip()` cut on):
/// bidirectional class WS, B or S, or category Zs. Unlike Unicode's White_Space it includes
/// U+001C..U+001F.
pub fn python_isspace(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\u{1c}'..='\u{20}'
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// ftfy 6.3.1's `fix_text` with its default configuration, except `fix_encoding`.
///
/// As ftfy: the text is fixed in segments that end after each `\n` (and at most 1 000 000
/// characters); HTML entities are unescaped (ftfy's own unescaper, see [`ftfy_unescape_html`])
/// unless the segment, or any earlier one, contains `<`; then, repeated until nothing changes:
/// `fix_c1_controls` (U+0080..U+009F as Windows-1252), `fix_latin_ligatures` (ﬁ → fi, Ĳ → IJ,
/// ǆ → dž, …), `fix_character_width` (full-width and half-width forms → their NFKC form,
/// U+3000 → space), `uncurl_quotes` (U+02BC, U+2018..U+201B → `'`; U+201C..U+201F → `"`),
/// `fix_line_breaks` (CRLF, CR, U+2028, U+2029, U+0085 → `\n`), `remove_terminal_escapes`
/// (`ESC [ digits/; letter`), `remove_control_chars` (U+0000..U+0008, U+000B, U+000E..U+001F,
/// U+007F, U+206A..U+206F, U+FEFF, U+FFF9..U+FFFC) and NFC normalisation.
///
/// **Not implemented**: `fix_encoding` — mojibake detection and repair (ftfy's `is_bad` heuristic
/// and the re-decodings it guards: UTF-8 read as Latin-1/Windows-125x/MacRoman/CP437,
/// `restore_byte_a0`, `replace_lossy_sequences`, `decode_inconsistent_utf8`, Latin-1 →
/// Windows-1252) — and `fix_surrogates` (a Rust `str` cannot hold surrogates). ftfy leaves ASCII
/// text and text that its heuristic does not find "bad" unchanged in that step, so only text that
/// looks like mojibake differs: e.g. `cafÃ©` stays `cafÃ©` here where ftfy makes it `café`. The
/// result is then exactly ftfy's with `fix_encoding=False`.
pub fn fix_text(text: &str) -> String {
    const MAX_SEGMENT: usize = 1_000_000;
    let mut out = String::with_capacity(text.len());
    let mut unescape = true;
    let mut rest = text;
    while !rest.is_empty() {
        // The segment ends after the first '\n' or after MAX_SEGMENT characters.
        let mut end = rest.len();
        for (count, (i, c)) in rest.char_indices().enumerate() {
            if count == MAX_SEGMENT {
                end = i;
                break;
            }
            if c == '\n' {
                end = i + 1;
                break;
            }
        }
        let (segment, tail) = rest.split_at(end);
        rest = tail;
        if unescape && segment.contains('<') {
            // ftfy's "auto" mode: a literal '<' means HTML, whose entities are kept (and the
            // config stays changed for the following segments).
            unescape = false;
        }
        fix_segment(segment, unescape, &mut out);
    }
    out
}

/// True when every fix is the identity on `s`: printable ASCII, tab, `\n` and form feed only (and
/// no `&` when entities are unescaped).
fn needs_no_fix(s: &str, unescape: bool) -> bool {
    s.bytes().all(|b| {
        ((0x20..0x7f).contains(&b) && !(unescape && b == b'&'))
            || b == b'\t'
            || b == b'\n'
            || b == 0x0c
    })
}

fn fix_segment(segment: &str, unescape: bool, out: &mut String) {
    if needs_no_fix(segment, unescape) {
        out.push_str(segment);
        return;
    }
    let mut text = segment.to_string();
    loop {
        let mut t = if unescape {
            ftfy_unescape_html(&text)
        } else {
            text.clone()
        };
        t = translate(&t, c1_and_width_and_ligatures_and_quotes);
        t = fix_line_breaks(&t);
        t = remove_terminal_escapes(&t);
        t.retain(|c| !is_removed_control(c));
        t = t.nfc().collect();
        if t == text {
            break;
        }
        text = t;
    }
    out.push_str(&text);
}

/// Applies `f` (one character → its replacement, or `None` to keep it) to every character.
fn translate(s: &str, f: impl Fn(char, &mut String) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if !f(c, &mut out) {
            out.push(c);
        }
    }
    out
}

/// Windows-1252's characters for bytes 0x80..0x9F; its five unassigned bytes map to the C1
/// control of the same number (ftfy's "sloppy" codec, and HTML5's numeric-reference table).
const CP1252_HIGH: [char; 32] = [
    '\u{20ac}', '\u{81}', '\u{201a}', '\u{192}', '\u{201e}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{2c6}', '\u{2030}', '\u{160}', '\u{2039}', '\u{152}', '\u{8d}', '\u{17d}', '\u{8f}',
    '\u{90}', '\u{2018}', '\u{2019}', '\u{201c}', '\u{201d}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{2dc}', '\u{2122}', '\u{161}', '\u{203a}', '\u{153}', '\u{9d}', '\u{17e}', '\u{178}',
];

/// ftfy's `fix_c1_controls`, `fix_latin_ligatures`, `fix_character_width` and `uncurl_quotes`,
/// applied one after the other to one character (each maps a character to characters the later
/// ones may map again: ŉ → ʼn → 'n, and U+0091 → U+2018 → `'` as ftfy's sequence does).
fn c1_and_width_and_ligatures_and_quotes(c: char, out: &mut String) -> bool {
    let c = match c {
        '\u{80}'..='\u{9f}' => CP1252_HIGH[c as usize - 0x80],
        _ => c,
    };
    let lig = match c {
        'Ĳ' => Some("IJ"),
        'ĳ' => Some("ij"),
        'ŉ' => Some("\u{2bc}n"),
        'Ǳ' => Some("DZ"),
        'ǲ' => Some("Dz"),
        'ǳ' => Some("dz"),
        'Ǆ' => Some("DŽ"),
        'ǅ' => Some("Dž"),
        'ǆ' => Some("dž"),
        'Ǉ' => Some("LJ"),
        'ǈ' => Some("Lj"),
        'ǉ' => Some("lj"),
        'Ǌ' => Some("NJ"),
        'ǋ' => Some("Nj"),
        'ǌ' => Some("nj"),
        'ﬀ' => Some("ff"),
        'ﬁ' => Some("fi"),
        'ﬂ' => Some("fl"),
        'ﬃ' => Some("ffi"),
        'ﬄ' => Some("ffl"),
        'ﬅ' => Some("ſt"),
        'ﬆ' => Some("st"),
        _ => None,
    };
    let mut buf = [0u8; 4];
    let piece: &str = match lig {
        Some(s) => s,
        None => c.encode_utf8(&mut buf),
    };
    // Width, then quotes, on each character of the piece.
    for ch in piece.chars() {
        match ch {
            '\u{3000}' => out.push(' '),
            '\u{ff01}'..='\u{ffef}' => {
                // ftfy's WIDTH_MAP: the character's NFKC form where that differs from it.
                let mut n = String::new();
                n.extend(std::iter::once(ch).nfkc());
                for q in n.chars() {
                    out.push(uncurl(q));
                }
            }
            _ => out.push(uncurl(ch)),
        }
    }
    true
}

fn uncurl(c: char) -> char {
    match c {
        '\u{2bc}' | '\u{2018}'..='\u{201b}' => '\'',
        '\u{201c}'..='\u{201f}' => '"',
        _ => c,
    }
}

/// ftfy's `fix_line_breaks`: CRLF, CR, U+2028, U+2029 and U+0085 become `\n`.
fn fix_line_breaks(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push('\n');
            }
            '\u{2028}' | '\u{2029}' | '\u{85}' => out.push('\n'),
            _ => out.push(c),
        }
    }
    out
}

/// ftfy's `remove_terminal_escapes`: `ESC [ (digit|;)* letter` removed (`\d` = any Unicode
/// decimal digit, as in Python's `re`).
fn remove_terminal_escapes(s: &str) -> String {
    if !s.contains('\u{1b}') {
        return s.to_string();
    }
    static ANSI: OnceLock<Regex> = OnceLock::new();
    let re = ANSI.get_or_init(|| Regex::new(r"\x1b\[[\d;]*[a-zA-Z]").expect("valid regex"));
    re.replace_all(s, "").into_owned()
}

/// ftfy's `remove_control_chars` set.
fn is_removed_control(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{8}'
            | '\u{b}'
            | '\u{e}'..='\u{1f}'
            | '\u{7f}'
            | '\u{206a}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffc}'
    )
}

/// The HTML entity tables: Python 3.11's `html.entities.html5` (names with and without `;`) and
/// ftfy 6.3.1's all-caps additions, from `data/html_entities.tsv` (`scripts/make_text_data.py`).
struct Entities {
    html5: HashMap<&'static str, String>,
    ftfy_upper: HashMap<&'static str, String>,
}

fn entities() -> &'static Entities {
    static TABLE: OnceLock<Entities> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut e = Entities {
            html5: HashMap::new(),
            ftfy_upper: HashMap::new(),
        };
        for line in include_str!("../../data/html_entities.tsv").lines() {
            let mut f = line.split('\t');
            let (name, cps, kind) = (f.next(), f.next(), f.next());
            let (Some(name), Some(cps), Some(kind)) = (name, cps, kind) else {
                panic!("data/html_entities.tsv: malformed line {line:?}");
            };
            let value: String = cps
                .split(' ')
                .map(|h| {
                    u32::from_str_radix(h, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .unwrap_or_else(|| panic!("data/html_entities.tsv: bad code point {h:?}"))
                })
                .collect();
            match kind {
                "html5" => e.html5.insert(name, value),
                "ftfy-upper" => e.ftfy_upper.insert(name, value),
                _ => panic!("data/html_entities.tsv: unknown kind {kind:?}"),
            };
        }
        e
    })
}

/// Python's `html.unescape`: every match of
/// `&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)` is replaced. Numeric references:
/// the HTML5 table for 0x00, 0x0D and 0x80..0x9F, U+FFFD for surrogates and numbers above
/// 0x10FFFF, nothing for the other invalid code points (controls, nonchararacters). Named
/// references: the HTML5 name (with its `;`, or one of the 106 legacy names without), else the
/// longest HTML5 name that is a prefix of at least two characters (`&notit;` → `¬it;`), else kept.
pub fn html_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    static CHARREF: OnceLock<Regex> = OnceLock::new();
    let re = CHARREF.get_or_init(|| {
        Regex::new(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\x0c <&#;]{1,32};?)")
            .expect("valid regex")
    });
    re.replace_all(s, |caps: &Captures| replace_charref(&caps[1]))
        .into_owned()
}

fn replace_charref(s: &str) -> String {
    if let Some(num) = s.strip_prefix('#') {
        let digits = num.trim_end_matches(';');
        let value = match digits.strip_prefix(['x', 'X']) {
            Some(hex) => parse_saturating(hex, 16),
            None => parse_saturating(digits, 10),
        };
        return numeric_charref(value);
    }
    let table = &entities().html5;
    if let Some(v) = table.get(s) {
        return v.clone();
    }
    // Longest prefix of at least two characters that is an entity name.
    let ends: Vec<usize> = s.char_indices().map(|(i, _)| i).collect();
    for x in (2..ends.len()).rev() {
        let (head, tail) = s.split_at(ends[x]);
        if let Some(v) = table.get(head) {
            return format!("{v}{tail}");
        }
    }
    format!("&{s}")
}

/// `digits` in `radix`, saturating at `u64::MAX` (any such value is above 0x10FFFF).
fn parse_saturating(digits: &str, radix: u32) -> u64 {
    digits.chars().fold(0u64, |acc, c| {
        let d = c.to_digit(radix).unwrap_or(0) as u64;
        acc.saturating_mul(radix as u64).saturating_add(d)
    })
}

fn numeric_charref(num: u64) -> String {
    match num {
        0x00 => "\u{fffd}".into(),
        0x0d => "\r".into(),
        0x80..=0x9f => CP1252_HIGH[num as usize - 0x80].to_string(),
        0xd800..=0xdfff => "\u{fffd}".into(),
        n if n > 0x10ffff => "\u{fffd}".into(),
        0x01..=0x08 | 0x0b | 0x0e..=0x1f | 0x7f | 0xfdd0..=0xfdef => String::new(),
        n if n & 0xfffe == 0xfffe => String::new(),
        n => char::from_u32(n as u32)
            .map(String::from)
            .unwrap_or_default(),
    }
}

/// ftfy's `unescape_html`: every match of `&#?[0-9A-Za-z]{1,24};` that is an HTML5 name ending in
/// `;`, or one of ftfy's all-caps forms of a lower-case HTML5 name (`&EACUTE;` → É, `&SZLIG;` →
/// SS), is replaced; a numeric one is replaced when Python's `html.unescape` consumes its `;`;
/// anything else is kept (so `&amp` without `;` stays).
pub fn ftfy_unescape_html(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    static ENTITY: OnceLock<Regex> = OnceLock::new();
    let re = ENTITY.get_or_init(|| Regex::new(r"&#?[0-9A-Za-z]{1,24};").expect("valid regex"));
    let e = entities();
    re.replace_all(s, |caps: &Captures| {
        let text = &caps[0];
        let name = &text[1..];
        if let Some(v) = e.html5.get(name).or_else(|| e.ftfy_upper.get(name)) {
            // Only names ending in ';' are in ftfy's table, and the match always ends in ';'.
            return v.clone();
        }
        if text.starts_with("&#") {
            let un = html_unescape(text);
            return if un.contains(';') {
                text.to_string()
            } else {
                un
            };
        }
        text.to_string()
    })
    .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_unescape_follows_python() {
        // Values from Python 3.11's html.unescape.
        assert_eq!(html_unescape("a &amp; b"), "a & b");
        assert_eq!(html_unescape("&amp"), "&");
        assert_eq!(html_unescape("&ampx"), "&x");
        assert_eq!(html_unescape("&notit;"), "¬it;");
        assert_eq!(html_unescape("&#39;&#x27;&#X41"), "''A");
        assert_eq!(
            html_unescape("&#0;&#128;&#x110000;&#xd800;&#1;"),
            "\u{fffd}€\u{fffd}\u{fffd}"
        );
        assert_eq!(html_unescape("&bogus; & &#;"), "&bogus; & &#;");
        assert_eq!(html_unescape("&NewLine;&Tab;"), "\n\t");
    }

    #[test]
    fn ftfy_unescape_needs_semicolons() {
        assert_eq!(ftfy_unescape_html("&amp &amp;"), "&amp &");
        assert_eq!(ftfy_unescape_html("P&EACUTE;REZ &SZLIG;"), "PÉREZ SS");
        assert_eq!(ftfy_unescape_html("&nTILDE; &#65; &#65"), "&nTILDE; A &#65");
    }

    #[test]
    fn fix_text_examples_from_ftfy_docs() {
        assert_eq!(fix_text("ＬＯＵＤ　ＮＯＩＳＥＳ"), "LOUD NOISES");
        assert_eq!(fix_text("ﬂuﬃeﬆ"), "fluffiest");
        assert_eq!(
            fix_text("\u{201c}here\u{2019}s a test\u{201d}"),
            "\"here's a test\""
        );
        assert_eq!(
            fix_text("Broken text&hellip; it&#x2019;s ﬂubberiﬁc!"),
            "Broken text… it's flubberific!"
        );
        assert_eq!(fix_text("a\r\nb\rc\u{2028}d"), "a\nb\nc\nd");
        assert_eq!(fix_text("\u{1b}[36;44mblue\u{1b}[0m\u{feff}"), "blue");
        assert_eq!(fix_text("e\u{301}"), "é");
        // A '<' turns entity unescaping off for that line and the following ones.
        assert_eq!(fix_text("&amp;\n<b>&amp;\n&amp;"), "&\n<b>&amp;\n&amp;");
    }

    #[test]
    fn clean_collapses_python_whitespace_and_lowercases() {
        assert_eq!(
            clean("  Hello\t\u{a0}WORLD \u{3000} ΟΔΟΣ "),
            "hello world οδος"
        );
        assert_eq!(clean("&amp;amp;"), "&");
    }
}
