//! Bad input never panics: each case yields a typed error naming the file and the reason, and the CLI
//! exits non-zero.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use alnrisk::Error;
use alnrisk::image::{Geometry, PixelType, Volume};
use alnrisk::radiomics::{Settings, extract};

fn data(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/pyradiomics")
        .join(p)
}

fn breast() -> (Volume<f64>, Volume<f64>) {
    (
        alnrisk::io::read_volume(&data("breast1_image.nrrd")).unwrap(),
        alnrisk::io::read_volume(&data("breast1_label.nrrd")).unwrap(),
    )
}

fn run(image: &Volume<f64>, mask: &Volume<f64>, s: &Settings) -> Result<(), Error> {
    extract(Path::new("img.nrrd"), image, Path::new("roi.nrrd"), mask, s).map(|_| ())
}

fn roi_error(image: &Volume<f64>, mask: &Volume<f64>, s: &Settings) -> String {
    match run(image, mask, s) {
        Err(e @ Error::InvalidRoi { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("roi.nrrd"), "{msg}");
            msg
        }
        other => panic!("expected InvalidRoi, got {other:?}"),
    }
}

#[test]
fn empty_mask() {
    let (img, mut msk) = breast();
    msk.data.iter_mut().for_each(|v| *v = 0.0);
    assert!(roi_error(&img, &msk, &Settings::default()).contains("empty"));
}

#[test]
fn label_not_present() {
    let (img, msk) = breast();
    let s = Settings {
        label: 7,
        ..Settings::default()
    };
    let m = roi_error(&img, &msk, &s);
    assert!(m.contains("label 7 is not present") && m.contains("[1]"), "{m}");
}

#[test]
fn single_voxel_and_flat_masks() {
    let (img, mut msk) = breast();
    msk.data.iter_mut().for_each(|v| *v = 0.0);
    let o = msk.offset(20, 60, 10);
    msk.data[o] = 1.0;
    assert!(roi_error(&img, &msk, &Settings::default()).contains("single voxel"));
    // a line: one dimension with more than one voxel, fewer than the default minimumROIDimensions (2)
    let o = msk.offset(21, 60, 10);
    msk.data[o] = 1.0;
    assert!(roi_error(&img, &msk, &Settings::default()).contains("minimumROIDimensions"));
    // a plane: flat in one dimension, refused when 3 dimensions are required
    let o = msk.offset(21, 61, 10);
    msk.data[o] = 1.0;
    assert!(run(&img, &msk, &Settings::default()).is_ok());
    let s = Settings {
        minimum_roi_dimensions: 3,
        ..Settings::default()
    };
    assert!(roi_error(&img, &msk, &s).contains("minimumROIDimensions is 3"));
    let s = Settings {
        minimum_roi_size: Some(10),
        ..Settings::default()
    };
    assert!(roi_error(&img, &msk, &s).contains("minimumROISize"));
}

#[test]
fn mismatched_geometry() {
    let (img, mut msk) = breast();
    msk.geometry.origin[0] += 1.0;
    match run(&img, &msk, &Settings::default()) {
        Err(e @ Error::GeometryMismatch { .. }) => assert!(e.to_string().contains("origin"), "{e}"),
        other => panic!("{other:?}"),
    }
    let (img, mut msk) = breast();
    msk.geometry.size[0] -= 1;
    msk.data.truncate(msk.geometry.len());
    assert!(matches!(
        run(&img, &msk, &Settings::default()),
        Err(Error::GeometryMismatch { .. })
    ));
}

#[test]
fn nan_voxels_in_roi() {
    let (mut img, msk) = breast();
    let o = msk.data.iter().position(|&v| v == 1.0).unwrap();
    img.data[o] = f64::NAN;
    match run(&img, &msk, &Settings::default()) {
        Err(e @ Error::NonFinite { .. }) => assert!(e.to_string().contains("img.nrrd"), "{e}"),
        other => panic!("{other:?}"),
    }
}

fn read_err(path: &Path) -> Error {
    alnrisk::io::read_volume(path).expect_err("should not read")
}

