//! Exact fixed-point decimals: venue decimal strings <-> integers scaled by 10^6.
//!
//! Prices and sizes never pass through a float. Parsing rejects (rather than rounds) anything the
//! scale cannot hold exactly, so a value that reaches a book is the venue's value, digit for digit.

use std::fmt;

/// Number of decimal digits kept: values are integers in units of 10^-6.
pub const SCALE_DIGITS: u32 = 6;
/// 10^SCALE_DIGITS: the fixed-point representation of 1.
pub const ONE: i64 = 1_000_000;

/// Why a decimal string was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalError {
    Empty,
    Invalid,
    TooManyDecimals,
    Negative,
    AboveOne,
    Overflow,
}

impl fmt::Display for DecimalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecimalError::Empty => "empty number",
            DecimalError::Invalid => "not a plain decimal number",
            DecimalError::TooManyDecimals => "more than 6 decimal places",
            DecimalError::Negative => "negative value",
            DecimalError::AboveOne => "price above 1",
            DecimalError::Overflow => "number too large",
        })
    }
}

/// Parses a plain decimal (`-?digits(.digits)?`) into units of 10^-6.
///
/// No exponent, no leading `+`, no blank, at most 6 decimal places; trailing zeros beyond the
/// sixth place are accepted because they do not change the value ("0.5000000").
pub fn parse_signed(s: &str) -> Result<i64, DecimalError> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err(DecimalError::Empty);
    }
    let (neg, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    let mut int_part: i64 = 0;
    let mut i = 0usize;
    let mut n_int = 0usize;
    while let Some(&c) = digits.get(i) {
        if !c.is_ascii_digit() {
            break;
        }
        int_part = int_part
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(c - b'0')))
            .ok_or(DecimalError::Overflow)?;
        i += 1;
        n_int += 1;
    }
    // ".48" is accepted (Polymarket's own REST examples use it); "." and "" are not.
    if n_int == 0 && digits.get(i) != Some(&b'.') {
        return Err(DecimalError::Invalid);
    }
    let mut frac: i64 = 0;
    let mut n_frac: u32 = 0;
    match digits.get(i) {
        None => {}
        Some(b'.') => {
            i += 1;
            let start = i;
            while let Some(&c) = digits.get(i) {
                if !c.is_ascii_digit() {
                    return Err(DecimalError::Invalid);
                }
                if n_frac < SCALE_DIGITS {
                    frac = frac * 10 + i64::from(c - b'0');
                    n_frac += 1;
                } else if c != b'0' {
                    return Err(DecimalError::TooManyDecimals);
                }
                i += 1;
            }
            if i == start {
                return Err(DecimalError::Invalid);
            }
        }
        Some(_) => return Err(DecimalError::Invalid),
    }
    while n_frac < SCALE_DIGITS {
        frac *= 10;
        n_frac += 1;
    }
    let v = int_part
        .checked_mul(ONE)
        .and_then(|v| v.checked_add(frac))
        .ok_or(DecimalError::Overflow)?;
    Ok(if neg { -v } else { v })
}

/// A size or count: a non-negative decimal.
pub fn parse_size(s: &str) -> Result<i64, DecimalError> {
    let v = parse_signed(s)?;
    if v < 0 || (v == 0 && s.starts_with('-')) {
        return Err(DecimalError::Negative);
    }
    Ok(v)
}

/// A probability price in [0, 1].
pub fn parse_price(s: &str) -> Result<i64, DecimalError> {
    let v = parse_size(s)?;
    if v > ONE {
        return Err(DecimalError::AboveOne);
    }
    Ok(v)
}

/// Formats units of 10^-6 as a decimal string with at least `min_decimals` (at most 6) places,
/// dropping trailing zeros beyond that: `fmt(500_000, 0) == "0.5"`, `fmt(580_000, 4) == "0.5800"`.
pub fn format_decimal(v: i64, min_decimals: u32, out: &mut String) {
    use std::fmt::Write;
    let neg = v < 0;
    let a = v.unsigned_abs();
    let one = ONE.unsigned_abs();
    let int_part = a / one;
    let mut frac = a % one;
    let mut places = SCALE_DIGITS;
    let min = min_decimals.min(SCALE_DIGITS);
    while places > min && frac.is_multiple_of(10) {
        frac /= 10;
        places -= 1;
    }
    if neg {
        out.push('-');
    }
    let _ = write!(out, "{int_part}");
    if places > 0 {
        let _ = write!(out, ".{:0width$}", frac, width = places as usize);
    }
}

/// [`format_decimal`] into a new string.
pub fn to_string(v: i64, min_decimals: u32) -> String {
    let mut s = String::with_capacity(16);
    format_decimal(v, min_decimals, &mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exactly() {
        assert_eq!(parse_price("0.5"), Ok(500_000));
        assert_eq!(parse_price("0.514"), Ok(514_000));
        assert_eq!(parse_price(".48"), Ok(480_000));
        assert_eq!(parse_price("1"), Ok(ONE));
        assert_eq!(parse_price("1.000000000"), Ok(ONE));
        assert_eq!(parse_price("0"), Ok(0));
        assert_eq!(parse_price("0.000001"), Ok(1));
        assert_eq!(parse_size("21574.08"), Ok(21_574_080_000));
        assert_eq!(parse_size("10500100"), Ok(10_500_100_000_000));
        assert_eq!(parse_signed("-54.00"), Ok(-54_000_000));
        assert_eq!(parse_signed("-0.01"), Ok(-10_000));
    }

    #[test]
    fn rejects() {
        assert_eq!(parse_price(""), Err(DecimalError::Empty));
        assert_eq!(parse_price("1.01"), Err(DecimalError::AboveOne));
        assert_eq!(parse_price("-0.1"), Err(DecimalError::Negative));
        assert_eq!(parse_price("-0"), Err(DecimalError::Negative));
        assert_eq!(parse_price("0.0000001"), Err(DecimalError::TooManyDecimals));
        for bad in [
            "abc", ".", "-.", "5.", "1e-2", "+1", " 1", "1 ", "0x1", "1.2.3", "-", "--1", "NaN",
        ] {
            assert!(parse_signed(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_size("99999999999999999999"),
            Err(DecimalError::Overflow)
        );
        assert_eq!(parse_size("9223372036854.775807"), Ok(i64::MAX));
        assert_eq!(
            parse_size("9223372036854.775808"),
            Err(DecimalError::Overflow)
        );
    }

    #[test]
    fn formats() {
        assert_eq!(to_string(500_000, 0), "0.5");
        assert_eq!(to_string(200_000_000, 0), "200");
        assert_eq!(to_string(1_142_850_000, 0), "1142.85");
        assert_eq!(to_string(580_000, 4), "0.5800");
        assert_eq!(to_string(13_000_000, 2), "13.00");
        assert_eq!(to_string(581_250, 4), "0.58125");
        assert_eq!(to_string(1, 0), "0.000001");
        assert_eq!(to_string(-54_000_000, 2), "-54.00");
        assert_eq!(to_string(i64::MIN, 0), "-9223372036854.775808");
    }

    proptest::proptest! {
        #[test]
        fn roundtrip(v in proptest::num::i64::ANY, min in 0u32..8) {
            let s = to_string(v, min);
            proptest::prop_assert_eq!(parse_signed(&s), if v == i64::MIN { Err(DecimalError::Overflow) } else { Ok(v) });
        }

        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = parse_signed(&s);
            let _ = parse_price(&s);
        }
    }
}
