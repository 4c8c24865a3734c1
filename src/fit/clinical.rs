//! Which clinical factors enter the nomogram, and how each is coded as a number. As in the study, a factor is a
//! candidate when it differs between ALN+ and ALN− in the training cohort's Table 1 (p < 0.05); `fit
//! --clinical-candidates` narrows the candidates. The daemon takes each factor as reported (`model::reported`).

use super::cohort::CohortRow;
use super::table1::{self, Table1};
use crate::model::bundle::ClinicalCoding;

/// The codings of the factors with training p < 0.05 that are candidates (`None`: every column). A numeric
/// column enters as it is; a binary one codes its `positive` / `yes` / `1` / `true` level (else its second level
/// in sorted order) as 1; a column with more levels gets one indicator per level after the first. The levels
/// are the training cases' (`rows_tr`): the test cohort shapes nothing, and a level seen only in the test
/// cohort codes as the reference level (all indicators 0) rather than as a column that is 0 for every training
/// case, which the regression could not fit. Each decision is added to `notes`.
pub fn codings(
    t1_train: &Table1,
    rows_tr: &[&CohortRow],
    candidates: Option<&[String]>,
    notes: &mut Vec<String>,
) -> Vec<ClinicalCoding> {
    let mut codings = Vec::new();
    for (col, &p) in &t1_train.p {
        if p >= 0.05 {
            continue;
        }
        if let Some(c) = candidates
            && !c.contains(col)
        {
            notes.push(format!(
                "clinical factor {col} has p = {p:.2e} in training but is not a nomogram candidate"
            ));
            continue;
        }
        if table1::is_numeric(rows_tr, col) {
            codings.push(ClinicalCoding {
                name: col.clone(),
                column: col.clone(),
                level: None,
                levels: Vec::new(),
            });
        } else {
            let mut levels: Vec<String> = rows_tr
                .iter()
                .filter_map(|r| r.clinical.get(col).cloned())
                .filter(|v| !v.is_empty())
                .collect();
            levels.sort();
            levels.dedup();
            let positive = levels
                .iter()
                .find(|l| ["positive", "yes", "1", "true"].contains(&l.to_lowercase().as_str()));
            if levels.len() == 2 {
                let level = positive.cloned().unwrap_or_else(|| levels[1].clone());
                codings.push(ClinicalCoding {
                    name: col.clone(),
                    column: col.clone(),
                    level: Some(level),
                    levels: levels.clone(),
                });
            } else {
                for l in levels.iter().skip(1) {
                    codings.push(ClinicalCoding {
                        name: format!("{col}={l}"),
                        column: col.clone(),
                        level: Some(l.clone()),
                        levels: levels.clone(),
                    });
                }
            }
        }
        notes.push(format!(
            "clinical factor {col} (training p = {p:.2e}) enters the nomogram"
        ));
    }
    codings
}

/// Every case must have a value for every factor that enters the nomogram: a missing value would be NaN in the
/// regression (numeric) or silently the reference level (categorical). `Err` names the factor and the first
/// cases without one, and what the user can do.
pub fn check_complete(codings: &[ClinicalCoding], rows: &[&CohortRow]) -> Result<(), String> {
    let mut checked: Vec<&str> = Vec::new();
    for coding in codings {
        let col = coding.column.as_str();
        if checked.contains(&col) {
            continue; // one indicator of a factor already checked
        }
        checked.push(col);
        let missing: Vec<String> = rows
            .iter()
            .filter(|r| {
                let v = r.clinical.get(col).map_or("", |v| v.trim());
                v.is_empty() || (coding.level.is_none() && !value(r, coding).is_finite())
            })
            .map(|r| format!("{} (row {})", r.id, r.row))
            .collect();
        if !missing.is_empty() {
            let shown = missing.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
            let more = if missing.len() > 5 { ", …" } else { "" };
            return Err(format!(
                "clinical factor {col} enters the nomogram but has no usable value for {} case(s): {shown}{more}; \
                 fill them in, or leave the factor out with --clinical-candidates",
                missing.len()
            ));
        }
    }
    Ok(())
}

/// One case's value of `coding`: the number, or 1/0 for its level; NaN when a numeric value is missing.
pub fn value(row: &CohortRow, coding: &ClinicalCoding) -> f64 {
    coding.code(row.clinical.get(&coding.column).map_or("", String::as_str))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn row(id: usize, histology: &str, er: &str) -> CohortRow {
        CohortRow {
            row: id + 1,
            id: format!("P{id}"),
            series_dir: "dce".into(),
            roi: "roi".into(),
            label: id.is_multiple_of(2),
            cohort: None,
            exam_date: None,
            clinical: BTreeMap::from([("histology".into(), histology.into()), ("er".into(), er.into())]),
        }
    }

    #[test]
    fn levels_come_from_the_training_cases_and_binary_factors_code_their_positive_level() {
        let train: Vec<CohortRow> = ["ductal", "lobular", "mucinous", "ductal"]
            .iter()
            .enumerate()
            .map(|(i, h)| row(i, h, if i.is_multiple_of(2) { "positive" } else { "negative" }))
            .collect();
        let rows_tr: Vec<&CohortRow> = train.iter().collect();
        let t1 = Table1 {
            cohort: "training".into(),
            n_positive: 2,
            n_negative: 2,
            rows: Vec::new(),
            p: BTreeMap::from([("histology".into(), 0.01), ("er".into(), 0.02)]),
        };
        let mut notes = Vec::new();
        let c = codings(&t1, &rows_tr, None, &mut notes);
        let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["er", "histology=lobular", "histology=mucinous"]);
        assert_eq!(c[0].level.as_deref(), Some("positive"));
        // a test case with a level no training case has codes as the reference level
        let unseen = row(9, "medullary", "negative");
        assert!(c[1..].iter().all(|k| value(&unseen, k) == 0.0));
        assert_eq!(value(&row(8, "lobular", "positive"), &c[1]), 1.0);
        assert_eq!(value(&unseen, &c[0]), 0.0);
        // every case needs a value of every factor that enters
        let all: Vec<&CohortRow> = rows_tr.iter().copied().chain([&unseen]).collect();
        assert_eq!(check_complete(&c, &all), Ok(()));
        let blank = row(7, "", "positive");
        let all: Vec<&CohortRow> = rows_tr.iter().copied().chain([&blank]).collect();
        let e = check_complete(&c, &all).unwrap_err();
        assert!(e.contains("histology") && e.contains("P7 (row 8)"), "{e}");
        // a non-candidate is left out, with a note
        let c = codings(&t1, &rows_tr, Some(&["er".to_string()]), &mut notes);
        assert_eq!(c.len(), 1);
        assert!(
            notes
                .iter()
                .any(|n| n.contains("histology") && n.contains("not a nomogram candidate"))
        );
    }
}
