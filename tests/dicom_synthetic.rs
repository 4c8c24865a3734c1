//! Synthetic series written with `dicom-object` (through `alnrisk::synth::dicom`): vendor layouts, file
//! order, oblique geometry, SEG placement and RTSTRUCT rasterisation, each checked against values known by
//! construction; and bad DICOM input, each a typed error naming the file.

mod common;

use std::path::{Path, PathBuf};

use alnrisk::Error;
use alnrisk::image::Geometry;
use alnrisk::ingest::{PhaseRule, PhaseSelector, scan_dir, single_series};
use alnrisk::roi::{self, RoiOptions};
use alnrisk::synth::dicom::{self as w, ClassicOptions, SegOptions, SeriesIds};

fn axial(size: [usize; 3]) -> Geometry {
    Geometry::new(size, [0.7, 0.8, 2.0], [-50.0, -40.0, 10.0])
}

/// A value that identifies phase, column, row and slice.
fn value(p: usize, i: usize, j: usize, k: usize) -> i16 {
    (p * 1000 + k * 100 + j * 10 + i) as i16
}

fn check_values(vol: &alnrisk::image::Volume<f64>, p: usize) {
    let [nx, ny, nz] = vol.geometry.size;
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                assert_eq!(vol.at(i, j, k), value(p, i, j, k) as f64, "phase {p} at ({i},{j},{k})");
            }
        }
    }
}

fn name_in_order(p: usize, k: usize) -> String {
    format!("IM{:04}.dcm", p * 100 + k)
}

#[test]
fn ge_style_one_series_with_repeated_positions() {
    let dir = common::tmp("dicom", "ge");
    let g = axial([6, 5, 4]);
    plain_series(&dir, "ge", &g, 3);
    let scan = scan_dir(&dir).unwrap();
    let s = single_series(&dir, &scan).unwrap();
    assert_eq!(s.rule, PhaseRule::RepeatedPosition);
    assert_eq!(s.phases.len(), 3);
    assert!(s.geometry.mismatch(&g, 1e-6).is_none(), "{:?}", s.geometry);
    for p in 0..3 {
        check_values(&PhaseSelector::Index(p + 1).load(&s).unwrap(), p);
    }
    let sub = PhaseSelector::Subtraction(3, 1).load(&s).unwrap();
    assert!(sub.data.iter().all(|&v| v == 2000.0));
}

#[test]
fn temporal_position_identifier_wins_and_shuffled_file_names_do_not_matter() {
    let dir = common::tmp("dicom", "shuffled");
    let g = axial([5, 4, 6]);
    let ids = SeriesIds::from_seed("shuffled", 1);
    let opts = ClassicOptions {
        temporal_ids: true,
        phase_times: true,
    };
    // names unrelated to order: a hash of (phase, slice)
    w::write_classic_series(&dir, &ids, &g, 2, opts, value, |p, k| {
        format!("{}.dcm", &w::uid(&format!("{p}{k}"))[5..17])
    })
    .unwrap();
    let scan = scan_dir(&dir).unwrap();
    let s = single_series(&dir, &scan).unwrap();
    assert_eq!(s.rule, PhaseRule::TemporalPositionIdentifier);
    check_values(&PhaseSelector::Index(1).load(&s).unwrap(), 0);
    check_values(&PhaseSelector::Index(2).load(&s).unwrap(), 1);
}

#[test]
fn siemens_style_one_series_per_phase_is_linked() {
    let dir = common::tmp("dicom", "siemens");
    let g = axial([4, 4, 3]);
    for p in 0..3 {
        let mut ids = SeriesIds::from_seed("siemens", p as i64 + 10);
        ids.study = w::uid("siemens/study");
        ids.frame_of_reference = w::uid("siemens/for");
        // each series holds one phase, written with its phase time and values
        let opts = ClassicOptions {
            temporal_ids: false,
            phase_times: false,
        };
        w::write_classic_series(
            &dir.join(format!("s{p}")),
            &ids,
            &g,
            1,
            opts,
            move |_, i, j, k| value(p, i, j, k),
            |_, k| format!("{k}.dcm"),
        )
        .unwrap();
    }
    let scan = scan_dir(&dir).unwrap();
    assert_eq!(scan.studies.len(), 1);
    assert_eq!(scan.studies[0].series.len(), 3);
    let s = single_series(&dir, &scan).unwrap();
    assert_eq!(s.rule, PhaseRule::LinkedSeries);
    assert_eq!(s.phases.len(), 3);
    for p in 0..3 {
        check_values(&PhaseSelector::Index(p + 1).load(&s).unwrap(), p);
    }
}

