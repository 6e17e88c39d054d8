//! Event names for the OpenTelemetry API, which takes them as `&'static str`.
//!
//! `audit.<type>.<action>` is built at run time, so each distinct name is
//! allocated once and kept for the life of the process: one small string
//! per type/action pair a service ever emits. Types and actions are a
//! service's vocabulary, so the set stays small; a service that made them up
//! from unbounded input would grow it without bound.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock, PoisonError};

/// The one `&'static str` holding `name`.
pub(crate) fn intern(name: String) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Mutex::default)
        .lock()
        // The set is only ever inserted into: a panic elsewhere leaves it valid.
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = names.get(name.as_str()) {
        return known;
    }
    let name: &'static str = Box::leak(name.into_boxed_str());
    names.insert(name);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_name_is_allocated_once() {
        let a = intern("audit.flag.interned".to_owned());
        let b = intern("audit.flag.interned".to_owned());
        assert_eq!(a, "audit.flag.interned");
        assert!(std::ptr::eq(a, b));
    }
}
