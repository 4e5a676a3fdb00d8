//! Bash-style brace expansion of shard patterns, with the semantics of the Python `braceexpand`
//! package (0.1.7) that webdataset expands its URLs with:
//!
//! * `{a,b,c}`: the alternatives in order (each expanded in turn; `{a,}` gives `a` and ``);
//! * `{3..7}`, `{7..3}`, `{-1..2}`, `{0..10..5}`: integer ranges, both ends included, either
//!   direction, optional step (its sign ignored, 0 read as 1); when either end other than `0`/`-0`
//!   starts with `0` or `-0` every number is zero-padded to the longer end's width
//!   (`{000..010}` → `000` … `010`, `{-05..5}` → `-05`, … `005`);
//! * `{a..e}`, `{a..e..2}`: letter ranges over `A…Za…z`;
//! * anything else in braces (`{}`, `{x}`) is literal, its inside still expanded;
//! * nested braces expand inside out; several groups give their product, the last varying fastest;
//! * `\` escapes the next character (`\{`, `\,`, `\\`), removed from the results.
//!
//! Stricter than `braceexpand`: a `}` without its `{` is an error too (braceexpand errors on an
//! unmatched `{` only).

/// Expands `pattern` (see the module doc). Errors on unbalanced braces or a range too large.
pub fn expand_braces(pattern: &str) -> Result<Vec<String>, String> {
    let raw = expand_raw(pattern).map_err(|e| format!("brace pattern `{pattern}`: {e}"))?;
    Ok(raw.into_iter().map(|s| unescape(&s)).collect())
}

/// The most strings one pattern may expand to.
pub const MAX_EXPANSION: usize = 1 << 20;

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some(n) => out.push(n),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Byte index of the `}` closing the `{` at `open`, skipping escaped characters.
fn matching_brace(s: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 1,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Expansion without removing escapes (they are removed once, at the top).
fn expand_raw(pattern: &str) -> Result<Vec<String>, String> {
    let b = pattern.as_bytes();
    let mut results = vec![String::new()];
    let mut lit_start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'}' => return Err(format!("`}}` at byte {i} closes no `{{`")),
            b'{' => {
                let close = matching_brace(b, i)
                    .ok_or_else(|| format!("`{{` at byte {i} is never closed"))?;
                let lit = &pattern[lit_start..i];
                let group = expand_group(&pattern[i + 1..close])?;
                if results.len().saturating_mul(group.len()) > MAX_EXPANSION {
                    return Err(format!("expands to more than {MAX_EXPANSION} strings"));
                }
                results = results
                    .iter()
                    .flat_map(|r| group.iter().map(move |g| format!("{r}{lit}{g}")))
                    .collect();
                i = close + 1;
                lit_start = i;
            }
            _ => i += 1,
        }
    }
    let tail = &pattern[lit_start.min(pattern.len())..];
    Ok(results.into_iter().map(|r| r + tail).collect())
}

/// The strings of one `{…}` group, given its inside.
fn expand_group(inner: &str) -> Result<Vec<String>, String> {
    if let Some(r) = int_range(inner)? {
        return Ok(r);
    }
    if let Some(r) = char_range(inner) {
        return Ok(r);
    }
    // Split at the commas outside nested braces.
    let b = inner.as_bytes();
    let (mut parts, mut depth, mut start, mut i) = (Vec::new(), 0i32, 0, 0);
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'{' => depth += 1,
            b'}' => depth -= 1,
            b',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if parts.is_empty() {
        // Not a sequence: literal braces around the expanded inside.
        return Ok(expand_raw(inner)?
            .into_iter()
            .map(|s| format!("{{{s}}}"))
            .collect());
    }
    parts.push(&inner[start.min(inner.len())..]);
    let mut out = Vec::new();
    for p in parts {
        out.extend(expand_raw(p)?);
        if out.len() > MAX_EXPANSION {
            return Err(format!("expands to more than {MAX_EXPANSION} strings"));
        }
    }
    Ok(out)
}

fn is_int(s: &str) -> bool {
    let d = s.strip_prefix('-').unwrap_or(s);
    !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit())
}

/// The optional `..step` of a range: `-?\d+`, sign ignored, 0 read as 1.
fn step_of(parts: &[&str]) -> Option<Result<u64, String>> {
    match parts.get(2) {
        None => Some(Ok(1)),
        Some(s) if is_int(s) => Some(
            s.trim_start_matches('-')
                .parse::<u64>()
                .map(|v| v.max(1))
                .map_err(|_| format!("range step `{s}` is too large")),
        ),
        Some(_) => None,
    }
}

