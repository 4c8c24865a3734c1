//! The study's seven classifiers (its Tables 2 and 3), written on shared code with scikit-learn-like defaults and a
//! seed, and cross-validation of any of them.
//!
//! | row | what runs | defaults |
//! |---|---|---|
//! | SVM | [`svm`]: C-SVC, RBF kernel, SMO with second-order working-set selection (Fan, Chen & Lin 2005, as libsvm), Platt probabilities fitted on internal 5-fold decision values (as libsvm's `-b 1`) | C = 1, γ = 1/(p·Var X) (`gamma="scale"`) |
//! | KNN | [`knn`]: k nearest neighbours, Euclidean, uniform weights | k = 5 |
//! | DecisionTree | [`tree`]: CART, Gini impurity, best split | fully grown, min leaf 1 |
//! | RandomForest | [`forest`]: bootstrap CART ensemble, √p features per split, mean of leaf probabilities | 100 trees |
//! | ExtraTrees | [`forest`]: extremely randomised trees (Geurts et al. 2006), no bootstrap, random thresholds | 100 trees |
//! | XGBoost-style | [`boost`]: second-order gradient boosting of log-loss, histogram splits, depth-wise growth — the algorithm of XGBoost's default `hist` method, *not* the XGBoost library | 100 rounds, η 0.3, depth 6, λ 1, min child weight 1, 256 bins |
//! | LightGBM-style | [`boost`]: the same booster with leaf-wise (best-first) growth and LightGBM's defaults — *not* the LightGBM library | 100 rounds, η 0.1, 31 leaves, min 20 per leaf, λ 0, 255 bins |
//!
//! Why not the real XGBoost and LightGBM: both are C++ builds needing cmake ≥ 3.28 and minutes of a 2-core CI
//! budget (`shared/docs/crate-notes.md`); the rows say what they run. `tests/classifiers_golden.rs` checks that
//! every row's test AUC is within 0.05 of its Python counterpart on the same data.

pub mod boost;
pub mod forest;
pub mod knn;
pub mod svm;
pub mod tree;

use crate::stats::evaluation::{ClassificationMetrics, classification_metrics};

/// A fitted binary classifier.
pub trait Classifier: Send + Sync {
    /// Probability of the positive class for one row.
    fn predict_proba(&self, row: &[f64]) -> f64;
}

/// The seven rows of the study's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ClassifierKind {
    /// RBF support vector machine with Platt probabilities.
    Svm,
    /// k nearest neighbours.
    Knn,
    /// CART decision tree.
    DecisionTree,
    /// Random forest.
    RandomForest,
    /// Extremely randomised trees.
    ExtraTrees,
    /// Depth-wise histogram gradient boosting (XGBoost's algorithm, our code).
    XgboostStyle,
    /// Leaf-wise histogram gradient boosting (LightGBM's algorithm, our code).
    LightgbmStyle,
}

impl ClassifierKind {
    /// All seven, in the study's order.
    pub const ALL: [ClassifierKind; 7] = [
        ClassifierKind::Svm,
        ClassifierKind::Knn,
        ClassifierKind::DecisionTree,
        ClassifierKind::RandomForest,
        ClassifierKind::ExtraTrees,
        ClassifierKind::XgboostStyle,
        ClassifierKind::LightgbmStyle,
    ];

