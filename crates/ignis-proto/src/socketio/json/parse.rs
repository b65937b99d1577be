//! Parsing a JSON payload straight into a [`Value`].
//!
//! Written by hand for the same reason as the encoder: a payload becomes a `Value` tree and
//! nothing else, and going through serde's generic visitor costs several times what the parse
//! itself does on the small payloads of most events. It accepts and refuses exactly what
//! `serde_json::from_str::<Value>` (with `float_roundtrip`) does, and gives the same values; the
//! tests compare the two on generated and mutated inputs.

use std::fmt;

use super::encode::{escape_hits, word_at};
use crate::socketio::shape::MAX_DEPTH;
use crate::value::{CompactString, Map, Value};

/// Why a payload is not JSON, and the byte offset where that was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    pub(crate) what: &'static str,
    pub(crate) at: usize,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

/// Parses one JSON value that fills `text` (surrounding whitespace aside).
pub(crate) fn parse(text: &str) -> Result<Value, ParseError> {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        text,
        at: 0,
        depth: 0,
    };
    let value = parser.value()?;
    parser.skip_whitespace();
    if parser.at != parser.bytes.len() {
        return Err(parser.error("trailing characters"));
    }
    Ok(value)
}

/// The index of the first byte from `at` on that ends a plain run inside a string (`"`, `\\` or
/// a control character), or `bytes.len()`. Eight bytes are looked at a time; the last few bytes
/// of the input are read as the input's last word with the bytes before `at` made spaces, so
/// that only a bare input shorter than a word is scanned byte by byte.
fn plain_end(bytes: &[u8], mut at: usize) -> usize {
    let len = bytes.len();
    while at + 8 <= len {
        let hits = escape_hits(word_at(bytes, at));
        if hits != 0 {
            return at + (hits.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    if at >= len {
        return len;
    }
    if len < 8 {
        return bytes[at..]
            .iter()
            .position(|&b| ends_plain_run(b))
            .map_or(len, |i| at + i);
    }
    // Bytes before `at` have been checked; as spaces they can neither match nor, through a
    // borrow, make a byte after them look like a match.
    let base = len - 8;
    let done = 8 * (at - base) as u32;
    let checked = (1u64 << done) - 1;
    let word = (word_at(bytes, base) & !checked) | (SPACES & checked);
    let hits = escape_hits(word);
    if hits == 0 {
        len
    } else {
        base + (hits.trailing_zeros() / 8) as usize
    }
}

const SPACES: u64 = 0x2020_2020_2020_2020;

fn ends_plain_run(b: u8) -> bool {
    matches!(b, b'"' | b'\\' | 0..=0x1f)
}

struct Parser<'a> {
    bytes: &'a [u8],
    text: &'a str,
    at: usize,
    /// Arrays and objects open around the current position.
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, what: &'static str) -> ParseError {
        ParseError { what, at: self.at }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn literal(&mut self, word: &'static [u8], value: Value) -> Result<Value, ParseError> {
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.error("expected ident"))
        }
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        self.skip_whitespace();
        match self.peek() {
            None => Err(self.error("EOF while parsing a value")),
            Some(b'n') => self.literal(b"null", Value::Null),
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'"') => self.string().map(Value::Str),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'[') => self.array(),
            Some(b'{') => self.object(),
            Some(_) => Err(self.error("expected value")),
        }
    }

    /// Steps into the array or object whose opening bracket is at the current position; true
    /// when `close` follows at once, the container empty and already left.
    fn enter(&mut self, close: u8) -> Result<bool, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("recursion limit exceeded"));
        }
        self.at += 1;
        self.skip_whitespace();
        if self.peek() == Some(close) {
            self.leave();
            return Ok(true);
        }
        Ok(false)
    }

    /// Steps over the closing bracket of the current container.
    fn leave(&mut self) {
        self.at += 1;
        self.depth -= 1;
    }

    fn array(&mut self) -> Result<Value, ParseError> {
        if self.enter(b']')? {
            return Ok(Value::Array(Vec::new()));
        }
        // What the first push would allocate anyway, without going through the growth path.
        let mut items = Vec::with_capacity(4);
        loop {
            items.push(self.value()?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.leave();
                    return Ok(Value::Array(items));
                }
                None => return Err(self.error("EOF while parsing a list")),
                Some(_) => return Err(self.error("expected `,` or `]`")),
            }
        }
    }

    fn object(&mut self) -> Result<Value, ParseError> {
        if self.enter(b'}')? {
            return Ok(Value::Map(Map::new()));
        }
        let mut entries = Vec::with_capacity(4);
        loop {
            self.skip_whitespace();
            match self.peek() {
                Some(b'"') => {}
                None => return Err(self.error("EOF while parsing an object")),
                Some(_) => return Err(self.error("key must be a string")),
            }
            let key = self.key()?;
            self.skip_whitespace();
            match self.peek() {
                Some(b':') => self.at += 1,
                None => return Err(self.error("EOF while parsing an object")),
                Some(_) => return Err(self.error("expected `:`")),
            }
            let value = self.value()?;
            entries.push((key, value));
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.leave();
                    return Ok(Value::Map(Map::from_keyed_entries(entries)));
                }
                None => return Err(self.error("EOF while parsing an object")),
                Some(_) => return Err(self.error("expected `,` or `}`")),
            }
        }
    }

    /// An object key, the opening quote at the current position: a key without escapes is
    /// taken straight from the input, with no `String` in between.
    fn key(&mut self) -> Result<CompactString, ParseError> {
        let start = self.at + 1;
        let end = plain_end(self.bytes, start);
        if self.bytes.get(end) == Some(&b'"') {
            self.at = end + 1;
            return Ok(CompactString::from(&self.text[start..end]));
        }
        self.string().map(CompactString::from)
    }

    /// A string, the opening quote at the current position.
    fn string(&mut self) -> Result<String, ParseError> {
        self.at += 1;
        let start = self.at;
        self.at = plain_end(self.bytes, start);
        // The common case: no escape, copied in one piece. The input is a `str` and the run
        // ends at an ASCII byte, so it needs no UTF-8 check of its own.
        match self.peek() {
            Some(b'"') => {
                let s = self.text[start..self.at].to_owned();
                self.at += 1;
                return Ok(s);
            }
            Some(b'\\') => {}
            None => return Err(self.error("EOF while parsing a string")),
            Some(_) => return Err(self.error("control character in string")),
        }
        let mut out = self.text[start..self.at].to_owned();
        loop {
            // At a backslash.
            self.at += 1;
            self.escape(&mut out)?;
            let run = self.at;
            self.at = plain_end(self.bytes, run);
            out.push_str(&self.text[run..self.at]);
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b'\\') => {}
                None => return Err(self.error("EOF while parsing a string")),
                Some(_) => return Err(self.error("control character in string")),
            }
        }
    }

    /// The escape after a backslash.
    fn escape(&mut self, out: &mut String) -> Result<(), ParseError> {
        let Some(b) = self.peek() else {
            return Err(self.error("EOF while parsing a string"));
        };
        self.at += 1;
        let c = match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => self.unicode_escape()?,
            _ => return Err(self.error("invalid escape")),
        };
        out.push(c);
        Ok(())
    }

    /// The character of a `\u` escape (the `\u` consumed), joining a surrogate pair.
    ///
    /// A JavaScript string may hold a lone surrogate (half of an emoji cut by a UTF-16 length,
    /// say), and `JSON.stringify` writes it as such an escape, so socket.io-client sends it and
    /// Node's server takes it. A Rust string cannot hold one: it becomes U+FFFD, as
    /// `String::from_utf16_lossy` does, rather than failing the packet and with it the
    /// connection.
    fn unicode_escape(&mut self) -> Result<char, ParseError> {
        let first = self.hex4()?;
        match first {
            0xD800..=0xDBFF => {
                if self.bytes[self.at..].starts_with(b"\\u") {
                    let before_second = self.at;
                    self.at += 2;
                    let second = self.hex4()?;
                    if (0xDC00..=0xDFFF).contains(&second) {
                        let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                        return char::from_u32(code)
                            .ok_or_else(|| self.error("invalid unicode code point"));
                    }
                    // Not a pair: the next escape is a character of its own.
                    self.at = before_second;
                }
                Ok(char::REPLACEMENT_CHARACTER)
            }
            0xDC00..=0xDFFF => Ok(char::REPLACEMENT_CHARACTER),
            _ => char::from_u32(first).ok_or_else(|| self.error("invalid unicode code point")),
        }
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let mut n = 0;
        for _ in 0..4 {
            let Some(b) = self.peek() else {
                return Err(self.error("EOF while parsing a string"));
            };
            let digit = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ => return Err(self.error("invalid escape")),
            };
            n = n * 16 + u32::from(digit);
            self.at += 1;
        }
        Ok(n)
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - start
    }

    /// A number: an integer that fits 64 bits stays exact, anything else is a correctly rounded
    /// float (an infinite one is refused).
    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.at;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let int_start = self.at;
        match self.peek() {
            Some(b'0') => {
                self.at += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.error("invalid number"));
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("invalid number")),
        }
        let int_end = self.at;
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
            float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
            float = true;
        }
        if !float {
            let magnitude = self.text[int_start..int_end].parse::<u64>().ok();
            match (negative, magnitude) {
                (false, Some(n)) => return Ok(Value::from_u64(n)),
                // -0 is not an integer to JSON.parse, nor to serde_json.
                (true, Some(0)) => return Ok(Value::Float(-0.0)),
                (true, Some(n)) if n <= i64::MAX as u64 + 1 => {
                    return Ok(Value::Int((n as i64).wrapping_neg()));
                }
                _ => {}
            }
        }
        match self.text[start..self.at].parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Value::Float(f)),
            _ => Err(ParseError {
                what: "number out of range",
                at: start,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    fn serde(text: &str) -> Result<Value, ()> {
        serde_json::from_str::<Value>(text).map_err(|_| ())
    }

    fn same(text: &str) {
        let ours = parse(text).map_err(|_| ());
        // serde_json refuses a lone surrogate escape, which we take as U+FFFD (see
        // `unicode_escape` and its own test); past one, the two need not agree.
        let lower = text.to_ascii_lowercase();
        let surrogate_escape = ["8", "9", "a", "b", "c", "d", "e", "f"]
            .iter()
            .any(|d| lower.contains(&format!("\\ud{d}")));
        if surrogate_escape && serde(text).is_err() {
            return;
        }
        let theirs = serde(text);
        match (&ours, &theirs) {
            // Float equality on the bits: -0.0 and 0.0 must not pass for each other.
            (Ok(a), Ok(b)) => assert!(identical(a, b), "{text:?}: {a:?} vs {b:?}"),
            _ => assert_eq!(
                ours.is_ok(),
                theirs.is_ok(),
                "{text:?}: {ours:?} vs {theirs:?}"
            ),
        }
    }

    fn identical(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| identical(a, b))
            }
            (Value::Map(x), Value::Map(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .zip(y.iter())
                        .all(|((ka, va), (kb, vb))| ka == kb && identical(va, vb))
            }
            _ => a == b,
        }
    }

    #[test]
    fn agrees_with_serde_json_on_chosen_inputs() {
        for text in [
            "null",
            "true",
            "false",
            "0",
            "-0",
            "1",
            "-1",
            "01",
            "-01",
            "1.",
            ".5",
            "1.5",
            "-1.5e3",
            "1E+2",
            "1e-2",
            "1e",
            "1e+",
            "-",
            "--1",
            "+1",
            "1e400",
            "-1e400",
            "1e-400",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "18446744073709551615",
            "18446744073709551616",
            "123456789012345678901234567890",
            "0.1",
            "2.2250738585072011e-308",
            "4.9e-324",
            "1.7976931348623157e308",
            "1.7976931348623159e308",
            "\"\"",
            "\"a\"",
            "\"\\u0041\"",
            "\"\\ud83d\\ude00\"",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\u12g4\"",
            "\"a\nb\"",
            "\"\u{7f}\"",
            "\"é😀\"",
            "\"\\/\\b\\f\\n\\r\\t\\\"\\\\\"",
            "\"abc",
            "\"abc\\",
            "[]",
            "[ ]",
            "[1,]",
            "[,1]",
            "[1 2]",
            "[1",
            "{}",
            "{ }",
            "{\"a\":1}",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{a:1}",
            "{\"a\":1,\"a\":2}",
            "{\"a\":1,\"b\":2,\"a\":3}",
            "{\"original\":1,\"timestamp\":2}",
            "{\"aaaaaaaaaaaaaaaaaaaaaaaa\":1,\"aaaaaaaaaaaaaaaaaaaaaaaaa\":2}",
            "{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":1,\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":2}",
            "{\"é😀\":1,\"\\u00e9\":2,\"é\":3}",
            "{\"yyyyyyyyyyyyyyyyyyyyyyyé\":1}",
            "{\"a\\nb\":1,\"a\\u000ab\":2}",
            "{\"\":1,\"\":2}",
            "{\"a\"",
            "{\"a\":",
            " 1 ",
            "\t\n\r1",
            "1 2",
            "nul",
            "nulll",
            "truex",
            "[null,true,false]",
            "",
            " ",
            "\u{feff}1",
            "[1]x",
            "{\"a\":[{\"b\":[]}]}",
            "[\"echo\",\"x\"]",
            "1.0",
            "-0.0",
            "0e0",
            "-0e-0",
            "1E400",
        ] {
            same(text);
        }
    }

    #[test]
    fn nesting_stops_where_serde_json_stops() {
        for depth in [1, 126, 127, 128, 129, 300] {
            same(&("[".repeat(depth) + &"]".repeat(depth)));
            let objects = "{\"a\":".repeat(depth) + "1" + &"}".repeat(depth);
            same(&objects);
        }
    }

    /// The string scanner reads words, the input's last one overlapping what was already read:
    /// a quote, backslash, control or non-ASCII character must be handled wherever it falls, in
    /// strings of every short length, at every offset from the end of the input, closed or not.
    #[test]
    fn every_short_length_and_position_agrees_with_serde_json() {
        // `#` right after a quote and `]` right after a backslash are where a borrow out of the
        // quote or backslash before them would make them look like one.
        let specials = [
            "\"", "\\", "\\n", "\\u00e9", "\\x", "\n", "\u{1}", "\u{1f}", "\u{7f}", "é", "😀", " ",
            "#", "\\\\]", "\\\"#",
        ];
        for len in 0..=17 {
            let mut bodies = vec!["x".repeat(len)];
            for special in specials {
                for at in 0..len {
                    bodies.push("x".repeat(at) + special + &"x".repeat(len - at - 1));
                }
            }
            for body in &bodies {
                for prefix in ["", "[", "[\"echo\",", "{\"ab\":"] {
                    for suffix in ["\"", "\"]", "\"}", "\"  ", "\",1]", "", "]"] {
                        same(&format!("{prefix}\"{body}{suffix}"));
                    }
                }
            }
        }
    }

    impl Rng {
        fn json(&mut self, depth: u32, out: &mut String) {
            const ATOMS: &[&str] = &[
                "null",
                "true",
                "false",
                "0",
                "-0",
                "12",
                "-7",
                "3.25",
                "1e3",
                "-2.5E-3",
                "18446744073709551616",
                "\"\"",
                "\"x\"",
                "\"a\\nb\"",
                "\"\\u00e9\"",
                "\"é\"",
                "\"\\ud83d\\ude00\"",
                "\"q\\\"\"",
            ];
            match if depth > 3 { 0 } else { self.below(4) } {
                0 | 1 => out.push_str(ATOMS[self.below(ATOMS.len())]),
                2 => {
                    out.push('[');
                    for i in 0..self.below(4) {
                        if i > 0 {
                            out.push(',');
                        }
                        self.json(depth + 1, out);
                    }
                    out.push(']');
                }
                _ => {
                    out.push('{');
                    for i in 0..self.below(4) {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(["\"a\"", "\"b\"", "\"\\u0061\""][self.below(3)]);
                        out.push(':');
                        self.json(depth + 1, out);
                    }
                    out.push('}');
                }
            }
        }
    }

    #[test]
    fn agrees_with_serde_json_on_generated_and_mutated_inputs() {
        const NOISE: &[&str] = &[
            "", " ", ",", "]", "[", "}", "{", "\"", "\\", ":", "-", "0", "e", ".", "\u{1}", "n",
        ];
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        for _ in 0..20_000 {
            let mut text = String::new();
            rng.json(0, &mut text);
            same(&text);
            // The same text with one piece of noise put in, taken out, or both.
            let mut at = rng.below(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let mut mutated = text.clone();
            mutated.insert_str(at, NOISE[rng.below(NOISE.len())]);
            same(&mutated);
            if let Some((i, c)) = text
                .char_indices()
                .nth(rng.below(text.chars().count().max(1)))
            {
                let mut cut = text.clone();
                cut.replace_range(i..i + c.len_utf8(), "");
                same(&cut);
            }
        }
    }

    #[test]
    fn a_lone_surrogate_becomes_the_replacement_character() {
        // serde_json refuses these; JavaScript (and so socket.io-client) writes them.
        for (text, want) in [
            ("\"\\ud83d\"", "\u{fffd}"),
            ("\"\\ude00\"", "\u{fffd}"),
            ("\"\\ud83dx\"", "\u{fffd}x"),
            ("\"\\ud83d\\u0041\"", "\u{fffd}A"),
            ("\"\\ud83d\\ud83d\\ude00\"", "\u{fffd}\u{1f600}"),
            ("\"a\\ude00\\ud83d\"", "a\u{fffd}\u{fffd}"),
        ] {
            assert_eq!(parse(text), Ok(Value::Str(want.into())), "{text}");
        }
        // A broken second escape is still an error.
        assert!(parse("\"\\ud83d\\u12\"").is_err());
    }
}
