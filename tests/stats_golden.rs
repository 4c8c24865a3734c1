//! Statistics against scipy / statsmodels / numpy: reference numbers written by
//! `tests/golden/make_stats_golden.py` into `tests/data/golden/stats_golden.json`.

use alnrisk::stats::{self, hypothesis as st};

fn golden() -> serde_json::Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden/stats_golden.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap()
}

fn data() -> (Vec<Vec<f64>>, Vec<bool>) {
    let g = golden();
    let x = g["x"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(f).collect())
        .collect();
    let y = g["y"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64() == Some(1))
        .collect();
    (x, y)
}

fn close(ours: f64, theirs: f64, rel: f64, what: &str) {
    let err = (ours - theirs).abs() / theirs.abs().max(1e-300);
    assert!(err <= rel, "{what}: ours {ours} vs reference {theirs} (rel {err:.2e})");
}

#[test]
fn t_tests_match_scipy() {
    let (g, (x, y)) = (golden(), data());
    let a: Vec<f64> = x.iter().zip(&y).filter(|(_, l)| **l).map(|(r, _)| r[0]).collect();
    let b: Vec<f64> = x.iter().zip(&y).filter(|(_, l)| !**l).map(|(r, _)| r[0]).collect();
    let (t, _, p) = st::t_test(&a, &b, false);
    close(t, f(&g["ttest_student"][0]), 1e-10, "Student t");
    close(p, f(&g["ttest_student"][1]), 1e-8, "Student p");
    let (t, df, p) = st::t_test(&a, &b, true);
    close(t, f(&g["ttest_welch"][0]), 1e-10, "Welch t");
    close(df, f(&g["ttest_welch"][2]), 1e-10, "Welch df");
    close(p, f(&g["ttest_welch"][1]), 1e-8, "Welch p");
}

#[test]
fn logistic_regression_matches_statsmodels_logit() {
    let (g, (x, y)) = (golden(), data());
    let fit = stats::logistic_fit(&x, &y).unwrap();
    for k in 0..4 {
        close(fit.coef[k], f(&g["logit_coef"][k]), 1e-6, "coef");
        close(fit.se[k], f(&g["logit_se"][k]), 1e-6, "se");
        close(fit.z[k], f(&g["logit_z"][k]), 1e-6, "z");
        close(fit.p[k], f(&g["logit_p"][k]), 1e-6, "p");
    }
}

#[test]
fn auc_delong_and_hosmer_lemeshow_match_the_references() {
    let (g, (x, y)) = (golden(), data());
    let fit = stats::logistic_fit(&x, &y).unwrap();
    let lp: Vec<f64> = x
        .iter()
        .map(|r| fit.coef[0] + r.iter().zip(&fit.coef[1..]).map(|(a, b)| a * b).sum::<f64>())
        .collect();
    let x1: Vec<f64> = x.iter().map(|r| r[0]).collect();
    let d = stats::delong(&lp, &y);
    close(d.auc, f(&g["auc_lp"]), 1e-12, "AUC of the linear predictor");
    close(stats::auc(&x1, &y), f(&g["auc_x1"]), 1e-12, "AUC of x1");
    close(d.variance, f(&g["var_lp"]), 1e-12, "DeLong variance");
    close(
        stats::delong(&x1, &y).variance,
        f(&g["var_x1"]),
        1e-12,
        "DeLong variance x1",
    );
    let (z, p) = stats::delong_paired(&lp, &x1, &y);
    close(z, f(&g["delong_paired"][0]), 1e-9, "paired DeLong z");
    close(p, f(&g["delong_paired"][1]), 1e-8, "paired DeLong p");
    let prob: Vec<f64> = lp.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect();
    let (h, df, p) = st::hosmer_lemeshow(&prob, &y, 10);
    assert_eq!(df, 8.0);
    close(h, f(&g["hl"][0]), 1e-7, "HL statistic");
    close(p, f(&g["hl"][1]), 1e-7, "HL p");
}