fn int_range(inner: &str) -> Result<Option<Vec<String>>, String> {
    let parts: Vec<&str> = inner.split("..").collect();
    if !(2..=3).contains(&parts.len()) || !is_int(parts[0]) || !is_int(parts[1]) {
        return Ok(None);
    }
    let Some(step) = step_of(&parts) else {
        return Ok(None);
    };
    let step = step?;
    let (a, z) = (parts[0], parts[1]);
    let parse = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("range end `{s}` is too large"))
    };
    let (start, end) = (parse(a)?, parse(z)?);
    let padded = [a, z]
        .iter()
        .any(|s| *s != "0" && *s != "-0" && (s.starts_with('0') || s.starts_with("-0")));
    let width = if padded { a.len().max(z.len()) } else { 0 };
    let count = (start.abs_diff(end) / step).saturating_add(1);
    if count > MAX_EXPANSION as u64 {
        return Err(format!(
            "range `{{{inner}}}` has more than {MAX_EXPANSION} values"
        ));
    }
    let step = step as i64; // ≤ |end − start| or the range has one value
    let dir = if start < end { 1 } else { -1 };
    Ok(Some(
        (0..count as i64)
            .map(|k| format!("{:0width$}", start + dir * k * step))
            .collect(),
    ))
}

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn char_range(inner: &str) -> Option<Vec<String>> {
    let parts: Vec<&str> = inner.split("..").collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let letter = |s: &str| -> Option<usize> {
        let b = s.as_bytes();
        (b.len() == 1).then(|| ALPHABET.iter().position(|&c| c == b[0]))?
    };
    let (s, e) = (letter(parts[0])?, letter(parts[1])?);
    let step = step_of(&parts)?.ok()? as usize;
    let idx: Vec<usize> = if s < e {
        (s..=e).step_by(step).collect()
    } else {
        (e..=s).rev().step_by(step).collect()
    };
    Some(
        idx.into_iter()
            .map(|i| (ALPHABET[i] as char).to_string())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::expand_braces as x;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    /// The examples of braceexpand 0.1.7's docstring, results copied from it.
    #[test]
    fn braceexpand_docstring_examples() {
        assert_eq!(x("item{1..3}").unwrap(), v(&["item1", "item2", "item3"]));
        assert_eq!(x("{a..c}").unwrap(), v(&["a", "b", "c"]));
        assert_eq!(
            x("index.html{,.backup}").unwrap(),
            v(&["index.html", "index.html.backup"])
        );
        assert_eq!(
            x("python{2.{5..7},3.{2,3}}").unwrap(),
            v(&[
                "python2.5",
                "python2.6",
                "python2.7",
                "python3.2",
                "python3.3"
            ])
        );
        assert_eq!(x("{07..10}").unwrap(), v(&["07", "08", "09", "10"]));
        assert_eq!(x("{a..g..2}").unwrap(), v(&["a", "c", "e", "g"]));
        assert_eq!(x("{4..1}").unwrap(), v(&["4", "3", "2", "1"]));
        assert_eq!(x("{2..-1}").unwrap(), v(&["2", "1", "0", "-1"]));
        assert!(x("{1{2,3}").unwrap_err().contains("never closed"));
        assert_eq!(x(r"{1\{2,3}").unwrap(), v(&["1{2", "3"]));
    }

    #[test]
    fn shard_patterns_and_edges() {
        let s = x("data/shard-{000000..000002}.tar").unwrap();
        assert_eq!(
            s,
            v(&[
                "data/shard-000000.tar",
                "data/shard-000001.tar",
                "data/shard-000002.tar"
            ])
        );
        assert_eq!(x("{a,b}-{0..1}").unwrap(), v(&["a-0", "a-1", "b-0", "b-1"]));
        assert_eq!(x("plain.tar").unwrap(), v(&["plain.tar"]));
        assert_eq!(x("{}").unwrap(), v(&["{}"]));
        assert_eq!(x("{x}").unwrap(), v(&["{x}"]));
        assert_eq!(x("{0..10..5}").unwrap(), v(&["0", "5", "10"]));
        assert_eq!(x("{5..5}").unwrap(), v(&["5"]));
        assert_eq!(x("{1..3..0}").unwrap(), v(&["1", "2", "3"]));
        assert!(x("a}b").is_err());
        assert!(x("{0..99999999}").unwrap_err().contains("more than"));
    }
}
