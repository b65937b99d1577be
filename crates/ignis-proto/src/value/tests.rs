//! Tests of `Value`, `Map` and the serde bridges.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Map, Value, ValueError, from_value, to_value};

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Shape {
    Unit,
    Newtype(i32),
    Tuple(i32, String),
    Struct { w: u8, h: u8 },
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Everything {
    s: String,
    i: i32,
    big: u64,
    f: f64,
    none: Option<String>,
    some: Option<i8>,
    list: Vec<u16>,
    tuple: (bool, char),
    shapes: Vec<Shape>,
    by_id: BTreeMap<u32, String>,
    #[serde(with = "serde_bytes")]
    raw: Vec<u8>,
    shared: Bytes,
    unit: (),
}

fn everything() -> Everything {
    Everything {
        s: "text".into(),
        i: -5,
        big: u64::MAX,
        f: 0.25,
        none: None,
        some: Some(-1),
        list: vec![1, 2],
        tuple: (true, 'x'),
        shapes: vec![
            Shape::Unit,
            Shape::Newtype(3),
            Shape::Tuple(1, "t".into()),
            Shape::Struct { w: 2, h: 4 },
        ],
        by_id: [(7, "seven".to_owned())].into_iter().collect(),
        raw: vec![0, 1, 255],
        shared: Bytes::from_static(b"shared"),
        unit: (),
    }
}

#[test]
fn to_value_and_back() {
    let value = to_value(&everything()).unwrap();
    let want = json(
        r#"{"s":"text","i":-5,"big":18446744073709551615,"f":0.25,"none":null,"some":-1,
            "list":[1,2],"tuple":[true,"x"],
            "shapes":["Unit",{"Newtype":3},{"Tuple":[1,"t"]},{"Struct":{"w":2,"h":4}}],
            "by_id":{"7":"seven"},"raw":null,"shared":null,"unit":null}"#,
    );
    let mut want = want;
    let map = want.as_map_mut().unwrap();
    map.insert("raw", Value::bytes(vec![0u8, 1, 255]));
    map.insert("shared", Value::bytes(&b"shared"[..]));
    assert_eq!(value, want);
    assert_eq!(value.get("big"), Some(&Value::UInt(u64::MAX)));
    assert!(value.has_binary());
    assert_eq!(from_value::<Everything>(value).unwrap(), everything());
}

#[test]
fn binary_deserializes_into_every_byte_type() {
    let value = Value::bytes(&b"\x01\x02"[..]);
    assert_eq!(from_value::<Vec<u8>>(value.clone()).unwrap(), vec![1, 2]);
    assert_eq!(
        from_value::<Bytes>(value.clone()).unwrap(),
        Bytes::from_static(b"\x01\x02")
    );
    assert_eq!(
        from_value::<serde_bytes::ByteBuf>(value.clone())
            .unwrap()
            .into_vec(),
        vec![1, 2]
    );
    assert_eq!(from_value::<Value>(value.clone()).unwrap(), value);
    // a JSON client sends an array of numbers where a Rust one sends binary: both work
    assert_eq!(
        from_value::<Bytes>(json("[1,2]")).unwrap(),
        Bytes::from_static(b"\x01\x02")
    );
    assert!(from_value::<String>(Value::bytes(&b"\xff"[..])).is_err());
    assert!(from_value::<u8>(value).is_err());
}

