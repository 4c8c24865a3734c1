//! The fit report: `report.html` (self-contained: inline SVG figures and CSS, no network), `report.md`, every table
//! as CSV, the figures as SVG and PNG under `figures/`, and the per-case design matrix under `data/` so that anyone
//! with pandas or R can recompute every number.

use std::fmt::Write as _;
use std::path::Path;

use super::plots::{self, Chart, Mark, Series};
use super::{FitOutcome, dca_thresholds};
use crate::classify::MeanCi;
use crate::error::{Error, Result};

/// A table that renders as Markdown, CSV and HTML.
struct Table {
    title: String,
    stem: String,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

pub use crate::io::csv_cell;

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

impl Table {
    fn new(title: &str, stem: &str, headers: &[&str]) -> Table {
        Table {
            title: title.into(),
            stem: stem.into(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }
    fn markdown(&self) -> String {
        let mut s = format!(
            "### {}\n\n| {} |\n|{}\n",
            self.title,
            self.headers.join(" | "),
            "---|".repeat(self.headers.len())
        );
        for r in &self.rows {
            let _ = writeln!(s, "| {} |", r.join(" | "));
        }
        s + "\n"
    }
    fn csv(&self) -> String {
        let mut s = self.headers.iter().map(|h| csv_cell(h)).collect::<Vec<_>>().join(",") + "\n";
        for r in &self.rows {
            s += &(r.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(",") + "\n");
        }
        s
    }
    fn html(&self) -> String {
        let mut s = format!("<h3>{}</h3>\n<table>\n<tr>", html_escape(&self.title));
        for h in &self.headers {
            let _ = write!(s, "<th>{}</th>", html_escape(h));
        }
        s += "</tr>\n";
        for r in &self.rows {
            s += "<tr>";
            for c in r {
                let _ = write!(s, "<td>{}</td>", html_escape(c));
            }
            s += "</tr>\n";
        }
        s + "</table>\n"
    }
}

fn ci(m: &MeanCi) -> String {
    format!("{:.3} ({:.3}–{:.3})", m.mean, m.lo, m.hi)
}

fn p_fmt(p: f64) -> String {
    if p < 0.001 { "<0.001".into() } else { format!("{p:.3}") }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Write the report folder.
pub fn write_report(dir: &Path, o: &FitOutcome) -> Result<()> {
    let figs = dir.join("figures");
    let data = dir.join("data");
    for d in [dir, figs.as_path(), data.as_path()] {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let mut tables = Vec::new();

    // Table 1
    for t in &o.table1 {
        let mut tab = Table::new(
            &format!(
                "Table 1 — clinical characteristics, {} cohort (ALN+ n = {}, ALN− n = {})",
                t.cohort, t.n_positive, t.n_negative
            ),
            &format!("table1_{}", t.cohort),
            &["factor", "level", "ALN+", "ALN−", "test", "p"],
        );
        for r in &t.rows {
            tab.rows.push(vec![
                r.variable.clone(),
                r.level.clone().unwrap_or_default(),
                r.positive.clone(),
                r.negative.clone(),
                r.test.clone(),
                r.p.map(p_fmt).unwrap_or_default(),
            ]);
        }
        tables.push(tab);
    }
    // Tables 2 and 3: the same columns, CV mean (CI) on training and single values on test
    const CLASSIFIER_COLUMNS: [&str; 8] = [
        "signature",
        "model",
        "AUC",
        "accuracy",
        "precision",
        "recall",
        "specificity",
        "F1",
    ];
    let mut t2 = Table::new(
        "Table 2 — classifiers, training cohort, stratified 5-fold CV: mean (95 % CI across folds), threshold 0.5",
        "table2_training_cv",
        &CLASSIFIER_COLUMNS,
    );
    let mut t3 = Table::new(
        "Table 3 — classifiers refitted on all training data, test cohort, threshold 0.5",
        "table3_test",
        &CLASSIFIER_COLUMNS,
    );
    for r in &o.classifiers {
        let (cv, m) = (&r.cv, &r.test);
        let cv_cells = [cv.auc, cv.accuracy, cv.precision, cv.recall, cv.specificity, cv.f1].map(|c| ci(&c));
        let test_cells = [m.auc, m.accuracy, m.precision, m.recall, m.specificity, m.f1].map(|v| format!("{v:.3}"));
        for (table, cells) in [(&mut t2, cv_cells), (&mut t3, test_cells)] {
            table
                .rows
                .push([r.modality.clone(), r.model.clone()].into_iter().chain(cells).collect());
        }
    }
    tables.push(t2);
    tables.push(t3);
    // nomogram coefficients
    let mut tc = Table::new(
        "Nomogram — multivariable logistic regression (training cohort)",
        "nomogram_coefficients",
        &["term", "β", "SE", "z", "p", "OR", "OR 95 % CI"],
    );
    for c in &o.coefficients {
        tc.rows.push(vec![
            c.term.clone(),
            format!("{:.4}", c.coefficient),
            format!("{:.4}", c.se),
            format!("{:.3}", c.z),
            p_fmt(c.p),
            format!("{:.3}", c.odds_ratio),
            format!("{:.3}–{:.3}", c.or_ci.0, c.or_ci.1),
        ]);
    }
    tables.push(tc);
    // evaluation
    let mut te = Table::new(
        &format!(
            "Discrimination and calibration (Youden cutoff from training: {:.3})",
            o.manifest.nomogram.cutoff
        ),
        "evaluation",
        &[
            "cohort",
            "score",
            "AUC (95 % DeLong CI)",
            "DeLong p vs nomogram",
            "HL χ² (df), p",
            "accuracy",
            "sensitivity",
            "specificity",
        ],
    );
    for e in &o.evaluations {
        for (name, a) in &e.auc {
            let nomo = name == "nomogram";
            te.rows.push(vec![
                e.cohort.clone(),
                name.clone(),
                format!("{:.3} ({:.3}–{:.3})", a.auc, a.ci95.0, a.ci95.1),
                e.delong_vs_nomogram.get(name).map(|p| p_fmt(*p)).unwrap_or_default(),
                if nomo {
                    format!(
                        "{:.2} ({:.0}), {}",
                        e.hosmer_lemeshow.0,
                        e.hosmer_lemeshow.1,
                        p_fmt(e.hosmer_lemeshow.2)
                    )
                } else {
                    String::new()
                },
                if nomo {
                    format!("{:.3}", e.at_cutoff.accuracy)
                } else {
                    String::new()
                },
                if nomo {
                    format!("{:.3}", e.at_cutoff.recall)
                } else {
                    String::new()
                },
                if nomo {
                    format!("{:.3}", e.at_cutoff.specificity)
                } else {
                    String::new()
                },
            ]);
        }
    }
    tables.push(te);
    // selection
    let mut ts = Table::new(
        "Selected features (LASSO, non-zero coefficients on z-scored features)",
        "selected_features",
        &["signature", "feature", "coefficient", "training mean", "training sd"],
    );
    for s in &o.selections {
        if let Some(sig) = &s.signature {
            for k in 0..sig.features.len() {
                ts.rows.push(vec![
                    s.name.clone(),
                    sig.features[k].clone(),
                    format!("{:.5}", sig.coefficients[k]),
                    format!("{:.6e}", sig.means[k]),
                    format!("{:.6e}", sig.sds[k]),
                ]);
            }
            ts.rows.push(vec![
                s.name.clone(),
                "(intercept)".into(),
                format!("{:.5}", sig.intercept),
                String::new(),
                String::new(),
            ]);
        }
    }
    tables.push(ts);
    // failed cases
    let mut tf = Table::new(
        "Cases that failed feature extraction (not used)",
        "failed_cases",
        &["id", "cohort row", "reason"],
    );
    for f in &o.failed {
        tf.rows.push(vec![f.id.clone(), f.row.to_string(), f.reason.clone()]);
    }
    tables.push(tf);
    // timings
    let mut tt = Table::new("Time per stage", "timings", &["stage", "seconds"]);
    for (s, t) in &o.timings {
        tt.rows.push(vec![s.clone(), format!("{t:.1}")]);
    }
    tables.push(tt);

    // DCA table
    let mut dca = String::from("threshold");
    for k in o.decision_curves.keys() {
        dca += &format!(",{}", csv_cell(k));
    }
    dca += "\n";
    for (i, t) in dca_thresholds().iter().enumerate() {
        dca += &format!("{t:.2}");
        for v in o.decision_curves.values() {
            dca += &format!(",{:?}", v[i]);
        }
        dca += "\n";
    }
    write(&dir.join("dca.csv"), &dca)?;
    for t in &tables {
        write(&dir.join(format!("{}.csv", t.stem)), &t.csv())?;
    }

    // design matrix
    let c = &o.cases;
    let mut design = String::from("id,cohort,aln_status");
    for k in c.clinical.keys() {
        design += &format!(",{}", csv_cell(k));
    }
    for k in c.scores.keys().chain(c.selected.keys()) {
        // a clinical predictor's 0/1 coding sits beside its raw column
        let name = if c.clinical.contains_key(k) {
            format!("{k}_coded")
        } else {
            k.clone()
        };
        design += &format!(",{}", csv_cell(&name));
    }
    design += "\n";
    for i in 0..c.ids.len() {
        design += &format!(
            "{},{},{}",
            csv_cell(&c.ids[i]),
            if c.train[i] { "train" } else { "test" },
            u8::from(c.labels[i])
        );
        for v in c.clinical.values() {
            design += &format!(",{}", csv_cell(&v[i]));
        }
        for v in c.scores.values().chain(c.selected.values()) {
            design += &format!(",{:?}", v[i]);
        }
        design += "\n";
    }
    write(&data.join("design.csv"), &design)?;

    let figures = write_figures(&figs, o)?;

    // Markdown and HTML
    let mut md = String::from("# alnrisk fit report\n\n");
    let mut html = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>alnrisk fit report</title>\n<style>\
         body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;margin:1em 0;font-size:13px}\
         td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}th{background:#f2f2f2}figure{margin:1.5em 0}\
         figcaption{font-size:13px;color:#555}.note{background:#fff8e1;padding:8px 12px;border-left:4px solid #f0b400}</style></head><body>\n\
         <h1>alnrisk fit report</h1>\n",
    );
    let m = &o.manifest;
    let head = format!(
        "Bundle {} (version {}, manifest sha256 {}), made {} by alnrisk {}. Split: {:?}.",
        m.bundle_id, m.version, o.bundle_sha256, m.created, m.alnrisk_version, o.split
    );
    md += &format!("{head}\n\n");
    let _ = writeln!(html, "<p>{}</p>", html_escape(&head));
    if let Some((worst, mean)) = o.q8_probability_change {
        let q = format!(
            "The model is fitted on the quantized network's deep features, which it serves (Q8_0 dense layers; on the CPU 8-bit convolutions after the first); with the f32 network instead the test cases' nomogram probability would move by at most {worst:.2e} (mean {mean:.2e})."
        );
        md += &format!("{q}\n\n");
        let _ = writeln!(html, "<p>{}</p>", html_escape(&q));
    }
    if let Some(p) = &m.provenance {
        let lines: Vec<String> = [
            format!("cohort CSV sha256 {}", p.cohort_sha256),
            format!(
                "inputs sha256 {} (every used case's id, cohort and input key)",
                p.inputs_sha256
            ),
        ]
        .into_iter()
        .chain(p.options.iter().map(|(k, v)| format!("{k}: {v}")))
        // where the CNN started: weights trained for another task (an imported network) or none; either way the
        // deep signature's AUC on a synthetic cohort says nothing clinical
        .chain(std::iter::once(format!(
            "VGG-16 starting weights: {} (what a starting network was trained on says nothing of this model's \
             clinical validity; on SYNTHETIC data no AUC does)",
            m.vgg.init
        )))
        .collect();
        md += "## Provenance\n\n";
        html += "<h2>Provenance</h2><ul>\n";
        for l in &lines {
            md += &format!("- {l}\n");
            let _ = writeln!(html, "<li>{}</li>", html_escape(l));
        }
        md += "\n";
        html += "</ul>\n";
    }
    if !m.acquisition_ranges.is_empty() {
        // the intended-use envelope: what the model was validated on, and what the daemon flags
        let intro = format!(
            "The training cohort's acquisitions (min / median / max); a served series outside them is flagged as \
             out of distribution (spacings with a {:.0}% tolerance).",
            crate::model::acquisition::SPACING_TOLERANCE * 100.0
        );
        md += &format!("## Acquisitions\n\n{intro}\n\n");
        let _ = writeln!(html, "<h2>Acquisitions</h2><p>{}</p><ul>", html_escape(&intro));
        for (name, r) in &m.acquisition_ranges {
            let l = format!("{name}: {} / {} / {}", r.min, r.p50, r.max);
            md += &format!("- {l}\n");
            let _ = writeln!(html, "<li>{}</li>", html_escape(&l));
        }
        md += "\n";
        html += "</ul>\n";
    }
    md += "## Agreement with reference implementations\n\n";
    html += "<h2>Agreement with reference implementations</h2><ul>\n";
    for (figure, reference) in AGREES_WITH {
        md += &format!("- {figure}: {reference}\n");
        let _ = writeln!(html, "<li>{}: {}</li>", html_escape(figure), html_escape(reference));
    }
    md += "\n";
    html += "</ul>\n";
    md += "## Notes\n\n";
    html += "<h2>Notes</h2><div class=\"note\"><ul>\n";
    for n in &o.notes {
        md += &format!("- {n}\n");
        let _ = writeln!(html, "<li>{}</li>", html_escape(n));
    }
    md += "\n## Tables\n\n";
    html += "</ul></div>\n<h2>Tables</h2>\n";
    for t in &tables {
        md += &t.markdown();
        html += &t.html();
    }
    md += "## Figures\n\n";
    html += "<h2>Figures</h2>\n";
    for (stem, caption) in &figures {
        md += &format!("![{caption}](figures/{stem}.svg)\n\n*{caption}*\n\n");
        let svg_path = figs.join(format!("{stem}.svg"));
        let svg = std::fs::read_to_string(&svg_path).map_err(|e| Error::io(&svg_path, e))?;
        let svg = svg.trim_start_matches(|c| c != '<');
        let svg = svg
            .strip_prefix("<?xml")
            .map_or(svg, |rest| rest.split_once("?>").map_or(rest, |(_, r)| r));
        let _ = writeln!(
            html,
            "<figure>{svg}<figcaption>{}</figcaption></figure>",
            html_escape(caption)
        );
    }
    html += "<p>Data for every number: <code>data/design.csv</code> and the CSV tables beside this file.</p></body></html>\n";
    write(&dir.join("report.md"), &md)?;
    write(&dir.join("report.html"), &html)?;
    Ok(())
}

/// Which reference implementation each figure and table agrees with, and to what precision: the bounds the golden
/// tests hold them to (`tests/r_golden.rs` against R, `tests/stats_golden.rs` and `tests/classifiers_golden.rs`
/// against scipy, statsmodels and scikit-learn, on the committed golden files).
pub const AGREES_WITH: &[(&str, &str)] = &[
    (
        "LASSO (λ path, coefficients, cross-validated deviance and its SE)",
        "glmnet 4.1 glmnet and cv.glmnet (family = \"binomial\", standardize = FALSE, the same foldid): 1e-6 \
         relative; λ.min and λ.1se at the same index",
    ),
    (
        "Nomogram coefficients and standard errors",
        "rms 6.5 lrm: 1e-6 relative (and statsmodels Logit)",
    ),
    (
        "Nomogram points (Figure 4a) and the total-points → probability axis",
        "rms nomogram(maxscale = 100) with each axis over its training range: points to 1e-4, the scale to 1e-6 \
         relative",
    ),
    (
        "Calibration curve (Figure 4c)",
        "rms calibrate(method = \"boot\"): the apparent curve to 1e-7; the bias-corrected one within 4 \
         Monte-Carlo standard deviations at B = 1000 (it is random)",
    ),
    (
        "ROC AUC, its DeLong 95% CI and the paired DeLong test",
        "pROC 1.18 auc, ci.auc(method = \"delong\") and roc.test(method = \"delong\", paired = TRUE): 1e-10 \
         relative",
    ),
    (
        "Youden cutoff",
        "pROC coords(\"best\", best.method = \"youden\"): the same cases called positive, with the same \
         sensitivity and specificity to 1e-10 (pROC reports the midpoint between two scores, alnrisk the score \
         from which a case is positive; on a tie pROC lists every threshold, alnrisk takes the highest)",
    ),
    (
        "Decision curve (net benefit)",
        "TP/n − FP/n · pt/(1 − pt) (Vickers & Elkin 2006), checked on a hand-worked example and against numpy",
    ),
    (
        "t-tests, Mann–Whitney, χ², Fisher, Shapiro–Wilk, Hosmer–Lemeshow",
        "scipy and statsmodels (tests/stats_golden.rs)",
    ),
];

/// All figures; returns (stem, caption) in report order.
fn write_figures(dir: &Path, o: &FitOutcome) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    // Figure 2: LASSO path and CV deviance
    for s in &o.selections {
        let (Some(cv), Some(_)) = (&s.cv, &s.signature) else {
            continue;
        };
        let ll: Vec<f64> = cv.lambdas.iter().map(|l| l.ln()).collect();
        let (x0, x1) = (
            ll.iter().copied().fold(f64::INFINITY, f64::min),
            ll.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        let p = cv.path.first().map_or(0, |f| f.beta.len());
        let mut series: Vec<Series> = (0..p)
            .filter(|&j| cv.path.iter().any(|f| f.beta[j] != 0.0))
            .map(|j| Series {
                label: String::new(),
                points: ll.iter().zip(&cv.path).map(|(&x, f)| (x, f.beta[j])).collect(),
                mark: Mark::Line,
            })
            .collect();
        series.truncate(40);
        let (ylo, yhi) = cv
            .path
            .iter()
            .flat_map(|f| f.beta.iter())
            .fold((0.0f64, 0.0f64), |(a, b), &v| (a.min(v), b.max(v)));
        let lines = vec![
            (ll[cv.index_min], "λ.min".to_string()),
            (ll[cv.index_1se], "λ.1se".to_string()),
        ];
        let stem = format!("fig2a_lasso_path_{}", s.name);
        plots::write_chart(
            dir,
            &stem,
            &Chart {
                title: format!("LASSO coefficient path — {}", s.name),
                x_label: "log λ".into(),
                y_label: "coefficient".into(),
                x: (x0, x1),
                y: (ylo - 0.05 * (yhi - ylo + 1e-9), yhi + 0.05 * (yhi - ylo + 1e-9)),
                series,
                vlines: lines.clone(),
                diagonal: false,
            },
        )?;
        out.push((
            stem,
            format!(
                "Figure 2a — LASSO coefficient path of the {} features that passed the t-test",
                s.name
            ),
        ));
        let lo: Vec<(f64, f64)> = ll
            .iter()
            .zip(cv.cv_mean.iter().zip(&cv.cv_se))
            .map(|(&x, (m, e))| (x, m - e))
            .collect();
        let hi: Vec<(f64, f64)> = ll
            .iter()
            .zip(cv.cv_mean.iter().zip(&cv.cv_se))
            .map(|(&x, (m, e))| (x, m + e))
            .collect();
        let ymin = lo.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let ymax = hi.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        let stem = format!("fig2b_cv_deviance_{}", s.name);
        plots::write_chart(
            dir,
            &stem,
            &Chart {
                title: format!("{}-fold CV binomial deviance — {}", cv.folds, s.name),
                x_label: "log λ".into(),
                y_label: "deviance".into(),
                x: (x0, x1),
                y: (ymin - 0.02, ymax + 0.02),
                series: vec![
                    Series {
                        label: "mean".into(),
                        points: ll.iter().copied().zip(cv.cv_mean.iter().copied()).collect(),
                        mark: Mark::Points,
                    },
                    Series {
                        label: "mean ± 1 SE".into(),
                        points: lo,
                        mark: Mark::Dashed,
                    },
                    Series {
                        label: String::new(),
                        points: hi,
                        mark: Mark::Dashed,
                    },
                ],
                vlines: lines,
                diagonal: false,
            },
        )?;
        out.push((
            stem,
            format!(
                "Figure 2b — cross-validated deviance along the λ path ({}), λ.min and λ.1se",
                s.name
            ),
        ));
    }
    let c = &o.cases;
    let te: Vec<usize> = (0..c.ids.len()).filter(|&i| !c.train[i]).collect();
    let tr: Vec<usize> = (0..c.ids.len()).filter(|&i| c.train[i]).collect();
    let y_te: Vec<bool> = te.iter().map(|&i| c.labels[i]).collect();
    // Figure 3: seven classifiers on the test cohort, per signature
    let modalities: Vec<String> = {
        let mut m: Vec<String> = o.classifiers.iter().map(|r| r.modality.clone()).collect();
        m.dedup();
        m
    };
    for modality in modalities {
        if y_te.iter().all(|&b| b) || y_te.iter().all(|&b| !b) {
            break;
        }
        let rows: Vec<&super::ClassifierRow> = o.classifiers.iter().filter(|r| r.modality == modality).collect();
        let best = rows
            .iter()
            .max_by(|a, b| a.cv.auc.mean.total_cmp(&b.cv.auc.mean))
            .map(|r| r.model.clone())
            .unwrap_or_default();
        let series = rows
            .iter()
            .map(|r| Series {
                label: format!("{} (AUC {:.3})", r.model, r.test.auc),
                points: plots::roc_points(&r.test_prob, &y_te),
                mark: Mark::Line,
            })
            .collect();
        let stem = format!("fig3_roc_test_{modality}");
        plots::write_chart(
            dir,
            &stem,
            &roc_chart(&format!("ROC, test cohort — {modality} features"), series),
        )?;
        out.push((stem, format!("Figure 3 — ROC of the seven classifiers on the {modality} features in the test cohort (best in training CV: {best})")));
    }
    // Figure 4: nomogram, ROC of nomogram and signatures, calibration
    plots::write_nomogram(dir, "fig4a_nomogram", &o.manifest.nomogram)?;
    out.push((
        "fig4a_nomogram".into(),
        "Figure 4a — the nomogram (points scale as rms::nomogram)".into(),
    ));
    for (name, idx) in [("training", &tr), ("test", &te)] {
        let y: Vec<bool> = idx.iter().map(|&i| c.labels[i]).collect();
        if y.iter().all(|&b| b) || y.iter().all(|&b| !b) {
            continue;
        }
        let series = ["nomogram", "radiomics_signature", "deep_signature"]
            .iter()
            .filter_map(|s| c.scores.get(*s).map(|v| (s, v)))
            .map(|(s, v)| {
                let sv: Vec<f64> = idx.iter().map(|&i| v[i]).collect();
                Series {
                    label: format!("{s} (AUC {:.3})", crate::stats::auc(&sv, &y)),
                    points: plots::roc_points(&sv, &y),
                    mark: Mark::Line,
                }
            })
            .collect();
        let stem = format!("fig4b_roc_{name}");
        plots::write_chart(dir, &stem, &roc_chart(&format!("ROC, {name} cohort"), series))?;
        out.push((
            stem,
            format!("Figure 4b — ROC of the nomogram and the signatures, {name} cohort"),
        ));
    }
    let mut cal_series = Vec::new();
    if let Some(b) = &o.calibration_curve {
        cal_series.push(Series {
            label: "apparent (training)".into(),
            points: b.predicted.iter().copied().zip(b.apparent.iter().copied()).collect(),
            mark: Mark::Dashed,
        });
        cal_series.push(Series {
            label: format!("bias-corrected (B = {})", b.replicates),
            points: b.predicted.iter().copied().zip(b.corrected.iter().copied()).collect(),
            mark: Mark::Line,
        });
    }
    for e in &o.evaluations {
        cal_series.push(Series {
            label: format!("deciles, {}", e.cohort),
            points: e.calibration.iter().map(|g| (g.predicted, g.observed)).collect(),
            mark: Mark::Points,
        });
    }
    plots::write_chart(
        dir,
        "fig4c_calibration",
        &Chart {
            title: "Calibration of the nomogram".into(),
            x_label: "predicted probability".into(),
            y_label: "observed fraction".into(),
            x: (0.0, 1.0),
            y: (0.0, 1.0),
            series: cal_series,
            vlines: Vec::new(),
            diagonal: true,
        },
    )?;
    out.push((
        "fig4c_calibration".into(),
        "Figure 4c — calibration: bootstrap bias-corrected curve (rms::calibrate style) and decile groups".into(),
    ));
    // Figure 5: DCA
    let th = dca_thresholds();
    let series: Vec<Series> = o
        .decision_curves
        .iter()
        .map(|(k, v)| Series {
            label: k.clone(),
            points: th.iter().copied().zip(v.iter().copied()).collect(),
            mark: if k.starts_with("treat") {
                Mark::Dashed
            } else {
                Mark::Line
            },
        })
        .collect();
    let ymax = o.decision_curves.values().flatten().copied().fold(0.0f64, f64::max);
    plots::write_chart(
        dir,
        "fig5_dca",
        &Chart {
            title: "Decision curves, total cohort".into(),
            x_label: "threshold probability".into(),
            y_label: "net benefit".into(),
            x: (0.0, 1.0),
            y: (-0.05, ymax + 0.05),
            series,
            vlines: Vec::new(),
            diagonal: false,
        },
    )?;
    out.push((
        "fig5_dca".into(),
        "Figure 5 — decision curve analysis: net benefit of the nomogram, each signature, treat-all and treat-none"
            .into(),
    ));
    Ok(out)
}

fn roc_chart(title: &str, series: Vec<Series>) -> Chart {
    Chart {
        title: title.into(),
        x_label: "1 − specificity".into(),
        y_label: "sensitivity".into(),
        x: (0.0, 1.0),
        y: (0.0, 1.0),
        series,
        vlines: Vec::new(),
        diagonal: true,
    }
}
