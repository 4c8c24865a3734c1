//! Which clinical factors enter the nomogram, and how each is coded as a number. As in the study, a factor is a
//! candidate when it differs between ALN+ and ALN− in the training cohort's Table 1 (p < 0.05); `fit
//! --clinical-candidates` narrows the candidates (the daemon serves only `mri_ln_status`).

use super::cohort::CohortRow;
use super::table1::{self, Table1};
use crate::model::bundle::ClinicalCoding;

/// The codings of the factors with training p < 0.05 that are candidates (`None`: every column). A numeric
/// column enters as it is; a binary one codes its `positive` / `yes` / `1` / `true` level (else its second level
/// in sorted order) as 1; a column with more levels gets one indicator per level after the first. `rows` are all
/// usable cases (for the levels), `rows_tr` the training ones. Each decision is added to `notes`.
pub fn codings(
    t1_train: &Table1,
    rows_tr: &[&CohortRow],
    rows: &[&CohortRow],
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
            });
        } else {
            let mut levels: Vec<String> = rows
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
                });
            } else {
                for l in levels.iter().skip(1) {
                    codings.push(ClinicalCoding {
                        name: format!("{col}={l}"),
                        column: col.clone(),
                        level: Some(l.clone()),
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

/// One case's value of `coding`: the number, or 1/0 for its level; NaN when a numeric value is missing.
pub fn value(row: &CohortRow, coding: &ClinicalCoding) -> f64 {
    let v = row.clinical.get(&coding.column).cloned().unwrap_or_default();
    match &coding.level {
        Some(l) => f64::from(u8::from(&v == l)),
        None => v.parse().unwrap_or(f64::NAN),
    }
}
