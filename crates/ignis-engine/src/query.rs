//! Query strings, decoded as `application/x-www-form-urlencoded` (what `form_urlencoded::parse`
//! does), without its per-pair work for the pairs that need no decoding: nearly all of them.

use std::borrow::Cow;

/// The name/value pairs of a query string, in order: split on `&` (empty pieces skipped), then at
/// the first `=`; `+` and percent escapes decoded, invalid UTF-8 replaced. Exactly what
/// `form_urlencoded::parse` yields; a pair without `+` or `%` is borrowed as it is.
pub fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> + '_ {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            if piece.bytes().any(|b| b == b'+' || b == b'%') {
                // Decoding needed: the reference implementation, for this pair.
                form_urlencoded::parse(piece.as_bytes())
                    .next()
                    .map(|(k, v)| (Cow::Owned(k.into_owned()), Cow::Owned(v.into_owned())))
                    .unwrap_or_default()
            } else {
                let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
                (Cow::Borrowed(k), Cow::Borrowed(v))
            }
        })
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
