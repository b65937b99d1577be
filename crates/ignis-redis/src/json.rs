//! JSON as `JSON.stringify` writes it, for the requests and responses Node sends as JSON.

use ignis_socketio::Value;

/// Writes `value` as `JSON.stringify` would: binary as a Node `Buffer` serialises
/// (`{"type":"Buffer","data":[..]}`), non-finite numbers as `null`, integral floats without a
/// fraction.
pub(crate) fn write(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(n) => out.push_str(&n.to_string()),
        Value::UInt(n) => out.push_str(&n.to_string()),
        Value::Float(f) => write_float(out, *f),
        Value::Str(s) => write_str(out, s),
        Value::Bytes(b) => {
            out.push_str(r#"{"type":"Buffer","data":["#);
            for (i, byte) in b.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&byte.to_string());
            }
            out.push_str("]}");
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(out, item);
            }
            out.push(']');
        }
        Value::Map(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, k);
                out.push(':');
                write(out, v);
            }
            out.push('}');
        }
    }
}

fn write_float(out: &mut String, f: f64) {
    if !f.is_finite() {
        out.push_str("null");
    } else if f.fract() == 0.0 && f.abs() < 1e21 {
        // JavaScript prints integral numbers below 1e21 without a fraction or exponent.
        out.push_str(&format!("{f:.0}"));
    } else {
        // serde_json prints the shortest representation that reads back to the same float,
        // with a signed exponent as JavaScript does.
        out.push_str(
            &serde_json::Number::from_f64(f).map_or_else(|| "null".into(), |n| n.to_string()),
        );
    }
}

/// Writes `s` as a JSON string, quoted and escaped.
pub(crate) fn write_str(out: &mut String, s: &str) {
    // Serialising a &str cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// Reads a JSON document, keeping the order of object keys.
pub(crate) fn parse(text: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice(text)
}