    /// Row label in tables: says what really runs.
    pub fn label(self) -> &'static str {
        match self {
            ClassifierKind::Svm => "SVM",
            ClassifierKind::Knn => "KNN",
            ClassifierKind::DecisionTree => "DecisionTree",
            ClassifierKind::RandomForest => "RandomForest",
            ClassifierKind::ExtraTrees => "ExtraTrees",
            ClassifierKind::XgboostStyle => "XGBoost-style GBDT (alnrisk)",
            ClassifierKind::LightgbmStyle => "LightGBM-style GBDT (alnrisk)",
        }
    }

    /// Fit on rows `x` with labels `y`.
    pub fn fit(self, x: &[Vec<f64>], y: &[bool], seed: u64) -> Box<dyn Classifier> {
        match self {
            ClassifierKind::Svm => Box::new(svm::Svc::fit(x, y, 1.0, seed)),
            ClassifierKind::Knn => Box::new(knn::Knn::fit(x, y, 5)),
            ClassifierKind::DecisionTree => Box::new(tree::Tree::fit(x, y, &tree::TreeParams::default(), seed)),
            ClassifierKind::RandomForest => Box::new(forest::Forest::random_forest(x, y, 100, seed)),
            ClassifierKind::ExtraTrees => Box::new(forest::Forest::extra_trees(x, y, 100, seed)),
            ClassifierKind::XgboostStyle => Box::new(boost::Booster::fit(x, y, &boost::BoostParams::xgboost())),
            ClassifierKind::LightgbmStyle => Box::new(boost::Booster::fit(x, y, &boost::BoostParams::lightgbm())),
        }
    }
}

/// Mean and 95 % CI (mean ± t₀.₉₇₅,ₖ₋₁ · sd/√k, clipped to [0, 1] since every metric here is a proportion) of one
/// metric across CV folds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MeanCi {
    /// Mean across folds.
    pub mean: f64,
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
}

impl MeanCi {
    /// From per-fold values.
    pub fn of(values: &[f64]) -> MeanCi {
        use statrs::distribution::{ContinuousCDF, StudentsT};
        let k = values.len() as f64;
        let mean = values.iter().sum::<f64>() / k;
        if values.len() < 2 {
            return MeanCi {
                mean,
                lo: mean,
                hi: mean,
            };
        }
        let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1.0)).sqrt();
        let t = StudentsT::new(0.0, 1.0, k - 1.0)
            .map(|d| d.inverse_cdf(0.975))
            .unwrap_or(1.96);
        let h = t * sd / k.sqrt();
        MeanCi {
            mean,
            lo: (mean - h).max(0.0),
            hi: (mean + h).min(1.0),
        }
    }
}

/// Cross-validated metrics: per metric, mean and 95 % CI across folds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CvMetrics {
    /// ROC AUC.
    pub auc: MeanCi,
    /// Accuracy.
    pub accuracy: MeanCi,
    /// Precision.
    pub precision: MeanCi,
    /// Recall (sensitivity).
    pub recall: MeanCi,
    /// Specificity.
    pub specificity: MeanCi,
    /// F1.
    pub f1: MeanCi,
}

/// Stratified k-fold cross-validation of `kind` at threshold 0.5.
pub fn cross_validate(kind: ClassifierKind, x: &[Vec<f64>], y: &[bool], k: usize, seed: u64) -> CvMetrics {
    let fold = crate::stats::lasso::stratified_folds(y, k, seed);
    let per_fold: Vec<ClassificationMetrics> = (0..k)
        .map(|f| {
            let (tr, te): (Vec<usize>, Vec<usize>) = (0..y.len()).partition(|&i| fold[i] != f);
            let xt: Vec<Vec<f64>> = tr.iter().map(|&i| x[i].clone()).collect();
            let yt: Vec<bool> = tr.iter().map(|&i| y[i]).collect();
            let model = kind.fit(&xt, &yt, seed.wrapping_add(f as u64));
            let p: Vec<f64> = te.iter().map(|&i| model.predict_proba(&x[i])).collect();
            let yv: Vec<bool> = te.iter().map(|&i| y[i]).collect();
            classification_metrics(&p, &yv, 0.5)
        })
        .collect();
    let col = |g: fn(&ClassificationMetrics) -> f64| MeanCi::of(&per_fold.iter().map(g).collect::<Vec<_>>());
    CvMetrics {
        auc: col(|m| m.auc),
        accuracy: col(|m| m.accuracy),
        precision: col(|m| m.precision),
        recall: col(|m| m.recall),
        specificity: col(|m| m.specificity),
        f1: col(|m| m.f1),
    }
}
