//! Parity with PyRadiomics: every `brain1*` / `breast1*` configuration column of PyRadiomics' own baseline
//! files, and the PyRadiomics 3.1.0 reference outputs, within relative error 1e-6 (1e-5 for resampled
//! columns). The worst feature per class is printed (`cargo test --test parity -- --nocapture`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use alnrisk::image::PixelType;
use alnrisk::io::nrrd;
use alnrisk::radiomics::{Settings, extract};

fn data(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(p)
}

/// Read a `featureName,col1,col2,...` CSV into column → (row → value).
fn read_columns(path: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_path(path).unwrap();
    let headers: Vec<String> = rdr.headers().unwrap().iter().map(str::to_string).collect();
    let mut cols: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for rec in rdr.records() {
        let rec = rec.unwrap();
        for (c, h) in headers.iter().enumerate().skip(1) {
            if let Some(v) = rec.get(c) {
                cols.entry(h.clone())
                    .or_default()
                    .insert(rec[0].to_string(), v.to_string());
            }
        }
    }
    cols
}

/// PyRadiomics prints its settings as a Python dict literal; YAML's flow syntax reads it once `None` is null.
fn settings_from_python_dict(dict: &str) -> Settings {
    let yaml = dict.replace("None", "null");
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml).unwrap();
    let mut s = Settings::default();
    for (k, v) in value.as_mapping().unwrap() {
        s.apply("baseline", k.as_str().unwrap(), v).unwrap();
    }
    s
}

struct Worst {
    by_class: BTreeMap<String, (f64, String)>,
}

impl Worst {
    fn record(&mut self, class: &str, rel: f64, what: String) {
        let e = self.by_class.entry(class.to_string()).or_insert((0.0, String::new()));
        if rel >= e.0 {
            *e = (rel, what);
        }
    }
    fn print(&self, title: &str) {
        println!("{title}");
        for (c, (r, w)) in &self.by_class {
            println!("  {c:10} worst rel. error {r:.2e}  ({w})");
        }
    }
}

fn rel_err(ours: f64, reference: f64) -> f64 {
    if ours == reference {
        return 0.0;
    }
    (ours - reference).abs() / reference.abs().max(1e-12)
}

