//! Flipt's `noun:verb` event rules, compiled once and matched without
//! allocating.
//!
//! A pattern is `noun:verb`, where either side is a name made of ASCII
//! letters, digits, `_`, `-` and `.`, or `*` for any value. Matching is
//! case-insensitive on both the pattern and the data, as in Flipt.

use std::fmt;
use std::str::FromStr;

/// Which side of a `noun:verb` pattern an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternSide {
    /// The part before `:` (the audit type: `flag`, `segment`, ...).
    Noun,
    /// The part after `:` (the audit action: `created`, `deleted`, ...).
    Verb,
}

impl fmt::Display for PatternSide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Noun => "noun",
            Self::Verb => "verb",
        })
    }
}

/// Why a text is not a valid `noun:verb` pattern. The messages are written
/// for the person editing the config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// No `:` at all.
    #[error(
        "`{pattern}` is not a `noun:verb` pattern: it has no `:` (write e.g. `flag:created`, `flag:*` or `*:*`)"
    )]
    MissingColon {
        /// The rejected text.
        pattern: String,
    },
    /// More than one `:`.
    #[error("`{pattern}` has more than one `:`: write exactly one `noun:verb`")]
    TooManyColons {
        /// The rejected text.
        pattern: String,
    },
    /// Nothing before or after the `:`.
    #[error("`{pattern}` has an empty {side}: use `*` to match any {side}")]
    EmptySide {
        /// The rejected text.
        pattern: String,
        /// The side at fault.
        side: PatternSide,
    },
    /// `*` mixed with other characters (`fl*g`): only whole sides may be wildcards.
    #[error(
        "`{pattern}` uses `*` inside the {side}: `*` must stand alone for a whole side (`flag:*`, `*:deleted`); prefixes and suffixes are not supported"
    )]
    PartialWildcard {
        /// The rejected text.
        pattern: String,
        /// The side at fault.
        side: PatternSide,
    },
    /// A character outside `[A-Za-z0-9_.-]`.
    #[error(
        "`{pattern}` has the character {character:?} in the {side}: allowed are ASCII letters, digits, `_`, `-` and `.`, or `*` alone"
    )]
    IllegalCharacter {
        /// The rejected text.
        pattern: String,
        /// The side at fault.
        side: PatternSide,
        /// The first character not allowed.
        character: char,
    },
}

/// One side of a pattern: any value, or one name (stored in lower case).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Side {
    Any,
    Exact(Box<str>),
}

impl Side {
    fn parse(text: &str, pattern: &str, side: PatternSide) -> Result<Self, PatternError> {
        if text == "*" {
            return Ok(Self::Any);
        }
        if text.is_empty() {
            return Err(PatternError::EmptySide {
                pattern: pattern.to_owned(),
                side,
            });
        }
        if let Some(character) = text
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            return Err(if character == '*' {
                PatternError::PartialWildcard {
                    pattern: pattern.to_owned(),
                    side,
                }
            } else {
                PatternError::IllegalCharacter {
                    pattern: pattern.to_owned(),
                    side,
                    character,
                }
            });
        }
        Ok(Self::Exact(text.to_ascii_lowercase().into_boxed_str()))
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(name) => name.eq_ignore_ascii_case(value),
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Exact(name) => f.write_str(name),
        }
    }
}

/// A compiled `noun:verb` pattern such as `flag:*`, `*:deleted` or `*:*`.
///
/// ```
/// use auditcol_processor_filter::EventPattern;
/// let p: EventPattern = "Flag:*".parse().unwrap();
/// assert!(p.matches("flag", "created"));
/// assert!(p.matches("FLAG", "deleted"));
/// assert!(!p.matches("segment", "created"));
/// assert_eq!(p.to_string(), "flag:*");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPattern {
    noun: Side,
    verb: Side,
}

impl EventPattern {
    /// The pattern matching every audit event, `*:*`.
    pub const ANY: EventPattern = EventPattern {
        noun: Side::Any,
        verb: Side::Any,
    };

    /// Parses `noun:verb`; either side may be `*`. Case does not matter.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let Some((noun, verb)) = text.split_once(':') else {
            return Err(PatternError::MissingColon {
                pattern: text.to_owned(),
            });
        };
        if verb.contains(':') {
            return Err(PatternError::TooManyColons {
                pattern: text.to_owned(),
            });
        }
        Ok(Self {
            noun: Side::parse(noun, text, PatternSide::Noun)?,
            verb: Side::parse(verb, text, PatternSide::Verb)?,
        })
    }

    /// True when `noun` (`audit.type`) and `verb` (`audit.action`) match,
    /// ignoring ASCII case. Does not allocate.
    pub fn matches(&self, noun: &str, verb: &str) -> bool {
        self.noun.matches(noun) && self.verb.matches(verb)
    }
}

impl FromStr for EventPattern {
    type Err = PatternError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for EventPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.noun, self.verb)
    }
}