#[test]
fn truncated_and_garbage_nrrd() {
    let bytes = std::fs::read(data("breast1_image.nrrd")).unwrap();
    let p = common::tmp_file("bad-input", "truncated.nrrd");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = read_err(&p);
    assert!(
        matches!(e, Error::Format { .. }) && e.to_string().contains("truncated.nrrd"),
        "{e}"
    );
    let p = common::tmp_file("bad-input", "garbage.nrrd");
    std::fs::write(&p, b"\x00\x01garbage that is not a header").unwrap();
    assert!(matches!(read_err(&p), Error::Format { .. }));
    let p = common::tmp_file("bad-input", "header-only.nrrd");
    std::fs::write(
        &p,
        b"NRRD0004\ntype: short\ndimension: 3\nsizes: 10 10 10\nencoding: raw\n\n\x00\x00",
    )
    .unwrap();
    assert!(read_err(&p).to_string().contains("truncated data"));
}

#[test]
fn huge_declared_size_is_refused_before_allocation() {
    let p = common::tmp_file("bad-input", "huge.nrrd");
    std::fs::write(
        &p,
        b"NRRD0004\ntype: double\ndimension: 3\nsizes: 100000 100000 100000\nencoding: gzip\n\n",
    )
    .unwrap();
    assert!(matches!(read_err(&p), Error::TooLarge { .. }));
    // NIfTI with dims 32767³
    let mut h = nifti_header([32767, 32767, 32767], 64);
    h.extend_from_slice(&[0u8; 16]);
    let p = common::tmp_file("bad-input", "huge.nii");
    std::fs::write(&p, &h).unwrap();
    assert!(matches!(read_err(&p), Error::TooLarge { .. }));
}

fn nifti_header(dims: [i16; 3], datatype: i16) -> Vec<u8> {
    let mut h = vec![0u8; 352];
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    h[40..42].copy_from_slice(&3i16.to_le_bytes());
    for d in 0..3 {
        h[42 + 2 * d..44 + 2 * d].copy_from_slice(&dims[d].to_le_bytes());
    }
    h[70..72].copy_from_slice(&datatype.to_le_bytes());
    for d in 0..4 {
        h[76 + 4 * d..80 + 4 * d].copy_from_slice(&1f32.to_le_bytes());
    }
    h[108..112].copy_from_slice(&352f32.to_le_bytes());
    h[344..348].copy_from_slice(b"n+1\0");
    h
}

#[test]
fn truncated_and_garbage_nifti() {
    let p = common::tmp_file("bad-input", "short.nii");
    std::fs::write(&p, b"not a nifti").unwrap();
    assert!(matches!(read_err(&p), Error::Format { .. }));
    let mut h = nifti_header([10, 10, 10], 4);
    h.extend_from_slice(&[0u8; 100]); // 2000 bytes declared
    let p = common::tmp_file("bad-input", "truncated.nii");
    std::fs::write(&p, &h).unwrap();
    let e = read_err(&p);
    assert!(e.to_string().contains("truncated"), "{e}");
    let p = common::tmp_file("bad-input", "corrupt.nii.gz");
    std::fs::write(&p, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]).unwrap();
    assert!(matches!(read_err(&p), Error::Format { .. }));
}

#[test]
fn nifti_qform_is_converted_to_lps_like_itk() {
    // qform: 90° about z (quaternion d = sin 45°), origin (10, 20, 30) RAS, spacing (2, 3, 4)
    let mut h = nifti_header([2, 3, 4], 16);
    let s = std::f32::consts::FRAC_1_SQRT_2;
    h[80..84].copy_from_slice(&2f32.to_le_bytes());
    h[84..88].copy_from_slice(&3f32.to_le_bytes());
    h[88..92].copy_from_slice(&4f32.to_le_bytes());
    h[252..254].copy_from_slice(&1i16.to_le_bytes());
    h[264..268].copy_from_slice(&s.to_le_bytes());
    for (i, v) in [10f32, 20.0, 30.0].iter().enumerate() {
        h[268 + 4 * i..272 + 4 * i].copy_from_slice(&v.to_le_bytes());
    }
    h.extend(std::iter::repeat_n(0u8, 24 * 4));
    let p = common::tmp_file("bad-input", "qform.nii");
    std::fs::write(&p, &h).unwrap();
    let v = alnrisk::io::read_volume(&p).unwrap();
    assert_eq!(v.geometry.spacing, [2.0, 3.0, 4.0]);
    assert_eq!(v.geometry.origin, [-10.0, -20.0, 30.0]);
    let d = v.geometry.direction;
    let expect = [[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]];
    for r in 0..3 {
        for c in 0..3 {
            assert!((d[r][c] - expect[r][c]).abs() < 1e-6, "{d:?}");
        }
    }
}