#[test]
fn from_value_errors() {
    let cases: Vec<(Result<(), ValueError>, &str)> = vec![
        (
            from_value::<u8>(Value::Int(300)).map(drop),
            "invalid value: integer `300`",
        ),
        (
            from_value::<String>(Value::Int(1)).map(drop),
            "invalid type: integer `1`",
        ),
        (
            from_value::<Everything>(json("{}")).map(drop),
            "missing field `s`",
        ),
        (
            from_value::<Shape>(json(r#"{"a":1,"b":2}"#)).map(drop),
            "invalid value: map",
        ),
        (
            from_value::<Shape>(json(r#""Nope""#)).map(drop),
            "unknown variant `Nope`",
        ),
        (
            from_value::<(i32, i32)>(json("[1,2,3]")).map(drop),
            "invalid length 3",
        ),
        (
            from_value::<()>(Value::Bool(true)).map(drop),
            "invalid type: boolean",
        ),
    ];
    for (result, want) in cases {
        let err = result.unwrap_err().to_string();
        assert!(err.starts_with(want), "{err} does not start with {want}");
    }
    assert_eq!(
        to_value(&BTreeMap::from([(vec![1], 1)])),
        Err(ValueError::KeyMustBeString)
    );
    assert_eq!(to_value(&u128::MAX), Err(ValueError::IntegerOutOfRange));
    assert_eq!(to_value(&(u64::MAX as i128)), Ok(Value::UInt(u64::MAX)));
    assert_eq!(from_value::<f64>(Value::Int(2)).unwrap(), 2.0);
    assert_eq!(from_value::<Option<u8>>(Value::Null).unwrap(), None);
    assert_eq!(from_value::<Option<u8>>(Value::Int(1)).unwrap(), Some(1));
}

#[test]
fn json_numbers_keep_their_kind() {
    let cases = [
        ("0", Value::Int(0)),
        ("-1", Value::Int(-1)),
        ("9223372036854775807", Value::Int(i64::MAX)),
        ("9223372036854775808", Value::UInt(1 << 63)),
        (
            "18446744073709551616",
            Value::Float(18_446_744_073_709_551_616.0),
        ),
        ("1.0", Value::Float(1.0)),
        ("-0.0", Value::Float(-0.0)),
        ("2e3", Value::Float(2000.0)),
    ];
    for (text, want) in cases {
        let got = json(text);
        assert_eq!(got, want, "{text}");
        assert_eq!(
            std::mem::discriminant(&got),
            std::mem::discriminant(&want),
            "{text}"
        );
        assert_eq!(
            serde_json::to_string(&got).unwrap(),
            text.replace("2e3", "2000.0")
                .replace("18446744073709551616", "1.8446744073709552e+19")
        );
    }
}

#[test]
fn json_objects_keep_order_and_last_duplicate() {
    let value = json(r#"{"b":1,"a":2,"b":3}"#);
    let keys: Vec<&str> = value.as_map().unwrap().keys().collect();
    assert_eq!(keys, ["b", "a"]);
    assert_eq!(value.get("b"), Some(&Value::Int(3)));
    assert_eq!(serde_json::to_string(&value).unwrap(), r#"{"b":3,"a":2}"#);
    // binary has no JSON form but serializes the way serde formats do: bytes
    assert_eq!(
        serde_json::to_string(&Value::bytes(&b"\x01"[..])).unwrap(),
        "[1]"
    );
}

#[test]
fn map_deduplicates_in_linear_time_shapes() {
    for size in [3usize, 16, 17, 500] {
        let mut entries: Vec<(String, Value)> = (0..size)
            .map(|i| (format!("k{i}"), Value::from(i)))
            .collect();
        entries.push(("k0".into(), Value::from("second")));
        entries.push(("k1".into(), Value::from("second")));
        entries.push(("k0".into(), Value::from("third")));
        let map = Map::from_entries(entries);
        assert_eq!(map.len(), size, "size {size}");
        assert_eq!(map.get("k0"), Some(&Value::from("third")));
        assert_eq!(map.get("k1"), Some(&Value::from("second")));
        assert_eq!(map.keys().next(), Some("k0"));
        assert_eq!(map.keys().last(), Some(format!("k{}", size - 1).as_str()));
    }
}

/// Keys are kept inline up to 24 bytes and on the heap beyond: short, long and non-ASCII keys
/// (one whose last character crosses the inline limit among them) must behave alike, whether
/// they come from `&str`, `String`, the JSON parser or serde.
#[test]
fn map_keys_of_every_length_and_kind_behave_alike() {
    let long = "k".repeat(40);
    let at_limit = "x".repeat(24);
    let past_limit = "x".repeat(25);
    // 23 ASCII bytes and a 2-byte character: 25 bytes, past the inline limit.
    let split = "y".repeat(23) + "é";
    let keys = [
        "",
        "a",
        "é",
        "😀 key",
        &long,
        &at_limit,
        &past_limit,
        &split,
        "timestamp",
    ];
    let mut map = Map::new();
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(map.insert(*key, i), None);
    }
    for (i, key) in keys.iter().enumerate() {
        // Replacing keeps the position; a `String` key finds the `&str` one.
        assert_eq!(map.insert(key.to_string(), i + 100), Some(Value::from(i)));
        assert_eq!(map.get(key), Some(&Value::from(i + 100)));
    }
    assert_eq!(map.keys().collect::<Vec<_>>(), keys);
    let text = serde_json::to_string(&Value::Map(map.clone())).unwrap();
    // In insertion order (serde_json's own map would sort them).
    let expected: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{}:{}", serde_json::to_string(k).unwrap(), i + 100))
        .collect();
    assert_eq!(text, format!("{{{}}}", expected.join(",")));
    // Back through serde, and into a struct and a `HashMap` by their keys.
    let again: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(again, Value::Map(map.clone()));
    let as_hash: std::collections::HashMap<String, u32> = from_value(again).unwrap();
    assert_eq!(as_hash[&long], 104);
    assert_eq!(as_hash[&split], 107);
    let entries: Vec<(String, Value)> = map.clone().into_iter().collect();
    assert_eq!(entries[4].0, long);
    // Duplicates among long and short keys: first position, last value.
    let dup = Map::from_entries(vec![
        (long.clone(), Value::from(1)),
        ("a".to_string(), Value::from(2)),
        (long.clone(), Value::from(3)),
        ("a".to_string(), Value::from(4)),
    ]);
    assert_eq!(dup.keys().collect::<Vec<_>>(), [long.as_str(), "a"]);
    assert_eq!(
        dup.values().cloned().collect::<Vec<_>>(),
        [Value::from(3), Value::from(4)]
    );
}

#[test]
fn map_operations() {
    let mut map: Map = [("a", 1), ("b", 2), ("c", 3)].into_iter().collect();
    assert_eq!(map.insert("b", 20), Some(Value::Int(2)));
    assert_eq!(map.insert("d", 4), None);
    assert_eq!(map.keys().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
    assert_eq!(map.remove("a"), Some(Value::Int(1)));
    assert_eq!(map.remove("a"), None);
    map.retain(|k, _| k != "c");
    assert_eq!(map.keys().collect::<Vec<_>>(), ["b", "d"]);
    *map.get_mut("d").unwrap() = Value::Null;
    for (_, v) in map.iter_mut() {
        if v.is_null() {
            *v = Value::Bool(true);
        }
    }
    map.extend([("b", 0)]);
    assert_eq!(
        map.values().cloned().collect::<Vec<_>>(),
        [Value::Int(0), Value::Bool(true)]
    );
    assert!(map.contains_key("b"));
    assert!(!map.is_empty());
    assert_eq!(map.into_iter().count(), 2);
}

#[test]
fn accessors() {
    let value = json(r#"{"s":"x","n":-1,"u":18446744073709551615,"f":1.5,"b":false,"a":[null]}"#);
    assert_eq!(value.get("s").and_then(Value::as_str), Some("x"));
    assert_eq!(value.get("n").and_then(Value::as_i64), Some(-1));
    assert_eq!(value.get("n").and_then(Value::as_u64), None);
    assert_eq!(value.get("u").and_then(Value::as_i64), None);
    assert_eq!(value.get("u").and_then(Value::as_u64), Some(u64::MAX));
    assert_eq!(value.get("f").and_then(Value::as_f64), Some(1.5));
    assert_eq!(value.get("n").and_then(Value::as_f64), Some(-1.0));
    assert_eq!(value.get("b").and_then(Value::as_bool), Some(false));
    assert_eq!(
        value.get("a").and_then(Value::as_array).map(Vec::len),
        Some(1)
    );
    assert!(value.get("a").unwrap().as_array().unwrap()[0].is_null());
    assert!(value.get("f").unwrap().is_number());
    assert_eq!(value.get("missing"), None);
    assert_eq!(Value::Int(1).get("x"), None);
    assert!(!value.has_binary());
    assert_eq!(value.get("s").unwrap(), "x");
    assert_eq!(value.get("n").unwrap(), &-1);
    assert_eq!(value.get("b").unwrap(), &false);
    assert_eq!(Value::from(Some("x")), Value::from("x"));
    assert_eq!(Value::from(None::<i32>), Value::Null);
    assert_eq!(Value::from(u64::MAX), Value::UInt(u64::MAX));
    assert_eq!(Value::from(vec![1, 2]), json("[1,2]"));
    assert_eq!((1..3).collect::<Value>(), json("[1,2]"));
    assert_eq!(Value::Float(f64::NAN), Value::Float(f64::NAN));
    assert_ne!(Value::Int(1), Value::Float(1.0));
    let mut taken = Value::from("x");
    assert_eq!(taken.take(), Value::from("x"));
    assert!(taken.is_null());
    assert_eq!(Value::Map(Map::new()).kind(), "object");
}

#[test]
fn serde_json_value_conversions() {
    let original = serde_json::json!({"a": [1, -2, 1.5, u64::MAX, null, true, "s"], "b": {}});
    let value = Value::from(original.clone());
    assert_eq!(
        value.get("a").unwrap().as_array().unwrap()[3],
        Value::UInt(u64::MAX)
    );
    assert_eq!(serde_json::Value::try_from(value).unwrap(), original);
    assert_eq!(
        serde_json::Value::try_from(Value::Array(vec![Value::bytes(&b"x"[..])])),
        Err(ValueError::BinaryNotJson)
    );
    assert_eq!(
        serde_json::Value::try_from(Value::Float(f64::INFINITY)),
        Err(ValueError::NonFiniteFloat)
    );
}
