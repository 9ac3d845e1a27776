//! Instants as epoch microseconds (UTC), the one time unit of the pipeline.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// Microseconds in a day: the contract's time arithmetic has no calendar.
pub const DAY_US: i64 = 86_400_000_000;

/// The first instant an as_of may be: 1970-01-01T00:00:00Z.
pub const AS_OF_MIN: i64 = 0;
/// The last instant an as_of may be, 9999-12-31T23:59:59Z: a run id's
/// date has four digits, and run ids order by their text.
pub const AS_OF_MAX: i64 = 253_402_300_799_000_000;

/// Parses `as_of`: RFC 3339 (with `Z` or an offset) or a plain date
/// (midnight UTC), cut down to whole seconds, within 1970-01-01 ..
/// 9999-12-31. The error says which of those failed.
pub fn parse_as_of(text: &str) -> Result<i64, String> {
    let us = if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        t.timestamp_micros()
    } else {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|date| date.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp_micros())
            .ok_or_else(|| format!("{text:?} is neither RFC 3339 nor a date like 2026-11-24"))?
    };
    let us = us.div_euclid(1_000_000) * 1_000_000;
    if !(AS_OF_MIN..=AS_OF_MAX).contains(&us) {
        return Err(format!(
            "{text:?} lies outside 1970-01-01 .. 9999-12-31 (a run id's date has four digits)"
        ));
    }
    Ok(us)
}

/// Parses one RFC 3339 timestamp of a CSV cell, rounded down to µs.
pub fn parse_rfc3339_us(text: &str) -> Option<i64> {
    let t = DateTime::parse_from_rfc3339(text).ok()?;
    let secs = t.timestamp();
    let micros = i64::from(t.timestamp_subsec_nanos() / 1_000);
    secs.checked_mul(1_000_000)?.checked_add(micros)
}

/// Today at 00:00 UTC.
pub fn today_midnight_us() -> i64 {
    Utc::now().timestamp_micros().div_euclid(DAY_US) * DAY_US
}

/// `2026-11-24T00:00:00Z` style text of an instant.
pub fn format_rfc3339(us: i64) -> String {
    match DateTime::<Utc>::from_timestamp_micros(us) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => format!("{us}us"),
    }
}

/// `2026-11-24T00:00:00.000000Z`: an instant with its microseconds.
pub fn format_rfc3339_micros(us: i64) -> String {
    match DateTime::<Utc>::from_timestamp_micros(us) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Micros, true),
        None => format!("{us}us"),
    }
}

/// `20261124T000000Z`: the compact form that starts a run id.
pub fn format_compact(us: i64) -> String {
    match DateTime::<Utc>::from_timestamp_micros(us) {
        Some(t) => t.format("%Y%m%dT%H%M%SZ").to_string(),
        None => format!("{us}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_of_accepts_dates_offsets_and_cuts_to_seconds() {
        let midnight = parse_as_of("2026-11-24T00:00:00Z").unwrap();
        assert_eq!(parse_as_of("2026-11-24"), Ok(midnight));
        assert_eq!(parse_as_of("2026-11-24T01:00:00+01:00"), Ok(midnight));
        assert_eq!(parse_as_of("2026-11-24T00:00:00.999Z"), Ok(midnight));
        assert_eq!(midnight % DAY_US, 0);
        assert!(parse_as_of("24/11/2026").unwrap_err().contains("neither"));
        assert_eq!(format_compact(midnight), "20261124T000000Z");
        assert_eq!(format_rfc3339(midnight), "2026-11-24T00:00:00Z");
    }

    #[test]
    fn as_of_stays_within_four_digit_years() {
        assert_eq!(parse_as_of("1970-01-01"), Ok(AS_OF_MIN));
        assert_eq!(parse_as_of("9999-12-31T23:59:59.9Z"), Ok(AS_OF_MAX));
        assert_eq!(format_compact(AS_OF_MAX), "99991231T235959Z");
        for text in [
            "1969-12-31T23:59:59Z",
            "+10000-01-01T00:00:00Z",
            "-0001-01-01",
        ] {
            let e = parse_as_of(text).unwrap_err();
            assert!(
                e.contains("1970-01-01 .. 9999-12-31") || e.contains("neither"),
                "{e}"
            );
        }
        assert!(parse_as_of("1969-12-31").unwrap_err().contains("outside"));
    }

    #[test]
    fn csv_timestamps_round_down_to_micros() {
        let t = parse_rfc3339_us("1970-01-01T00:00:00.0000019Z").unwrap();
        assert_eq!(t, 1);
        assert_eq!(
            parse_rfc3339_us("1970-01-01T00:00:01+00:00"),
            Some(1_000_000)
        );
        assert_eq!(parse_rfc3339_us("1970-01-01 00:00:01"), None);
    }
}
