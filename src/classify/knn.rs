//! k nearest neighbours (Euclidean distance, uniform weights): the probability is the fraction of positives among
//! the k training rows closest to the query (scikit-learn's `KNeighborsClassifier.predict_proba`). Equal distances
//! keep the training order.

use super::Classifier;

/// A fitted (memorised) KNN model.
#[derive(Debug, Clone)]
pub struct Knn {
    x: Vec<Vec<f64>>,
    y: Vec<bool>,
    k: usize,
}

impl Knn {
    /// Memorise the training rows; `k` is capped at their number.
    pub fn fit(x: &[Vec<f64>], y: &[bool], k: usize) -> Knn {
        Knn {
            x: x.to_vec(),
            y: y.to_vec(),
            k: k.min(x.len()).max(1),
        }
    }
}

impl Classifier for Knn {
    fn predict_proba(&self, row: &[f64]) -> f64 {
        let mut d: Vec<(f64, usize)> = self
            .x
            .iter()
            .enumerate()
            .map(|(i, r)| (r.iter().zip(row).map(|(a, b)| (a - b) * (a - b)).sum::<f64>(), i))
            .collect();
        d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        d[..self.k].iter().filter(|(_, i)| self.y[*i]).count() as f64 / self.k as f64
    }
}
