//! Gradient-boosted trees for log-loss with second-order (Newton) leaf values (Chen & Guestrin, "XGBoost", KDD 2016;
//! Ke et al., "LightGBM", NeurIPS 2017), on pre-binned features (histogram splits).
//!
//! Round t fits a regression tree to the gradients `gᵢ = pᵢ − yᵢ` and hessians `hᵢ = pᵢ(1 − pᵢ)` of the current
//! model: a leaf's value is `−η G/(H + λ)`, and a split's gain is
//! `½ [G_L²/(H_L + λ) + G_R²/(H_R + λ) − G²/(H + λ)]`, taken only when positive and when both children keep at least
//! `min_child_weight` hessian and `min_data_in_leaf` cases. The start value is the log-odds of the training
//! prevalence. Two growth policies give the two table rows: depth-wise to a maximum depth (XGBoost) and best-first
//! until a number of leaves (LightGBM). This is our code, not either library.

use super::Classifier;
use super::tree::{Node, eval_nodes as eval};

/// Booster settings.
#[derive(Debug, Clone, Copy)]
pub struct BoostParams {
    /// Boosting rounds.
    pub rounds: usize,
    /// Learning rate η.
    pub eta: f64,
    /// Depth limit (depth-wise growth).
    pub max_depth: Option<usize>,
    /// Leaf limit (best-first growth).
    pub max_leaves: Option<usize>,
    /// L2 penalty λ on leaf values.
    pub lambda: f64,
    /// Minimum hessian sum per child.
    pub min_child_weight: f64,
    /// Minimum cases per child.
    pub min_data_in_leaf: usize,
    /// Histogram bins per feature.
    pub max_bin: usize,
}

impl BoostParams {
    /// XGBoost 2.x defaults (`tree_method="hist"`).
    pub fn xgboost() -> Self {
        BoostParams {
            rounds: 100,
            eta: 0.3,
            max_depth: Some(6),
            max_leaves: None,
            lambda: 1.0,
            min_child_weight: 1.0,
            min_data_in_leaf: 1,
            max_bin: 256,
        }
    }

    /// LightGBM 4.x defaults.
    pub fn lightgbm() -> Self {
        BoostParams {
            rounds: 100,
            eta: 0.1,
            max_depth: None,
            max_leaves: Some(31),
            lambda: 0.0,
            min_child_weight: 1e-3,
            min_data_in_leaf: 20,
            max_bin: 255,
        }
    }
}

/// A fitted booster.
#[derive(Debug, Clone)]
pub struct Booster {
    base: f64,
    trees: Vec<Vec<Node>>,
}

