//! The LASSO, the nomogram, the bootstrap calibration and the ROC statistics against the R packages clinicians
//! publish with: glmnet, rms and pROC. Reference numbers written by `tests/golden/make_r_golden.R` into
//! `tests/data/golden/r_golden.json` (R and package versions recorded in it). Each test prints the largest
//! difference it saw per quantity (`cargo test --release --test r_golden -- --nocapture`).

mod common;

use std::collections::BTreeMap;

use alnrisk::model::Nomogram;
use alnrisk::stats::evaluation::{bootstrap_calibration, youden_cutoff};
use alnrisk::stats::lasso::{lambda_path, lasso_cv_on_folds};
use alnrisk::stats::{delong, delong_paired, logistic_fit};
use serde_json::Value;

fn golden() -> Value {
    common::golden("r_golden.json")
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

fn num(v: &Value) -> f64 {
    v.as_f64().expect("a number")
}

fn labels(v: &Value) -> Vec<bool> {
    nums(v).into_iter().map(|x| x == 1.0).collect()
}

/// The largest difference seen per quantity, checked against its bound as it goes and printed at the end.
#[derive(Default)]
struct Diffs(BTreeMap<&'static str, (f64, &'static str)>);

impl Diffs {
    /// `|ours − theirs| / max(|theirs|, floor) ≤ rel`.
    fn rel(&mut self, what: &'static str, ours: f64, theirs: f64, rel: f64, floor: f64) {
        let err = (ours - theirs).abs() / theirs.abs().max(floor);
        assert!(
            err <= rel,
            "{what}: ours {ours} vs R {theirs} (relative {err:.2e} > {rel:.0e})"
        );
        self.note(what, err, "relative");
    }

    /// `|ours − theirs| ≤ abs`.
    fn abs(&mut self, what: &'static str, ours: f64, theirs: f64, abs: f64) {
        let err = (ours - theirs).abs();
        assert!(
            err <= abs,
            "{what}: ours {ours} vs R {theirs} (difference {err:.2e} > {abs:.0e})"
        );
        self.note(what, err, "absolute");
    }

    fn note(&mut self, what: &'static str, err: f64, kind: &'static str) {
        let e = self.0.entry(what).or_insert((0.0, kind));
        e.0 = e.0.max(err);
    }
}

impl Drop for Diffs {
    fn drop(&mut self) {
        for (what, (err, kind)) in &self.0 {
            println!("{what}: largest {kind} difference {err:.2e}");
        }
    }
}

