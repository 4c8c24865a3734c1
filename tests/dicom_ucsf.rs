//! The real examination UCSF-BR-06 (TCIA Breast-MRI-NACT-Pilot, CC BY 3.0): assembly against golden numbers
//! from pydicom (`tests/golden/make_ucsf_geometry.py`), SEG alignment, and radiomics straight from DICOM
//! against PyRadiomics 3.1.0 (phase 2, and the subtraction 2 − 1), within 1e-6 relative.

use std::path::{Path, PathBuf};

use alnrisk::ingest::{PhaseRule, PhaseSelector, scan_dir, single_series};
use alnrisk::radiomics::{Settings, extract};
use alnrisk::roi::{self, RoiOptions};

fn data(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(p)
}

fn series_dir() -> PathBuf {
    data("tcia-breast-mri-nact-pilot/UCSF-BR-06/image_dce_3dfgre_orig")
}

fn seg_path() -> PathBuf {
    data("tcia-breast-mri-nact-pilot/UCSF-BR-06/mask/1-1.dcm")
}

fn golden() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(data("golden/ucsf_br06_geometry.json")).unwrap()).unwrap()
}

#[test]
fn assembles_three_phases_of_sixty_slices_with_pydicom_geometry() {
    let g = golden();
    let scan = scan_dir(&series_dir()).unwrap();
    assert!(scan.problems.is_empty(), "{:?}", scan.problems);
    let s = single_series(&series_dir(), &scan).unwrap();
    assert_eq!(s.phases.len(), g["phases"].as_u64().unwrap() as usize);
    assert!(s.phases.iter().all(|p| p.len() == 60));
    // AcquisitionNumber (1/2/2) must have been rejected; ContentTime or repeated positions split it
    assert!(
        matches!(s.rule, PhaseRule::ContentTime | PhaseRule::RepeatedPosition),
        "{:?}",
        s.rule
    );
    let f = |v: &serde_json::Value| v.as_f64().unwrap();
    for d in 0..3 {
        assert!(
            (s.geometry.spacing[d] - f(&g["spacing"][d])).abs() < 1e-9,
            "spacing {:?}",
            s.geometry.spacing
        );
        assert!(
            (s.geometry.origin[d] - f(&g["origin"][d])).abs() < 1e-9,
            "origin {:?}",
            s.geometry.origin
        );
        for c in 0..3 {
            assert!((s.geometry.direction[d][c] - f(&g["direction"][d][c])).abs() < 1e-12);
        }
    }
    assert_eq!(s.geometry.size, [256, 256, 60]);
    // phase p at slice k is the instance pydicom ranks p-th at that position
    for (k, numbers) in g["instance_numbers_by_slice"].as_array().unwrap().iter().enumerate() {
        for (p, n) in numbers.as_array().unwrap().iter().enumerate() {
            assert_eq!(s.phases[p][k].instance_number, n.as_i64(), "slice {k} phase {p}");
        }
    }
}

#[test]
fn seg_frames_land_on_the_slices_their_positions_name() {
    let g = golden();
    let scan = scan_dir(&series_dir()).unwrap();
    let s = single_series(&series_dir(), &scan).unwrap();
    let opts = RoiOptions {
        fractional_threshold: 0.0,
        ..RoiOptions::default()
    };
    let mask = roi::load(&seg_path(), &s, &opts).unwrap();
    assert_eq!(mask.voxels(), g["seg_voxels_nonzero"].as_u64().unwrap() as usize);
    let [nx, ny, nz] = s.geometry.size;
    let covered: Vec<u64> = (0..nz)
        .filter(|&k| (0..nx * ny).any(|o| mask.volume.data[k * nx * ny + o] != 0.0))
        .map(|k| k as u64)
        .collect();
    let expect: Vec<u64> = g["seg_frame_slices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(covered, expect);
    // values are 0 or 255, so the default threshold (0.5 of the maximum) selects the same voxels
    let default = roi::load(&seg_path(), &s, &RoiOptions::default()).unwrap();
    assert_eq!(default.volume.data, mask.volume.data);
}

fn check_against(reference: &[&str], phase: PhaseSelector) -> (usize, f64) {
    let scan = scan_dir(&series_dir()).unwrap();
    let s = single_series(&series_dir(), &scan).unwrap();
    let img = phase.load(&s).unwrap();
    let opts = RoiOptions {
        fractional_threshold: 0.0,
        ..RoiOptions::default()
    };
    let mask = roi::load(&seg_path(), &s, &opts).unwrap();
    let ex = extract(&series_dir(), &img, &seg_path(), &mask.volume, &Settings::default()).unwrap();
    let (mut n, mut worst, mut worst_name) = (0, 0.0f64, String::new());
    let mut failures = Vec::new();
    for file in reference {
        let mut rdr = csv::Reader::from_path(data(&format!("pyradiomics-3.1.0-reference/{file}"))).unwrap();
        for rec in rdr.records() {
            let rec = rec.unwrap();
            let reference: f64 = rec[1].parse().unwrap();
            let ours = ex.features.get(&rec[0]).unwrap_or(f64::NAN);
            let rel = if ours == reference {
                0.0
            } else {
                (ours - reference).abs() / reference.abs().max(1e-12)
            };
            n += 1;
            if rel.is_nan() || rel > 1e-6 {
                failures.push(format!("{}: ours {ours} reference {reference} rel {rel:.2e}", &rec[0]));
            }
            if rel >= worst {
                worst = rel;
                worst_name = rec[0].to_string();
            }
        }
    }
    println!("UCSF-BR-06 phase {phase}: {n} features, worst rel. error {worst:.2e} ({worst_name})");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    (n, worst)
}

#[test]
fn radiomics_from_dicom_matches_pyradiomics_phase2() {
    let (n, _) = check_against(
        &["UCSF-BR-06_phase2.csv", "UCSF-BR-06_phase2_shape2D.csv"],
        PhaseSelector::Index(2),
    );
    assert_eq!(n, 107 + 9);
}

#[test]
fn radiomics_from_dicom_matches_pyradiomics_subtraction() {
    let (n, _) = check_against(&["UCSF-BR-06_sub.csv"], PhaseSelector::Subtraction(2, 1));
    assert_eq!(n, 107);
}

#[test]
fn cli_extracts_from_a_dicom_folder_and_seg() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_alnrisk"))
        .args([
            "extract",
            "--phase",
            "2",
            "--seg-threshold",
            "0",
            "--format",
            "json",
            "--image",
        ])
        .arg(series_dir())
        .arg("--mask")
        .arg(seg_path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["diagnostics_Mask-original_BoundingBox"], "(40, 72, 9, 108, 124, 42)");
    assert_eq!(v["diagnostics_Mask-original_VoxelNum"], "82527");
}

#[test]
fn cli_inspect_lists_series_phases_and_roi_objects() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_alnrisk"))
        .arg("inspect")
        .arg(data("tcia-breast-mri-nact-pilot/UCSF-BR-06"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("3 phase(s) × 60 slices"), "{text}");
    assert!(text.contains("grid 256×256×60"), "{text}");
    assert!(text.contains("ROI object SEG:"), "{text}");
    // ContentDate/Time and SOPInstanceUID of mask/1-1.dcm, as pydicom reads them
    assert!(
        text.contains("drawn 2008-05-15 12:17:22 · SOPInstanceUID 1.3.6.1.4.1.14519.5.2.1.7695.2311.137509213600336717167021736033"),
        "{text}"
    );
    assert!(
        text.contains("1 study(ies), 1 series, 1 ROI object(s), 0 problem(s)"),
        "{text}"
    );
}
