//! Exact decimal arithmetic on JSON number text, counted in thousandths (0.001), the
//! finest quantity Rebilly accepts. No floating point: `0.1 + 0.2` is exactly `0.3`.

/// Thousandths in one unit.
const THOUSANDTHS_PER_UNIT: i128 = 1000;

/// Why a number text cannot be counted in thousandths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DecimalTextError {
    /// The text is not a decimal number (JSON number syntax, exponent allowed).
    NotANumber,
    /// The value has more than three decimal places (trailing zeros do not count).
    TooManyDecimalPlaces,
    /// The value is too large to count.
    OutOfRange,
}

/// Bounds an exponent so that arithmetic on it cannot overflow; anything this large is
/// out of range (or, negative, has too many decimal places) anyway.
const EXPONENT_BOUND: i64 = 1_000_000;

/// Parses a decimal number text (`-12.5`, `0.001`, `1E-3`, `2.50e2`) into thousandths.
pub(super) fn parse_thousandths(text: &str) -> Result<i128, DecimalTextError> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent_text)) => (mantissa, parse_exponent(exponent_text)?),
        None => (unsigned, 0),
    };
    let (integer_digits, fraction_digits) = match mantissa.split_once('.') {
        Some((_, "")) => return Err(DecimalTextError::NotANumber),
        Some((integer, fraction)) => (integer, fraction),
        None => (mantissa, ""),
    };
    let all_digits = |digits: &str| digits.bytes().all(|byte| byte.is_ascii_digit());
    if integer_digits.is_empty() || !all_digits(integer_digits) || !all_digits(fraction_digits) {
        return Err(DecimalTextError::NotANumber);
    }

    // value = digits × 10^(exponent − fraction length)
    let digits = format!("{integer_digits}{fraction_digits}");
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return Ok(0);
    }
    let without_trailing_zeros = significant.trim_end_matches('0');
    let trailing_zeros = (significant.len() - without_trailing_zeros.len()) as i64;
    let fraction_length = fraction_digits.len() as i64;
    // thousandths = without_trailing_zeros × 10^power
    let power = exponent - fraction_length + trailing_zeros + 3;
    if power < 0 {
        return Err(DecimalTextError::TooManyDecimalPlaces);
    }
    let mut thousandths: i128 = 0;
    for byte in without_trailing_zeros.bytes() {
        thousandths = thousandths
            .checked_mul(10)
            .and_then(|value| value.checked_add(i128::from(byte - b'0')))
            .ok_or(DecimalTextError::OutOfRange)?;
    }
    let scale = u32::try_from(power)
        .ok()
        .and_then(|power| 10_i128.checked_pow(power))
        .ok_or(DecimalTextError::OutOfRange)?;
    let thousandths = thousandths
        .checked_mul(scale)
        .ok_or(DecimalTextError::OutOfRange)?;
    Ok(if negative { -thousandths } else { thousandths })
}

/// Parses an exponent (`3`, `+3`, `-3`), clamped to ±[`EXPONENT_BOUND`].
fn parse_exponent(text: &str) -> Result<i64, DecimalTextError> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(DecimalTextError::NotANumber);
    }
    let magnitude = digits.bytes().fold(0_i64, |value, byte| {
        (value * 10 + i64::from(byte - b'0')).min(EXPONENT_BOUND)
    });
    Ok(if negative { -magnitude } else { magnitude })
}

/// Formats thousandths as the shortest decimal text: `5000` → `5`, `2500` → `2.5`,
/// `1` → `0.001`, `-1500` → `-1.5`.
pub(super) fn format_thousandths(thousandths: i128) -> String {
    let sign = if thousandths < 0 { "-" } else { "" };
    let magnitude = thousandths.unsigned_abs();
    let units = magnitude / THOUSANDTHS_PER_UNIT.unsigned_abs();
    let fraction = magnitude % THOUSANDTHS_PER_UNIT.unsigned_abs();
    if fraction == 0 {
        format!("{sign}{units}")
    } else {
        let fraction_text = format!("{fraction:03}");
        format!("{sign}{units}.{}", fraction_text.trim_end_matches('0'))
    }
}