#[test]
fn pyradiomics_baseline_columns() {
    let cases = [
        ("brain1", "brain1_image.nrrd", "brain1_label.nrrd"),
        ("breast1", "breast1_image.nrrd", "breast1_label.nrrd"),
    ];
    let ref_brain1 = read_columns(&data("pyradiomics-3.1.0-reference/brain1.csv"));
    let mut worst = Worst {
        by_class: BTreeMap::new(),
    };
    let mut failures = Vec::new();
    let mut checked = 0;
    let files = std::fs::read_dir(data("pyradiomics/baseline")).unwrap();
    let mut files: Vec<PathBuf> = files.map(|e| e.unwrap().path()).collect();
    files.sort();
    for file in files {
        let class = file
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_start_matches("baseline_")
            .to_string();
        let columns = read_columns(&file);
        for (col, rows) in &columns {
            let Some((case, img, msk)) = cases
                .iter()
                .find(|(c, _, _)| col.starts_with(&format!("{c}_")) || col == c)
            else {
                continue;
            };
            let mut settings = settings_from_python_dict(&rows["diagnostics_Configuration_Settings"]);
            settings.enabled.clear();
            settings.enabled.insert(class.clone(), None);
            let mask_path = if class == "shape2D" {
                data(&format!("pyradiomics-3.1.0-reference/{case}_label_2D.nrrd"))
            } else {
                data(&format!("pyradiomics/{msk}"))
            };
            let image_path = data(&format!("pyradiomics/{img}"));
            let image = alnrisk::io::read_volume(&image_path).unwrap();
            let mask = alnrisk::io::read_volume(&mask_path).unwrap();
            let ex = extract(&image_path, &image, &mask_path, &mask, &settings)
                .unwrap_or_else(|e| panic!("{col} / {class}: {e}"));
            let tol = if col.contains("resampling") { 1e-5 } else { 1e-6 };
            for (name, value) in rows {
                if !name.starts_with("original_") {
                    continue;
                }
                let mut reference: f64 = value.parse().unwrap();
                let mesh = ["MeshVolume", "SurfaceArea", "Sphericity", "SurfaceVolumeRatio"];
                if col == "brain1" && class == "shape" && mesh.iter().any(|m| name.ends_with(m)) {
                    reference = ref_brain1["value"][name].parse().unwrap();
                }
                let Some(ours) = ex.features.get(name) else {
                    failures.push(format!("{col}: {name} missing"));
                    continue;
                };
                let rel = rel_err(ours, reference);
                checked += 1;
                worst.record(&class, rel, format!("{col} {name}: ours {ours} ref {reference}"));
                if rel.is_nan() || rel > tol {
                    failures.push(format!("{col}: {name} ours {ours} reference {reference} rel {rel:.2e}"));
                }
            }
        }
    }
    worst.print("PyRadiomics baseline columns (brain1*, breast1*):");
    println!("  {checked} values checked");
    assert!(checked > 600, "only {checked} values checked");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn check_reference(case: &str, image: &str, mask: &str, failures: &mut Vec<String>, worst: &mut Worst) -> usize {
    let image_path = data(&format!("pyradiomics/{image}"));
    let mask_path = data(&format!("pyradiomics/{mask}"));
    let ex = extract_defaults(&image_path, &mask_path);
    let mut n = 0;
    for file in [format!("{case}.csv"), format!("{case}_shape2D.csv")] {
        let cols = read_columns(&data(&format!("pyradiomics-3.1.0-reference/{file}")));
        n += compare_with_reference(case, &cols["value"], &ex, failures, worst);
    }
    n
}

/// Default-settings extraction of an image and mask file.
fn extract_defaults(image_path: &Path, mask_path: &Path) -> alnrisk::radiomics::Extraction {
    let img = alnrisk::io::read_volume(image_path).unwrap();
    let msk = alnrisk::io::read_volume(mask_path).unwrap();
    extract(image_path, &img, mask_path, &msk, &Settings::default()).unwrap()
}

/// Each reference value (feature → text) against ours: within 1e-6 relative and of the same sign; returns how many
/// were compared.
fn compare_with_reference(
    case: &str,
    reference: &BTreeMap<String, String>,
    ex: &alnrisk::radiomics::Extraction,
    failures: &mut Vec<String>,
    worst: &mut Worst,
) -> usize {
    for (name, value) in reference {
        let reference: f64 = value.parse().unwrap();
        let ours = ex.features.get(name).unwrap_or(f64::NAN);
        let rel = rel_err(ours, reference);
        let class = name.split('_').nth(1).unwrap_or("").to_string();
        worst.record(&class, rel, format!("{case} {name}: ours {ours} ref {reference}"));
        if rel.is_nan() || rel > 1e-6 || ours * reference < 0.0 {
            failures.push(format!(
                "{case}: {name} ours {ours} reference {reference} rel {rel:.2e}"
            ));
        }
    }
    reference.len()
}

#[test]
fn pyradiomics_3_1_0_reference_defaults() {
    let mut failures = Vec::new();
    let mut worst = Worst {
        by_class: BTreeMap::new(),
    };
    let mut n = check_reference(
        "brain1",
        "brain1_image.nrrd",
        "brain1_label.nrrd",
        &mut failures,
        &mut worst,
    );
    n += check_reference(
        "breast1",
        "breast1_image.nrrd",
        "breast1_label.nrrd",
        &mut failures,
        &mut worst,
    );
    worst.print("PyRadiomics 3.1.0 defaults (brain1, breast1), shape2D on the largest slice:");
    assert_eq!(n, 2 * (107 + 9));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn parallel_and_serial_extraction_agree_bitwise() {
    let image_path = data("pyradiomics/brain1_image.nrrd");
    let mask_path = data("pyradiomics/brain1_label.nrrd");
    let img = alnrisk::io::read_volume(&image_path).unwrap();
    let msk = alnrisk::io::read_volume(&mask_path).unwrap();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| extract(&image_path, &img, &mask_path, &msk, &Settings::default()).unwrap())
    };
    let (a, b) = (run(1), run(4));
    assert_eq!(a.features.len(), b.features.len());
    for ((na, va), (nb, vb)) in a.features.entries.iter().zip(&b.features.entries) {
        assert_eq!(na, nb);
        assert_eq!(va.to_bits(), vb.to_bits(), "{na}");
    }
}

