//! Tree ensembles on [`super::tree`]: Random forest (Breiman 2001: bootstrap samples, √p candidate features per
//! split, best thresholds) and Extremely randomised trees (Geurts, Ernst & Wehenkel 2006: the whole sample, √p
//! candidate features, one random threshold each). The probability is the mean of the trees' leaf fractions, as
//! scikit-learn averages `predict_proba`.

use super::Classifier;
use super::tree::{MaxFeatures, Splitter, Tree, TreeParams};
use crate::rng::Rng;
use rayon::prelude::*;

/// A fitted ensemble.
#[derive(Debug, Clone)]
pub struct Forest {
    trees: Vec<Tree>,
}

impl Forest {
    fn grow(x: &[Vec<f64>], y: &[bool], trees: usize, seed: u64, splitter: Splitter, bootstrap: bool) -> Forest {
        let params = TreeParams {
            max_features: MaxFeatures::Sqrt,
            splitter,
            ..TreeParams::default()
        };
        let trees = (0..trees as u64)
            .into_par_iter()
            .map(|t| {
                let mut rng = Rng::stream(seed, t);
                let rows: Vec<usize> = if bootstrap {
                    (0..x.len()).map(|_| rng.below(x.len())).collect()
                } else {
                    (0..x.len()).collect()
                };
                Tree::fit_rows(x, y, &rows, &params, rng.next_u64())
            })
            .collect();
        Forest { trees }
    }

    /// Random forest of `trees` bootstrap trees.
    pub fn random_forest(x: &[Vec<f64>], y: &[bool], trees: usize, seed: u64) -> Forest {
        Forest::grow(x, y, trees, seed, Splitter::Best, true)
    }

    /// Extra-trees ensemble of `trees` trees.
    pub fn extra_trees(x: &[Vec<f64>], y: &[bool], trees: usize, seed: u64) -> Forest {
        Forest::grow(x, y, trees, seed, Splitter::Random, false)
    }
}

impl Classifier for Forest {
    fn predict_proba(&self, row: &[f64]) -> f64 {
        self.trees.iter().map(|t| t.predict_proba(row)).sum::<f64>() / self.trees.len() as f64
    }
}
