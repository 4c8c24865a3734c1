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
    /// Whether the signature can be scored: one name, mean, standard deviation and coefficient per feature, and
    /// every standard deviation finite and positive. `Err` says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        let n = self.features.len();
        for (what, len) in [
            ("means", self.means.len()),
            ("standard deviations", self.sds.len()),
            ("coefficients", self.coefficients.len()),
        ] {
            if len != n {
                return Err(format!("signature {}: {len} {what} for {n} features", self.name));
            }
        }
        if let Some((name, sd)) = self
            .features
            .iter()
            .zip(&self.sds)
            .find(|(_, sd)| !(sd.is_finite() && **sd > 0.0))
        {
            return Err(format!(
                "signature {}: feature {name} has standard deviation {sd}",
                self.name
            ));
        }
        Ok(())
    }

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
