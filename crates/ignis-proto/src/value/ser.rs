//! Serializing a [`Value`], and [`to_value`]: serializing any `Serialize` type into a [`Value`].

use bytes::Bytes;
use serde::ser::{self, Serialize, SerializeMap as _, SerializeSeq as _};

use super::{Map, Value, ValueError};

impl Serialize for Value {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(n) => serializer.serialize_i64(*n),
            Value::UInt(n) => serializer.serialize_u64(*n),
            Value::Float(n) => serializer.serialize_f64(*n),
            Value::Str(s) => serializer.serialize_str(s),
            Value::Bytes(b) => serializer.serialize_bytes(b),
            Value::Array(a) => {
                let mut seq = serializer.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Map(m) => {
                let mut map = serializer.serialize_map(Some(m.len()))?;
                for (k, v) in m.iter() {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// Serializes `value` into a [`Value`]; `serialize_bytes` (used by `bytes::Bytes` and
/// `serde_bytes`) gives [`Value::Bytes`].
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, ValueError> {
    value.serialize(ValueSerializer)
}

/// The serializer behind [`to_value`].
struct ValueSerializer;

fn singleton(key: &str, value: Value) -> Value {
    let mut map = Map::with_capacity(1);
    map.insert(key, value);
    Value::Map(map)
}

impl ser::Serializer for ValueSerializer {
    type Ok = Value;
    type Error = ValueError;
    type SerializeSeq = SeqBuilder;
    type SerializeTuple = SeqBuilder;
    type SerializeTupleStruct = SeqBuilder;
    type SerializeTupleVariant = VariantSeqBuilder;
    type SerializeMap = MapBuilder;
    type SerializeStruct = MapBuilder;
    type SerializeStructVariant = VariantMapBuilder;

    fn serialize_bool(self, v: bool) -> Result<Value, ValueError> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, ValueError> {
        Ok(Value::Int(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Value, ValueError> {
        if let Ok(n) = i64::try_from(v) {
            Ok(Value::Int(n))
        } else {
            u64::try_from(v)
                .map(Value::UInt)
                .map_err(|_| ValueError::IntegerOutOfRange)
        }
    }
    fn serialize_u8(self, v: u8) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, ValueError> {
        Ok(Value::from_u64(v))
    }
    fn serialize_u128(self, v: u128) -> Result<Value, ValueError> {
        u64::try_from(v)
            .map(Value::from_u64)
            .map_err(|_| ValueError::IntegerOutOfRange)
    }
    fn serialize_f32(self, v: f32) -> Result<Value, ValueError> {
        Ok(Value::Float(v.into()))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, ValueError> {
        Ok(Value::Float(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, ValueError> {
        Ok(Value::Str(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, ValueError> {
        Ok(Value::Str(v.to_owned()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, ValueError> {
        Ok(Value::Bytes(Bytes::copy_from_slice(v)))
    }
    fn serialize_none(self) -> Result<Value, ValueError> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, ValueError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, ValueError> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, ValueError> {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, ValueError> {
        Ok(Value::Str(variant.to_owned()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Value, ValueError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, ValueError> {
        Ok(singleton(variant, to_value(value)?))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqBuilder, ValueError> {
        Ok(SeqBuilder(Vec::with_capacity(len.unwrap_or(0))))
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqBuilder, ValueError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SeqBuilder, ValueError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantSeqBuilder, ValueError> {
        Ok(VariantSeqBuilder {
            variant,
            seq: SeqBuilder(Vec::with_capacity(len)),
        })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<MapBuilder, ValueError> {
        Ok(MapBuilder {
            map: Map::with_capacity(len.unwrap_or(0)),
            key: None,
        })
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<MapBuilder, ValueError> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantMapBuilder, ValueError> {
        Ok(VariantMapBuilder {
            variant,
            map: Map::with_capacity(len),
        })
    }
}

/// Builds an array.
struct SeqBuilder(Vec<Value>);

impl ser::SerializeSeq for SeqBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.0.push(to_value(value)?);
        Ok(())
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(Value::Array(self.0))
    }
}

impl ser::SerializeTuple for SeqBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Value, ValueError> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for SeqBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Value, ValueError> {
        ser::SerializeSeq::end(self)
    }
}

/// Builds `{variant: [..]}`.
struct VariantSeqBuilder {
    variant: &'static str,
    seq: SeqBuilder,
}

impl ser::SerializeTupleVariant for VariantSeqBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        ser::SerializeSeq::serialize_element(&mut self.seq, value)
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(singleton(self.variant, Value::Array(self.seq.0)))
    }
}

/// Builds an object.
struct MapBuilder {
    map: Map,
    key: Option<String>,
}

impl ser::SerializeMap for MapBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), ValueError> {
        self.key = Some(key.serialize(KeySerializer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        let key = self
            .key
            .take()
            .ok_or_else(|| ValueError::Message("map value serialized before its key".into()))?;
        self.map.insert(key, to_value(value)?);
        Ok(())
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(Value::Map(self.map))
    }
}

impl ser::SerializeStruct for MapBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), ValueError> {
        self.map.insert(key, to_value(value)?);
        Ok(())
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(Value::Map(self.map))
    }
}

/// Builds `{variant: {..}}`.
struct VariantMapBuilder {
    variant: &'static str,
    map: Map,
}

impl ser::SerializeStructVariant for VariantMapBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), ValueError> {
        self.map.insert(key, to_value(value)?);
        Ok(())
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(singleton(self.variant, Value::Map(self.map)))
    }
}

/// Turns a map key into a string, accepting what JSON object keys can stand for.
struct KeySerializer;

impl ser::Serializer for KeySerializer {
    type Ok = String;
    type Error = ValueError;
    type SerializeSeq = ser::Impossible<String, ValueError>;
    type SerializeTuple = ser::Impossible<String, ValueError>;
    type SerializeTupleStruct = ser::Impossible<String, ValueError>;
    type SerializeTupleVariant = ser::Impossible<String, ValueError>;
    type SerializeMap = ser::Impossible<String, ValueError>;
    type SerializeStruct = ser::Impossible<String, ValueError>;
    type SerializeStructVariant = ser::Impossible<String, ValueError>;

    fn serialize_bool(self, v: bool) -> Result<String, ValueError> {
        Ok(v.to_string())
    }
    fn serialize_i8(self, v: i8) -> Result<String, ValueError> {
        Ok(v.to_string())
    }
    fn serialize_i16(self, v: i16) -> Result<String, ValueError> {
        Ok(v.to_string())
    }
    fn serialize_i32(self, v: i32) -> Result<String, ValueError> {
        Ok(v.to_string())
    }
    fn serialize_i64(self, v: i64) -> Result<String, ValueError> {
        Ok(v.to_string())
    }
    fn serialize_u8(self, v: u8) -> Result<String, ValueError> {
        Ok(v.to_string())
    }
    fn serialize_u16(self, v: u16) -> Result<String, ValueError> {
        Ok(v.to_string())
    }
    fn serialize_u32(self, v: u32) -> Result<String, ValueError> {
        Ok(v.to_string())
    }
    fn serialize_u64(self, v: u64) -> Result<String, ValueError> {
        Ok(v.to_string())
    }
    fn serialize_f32(self, _v: f32) -> Result<String, ValueError> {
        Err(ValueError::KeyMustBeString)
    }
    fn serialize_f64(self, _v: f64) -> Result<String, ValueError> {
        Err(ValueError::KeyMustBeString)
    }
    fn serialize_char(self, v: char) -> Result<String, ValueError> {
        Ok(v.to_string())
    }
    fn serialize_str(self, v: &str) -> Result<String, ValueError> {
        Ok(v.to_owned())
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<String, ValueError> {
        Err(ValueError::KeyMustBeString)
    }
    fn serialize_none(self) -> Result<String, ValueError> {
        Err(ValueError::KeyMustBeString)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<String, ValueError> {
        Err(ValueError::KeyMustBeString)
    }
    fn serialize_unit(self) -> Result<String, ValueError> {
        Err(ValueError::KeyMustBeString)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<String, ValueError> {
        Err(ValueError::KeyMustBeString)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<String, ValueError> {
        Ok(variant.to_owned())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<String, ValueError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<String, ValueError> {
        Err(ValueError::KeyMustBeString)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, ValueError> {
        Err(ValueError::KeyMustBeString)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, ValueError> {
        Err(ValueError::KeyMustBeString)
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, ValueError> {
        Err(ValueError::KeyMustBeString)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, ValueError> {
        Err(ValueError::KeyMustBeString)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, ValueError> {
        Err(ValueError::KeyMustBeString)
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, ValueError> {
        Err(ValueError::KeyMustBeString)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, ValueError> {
        Err(ValueError::KeyMustBeString)
    }
}
