//! Peer-supplied text made safe to log and to print on a terminal.
//!
//! Node ids, type URLs, resource names and NACK reasons arrive from the
//! network. Written raw, a `\n` forges a log line of its own and an ESC byte
//! drives the operator's terminal (`\x1b[2J` clears it). [`Escaped`] shows
//! such characters as visible escapes, [`truncate`] bounds what is stored,
//! and [`json_terminal_safe`] covers what `serde_json` leaves raw.

use std::fmt;

/// Appended where [`truncate`] or [`Escaped::truncated`] cut text short.
pub const TRUNCATED_MARKER: &str = "…[truncated]";

/// Displays a string with every character that could forge a line or drive
/// a terminal escaped: controls (C0, DEL, C1) as `\n`, `\r`, `\t` or
/// `\u{1b}`, bidirectional overrides as `\u{202e}`, and `\` as `\\` so an
/// escape in the output always means the peer did not send it literally.
#[derive(Clone, Copy, Debug)]
pub struct Escaped<'a> {
    text: &'a str,
    max_bytes: usize,
}

/// Shorthand for [`Escaped::new`].
pub fn escaped(text: &str) -> Escaped<'_> {
    Escaped::new(text)
}

/// Whether `c` must not reach a log line or a terminal as it is.
pub fn is_unsafe(c: char) -> bool {
    // `is_control` is Unicode's Cc: C0, DEL and the C1 range, where U+009B is
    // an 8-bit CSI for some terminals. The others reorder how a line reads
    // (the "Trojan Source" characters).
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// Cuts `text` to at most `max_bytes` bytes on a character boundary, with
/// [`TRUNCATED_MARKER`] inside that budget, so what a peer sends is bounded
/// where it is stored. Text that fits is left alone.
pub fn truncate(text: &mut String, max_bytes: usize) {
    if text.len() <= max_bytes {
        return;
    }
    let keep = floor_char_boundary(text, max_bytes.saturating_sub(TRUNCATED_MARKER.len()));
    text.truncate(keep);
    if TRUNCATED_MARKER.len() <= max_bytes {
        text.push_str(TRUNCATED_MARKER);
    }
    // Release what the peer made us allocate, not only hide it.
    text.shrink_to_fit();
}

/// The text [`truncate`] keeps, borrowed: `text` itself when it fits.
pub fn truncated(text: &str, max_bytes: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max_bytes {
        return std::borrow::Cow::Borrowed(text);
    }
    let keep = floor_char_boundary(text, max_bytes.saturating_sub(TRUNCATED_MARKER.len()));
    let mut out = String::with_capacity(keep + TRUNCATED_MARKER.len());
    out.push_str(&text[..keep]);
    if TRUNCATED_MARKER.len() <= max_bytes {
        out.push_str(TRUNCATED_MARKER);
    }
    std::borrow::Cow::Owned(out)
}

/// Escapes in serialized JSON what `serde_json` writes raw (DEL, C1 and the
/// bidirectional overrides) as `\uXXXX`, which JSON readers decode to the
/// same strings. Such characters can only occur inside JSON strings, so the
/// document keeps its meaning. C0 is left alone: `serde_json` escapes it in
/// strings, so a raw `\n` is the pretty printer's own whitespace.
pub fn json_terminal_safe(json: &str) -> std::borrow::Cow<'_, str> {
    let escape = |c: char| is_unsafe(c) && u32::from(c) >= 0x7f;
    if !json.chars().any(escape) {
        return std::borrow::Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if escape(c) {
            // Every character `is_unsafe` accepts is in the BMP: one \u escape.
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The largest character boundary of `text` at or below `index`.
fn floor_char_boundary(text: &str, index: usize) -> usize {
    let mut i = index.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

// === impl Escaped ===

impl<'a> Escaped<'a> {
    /// All of `text`, escaped.
    pub fn new(text: &'a str) -> Self {
        Self {
            text,
            max_bytes: usize::MAX,
        }
    }

    /// At most the first `max_bytes` bytes of the text (cut on a character
    /// boundary), then [`TRUNCATED_MARKER`], so one log field stays small
    /// whatever the peer sent.
    pub fn truncated(self, max_bytes: usize) -> Self {
        Self { max_bytes, ..self }
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cut = self.text.len() > self.max_bytes;
        let shown = match cut {
            true => &self.text[..floor_char_boundary(self.text, self.max_bytes)],
            false => self.text,
        };
        let mut start = 0;
        for (i, c) in shown.char_indices() {
            if c != '\\' && !is_unsafe(c) {
                continue;
            }
            f.write_str(&shown[start..i])?;
            match c {
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c => write!(f, "\\u{{{:x}}}", u32::from(c))?,
            }
            start = i + c.len_utf8();
        }
        f.write_str(&shown[start..])?;
        if cut {
            f.write_str(TRUNCATED_MARKER)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_plain_text_is_kept() {
        assert_eq!(
            escaped("sidecar~10.0.0.1~web-0.shop").to_string(),
            "sidecar~10.0.0.1~web-0.shop"
        );
        assert_eq!(
            escaped("a\nINFO forged\x1b[2J\r\t\\ \u{7f}\u{9b}\u{202e}é").to_string(),
            "a\\nINFO forged\\u{1b}[2J\\r\\t\\\\ \\u{7f}\\u{9b}\\u{202e}é"
        );
    }

    #[test]
    fn truncation_keeps_char_boundaries_and_marks_the_cut() {
        let mut s = "é".repeat(1000);
        truncate(&mut s, 101);
        assert!(s.len() <= 101, "{}", s.len());
        assert!(s.ends_with(TRUNCATED_MARKER));
        let mut short = "fits".to_string();
        truncate(&mut short, 4);
        assert_eq!(short, "fits");
        assert_eq!(truncated("abcdef", 100), "abcdef");
        assert!(truncated(&"x".repeat(50), 20).len() <= 20);
        let shown = escaped("ééé\n").truncated(3).to_string();
        assert_eq!(shown, format!("é{TRUNCATED_MARKER}"));
    }

    #[test]
    fn json_escapes_what_serde_json_leaves_raw() {
        let value = vec!["a\u{1b}b\u{9b}c\u{202e}\n"];
        let json = serde_json::to_string_pretty(&value).expect("serializes");
        let safe = json_terminal_safe(&json);
        assert!(!safe.chars().any(|c| is_unsafe(c) && c != '\n'), "{safe}");
        let back: Vec<String> = serde_json::from_str(&safe).expect("still JSON");
        assert_eq!(back, value);
    }
}
