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

/// Milliseconds since the Unix epoch of an RFC 3339 UTC time as [`rfc3339`] writes it
/// (`2026-11-26T18:24:00.125Z`, milliseconds optional); `None` for anything else.
pub fn unix_ms_of_rfc3339(s: &str) -> Option<f64> {
    let days = days_from_civil(s.get(..10)?)?;
    let rest = s.get(10..)?.strip_prefix('T')?.strip_suffix('Z')?;
    let (hms, frac) = rest.split_once('.').unwrap_or((rest, ""));
    let mut parts = hms
        .split(':')
        .map(|p| (p.len() == 2).then(|| p.parse::<u32>().ok()).flatten());
    let (h, m, sec) = (parts.next()??, parts.next()??, parts.next()??);
    if parts.next().is_some() || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let ms = if frac.is_empty() {
        0.0
    } else if frac.len() <= 9 && frac.bytes().all(|b| b.is_ascii_digit()) {
        frac.parse::<f64>().ok()? / 10f64.powi(frac.len() as i32) * 1e3
    } else {
        return None;
    };
    Some((days as f64 * 86_400.0 + f64::from(h * 3600 + m * 60 + sec)) * 1e3 + ms)
}

#[cfg(test)]
mod tests {
    #[test]
    fn unix_ms_of_rfc3339_inverts_rfc3339() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_764_000_000_125);
        assert_eq!(super::unix_ms_of_rfc3339(&super::rfc3339(t)), Some(1_764_000_000_125.0));
        assert_eq!(super::unix_ms_of_rfc3339("1970-01-02T00:00:01Z"), Some(86_401_000.0));
        for bad in [
            "1970-01-02T00:00:01",
            "1970-01-02 00:00:01Z",
            "1970-01-02T24:00:00Z",
            "1970-01-02T0:00:01Z",
        ] {
            assert_eq!(super::unix_ms_of_rfc3339(bad), None, "{bad}");
        }
    }

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
