//! Glob patterns for attribute keys and payload path segments: `*` (any
//! run of characters), `?` (one character), `[abc]`, `[a-z]`, `[!abc]`.

/// A compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(char),
    Any,
    One,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Glob {
    /// Compiles `pattern`; the error says what is wrong with it.
    pub fn new(pattern: &str) -> Result<Glob, String> {
        if pattern.is_empty() {
            return Err("an empty pattern matches nothing".into());
        }
        let mut parts = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => {
                    if parts.last() != Some(&Part::Any) {
                        parts.push(Part::Any);
                    }
                }
                '?' => parts.push(Part::One),
                '[' => {
                    let negated = chars.next_if_eq(&'!').is_some();
                    let mut ranges = Vec::new();
                    loop {
                        let Some(first) = chars.next() else {
                            return Err(format!("`{pattern}`: `[` is never closed with `]`"));
                        };
                        if first == ']' && !ranges.is_empty() {
                            break;
                        }
                        if chars.next_if_eq(&'-').is_some() {
                            match chars.next() {
                                Some(']') | None => {
                                    return Err(format!(
                                        "`{pattern}`: a range `{first}-` has no end"
                                    ));
                                }
                                Some(last) if last < first => {
                                    return Err(format!(
                                        "`{pattern}`: the range `{first}-{last}` is backwards"
                                    ));
                                }
                                Some(last) => ranges.push((first, last)),
                            }
                        } else {
                            ranges.push((first, first));
                        }
                    }
                    parts.push(Part::Class { negated, ranges });
                }
                other => parts.push(Part::Literal(other)),
            }
        }
        Ok(Glob { parts })
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        matches_at(&self.parts, &text)
    }
}

fn matches_at(parts: &[Part], text: &[char]) -> bool {
    // Iterative with one backtrack point for the last `*`: linear in
    // practice, never exponential.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match parts.get(p) {
            Some(Part::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(part) if single(part, text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    parts[p..].iter().all(|part| *part == Part::Any)
}

fn single(part: &Part, c: char) -> bool {
    match part {
        Part::Literal(l) => *l == c,
        Part::One => true,
        Part::Class { negated, ranges } => {
            ranges.iter().any(|(a, b)| (*a..=*b).contains(&c)) != *negated
        }
        Part::Any => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Glob::new(pattern).unwrap().matches(text)
    }

    #[test]
    fn stars_questions_and_classes() {
        assert!(m("audit.actor.*", "audit.actor.email"));
        assert!(!m("audit.actor.*", "audit.type"));
        assert!(m("secret*", "secret_token"));
        assert!(m("*", ""));
        assert!(m("pass?ord", "password"));
        assert!(m("[ps]ass", "sass") && !m("[!ps]ass", "pass"));
        assert!(m("a[0-9]b", "a5b") && !m("a[0-9]b", "axb"));
        assert!(m("*a*b*c", "xxaxxbxxc") && !m("*a*b*c", "xxaxxcxxb"));
        assert!(!m("email", "email2"));
    }

    #[test]
    fn bad_patterns_are_named() {
        assert!(Glob::new("").is_err());
        assert!(Glob::new("ab[cd").unwrap_err().contains("never closed"));
        assert!(Glob::new("[z-a]").unwrap_err().contains("backwards"));
    }

    #[test]
    fn many_stars_stay_fast() {
        let g = Glob::new(&"*a".repeat(30)).unwrap();
        assert!(!g.matches(&"a".repeat(29)));
    }
}