/// Thousandths as a JSON number whose text is [`format_thousandths`].
pub(super) fn thousandths_number(thousandths: i128) -> serde_json::Value {
    let text = format_thousandths(thousandths);
    match text.parse::<serde_json::Number>() {
        Ok(number) => serde_json::Value::Number(number),
        // Unreachable: the text is always a valid JSON number.
        Err(_) => serde_json::Value::String(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_decimals() {
        assert_eq!(parse_thousandths("5"), Ok(5000));
        assert_eq!(parse_thousandths("0"), Ok(0));
        assert_eq!(parse_thousandths("0.001"), Ok(1));
        assert_eq!(parse_thousandths("12.345"), Ok(12_345));
        assert_eq!(parse_thousandths("-1.25"), Ok(-1250));
        assert_eq!(parse_thousandths("100"), Ok(100_000));
    }

    #[test]
    fn trailing_zeros_do_not_count_as_decimal_places() {
        assert_eq!(parse_thousandths("1.5000"), Ok(1500));
        assert_eq!(parse_thousandths("2.000000"), Ok(2000));
    }

    #[test]
    fn rejects_more_than_three_decimal_places() {
        assert_eq!(
            parse_thousandths("0.0001"),
            Err(DecimalTextError::TooManyDecimalPlaces)
        );
        assert_eq!(
            parse_thousandths("1.0005"),
            Err(DecimalTextError::TooManyDecimalPlaces)
        );
        assert_eq!(
            parse_thousandths("1e-4"),
            Err(DecimalTextError::TooManyDecimalPlaces)
        );
    }

    #[test]
    fn handles_exponents() {
        assert_eq!(parse_thousandths("1e-3"), Ok(1));
        assert_eq!(parse_thousandths("2.5E2"), Ok(250_000));
        assert_eq!(parse_thousandths("25E+1"), Ok(250_000));
        assert_eq!(parse_thousandths("0e999999999999"), Ok(0));
        assert_eq!(
            parse_thousandths("1e999999999999"),
            Err(DecimalTextError::OutOfRange)
        );
        assert_eq!(
            parse_thousandths("1e-999999999999"),
            Err(DecimalTextError::TooManyDecimalPlaces)
        );
    }

    #[test]
    fn rejects_non_numbers_and_huge_values() {
        for text in [
            "", "-", "abc", "1.", ".5", "1e", "1e+", "1.2.3", "0x10", " 1",
        ] {
            assert_eq!(
                parse_thousandths(text),
                Err(DecimalTextError::NotANumber),
                "{text:?}"
            );
        }
        assert_eq!(
            parse_thousandths(&"9".repeat(60)),
            Err(DecimalTextError::OutOfRange)
        );
    }

    #[test]
    fn formats_shortest_text() {
        assert_eq!(format_thousandths(5000), "5");
        assert_eq!(format_thousandths(2500), "2.5");
        assert_eq!(format_thousandths(1), "0.001");
        assert_eq!(format_thousandths(10), "0.01");
        assert_eq!(format_thousandths(-1500), "-1.5");
        assert_eq!(format_thousandths(0), "0");
    }

    #[test]
    fn arithmetic_is_exact() -> Result<(), DecimalTextError> {
        let sum = parse_thousandths("0.1")? + parse_thousandths("0.2")?;
        assert_eq!(format_thousandths(sum), "0.3");
        let remaining = parse_thousandths("100")? - parse_thousandths("95")?;
        assert_eq!(format_thousandths(remaining), "5");
        assert_eq!(thousandths_number(remaining).to_string(), "5");
        assert_eq!(thousandths_number(1).to_string(), "0.001");
        Ok(())
    }
}
