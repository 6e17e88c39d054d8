//! The one scanner of a record's audit attributes.
//!
//! Every reader of `audit.*` attributes — ingest validation, the filter, the
//! JSON writers, [`AuditEvent::from_log_record`](crate::AuditEvent::from_log_record)
//! — goes through [`AuditAttributes::scan`], so they cannot disagree about
//! which value of a key counts. A key that appears twice makes the record
//! invalid ([`AuditAttributes::check`]); readers of a record that was never
//! checked see the first occurrence.

use crate::conventions::{
    AUDIT_ACTION, AUDIT_ID, AUDIT_SOURCE, AUDIT_STATUS, AUDIT_TYPE, AUDIT_VERSION,
};
use crate::mapping::{MappingError, is_valid_name};

/// The value of an attribute, as far as the audit conventions care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrValue<'a> {
    /// A string value.
    Str(&'a str),
    /// Any other value, or none.
    Other,
}

/// The audit attributes of one record, read in one pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditAttributes<'a> {
    /// `audit.type`, the noun.
    pub noun: Option<&'a str>,
    /// `audit.action`, the verb.
    pub verb: Option<&'a str>,
    /// `audit.version`.
    pub version: Option<&'a str>,
    /// `audit.status`.
    pub status: Option<&'a str>,
    /// `audit.id`.
    pub id: Option<&'a str>,
    /// `audit.source`.
    pub source: Option<&'a str>,
    seen: u8,
    /// The first problem with `audit.type` / `audit.action`.
    name_problem: Option<Problem>,
    /// The first problem with the other keys (only matters for audit events).
    other_problem: Option<Problem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    NotAString(&'static str),
    Duplicate(&'static str),
}

/// The audit keys, in the order of the bits of `seen`.
const KEYS: [&str; 6] = [
    AUDIT_TYPE,
    AUDIT_ACTION,
    AUDIT_VERSION,
    AUDIT_STATUS,
    AUDIT_ID,
    AUDIT_SOURCE,
];

/// The index in [`KEYS`] of an audit key. This runs for every attribute of
/// every record: most are not audit keys, and a prefix and length test
/// rejects those first.
#[inline]
fn key_index(key: &str) -> Option<usize> {
    if key.len() > 13 || !key.starts_with("audit.") {
        return None;
    }
    // What follows `audit.`: the index of its key in KEYS (a test holds
    // the two together).
    match &key.as_bytes()[6..] {
        b"type" => Some(0),
        b"action" => Some(1),
        b"version" => Some(2),
        b"status" => Some(3),
        b"id" => Some(4),
        b"source" => Some(5),
        _ => None,
    }
}

impl<'a> AuditAttributes<'a> {
    /// Scans `(key, value)` pairs in attribute order.
    pub fn scan(attributes: impl IntoIterator<Item = (&'a str, AttrValue<'a>)>) -> Self {
        let mut scan = Self::default();
        for (key, value) in attributes {
            scan.add(key, value);
        }
        scan
    }

    /// Takes one more attribute into account.
    pub fn add(&mut self, key: &'a str, value: AttrValue<'a>) {
        let Some(index) = key_index(key) else {
            return;
        };
        let name = KEYS[index];
        let problem_slot = if index < 2 {
            &mut self.name_problem
        } else {
            &mut self.other_problem
        };
        let bit = 1u8 << index;
        if self.seen & bit != 0 {
            problem_slot.get_or_insert(Problem::Duplicate(name));
            return;
        }
        self.seen |= bit;
        match value {
            AttrValue::Str(s) => {
                let slot = match index {
                    0 => &mut self.noun,
                    1 => &mut self.verb,
                    2 => &mut self.version,
                    3 => &mut self.status,
                    4 => &mut self.id,
                    _ => &mut self.source,
                };
                *slot = Some(s);
            }
            AttrValue::Other => {
                problem_slot.get_or_insert(Problem::NotAString(name));
            }
        }
    }

    /// Noun and verb, when the record is an audit event.
    pub fn noun_verb(&self) -> Option<(&'a str, &'a str)> {
        Some((self.noun?, self.verb?))
    }

    /// True when the record claims to be an audit event (it has `audit.type`
    /// or `audit.action`, valid or not).
    pub fn claims_audit(&self) -> bool {
        self.seen & 0b11 != 0
    }

    /// Checks the audit conventions: a record with neither `audit.type` nor
    /// `audit.action` is not an audit event and passes; an audit event needs
    /// both, as valid names, every audit key at most once and as a string.
    pub fn check(&self) -> Result<(), MappingError> {
        if !self.claims_audit() {
            return Ok(());
        }
        if let Some(problem) = self.name_problem.or(self.other_problem) {
            return Err(match problem {
                Problem::NotAString(key) => MappingError::NotAString { key },
                Problem::Duplicate(key) => MappingError::Duplicate { key },
            });
        }
        let (noun, verb) = match (self.noun, self.verb) {
            (Some(noun), Some(verb)) => (noun, verb),
            (Some(_), None) => {
                return Err(MappingError::Incomplete {
                    present: AUDIT_TYPE,
                    missing: AUDIT_ACTION,
                });
            }
            _ => {
                return Err(MappingError::Incomplete {
                    present: AUDIT_ACTION,
                    missing: AUDIT_TYPE,
                });
            }
        };
        let invalid = |key, value: &str, what| MappingError::InvalidName {
            key,
            value: value.to_owned(),
            what,
        };
        if !is_valid_name(noun) {
            return Err(invalid(AUDIT_TYPE, noun, "noun"));
        }
        if !is_valid_name(verb) {
            return Err(invalid(AUDIT_ACTION, verb, "verb"));
        }
        if let Some(status) = self.status
            && !is_valid_name(status)
        {
            return Err(invalid(AUDIT_STATUS, status, "status"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pairs = [(&'static str, Option<&'static str>)];

    fn scan(pairs: &Pairs) -> AuditAttributes<'static> {
        AuditAttributes::scan(
            pairs
                .iter()
                .map(|(k, v)| (*k, v.map_or(AttrValue::Other, AttrValue::Str))),
        )
    }

    #[test]
    fn every_audit_key_and_only_those_are_found() {
        for (i, key) in KEYS.iter().enumerate() {
            assert_eq!(key_index(key), Some(i), "{key}");
        }
        for other in [
            "audit.typo",
            "audit.types",
            "audit.actor.ip",
            "audit.",
            "",
            "x",
            "audit.statux",
            "audit.sourcE",
        ] {
            assert_eq!(key_index(other), None, "{other}");
        }
    }

    #[test]
    fn reads_every_audit_key() {
        let a = scan(&[
            ("audit.type", Some("flag")),
            ("x", Some("y")),
            ("audit.action", Some("created")),
            ("audit.version", Some("0.2")),
            ("audit.status", Some("denied")),
            ("audit.id", Some("1")),
            ("audit.source", Some("flipt")),
        ]);
        assert_eq!(a.noun_verb(), Some(("flag", "created")));
        assert_eq!(
            (a.version, a.status, a.id, a.source),
            (Some("0.2"), Some("denied"), Some("1"), Some("flipt"))
        );
        assert_eq!(a.check(), Ok(()));
    }

    #[test]
    fn a_duplicate_key_makes_an_audit_event_invalid_and_the_first_one_is_read() {
        let a = scan(&[
            ("audit.type", Some("flag")),
            ("audit.action", Some("created")),
            ("audit.type", Some("segment")),
        ]);
        assert_eq!(a.noun, Some("flag"));
        assert_eq!(a.check(), Err(MappingError::Duplicate { key: AUDIT_TYPE }));
        let a = scan(&[
            ("audit.type", Some("flag")),
            ("audit.action", Some("created")),
            ("audit.id", Some("1")),
            ("audit.id", Some("2")),
        ]);
        assert_eq!(a.check(), Err(MappingError::Duplicate { key: AUDIT_ID }));
    }

    #[test]
    fn records_that_are_not_audit_events_pass() {
        assert_eq!(
            scan(&[("audit.status", None), ("k", Some("v"))]).check(),
            Ok(())
        );
        assert_eq!(scan(&[]).noun_verb(), None);
    }

    #[test]
    fn every_broken_rule_is_named() {
        let cases: [(&Pairs, MappingError); 4] = [
            (
                &[("audit.type", Some("flag"))],
                MappingError::Incomplete {
                    present: AUDIT_TYPE,
                    missing: AUDIT_ACTION,
                },
            ),
            (
                &[("audit.action", Some("created"))],
                MappingError::Incomplete {
                    present: AUDIT_ACTION,
                    missing: AUDIT_TYPE,
                },
            ),
            (
                &[("audit.type", None), ("audit.action", Some("created"))],
                MappingError::NotAString { key: AUDIT_TYPE },
            ),
            (
                &[
                    ("audit.type", Some("flag")),
                    ("audit.action", Some("created")),
                    ("audit.status", None),
                ],
                MappingError::NotAString { key: AUDIT_STATUS },
            ),
        ];
        for (pairs, expected) in cases {
            assert_eq!(scan(pairs).check(), Err(expected), "{pairs:?}");
        }
        let bad = scan(&[
            ("audit.type", Some("fl ag")),
            ("audit.action", Some("created")),
        ]);
        assert!(matches!(
            bad.check(),
            Err(MappingError::InvalidName {
                key: AUDIT_TYPE,
                ..
            })
        ));
    }
}
