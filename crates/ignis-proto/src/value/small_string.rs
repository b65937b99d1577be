//! [`SmallString`]: an owned string that keeps short text inline.

use std::borrow::{Borrow, Cow};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// The longest text kept inline: what fits beside a length byte and the variant's tag in the
/// 24 bytes a `String` takes.
const INLINE_MAX: usize = 22;

/// An owned, immutable string that keeps up to 22 bytes inline and longer text on the heap.
///
/// Object keys and namespaces are nearly always short (`"id"`, `"timestamp"`, `"/"`): held in a
/// `String`, each would cost an allocation and a free per message. It dereferences to `str` and
/// compares, hashes and orders as its text does, so it stands in for a `String` wherever the text
/// is only read.
#[derive(Clone)]
pub struct SmallString(Repr);

#[derive(Clone)]
enum Repr {
    /// `bytes[..len]` is the text; always valid UTF-8, copied from a `str`.
    Inline {
        len: u8,
        bytes: [u8; INLINE_MAX],
    },
    Heap(Box<str>),
}

impl SmallString {
    /// The empty string.
    pub const fn new() -> SmallString {
        SmallString(Repr::Inline {
            len: 0,
            bytes: [0; INLINE_MAX],
        })
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, bytes } => {
                let text = &bytes[..usize::from(*len)];
                debug_assert!(std::str::from_utf8(text).is_ok());
                // SAFETY: inline bytes are only ever written by `from_str`, which copies a whole
                // `str` (so `text` is exactly that `str`'s bytes): valid UTF-8.
                unsafe { std::str::from_utf8_unchecked(text) }
            }
            Repr::Heap(text) => text,
        }
    }

    /// The text as a `String` (an allocation when it was inline).
    pub fn into_string(self) -> String {
        match self.0 {
            Repr::Inline { .. } => self.as_str().to_owned(),
            Repr::Heap(text) => text.into_string(),
        }
    }

    /// Whether the text is kept inline, without an allocation of its own.
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }

    fn from_str(text: &str) -> SmallString {
        let len = text.len();
        if len > INLINE_MAX {
            return SmallString(Repr::Heap(text.into()));
        }
        let mut bytes = [0; INLINE_MAX];
        bytes[..len].copy_from_slice(text.as_bytes());
        SmallString(Repr::Inline {
            len: len as u8,
            bytes,
        })
    }
}

impl Default for SmallString {
    fn default() -> SmallString {
        SmallString::new()
    }
}

impl Deref for SmallString {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for SmallString {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for SmallString {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for SmallString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for SmallString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl PartialEq for SmallString {
    fn eq(&self, other: &SmallString) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for SmallString {}

impl PartialOrd for SmallString {
    fn partial_cmp(&self, other: &SmallString) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SmallString {
    fn cmp(&self, other: &SmallString) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

/// Hashes as `str` does, as `Borrow<str>` requires.
impl Hash for SmallString {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

macro_rules! eq_text {
    ($($other:ty),*) => {$(
        impl PartialEq<$other> for SmallString {
            fn eq(&self, other: &$other) -> bool {
                self.as_str() == &other[..]
            }
        }
        impl PartialEq<SmallString> for $other {
            fn eq(&self, other: &SmallString) -> bool {
                &self[..] == other.as_str()
            }
        }
    )*};
}
eq_text!(str, &str, String, Cow<'_, str>);

impl From<&str> for SmallString {
    fn from(text: &str) -> SmallString {
        SmallString::from_str(text)
    }
}

impl From<&mut str> for SmallString {
    fn from(text: &mut str) -> SmallString {
        SmallString::from_str(text)
    }
}

impl From<&String> for SmallString {
    fn from(text: &String) -> SmallString {
        SmallString::from_str(text)
    }
}

/// Short text moves inline (the `String`'s buffer is freed); longer text keeps its buffer, cut to
/// its length.
impl From<String> for SmallString {
    fn from(text: String) -> SmallString {
        if text.len() <= INLINE_MAX {
            SmallString::from_str(&text)
        } else {
            SmallString(Repr::Heap(text.into_boxed_str()))
        }
    }
}

impl From<Box<str>> for SmallString {
    fn from(text: Box<str>) -> SmallString {
        if text.len() <= INLINE_MAX {
            SmallString::from_str(&text)
        } else {
            SmallString(Repr::Heap(text))
        }
    }
}

impl From<Cow<'_, str>> for SmallString {
    fn from(text: Cow<'_, str>) -> SmallString {
        match text {
            Cow::Borrowed(text) => SmallString::from_str(text),
            Cow::Owned(text) => SmallString::from(text),
        }
    }
}

impl From<char> for SmallString {
    fn from(c: char) -> SmallString {
        SmallString::from_str(c.encode_utf8(&mut [0; 4]))
    }
}

impl From<&SmallString> for SmallString {
    fn from(text: &SmallString) -> SmallString {
        text.clone()
    }
}

impl From<SmallString> for String {
    fn from(text: SmallString) -> String {
        text.into_string()
    }
}

impl From<&SmallString> for String {
    fn from(text: &SmallString) -> String {
        text.as_str().to_owned()
    }
}

impl serde::Serialize for SmallString {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for SmallString {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<SmallString, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = SmallString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<SmallString, E> {
                Ok(SmallString::from(text))
            }
            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<SmallString, E> {
                Ok(SmallString::from(text))
            }
        }
        deserializer.deserialize_string(Text)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::hash_map::DefaultHasher;

    use super::*;

    fn hash_of<T: Hash + ?Sized>(t: &T) -> u64 {
        let mut h = DefaultHasher::new();
        t.hash(&mut h);
        h.finish()
    }

    #[test]
    fn a_string_takes_no_more_room_than_a_string() {
        assert_eq!(size_of::<SmallString>(), size_of::<String>());
        assert_eq!(size_of::<Option<SmallString>>(), size_of::<String>());
    }

    #[test]
    fn short_text_is_inline_and_long_text_is_not_whatever_it_came_from() {
        for len in 0..=40 {
            // Multi-byte characters too, so that a boundary falls inside one near the limit.
            for unit in ["a", "é", "€", "😀"] {
                let text: String = unit.repeat(len / unit.len() + 1)[..]
                    .char_indices()
                    .take_while(|(i, c)| i + c.len_utf8() <= len)
                    .map(|(_, c)| c)
                    .collect();
                let inline = text.len() <= INLINE_MAX;
                for s in [
                    SmallString::from(text.as_str()),
                    SmallString::from(text.clone()),
                    SmallString::from(text.clone().into_boxed_str()),
                    SmallString::from(Cow::Borrowed(text.as_str())),
                ] {
                    assert_eq!(s.as_str(), text);
                    assert_eq!(s, text);
                    assert_eq!(s.is_inline(), inline, "{text:?}");
                    assert_eq!(hash_of(&s), hash_of(text.as_str()));
                    assert_eq!(s.clone().into_string(), text);
                    assert_eq!(format!("{s}"), text);
                    assert_eq!(format!("{s:?}"), format!("{text:?}"));
                }
            }
        }
    }

    #[test]
    fn compares_and_orders_as_its_text() {
        let a = SmallString::from("a");
        let long = SmallString::from("b".repeat(30));
        assert!(a < long);
        assert_eq!(a.cmp(&a.clone()), Ordering::Equal);
        assert_eq!("a", a);
        assert_eq!(a, *"a");
        assert_ne!(SmallString::from("ab"), SmallString::from("a"));
        assert_eq!(SmallString::new(), "");
        assert_eq!(SmallString::from('é'), "é");
    }
}
