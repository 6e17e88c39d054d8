//! Names and values of the audit ⇄ OTLP conventions (DESIGN.md §2).
//!
//! There is no OpenTelemetry semantic convention for audit logs yet, so the
//! `audit.*` attributes are auditcol's own; event names follow the semconv
//! naming rules (lower case, dot separated).

/// The noun: the kind of entity acted upon (`flag`, `segment`, ...).
pub const AUDIT_TYPE: &str = "audit.type";
/// The verb: what was done (`created`, `deleted`, ...).
pub const AUDIT_ACTION: &str = "audit.action";
/// The version of the audit event structure (`0.2`).
pub const AUDIT_VERSION: &str = "audit.version";
/// The outcome (`success`, `denied`, ...).
pub const AUDIT_STATUS: &str = "audit.status";
/// The prefix of one attribute per actor field: `audit.actor.<field>`.
pub const AUDIT_ACTOR_PREFIX: &str = "audit.actor.";
/// The event id used by downstream systems to de-duplicate.
pub const AUDIT_ID: &str = "audit.id";
/// Where the event came from (`flipt`, `flagsmith`, `otlp`, or a configured name).
pub const AUDIT_SOURCE: &str = "audit.source";
/// The prefix of every event name: `audit.<type>.<action>`.
pub const EVENT_NAME_PREFIX: &str = "audit.";

/// The status of a successful event; any other status is logged at WARN.
pub const STATUS_SUCCESS: &str = "success";
/// The event structure version auditcol writes when none is given.
pub const DEFAULT_VERSION: &str = "0.2";

/// OTLP severity number INFO.
pub const SEVERITY_INFO: i32 = 9;
/// OTLP severity number WARN.
pub const SEVERITY_WARN: i32 = 13;

/// The `audit.source` value of events received as OTLP logs.
pub const SOURCE_OTLP: &str = "otlp";

/// The OTLP severity (number, text) for an audit status.
pub fn severity_for_status(status: &str) -> (i32, &'static str) {
    if status == STATUS_SUCCESS {
        (SEVERITY_INFO, "INFO")
    } else {
        (SEVERITY_WARN, "WARN")
    }
}

/// `audit.<type>.<action>`, the OTLP event name of an audit event.
pub fn event_name(noun: &str, verb: &str) -> String {
    let mut name = String::with_capacity(EVENT_NAME_PREFIX.len() + noun.len() + 1 + verb.len());
    name.push_str(EVENT_NAME_PREFIX);
    name.push_str(noun);
    name.push('.');
    name.push_str(verb);
    name
}

/// Event ids for many events at once: UUIDv7s that share one clock reading
/// and one random draw, counting up from there (RFC 9562 §6.2, "monotonic
/// random"). Reading the clock and the random generator per event cost more
/// than the rest of ingest.
///
/// ```
/// use auditcol_model::conventions::EventIds;
/// let mut ids = EventIds::new();
/// let a = ids.next_id().to_owned();
/// let b = ids.next_id().to_owned();
/// assert!(a < b, "time ordered: {a} {b}");
/// assert_eq!(&a[14..15], "7");
/// ```
#[derive(Debug, Clone)]
pub struct EventIds {
    /// The UUID last handed out, as a number.
    last: u128,
    /// Its text: the next one differs in its last digits, so only they
    /// are written (`None` until the first id).
    text: Option<[u8; 36]>,
}

impl Default for EventIds {
    fn default() -> Self {
        Self::new()
    }
}

impl EventIds {
    /// The 74 random bits of a UUIDv7 (`rand_a` and `rand_b`), which the
    /// counter increments; the version and variant bits between them stay.
    const RAND_B_BITS: u32 = 62;
    const RAND_B: u128 = (1 << Self::RAND_B_BITS) - 1;
    const RAND_A: u128 = 0xfff << 64;
    /// The low 60 bits: the last 15 hex digits of the text, all in `rand_b`.
    const LOW_DIGITS: u128 = (1 << 60) - 1;

    /// Reads the clock and draws the random start.
    pub fn new() -> Self {
        Self {
            last: uuid::Uuid::now_v7().as_u128(),
            text: None,
        }
    }

    /// The next id.
    pub fn next_id(&mut self) -> &str {
        match &mut self.text {
            Some(text) if self.last & Self::LOW_DIGITS != Self::LOW_DIGITS => {
                // Counting up in the text, as on an odometer: no carry
                // leaves the last 15 digits (the last group and three of
                // the one before).
                self.last += 1;
                for digit in text.iter_mut().rev() {
                    match *digit {
                        b'-' => {}
                        b'f' => *digit = b'0',
                        b'9' => {
                            *digit = b'a';
                            break;
                        }
                        _ => {
                            *digit += 1;
                            break;
                        }
                    }
                }
            }
            _ => {
                self.advance();
                let mut text = [0u8; 36];
                uuid::Uuid::from_u128(self.last)
                    .hyphenated()
                    .encode_lower(&mut text);
                self.text = Some(text);
            }
        }
        let text = self.text.as_ref().expect("written above");
        crate::view::as_str(text).expect("hex digits and hyphens")
    }

    /// One up, carrying from `rand_b` into `rand_a`.
    fn advance(&mut self) {
        let rand_b = (self.last & Self::RAND_B) + 1;
        self.last = if rand_b <= Self::RAND_B {
            (self.last & !Self::RAND_B) | rand_b
        } else {
            let rand_a = (self.last & Self::RAND_A) + (1 << 64);
            if rand_a <= Self::RAND_A {
                (self.last & !Self::RAND_A & !Self::RAND_B) | rand_a
            } else {
                // 2^74 ids from one start: take a fresh one.
                uuid::Uuid::now_v7().as_u128()
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_ids_are_distinct_ordered_version_7_uuids() {
        let mut ids = EventIds::new();
        let mut seen: Vec<String> = (0..1000).map(|_| ids.next_id().to_owned()).collect();
        for id in &seen {
            let parsed = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(parsed.get_version_num(), 7, "{id}");
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{id}");
        }
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
        seen.dedup();
        assert_eq!(seen.len(), 1000);
    }

    #[test]
    fn the_counter_carries_into_rand_a_and_keeps_version_and_variant() {
        let mut ids = EventIds {
            last: uuid::Uuid::now_v7().as_u128() | EventIds::RAND_B,
            text: None,
        };
        let id = ids.next_id().to_owned();
        let parsed = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(parsed.as_u128() & EventIds::RAND_B, 0);
    }

    #[test]
    fn the_text_counts_up_with_the_number_across_digit_carries() {
        // Starts just below carries out of one, two, the last group (over
        // a hyphen) and all fifteen of the digits counted in the text, then
        // out of rand_b.
        for low in [
            0x8,
            0xfe,
            0xffff_ffff_fffd,
            EventIds::LOW_DIGITS - 2,
            EventIds::RAND_B - 2,
        ] {
            let start = (uuid::Uuid::now_v7().as_u128() & !EventIds::RAND_B) | low;
            let mut ids = EventIds {
                last: start,
                text: None,
            };
            for _ in 0..6 {
                let id = ids.next_id().to_owned();
                assert_eq!(id, uuid::Uuid::from_u128(ids.last).hyphenated().to_string());
                let parsed = uuid::Uuid::parse_str(&id).unwrap();
                assert_eq!(parsed.get_version_num(), 7, "{id}");
                assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{id}");
            }
            assert!(ids.last > start);
        }
    }
}
