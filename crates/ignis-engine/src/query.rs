//! Query strings, decoded as `application/x-www-form-urlencoded` (what `form_urlencoded::parse`
//! does), without its per-pair work for the pairs that need no decoding: nearly all of them.

use std::borrow::Cow;

/// The name/value pairs of a query string, in order: split on `&` (empty pieces skipped), then at
/// the first `=`; `+` and percent escapes decoded, invalid UTF-8 replaced. Exactly what
/// `form_urlencoded::parse` yields; a pair without `+` or `%` is borrowed as it is.
pub fn query_pairs(query: &str) -> QueryPairs<'_> {
    QueryPairs { rest: query }
}

/// The iterator of [`query_pairs`].
#[derive(Debug, Clone)]
pub struct QueryPairs<'a> {
    rest: &'a str,
}

impl<'a> Iterator for QueryPairs<'a> {
    type Item = (Cow<'a, str>, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            // One pass over the piece: where it ends, where its `=` is, whether it needs
            // decoding. The separators are ASCII, so every index found is a char boundary.
            let bytes = self.rest.as_bytes();
            let mut end = bytes.len();
            let mut eq = None;
            let mut encoded = false;
            for (i, &b) in bytes.iter().enumerate() {
                match b {
                    b'&' => {
                        end = i;
                        break;
                    }
                    b'=' if eq.is_none() => eq = Some(i),
                    b'+' | b'%' => encoded = true,
                    _ => {}
                }
            }
            let piece = &self.rest[..end];
            self.rest = self.rest.get(end + 1..).unwrap_or("");
            if piece.is_empty() {
                continue;
            }
            if encoded {
                // Decoding needed: the reference implementation, for this pair.
                return form_urlencoded::parse(piece.as_bytes())
                    .next()
                    .map(|(k, v)| (Cow::Owned(k.into_owned()), Cow::Owned(v.into_owned())));
            }
            return Some(match eq {
                Some(i) => (Cow::Borrowed(&piece[..i]), Cow::Borrowed(&piece[i + 1..])),
                None => (Cow::Borrowed(piece), Cow::Borrowed("")),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_those_of_form_urlencoded() {
        let cases = [
            "",
            "EIO=4&transport=websocket",
            "EIO=4&transport=polling&sid=abc-_DEF&t=Pqx1",
            "&&a=1&&b&=c&d==e&",
            "a+b=c+d&%41=%42%43&x=%zz&y=%E2%82%AC&z=%FF",
            "k=v=w&empty=&=",
            "transport=polling&transport=websocket",
            "=&&=&a&b=",
            "€=é&ü",
            "a%26b=c%3Dd&%=%&+",
        ];
        for q in cases {
            let ours: Vec<(String, String)> = query_pairs(q)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let reference: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            assert_eq!(ours, reference, "{q:?}");
        }
    }

    #[test]
    fn plain_pairs_are_borrowed() {
        for (k, v) in query_pairs("EIO=4&transport=websocket") {
            assert!(matches!(k, Cow::Borrowed(_)) && matches!(v, Cow::Borrowed(_)));
        }
    }
}
