//! The synthetic cohort: determinism, the planted signal, vendor layouts and ROI formats that read back to the
//! same data, DICOM conformance (dciodvfy, pydicom) and the console replay styles.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use alnrisk::ingest::{PhaseSelector, scan_dir, single_series};
use alnrisk::radiomics::{Settings, extract};
use alnrisk::roi::{self, RoiOptions};
use alnrisk::synth::cohort::{CohortSpec, RoiFormat, Vendor, draw_patient, write_cohort};
use alnrisk::synth::phantom::{Kinetic, PhantomSpec};
use alnrisk::synth::replay::{ReplayStyle, replay};

fn small(patients: usize, vendor: Vendor, roi: RoiFormat) -> CohortSpec {
    CohortSpec {
        patients,
        seed: 7,
        vendor,
        roi,
        image: PhantomSpec {
            matrix: 80,
            slices: 20,
            phases: 3,
            snr: 20.0,
        },
        roi_jitter: true,
    }
}

fn all_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    alnrisk::ingest::list_files(dir)
        .unwrap()
        .into_iter()
        .map(|f| (f.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&f).unwrap()))
        .collect()
}

#[test]
fn same_seed_gives_byte_identical_files() {
    let (a, b) = (common::tmp("synth", "det-a"), common::tmp("synth", "det-b"));
    write_cohort(&small(3, Vendor::Ge, RoiFormat::Seg), &a).unwrap();
    // a different thread count must not change anything
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    pool.install(|| write_cohort(&small(3, Vendor::Ge, RoiFormat::Seg), &b).unwrap());
    let (fa, fb) = (all_bytes(&a), all_bytes(&b));
    assert!(fa.len() > 3 * 60);
    assert_eq!(fa.len(), fb.len());
    for ((pa, ba), (pb, bb)) in fa.iter().zip(&fb) {
        assert_eq!(pa, pb);
        assert!(ba == bb, "{} differs", pa.display());
    }
    let c = common::tmp("synth", "det-c");
    let mut other = small(3, Vendor::Ge, RoiFormat::Seg);
    other.seed = 8;
    write_cohort(&other, &c).unwrap();
    assert_ne!(all_bytes(&c)[5].1, fa[5].1, "another seed should give other images");
}

#[test]
fn planted_signal_is_recovered_from_the_true_traits_at_seed_7() {
    // the 151 patients of `alnrisk synth --patients 151 --seed 7` (traits and labels do not depend on images)
    let pats: Vec<_> = (0..151).map(|i| draw_patient(7, i, true).0).collect();
    let x: Vec<Vec<f64>> = pats
        .iter()
        .map(|p| {
            let t = &p.traits;
            vec![
                t.size,
                t.irregularity,
                t.heterogeneity,
                f64::from(u8::from(t.rim)),
                f64::from(u8::from(t.kinetic == Kinetic::Washout)),
                f64::from(u8::from(t.kinetic == Kinetic::Persistent)),
            ]
        })
        .collect();
    let y: Vec<bool> = pats.iter().map(|p| p.aln).collect();
    let beta = alnrisk::stats::logistic(&x, &y).expect("logistic fit");
    let lp: Vec<f64> = x
        .iter()
        .map(|r| beta[0] + r.iter().zip(&beta[1..]).map(|(a, b)| a * b).sum::<f64>())
        .collect();
    let auc = alnrisk::stats::auc(&lp, &y);
    let positives = y.iter().filter(|&&v| v).count();
    let train = pats.iter().filter(|p| p.cohort == "train").count();
    println!("seed 7: {positives}/151 ALN+, train {train}, fitted AUC {auc:.3}, coefficients {beta:?}");
    assert!((0.85..=0.97).contains(&auc), "AUC {auc}");
    // the planted effects are all recovered with the right sign
    assert!(
        beta[1] > 0.0 && beta[2] > 0.0 && beta[3] > 0.0 && beta[4] > 0.0 && beta[5] > 0.0 && beta[6] < 0.0,
        "{beta:?}"
    );
    assert!((55..=95).contains(&positives), "{positives}");
    assert!((90..=122).contains(&train), "{train}");
}

fn load(dir: &Path, id: &str, roi_file: &str) -> (alnrisk::image::Volume<f64>, alnrisk::roi::Mask) {
    let dce = dir.join(id).join("dce");
    let s = single_series(&dce, &scan_dir(&dce).unwrap()).unwrap();
    let img = PhaseSelector::FirstPostContrast.load(&s).unwrap();
    let mask = roi::load(&dir.join(id).join("roi").join(roi_file), &s, &RoiOptions::default()).unwrap();
    (img, mask)
}

