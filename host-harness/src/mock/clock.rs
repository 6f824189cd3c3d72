//! UTC timestamps and date-text checks, without a calendar crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
pub(super) fn unix_seconds_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub(super) fn utc_timestamp_now() -> String {
    utc_timestamp(unix_seconds_now())
}

/// A Unix time as `YYYY-MM-DDTHH:MM:SSZ`.
pub(super) fn utc_timestamp(unix_seconds: u64) -> String {
    let days = unix_seconds / 86_400;
    let seconds_of_day = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds_of_day / 3600,
        seconds_of_day % 3600 / 60,
        seconds_of_day % 60
    )
}

/// The proleptic Gregorian date `days` days after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Days in `month` of `year` (0 for a month outside 1–12).
fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 0,
    }
}

/// Parses exactly `length` ASCII digits.
fn fixed_digits(text: &str, length: usize) -> Option<u32> {
    (text.len() == length && text.bytes().all(|byte| byte.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// Whether `text` is a calendar date `YYYY-MM-DD` that exists.
pub(super) fn is_calendar_date(text: &str) -> bool {
    let mut parts = text.split('-');
    let (Some(year), Some(month), Some(day), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    match (
        fixed_digits(year, 4),
        fixed_digits(month, 2),
        fixed_digits(day, 2),
    ) {
        (Some(year), Some(month), Some(day)) => day >= 1 && day <= days_in_month(year, month),
        _ => false,
    }
}

/// Whether `text` is an RFC 3339 date-time: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
pub(super) fn is_rfc3339_date_time(text: &str) -> bool {
    let Some((date, time)) = text.split_once(['T', 't']) else {
        return false;
    };
    if !is_calendar_date(date) {
        return false;
    }
    let (clock, offset) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        (clock, None)
    } else if let Some(index) = time.rfind(['+', '-']) {
        (&time[..index], Some(&time[index + 1..]))
    } else {
        return false;
    };
    let offset_is_valid = offset.is_none_or(|offset| {
        matches!(offset.split_once(':'), Some((hours, minutes))
            if fixed_digits(hours, 2).is_some_and(|hours| hours <= 23)
                && fixed_digits(minutes, 2).is_some_and(|minutes| minutes <= 59))
    });
    let (whole_seconds, fraction) = match clock.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (clock, None),
    };
    let fraction_is_valid = fraction.is_none_or(|fraction| {
        !fraction.is_empty() && fraction.bytes().all(|byte| byte.is_ascii_digit())
    });
    let mut parts = whole_seconds.split(':');
    let clock_is_valid = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(hours), Some(minutes), Some(seconds), None) => {
            fixed_digits(hours, 2).is_some_and(|hours| hours <= 23)
                && fixed_digits(minutes, 2).is_some_and(|minutes| minutes <= 59)
                // 60: a leap second
                && fixed_digits(seconds, 2).is_some_and(|seconds| seconds <= 60)
        }
        _ => false,
    };
    offset_is_valid && fraction_is_valid && clock_is_valid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_timestamps() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_timestamp(1_767_607_200), "2026-01-05T10:00:00Z");
        assert_eq!(utc_timestamp(1_798_761_599), "2026-12-31T23:59:59Z");
    }

    #[test]
    fn checks_calendar_dates() {
        assert!(is_calendar_date("2026-01-01"));
        assert!(is_calendar_date("2024-02-29"));
        assert!(!is_calendar_date("2026-02-29"));
        assert!(!is_calendar_date("2026-13-01"));
        assert!(!is_calendar_date("2026-1-01"));
        assert!(!is_calendar_date("2026-01-01T00:00:00Z"));
        assert!(!is_calendar_date(""));
    }

    #[test]
    fn checks_rfc3339_date_times() {
        assert!(is_rfc3339_date_time("2026-01-05T10:00:00Z"));
        assert!(is_rfc3339_date_time("2026-01-05T10:00:00.123+01:00"));
        assert!(is_rfc3339_date_time("2026-01-05t10:00:00-05:30"));
        assert!(!is_rfc3339_date_time("2026-01-05 10:00:00Z"));
        assert!(!is_rfc3339_date_time("2026-01-05T10:00:00"));
        assert!(!is_rfc3339_date_time("2026-01-05T25:00:00Z"));
        assert!(!is_rfc3339_date_time("2026-01-05T10:00:00.Z"));
        assert!(!is_rfc3339_date_time("yesterday"));
    }
}