#[test]
fn enhanced_multiframe_splits_by_temporal_position_index() {
    let dir = common::tmp("dicom", "enhanced");
    let g = axial([5, 3, 4]);
    let ids = SeriesIds::from_seed("enhanced", 1);
    w::write_enhanced(&dir.join("multiframe.dcm"), &ids, &g, 3, value).unwrap();
    let scan = scan_dir(&dir).unwrap();
    let s = single_series(&dir, &scan).unwrap();
    assert_eq!(s.rule, PhaseRule::TemporalPositionIndex);
    assert_eq!(s.phases.len(), 3);
    assert!(s.geometry.mismatch(&g, 1e-6).is_none());
    for p in 0..3 {
        check_values(&PhaseSelector::Index(p + 1).load(&s).unwrap(), p);
    }
}

#[test]
fn oblique_geometry_is_recovered() {
    let dir = common::tmp("dicom", "oblique");
    let (c, s) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
    // rows tilted 30° about z, columns along −z: an oblique sagittal-ish plane
    let g = Geometry {
        size: [4, 3, 5],
        spacing: [0.9, 1.1, 2.5],
        origin: [12.0, -7.5, 33.0],
        direction: [[c, 0.0, -s], [s, 0.0, c], [0.0, -1.0, 0.0]],
    };
    // the third column is row × column, as DICOM defines the slice normal
    plain_series(&dir, "oblique", &g, 1);
    let scan = scan_dir(&dir).unwrap();
    let series = single_series(&dir, &scan).unwrap();
    assert!(
        series.geometry.mismatch(&g, 1e-5).is_none(),
        "{:?} vs {:?}",
        series.geometry,
        g
    );
    check_values(&PhaseSelector::Index(1).load(&series).unwrap(), 0);
}

#[test]
fn seg_is_placed_by_position_not_frame_order() {
    let dir = common::tmp("dicom", "seg");
    let g = axial([8, 7, 6]);
    let (ids, _) = plain_series(&dir.join("dce"), "seg", &g, 2);
    let inside = |i: usize, j: usize, k: usize| (2..5).contains(&i) && (1..4).contains(&j) && (k == 1 || k == 4);
    let scan = scan_dir(&dir.join("dce")).unwrap();
    let series = single_series(&dir.join("dce"), &scan).unwrap();
    for (name, opts) in [
        (
            "binary-reversed",
            SegOptions {
                reverse_frames: true,
                ..SegOptions::default()
            },
        ),
        (
            "fractional",
            SegOptions {
                binary: false,
                ..SegOptions::default()
            },
        ),
        // positions offset by just under half a pixel: still index-aligned
        (
            "half-pixel",
            SegOptions {
                offset_pixels: [0.49, -0.49],
                ..SegOptions::default()
            },
        ),
        (
            "no-references",
            SegOptions {
                reference: w::SegReference::None,
                ..SegOptions::default()
            },
        ),
    ] {
        let path = dir.join(format!("{name}.dcm"));
        w::write_seg(&path, &ids, &g, opts, inside).unwrap();
        let m = roi::load(&path, &series, &RoiOptions::default()).unwrap();
        for k in 0..6 {
            for j in 0..7 {
                for i in 0..8 {
                    assert_eq!(m.volume.at(i, j, k) == 1.0, inside(i, j, k), "{name} at ({i},{j},{k})");
                }
            }
        }
    }
    // a whole-pixel offset shifts the frame
    let path = dir.join("shifted.dcm");
    w::write_seg(
        &path,
        &ids,
        &g,
        SegOptions {
            offset_pixels: [1.0, 0.0],
            ..SegOptions::default()
        },
        inside,
    )
    .unwrap();
    let m = roi::load(&path, &series, &RoiOptions::default()).unwrap();
    assert_eq!(m.volume.at(5, 1, 1), 1.0);
    assert_eq!(m.volume.at(2, 1, 1), 0.0);
}

