//! Numbers as proto3 JSON writes them: JSON number syntax, in a JSON number
//! or inside a string, read exactly.
//!
//! Integers are read from their decimal text, not through `f64`, so that
//! `"1e3"` is 1000 while `1234567890123456789.0` is not silently rounded and
//! `1.0000000000000000001` is refused as not integral.

/// The parts of a number in JSON syntax: `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`.
struct Parts<'a> {
    negative: bool,
    /// The digits before the point.
    int: &'a [u8],
    /// The digits after the point.
    frac: &'a [u8],
    /// The exponent, saturated far beyond any meaningful value.
    exp: i64,
}

/// The limit of saturation for exponents: large enough that no input that
/// fits in memory can bring an out-of-range exponent back in range.
const EXP_LIMIT: i64 = 1 << 60;

fn parse_parts(text: &str) -> Option<Parts<'_>> {
    let b = text.as_bytes();
    let mut i = 0;
    let negative = b.first() == Some(&b'-');
    if negative {
        i += 1;
    }
    let digits = |i: usize| b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    let n = digits(i);
    if n == 0 || (n > 1 && b[i] == b'0') {
        return None;
    }
    let int = &b[i..i + n];
    i += n;
    let mut frac: &[u8] = &[];
    if b.get(i) == Some(&b'.') {
        let n = digits(i + 1);
        if n == 0 {
            return None;
        }
        frac = &b[i + 1..i + 1 + n];
        i += 1 + n;
    }
    let mut exp = 0i64;
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        let exp_negative = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let n = digits(i);
        if n == 0 {
            return None;
        }
        for &d in &b[i..i + n] {
            exp = exp
                .saturating_mul(10)
                .saturating_add(i64::from(d - b'0'))
                .min(EXP_LIMIT);
        }
        if exp_negative {
            exp = -exp;
        }
        i += n;
    }
    (i == b.len()).then_some(Parts {
        negative,
        int,
        frac,
        exp,
    })
}

/// Why text is not an acceptable integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IntError {
    /// Not a number in JSON syntax.
    Syntax,
    /// A number with a fractional part.
    NotIntegral,
    /// An integer of 20 digits or more (beyond any 64-bit type).
    TooLarge,
}

/// The integer written in `text` (JSON number syntax), exactly.
pub(super) fn parse_integer(text: &str) -> Result<i128, IntError> {
    let p = parse_parts(text).ok_or(IntError::Syntax)?;
    // The digits int ++ frac; digit k has place value 10^(int.len() - 1 - k + exp).
    let digit = |k: usize| {
        if k < p.int.len() {
            p.int[k]
        } else {
            p.frac[k - p.int.len()]
        }
    };
    let len = p.int.len() + p.frac.len();
    let Some(first) = (0..len).find(|&k| digit(k) != b'0') else {
        return Ok(0);
    };
    let last = (0..len).rev().find(|&k| digit(k) != b'0').unwrap_or(first);
    // Lengths fit in i64 and the exponent is saturated at 2^60: no overflow.
    let place = |k: usize| p.int.len() as i64 - 1 - k as i64 + p.exp;
    if place(last) < 0 {
        return Err(IntError::NotIntegral);
    }
    if place(first) >= 20 {
        return Err(IntError::TooLarge);
    }
    // At most 20 significant digits and a place below 20: fits in i128.
    let mut value: i128 = 0;
    for k in first..=last {
        value = value * 10 + i128::from(digit(k) - b'0');
    }
    value *= 10i128.pow(place(last) as u32);
    Ok(if p.negative { -value } else { value })
}

/// The double written in `text` (JSON number syntax); `None` when the text
/// is not a number or its magnitude is beyond the largest double.
pub(super) fn parse_double(text: &str) -> Option<f64> {
    parse_parts(text)?;
    // Rust's parser rounds correctly; the syntax check keeps out what it
    // accepts beyond JSON ("inf", "+1", ".5").
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_read_exactly_in_every_json_form() {
        for (text, value) in [
            ("0", 0),
            ("-0", 0),
            ("42", 42),
            ("-42", -42),
            ("1e3", 1000),
            ("1E+3", 1000),
            ("1.5e1", 15),
            ("100e-2", 1),
            ("2.000", 2),
            ("0.0e999999999999999999999", 0),
            ("18446744073709551615", u64::MAX.into()),
            ("1.8446744073709551615e19", u64::MAX.into()),
            ("-9223372036854775808", i64::MIN.into()),
            ("99999999999999999999", 99_999_999_999_999_999_999),
        ] {
            assert_eq!(parse_integer(text), Ok(value), "{text}");
        }
    }

    #[test]
    fn non_integers_and_bad_syntax_are_told_apart() {
        for (text, error) in [
            ("1.5", IntError::NotIntegral),
            ("1e-1", IntError::NotIntegral),
            ("1.0000000000000000001", IntError::NotIntegral),
            ("1e-99999999999999999999", IntError::NotIntegral),
            ("1e20", IntError::TooLarge),
            ("1e99999999999999999999", IntError::TooLarge),
            ("", IntError::Syntax),
            ("-", IntError::Syntax),
            ("+1", IntError::Syntax),
            ("01", IntError::Syntax),
            ("1.", IntError::Syntax),
            (".5", IntError::Syntax),
            ("1e", IntError::Syntax),
            (" 1", IntError::Syntax),
            ("1 ", IntError::Syntax),
            ("0x10", IntError::Syntax),
            ("abc", IntError::Syntax),
        ] {
            assert_eq!(parse_integer(text), Err(error), "{text}");
        }
    }

    #[test]
    fn doubles_accept_json_syntax_only() {
        assert_eq!(parse_double("1.5"), Some(1.5));
        assert_eq!(
            parse_double("-0.0").map(f64::to_bits),
            Some((-0.0f64).to_bits())
        );
        assert_eq!(parse_double("1e-400"), Some(0.0));
        for text in ["inf", "NaN", "+1", ".5", "1e400", "1_0", ""] {
            assert_eq!(parse_double(text), None, "{text}");
        }
    }
}
