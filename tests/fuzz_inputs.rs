//! Property-based fuzzing of the untrusted-input paths: file → volume (NRRD, NIfTI, DICOM MR headers and
//! pixel decoding) and DICOM SEG decoding. Inputs are valid files with random truncation and random byte
//! corruption; the property is "returns Ok or a typed error, never panics". 64 cases per target by default;
//! set `PROPTEST_CASES` for a longer run (the README says how).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use alnrisk::image::Geometry;
use alnrisk::ingest::{Series, scan_dir, single_series};
use alnrisk::roi::{self, RoiOptions};
use alnrisk::synth::dicom::{self as w, ClassicOptions, SegOptions, SeriesIds};
use proptest::prelude::*;

struct Fixture {
    dir: PathBuf,
    series: Series,
    mr: Vec<u8>,
    seg: Vec<u8>,
    nrrd: Vec<u8>,
    nifti: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("alnrisk-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let g = Geometry::new([6, 5, 4], [0.7, 0.7, 2.0], [0.0; 3]);
        let ids = SeriesIds::from_seed("fuzz", 1);
        let files = w::write_classic_series(
            &dir.join("dce"),
            &ids,
            &g,
            1,
            ClassicOptions::default(),
            |_, i, j, k| (i + j + k) as i16,
            |_, k| format!("{k}.dcm"),
        )
        .unwrap();
        let seg = dir.join("seg.dcm");
        w::write_seg(
            &seg,
            &ids,
            &g,
            SegOptions {
                binary: false,
                ..SegOptions::default()
            },
            |i, j, k| i > 1 && j > 1 && k > 0,
        )
        .unwrap();
        let scan = scan_dir(&dir.join("dce")).unwrap();
        let series = single_series(&dir.join("dce"), &scan).unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pyradiomics");
        let nrrd = std::fs::read(root.join("breast1_label.nrrd")).unwrap();
        let vol = alnrisk::io::read_volume(&root.join("breast1_label.nrrd")).unwrap();
        alnrisk::io::nifti::write(&dir.join("v.nii"), &vol).unwrap();
        Fixture {
            mr: std::fs::read(&files[1]).unwrap(),
            seg: std::fs::read(&seg).unwrap(),
            nifti: std::fs::read(dir.join("v.nii")).unwrap(),
            nrrd,
            dir,
            series,
        }
    })
}

/// Truncate at `cut` (fraction of the length) and overwrite bytes at the given fractional positions.
fn corrupt(bytes: &[u8], cut: f64, edits: &[(f64, u8)]) -> Vec<u8> {
    let mut b = bytes[..((bytes.len() as f64 * cut) as usize).min(bytes.len())].to_vec();
    for &(pos, v) in edits {
        if !b.is_empty() {
            let i = ((b.len() - 1) as f64 * pos) as usize;
            b[i] = v;
        }
    }
    b
}

fn write_case(name: &str, bytes: &[u8]) -> PathBuf {
    let p = fixture().dir.join(format!(
        "case-{}-{name}",
        std::thread::current().name().unwrap_or("t").replace("::", "_")
    ));
    std::fs::write(&p, bytes).unwrap();
    p
}

fn edits() -> impl Strategy<Value = Vec<(f64, u8)>> {
    prop::collection::vec((0.0f64..1.0, any::<u8>()), 0..8)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64), ..ProptestConfig::default() })]

    #[test]
    fn nrrd_and_nifti_never_panic(cut in 0.0f64..1.2, e in edits()) {
        let f = fixture();
        let p = write_case("x.nrrd", &corrupt(&f.nrrd, cut.min(1.0), &e));
        let _ = alnrisk::io::read_volume(&p);
        let p = write_case("x.nii", &corrupt(&f.nifti, cut.min(1.0), &e));
        let _ = alnrisk::io::read_volume(&p);
    }

    #[test]
    fn dicom_mr_file_to_volume_never_panics(cut in 0.5f64..1.0, e in edits()) {
        let f = fixture();
        let d = f.dir.join(format!("mr-{}", std::thread::current().name().unwrap_or("t").replace("::", "_")));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("a.dcm"), corrupt(&f.mr, cut, &e)).unwrap();
        if let Ok(scan) = scan_dir(&d)
            && let Ok(s) = single_series(&d, &scan)
        {
            let _ = alnrisk::ingest::PhaseSelector::Index(1).load(&s);
        }
    }

    #[test]
    fn seg_decoding_never_panics(cut in 0.3f64..1.0, e in edits()) {
        let f = fixture();
        let p = write_case("seg.dcm", &corrupt(&f.seg, cut, &e));
        let _ = roi::load(&p, &f.series, &RoiOptions::default());
    }
}

#[test]
fn uncorrupted_fixture_reads() {
    let f = fixture();
    let p = write_case("ok-seg.dcm", &f.seg);
    assert_eq!(
        roi::load(&p, &f.series, &RoiOptions::default()).unwrap().voxels(),
        4 * 3 * 3
    );
}
