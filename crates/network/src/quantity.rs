//! Kubernetes resource quantities (`resource.ParseQuantity`), enough for bandwidth annotations.
//!
//! Grammar (k8s.io/apimachinery/pkg/api/resource):
//! `<sign>?<digits>[.<digits>]` followed by a binary suffix (`Ki Mi Gi Ti Pi Ei`), a decimal
//! suffix (`n u m "" k M G T P E`) or a decimal exponent (`e<signed int>` / `E<signed int>`).
//! [`parse_value`] returns what `Quantity.Value()` returns: the value rounded up to an integer.

/// Parses `s` and returns its value rounded up (towards +inf) to an integer, or a reason.
/// Values whose magnitude does not fit the arithmetic (far beyond any bandwidth) are refused.
pub(crate) fn parse_value(s: &str) -> Result<i128, String> {
    let bad = || format!("{s:?} is not a valid quantity");
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let num_len = rest
        .bytes()
        .position(|b| !(b.is_ascii_digit() || b == b'.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(num_len);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => {
            if f.contains('.') {
                return Err(bad());
            }
            (i, f)
        }
        None => (number, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(bad());
    }

    // (power of two, power of ten) the suffix multiplies by.
    let (pow2, pow10): (u32, i32) = match suffix {
        "" => (0, 0),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        _ => {
            let exp = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))
                .ok_or_else(bad)?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let exp: i32 = exp.parse().map_err(|_| bad())?;
            (0, exp)
        }
    };

    let too_large = || format!("{s:?} is too large");
    // The number as an integer mantissa scaled by 10^-frac_len; leading zeros do not count.
    let digits: String = int_part.chars().chain(frac_part.chars()).collect();
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(0);
    }
    let mantissa: u128 = digits.parse().map_err(|_| too_large())?;
    let frac_len = i32::try_from(frac_part.len()).map_err(|_| too_large())?;
    let scale10 = pow10.checked_sub(frac_len).ok_or_else(too_large)?;

    let mut numerator = mantissa.checked_mul(1u128 << pow2).ok_or_else(too_large)?;
    let mut denominator: u128 = 1;
    if scale10 >= 0 {
        let factor = 10u128
            .checked_pow(scale10.unsigned_abs())
            .ok_or_else(too_large)?;
        numerator = numerator.checked_mul(factor).ok_or_else(too_large)?;
    } else {
        match 10u128.checked_pow(scale10.unsigned_abs()) {
            Some(d) => denominator = d,
            // Smaller than 1 by far: the rounded-up value is 1 (or 0 for negative numbers).
            None => return Ok(if negative { 0 } else { 1 }),
        }
    }
    let magnitude = i128::try_from(numerator / denominator).map_err(|_| too_large())?;
    let exact = numerator % denominator == 0;
    Ok(match (negative, exact) {
        (false, true) => magnitude,
        (false, false) => magnitude + 1,
        // Rounding up a negative number moves it towards zero.
        (true, _) => -magnitude,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_value;

    #[test]
    fn parses_suffixes_like_kubernetes() {
        let cases: &[(&str, i128)] = &[
            ("0", 0),
            ("500k", 500_000),
            ("10M", 10_000_000),
            ("1G", 1_000_000_000),
            ("1Gi", 1 << 30),
            ("1Ki", 1024),
            ("1.5M", 1_500_000),
            ("1.5Mi", 1_572_864),
            (".5k", 500),
            ("5.", 5),
            ("1e3", 1000),
            ("1E6", 1_000_000),
            ("1e+3", 1000),
            ("15e-1", 2),
            ("100m", 1),
            ("1500m", 2),
            ("1P", 1_000_000_000_000_000),
            ("2E", 2_000_000_000_000_000_000),
            ("1Ei", 1 << 60),
            ("+7", 7),
            ("-1500m", -1),
            ("1n", 1),
            ("007k", 7000),
        ];
        for (input, want) in cases {
            assert_eq!(parse_value(input), Ok(*want), "{input}");
        }
    }

    #[test]
    fn rejects_malformed_quantities() {
        for input in [
            "", "k", "1K", "1KB", "1.2.3", "1 M", "M1", "1e", "1e+", "1ee3", "1mi", "--1", ".",
            "1Mi2",
        ] {
            assert!(parse_value(input).is_err(), "{input:?} should be rejected");
        }
    }

    #[test]
    fn refuses_overflowing_values() {
        assert!(parse_value("1e400").is_err());
        assert!(parse_value("99999999999999999999999999999999999999999999").is_err());
        assert_eq!(parse_value("1e-400"), Ok(1));
    }
}
