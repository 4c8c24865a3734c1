//! `alnrisk fit` and `alnrisk predict` end to end on the synthetic cohort, the signed bundle, and the cohort
//! table's bad inputs. The VGG here is the reduced-width network (`--vgg-scale 8`) so the suite stays fast on two
//! cores; the full VGG-16 run is the benchmark (README "Fitting").

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use alnrisk::model::{Bundle, Trust, bundle};

fn synth(dir: &Path, patients: usize, matrix: usize, slices: usize) {
    let out = common::bin()
        .args(["synth", "--patients", &patients.to_string(), "--seed", "7"])
        .args(["--matrix", &matrix.to_string(), "--slices", &slices.to_string()])
        .arg("--out")
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn fit(cohort: &Path, out: &Path, report: &Path, extra: &[&str]) -> std::process::Output {
    common::bin()
        .arg("fit")
        .arg("--cohort")
        .arg(cohort)
        .arg("--out")
        .arg(out)
        .arg("--report")
        .arg(report)
        .args(["--vgg-scale", "8", "--views", "2", "--epochs", "30"])
        .args(extra)
        .output()
        .unwrap()
}

/// `alnrisk predict` of one examination with a signed bundle: its JSON.
fn predict(bundle: &Path, image: &Path, mask: &Path, public_key: &Path) -> serde_json::Value {
    let p = common::bin()
        .arg("predict")
        .arg("--bundle")
        .arg(bundle)
        .arg("--image")
        .arg(image)
        .arg("--mask")
        .arg(mask)
        .arg("--trusted-key")
        .arg(public_key)
        .output()
        .unwrap();
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
    serde_json::from_slice(&p.stdout).unwrap()
}

fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let h = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r
        .records()
        .map(|x| x.unwrap().iter().map(String::from).collect())
        .collect();
    (h, rows)
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

fn find_chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH")?
                .to_str()?
                .split(':')
                .map(|d| Path::new(d).join(name))
                .find(|p| p.exists())
        })
}

