//! Text in messages: counts that read as English, and names escaped so that whatever a services
//! file or a client sent stays on one line of a message or a log.

use std::fmt;

/// `1 service`, `2 services`: counts in log lines and messages read as English.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `s` with every character that could end, overwrite or disguise a line escaped the way Rust
/// writes it in a string literal (`\n`, `\r`, `\t`, `\u{1b}`): control characters (C0, DEL,
/// C1: newlines, carriage returns, terminal escapes), the Unicode line and paragraph separators
/// and the bidirectional controls (which reorder what a terminal shows). Everything else,
/// backslashes included, is kept, so escaping twice is escaping once.
pub fn escape(s: &str) -> Escaped<'_> {
    Escaped { text: s, quoted: false }
}

/// `s` in double quotes, escaped as by [`escape`] and with `"` and `\` escaped too: a name in a
/// message, unambiguous whatever it holds (what `{:?}` gives for ordinary text).
pub fn quote(s: &str) -> Escaped<'_> {
    Escaped { text: s, quoted: true }
}

/// Text made safe for one line of a log or a message: see [`escape`] and [`quote`].
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a> {
    text: &'a str,
    quoted: bool,
}

/// Whether `c` must not appear raw in a log line.
fn unsafe_in_a_line(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' // line and paragraph separators
            | '\u{061C}' | '\u{200E}' | '\u{200F}' // bidi marks
            | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}') // bidi embeddings, overrides, isolates
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        if self.quoted {
            f.write_char('"')?;
        }
        let mut clean = 0;
        for (i, c) in self.text.char_indices() {
            let quoted = self.quoted && matches!(c, '"' | '\\');
            if !quoted && !unsafe_in_a_line(c) {
                continue;
            }
            f.write_str(&self.text[clean..i])?;
            clean = i + c.len_utf8();
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '"' | '\\' => write!(f, "\\{c}")?,
                c => write!(f, "\\u{{{:x}}}", u32::from(c))?,
            }
        }
        f.write_str(&self.text[clean..])?;
        if self.quoted {
            f.write_char('"')?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_singular_for_one() {
        assert_eq!(count(1, "service"), "1 service");
        assert_eq!(count(0, "node"), "0 nodes");
        assert_eq!(count(2, "worker"), "2 workers");
    }

    #[test]
    fn escape_keeps_text_on_one_line() {
        assert_eq!(escape("plain text: \\n stays").to_string(), "plain text: \\n stays");
        assert_eq!(
            escape("a\nb\rc\td\x1b[31me\x07\x7f\u{85}").to_string(),
            "a\\nb\\rc\\td\\u{1b}[31me\\u{7}\\u{7f}\\u{85}"
        );
        assert_eq!(
            escape("x\u{2028}y\u{2029}z\u{202e}w\u{2066}v\u{200f}").to_string(),
            "x\\u{2028}y\\u{2029}z\\u{202e}w\\u{2066}v\\u{200f}"
        );
        assert_eq!(escape("ünïcødé 名前").to_string(), "ünïcødé 名前");
        let once = escape("a\nb\u{1b}").to_string();
        assert_eq!(escape(&once).to_string(), once, "escaping twice is escaping once");
        assert_eq!(quote("bar").to_string(), format!("{:?}", "bar"));
        assert_eq!(quote("a\"b\\c\nd").to_string(), format!("{:?}", "a\"b\\c\nd"));
        assert_eq!(quote("\u{202e}").to_string(), "\"\\u{202e}\"");
    }
}
