//! UTC timestamps and date-text checks for the mock's records, on the `time` crate.

use std::time::{SystemTime, UNIX_EPOCH};
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{Date, OffsetDateTime};

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

/// A Unix time as `YYYY-MM-DDTHH:MM:SSZ` (whole seconds).
pub(super) fn utc_timestamp(unix_seconds: u64) -> String {
    let at = i64::try_from(unix_seconds)
        .ok()
        .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    at.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// Whether `text` is a calendar date `YYYY-MM-DD` that exists.
pub(super) fn is_calendar_date(text: &str) -> bool {
    text.len() == 10 && Date::parse(text, &Iso8601::DATE).is_ok()
}

/// Whether `text` is an RFC 3339 date-time: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
pub(super) fn is_rfc3339_date_time(text: &str) -> bool {
    OffsetDateTime::parse(text, &Rfc3339).is_ok()
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
        // RFC 3339 section 5.6 lets a space stand for the T.
        assert!(is_rfc3339_date_time("2026-01-05 10:00:00Z"));
        assert!(!is_rfc3339_date_time("2026-01-05T10:00:00"));
        assert!(!is_rfc3339_date_time("2026-01-05T25:00:00Z"));
        assert!(!is_rfc3339_date_time("2026-01-05T10:00:00.Z"));
        assert!(!is_rfc3339_date_time("yesterday"));
    }
}