#[test]
fn nifti_and_nrrd_give_the_same_features() {
    let (img, msk) = breast();
    let pi = common::tmp_file("bad-input", "breast1.nii.gz");
    let pm = common::tmp_file("bad-input", "breast1_label.nii");
    alnrisk::io::nifti::write(&pi, &img).unwrap();
    alnrisk::io::nifti::write(&pm, &msk).unwrap();
    let img2 = alnrisk::io::read_volume(&pi).unwrap();
    let msk2 = alnrisk::io::read_volume(&pm).unwrap();
    assert_eq!(img2.data, img.data);
    assert!(
        img2.geometry.mismatch(&img.geometry, 1e-5).is_none(),
        "{:?} vs {:?}",
        img2.geometry,
        img.geometry
    );
    let a = extract(&pi, &img, &pm, &msk, &Settings::default()).unwrap();
    let b = extract(&pi, &img2, &pm, &msk2, &Settings::default()).unwrap();
    // NIfTI stores spacing and orientation in single precision, so spacing-dependent features move by ~1e-7.
    for ((n, x), (_, y)) in a.features.entries.iter().zip(&b.features.entries) {
        assert!((x - y).abs() <= 1e-6 * x.abs().max(1e-12), "{n}: {x} vs {y}");
    }
    let _ = Geometry::new([1, 1, 1], [1.0; 3], [0.0; 3]);
    let _ = PixelType::F64;
}

#[test]
fn cli_reports_errors_and_exits_non_zero() {
    let bin = env!("CARGO_BIN_EXE_alnrisk");
    let p = common::tmp_file("bad-input", "cli-garbage.nrrd");
    std::fs::write(&p, b"garbage").unwrap();
    let out = Command::new(bin)
        .args(["extract", "--image"])
        .arg(&p)
        .arg("--mask")
        .arg(data("breast1_label.nrrd"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cli-garbage.nrrd") && err.contains("NRRD"), "{err}");

    let out = Command::new(bin)
        .args(["extract", "--label", "3", "--image"])
        .arg(data("breast1_image.nrrd"))
        .arg("--mask")
        .arg(data("breast1_label.nrrd"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("label 3 is not present"));
}

#[test]
fn cli_extract_and_batch() {
    let bin = env!("CARGO_BIN_EXE_alnrisk");
    let out = Command::new(bin)
        .args(["extract", "--format", "json", "--image"])
        .arg(data("breast1_image.nrrd"))
        .arg("--mask")
        .arg(data("breast1_label.nrrd"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["diagnostics_Mask-original_BoundingBox"], "(21, 64, 8, 9, 12, 3)");
    assert_eq!(v["diagnostics_Mask-original_VoxelNum"], "143");
    assert!(v["original_glcm_Contrast"].as_f64().unwrap() > 0.0);

    // batch: one good case, one failing case; the good one still finishes, the failure is reported
    let garbage = common::tmp_file("bad-input", "batch-garbage.nrrd");
    std::fs::write(&garbage, b"NRRD0004\n").unwrap();
    let cohort = common::tmp_file("bad-input", "cohort.csv");
    std::fs::write(
        &cohort,
        format!(
            "id,image,mask\nb1,{},{}\nbad,{},{}\n",
            data("breast1_image.nrrd").display(),
            data("breast1_label.nrrd").display(),
            garbage.display(),
            data("breast1_label.nrrd").display()
        ),
    )
    .unwrap();
    let table = common::tmp_file("bad-input", "features.csv");
    let out = Command::new(bin)
        .args(["extract", "--batch"])
        .arg(&cohort)
        .arg("-o")
        .arg(&table)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = std::fs::read_to_string(&table).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("id,status,error,original_shape_"));
    assert!(lines[1].starts_with("b1,ok,"));
    assert!(lines[2].starts_with("bad,failed,") && lines[2].contains("batch-garbage.nrrd"));
}