/// The texture classes at neighbour distances above 1 (with force2D, and with a weighting norm), on the bundled
/// cases and on an ROI that fills its image to every face, against PyRadiomics 3.1.0
/// (`tests/golden/make_texture_distances.py`): every feature within 1e-6. The matrices look neighbours up in a
/// zero border as wide as the largest distance, so this is where a border too narrow would show.
#[test]
fn texture_features_at_distances_above_one_match_pyradiomics_3_1_0() {
    let cols = read_columns(&data("texture-distances/texture_distances.csv"));
    assert_eq!(cols.len(), 9, "3 cases × 3 settings");
    let mut failures = Vec::new();
    let mut worst = Worst {
        by_class: BTreeMap::new(),
    };
    for (column, reference) in &cols {
        let (case, json) = column.split_once('|').expect("case|settings");
        let (image, mask) = match case {
            "brain1" | "breast1" => (
                data(&format!("pyradiomics/{case}_image.nrrd")),
                data(&format!("pyradiomics/{case}_label.nrrd")),
            ),
            _ => (
                data(&format!("edge-roi/{case}_image.nrrd")),
                data(&format!("edge-roi/{case}_label.nrrd")),
            ),
        };
        let mut settings = Settings::default();
        let given: BTreeMap<String, serde_yaml_ng::Value> = serde_json::from_str(json).unwrap();
        for (key, value) in &given {
            settings.apply("test", key, value).unwrap();
        }
        settings.enabled.clear();
        for class in ["glcm", "glrlm", "glszm", "gldm", "ngtdm"] {
            settings.enabled.insert(class.to_string(), None);
        }
        let ex = extract(
            &image,
            &alnrisk::io::read_volume(&image).unwrap(),
            &mask,
            &alnrisk::io::read_volume(&mask).unwrap(),
            &settings,
        )
        .unwrap();
        let n = compare_with_reference(column, reference, &ex, &mut failures, &mut worst);
        assert_eq!(n, reference.len(), "{column}: every feature compared");
    }
    worst.print("texture features at distances above 1:");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// ROIs that reach the border of the image array (`tests/data/edge-roi`, crops of the bundled cases made and
/// measured by PyRadiomics 3.1.0 with `tests/golden/make_edge_roi.py`): every feature within 1e-6, the shape
/// features' signs included, and the diagnostics name the faces reached.
#[test]
fn rois_that_reach_the_image_border_match_pyradiomics_3_1_0() {
    let mut failures = Vec::new();
    let mut worst = Worst {
        by_class: BTreeMap::new(),
    };
    for (case, faces) in [
        ("brain1_tight", "i- i+ j- j+ k- k+"),
        ("breast1_tight", "i- i+ j- j+ k- k+"),
        ("brain1_oneface", "i-"),
    ] {
        let image_path = data(&format!("edge-roi/{case}_image.nrrd"));
        let mask_path = data(&format!("edge-roi/{case}_label.nrrd"));
        let ex = extract_defaults(&image_path, &mask_path);
        let cols = read_columns(&data(&format!("edge-roi/{case}.csv")));
        let n = compare_with_reference(case, &cols["value"], &ex, &mut failures, &mut worst);
        assert_eq!(n, 107, "{case}: PyRadiomics' default features");
        let touches = ex
            .diagnostics
            .iter()
            .find(|(k, _)| k == "diagnostics_Mask-original_TouchesImageBorder")
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{case}: no border diagnostics"));
        assert!(touches.starts_with(&format!("{faces}:")), "{case}: {touches}");
        // PyRadiomics' own bounding box, for the same faces
        let diag: BTreeMap<String, String> =
            serde_json::from_str(&std::fs::read_to_string(data(&format!("edge-roi/{case}_diagnostics.json"))).unwrap())
                .unwrap();
        let ours_bb = ex
            .diagnostics
            .iter()
            .find(|(k, _)| k == "diagnostics_Mask-original_BoundingBox")
            .map(|(_, v)| v.clone());
        assert_eq!(
            ours_bb.as_ref(),
            diag.get("diagnostics_Mask-original_BoundingBox"),
            "{case}"
        );
    }
    worst.print("ROIs at the image border (brain1, breast1 crops):");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // an ROI inside the image says nothing of the border
    let ex = extract_defaults(
        &data("pyradiomics/breast1_image.nrrd"),
        &data("pyradiomics/breast1_label.nrrd"),
    );
    assert!(!ex.diagnostics.iter().any(|(k, _)| k.contains("TouchesImageBorder")));
}

/// `extract` runs on files as they store their samples (`extract_stored`: whole-image passes row by row, only the
/// ROI's box decoded): the same features and diagnostics, to the bit, as from fully decoded volumes; settings
/// that need the whole image (normalisation, resampling) and bad masks give the same answers too.
#[test]
fn extraction_from_stored_samples_equals_extraction_from_decoded_volumes() {
    use alnrisk::radiomics::extract_stored;
    let scratch = std::env::temp_dir().join(format!("alnrisk-parity-stored-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    // a NIfTI with scl_slope 0.5 and scl_inter 3 (bytes 112 and 116 of the header), from brain1
    let brain = alnrisk::io::read_volume(&data("pyradiomics/brain1_image.nrrd")).unwrap();
    let nii = scratch.join("brain1_scaled.nii");
    alnrisk::io::nifti::write(&nii, &brain).unwrap();
    let mut bytes = std::fs::read(&nii).unwrap();
    bytes[112..116].copy_from_slice(&0.5f32.to_le_bytes());
    bytes[116..120].copy_from_slice(&3.0f32.to_le_bytes());
    std::fs::write(&nii, bytes).unwrap();
    let brain_mask_nii = scratch.join("brain1_label.nii.gz");
    let brain_mask = alnrisk::io::read_volume(&data("pyradiomics/brain1_label.nrrd")).unwrap();
    alnrisk::io::nifti::write(&brain_mask_nii, &brain_mask).unwrap();
    let normalised = Settings {
        normalize: true,
        ..Settings::default()
    };
    let mut resampled = Settings::default();
    resampled
        .apply(
            "test",
            "resampledPixelSpacing",
            &serde_yaml_ng::from_str("[2, 2, 2]").unwrap(),
        )
        .unwrap();
    let label_2 = Settings {
        label: 2,
        ..Settings::default()
    };
    // raw NRRDs above io::STREAM_MIN_BYTES, whose samples stay in the file and are read in runs of rows: brain1
    // twice over along z as big-endian shorts (the integer summary, byte-swapped), and brain1 as doubles
    let twice = |v: &alnrisk::image::Volume<f64>| {
        let mut t = v.clone();
        t.geometry.size[2] *= 2;
        t.data.extend_from_slice(&v.data);
        t
    };
    let (brain_twice, mask_twice) = (
        scratch.join("brain1_twice_be.nrrd"),
        scratch.join("brain1_twice_label.nrrd"),
    );
    let as_type = |v: alnrisk::image::Volume<f64>, pixel_type| alnrisk::image::Volume { pixel_type, ..v };
    let raw = |path: &Path, v: alnrisk::image::Volume<f64>, order| {
        alnrisk::io::nrrd::write_as(path, &v, nrrd::Encoding::Raw, order).unwrap()
    };
    raw(
        &brain_twice,
        as_type(twice(&brain), PixelType::I16),
        nrrd::ByteOrder::Big,
    );
    raw(
        &mask_twice,
        as_type(twice(&brain_mask), PixelType::U8),
        nrrd::ByteOrder::Little,
    );
    let brain_doubles = scratch.join("brain1_doubles.nrrd");
    raw(
        &brain_doubles,
        as_type(brain.clone(), PixelType::F64),
        nrrd::ByteOrder::Little,
    );
    for (big, values) in [(&brain_twice, twice(&brain)), (&brain_doubles, brain.clone())] {
        assert!(std::fs::metadata(big).unwrap().len() >= alnrisk::io::STREAM_MIN_BYTES);
        let read = alnrisk::io::read_volume(big).unwrap();
        assert_eq!(
            (read.data, read.geometry),
            (values.data, values.geometry),
            "{}",
            big.display()
        );
    }
    let cases: Vec<(PathBuf, PathBuf, Settings)> = vec![
        (brain_twice.clone(), mask_twice.clone(), Settings::default()),
        (
            brain_doubles.clone(),
            data("pyradiomics/brain1_label.nrrd"),
            Settings::default(),
        ),
        (
            data("pyradiomics/brain1_image.nrrd"),
            data("pyradiomics/brain1_label.nrrd"),
            Settings::default(),
        ),
        (
            data("pyradiomics/breast1_image.nrrd"),
            data("pyradiomics/breast1_label.nrrd"),
            Settings::default(),
        ),
        (
            data("edge-roi/brain1_tight_image.nrrd"),
            data("edge-roi/brain1_tight_label.nrrd"),
            Settings::default(),
        ),
        (nii.clone(), brain_mask_nii.clone(), Settings::default()),
        (
            data("pyradiomics/brain1_image.nrrd"),
            data("pyradiomics/brain1_label.nrrd"),
            normalised,
        ),
        (
            data("pyradiomics/breast1_image.nrrd"),
            data("pyradiomics/breast1_label.nrrd"),
            resampled,
        ),
        (
            data("pyradiomics/breast1_image.nrrd"),
            data("pyradiomics/breast1_label.nrrd"),
            label_2,
        ),
    ];
    for (image, mask, settings) in &cases {
        let decoded = extract(
            image,
            &alnrisk::io::read_volume(image).unwrap(),
            mask,
            &alnrisk::io::read_volume(mask).unwrap(),
            settings,
        );
        let stored = extract_stored(
            image,
            &alnrisk::io::read_stored(image).unwrap(),
            mask,
            &alnrisk::io::read_stored(mask).unwrap(),
            settings,
        );
        let what = format!("{} / {}", image.display(), mask.display());
        match (decoded, stored) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.diagnostics, b.diagnostics, "{what}");
                assert!(!a.features.entries.is_empty());
                let bits = |e: &alnrisk::radiomics::Extraction| {
                    e.features
                        .entries
                        .iter()
                        .map(|(k, v)| (k.clone(), v.to_bits()))
                        .collect::<Vec<_>>()
                };
                assert_eq!(bits(&a), bits(&b), "{what}");
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{what}"),
            (a, b) => panic!("{what}: decoded {:?}, stored {:?}", a.map(|_| ()), b.map(|_| ())),
        }
    }
    // the scaled NIfTI really is scaled
    let scaled = alnrisk::io::read_volume(&nii).unwrap();
    assert_eq!(scaled.data[1000], brain.data[1000] * 0.5 + 3.0);
    let _ = std::fs::remove_dir_all(&scratch);
}
