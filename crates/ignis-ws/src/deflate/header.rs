//! The `Sec-WebSocket-Extensions` header grammar (RFC 6455 §9.1), read with
//! the same strictness as the `ws` library so that a header ws rejects is
//! rejected here too: no whitespace at the very start or end, none around
//! `=`, quoted values must unescape to a token, and an empty element is an
//! error.

use super::NegotiationError;

/// One parameter as written: `name` or `name=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Param {
    pub name: String,
    pub value: Option<String>,
}

/// One extension element of the header: a name and its parameters in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    pub name: String,
    pub params: Vec<Param>,
}

/// Longest header accepted; real offers are well under 200 bytes and this
/// bounds the work and allocations a peer can cause.
const MAX_HEADER_LEN: usize = 8 * 1024;

const fn is_token(byte: u8) -> bool {
    matches!(byte,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.'
        | b'^' | b'_' | b'`' | b'|' | b'~'
        | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

const fn is_space(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

/// Where the scanner is: reading an extension name, a parameter name, or a
/// parameter value.
enum Part {
    Extension,
    ParamName,
    ParamValue {
        name: String,
        in_quotes: bool,
        escaping: bool,
        must_unescape: bool,
    },
}

/// Parses the whole header into its elements, in order.
pub(crate) fn parse(header: &[u8]) -> Result<Vec<Element>, NegotiationError> {
    if header.len() > MAX_HEADER_LEN {
        return Err(NegotiationError::HeaderTooLong);
    }
    let text = |start: usize, end: usize| -> String {
        // Only token bytes (ASCII) are ever sliced.
        header[start..end].iter().map(|&b| char::from(b)).collect()
    };
    let unexpected = |index: usize| NegotiationError::UnexpectedCharacter { index };

    let mut elements: Vec<Element> = Vec::new();
    let mut extension: Option<String> = None;
    let mut params: Vec<Param> = Vec::new();
    let mut part = Part::Extension;
    let mut start: Option<usize> = None;
    let mut end: Option<usize> = None;

    for (i, &c) in header.iter().enumerate() {
        match &mut part {
            Part::Extension => {
                if end.is_none() && is_token(c) {
                    start.get_or_insert(i);
                } else if i != 0 && is_space(c) {
                    if end.is_none() && start.is_some() {
                        end = Some(i);
                    }
                } else if c == b';' || c == b',' {
                    let s = start.ok_or(unexpected(i))?;
                    let name = text(s, end.unwrap_or(i));
                    if c == b',' {
                        elements.push(Element {
                            name,
                            params: std::mem::take(&mut params),
                        });
                    } else {
                        extension = Some(name);
                        part = Part::ParamName;
                    }
                    start = None;
                    end = None;
                } else {
                    return Err(unexpected(i));
                }
            }
            Part::ParamName => {
                if end.is_none() && is_token(c) {
                    start.get_or_insert(i);
                } else if is_space(c) {
                    if end.is_none() && start.is_some() {
                        end = Some(i);
                    }
                } else if c == b';' || c == b',' {
                    let s = start.ok_or(unexpected(i))?;
                    params.push(Param {
                        name: text(s, end.unwrap_or(i)),
                        value: None,
                    });
                    if c == b',' {
                        let name = extension.take().unwrap_or_default();
                        elements.push(Element {
                            name,
                            params: std::mem::take(&mut params),
                        });
                        part = Part::Extension;
                    }
                    start = None;
                    end = None;
                } else if c == b'=' && start.is_some() && end.is_none() {
                    let name = text(start.unwrap_or(i), i);
                    part = Part::ParamValue {
                        name,
                        in_quotes: false,
                        escaping: false,
                        must_unescape: false,
                    };
                    start = None;
                } else {
                    return Err(unexpected(i));
                }
            }
            Part::ParamValue {
                name,
                in_quotes,
                escaping,
                must_unescape,
            } => {
                if *escaping {
                    if !is_token(c) {
                        return Err(unexpected(i));
                    }
                    if start.is_none() {
                        start = Some(i);
                    } else {
                        *must_unescape = true;
                    }
                    *escaping = false;
                } else if *in_quotes {
                    if is_token(c) {
                        start.get_or_insert(i);
                    } else if c == b'"' && start.is_some() {
                        *in_quotes = false;
                        end = Some(i);
                    } else if c == b'\\' {
                        *escaping = true;
                    } else {
                        return Err(unexpected(i));
                    }
                } else if c == b'"' && i > 0 && header[i - 1] == b'=' {
                    *in_quotes = true;
                } else if end.is_none() && is_token(c) {
                    start.get_or_insert(i);
                } else if start.is_some() && is_space(c) {
                    if end.is_none() {
                        end = Some(i);
                    }
                } else if c == b';' || c == b',' {
                    let s = start.ok_or(unexpected(i))?;
                    let value = value_text(&header[s..end.unwrap_or(i)], *must_unescape);
                    params.push(Param {
                        name: std::mem::take(name),
                        value: Some(value),
                    });
                    if c == b',' {
                        let ext = extension.take().unwrap_or_default();
                        elements.push(Element {
                            name: ext,
                            params: std::mem::take(&mut params),
                        });
                        part = Part::Extension;
                    } else {
                        part = Part::ParamName;
                    }
                    start = None;
                    end = None;
                } else {
                    return Err(unexpected(i));
                }
            }
        }
    }

    let trailing_space = header.last().is_some_and(|&c| is_space(c));
    let in_quotes = matches!(
        part,
        Part::ParamValue {
            in_quotes: true,
            ..
        }
    );
    let Some(s) = start else {
        return Err(NegotiationError::UnexpectedEnd);
    };
    if in_quotes || trailing_space {
        return Err(NegotiationError::UnexpectedEnd);
    }
    let e = end.unwrap_or(header.len());
    match part {
        Part::Extension => elements.push(Element {
            name: text(s, e),
            params,
        }),
        Part::ParamName => {
            params.push(Param {
                name: text(s, e),
                value: None,
            });
            elements.push(Element {
                name: extension.unwrap_or_default(),
                params,
            });
        }
        Part::ParamValue {
            name,
            must_unescape,
            ..
        } => {
            let value = value_text(&header[s..e], must_unescape);
            params.push(Param {
                name,
                value: Some(value),
            });
            elements.push(Element {
                name: extension.unwrap_or_default(),
                params,
            });
        }
    }
    Ok(elements)
}

/// A value's text: token bytes, with the backslashes of a quoted-pair
/// removed when the value had one after its first character.
fn value_text(raw: &[u8], must_unescape: bool) -> String {
    raw.iter()
        .filter(|&&b| !(must_unescape && b == b'\\'))
        .map(|&b| char::from(b))
        .collect()
}

/// Formats one element the way `ws` does: `name; flag; key=value`.
pub(crate) fn format(element: &Element) -> String {
    let mut out = element.name.clone();
    for param in &element.params {
        out.push_str("; ");
        out.push_str(&param.name);
        if let Some(value) = &param.value {
            out.push('=');
            out.push_str(value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(name: &str, params: &[(&str, Option<&str>)]) -> Element {
        Element {
            name: name.to_owned(),
            params: params
                .iter()
                .map(|(n, v)| Param {
                    name: (*n).to_owned(),
                    value: v.map(str::to_owned),
                })
                .collect(),
        }
    }

    #[test]
    fn parses_valid_headers() {
        let cases: Vec<(&str, Vec<Element>)> = vec![
            ("foo", vec![el("foo", &[])]),
            ("foo, bar", vec![el("foo", &[]), el("bar", &[])]),
            ("foo,bar", vec![el("foo", &[]), el("bar", &[])]),
            ("foo; bar", vec![el("foo", &[("bar", None)])]),
            ("foo;bar=baz", vec![el("foo", &[("bar", Some("baz"))])]),
            ("foo; bar=\"baz\"", vec![el("foo", &[("bar", Some("baz"))])]),
            ("foo; bar=\"1\\0\"", vec![el("foo", &[("bar", Some("10"))])]),
            ("foo; bar=\"\\1\"", vec![el("foo", &[("bar", Some("1"))])]),
            (
                "foo; bar; baz=1, foo; qux, bar",
                vec![
                    el("foo", &[("bar", None), ("baz", Some("1"))]),
                    el("foo", &[("qux", None)]),
                    el("bar", &[]),
                ],
            ),
            (
                "foo ; bar ; baz=1 , qux",
                vec![
                    el("foo", &[("bar", None), ("baz", Some("1"))]),
                    el("qux", &[]),
                ],
            ),
            ("foo\t;\tbar", vec![el("foo", &[("bar", None)])]),
            (
                "foo; a=1; a=2",
                vec![el("foo", &[("a", Some("1")), ("a", Some("2"))])],
            ),
            (
                "foo; bar=\"baz\" ; qux",
                vec![el("foo", &[("bar", Some("baz")), ("qux", None)])],
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(input.as_bytes()), Ok(expected), "{input:?}");
        }
    }

    #[test]
    fn rejects_what_ws_rejects() {
        let cases: [(&str, NegotiationError); 19] = [
            ("", NegotiationError::UnexpectedEnd),
            (" foo", NegotiationError::UnexpectedCharacter { index: 0 }),
            ("foo ", NegotiationError::UnexpectedEnd),
            ("foo,", NegotiationError::UnexpectedEnd),
            ("foo;", NegotiationError::UnexpectedEnd),
            (",foo", NegotiationError::UnexpectedCharacter { index: 0 }),
            (
                "foo bar",
                NegotiationError::UnexpectedCharacter { index: 4 },
            ),
            (
                "foo;;bar",
                NegotiationError::UnexpectedCharacter { index: 4 },
            ),
            (
                "foo; bar =1",
                NegotiationError::UnexpectedCharacter { index: 9 },
            ),
            (
                "foo; bar= 1",
                NegotiationError::UnexpectedCharacter { index: 9 },
            ),
            ("foo; bar=", NegotiationError::UnexpectedEnd),
            (
                "foo; bar=\"\"",
                NegotiationError::UnexpectedCharacter { index: 10 },
            ),
            ("foo; bar=\"baz", NegotiationError::UnexpectedEnd),
            (
                "foo; bar=\"b z\"",
                NegotiationError::UnexpectedCharacter { index: 11 },
            ),
            (
                "foo; bar=\"baz\"qux",
                NegotiationError::UnexpectedCharacter { index: 14 },
            ),
            (
                "foo; bar=\"\\\"\"",
                NegotiationError::UnexpectedCharacter { index: 11 },
            ),
            (
                "foo; bar=b\"az\"",
                NegotiationError::UnexpectedCharacter { index: 10 },
            ),
            (
                "fo\u{e9}",
                NegotiationError::UnexpectedCharacter { index: 2 },
            ),
            (
                "foo=bar",
                NegotiationError::UnexpectedCharacter { index: 3 },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(input.as_bytes()), Err(expected), "{input:?}");
        }
    }

    #[test]
    fn rejects_oversized_header() {
        let header = "a".repeat(MAX_HEADER_LEN + 1);
        assert_eq!(
            parse(header.as_bytes()),
            Err(NegotiationError::HeaderTooLong)
        );
    }

    #[test]
    fn formats_like_ws() {
        let element = el(
            "permessage-deflate",
            &[
                ("server_no_context_takeover", None),
                ("client_max_window_bits", Some("10")),
            ],
        );
        assert_eq!(
            format(&element),
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=10"
        );
        assert_eq!(format(&el("permessage-deflate", &[])), "permessage-deflate");
    }
}
