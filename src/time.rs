//! Calendar formatting without a date-time dependency: days since the Unix epoch → civil date (Howard Hinnant's
//! `civil_from_days`), and the current UTC time in RFC 3339. Used for synthetic exam dates and bundle timestamps.

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
}
