//! The study's Table 1: clinical characteristics by ALN status within a cohort.
//!
//! - Numeric factors: Student's t-test when both groups pass Shapiro–Wilk (p > 0.05), otherwise Mann–Whitney U;
//!   summarised as mean ± sd or median \[IQR\] accordingly.
//! - Categorical factors: Pearson's chi-square (Yates for 2 × 2), or Fisher's exact test when a 2 × 2 table has an
//!   expected count below 5; summarised as n (%) per level. Fisher's test of larger tables is not implemented: such
//!   tables keep chi-square and say that an expected count is below 5.
//!
//! Empty cells are missing values and are left out of that factor's test.

use std::collections::BTreeMap;

use serde::Serialize;

use super::cohort::CohortRow;
use crate::stats::hypothesis::{chi_square, fisher_exact, mann_whitney, shapiro_wilk, t_test};

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Table1Row {
    /// Factor (column).
    pub variable: String,
    /// Level for a categorical factor.
    pub level: Option<String>,
    /// Summary in ALN+.
    pub positive: String,
    /// Summary in ALN−.
    pub negative: String,
    /// Test used (on the factor's first line).
    pub test: String,
    /// p (on the factor's first line).
    pub p: Option<f64>,
}

/// Table 1 of one cohort.
#[derive(Debug, Clone, Serialize)]
pub struct Table1 {
    /// `training` / `test`.
    pub cohort: String,
    /// ALN+ cases.
    pub n_positive: usize,
    /// ALN− cases.
    pub n_negative: usize,
    /// Lines.
    pub rows: Vec<Table1Row>,
    /// p per factor.
    pub p: BTreeMap<String, f64>,
}

/// numpy-linear quantile `q` ∈ [0, 1].
fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    crate::radiomics::firstorder::percentile_sorted(&s, 100.0 * q)
}

/// Whether every non-empty value of the column is a number.
pub fn is_numeric(rows: &[&CohortRow], column: &str) -> bool {
    let mut any = false;
    for r in rows {
        let v = r.clinical.get(column).map(String::as_str).unwrap_or("");
        if v.is_empty() {
            continue;
        }
        any = true;
        if v.parse::<f64>().is_err() {
            return false;
        }
    }
    any
}

/// Table 1 of `rows` for the given clinical columns.
pub fn table1(cohort: &str, rows: &[&CohortRow], columns: &[String]) -> Table1 {
    let n_positive = rows.iter().filter(|r| r.label).count();
    let mut out = Table1 {
        cohort: cohort.into(),
        n_positive,
        n_negative: rows.len() - n_positive,
        rows: Vec::new(),
        p: BTreeMap::new(),
    };
    for col in columns {
        let value = |r: &CohortRow| r.clinical.get(col).cloned().unwrap_or_default();
        if is_numeric(rows, col) {
            let group = |pos: bool| -> Vec<f64> {
                rows.iter()
                    .filter(|r| r.label == pos)
                    .filter_map(|r| value(r).parse::<f64>().ok())
                    .collect()
            };
            let (a, b) = (group(true), group(false));
            if a.len() < 2 || b.len() < 2 {
                continue;
            }
            let normal = |v: &[f64]| shapiro_wilk(v).is_some_and(|(_, p)| p > 0.05);
            let (test, p, sa, sb) = if normal(&a) && normal(&b) {
                let sd = |v: &[f64]| {
                    let m = v.iter().sum::<f64>() / v.len() as f64;
                    (
                        m,
                        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() as f64 - 1.0)).sqrt(),
                    )
                };
                let ((ma, sa), (mb, sb)) = (sd(&a), sd(&b));
                (
                    "t-test",
                    t_test(&a, &b, false).2,
                    format!("{ma:.1} ± {sa:.1}"),
                    format!("{mb:.1} ± {sb:.1}"),
                )
            } else {
                let med = |v: &[f64]| {
                    format!(
                        "{:.1} [{:.1}, {:.1}]",
                        quantile(v, 0.5),
                        quantile(v, 0.25),
                        quantile(v, 0.75)
                    )
                };
                ("Mann-Whitney U", mann_whitney(&a, &b).2, med(&a), med(&b))
            };
            out.p.insert(col.clone(), p);
            out.rows.push(Table1Row {
                variable: col.clone(),
                level: None,
                positive: sa,
                negative: sb,
                test: test.into(),
                p: Some(p),
            });
        } else {
            let mut levels: Vec<String> = rows.iter().map(|r| value(r)).filter(|v| !v.is_empty()).collect();
            levels.sort();
            levels.dedup();
            if levels.len() < 2 {
                continue;
            }
            let count = |lvl: &str, pos: bool| rows.iter().filter(|r| r.label == pos && value(r) == lvl).count() as u64;
            let table: Vec<Vec<u64>> = levels.iter().map(|l| vec![count(l, true), count(l, false)]).collect();
            let ((_, _, p_chi), min_expected) = chi_square(&table);
            let (test, p) = if levels.len() == 2 && min_expected < 5.0 {
                (
                    "Fisher's exact",
                    fisher_exact([[table[0][0], table[0][1]], [table[1][0], table[1][1]]]),
                )
            } else if min_expected < 5.0 {
                ("chi-square (an expected count < 5)", p_chi)
            } else {
                ("chi-square", p_chi)
            };
            out.p.insert(col.clone(), p);
            let (tp, tn): (u64, u64) = (table.iter().map(|r| r[0]).sum(), table.iter().map(|r| r[1]).sum());
            for (k, (l, t)) in levels.iter().zip(&table).enumerate() {
                let pct = |c: u64, n: u64| if n > 0 { 100.0 * c as f64 / n as f64 } else { 0.0 };
                out.rows.push(Table1Row {
                    variable: col.clone(),
                    level: Some(l.clone()),
                    positive: format!("{} ({:.1}%)", t[0], pct(t[0], tp)),
                    negative: format!("{} ({:.1}%)", t[1], pct(t[1], tn)),
                    test: if k == 0 { test.into() } else { String::new() },
                    p: (k == 0).then_some(p),
                });
            }
        }
    }
    out
}
