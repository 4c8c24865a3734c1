//! Typed access to the DICOM attributes we read, over `dicom-object`'s in-memory objects. Missing or
//! malformed values read as `None`; callers decide which are required and name them in errors.

use dicom_core::Tag;
use dicom_object::InMemDicomObject;

/// A DICOM dataset (top level or a sequence item).
pub type Dataset = InMemDicomObject;

/// Trimmed string value.
pub fn string(ds: &Dataset, tag: Tag) -> Option<String> {
    let s = ds
        .element_opt(tag)
        .ok()??
        .to_str()
        .ok()?
        .trim()
        .trim_end_matches('\0')
        .trim()
        .to_string();
    (!s.is_empty()).then_some(s)
}

/// All float values of a (multi-valued) numeric or decimal-string attribute.
pub fn floats(ds: &Dataset, tag: Tag) -> Option<Vec<f64>> {
    let v = ds.element_opt(tag).ok()??.to_multi_float64().ok()?;
    (!v.is_empty() && v.iter().all(|x| x.is_finite())).then_some(v)
}

/// First float value.
pub fn float(ds: &Dataset, tag: Tag) -> Option<f64> {
    floats(ds, tag).and_then(|v| v.first().copied())
}

/// Integer value.
pub fn int(ds: &Dataset, tag: Tag) -> Option<i64> {
    ds.element_opt(tag).ok()??.to_int::<i64>().ok()
}

/// Items of a sequence (empty when absent).
pub fn items(ds: &Dataset, tag: Tag) -> &[Dataset] {
    match ds.element_opt(tag) {
        Ok(Some(e)) => e.items().unwrap_or(&[]),
        _ => &[],
    }
}

/// First item of a sequence.
pub fn item(ds: &Dataset, tag: Tag) -> Option<&Dataset> {
    items(ds, tag).first()
}

/// A DICOM time (`HHMMSS.FFFFFF`) in seconds since midnight.
pub fn time_seconds(ds: &Dataset, tag: Tag) -> Option<f64> {
    let s = string(ds, tag)?;
    let s = s.replace(':', "");
    let (hms, frac) = s.split_once('.').unwrap_or((&s, ""));
    let num = |a: usize, b: usize| hms.get(a..b).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    if hms.len() < 2 || hms.parse::<u64>().is_err() {
        return None;
    }
    let f = if frac.is_empty() {
        0.0
    } else {
        format!("0.{frac}").parse::<f64>().unwrap_or(0.0)
    };
    Some(num(0, 2) * 3600.0 + num(2, 4) * 60.0 + num(4, 6) + f)
}
