//! A signature: the study's linear combination of selected features, weighted by their LASSO coefficients,
//! `score = intercept + Σⱼ βⱼ (xⱼ − meanⱼ) / sdⱼ`, with the means and standard deviations of the training cohort.

use serde::{Deserialize, Serialize};

/// One fitted signature (radiomics or deep).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    /// `radiomics` or `deep`.
    pub name: String,
    /// Selected feature names, as the extractor names them.
    pub features: Vec<String>,
    /// Training means.
    pub means: Vec<f64>,
    /// Training standard deviations (n − 1).
    pub sds: Vec<f64>,
    /// LASSO coefficients on the z-scored features.
    pub coefficients: Vec<f64>,
    /// LASSO intercept.
    pub intercept: f64,
    /// The λ chosen by cross-validation.
    pub lambda: f64,
}

impl Signature {
    /// The score from raw feature values looked up by name; `None` names the first missing feature.
    pub fn score(&self, value: impl Fn(&str) -> Option<f64>) -> Result<f64, String> {
        let mut s = self.intercept;
        for (k, name) in self.features.iter().enumerate() {
            let v = value(name).ok_or_else(|| name.clone())?;
            s += self.coefficients[k] * (v - self.means[k]) / self.sds[k];
        }
        Ok(s)
    }
}
