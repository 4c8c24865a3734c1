//! Statistics against scipy / statsmodels / numpy: reference numbers written by
//! `tests/golden/make_stats_golden.py` into `tests/data/golden/stats_golden.json`.

mod common;

use alnrisk::stats::{self, hypothesis as st};

fn golden() -> serde_json::Value {
    common::golden("stats_golden.json")
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap()
}

fn data() -> (Vec<Vec<f64>>, Vec<bool>) {
    common::golden_xy(&golden())
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

fn vec_f(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(f).collect()
}

fn table(v: &serde_json::Value) -> Vec<Vec<u64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).collect())
        .collect()
}

#[test]
fn mann_whitney_matches_scipy_with_and_without_ties() {
    let (g, (x, y)) = (golden(), data());
    let split = |v: &[f64]| -> (Vec<f64>, Vec<f64>) {
        let a = v.iter().zip(&y).filter(|(_, l)| **l).map(|(s, _)| *s).collect();
        let b = v.iter().zip(&y).filter(|(_, l)| !**l).map(|(s, _)| *s).collect();
        (a, b)
    };
    let x1: Vec<f64> = x.iter().map(|r| r[0]).collect();
    let (a, b) = split(&x1);
    let (u, _, p) = st::mann_whitney(&a, &b);
    assert_eq!(u, f(&g["mannwhitney_x1"][0]));
    close(p, f(&g["mannwhitney_x1"][1]), 1e-8, "Mann-Whitney p");
    let (a, b) = split(&vec_f(&g["ties"]));
    let (u, _, p) = st::mann_whitney(&a, &b);
    assert_eq!(u, f(&g["mannwhitney_ties"][0]));
    close(p, f(&g["mannwhitney_ties"][1]), 1e-8, "Mann-Whitney p with ties");
}

#[test]
fn chi_square_and_fisher_match_scipy() {
    let g = golden();
    for (t, r) in [("table23", "chi2_23"), ("table22", "chi2_22")] {
        let ((stat, df, p), _) = st::chi_square(&table(&g[t]));
        close(stat, f(&g[r][0]), 1e-10, "chi-square statistic");
        assert_eq!(df, f(&g[r][1]));
        close(p, f(&g[r][2]), 1e-8, "chi-square p");
    }
    let t = table(&g["table22"]);
    let p = st::fisher_exact([[t[0][0], t[0][1]], [t[1][0], t[1][1]]]);
    close(p, f(&g["fisher_22"]), 1e-8, "Fisher p");
}

#[test]
fn shapiro_wilk_matches_scipy() {
    let (g, (x, _)) = (golden(), data());
    let x1: Vec<f64> = x.iter().map(|r| r[0]).collect();
    for (v, key) in [(&x1[..], "shapiro_120"), (&x1[..10], "shapiro_10")] {
        let (w, p) = st::shapiro_wilk(v).unwrap();
        close(w, f(&g[key][0]), 1e-10, "Shapiro W");
        close(p, f(&g[key][1]), 1e-8, "Shapiro p");
    }
}

#[test]
fn lasso_at_fixed_lambda_matches_a_tightly_solved_reference() {
    let (g, (_, y)) = (golden(), data());
    let xl: Vec<Vec<f64>> = g["x_lasso"].as_array().unwrap().iter().map(vec_f).collect();
    for (key, reference) in g["lasso"].as_object().unwrap() {
        let lambda: f64 = key.parse().unwrap();
        let fit = stats::lasso::lasso_logistic(&xl, &y, lambda, None);
        let want = vec_f(reference);
        assert!(
            (fit.intercept - want[0]).abs() < 1e-4,
            "λ {lambda} intercept {} vs {}",
            fit.intercept,
            want[0]
        );
        for (j, (&b, &w)) in fit.beta.iter().zip(&want[1..]).enumerate() {
            assert!((b - w).abs() < 1e-4, "λ {lambda} β{j}: ours {b} vs reference {w}");
            assert_eq!(b == 0.0, w == 0.0, "λ {lambda} β{j}: same support");
        }
    }
}

#[test]
fn net_benefit_matches_its_definition_in_numpy() {
    let (g, (x, y)) = (golden(), data());
    let fit = stats::logistic_fit(&x, &y).unwrap();
    let prob: Vec<f64> = x
        .iter()
        .map(|r| 1.0 / (1.0 + (-(fit.coef[0] + r.iter().zip(&fit.coef[1..]).map(|(a, b)| a * b).sum::<f64>())).exp()))
        .collect();
    for (key, want) in g["net_benefit"].as_object().unwrap() {
        let pt: f64 = key.parse().unwrap();
        close(
            stats::evaluation::net_benefit(&prob, &y, pt),
            f(want),
            1e-12,
            "net benefit",
        );
    }
}
