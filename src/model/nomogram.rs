//! The nomogram: an unpenalised multivariable logistic regression of the signatures and the selected clinical
//! factors, drawn on Harrell's points scale (`rms::nomogram`):
//!
//! - each predictor k contributes `βₖ xₖ` to the linear predictor; over its training range that contribution spans
//!   `wₖ = |βₖ| (maxₖ − minₖ)`;
//! - the widest span is 100 points: `points per unit of linear predictor = 100 / maxₖ wₖ`;
//! - `pointsₖ(x) = (βₖ x − min(βₖ minₖ, βₖ maxₖ)) · 100 / maxₖ wₖ`;
//! - total points map back to `lp = β₀ + Σₖ min(βₖ minₖ, βₖ maxₖ) + total · maxₖ wₖ / 100`, and
//!   `P = 1 / (1 + e^(−lp))`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One predictor of the nomogram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NomogramPredictor {
    /// `radiomics_signature`, `deep_signature`, or a clinical factor (`mri_ln_status`, …).
    pub name: String,
    /// Logistic coefficient.
    pub coefficient: f64,
    /// Its standard error.
    pub se: f64,
    /// Wald p.
    pub p: f64,
    /// Training minimum.
    pub min: f64,
    /// Training maximum.
    pub max: f64,
    /// 0/1 factor (drawn with two ticks).
    pub binary: bool,
}

/// A fitted nomogram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nomogram {
    /// Intercept β₀.
    pub intercept: f64,
    /// Intercept standard error.
    pub intercept_se: f64,
    /// Predictors in model order.
    pub predictors: Vec<NomogramPredictor>,
    /// Points per unit of linear predictor (100 / widest span).
    pub points_per_unit: f64,
    /// Probability cutoff (Youden, training cohort).
    pub cutoff: f64,
}

/// The nomogram's output for one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NomogramResult {
    /// Points per predictor, in model order.
    pub points: BTreeMap<String, f64>,
    /// Total points.
    pub total_points: f64,
    /// Linear predictor.
    pub linear_predictor: f64,
    /// Probability of ALN metastasis.
    pub probability: f64,
    /// `probability ≥ cutoff`.
    pub positive: bool,
}

impl Nomogram {
    /// Build from fitted coefficients (`[β₀, β₁, …]` with SE and p) and the training values of each predictor.
    pub fn new(names: &[String], coef: &[f64], se: &[f64], p: &[f64], training: &[Vec<f64>], cutoff: f64) -> Nomogram {
        let predictors: Vec<NomogramPredictor> = names
            .iter()
            .enumerate()
            .map(|(k, name)| {
                let col: Vec<f64> = training.iter().map(|r| r[k]).collect();
                let (min, max) = col
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
                NomogramPredictor {
                    name: name.clone(),
                    coefficient: coef[k + 1],
                    se: se[k + 1],
                    p: p[k + 1],
                    min,
                    max,
                    binary: col.iter().all(|&v| v == 0.0 || v == 1.0),
                }
            })
            .collect();
        let widest = predictors
            .iter()
            .map(|q| q.coefficient.abs() * (q.max - q.min))
            .fold(0.0f64, f64::max);
        Nomogram {
            intercept: coef[0],
            intercept_se: se[0],
            predictors,
            points_per_unit: if widest > 0.0 { 100.0 / widest } else { 0.0 },
            cutoff,
        }
    }

    /// The lowest contribution `min(β min, β max)` of a predictor.
    fn floor(q: &NomogramPredictor) -> f64 {
        (q.coefficient * q.min).min(q.coefficient * q.max)
    }

    /// Points of predictor `q` at value `x`.
    pub fn points_of(&self, q: &NomogramPredictor, x: f64) -> f64 {
        (q.coefficient * x - Self::floor(q)) * self.points_per_unit
    }

    /// Total points → probability.
    pub fn probability_at(&self, total_points: f64) -> f64 {
        let lp = self.intercept
            + self.predictors.iter().map(Self::floor).sum::<f64>()
            + if self.points_per_unit > 0.0 {
                total_points / self.points_per_unit
            } else {
                0.0
            };
        1.0 / (1.0 + (-lp).exp())
    }

    /// Evaluate with a value for every predictor (by name); the error names the first missing one.
    pub fn evaluate(&self, values: &BTreeMap<String, f64>) -> Result<NomogramResult, String> {
        let mut points = BTreeMap::new();
        let mut lp = self.intercept;
        let mut total = 0.0;
        for q in &self.predictors {
            let x = *values.get(&q.name).ok_or_else(|| q.name.clone())?;
            let pts = self.points_of(q, x);
            points.insert(q.name.clone(), pts);
            total += pts;
            lp += q.coefficient * x;
        }
        let probability = 1.0 / (1.0 + (-lp).exp());
        Ok(NomogramResult {
            points,
            total_points: total,
            linear_predictor: lp,
            probability,
            positive: probability >= self.cutoff,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_map_back_to_the_linear_predictor() {
        let names = vec!["a".to_string(), "b".to_string()];
        let training = vec![vec![-2.0, 0.0], vec![3.0, 1.0], vec![0.5, 0.0]];
        let n = Nomogram::new(&names, &[-0.4, 0.8, -1.5], &[0.1; 3], &[0.01; 3], &training, 0.5);
        // span of a: 0.8·5 = 4 (widest) → 25 points per unit
        assert!((n.points_per_unit - 25.0).abs() < 1e-12);
        let v = BTreeMap::from([("a".to_string(), 1.0), ("b".to_string(), 1.0)]);
        let r = n.evaluate(&v).unwrap();
        assert!((r.points["a"] - (0.8 * 1.0 + 1.6) * 25.0).abs() < 1e-12);
        assert!((r.points["b"]).abs() < 1e-12); // b = 1 is its lower contribution (β < 0)
        assert!((n.probability_at(r.total_points) - r.probability).abs() < 1e-12);
    }
}