/// Upper bin edges per feature: value `v` falls in bin `#{c ∈ cuts : c < v}`.
fn bin_cuts(x: &[Vec<f64>], max_bin: usize) -> Vec<Vec<f64>> {
    let p = x.first().map_or(0, Vec::len);
    (0..p)
        .map(|j| {
            let mut v: Vec<f64> = x.iter().map(|r| r[j]).collect();
            v.sort_by(f64::total_cmp);
            let mut u = v.clone();
            u.dedup();
            let cuts: Vec<f64> = if u.len() <= max_bin {
                u.windows(2).map(|w| w[0] + (w[1] - w[0]) / 2.0).collect()
            } else {
                let mut c: Vec<f64> = (1..max_bin).map(|k| v[k * v.len() / max_bin]).collect();
                c.dedup();
                c
            };
            cuts
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
struct SplitChoice {
    gain: f64,
    feature: usize,
    bin: usize,
}

struct Leaf {
    node: usize,
    rows: Vec<usize>,
    depth: usize,
    split: Option<SplitChoice>,
}

impl Booster {
    /// Fit on rows `x` with labels `y`.
    pub fn fit(x: &[Vec<f64>], y: &[bool], params: &BoostParams) -> Booster {
        let n = x.len();
        let cuts = bin_cuts(x, params.max_bin);
        let bins: Vec<Vec<usize>> = x
            .iter()
            .map(|r| {
                r.iter()
                    .zip(&cuts)
                    .map(|(&v, c)| c.partition_point(|&t| t < v))
                    .collect()
            })
            .collect();
        let prevalence = (y.iter().filter(|&&b| b).count() as f64 / n as f64).clamp(1e-6, 1.0 - 1e-6);
        let base = (prevalence / (1.0 - prevalence)).ln();
        let mut raw = vec![base; n];
        let mut trees = Vec::with_capacity(params.rounds);
        for _ in 0..params.rounds {
            let (g, h): (Vec<f64>, Vec<f64>) = raw
                .iter()
                .zip(y)
                .map(|(&r, &yi)| {
                    let p = 1.0 / (1.0 + (-r).exp());
                    (p - f64::from(u8::from(yi)), p * (1.0 - p))
                })
                .unzip();
            let tree = grow_tree(&bins, &cuts, &g, &h, params);
            for (i, r) in raw.iter_mut().enumerate() {
                *r += eval(&tree, &x[i]);
            }
            trees.push(tree);
        }
        Booster { base, trees }
    }
}

fn leaf_value(g: f64, h: f64, params: &BoostParams) -> f64 {
    -params.eta * g / (h + params.lambda)
}

fn best_split(
    bins: &[Vec<usize>],
    cuts: &[Vec<f64>],
    rows: &[usize],
    g: &[f64],
    h: &[f64],
    params: &BoostParams,
) -> Option<SplitChoice> {
    let (gt, ht): (f64, f64) = rows.iter().fold((0.0, 0.0), |(a, b), &i| (a + g[i], b + h[i]));
    let score = |gs: f64, hs: f64| gs * gs / (hs + params.lambda);
    let parent = score(gt, ht);
    let mut best: Option<SplitChoice> = None;
    for (f, c) in cuts.iter().enumerate() {
        let nb = c.len() + 1;
        let mut hg = vec![0.0; nb];
        let mut hh = vec![0.0; nb];
        let mut hn = vec![0usize; nb];
        for &i in rows {
            let b = bins[i][f];
            hg[b] += g[i];
            hh[b] += h[i];
            hn[b] += 1;
        }
        let (mut gl, mut hl, mut nl) = (0.0, 0.0, 0usize);
        for b in 0..nb - 1 {
            gl += hg[b];
            hl += hh[b];
            nl += hn[b];
            let nr = rows.len() - nl;
            let hr = ht - hl;
            if nl < params.min_data_in_leaf || nr < params.min_data_in_leaf {
                continue;
            }
            if hl < params.min_child_weight || hr < params.min_child_weight {
                continue;
            }
            let gain = 0.5 * (score(gl, hl) + score(gt - gl, hr) - parent);
            if gain > 1e-12 && best.is_none_or(|s| gain > s.gain) {
                best = Some(SplitChoice {
                    gain,
                    feature: f,
                    bin: b,
                });
            }
        }
    }
    best
}

fn grow_tree(bins: &[Vec<usize>], cuts: &[Vec<f64>], g: &[f64], h: &[f64], params: &BoostParams) -> Vec<Node> {
    let sums = |rows: &[usize]| rows.iter().fold((0.0, 0.0), |(a, b), &i| (a + g[i], b + h[i]));
    let all: Vec<usize> = (0..g.len()).collect();
    let (g0, h0) = sums(&all);
    let mut nodes = vec![Node::Leaf(leaf_value(g0, h0, params))];
    let can_split = |depth: usize| params.max_depth.is_none_or(|d| depth < d);
    let mut leaves = vec![Leaf {
        node: 0,
        split: if can_split(0) {
            best_split(bins, cuts, &all, g, h, params)
        } else {
            None
        },
        rows: all,
        depth: 0,
    }];
    let mut n_leaves = 1;
    while params.max_leaves.is_none_or(|m| n_leaves < m) {
        // best-first: the open leaf with the largest gain (for depth-wise growth, the order does not matter)
        let Some(k) = (0..leaves.len())
            .filter(|&k| leaves[k].split.is_some())
            .max_by(|&a, &b| {
                let ga = leaves[a].split.map_or(0.0, |s| s.gain);
                let gb = leaves[b].split.map_or(0.0, |s| s.gain);
                ga.total_cmp(&gb)
            })
        else {
            break;
        };
        let leaf = leaves.swap_remove(k);
        let Some(s) = leaf.split else { break };
        let (l_rows, r_rows): (Vec<usize>, Vec<usize>) = leaf.rows.iter().partition(|&&i| bins[i][s.feature] <= s.bin);
        let mut children = [0usize; 2];
        for (c, rows) in [l_rows, r_rows].into_iter().enumerate() {
            let (gs, hs) = sums(&rows);
            children[c] = nodes.len();
            nodes.push(Node::Leaf(leaf_value(gs, hs, params)));
            let depth = leaf.depth + 1;
            leaves.push(Leaf {
                node: children[c],
                split: if can_split(depth) {
                    best_split(bins, cuts, &rows, g, h, params)
                } else {
                    None
                },
                rows,
                depth,
            });
        }
        nodes[leaf.node] = Node::Split {
            feature: s.feature,
            threshold: cuts[s.feature][s.bin],
            left: children[0],
            right: children[1],
        };
        n_leaves += 1;
    }
    nodes
}

impl Classifier for Booster {
    fn predict_proba(&self, row: &[f64]) -> f64 {
        let raw = self.base + self.trees.iter().map(|t| eval(t, row)).sum::<f64>();
        1.0 / (1.0 + (-raw).exp())
    }
}
