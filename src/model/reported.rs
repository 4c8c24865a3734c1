//! The reported factors: what a radiologist or technologist reports for a study and the nomogram uses beside the
//! two signatures. The MRI LN read ([`LnRead`]) is the usual one; a bundle fitted with `fit`'s default lets any
//! significant clinical column in (the MRI-reported tumour size, ER status, …), and those arrive the same way: on
//! `cmd/ln-status`, in a sidecar, or from the console page, by the cohort column's name.
//!
//! [`Reported`] is what is known of one study. [`FactorNeed`] is what a bundle asks for, per cohort column: a
//! number, or one of the training cohort's levels. [`Reported::coded`] turns what is known into the nomogram's
//! predictor values with the bundle's own codings ([`ClinicalCoding::code`], the one `fit` used).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::bundle::{ClinicalCoding, Manifest};
use super::ln_read::LnRead;
use super::predict::MRI_LN;

/// What has been reported for one study.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reported {
    /// The MRI LN read (`None`: unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ln: Option<LnRead>,
    /// Other factors by cohort column: a number as text, or a training level (`"2.4"`, `"positive"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub factors: BTreeMap<String, String>,
}

impl Reported {
    /// Nothing reported.
    pub fn is_empty(&self) -> bool {
        self.ln.is_none() && self.factors.is_empty()
    }

    /// `self` with what `later` says on top (a later report of a factor replaces the earlier one).
    pub fn merged(&self, later: &Reported) -> Reported {
        let mut out = self.clone();
        if later.ln.is_some() {
            out.ln = later.ln;
        }
        out.factors
            .extend(later.factors.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }

    /// The nomogram's clinical predictor values of what is known, coded as `fit` coded the cohort (a factor
    /// not reported is absent, so the prediction says it is missing).
    pub fn coded(&self, m: &Manifest) -> BTreeMap<String, f64> {
        let mut values = BTreeMap::new();
        if let Some(ln) = self.ln {
            values.insert(MRI_LN.to_string(), ln.value());
        }
        for c in &m.clinical {
            if c.column == MRI_LN {
                continue;
            }
            if let Some(text) = self.factors.get(&c.column) {
                values.insert(c.name.clone(), c.code(text));
            }
        }
        values
    }
}

/// What kind of value a factor takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FactorKind {
    /// A number (the cohort column's unit).
    Number,
    /// One of these levels (the training cohort's, or only the level coded 1 for a bundle that did not list
    /// them: then any other text codes 0).
    Level {
        /// The levels.
        levels: Vec<String>,
    },
}

/// One factor a bundle's nomogram needs, by cohort column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FactorNeed {
    /// The cohort column (`mri_ln_status`, `tumor_size_cm`).
    pub column: String,
    /// Its kind.
    #[serde(flatten)]
    pub kind: FactorKind,
}

impl FactorNeed {
    /// Whether it is the MRI LN read (entered as [`LnRead`]).
    pub fn is_ln(&self) -> bool {
        self.column == MRI_LN
    }

    /// Whether the factor takes two values, so that its scenarios can be shown while it is unknown.
    pub fn is_binary(&self) -> bool {
        matches!(&self.kind, FactorKind::Level { levels } if levels.len() <= 2)
    }

    /// The value a report says, as the text the coding reads: a finite number, or a level (matched ignoring
    /// case and surrounding spaces); `Err` says why not.
    pub fn accept(&self, v: &serde_json::Value) -> Result<String, String> {
        use serde_json::Value;
        match (&self.kind, v) {
            (FactorKind::Number, Value::Number(n)) => n
                .as_f64()
                .filter(|x| x.is_finite())
                .map(|x| x.to_string())
                .ok_or_else(|| format!("{} must be a finite number", self.column)),
            (FactorKind::Number, Value::String(s)) => match s.trim().parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(x.to_string()),
                _ => Err(format!("{} must be a number", self.column)),
            },
            (FactorKind::Level { levels }, Value::String(s)) => {
                let s = s.trim();
                match levels.iter().find(|l| l.eq_ignore_ascii_case(s)) {
                    Some(l) => Ok(l.clone()),
                    None if levels.len() == 1 && !s.is_empty() => Ok(s.to_string()),
                    None => Err(format!("{} must be one of: {}", self.column, levels.join(", "))),
                }
            }
            _ => Err(format!(
                "{} must be {}",
                self.column,
                match &self.kind {
                    FactorKind::Number => "a number".to_string(),
                    FactorKind::Level { levels } => format!("one of: {}", levels.join(", ")),
                }
            )),
        }
    }
}

/// The factors a nomogram needs beside the signatures, by cohort column, in the nomogram's order.
pub fn needs(m: &Manifest) -> Vec<FactorNeed> {
    let mut out: Vec<FactorNeed> = Vec::new();
    for p in &m.nomogram.predictors {
        let Some(c) = coding_of(m, &p.name) else {
            continue;
        };
        if out.iter().any(|n| n.column == c.column) {
            continue;
        }
        let kind = match &c.level {
            None => FactorKind::Number,
            Some(level) => {
                let mut levels = c.levels.clone();
                if levels.is_empty() {
                    levels.push(level.clone());
                }
                FactorKind::Level { levels }
            }
        };
        out.push(FactorNeed {
            column: c.column.clone(),
            kind,
        });
    }
    out
}

/// The coding of a nomogram predictor: the bundle's, or for `mri_ln_status` in a bundle that lists none, the LN
/// read's own (`positive` = 1).
pub fn coding_of(m: &Manifest, predictor: &str) -> Option<ClinicalCoding> {
    m.clinical.iter().find(|c| c.name == predictor).cloned().or_else(|| {
        (predictor == MRI_LN).then(|| ClinicalCoding {
            name: MRI_LN.into(),
            column: MRI_LN.into(),
            level: Some("positive".into()),
            levels: vec!["negative".into(), "positive".into()],
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn number(column: &str) -> FactorNeed {
        FactorNeed {
            column: column.into(),
            kind: FactorKind::Number,
        }
    }

    #[test]
    fn a_number_or_a_training_level_is_accepted_and_anything_else_named() {
        let size = number("tumor_size_cm");
        assert_eq!(size.accept(&json!(2.5)), Ok("2.5".into()));
        assert_eq!(size.accept(&json!(" 3 ")), Ok("3".into()));
        assert!(size.accept(&json!("big")).unwrap_err().contains("tumor_size_cm"));
        assert!(size.accept(&json!(true)).is_err());
        let er = FactorNeed {
            column: "er".into(),
            kind: FactorKind::Level {
                levels: vec!["negative".into(), "positive".into()],
            },
        };
        assert!(er.is_binary());
        assert_eq!(er.accept(&json!("Positive ")), Ok("positive".into()));
        let e = er.accept(&json!("maybe")).unwrap_err();
        assert!(e.contains("negative, positive"), "{e}");
        assert!(er.accept(&json!(1)).is_err());
    }

    #[test]
    fn later_reports_replace_earlier_ones_factor_by_factor() {
        let a = Reported {
            ln: Some(LnRead::Negative),
            factors: BTreeMap::from([("tumor_size_cm".into(), "2".into()), ("er".into(), "negative".into())]),
        };
        let b = Reported {
            ln: None,
            factors: BTreeMap::from([("tumor_size_cm".into(), "2.5".into())]),
        };
        let m = a.merged(&b);
        assert_eq!(m.ln, Some(LnRead::Negative));
        assert_eq!(m.factors["tumor_size_cm"], "2.5");
        assert_eq!(m.factors["er"], "negative");
        assert!(Reported::default().is_empty() && !m.is_empty());
    }
}
