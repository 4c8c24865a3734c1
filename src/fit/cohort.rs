//! The cohort table `fit` reads (the schema `alnrisk synth` writes; README "Cohort CSV") and the train/test split.
//!
//! Required columns: `id`, `series_dir`, `roi`, `aln_status` (0/1). Optional: `cohort` (`train`/`test`),
//! `exam_date` (`YYYY-MM-DD`). Every other column is a clinical factor: numeric when every non-empty value parses
//! as a number, categorical otherwise. Errors name the file and the row (the header is row 1).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::rng::Rng;

/// Columns that are not clinical factors.
const RESERVED: [&str; 6] = ["id", "series_dir", "roi", "aln_status", "cohort", "exam_date"];

/// One case.
#[derive(Debug, Clone, PartialEq)]
pub struct CohortRow {
    /// Row in the file (header = 1).
    pub row: usize,
    /// Case id.
    pub id: String,
    /// DCE series folder (or image file).
    pub series_dir: PathBuf,
    /// ROI file.
    pub roi: PathBuf,
    /// ALN metastasis.
    pub label: bool,
    /// `train` / `test` when given.
    pub cohort: Option<String>,
    /// Examination date when given.
    pub exam_date: Option<String>,
    /// Clinical columns, raw text.
    pub clinical: BTreeMap<String, String>,
}

/// The table.
#[derive(Debug, Clone)]
pub struct Cohort {
    /// The CSV.
    pub path: PathBuf,
    /// Cases in file order.
    pub rows: Vec<CohortRow>,
    /// Clinical columns in file order.
    pub clinical_columns: Vec<String>,
}

fn bad(path: &Path, reason: String) -> Error {
    Error::Cohort {
        path: path.to_path_buf(),
        reason,
    }
}

/// Read and check a cohort CSV: columns, labels, duplicate ids and that every referenced file exists.
pub fn read_cohort(path: &Path) -> Result<Cohort> {
    let base = path.parent().unwrap_or(Path::new("."));
    let mut rdr = csv::Reader::from_path(path).map_err(|e| bad(path, format!("not readable as CSV: {e}")))?;
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| bad(path, format!("row 1: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let missing: Vec<&str> = ["id", "series_dir", "roi", "aln_status"]
        .into_iter()
        .filter(|c| col(c).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(bad(path, format!("row 1: missing column(s) {}", missing.join(", "))));
    }
    let (ci, cs, cr, cl) = (col("id"), col("series_dir"), col("roi"), col("aln_status"));
    let (ci, cs, cr, cl) = (ci.unwrap_or(0), cs.unwrap_or(0), cr.unwrap_or(0), cl.unwrap_or(0));
    let (cc, cd) = (col("cohort"), col("exam_date"));
    let clinical_columns: Vec<String> = headers
        .iter()
        .filter(|h| !RESERVED.contains(&h.as_str()))
        .cloned()
        .collect();
    let resolve = |s: &str| {
        let p = PathBuf::from(s.trim());
        if p.is_absolute() { p } else { base.join(p) }
    };
    let mut rows = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (k, rec) in rdr.records().enumerate() {
        let row = k + 2;
        let rec = rec.map_err(|e| bad(path, format!("row {row}: {e}")))?;
        let field = |c: usize| rec.get(c).unwrap_or("").trim().to_string();
        let id = field(ci);
        if id.is_empty() {
            return Err(bad(path, format!("row {row}: empty id")));
        }
        if let Some(first) = seen.insert(id.clone(), row) {
            return Err(bad(
                path,
                format!("row {row}: duplicate id {id:?} (first on row {first})"),
            ));
        }
        let label = match field(cl).as_str() {
            "1" => true,
            "0" => false,
            other => {
                return Err(bad(
                    path,
                    format!("row {row}: aln_status must be 0 or 1, found {other:?}"),
                ));
            }
        };
        let (series_dir, roi) = (resolve(&field(cs)), resolve(&field(cr)));
        for (what, p) in [("series_dir", &series_dir), ("roi", &roi)] {
            if !p.exists() {
                return Err(bad(path, format!("row {row}: {what} {} does not exist", p.display())));
            }
        }
        let cohort = cc.map(field).filter(|s| !s.is_empty());
        if let Some(c) = &cohort
            && c != "train"
            && c != "test"
        {
            return Err(bad(
                path,
                format!("row {row}: cohort must be train or test, found {c:?}"),
            ));
        }
        let clinical = clinical_columns
            .iter()
            .map(|name| (name.clone(), col(name).map(field).unwrap_or_default()))
            .collect();
        rows.push(CohortRow {
            row,
            id,
            series_dir,
            roi,
            label,
            cohort,
            exam_date: cd.map(field).filter(|s| !s.is_empty()),
            clinical,
        });
    }
    if rows.is_empty() {
        return Err(bad(path, "no cases".into()));
    }
    Ok(Cohort {
        path: path.to_path_buf(),
        rows,
        clinical_columns,
    })
}

/// How the split was made.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum SplitRule {
    /// The `cohort` column.
    Column,
    /// Training = examinations before this date.
    Date(String),
    /// Seeded stratified split with this test fraction.
    Stratified {
        /// Fraction of cases in the test cohort.
        test_fraction: f64,
        /// Seed.
        seed: u64,
    },
}

/// Training membership per row: the `cohort` column if every row has one; else by `split_date` if given (every
/// row then needs `exam_date`); else a seeded stratified 70/30 split.
pub fn split(cohort: &Cohort, split_date: Option<&str>, seed: u64) -> Result<(Vec<bool>, SplitRule)> {
    if cohort.rows.iter().all(|r| r.cohort.is_some()) {
        let train = cohort
            .rows
            .iter()
            .map(|r| r.cohort.as_deref() == Some("train"))
            .collect();
        return Ok((train, SplitRule::Column));
    }
    if let Some(date) = split_date {
        let mut train = Vec::with_capacity(cohort.rows.len());
        for r in &cohort.rows {
            let d = r
                .exam_date
                .as_deref()
                .ok_or_else(|| bad(&cohort.path, format!("row {}: --split-date needs exam_date", r.row)))?;
            train.push(d < date);
        }
        return Ok((train, SplitRule::Date(date.to_string())));
    }
    let test_fraction = 0.3;
    let mut rng = Rng::new(seed);
    let mut train = vec![true; cohort.rows.len()];
    for class in [true, false] {
        let mut idx: Vec<usize> = (0..cohort.rows.len())
            .filter(|&i| cohort.rows[i].label == class)
            .collect();
        rng.shuffle(&mut idx);
        let k = (idx.len() as f64 * test_fraction).round() as usize;
        for &i in &idx[..k] {
            train[i] = false;
        }
    }
    Ok((train, SplitRule::Stratified { test_fraction, seed }))
}
