//! Text from a request or a provider in log lines, with control characters escaped.
//!
//! Query parameters, error codes and descriptions, headers, URLs and error messages that
//! carry them are attacker-controlled: logged raw, a `%0A` forges a log line and a `%1b[2J`
//! drives the terminal of whoever reads the log. Every log field of auth that may hold such
//! text goes through [`Escaped`].

use std::fmt::{self, Write as _};

/// Shows the `Display` of `T` with control characters escaped: `\n`, `\r` and `\t` as those
/// two-character sequences, every other control character and the Unicode direction
/// overrides as `\u{..}`. Everything else is unchanged.
pub(crate) struct Escaped<T>(pub(crate) T);

impl<T: fmt::Display> fmt::Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(EscapingWriter(f), "{}", self.0)
    }
}

impl<T: fmt::Display> fmt::Debug for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

struct EscapingWriter<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl fmt::Write for EscapingWriter<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(needs_escape) {
            self.0.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().expect("found a char at `at`");
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c => write!(self.0, "{}", c.escape_unicode())?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// Control characters, and the bidirectional overrides that reorder what a terminal shows.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::Escaped;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        let raw = "x\nINFO forged\r\t\u{1b}[2J\u{7f}\u{202e}é✓";
        let shown = Escaped(raw).to_string();
        assert_eq!(shown, "x\\nINFO forged\\r\\t\\u{1b}[2J\\u{7f}\\u{202e}é✓");
        assert!(!shown.chars().any(char::is_control));
        assert_eq!(Escaped("plain text").to_string(), "plain text");
        assert_eq!(format!("{:?}", Escaped("a\nb")), "a\\nb");
    }
}
