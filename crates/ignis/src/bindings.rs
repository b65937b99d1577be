//! Typed bindings keyed by the original's key strings.
//!
//! A [`BindingKey<T>`] carries the type of what is bound under it, so binding a value of the
//! wrong type does not compile. Lookups by bare string (configuration, diagnostics) check the
//! type at run time and fail with a clear error.

use std::any::{Any, type_name};
use std::collections::HashMap;
use std::marker::PhantomData;

/// The key of a binding holding a `T`.
pub struct BindingKey<T> {
    name: &'static str,
    _type: PhantomData<fn() -> T>,
}

impl<T> BindingKey<T> {
    /// A key with this key string (e.g. `@app/socket-io/instance`).
    pub const fn new(name: &'static str) -> Self {
        BindingKey {
            name,
            _type: PhantomData,
        }
    }

    /// The key string values are bound under.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<T> Clone for BindingKey<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for BindingKey<T> {}

impl<T> std::fmt::Debug for BindingKey<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BindingKey({:?}: {})", self.name, type_name::<T>())
    }
}

/// Why a binding could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    #[error("binding not found: {key}")]
    /// Nothing is bound under the key.
    NotFound {
        /// The key string.
        key: String,
    },
    #[error("binding {key} holds a {found}, not a {expected}")]
    /// The value bound under the key is of another type than the key's.
    WrongType {
        /// The key string.
        key: String,
        /// The key's type.
        expected: &'static str,
        /// The bound value's type.
        found: &'static str,
    },
}

struct Entry {
    value: Box<dyn Any + Send + Sync>,
    type_name: &'static str,
}

/// The application's bindings.
#[derive(Default)]
pub struct Bindings {
    entries: HashMap<String, Entry>,
}

impl Bindings {
    /// No bindings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Binds `value` under `key`, replacing what was there.
    pub fn bind<T: Send + Sync + 'static>(&mut self, key: BindingKey<T>, value: T) {
        self.entries.insert(
            key.name.to_string(),
            Entry {
                value: Box::new(value),
                type_name: type_name::<T>(),
            },
        );
    }

    /// Binds `value` unless something is bound under `key` already.
    pub fn bind_default<T: Send + Sync + 'static>(&mut self, key: BindingKey<T>, value: T) {
        if !self.is_bound(key.name) {
            self.bind(key, value);
        }
    }

    /// Whether a value is bound under the key string `name`.
    pub fn is_bound(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The value under `key`.
    pub fn get<T: Clone + 'static>(&self, key: BindingKey<T>) -> Result<T, BindingError> {
        self.get_by_name(key.name)
    }

    /// The value under a key given as a string, if it has type `T`.
    pub fn get_by_name<T: Clone + 'static>(&self, name: &str) -> Result<T, BindingError> {
        let entry = self
            .entries
            .get(name)
            .ok_or_else(|| BindingError::NotFound {
                key: name.to_string(),
            })?;
        entry
            .value
            .downcast_ref::<T>()
            .cloned()
            .ok_or_else(|| BindingError::WrongType {
                key: name.to_string(),
                expected: type_name::<T>(),
                found: entry.type_name,
            })
    }

    /// Removes a binding.
    pub fn unbind(&mut self, name: &str) -> bool {
        self.entries.remove(name).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NUMBER: BindingKey<u32> = BindingKey::new("@test/number");

    #[test]
    fn typed_keys_and_string_lookups() {
        let mut b = Bindings::new();
        assert_eq!(
            b.get(NUMBER),
            Err(BindingError::NotFound {
                key: "@test/number".into()
            })
        );
        b.bind(NUMBER, 7);
        b.bind_default(NUMBER, 9);
        assert_eq!(b.get(NUMBER), Ok(7));
        let err = b.get_by_name::<String>("@test/number").unwrap_err();
        assert_eq!(
            err.to_string(),
            "binding @test/number holds a u32, not a alloc::string::String"
        );
        assert!(b.unbind("@test/number"));
        assert!(!b.is_bound("@test/number"));
    }
}
