//! Calendar formatting without a date-time dependency: days since the Unix epoch → civil date (Howard Hinnant's
//! `civil_from_days`) and back, and the current UTC time in RFC 3339. Used for synthetic exam dates, bundle
//! timestamps and the quarantine's day folders.

/// `YYYY-MM-DD` of a day count since 1970-01-01 (proleptic Gregorian).
pub fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (Hinnant's `days_from_civil`, the inverse of [`civil_date`]);
/// `None` when `s` is not such a date.
pub fn days_from_civil(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes().all(|c| c.is_ascii_digit()).then(|| t.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&m) || d < 1 || d > month_days[(m - 1) as usize] {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// Current UTC time as RFC 3339 (`2026-11-26T18:24:00Z`).
pub fn utc_now() -> String {
    rfc3339(std::time::SystemTime::now())
}

/// A time as RFC 3339 UTC with milliseconds when they are not zero (`2026-11-26T18:24:00.125Z`).
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let ms = d.subsec_millis();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let frac = if ms == 0 { String::new() } else { format!(".{ms:03}") };
    format!(
        "{}T{:02}:{:02}:{:02}{frac}Z",
        civil_date(days as i64),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_dates() {
        assert_eq!(super::civil_date(0), "1970-01-01");
        assert_eq!(super::civil_date(19_723), "2024-01-01");
        assert_eq!(super::civil_date(11_016), "2000-02-29");
    }

    #[test]
    fn days_from_civil_inverts_civil_date_and_refuses_what_is_not_a_date() {
        for days in (-700_000..2_900_000).step_by(997) {
            assert_eq!(super::days_from_civil(&super::civil_date(days)), Some(days));
        }
        assert_eq!(super::days_from_civil("2024-01-01"), Some(19_723));
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-1-01",
            "undated",
            "2024-01-0x",
            "+024-01-01",
        ] {
            assert_eq!(super::days_from_civil(bad), None, "{bad}");
        }
        assert_eq!(super::days_from_civil("2024-02-29"), Some(19_782));
    }
}