#[test]
fn rtstruct_rasterises_voxel_centres_inside_with_half_open_edges() {
    let dir = common::tmp("dicom", "rtstruct");
    let g = axial([10, 10, 3]);
    let (ids, _) = plain_series(&dir.join("dce"), "rt", &g, 1);
    let scan = scan_dir(&dir.join("dce")).unwrap();
    let series = single_series(&dir.join("dce"), &scan).unwrap();
    let at = |i: f64, j: f64, k: f64| g.continuous_index_to_physical([i, j, k]);
    // slice 1: square (1.5,1.5)–(5.5,5.5) → centres {2..5}², with a hole (3.5,3.5)–(4.5,4.5) removing (4,4);
    // slice 2: square (1.5,1.5)–(3.5,3.5) → centres {2,3}². (Vertices exactly on centres are covered by the
    // unit test of the half-open rule: written as DS they no longer sit exactly on a centre.)
    let square = |a: f64, b: f64, k: f64| vec![at(a, a, k), at(b, a, k), at(b, b, k), at(a, b, k)];
    let contours = vec![square(1.5, 5.5, 1.0), square(3.5, 4.5, 1.0), square(1.5, 3.5, 2.0)];
    let path = dir.join("rt.dcm");
    w::write_rtstruct(&path, &ids, "GTV", &contours).unwrap();
    let m = roi::load(&path, &series, &RoiOptions::default()).unwrap();
    let mut expect = vec![0.0; g.len()];
    for j in 2..6 {
        for i in 2..6 {
            if (i, j) != (4, 4) {
                expect[g.offset(i, j, 1)] = 1.0;
            }
        }
    }
    for j in 2..4 {
        for i in 2..4 {
            expect[g.offset(i, j, 2)] = 1.0;
        }
    }
    assert_eq!(m.volume.data, expect);
    let e = roi::load(
        &path,
        &series,
        &RoiOptions {
            choice: roi::RoiChoice::Label("CTV".into()),
            ..RoiOptions::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("GTV"), "{e}");
}

#[test]
fn radiomics_agree_between_seg_and_nifti_label_map() {
    let dir = common::tmp("dicom", "seg-vs-nifti");
    let g = axial([12, 12, 6]);
    let ids = SeriesIds::from_seed("sn", 1);
    w::write_classic_series(
        &dir.join("dce"),
        &ids,
        &g,
        2,
        ClassicOptions::default(),
        |p, i, j, k| ((i * 7 + j * 3 + k * 5 + p * 11) % 40) as i16,
        name_in_order,
    )
    .unwrap();
    let inside = |i: usize, j: usize, k: usize| {
        (3..9).contains(&i) && (2..10).contains(&j) && (1..5).contains(&k) && !(i + j + k).is_multiple_of(7)
    };
    w::write_seg(&dir.join("roi.dcm"), &ids, &g, SegOptions::default(), inside).unwrap();
    let scan = scan_dir(&dir.join("dce")).unwrap();
    let series = single_series(&dir.join("dce"), &scan).unwrap();
    let seg = roi::load(&dir.join("roi.dcm"), &series, &RoiOptions::default()).unwrap();
    alnrisk::io::nifti::write(&dir.join("roi.nii.gz"), &seg.volume).unwrap();
    let lab = roi::load(&dir.join("roi.nii.gz"), &series, &RoiOptions::default()).unwrap();
    let img = PhaseSelector::FirstPostContrast.load(&series).unwrap();
    let s = alnrisk::radiomics::Settings::default();
    let a = alnrisk::radiomics::extract(&dir, &img, &dir, &seg.volume, &s).unwrap();
    let b = alnrisk::radiomics::extract(&dir, &img, &dir, &lab.volume, &s).unwrap();
    assert_eq!(a.features, b.features);
    // a label map on another grid is refused
    let mut other = seg.volume.clone();
    other.geometry.origin[0] += 5.0;
    alnrisk::io::nifti::write(&dir.join("moved.nii.gz"), &other).unwrap();
    assert!(matches!(
        roi::load(&dir.join("moved.nii.gz"), &series, &RoiOptions::default()),
        Err(Error::GeometryMismatch { .. })
    ));
}

fn expect_problem(dir: &Path, needle: &str) {
    let scan = scan_dir(dir).unwrap();
    let all: Vec<String> = scan.problems.iter().map(|e| e.to_string()).collect();
    assert!(
        all.iter().any(|m| m.contains(needle)),
        "no problem mentions '{needle}': {all:?}"
    );
}

#[test]
fn bad_dicom_input_gives_typed_errors_naming_the_file() {
    let dir = common::tmp("dicom", "bad");
    let g = axial([4, 4, 3]);
    let (ids, files) = plain_series(&dir.join("dce"), "bad", &g, 1);

    // non-DICOM and truncated files are reported, and the valid series still assembles
    std::fs::write(dir.join("dce/notes.txt"), b"not dicom at all").unwrap();
    let bytes = std::fs::read(&files[0]).unwrap();
    std::fs::write(dir.join("dce/truncated.dcm"), &bytes[..200]).unwrap();
    let scan = scan_dir(&dir.join("dce")).unwrap();
    let msgs: Vec<String> = scan.problems.iter().map(|e| e.to_string()).collect();
    assert!(msgs.iter().any(|m| m.contains("notes.txt")), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("truncated.dcm")), "{msgs:?}");
    assert_eq!(single_series(&dir.join("dce"), &scan).unwrap().phases[0].len(), 3);

    // inconsistent Rows/Columns within a series
    let d2 = dir.join("rows");
    w::write_classic_series(&d2, &ids, &g, 1, ClassicOptions::default(), value, name_in_order).unwrap();
    let g2 = Geometry {
        size: [5, 4, 3],
        ..g.clone()
    };
    w::write_classic_series(&d2, &ids, &g2, 1, ClassicOptions::default(), value, |_, k| {
        format!("wide{k}.dcm")
    })
    .unwrap();
    std::fs::remove_file(d2.join("wide0.dcm")).unwrap();
    std::fs::remove_file(d2.join("wide2.dcm")).unwrap();
    std::fs::remove_file(d2.join(name_in_order(0, 1))).unwrap();
    expect_problem(&d2, "inconsistent Rows/Columns");

    // a missing slice (gap)
    let d3 = dir.join("gap");
    let g3 = axial([4, 4, 5]);
    w::write_classic_series(&d3, &ids, &g3, 1, ClassicOptions::default(), value, name_in_order).unwrap();
    std::fs::remove_file(d3.join(name_in_order(0, 2))).unwrap();
    expect_problem(&d3, "non-uniform slice spacing");

    // missing geometry tag: strip ImagePositionPatient by rewriting a file without it
    let d4 = dir.join("nogeom");
    std::fs::create_dir_all(&d4).unwrap();
    let mut obj = dicom_object::open_file(&files[0]).unwrap();
    obj.remove_element(dicom_dictionary_std::tags::IMAGE_POSITION_PATIENT);
    obj.write_to_file(d4.join("x.dcm")).unwrap();
    expect_problem(&d4, "ImagePositionPatient");

    // missing Pixel Data: the header scans, decoding names the file
    let d5 = dir.join("nopixels");
    std::fs::create_dir_all(&d5).unwrap();
    for (n, f) in files.iter().enumerate() {
        let mut obj = dicom_object::open_file(f).unwrap();
        if n == 1 {
            obj.remove_element(dicom_dictionary_std::tags::PIXEL_DATA);
        }
        obj.write_to_file(d5.join(format!("{n}.dcm"))).unwrap();
    }
    let scan = scan_dir(&d5).unwrap();
    let s = single_series(&d5, &scan).unwrap();
    let e = PhaseSelector::Index(1).load(&s).unwrap_err();
    assert!(
        e.to_string().contains("1.dcm") && e.to_string().contains("Pixel Data"),
        "{e}"
    );

    // absurd declared size: refused at the header, before any allocation
    let d6 = dir.join("huge");
    std::fs::create_dir_all(&d6).unwrap();
    let mut obj = dicom_object::open_file(&files[0]).unwrap();
    obj.put(dicom_core::DataElement::new(
        dicom_dictionary_std::tags::NUMBER_OF_FRAMES,
        dicom_core::VR::IS,
        dicom_core::PrimitiveValue::from("4000000"),
    ));
    obj.put(dicom_core::DataElement::new(
        dicom_dictionary_std::tags::ROWS,
        dicom_core::VR::US,
        dicom_core::PrimitiveValue::from(60000u16),
    ));
    obj.write_to_file(d6.join("huge.dcm")).unwrap();
    let scan = scan_dir(&d6).unwrap();
    assert!(
        scan.problems.iter().any(|e| matches!(e, Error::TooLarge { .. })),
        "{:?}",
        scan.problems
    );

    // a SEG that references another series, and an empty segment
    let scan = scan_dir(&dir.join("dce")).unwrap();
    let series = single_series(&dir.join("dce"), &scan).unwrap();
    let other = SeriesIds::from_seed("another", 7);
    let mut other_for = other.clone();
    other_for.frame_of_reference = ids.frame_of_reference.clone();
    w::write_seg(
        &dir.join("other.dcm"),
        &other_for,
        &g,
        SegOptions::default(),
        |i, _, _| i == 1,
    )
    .unwrap();
    let e = roi::load(&dir.join("other.dcm"), &series, &RoiOptions::default()).unwrap_err();
    assert!(
        e.to_string().contains("another series") && e.to_string().contains("other.dcm"),
        "{e}"
    );
    w::write_seg(
        &dir.join("empty.dcm"),
        &ids,
        &g,
        SegOptions {
            binary: false,
            ..SegOptions::default()
        },
        |i, j, k| i == 1 && j == 1 && k == 1,
    )
    .unwrap();
    let e = roi::load(
        &dir.join("empty.dcm"),
        &series,
        &RoiOptions {
            fractional_threshold: 2.0,
            ..RoiOptions::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("is empty"), "{e}");
}

#[test]
fn transfer_syntaxes_implicit_and_deflate_decode_unsupported_is_named() {
    let dir = common::tmp("dicom", "ts");
    let g = axial([4, 3, 3]);
    let (_, files) = plain_series(&dir.join("src"), "ts", &g, 1);
    for (name, ts) in [("implicit", "1.2.840.10008.1.2"), ("deflate", "1.2.840.10008.1.2.1.99")] {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        for (n, f) in files.iter().enumerate() {
            let mut obj = dicom_object::open_file(f).unwrap();
            obj.meta_mut().transfer_syntax = if ts.len() % 2 == 1 {
                format!("{ts}\0")
            } else {
                ts.to_string()
            };
            obj.meta_mut().update_information_group_length();
            obj.write_to_file(d.join(format!("{n}.dcm"))).unwrap();
        }
        let scan = scan_dir(&d).unwrap();
        let s = single_series(&d, &scan).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_values(&PhaseSelector::Index(1).load(&s).unwrap(), 0);
    }
    // pixel data declared as JPEG-LS (not decodable without C++): a clear error naming the UID
    let d = dir.join("jpegls");
    std::fs::create_dir_all(&d).unwrap();
    for (n, f) in files.iter().enumerate() {
        let mut obj = dicom_object::open_file(f).unwrap();
        obj.meta_mut().transfer_syntax = "1.2.840.10008.1.2.4.80".to_string();
        obj.meta_mut().update_information_group_length();
        let px = dicom_core::value::PixelFragmentSequence::new(vec![], vec![vec![0u8; 16]]);
        obj.put(dicom_core::DataElement::new(
            dicom_dictionary_std::tags::PIXEL_DATA,
            dicom_core::VR::OB,
            px,
        ));
        obj.write_to_file(d.join(format!("{n}.dcm"))).unwrap();
    }
    let scan = scan_dir(&d).unwrap();
    let s = single_series(&d, &scan).unwrap();
    let e = PhaseSelector::Index(1).load(&s).unwrap_err();
    assert!(e.to_string().contains("1.2.840.10008.1.2.4.80"), "{e}");
}

fn rewrite_all(files: &[PathBuf], dir: &Path, edit: impl Fn(usize, &mut dicom_object::DefaultDicomObject)) {
    std::fs::create_dir_all(dir).unwrap();
    for (n, f) in files.iter().enumerate() {
        let mut obj = dicom_object::open_file(f).unwrap();
        edit(n, &mut obj);
        obj.write_to_file(dir.join(format!("{n}.dcm"))).unwrap();
    }
}

/// Write a classic single-frame series with the default options, [`value`] pixels and in-order file names.
fn plain_series(dir: &Path, seed: &str, g: &Geometry, phases: usize) -> (SeriesIds, Vec<PathBuf>) {
    let ids = SeriesIds::from_seed(seed, 1);
    let files = w::write_classic_series(dir, &ids, g, phases, ClassicOptions::default(), value, name_in_order).unwrap();
    (ids, files)
}

fn ds_elem(tag: dicom_core::Tag, v: &str) -> dicom_core::DataElement<dicom_object::InMemDicomObject> {
    dicom_core::DataElement::new(tag, dicom_core::VR::DS, dicom_core::PrimitiveValue::from(v))
}

#[test]
fn rescale_and_real_world_value_mapping_are_applied() {
    use dicom_dictionary_std::tags;
    let dir = common::tmp("dicom", "rescale");
    let g = axial([3, 3, 2]);
    let (_, files) = plain_series(&dir.join("src"), "rescale", &g, 1);
    rewrite_all(&files, &dir.join("rescale"), |_, o| {
        o.put(ds_elem(tags::RESCALE_SLOPE, "0.5"));
        o.put(ds_elem(tags::RESCALE_INTERCEPT, "10"));
    });
    rewrite_all(&files, &dir.join("rwvm"), |_, o| {
        o.put(ds_elem(tags::RESCALE_SLOPE, "0.5"));
        let item = dicom_object::InMemDicomObject::from_element_iter([
            ds_elem(tags::REAL_WORLD_VALUE_SLOPE, "2"),
            ds_elem(tags::REAL_WORLD_VALUE_INTERCEPT, "-5"),
        ]);
        o.put(dicom_core::DataElement::new(
            tags::REAL_WORLD_VALUE_MAPPING_SEQUENCE,
            dicom_core::VR::SQ,
            dicom_core::value::DataSetSequence::from(vec![item]),
        ));
    });
    for (name, f) in [
        ("rescale", (|v: f64| v * 0.5 + 10.0) as fn(f64) -> f64),
        ("rwvm", |v: f64| v * 2.0 - 5.0),
    ] {
        let d = dir.join(name);
        let s = single_series(&d, &scan_dir(&d).unwrap()).unwrap();
        let vol = PhaseSelector::Index(1).load(&s).unwrap();
        assert_eq!(vol.pixel_type, alnrisk::image::PixelType::F64);
        for k in 0..2 {
            for j in 0..3 {
                for i in 0..3 {
                    assert_eq!(vol.at(i, j, k), f(value(0, i, j, k) as f64), "{name}");
                }
            }
        }
    }
}

#[test]
fn mixed_orientations_and_duplicate_positions_are_refused() {
    use dicom_dictionary_std::tags;
    let dir = common::tmp("dicom", "mixed");
    let g = axial([3, 3, 3]);
    let (_, files) = plain_series(&dir.join("src"), "mixed", &g, 1);
    rewrite_all(&files, &dir.join("orient"), |n, o| {
        if n == 1 {
            o.put(dicom_core::DataElement::new(
                tags::IMAGE_ORIENTATION_PATIENT,
                dicom_core::VR::DS,
                dicom_core::PrimitiveValue::from("1\\0\\0\\0\\0\\-1"),
            ));
        }
    });
    expect_problem(&dir.join("orient"), "mixed orientations");
    // a fourth file at the position of the second: three positions, one of them twice
    rewrite_all(&files, &dir.join("dup"), |_, _| {});
    let mut obj = dicom_object::open_file(&files[1]).unwrap();
    obj.put(dicom_core::DataElement::new(
        tags::SOP_INSTANCE_UID,
        dicom_core::VR::UI,
        dicom_core::PrimitiveValue::from(w::uid("dup")),
    ));
    obj.write_to_file(dir.join("dup/extra.dcm")).unwrap();
    expect_problem(&dir.join("dup"), "duplicate positions");
}

#[test]
fn corrupt_element_length_is_refused_before_allocation() {
    let dir = common::tmp("dicom", "length");
    let g = axial([4, 4, 1]);
    let (_, files) = plain_series(&dir.join("src"), "length", &g, 1);
    let mut bytes = std::fs::read(&files[0]).unwrap();
    // Pixel Data (7FE0,0010) OW: tag, VR, 2 reserved bytes, then the 4-byte length
    let at = bytes
        .windows(6)
        .position(|w| w == [0xE0, 0x7F, 0x10, 0x00, b'O', b'W'])
        .unwrap();
    bytes[at + 8..at + 12].copy_from_slice(&0x7FFF_FFF0u32.to_le_bytes());
    let p = dir.join("bad.dcm");
    std::fs::write(&p, &bytes).unwrap();
    let e = alnrisk::ingest::guard::open(&p, false).unwrap_err();
    assert!(
        e.to_string().contains("declares 2147483632 bytes") && e.to_string().contains("bad.dcm"),
        "{e}"
    );
}

#[test]
fn a_revised_seg_is_a_new_object_drawn_later_with_the_outline_eroded_on_the_same_frames() {
    let dir = common::tmp("dicom", "revised-seg");
    let g = axial([9, 8, 4]);
    let (ids, _) = plain_series(&dir.join("dce"), "revised", &g, 2);
    // slice 1: a 5 × 4 block; slice 2: a 3 × 3 block with one more pixel sticking out (row 5, column 4)
    let inside = |i: usize, j: usize, k: usize| {
        (k == 1 && (2..7).contains(&i) && (1..5).contains(&j))
            || (k == 2 && (((3..6).contains(&i) && (2..5).contains(&j)) || (i, j) == (4, 5)))
    };
    let original = dir.join("seg.dcm");
    w::write_seg(&original, &ids, &g, SegOptions::default(), inside).unwrap();
    let revised = dir.join("seg-v2.dcm");
    alnrisk::synth::revision::write_revised_seg(&original, &revised, "test/revision", "113000", 1).unwrap();

    let scan = scan_dir(&dir.join("dce")).unwrap();
    let series = single_series(&dir.join("dce"), &scan).unwrap();
    let m = roi::load(&revised, &series, &RoiOptions::default()).unwrap();
    // eroded by one pixel (4-neighbourhood): the 5 × 4 block keeps its 3 × 2 interior; of the 3 × 3 block the
    // centre stays, and so does the pixel below it, whose fourth neighbour is the one sticking out
    let eroded = |i: usize, j: usize, k: usize| {
        (k == 1 && (3..6).contains(&i) && (2..4).contains(&j)) || (k == 2 && i == 4 && (3..5).contains(&j))
    };
    for k in 0..4 {
        for j in 0..8 {
            for i in 0..9 {
                assert_eq!(m.volume.at(i, j, k) == 1.0, eroded(i, j, k), "({i},{j},{k})");
            }
        }
    }
    let (a, b) = (roi::references(&original).unwrap(), roi::references(&revised).unwrap());
    assert_eq!(
        (&a.series_uids, &a.instance_uids),
        (&b.series_uids, &b.instance_uids),
        "same references"
    );
    assert_ne!(a.sop_instance_uid, b.sop_instance_uid);
    assert!(b.sop_instance_uid.is_some());
    let (drawn, redrawn) = (a.drawn_at.unwrap(), b.drawn_at.unwrap());
    assert_eq!(
        (&drawn[..8], &drawn[8..]),
        (&redrawn[..8], "100000.000000"),
        "same day, 10:00"
    );
    assert_eq!(&redrawn[8..], "113000.000000");
}
