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
/// let (mut a, mut b) = ([0u8; 36], [0u8; 36]);
/// let (a, b) = (ids.next_id(&mut a).to_owned(), ids.next_id(&mut b).to_owned());
/// assert!(a < b, "time ordered: {a} {b}");
/// assert_eq!(&a[14..15], "7");
/// ```
#[derive(Debug, Clone)]
pub struct EventIds {
    /// The UUID last handed out, as a number.
    last: u128,
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

    /// Reads the clock and draws the random start.
    pub fn new() -> Self {
        Self {
            last: uuid::Uuid::now_v7().as_u128(),
        }
    }

    /// The next id, written into `buf`.
    pub fn next_id<'b>(&mut self, buf: &'b mut [u8; 36]) -> &'b str {
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
        uuid::Uuid::from_u128(self.last)
            .hyphenated()
            .encode_lower(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_ids_are_distinct_ordered_version_7_uuids() {
        let mut ids = EventIds::new();
        let mut seen: Vec<String> = (0..1000)
            .map(|_| ids.next_id(&mut [0u8; 36]).to_owned())
            .collect();
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
        };
        let id = ids.next_id(&mut [0u8; 36]).to_owned();
        let parsed = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(parsed.as_u128() & EventIds::RAND_B, 0);
    }
}
