//! Builders the unit tests of both protocols share.

use std::sync::Arc;

use ignis_socketio::proto::value::Map;
use ignis_socketio::{Room, Value};

pub(crate) fn rooms(names: &[&str]) -> Vec<Room> {
    names.iter().map(|r| Arc::from(*r)).collect()
}

/// A map value with these entries, in this order.
pub(crate) fn obj(entries: Vec<(&str, Value)>) -> Value {
    let mut m = Map::new();
    for (k, v) in entries {
        m.insert(k, v);
    }
    Value::Map(m)
}
