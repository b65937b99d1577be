//! [`Map`]: a JSON object that keeps its keys in insertion order.

use std::collections::HashMap;

use super::{CompactString, Value};

/// Above this many entries, duplicate keys are found with a hash table instead of a scan.
const LINEAR_DEDUP_MAX: usize = 16;

/// A JSON object that keeps insertion order.
///
/// Stored as a plain vector of entries: payload objects are small, and a vector costs the least
/// memory and is the fastest to build and walk. Lookups are linear scans. Keys are unique:
/// inserting an existing key replaces its value in place, as assigning a property does in
/// JavaScript. Keys are [`CompactString`]s: the short keys of most objects cost no allocation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Map {
    entries: Vec<(CompactString, Value)>,
}

impl Map {
    /// An empty object.
    pub fn new() -> Map {
        Map::default()
    }

    /// An empty object with room for `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Map {
        Map {
            entries: Vec::with_capacity(capacity),
        }
    }

    /// Builds an object from entries that may repeat keys: a repeated key keeps the position of
    /// its first occurrence and the value of its last, as `JSON.parse` does.
    ///
    /// Runs in linear time whatever the input, so a peer cannot make decoding quadratic.
    pub fn from_entries<K: Into<CompactString>>(entries: Vec<(K, Value)>) -> Map {
        // Collected in place: a `String` key and a `CompactString` are the same size.
        Map::from_keyed_entries(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// [`Map::from_entries`] for keys that are already [`CompactString`]s.
    pub(crate) fn from_keyed_entries(mut entries: Vec<(CompactString, Value)>) -> Map {
        let len = entries.len();
        if len <= LINEAR_DEDUP_MAX {
            let mut i = 1;
            while i < entries.len() {
                let (head, tail) = entries.split_at_mut(i);
                let later = &mut tail[0];
                if let Some(first) = head.iter_mut().find(|(k, _)| *k == later.0) {
                    first.1 = later.1.take();
                    entries.remove(i);
                } else {
                    i += 1;
                }
            }
            return Map { entries };
        }
        // (index of a repeated occurrence, index of the first occurrence of its key)
        let repeats: Vec<(usize, usize)> = {
            let mut first_index: HashMap<&str, usize> = HashMap::with_capacity(len);
            entries
                .iter()
                .enumerate()
                .filter_map(|(i, (k, _))| match first_index.get(k.as_str()) {
                    Some(&first) => Some((i, first)),
                    None => {
                        first_index.insert(k.as_str(), i);
                        None
                    }
                })
                .collect()
        };
        if repeats.is_empty() {
            return Map { entries };
        }
        let mut keep = vec![true; len];
        for &(later, first) in &repeats {
            let value = std::mem::take(&mut entries[later].1);
            entries[first].1 = value;
            keep[later] = false;
        }
        let mut index = 0;
        entries.retain(|_| {
            let kept = keep[index];
            index += 1;
            kept
        });
        Map { entries }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value under `key`, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`; an existing key keeps its position and its old value is returned.
    pub fn insert(
        &mut self,
        key: impl Into<CompactString>,
        value: impl Into<Value>,
    ) -> Option<Value> {
        let key = key.into();
        let value = value.into();
        match self.get_mut(&key) {
            Some(slot) => Some(std::mem::replace(slot, value)),
            None => {
                self.entries.push((key, value));
                None
            }
        }
    }

    /// Removes `key`, keeping the order of the other entries.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let index = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(index).1)
    }

    /// Keeps only the entries for which `keep` returns true, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut Value) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
    }

    /// The entries in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The entries in order, values mutable.
    pub fn iter_mut(&mut self) -> impl ExactSizeIterator<Item = (&str, &mut Value)> {
        self.entries.iter_mut().map(|(k, v)| (k.as_str(), v))
    }

    /// The keys in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// The values in order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &Value> {
        self.entries.iter().map(|(_, v)| v)
    }

    /// The values in order, mutable.
    pub fn values_mut(&mut self) -> impl ExactSizeIterator<Item = &mut Value> {
        self.entries.iter_mut().map(|(_, v)| v)
    }
}

impl Map {
    /// The entries in order, as they are kept: the encoders walk them without an iterator
    /// adapter in between.
    pub(crate) fn entries(&self) -> &[(CompactString, Value)] {
        &self.entries
    }

    /// The entries in order, by value, keys as they are kept (no `String` made for a short one).
    pub(crate) fn into_entries(self) -> std::vec::IntoIter<(CompactString, Value)> {
        self.entries.into_iter()
    }
}

/// Entries with `String` keys, as before keys became [`CompactString`]s.
impl IntoIterator for Map {
    type Item = (String, Value);
    type IntoIter = std::iter::Map<
        std::vec::IntoIter<(CompactString, Value)>,
        fn((CompactString, Value)) -> (String, Value),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter().map(|(k, v)| (k.into_string(), v))
    }
}

impl<K: Into<CompactString>, V: Into<Value>> FromIterator<(K, V)> for Map {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Map {
        Map::from_keyed_entries(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl<K: Into<CompactString>, V: Into<Value>> Extend<(K, V)> for Map {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}
