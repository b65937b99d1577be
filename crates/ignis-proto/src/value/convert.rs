//! Conversions between [`Value`] and Rust primitives or `serde_json::Value`.

use std::borrow::Cow;

use bytes::Bytes;

use super::{Map, Value, ValueError};

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

macro_rules! from_signed {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(n: $t) -> Value {
                Value::Int(n as i64)
            }
        }
    )*};
}
from_signed!(i8, i16, i32, i64, isize);

macro_rules! from_unsigned {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(n: $t) -> Value {
                Value::from_u64(n as u64)
            }
        }
    )*};
}
from_unsigned!(u8, u16, u32, u64, usize);

impl Value {
    /// The canonical form of an unsigned integer: [`Value::Int`] when it fits.
    pub fn from_u64(n: u64) -> Value {
        match i64::try_from(n) {
            Ok(n) => Value::Int(n),
            Err(_) => Value::UInt(n),
        }
    }
}

impl From<f32> for Value {
    fn from(n: f32) -> Value {
        Value::Float(f64::from(n))
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Value {
        Value::Float(n)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_owned())
    }
}

impl From<Cow<'_, str>> for Value {
    fn from(s: Cow<'_, str>) -> Value {
        Value::Str(s.into_owned())
    }
}

impl From<Bytes> for Value {
    fn from(b: Bytes) -> Value {
        Value::Bytes(b)
    }
}

impl From<&[u8]> for Value {
    fn from(b: &[u8]) -> Value {
        Value::Bytes(Bytes::copy_from_slice(b))
    }
}

impl From<Map> for Value {
    fn from(m: Map) -> Value {
        Value::Map(m)
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Value {
        Value::Array(v.into_iter().map(Into::into).collect())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

impl<T: Into<Value>> FromIterator<T> for Value {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Value {
        Value::Array(iter.into_iter().map(Into::into).collect())
    }
}

impl PartialEq<str> for Value {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == Some(other)
    }
}

impl PartialEq<&str> for Value {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

impl PartialEq<i64> for Value {
    fn eq(&self, other: &i64) -> bool {
        self.as_i64() == Some(*other)
    }
}

impl PartialEq<bool> for Value {
    fn eq(&self, other: &bool) -> bool {
        self.as_bool() == Some(*other)
    }
}

impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Int(i)
                } else if let Some(u) = n.as_u64() {
                    Value::UInt(u)
                } else {
                    Value::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            serde_json::Value::String(s) => Value::Str(s),
            serde_json::Value::Array(a) => Value::Array(a.into_iter().map(Value::from).collect()),
            serde_json::Value::Object(o) => Value::Map(Map::from_entries(
                o.into_iter().map(|(k, v)| (k, Value::from(v))).collect(),
            )),
        }
    }
}

/// Fails on binary data and on non-finite floats, which JSON cannot represent.
impl TryFrom<Value> for serde_json::Value {
    type Error = ValueError;

    fn try_from(v: Value) -> Result<serde_json::Value, ValueError> {
        Ok(match v {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(b),
            Value::Int(n) => serde_json::Value::from(n),
            Value::UInt(n) => serde_json::Value::from(n),
            Value::Float(n) => serde_json::Number::from_f64(n)
                .map(serde_json::Value::Number)
                .ok_or(ValueError::NonFiniteFloat)?,
            Value::Str(s) => serde_json::Value::String(s),
            Value::Bytes(_) => return Err(ValueError::BinaryNotJson),
            Value::Array(a) => serde_json::Value::Array(
                a.into_iter()
                    .map(serde_json::Value::try_from)
                    .collect::<Result<_, _>>()?,
            ),
            Value::Map(m) => serde_json::Value::Object(
                m.into_iter()
                    .map(|(k, v)| Ok((k, serde_json::Value::try_from(v)?)))
                    .collect::<Result<_, ValueError>>()?,
            ),
        })
    }
}