/// Include and exclude rules: an event passes when it matches at least one
/// include pattern and no exclude pattern (exclude wins).
///
/// ```
/// use auditcol_processor_filter::{EventFilter, EventPattern};
/// let filter = EventFilter::new(
///     vec!["flag:*".parse().unwrap()],
///     vec!["*:read".parse().unwrap()],
/// );
/// assert!(filter.matches("flag", "created"));
/// assert!(!filter.matches("flag", "read"));
/// assert!(!filter.matches("segment", "created"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    include: Vec<EventPattern>,
    exclude: Vec<EventPattern>,
}

/// What an [`EventFilter`] says of one audit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It passes.
    Keep,
    /// No include (`events`) pattern matches it.
    NotIncluded,
    /// An include pattern matches it, and so does an `exclude` pattern.
    Excluded,
}

impl EventFilter {
    /// A filter from compiled patterns. An empty `include` lets nothing pass.
    pub fn new(include: Vec<EventPattern>, exclude: Vec<EventPattern>) -> Self {
        Self { include, exclude }
    }

    /// A filter that lets every audit event pass (`*:*`, no exclusions).
    pub fn allow_all() -> Self {
        Self::new(vec![EventPattern::ANY], Vec::new())
    }

    /// True when `noun:verb` matches an include pattern and no exclude pattern.
    pub fn matches(&self, noun: &str, verb: &str) -> bool {
        self.verdict(noun, verb) == Verdict::Keep
    }

    /// Whether `noun:verb` passes, and if not, why.
    pub fn verdict(&self, noun: &str, verb: &str) -> Verdict {
        if !self.include.iter().any(|p| p.matches(noun, verb)) {
            Verdict::NotIncluded
        } else if self.exclude.iter().any(|p| p.matches(noun, verb)) {
            Verdict::Excluded
        } else {
            Verdict::Keep
        }
    }

    /// The include patterns.
    pub fn include(&self) -> &[EventPattern] {
        &self.include
    }

    /// The exclude patterns.
    pub fn exclude(&self) -> &[EventPattern] {
        &self.exclude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_specified() {
        // (pattern, noun, verb, expected)
        let cases = [
            ("*:*", "flag", "created", true),
            ("*:*", "anything", "at-all", true),
            ("flag:*", "flag", "created", true),
            ("flag:*", "flag", "deleted", true),
            ("flag:*", "segment", "created", false),
            ("*:deleted", "segment", "deleted", true),
            ("*:deleted", "flag", "deleted", true),
            ("*:deleted", "flag", "created", false),
            ("flag:created", "flag", "created", true),
            ("flag:created", "flag", "updated", false),
            ("flag:created", "variant", "created", false),
            ("flag:created", "flags", "created", false),
            ("flag:created", "fla", "created", false),
            ("FLAG:Created", "flag", "created", true),
            ("flag:created", "FLAG", "CREATED", true),
            ("Flag:*", "fLaG", "whatever", true),
            ("feature_state:*", "feature_state", "updated", true),
            ("ef.version-2:*", "EF.VERSION-2", "created", true),
        ];
        for (pattern, noun, verb, expected) in cases {
            let p = EventPattern::parse(pattern).unwrap();
            assert_eq!(
                p.matches(noun, verb),
                expected,
                "{pattern} vs {noun}:{verb}"
            );
        }
    }

    #[test]
    fn invalid_patterns_say_what_is_wrong() {
        // (pattern, substring of the message)
        let cases = [
            ("flag", "`flag` is not a `noun:verb` pattern: it has no `:`"),
            ("", "`` is not a `noun:verb` pattern"),
            ("a:b:c", "`a:b:c` has more than one `:`"),
            ("flag::", "`flag::` has more than one `:`"),
            (":created", "`:created` has an empty noun: use `*`"),
            ("flag:", "`flag:` has an empty verb: use `*`"),
            (":", "`:` has an empty noun"),
            ("fl*g:created", "`fl*g:created` uses `*` inside the noun"),
            ("flag:*d", "`flag:*d` uses `*` inside the verb"),
            ("**:*", "uses `*` inside the noun"),
            ("flag: created", "has the character ' ' in the verb"),
            ("fl@g:created", "has the character '@' in the noun"),
            ("flag:créé", "has the character 'é' in the verb"),
        ];
        for (pattern, message) in cases {
            let err = EventPattern::parse(pattern).unwrap_err().to_string();
            assert!(err.contains(message), "{pattern}: {err}");
        }
    }

    #[test]
    fn patterns_display_in_lower_case() {
        assert_eq!(
            EventPattern::parse("FLAG:Created").unwrap().to_string(),
            "flag:created"
        );
        assert_eq!(EventPattern::ANY.to_string(), "*:*");
    }

    #[test]
    fn exclude_wins_over_include() {
        let parse = |texts: &[&str]| -> Vec<EventPattern> {
            texts.iter().map(|t| t.parse().unwrap()).collect()
        };
        let filter = EventFilter::new(parse(&["*:*"]), parse(&["flag:read", "*:listed"]));
        assert!(filter.matches("flag", "created"));
        assert!(!filter.matches("flag", "read"));
        assert!(!filter.matches("segment", "listed"));
        assert!(filter.matches("segment", "read"));
    }

    #[test]
    fn empty_include_lets_nothing_pass() {
        let filter = EventFilter::new(Vec::new(), Vec::new());
        assert!(!filter.matches("flag", "created"));
    }
}
