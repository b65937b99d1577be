//! The `{"_placeholder":true,"num":N}` objects of binary packets: checking them when the header
//! arrives, replacing them by their attachments when the last one has arrived.

use bytes::Bytes;

use crate::socketio::error::DecodeError;
use crate::socketio::packet::PacketKind;
use crate::value::Value;

/// The attachment number of `value` if it is a placeholder, as socket.io-parser sees one: an
/// object whose `_placeholder` is `true`. `Some(None)` is a placeholder with a bad `num`.
fn placeholder_num(value: &Value) -> Option<Option<u64>> {
    let map = value.as_map()?;
    if map.get("_placeholder")?.as_bool() != Some(true) {
        return None;
    }
    Some(map.get("num").and_then(Value::as_u64))
}

fn args_of(kind: &PacketKind) -> &[Value] {
    match kind {
        PacketKind::Event { args, .. } | PacketKind::Ack { args, .. } => args,
        _ => &[],
    }
}

/// Checks, before any attachment is buffered, that the placeholders of `kind` number the
/// `count` attachments exactly once each.
///
/// The placeholders are collected first, so nothing is allocated in proportion to the count the
/// peer announced until it is known to match what the text really holds.
pub(super) fn check(kind: &PacketKind, count: usize) -> Result<(), DecodeError> {
    let mut nums = Vec::new();
    for value in args_of(kind) {
        collect(value, &mut nums)?;
    }
    if nums.len() != count {
        return Err(DecodeError::InvalidPlaceholder);
    }
    let mut seen = vec![false; count];
    for num in nums {
        let slot = usize::try_from(num)
            .ok()
            .and_then(|n| seen.get_mut(n))
            .ok_or(DecodeError::InvalidPlaceholder)?;
        if std::mem::replace(slot, true) {
            return Err(DecodeError::InvalidPlaceholder);
        }
    }
    Ok(())
}

fn collect(value: &Value, nums: &mut Vec<u64>) -> Result<(), DecodeError> {
    if let Some(num) = placeholder_num(value) {
        nums.push(num.ok_or(DecodeError::InvalidPlaceholder)?);
        return Ok(());
    }
    match value {
        Value::Array(items) => items.iter().try_for_each(|v| collect(v, nums)),
        Value::Map(map) => map.values().try_for_each(|v| collect(v, nums)),
        _ => Ok(()),
    }
}

/// Replaces every placeholder of `kind` by its attachment.
pub(super) fn fill(kind: &mut PacketKind, attachments: &[Bytes]) -> Result<(), DecodeError> {
    match kind {
        PacketKind::Event { args, .. } | PacketKind::Ack { args, .. } => {
            args.iter_mut().try_for_each(|v| fill_value(v, attachments))
        }
        _ => Ok(()),
    }
}

fn fill_value(value: &mut Value, attachments: &[Bytes]) -> Result<(), DecodeError> {
    if let Some(num) = placeholder_num(value) {
        let data = num
            .and_then(|n| usize::try_from(n).ok())
            .and_then(|n| attachments.get(n))
            .ok_or(DecodeError::InvalidPlaceholder)?;
        *value = Value::Bytes(data.clone());
        return Ok(());
    }
    match value {
        Value::Array(items) => items
            .iter_mut()
            .try_for_each(|v| fill_value(v, attachments)),
        Value::Map(map) => map
            .values_mut()
            .try_for_each(|v| fill_value(v, attachments)),
        _ => Ok(()),
    }
}