#[test]
fn fit_on_the_synthetic_cohort_recovers_the_planted_model_and_writes_a_signed_bundle() {
    let dir = common::tmp("fit", "e2e");
    let data = dir.join("cohort");
    synth(&data, 151, 96, 24);
    let (secret, public) = bundle::keygen(&dir.join("site")).unwrap();
    let (b, r) = (dir.join("bundle"), dir.join("report"));
    let out = fit(
        &data.join("cohort.csv"),
        &b,
        &r,
        &[
            "--key",
            secret.to_str().unwrap(),
            "--clinical-candidates",
            "mri_ln_status",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{stdout}");

    // the nomogram's test AUC is printed and at least that of either signature
    assert!(stdout.contains("test     nomogram"), "{stdout}");
    assert!(stdout.contains("out-of-fold (pre-validated)"), "{stdout}");
    let key = bundle::read_verifying_key(&public).unwrap();
    let loaded = Bundle::load(&b, &Trust::Key(key)).unwrap();
    assert!(loaded.signed);
    let m = &loaded.manifest;
    // provenance: the cohort file by its hash, every case accounted for, the options the fit ran with
    let p = m.provenance.as_ref().expect("the bundle records its provenance");
    use sha2::Digest;
    let cohort_sha = hex::encode(sha2::Sha256::digest(std::fs::read(data.join("cohort.csv")).unwrap()));
    assert_eq!(p.cohort_sha256, cohort_sha);
    assert_eq!(p.inputs_sha256.len(), 64);
    assert_eq!(p.options["clinical_candidates"], "mri_ln_status");
    assert_eq!(p.options["lasso_lambda"], "lambda.min");
    let md = std::fs::read_to_string(r.join("report.md")).unwrap();
    assert!(
        md.contains(&format!("cohort CSV sha256 {cohort_sha}")),
        "the report shows the provenance"
    );
    assert!(
        md.contains("## Agreement with reference implementations")
            && md.contains("glmnet 4.1 glmnet and cv.glmnet")
            && md.contains("rms calibrate(method = \"boot\")")
            && md.contains("pROC 1.18 auc"),
        "the report says which R functions its figures agree with"
    );
    let test = m.performance["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["cohort"] == "test")
        .unwrap();
    let auc = |k: &str| test["auc"][k]["auc"].as_f64();
    let nomo = auc("nomogram").unwrap();
    for s in ["radiomics_signature", "deep_signature"] {
        if let Some(a) = auc(s) {
            assert!(nomo >= a, "test AUC: nomogram {nomo} < {s} {a}");
        }
    }
    assert!(nomo > 0.75, "nomogram test AUC {nomo}");

    // the selected radiomics features are the ones the planted traits drive
    let sig = m.signatures.radiomics.as_ref().expect("a radiomics signature");
    let (th, truth) = read_csv(&data.join("truth.csv"));
    let (dh, design) = read_csv(&r.join("data/design.csv"));
    assert_eq!(design.len(), 151);
    let trait_col = |name: &str| th.iter().position(|h| h == name).unwrap();
    let by_id: BTreeMap<&str, &Vec<String>> = truth.iter().map(|t| (t[0].as_str(), t)).collect();
    let traits = ["size", "irregularity", "heterogeneity", "rim"];
    let trait_values: Vec<Vec<f64>> = traits
        .iter()
        .map(|t| {
            design
                .iter()
                .map(|d| by_id[d[0].as_str()][trait_col(t)].parse().unwrap())
                .collect()
        })
        .collect();
    for f in &sig.features {
        let c = dh.iter().position(|h| h == f).unwrap();
        let v: Vec<f64> = design.iter().map(|d| d[c].parse().unwrap()).collect();
        let best = trait_values.iter().map(|t| pearson(&v, t).abs()).fold(0.0, f64::max);
        assert!(best > 0.3, "{f}: |r| with every planted trait ≤ {best:.2}");
    }
    let c = dh.iter().position(|h| h == "radiomics_signature").unwrap();
    let score: Vec<f64> = design.iter().map(|d| d[c].parse().unwrap()).collect();
    let visible: Vec<f64> = (0..design.len())
        .map(|i| {
            1.6 * trait_values[0][i] + 1.4 * trait_values[1][i] + 1.1 * trait_values[2][i] + 1.2 * trait_values[3][i]
        })
        .collect();
    let r_sig = pearson(&score, &visible);
    assert!(
        r_sig > 0.6,
        "radiomics signature vs planted image traits: r = {r_sig:.2}"
    );

    // tables, figures and the design matrix
    for f in [
        "report.html",
        "report.md",
        "table1_training.csv",
        "table2_training_cv.csv",
        "table3_test.csv",
        "dca.csv",
    ] {
        assert!(r.join(f).exists(), "{f}");
    }
    let html = std::fs::read_to_string(r.join("report.html")).unwrap();
    assert!(html.matches("<svg").count() >= 8, "figures inline in report.html");
    assert!(
        !html.contains("http://") || !html.contains("<script src"),
        "no network resources"
    );
    assert!(r.join("figures/fig5_dca.png").exists() && r.join("figures/fig4a_nomogram.svg").exists());

    // predict gives the same radiomics signature as fit, and both LN scenarios without a read
    let (_, cohort) = read_csv(&data.join("cohort.csv"));
    let case = cohort.iter().find(|row| row[13] == "test").unwrap();
    let j = predict(&b, &data.join(&case[1]), &data.join(&case[2]), &public);
    let row = design.iter().find(|d| d[0] == case[0]).unwrap();
    let fitted: f64 = row[c].parse().unwrap();
    let served = j["signatures"]["radiomics_signature"].as_f64().unwrap();
    assert!((served - fitted).abs() < 1e-9, "predict {served} vs fit {fitted}");
    // ... and the same deep signature: the model is fitted on the Q8_0 deep features the bundle serves
    let deep_sig = m.signatures.deep.as_ref().expect("a deep signature");
    assert!(!deep_sig.features.is_empty());
    let cd = dh.iter().position(|h| h == "deep_signature").unwrap();
    let fitted: f64 = row[cd].parse().unwrap();
    let served = j["signatures"]["deep_signature"].as_f64().unwrap();
    assert!(
        (served - fitted).abs() < 1e-6 * (1.0 + fitted.abs()),
        "deep signature: predict {served} vs fit {fitted}"
    );
    if m.nomogram.predictors.iter().any(|q| q.name == "mri_ln_status") {
        assert!(j["result"].is_null());
        let neg = j["scenarios"]["if_ln_negative"]["probability"].as_f64().unwrap();
        let pos = j["scenarios"]["if_ln_positive"]["probability"].as_f64().unwrap();
        assert!(pos > neg, "a positive MRI read raises the risk");
    }

    // acquisitions: the training cohort's are the synthetic phantom's grid (0.7 × 0.7 mm in-plane, 2 mm slices),
    // and the test case, acquired the same way, raises no acquisition flag
    let acq = &m.acquisition_ranges;
    let range = |name: &str| (acq[name].min, acq[name].max);
    assert_eq!(range("pixel_spacing_mm"), (0.7, 0.7));
    assert_eq!(range("slice_spacing_mm"), (2.0, 2.0));
    let (lo, hi) = range("roi_gray_levels");
    assert!(lo >= 2.0 && hi > lo, "gray levels {lo}..{hi}");
    let (lo, hi) = range("image_intensity_p99");
    assert!(lo > 0.0 && hi > lo, "intensity p99 {lo}..{hi}");
    let flags = |j: &serde_json::Value| -> Vec<String> {
        j["out_of_distribution"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        flags(&j).iter().all(|f| !f.starts_with("acquisition")),
        "{:?}",
        flags(&j)
    );
    assert!(md.contains("## Acquisitions") && md.contains("pixel_spacing_mm: 0.7 / 0.7 / 0.7"));
    assert!(
        md.contains(" test case(s) lie outside the training cohort's acquisitions"),
        "the report says how many test cases the daemon would flag"
    );
    // ... the same examination as if acquired with half the in-plane resolution and written on an intensity scale
    // 8× lower is flagged on both counts, and still answered
    let loaded = alnrisk::case::load_case(
        &data.join(&case[1]),
        &data.join(&case[2]),
        &alnrisk::case::CaseInputs {
            phase: m.phase,
            roi: m.roi.options(),
        },
    )
    .unwrap();
    let (mut image, mut mask) = (loaded.image, loaded.mask);
    for g in [&mut image.geometry, &mut mask.geometry] {
        g.spacing[0] *= 2.0;
        g.spacing[1] *= 2.0;
    }
    image.data.iter_mut().for_each(|v| *v /= 8.0);
    let other = dir.join("other-protocol");
    std::fs::create_dir_all(&other).unwrap();
    alnrisk::io::nrrd::write(&other.join("image.nrrd"), &image).unwrap();
    alnrisk::io::nrrd::write(&other.join("mask.nrrd"), &mask).unwrap();
    let o = predict(&b, &other.join("image.nrrd"), &other.join("mask.nrrd"), &public);
    let f = flags(&o);
    assert!(
        f.iter()
            .any(|f| f.starts_with("acquisition pixel_spacing_mm: 1.4 outside [0.7, 0.7]")),
        "{f:?}"
    );
    assert!(
        f.iter().any(|f| f.starts_with("acquisition image_intensity_p99: ")),
        "{f:?}"
    );
    assert!(
        !f.iter().any(|f| f.starts_with("acquisition slice_spacing_mm")),
        "{f:?}"
    );
    assert!(o["result"].is_object() || o["scenarios"]["if_ln_negative"].is_object());

    // tampering: one byte of the manifest, one byte of the weights, a missing signature
    let tampered = dir.join("tampered");
    std::fs::create_dir_all(&tampered).unwrap();
    for f in std::fs::read_dir(&b).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, tampered.join(f.file_name().unwrap())).unwrap();
    }
    let manifest = tampered.join("bundle.json");
    let mut bytes = std::fs::read(&manifest).unwrap();
    let at = bytes.iter().position(|&c| c == b'1').unwrap();
    bytes[at] = b'2';
    std::fs::write(&manifest, &bytes).unwrap();
    let e = Bundle::load(&tampered, &Trust::Key(key)).unwrap_err().to_string();
    assert!(e.contains("signature does not verify"), "{e}");
    std::fs::copy(b.join("bundle.json"), &manifest).unwrap();
    let gguf = tampered.join(&m.vgg.quantized);
    let mut w = std::fs::read(&gguf).unwrap();
    let last = w.len() - 1;
    w[last] ^= 1;
    std::fs::write(&gguf, &w).unwrap();
    let e = Bundle::load(&tampered, &Trust::Key(key)).unwrap_err().to_string();
    assert!(e.contains("does not match the manifest"), "{e}");
    std::fs::copy(b.join(&m.vgg.quantized), &gguf).unwrap();
    std::fs::remove_file(tampered.join("bundle.sig")).unwrap();
    let e = Bundle::load(&tampered, &Trust::Key(key)).unwrap_err().to_string();
    assert!(e.contains("unsigned bundle"), "{e}");
    assert!(Bundle::load(&tampered, &Trust::AllowUnsigned).is_ok());
    // a manifest naming a layer the network does not have is refused, not served as another layer
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(
        text.contains("\"layer\": \"fc7\""),
        "the bundle's layer is written as fc7"
    );
    std::fs::write(&manifest, text.replace("\"layer\": \"fc7\"", "\"layer\": \"fc8\"")).unwrap();
    let e = Bundle::load(&tampered, &Trust::AllowUnsigned).unwrap_err().to_string();
    assert!(e.contains("bundle.json") && e.contains("fc8"), "{e}");

    // a rerun reads every case from the cache
    let again = fit(
        &data.join("cohort.csv"),
        &dir.join("bundle2"),
        &dir.join("report2"),
        &["--clinical-candidates", "mri_ln_status"],
    );
    let s = String::from_utf8_lossy(&again.stdout);
    assert!(
        again.status.success() && s.contains("151 cases extracted (151 from the cache)"),
        "{s}"
    );
    // ... and fits exactly the same model as the first run, which computed every case (the cache round-trips
    // every value exactly; only the creation time differs)
    let manifest_of = |dir: &Path| {
        let mut m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("bundle.json")).unwrap()).unwrap();
        m.as_object_mut().unwrap().remove("created");
        m
    };
    assert_eq!(manifest_of(&b), manifest_of(&dir.join("bundle2")));

    // the report renders in headless Chromium
    if std::env::var_os("ALNRISK_NO_BROWSER").is_none() {
        let chromium =
            find_chromium().expect("chromium not found: apt-get install chromium (or set ALNRISK_NO_BROWSER=1)");
        let shot = dir.join("report.png");
        let status = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
            ])
            .args([
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", dir.join("chromium-profile").display()))
            .arg(format!("--screenshot={}", shot.display()))
            .arg("--window-size=1200,2400")
            .arg(format!("file://{}", r.join("report.html").display()))
            .output()
            .unwrap();
        assert!(
            shot.exists(),
            "no screenshot: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        let png = std::fs::read(&shot).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 50_000,
            "screenshot {} bytes",
            png.len()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn small_cohort(name: &str, patients: usize) -> (PathBuf, String) {
    let dir = common::tmp("fit", name);
    synth(&dir, patients, 64, 16);
    let text = std::fs::read_to_string(dir.join("cohort.csv")).unwrap();
    (dir, text)
}

fn fit_error(dir: &Path, csv: &str) -> String {
    let path = dir.join("edited.csv");
    std::fs::write(&path, csv).unwrap();
    let out = fit(&path, &dir.join("b"), &dir.join("r"), &[]);
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn bad_cohort_tables_are_refused_with_the_row() {
    let (dir, text) = small_cohort("bad", 24);
    let lines: Vec<&str> = text.lines().collect();
    // a missing column
    let no_label = text.replace("aln_status", "aln");
    assert!(fit_error(&dir, &no_label).contains("row 1: missing column(s) aln_status"));
    // a label that is not 0/1 (row 3 = second case)
    let mut l = lines.clone();
    let bad = l[2].replacen(",0,", ",2,", 1).replacen(",1,", ",2,", 1);
    l[2] = &bad;
    assert!(fit_error(&dir, &(l.join("\n") + "\n")).contains("row 3: aln_status must be 0 or 1"));
    // a duplicate id
    let mut l = lines.clone();
    l.push(lines[1]);
    let e = fit_error(&dir, &(l.join("\n") + "\n"));
    assert!(
        e.contains(&format!("row {}: duplicate id", lines.len() + 1)) && e.contains("first on row 2"),
        "{e}"
    );
    // a missing file
    let missing = text.replacen("SYN0003/roi/seg.dcm", "SYN0003/roi/nope.dcm", 1);
    let e = fit_error(&dir, &missing);
    assert!(e.contains("row 4: roi") && e.contains("does not exist"), "{e}");
    // a single-class training set
    let one_class: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 || !l.ends_with(",train") {
                return l.to_string();
            }
            let mut f: Vec<&str> = l.split(',').collect();
            f[3] = "0";
            f.join(",")
        })
        .collect();
    let e = fit_error(&dir, &(one_class.join("\n") + "\n"));
    assert!(e.contains("single class"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_case_that_fails_extraction_is_listed_not_dropped() {
    let (dir, _) = small_cohort("failcase", 60);
    std::fs::write(dir.join("SYN0005/roi/seg.dcm"), b"not a DICOM file at all").unwrap();
    let out = fit(&dir.join("cohort.csv"), &dir.join("b"), &dir.join("r"), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, failed) = read_csv(&dir.join("r/failed_cases.csv"));
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0][0], "SYN0005");
    assert!(failed[0][2].contains("seg.dcm"), "{:?}", failed[0]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 case(s) failed feature extraction"), "{stdout}");
    let (_, design) = read_csv(&dir.join("r/data/design.csv"));
    assert_eq!(design.len(), 59);
    let _ = std::fs::remove_dir_all(&dir);
}
