//! Log fields that come from clients (token headers, topics, room names, reasons built from
//! them) are written through [`Escaped`], so a newline or a control character in them cannot
//! start a forged line in the text log.

use std::fmt::{self, Write};

/// Displays a string with newlines, quotes and control characters escaped as Rust does
/// (`\n`, `\u{1b}`), without the surrounding quotes `{:?}` would add.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Printable text, accents and other scripts included, stays readable.
        for c in self.0.chars() {
            if c == '\\' || c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        let cases = [
            ("plain room", "plain room"),
            ("a\nb", "a\\nb"),
            (
                "a\r\n2026-01-01T00:00:00Z  INFO forged",
                "a\\r\\n2026-01-01T00:00:00Z  INFO forged",
            ),
            ("esc\u{1b}[31m", "esc\\u{1b}[31m"),
            ("back\\slash", "back\\\\slash"),
            ("é ü 東", "é ü 東"),
            ("line\u{2028}sep", "line\\u{2028}sep"),
        ];
        for (raw, shown) in cases {
            assert_eq!(Escaped(raw).to_string(), shown, "{raw:?}");
        }
    }
}