#[test]
fn vendors_and_roi_formats_read_back_to_the_same_image_and_features() {
    let mut features = Vec::new();
    let mut images = Vec::new();
    for (vendor, roi_format, file) in [
        (Vendor::Ge, RoiFormat::Seg, "seg.dcm"),
        (Vendor::Ge, RoiFormat::Nifti, "tumour.nii.gz"),
        (Vendor::Ge, RoiFormat::Rtstruct, "rtstruct.dcm"),
        (Vendor::Siemens, RoiFormat::Seg, "seg.dcm"),
        (Vendor::Enhanced, RoiFormat::Seg, "seg.dcm"),
    ] {
        let dir = common::tmp("synth", &format!("{vendor:?}-{roi_format:?}"));
        write_cohort(&small(1, vendor, roi_format), &dir).unwrap();
        let (img, mask) = load(&dir, "SYN0001", file);
        let ex = extract(&dir, &img, &dir, &mask.volume, &Settings::default()).unwrap();
        images.push(img.data);
        features.push((format!("{vendor:?}/{roi_format:?}"), ex.features));
    }
    for i in 1..images.len() {
        assert_eq!(images[i], images[0], "{} image differs from GE", features[i].0);
        assert_eq!(
            features[i].1, features[0].1,
            "{} features differ from GE/SEG",
            features[i].0
        );
    }
}

#[test]
fn cohort_csv_has_the_site_schema() {
    let dir = common::tmp("synth", "schema");
    write_cohort(&small(4, Vendor::Ge, RoiFormat::Seg), &dir).unwrap();
    let text = std::fs::read_to_string(dir.join("cohort.csv")).unwrap();
    let mut lines = text.lines();
    assert!(
        std::fs::read_to_string(dir.join("README.txt"))
            .unwrap()
            .starts_with("SYNTHETIC DATA")
    );
    assert_eq!(
        lines.next().unwrap(),
        "id,series_dir,roi,aln_status,mri_ln_status,age,tumor_size_cm,histology,er,pr,her2,ki67,exam_date,cohort"
    );
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        assert_eq!(f.len(), 14, "{l}");
        assert!(dir.join(f[1]).is_dir() && dir.join(f[2]).is_file(), "{l}");
        assert!(f[3] == "0" || f[3] == "1");
        assert!(f[0].starts_with("SYN"));
        assert!(f[13] == "train" || f[13] == "test");
    }
    assert!(
        std::fs::read_to_string(dir.join("truth.csv"))
            .unwrap()
            .starts_with("id,size,irregularity")
    );
}

fn tool(name: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn dciodvfy_reports_no_errors_for_mr_seg_and_rtstruct() {
    assert!(
        tool("dciodvfy"),
        "dciodvfy (Debian dicom3tools) is required; .ci/run installs it"
    );
    let dir = common::tmp("synth", "dciodvfy");
    write_cohort(&small(1, Vendor::Ge, RoiFormat::Seg), &dir.join("seg")).unwrap();
    write_cohort(&small(1, Vendor::Ge, RoiFormat::Rtstruct), &dir.join("rt")).unwrap();
    let mr = alnrisk::ingest::list_files(&dir.join("seg/SYN0001/dce")).unwrap()[0].clone();
    for f in [
        mr,
        dir.join("seg/SYN0001/roi/seg.dcm"),
        dir.join("rt/SYN0001/roi/rtstruct.dcm"),
    ] {
        let out = Command::new("dciodvfy").arg(&f).output().unwrap();
        let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
        let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("Error")).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", f.display());
    }
}

#[test]
fn pydicom_reads_every_file_without_warnings() {
    let ok = Command::new("python3")
        .args(["-c", "import pydicom"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "python3 with pydicom is required; .ci/run installs it");
    let dir = common::tmp("synth", "pydicom");
    for (sub, vendor, roi_format) in [
        ("ge", Vendor::Ge, RoiFormat::Seg),
        ("rt", Vendor::Siemens, RoiFormat::Rtstruct),
        ("en", Vendor::Enhanced, RoiFormat::Seg),
    ] {
        write_cohort(&small(1, vendor, roi_format), &dir.join(sub)).unwrap();
    }
    let script = "import sys, glob, warnings\nwarnings.simplefilter('error')\nimport pydicom\nn = 0\nfor f in sorted(glob.glob(sys.argv[1] + '/**/*.dcm', recursive=True)):\n    d = pydicom.dcmread(f)\n    if 'PixelData' in d: d.PixelData\n    n += 1\nprint(n)\n";
    let out = Command::new("python3").args(["-c", script]).arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let n: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(n, 60 + 1 + (3 * 20 + 1) + (1 + 1));
}

#[test]
fn replay_styles_end_with_identical_files() {
    let dir = common::tmp("synth", "replay");
    write_cohort(&small(1, Vendor::Ge, RoiFormat::Seg), &dir.join("cohort")).unwrap();
    let exam = dir.join("cohort/SYN0001");
    for style in [ReplayStyle::Atomic, ReplayStyle::SlowWrite, ReplayStyle::Partial] {
        let to = dir.join(format!("export-{style:?}"));
        let written = replay(&exam, &to, Duration::from_millis(0), style).unwrap();
        assert_eq!(written.len(), 61);
        assert_eq!(all_bytes(&to), all_bytes(&exam), "{style:?}");
        // no temporary names are left behind
        assert!(
            alnrisk::ingest::list_files(&to)
                .unwrap()
                .iter()
                .all(|f| !f.to_string_lossy().ends_with(".part"))
        );
    }
}

#[test]
fn parity_runs_and_says_the_data_are_synthetic() {
    let out = Command::new(env!("CARGO_BIN_EXE_alnrisk"))
        .arg("parity")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SYNTHETIC DATA") && text.contains("UNTRAINED"), "{text}");
    assert!(text.contains("| SYN0003 |"), "{text}");
}