#[test]
fn lasso_path_and_cross_validation_match_glmnet_on_the_same_folds() {
    let g = &golden()["glmnet"];
    let x: Vec<Vec<f64>> = g["x"].as_array().unwrap().iter().map(nums).collect();
    let y = labels(&g["y"]);
    let fold: Vec<usize> = nums(&g["foldid"]).into_iter().map(|f| f as usize - 1).collect();
    let r_lambda = nums(&g["lambda"]);
    let mut d = Diffs::default();

    // glmnet's default sequence, before its path stops
    let ours = lambda_path(&x, &y, 100);
    for (a, b) in ours.iter().zip(&r_lambda) {
        d.rel("lambda", *a, *b, 1e-10, 0.0);
    }
    let cv = lasso_cv_on_folds(&x, &y, &fold);
    assert_eq!(cv.lambdas.len(), r_lambda.len(), "the path stops where glmnet's stops");

    // intercept and coefficients along the path: relative to the largest coefficient at that λ, so that a
    // coefficient glmnet holds at zero must be zero here too (to 1e-6 of the fit's scale)
    let a0 = nums(&g["a0"]);
    let beta: Vec<Vec<f64>> = g["beta"].as_array().unwrap().iter().map(nums).collect();
    for (l, fit) in cv.path.iter().enumerate() {
        let scale = (0..beta.len()).map(|j| beta[j][l].abs()).fold(0.0f64, f64::max);
        d.rel("intercept along the path", fit.intercept, a0[l], 1e-6, 1e-3);
        for (j, row) in beta.iter().enumerate() {
            d.rel(
                "coefficients along the path",
                fit.beta[j],
                row[l],
                1e-6,
                scale.max(1e-3),
            );
            assert_eq!(
                fit.beta[j] == 0.0,
                row[l] == 0.0,
                "λ index {l}, column {j}: the same support (ours {}, glmnet {})",
                fit.beta[j],
                row[l]
            );
        }
    }

    // cross-validated deviance and its standard error on the same folds; the chosen λ exactly
    for (a, b) in cv.cv_mean.iter().zip(&nums(&g["cvm"])) {
        d.rel("cv deviance (cvm)", *a, *b, 1e-6, 0.0);
    }
    for (a, b) in cv.cv_se.iter().zip(&nums(&g["cvsd"])) {
        d.rel("cv standard error (cvsd)", *a, *b, 1e-6, 0.0);
    }
    assert_eq!(
        cv.index_min + 1,
        g["index_min"].as_u64().unwrap() as usize,
        "λ.min index"
    );
    assert_eq!(
        cv.index_1se + 1,
        g["index_1se"].as_u64().unwrap() as usize,
        "λ.1se index"
    );
    for (what, index, key) in [
        ("lambda.min", cv.index_min, "lambda_min"),
        ("lambda.1se", cv.index_1se, "lambda_1se"),
    ] {
        d.rel(what, cv.lambdas[index], num(&g[key]), 1e-10, 0.0);
    }
}

/// The rms data set: rows of (radiomics signature, deep signature, LN read), and the outcome.
fn rms_data(g: &Value) -> (Vec<Vec<f64>>, Vec<bool>) {
    let (rad, deep, ln) = (nums(&g["rad"]), nums(&g["deep"]), nums(&g["ln"]));
    let x = (0..rad.len()).map(|i| vec![rad[i], deep[i], ln[i]]).collect();
    (x, labels(&g["y"]))
}

