//! CART classification tree (Breiman et al. 1984) with the Gini impurity `G = 1 − p² − (1 − p)²`: each node takes
//! the split that minimises the size-weighted impurity of its children. One implementation serves the DecisionTree
//! row and, with feature subsampling and random thresholds, the RandomForest and ExtraTrees rows. Leaves predict the
//! fraction of positives they hold (scikit-learn's `predict_proba`).

use super::Classifier;
use crate::rng::Rng;

/// How many features a split looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxFeatures {
    /// All of them (DecisionTree).
    All,
    /// ⌊√p⌋, at least 1 (forests, scikit-learn's `"sqrt"`).
    Sqrt,
}

/// How a threshold is chosen for a feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Splitter {
    /// Every midpoint between consecutive distinct values.
    Best,
    /// One threshold uniform between the node's minimum and maximum (ExtraTrees).
    Random,
}

/// Growth limits.
#[derive(Debug, Clone, Copy)]
pub struct TreeParams {
    /// Maximum depth (`None`: until leaves are pure or too small).
    pub max_depth: Option<usize>,
    /// A node needs at least this many cases to be split.
    pub min_samples_split: usize,
    /// Each child needs at least this many cases.
    pub min_samples_leaf: usize,
    /// Features per split.
    pub max_features: MaxFeatures,
    /// Threshold rule.
    pub splitter: Splitter,
}

impl Default for TreeParams {
    fn default() -> Self {
        TreeParams {
            max_depth: None,
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: MaxFeatures::All,
            splitter: Splitter::Best,
        }
    }
}

/// A node of a binary tree over feature thresholds (`row[feature] ≤ threshold` goes left); shared with the
/// booster's regression trees.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// A leaf's value (a probability here, a raw score in the booster).
    Leaf(f64),
    /// An internal split.
    Split {
        feature: usize,
        threshold: f64,
        left: usize,
        right: usize,
    },
}

/// The leaf value a row reaches, starting at node 0.
pub(crate) fn eval_nodes(nodes: &[Node], row: &[f64]) -> f64 {
    let mut k = 0;
    loop {
        match nodes[k] {
            Node::Leaf(v) => return v,
            Node::Split {
                feature,
                threshold,
                left,
                right,
            } => k = if row[feature] <= threshold { left } else { right },
        }
    }
}

/// A fitted tree.
#[derive(Debug, Clone)]
pub struct Tree {
    nodes: Vec<Node>,
}

fn gini(pos: f64, n: f64) -> f64 {
    if n == 0.0 {
        return 0.0;
    }
    let p = pos / n;
    2.0 * p * (1.0 - p)
}

impl Tree {
    /// Grow a tree on the rows `x[i]` for `i` in `rows` (repeats allowed: bootstrap samples).
    pub fn fit_rows(x: &[Vec<f64>], y: &[bool], rows: &[usize], params: &TreeParams, seed: u64) -> Tree {
        let mut tree = Tree { nodes: Vec::new() };
        let mut rng = Rng::new(seed);
        let mut idx = rows.to_vec();
        tree.grow(x, y, &mut idx, 0, params, &mut rng);
        tree
    }

    /// Grow a tree on all rows.
    pub fn fit(x: &[Vec<f64>], y: &[bool], params: &TreeParams, seed: u64) -> Tree {
        let rows: Vec<usize> = (0..x.len()).collect();
        Tree::fit_rows(x, y, &rows, params, seed)
    }

    fn grow(
        &mut self,
        x: &[Vec<f64>],
        y: &[bool],
        idx: &mut [usize],
        depth: usize,
        params: &TreeParams,
        rng: &mut Rng,
    ) -> usize {
        let n = idx.len() as f64;
        let pos = idx.iter().filter(|&&i| y[i]).count() as f64;
        let me = self.nodes.len();
        self.nodes.push(Node::Leaf(if n > 0.0 { pos / n } else { 0.5 }));
        let pure = pos == 0.0 || pos == n;
        if pure || idx.len() < params.min_samples_split || params.max_depth.is_some_and(|d| depth >= d) {
            return me;
        }
        let Some((feature, threshold)) = best_split(x, y, idx, params, rng) else {
            return me;
        };
        // partition in place
        let mut k = 0;
        for j in 0..idx.len() {
            if x[idx[j]][feature] <= threshold {
                idx.swap(j, k);
                k += 1;
            }
        }
        let (l, r) = idx.split_at_mut(k);
        let left = self.grow(x, y, l, depth + 1, params, rng);
        let right = self.grow(x, y, r, depth + 1, params, rng);
        self.nodes[me] = Node::Split {
            feature,
            threshold,
            left,
            right,
        };
        me
    }
}

