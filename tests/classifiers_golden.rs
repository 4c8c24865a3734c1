//! The seven classifiers against scikit-learn / XGBoost / LightGBM on the same data: test AUC within 0.05.
//! Reference numbers from `tests/golden/make_classifier_golden.py` (`tests/data/golden/classifiers_golden.json`).

mod common;

use alnrisk::classify::{ClassifierKind, cross_validate};
use alnrisk::stats::auc;

fn golden() -> serde_json::Value {
    common::golden("classifiers_golden.json")
}

fn dataset(g: &serde_json::Value) -> (Vec<Vec<f64>>, Vec<bool>, usize) {
    let (x, y) = common::golden_xy(g);
    (x, y, g["train"].as_u64().unwrap() as usize)
}

#[test]
fn every_row_is_within_0_05_test_auc_of_its_python_counterpart() {
    let g = golden();
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for name in ["wide", "study"] {
        let (x, y, ntrain) = dataset(&g[name]);
        for kind in ClassifierKind::ALL {
            let model = kind.fit(&x[..ntrain], &y[..ntrain], 0);
            let p: Vec<f64> = x[ntrain..].iter().map(|r| model.predict_proba(r)).collect();
            let ours = auc(&p, &y[ntrain..]);
            let key = format!("{kind:?}");
            let theirs = g[name]["auc"][&key].as_f64().unwrap();
            report.push(format!(
                "{name:6} {:32} ours {ours:.4} reference {theirs:.4}",
                kind.label()
            ));
            if (ours - theirs).abs() > 0.05 {
                failures.push(key);
            }
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(failures.is_empty(), "outside 0.05: {failures:?}");
}

#[test]
fn cross_validation_gives_finite_confidence_intervals_around_the_mean() {
    let (x, y, ntrain) = dataset(&golden()["study"]);
    let cv = cross_validate(ClassifierKind::Svm, &x[..ntrain], &y[..ntrain], 5, 1);
    for m in [cv.auc, cv.accuracy, cv.precision, cv.recall, cv.specificity, cv.f1] {
        assert!(
            m.lo <= m.mean && m.mean <= m.hi && m.lo.is_finite() && m.hi.is_finite(),
            "{m:?}"
        );
    }
    assert!(cv.auc.mean > 0.75, "{:?}", cv.auc);
}
