//! RFC 3339 timestamps ⇄ OTLP nanoseconds since the Unix epoch.

use std::cell::Cell;

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Why a timestamp could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Not an RFC 3339 date-time.
    #[error("`{value}` is not an RFC 3339 timestamp ({reason})")]
    Invalid { value: String, reason: String },
    /// Before 1970 or after 2554: OTLP stores unsigned nanoseconds since the epoch.
    #[error("`{value}` is outside the range OTLP can carry (1970-01-01 to 2554-07-21)")]
    OutOfRange { value: String },
}

/// Parses an RFC 3339 timestamp (any offset) into nanoseconds since the epoch.
pub fn parse_rfc3339(value: &str) -> Result<u64, TimestampError> {
    let parsed = OffsetDateTime::parse(value, &Rfc3339).map_err(|e| TimestampError::Invalid {
        value: value.to_owned(),
        reason: e.to_string(),
    })?;
    u64::try_from(parsed.unix_timestamp_nanos()).map_err(|_| TimestampError::OutOfRange {
        value: value.to_owned(),
    })
}

/// Formats nanoseconds since the epoch as RFC 3339 in UTC (`Z`), with as
/// many fractional digits as needed and none when the time is whole seconds.
pub fn format_rfc3339(nanos: u64) -> String {
    let mut out = String::with_capacity(30);
    write_rfc3339(&mut out, nanos);
    out
}

/// Appends the RFC 3339 form of `nanos` to `out` (see [`format_rfc3339`]).
pub fn write_rfc3339(out: &mut String, nanos: u64) {
    let text = Rfc3339Buf::new(nanos);
    out.push_str(crate::view::as_str(text.as_bytes()).expect("ASCII digits"));
}

/// Appends the RFC 3339 form of `nanos` to a byte buffer.
pub fn write_rfc3339_bytes(out: &mut Vec<u8>, nanos: u64) {
    out.extend_from_slice(Rfc3339Buf::new(nanos).as_bytes());
}

/// Appends the RFC 3339 form of `nanos` in UTC with exactly three
/// fractional digits (milliseconds, truncated), so that lines meant for
/// people line up: `2024-05-01T10:00:00.000Z`.
pub fn write_rfc3339_millis_bytes(out: &mut Vec<u8>, nanos: u64) {
    let full = Rfc3339Buf::new(nanos - nanos % 1_000_000 + 1);
    // The added nanosecond keeps all nine digits; keep the first three.
    out.extend_from_slice(&full.buf[..23]);
    out.push(b'Z');
}

/// The RFC 3339 text of a time, on the stack.
struct Rfc3339Buf {
    buf: [u8; 30],
    len: usize,
}

impl Rfc3339Buf {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn new(nanos: u64) -> Self {
        let mut buf = [0u8; 30];
        buf[..19].copy_from_slice(&date_time(nanos / 1_000_000_000));
        let mut frac = (nanos % 1_000_000_000) as u32;
        let mut end = 19;
        if frac != 0 {
            buf[19] = b'.';
            for at in (20..29).rev() {
                buf[at] = b'0' + (frac % 10) as u8;
                frac /= 10;
            }
            end = 29;
            while buf[end - 1] == b'0' {
                end -= 1;
            }
        }
        buf[end] = b'Z';
        Self { buf, len: end + 1 }
    }
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) of a second since the epoch. The records of
/// a batch mostly fall in one second, so each thread keeps the last one.
fn date_time(secs: u64) -> [u8; 19] {
    thread_local! {
        static LAST: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
    }
    LAST.with(|last| {
        let (cached, text) = last.get();
        if cached == secs {
            return text;
        }
        let text = format_date_time(secs);
        last.set((secs, text));
        text
    })
}

fn format_date_time(secs: u64) -> [u8; 19] {
    // u64 seconds since 1970 always fit OffsetDateTime's range.
    let dt = OffsetDateTime::from_unix_timestamp(secs as i64)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(UtcOffset::UTC);
    let mut buf = *b"0000-00-00T00:00:00";
    let mut put = |at: usize, value: u32, width: usize| {
        let mut v = value;
        for i in (0..width).rev() {
            buf[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, dt.year() as u32, 4);
    put(5, u32::from(u8::from(dt.month())), 2);
    put(8, u32::from(dt.day()), 2);
    put(11, u32::from(dt.hour()), 2);
    put(14, u32::from(dt.minute()), 2);
    put(17, u32::from(dt.second()), 2);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millisecond_form_always_has_three_digits() {
        let millis = |nanos| {
            let mut out = Vec::new();
            write_rfc3339_millis_bytes(&mut out, nanos);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            millis(1_714_557_600_120_000_000),
            "2024-05-01T10:00:00.120Z"
        );
        assert_eq!(
            millis(1_714_557_600_999_999_999),
            "2024-05-01T10:00:00.999Z"
        );
        assert_eq!(millis(u64::MAX).len(), 24);
    }

    proptest::proptest! {
        #[test]
        fn formats_as_the_time_crate_does(nanos in proptest::prelude::any::<u64>(), step in 0u64..3_000_000_000) {
            // The second call often falls in the second the first one cached.
            for n in [nanos, nanos.saturating_add(step), nanos.saturating_sub(step)] {
                let expected = OffsetDateTime::from_unix_timestamp_nanos(i128::from(n))
                    .unwrap()
                    .format(&Rfc3339)
                    .unwrap();
                proptest::prop_assert_eq!(format_rfc3339(n), expected);
            }
        }
    }

    #[test]
    fn whole_seconds_have_no_fraction() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_rfc3339(1_714_557_600_000_000_000),
            "2024-05-01T10:00:00Z"
        );
    }

    #[test]
    fn fractions_keep_only_needed_digits() {
        assert_eq!(format_rfc3339(1_500_000_000), "1970-01-01T00:00:01.5Z");
        assert_eq!(
            format_rfc3339(1_000_000_001),
            "1970-01-01T00:00:01.000000001Z"
        );
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        let nanos = parse_rfc3339("2024-05-01T12:00:00+02:00").unwrap();
        assert_eq!(format_rfc3339(nanos), "2024-05-01T10:00:00Z");
    }

    #[test]
    fn garbage_and_pre_epoch_are_rejected() {
        assert!(matches!(
            parse_rfc3339("yesterday"),
            Err(TimestampError::Invalid { .. })
        ));
        assert!(matches!(
            parse_rfc3339("1969-12-31T23:59:59Z"),
            Err(TimestampError::OutOfRange { .. })
        ));
    }
}
