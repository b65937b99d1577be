//! [`Value`]: a dynamic value that holds anything a Socket.IO payload can carry, JSON plus binary.
//!
//! Event arguments reach handlers as `Value`s; [`from_value`] turns them into the user's own types
//! and [`to_value`] goes the other way. Unlike `serde_json::Value`, binary is a first-class
//! variant: anything serialized with `serialize_bytes` (`bytes::Bytes`, `serde_bytes`) becomes
//! [`Value::Bytes`], which the codecs send as attachments (JSON parser) or `bin` (msgpack parser).
//!
//! ```
//! use ignis_proto::value::{from_value, to_value, Value};
//!
//! #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
//! struct Upload {
//!     name: String,
//!     #[serde(with = "serde_bytes")]
//!     data: Vec<u8>,
//! }
//!
//! let upload = Upload { name: "a.png".into(), data: vec![1, 2, 3] };
//! let value = to_value(&upload).unwrap();
//! assert_eq!(value.get("name").and_then(Value::as_str), Some("a.png"));
//! assert!(value.has_binary());
//! assert_eq!(from_value::<Upload>(value).unwrap(), upload);
//! ```

mod convert;
mod de;
mod error;
mod map;
mod ser;
#[cfg(test)]
mod tests;

use bytes::Bytes;

pub use compact_str::CompactString;
pub use de::from_value;
pub use error::ValueError;
pub use map::Map;
pub use ser::to_value;

/// A JSON value that may also hold binary data.
///
/// Integers are kept exact: [`Value::Int`] for everything that fits an `i64`, [`Value::UInt`] only
/// for values above `i64::MAX`. Numbers with a fraction or an exponent, and integers too large
/// for 64 bits, are [`Value::Float`].
///
/// Equality is structural; unlike `f64`, a NaN equals a NaN, so a decoded packet always equals
/// itself decoded again.
#[derive(Clone, Debug, Default)]
pub enum Value {
    /// JSON `null` (also what `undefined` becomes, as in `JSON.stringify`).
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer that fits an `i64`.
    Int(i64),
    /// An integer above `i64::MAX`.
    UInt(u64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
    /// Binary data (a Node `Buffer` or `ArrayBuffer`).
    Bytes(Bytes),
    /// An array.
    Array(Vec<Value>),
    /// An object, in insertion order.
    Map(Map),
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::UInt(a), Value::UInt(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b || (a.is_nan() && b.is_nan()),
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::Array(a), Value::Array(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a == b,
            _ => false,
        }
    }
}

impl Value {
    /// Wraps binary data.
    pub fn bytes(data: impl Into<Bytes>) -> Value {
        Value::Bytes(data.into())
    }

    /// Whether this is [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Whether this is a number of any kind.
    pub fn is_number(&self) -> bool {
        matches!(self, Value::Int(_) | Value::UInt(_) | Value::Float(_))
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The integer, if this is an integer that fits an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::UInt(n) => i64::try_from(*n).ok(),
            _ => None,
        }
    }

    /// The integer, if this is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Int(n) => u64::try_from(*n).ok(),
            Value::UInt(n) => Some(*n),
            _ => None,
        }
    }

    /// Any number as an `f64` (large integers lose precision, as in JavaScript).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(n) => Some(*n as f64),
            Value::UInt(n) => Some(*n as f64),
            Value::Float(n) => Some(*n),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The binary data, if this is binary.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&Vec<Value>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The elements, mutably, if this is an array.
    pub fn as_array_mut(&mut self) -> Option<&mut Vec<Value>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The object, if this is one.
    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The object, mutably, if this is one.
    pub fn as_map_mut(&mut self) -> Option<&mut Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The value under `key`, if this is an object that has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_map().and_then(|m| m.get(key))
    }

    /// The value under `key`, mutably, if this is an object that has it.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.as_map_mut().and_then(|m| m.get_mut(key))
    }

    /// Takes the value out, leaving [`Value::Null`].
    pub fn take(&mut self) -> Value {
        std::mem::take(self)
    }

    /// Whether binary data occurs anywhere inside.
    pub fn has_binary(&self) -> bool {
        match self {
            Value::Bytes(_) => true,
            Value::Array(a) => a.iter().any(Value::has_binary),
            Value::Map(m) => m.values().any(Value::has_binary),
            _ => false,
        }
    }

    /// The name of this value's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) | Value::UInt(_) => "integer",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Bytes(_) => "binary",
            Value::Array(_) => "array",
            Value::Map(_) => "object",
        }
    }
}