#[test]
fn logistic_regression_and_nomogram_points_match_rms_lrm_and_nomogram() {
    let g = &golden()["rms"];
    let (x, y) = rms_data(g);
    let mut d = Diffs::default();
    let fit = logistic_fit(&x, &y).expect("the model converges");
    for (a, b) in fit.coef.iter().zip(&nums(&g["coef"])) {
        d.rel("lrm coefficients", *a, *b, 1e-6, 0.0);
    }
    for (a, b) in fit.se.iter().zip(&nums(&g["se"])) {
        d.rel("lrm standard errors", *a, *b, 1e-6, 0.0);
    }
    let names = ["radiomics_signature", "deep_signature", "mri_ln_status"].map(String::from);
    let nomogram = Nomogram::new(&names, &fit.coef, &fit.se, &fit.p, &x, 0.5);
    // points at each end of each axis (rms: the axis over the predictor's range)
    for (q, r_name) in nomogram.predictors.iter().zip(["rad", "deep", "ln"]) {
        let ends = &g["axis_ends"][r_name];
        let (xs, pts) = (nums(&ends["x"]), nums(&ends["points"]));
        assert_eq!((q.min, q.max), (xs[0], xs[1]), "{r_name}: the same axis");
        for (v, p) in xs.iter().zip(&pts) {
            d.abs("points at the axis ends", nomogram.points_of(q, *v), *p, 1e-4);
        }
        let per_unit = (pts[1] - pts[0]) / (xs[1] - xs[0]);
        d.rel(
            "points per unit of each predictor",
            q.coefficient * nomogram.points_per_unit,
            per_unit,
            1e-6,
            0.0,
        );
    }
    // the scale: points per unit of linear predictor, and the linear predictor at 0 points
    let logit = |p: f64| (p / (1.0 - p)).ln();
    let lp0 = logit(nomogram.probability_at(0.0));
    let sc = num(&g["points_per_unit_lp"]);
    d.rel(
        "points per unit of linear predictor",
        nomogram.points_per_unit,
        sc,
        1e-6,
        0.0,
    );
    d.rel(
        "linear predictor at 0 points",
        lp0,
        num(&g["lp_at_zero_points"]),
        1e-6,
        0.0,
    );
    // the total-points → probability axis: exact here; rms places each fun.at probability by linear
    // interpolation of the inverse over 1,000 values of the linear predictor across lp.at, whose error is at
    // most Δp²/8 · max |d²logit/dp²| on the interval (in units of the linear predictor), times the scale
    let lp_axis = nums(&g["lp_axis"]);
    let grid: Vec<f64> = (0..1000)
        .map(|i| lp_axis[0] + (lp_axis[1] - lp_axis[0]) * i as f64 / 999.0)
        .collect();
    for (t, p) in nums(&g["total_points_at"]).iter().zip(&nums(&g["probability_at"])) {
        let ours = (logit(*p) - lp0) * nomogram.points_per_unit;
        let k = grid.partition_point(|&v| 1.0 / (1.0 + (-v).exp()) < *p).clamp(1, 999);
        let (pa, pb) = (1.0 / (1.0 + (-grid[k - 1]).exp()), 1.0 / (1.0 + (-grid[k]).exp()));
        let curvature = |q: f64| (2.0 * q - 1.0).abs() / (q * q * (1.0 - q) * (1.0 - q));
        let bound = (pb - pa).powi(2) / 8.0 * curvature(pa).max(curvature(pb)) * sc;
        d.abs("total points at each fun.at probability", ours, *t, bound + 1e-9);
        d.rel(
            "probability at rms's fun.at positions",
            nomogram.probability_at(*t),
            *p,
            1e-4,
            0.0,
        );
    }
    // each case's total points
    for (row, total) in x.iter().zip(&nums(&g["case_total_points"])) {
        let values: BTreeMap<String, f64> = names.iter().cloned().zip(row.iter().copied()).collect();
        let r = nomogram.evaluate(&values).unwrap();
        d.abs("each case's total points", r.total_points, *total, 1e-4);
    }
}

#[test]
fn bootstrap_calibration_matches_rms_calibrate_apparent_exactly_and_corrected_within_monte_carlo_error() {
    let root = golden();
    let (g, c) = (&root["rms"], &root["calibrate"]);
    let (x, y) = rms_data(g);
    let mut d = Diffs::default();
    let b = c["B"].as_u64().unwrap() as usize;
    let ours = bootstrap_calibration(&x, &y, b, 11).expect("the model converges");
    let predy = nums(&c["predy"]);
    assert_eq!(ours.predicted.len(), predy.len());
    for (a, r) in ours.predicted.iter().zip(&predy) {
        d.rel("calibration grid (predy)", *a, *r, 1e-7, 0.0);
    }
    // the apparent curve is deterministic: R's lowess(iter = 0) and approx, on predictions that agree to the
    // precision of the two logistic fits (lrm's coefficients agree with ours to a few 1e-9)
    for (a, r) in ours.apparent.iter().zip(&nums(&c["apparent"])) {
        d.abs("apparent calibration (calibrated.orig)", *a, *r, 1e-7);
    }
    // the corrected curve is random: ours (B replicates, our generator) against the mean of R's runs; each
    // estimate carries the Monte-Carlo error of one run (R's standard deviation across runs), the mean of R's
    // runs that over √runs, so their difference has a standard deviation of sd·√(1 + 1/runs): allowed 4 of them
    let runs = c["runs"].as_u64().unwrap() as f64;
    for ((a, m), sd) in ours
        .corrected
        .iter()
        .zip(&nums(&c["corrected_mean"]))
        .zip(&nums(&c["corrected_sd"]))
    {
        let sigma = sd * (1.0 + 1.0 / runs).sqrt();
        let err = (a - m).abs();
        assert!(
            err <= 4.0 * sigma,
            "bias-corrected calibration: ours {a} vs R's mean {m} (difference {err:.2e} > 4σ = {:.2e})",
            4.0 * sigma
        );
        d.note("bias-corrected calibration, in Monte-Carlo σ", err / sigma, "σ");
    }
    assert_eq!(ours.replicates, b, "no replicate failed");
}