/// The best (feature, threshold) for a node, or `None` if no split reduces impurity within the limits.
fn best_split(x: &[Vec<f64>], y: &[bool], idx: &[usize], params: &TreeParams, rng: &mut Rng) -> Option<(usize, f64)> {
    let p = x.first().map_or(0, Vec::len);
    let wanted = match params.max_features {
        MaxFeatures::All => p,
        MaxFeatures::Sqrt => ((p as f64).sqrt().floor() as usize).max(1),
    };
    let mut features: Vec<usize> = (0..p).collect();
    rng.shuffle(&mut features);
    let n = idx.len() as f64;
    let total_pos = idx.iter().filter(|&&i| y[i]).count() as f64;
    let parent = gini(total_pos, n) * n;
    let min_leaf = params.min_samples_leaf as f64;
    let mut best: Option<(f64, usize, f64)> = None;
    let mut visited = 0;
    for &f in &features {
        if visited >= wanted {
            break;
        }
        let (lo, hi) = idx.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &i| {
            (a.min(x[i][f]), b.max(x[i][f]))
        });
        if hi <= lo {
            continue; // constant here: as scikit-learn, it does not count towards max_features
        }
        visited += 1;
        match params.splitter {
            Splitter::Random => {
                let t = lo + (hi - lo) * rng.uniform();
                let (mut nl, mut pl) = (0.0, 0.0);
                for &i in idx {
                    if x[i][f] <= t {
                        nl += 1.0;
                        pl += f64::from(u8::from(y[i]));
                    }
                }
                let nr = n - nl;
                if nl < min_leaf || nr < min_leaf {
                    continue;
                }
                let cost = gini(pl, nl) * nl + gini(total_pos - pl, nr) * nr;
                if best.is_none_or(|b| cost < b.0) {
                    best = Some((cost, f, t));
                }
            }
            Splitter::Best => {
                let mut order: Vec<usize> = idx.to_vec();
                order.sort_by(|&a, &b| x[a][f].total_cmp(&x[b][f]));
                let (mut nl, mut pl) = (0.0, 0.0);
                for w in 0..order.len() - 1 {
                    nl += 1.0;
                    pl += f64::from(u8::from(y[order[w]]));
                    let (v, next) = (x[order[w]][f], x[order[w + 1]][f]);
                    if next <= v {
                        continue;
                    }
                    let nr = n - nl;
                    if nl < min_leaf || nr < min_leaf {
                        continue;
                    }
                    let cost = gini(pl, nl) * nl + gini(total_pos - pl, nr) * nr;
                    if best.is_none_or(|b| cost < b.0 - 1e-12) {
                        best = Some((cost, f, v + (next - v) / 2.0));
                    }
                }
            }
        }
    }
    best.filter(|b| b.0 < parent - 1e-12).map(|b| (b.1, b.2))
}

impl Classifier for Tree {
    fn predict_proba(&self, row: &[f64]) -> f64 {
        eval_nodes(&self.nodes, row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fully_grown_tree_separates_a_threshold_rule() {
        let x: Vec<Vec<f64>> = (0..20).map(|i| vec![f64::from(i), f64::from(i % 3)]).collect();
        let y: Vec<bool> = (0..20).map(|i| i >= 12).collect();
        let t = Tree::fit(&x, &y, &TreeParams::default(), 1);
        for (r, &l) in x.iter().zip(&y) {
            assert_eq!(t.predict_proba(r), f64::from(u8::from(l)));
        }
        // the split lies midway between 11 and 12
        assert_eq!(t.predict_proba(&[11.49, 0.0]), 0.0);
        assert_eq!(t.predict_proba(&[11.51, 0.0]), 1.0);
    }
}