#[test]
fn auc_delong_intervals_paired_test_and_youden_cutoff_match_proc() {
    let g = &golden()["proc"];
    let y = labels(&g["y"]);
    let mut d = Diffs::default();
    for (score, auc, ci) in [
        ("lp", "auc_lp", "ci_lp"),
        ("deep", "auc_deep", "ci_deep"),
        ("tied", "auc_tied", "ci_tied"),
    ] {
        let s = nums(&g[score]);
        let ours = delong(&s, &y);
        let ci = nums(&g[ci]);
        d.rel("auc", ours.auc, num(&g[auc]), 1e-10, 0.0);
        d.rel("ci.auc(method = \"delong\")", ours.ci95.0, ci[0], 1e-10, 0.0);
        d.rel("ci.auc(method = \"delong\")", ours.ci95.1, ci[2], 1e-10, 0.0);
        d.rel("auc (ci.auc's middle value)", ours.auc, ci[1], 1e-10, 0.0);
    }
    let lp = nums(&g["lp"]);
    d.rel(
        "DeLong variance",
        delong(&lp, &y).variance,
        num(&g["var_lp"]),
        1e-10,
        0.0,
    );
    let (z, p) = delong_paired(&lp, &nums(&g["deep"]), &y);
    d.rel(
        "roc.test(method = \"delong\", paired) z",
        z,
        num(&g["test_z"]),
        1e-10,
        0.0,
    );
    d.rel(
        "roc.test(method = \"delong\", paired) p",
        p,
        num(&g["test_p"]),
        1e-10,
        0.0,
    );

    // Youden: pROC reports the midpoint between two consecutive distinct scores; alnrisk reports the observed
    // score from which a case is called positive (score ≥ cutoff). The same cases are called positive: our
    // cutoff is the smallest score above pROC's threshold, with the same sensitivity and specificity.
    for (score, best) in [("lp", "youden_lp"), ("tied", "youden_tied")] {
        let s = nums(&g[score]);
        let b = &g[best];
        let thresholds = nums(&b["threshold"]);
        assert_eq!(
            thresholds.len(),
            1,
            "{score}: one best threshold (a tie would list several)"
        );
        let ours = youden_cutoff(&s, &y);
        let above = s
            .iter()
            .copied()
            .filter(|v| *v > thresholds[0])
            .fold(f64::INFINITY, f64::min);
        assert_eq!(
            ours, above,
            "{score}: the smallest score above pROC's threshold {}",
            thresholds[0]
        );
        let m = alnrisk::stats::evaluation::classification_metrics(&s, &y, ours);
        d.rel("Youden sensitivity", m.recall, nums(&b["sensitivity"])[0], 1e-10, 0.0);
        d.rel(
            "Youden specificity",
            m.specificity,
            nums(&b["specificity"])[0],
            1e-10,
            0.0,
        );
    }

    // A tie for the best J: pROC lists every tied threshold; alnrisk takes the highest (the most specific call,
    // `stats::evaluation::youden_cutoff`), which is pROC's last.
    let tie = &g["youden_tie"];
    let (s, y) = (nums(&tie["score"]), labels(&tie["y"]));
    let thresholds = nums(&tie["threshold"]);
    assert_eq!(thresholds, [1.5, 3.5], "pROC lists both tied thresholds");
    let j = |k: usize| nums(&tie["sensitivity"])[k] + nums(&tie["specificity"])[k] - 1.0;
    assert_eq!(j(0), j(1), "a tie");
    assert_eq!(
        youden_cutoff(&s, &y),
        4.0,
        "the smallest score above pROC's highest tied threshold"
    );
}
