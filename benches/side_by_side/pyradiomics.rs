//! `cargo bench --bench radiomics -- --vs-pyradiomics VENV`: alnrisk against PyRadiomics 3.1.0 on the same files,
//! in one run, each as its users run it.
//!
//! - alnrisk: the whole `alnrisk extract --image … --mask … -o …` process (file reading, checks, every feature,
//!   writing the CSV), with `RAYON_NUM_THREADS=1`; its CPU time is the child's user + system time (getrusage).
//! - PyRadiomics: `RadiomicsFeatureExtractor().execute(image_path, mask_path)` with default settings in a Python
//!   process of the venv made by `shared/peer/setup_pyradiomics.sh` (`benches/peer/pyradiomics_execute.py`), with
//!   ITK, OpenMP and BLAS held to one thread; its CPU time is `time.process_time()` around the call.
//! - Both: one warm-up, then the minimum of 3. Single-threaded CPU seconds, so the number of cores does not enter.
//! - `ALNRISK_BASELINE_BIN=PATH[:PATH…]` adds columns for other alnrisk builds (earlier commits), timed the same
//!   way in the same run: before and after side by side.
//!
//! Cases: the bundled PyRadiomics cases, UCSF-BR-06 phase 2 with its SEG (written as NRRD for both; alnrisk also
//! read from DICOM + SEG, a path PyRadiomics has not), and two CT-sized volumes made here (512×512 slices of int16
//! with a textured ellipsoid ROI, one medium and one over 50,000 voxels), written as gzip NRRD as CT cohorts are,
//! and the same two stored raw (uncompressed), to show what inflating the file costs.

use std::path::{Path, PathBuf};
use std::process::Command;

use alnrisk::image::{Geometry, PixelType, Volume};

const REPS: usize = 3;

struct Case {
    name: String,
    /// What alnrisk is given (`--image`, `--mask` and any further arguments).
    ours: Vec<String>,
    /// What PyRadiomics is given, `None` where it has no reader (DICOM + SEG).
    peer: Option<(PathBuf, PathBuf)>,
    voxels: usize,
    roi_voxels: usize,
}

fn children_cpu_s() -> f64 {
    // SAFETY: getrusage fills the struct it is given; RUSAGE_CHILDREN covers the children waited for.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u
    };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    s(u.ru_utime) + s(u.ru_stime)
}

/// Min CPU seconds of REPS runs of our `extract` after one warm-up.
fn time_ours(exe: &Path, case: &Case, out: &Path) -> f64 {
    let mut best = f64::INFINITY;
    for rep in 0..=REPS {
        let before = children_cpu_s();
        let status = Command::new(exe)
            .arg("extract")
            .args(&case.ours)
            .arg("-o")
            .arg(out)
            .env("RAYON_NUM_THREADS", "1")
            .status()
            .expect("alnrisk extract runs");
        assert!(status.success(), "alnrisk extract failed on {}", case.name);
        let cpu = children_cpu_s() - before;
        if rep > 0 {
            best = best.min(cpu);
        }
    }
    best
}

/// Min CPU seconds per case of PyRadiomics' `execute()`, in one Python process.
fn time_pyradiomics(venv: &Path, cases: &[Case]) -> Vec<Option<f64>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peer/pyradiomics_execute.py");
    let mut cmd = Command::new(venv.join("bin/python"));
    cmd.arg(&script).arg(REPS.to_string());
    for (image, mask) in cases.iter().filter_map(|c| c.peer.as_ref()) {
        cmd.arg(image).arg(mask);
    }
    for var in [
        "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS",
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
    ] {
        cmd.env(var, "1");
    }
    let out = cmd.output().expect("the venv's python runs");
    assert!(
        out.status.success(),
        "PyRadiomics failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let mut times = lines.iter().map(|v| v["cpu_s"].as_f64());
    cases
        .iter()
        .map(|c| c.peer.as_ref().and_then(|_| times.next().flatten()))
        .collect()
}

/// A CT-like int16 volume of `size` with a textured ellipsoid ROI of radii `r` (voxels), deterministic.
fn ct_like(size: [usize; 3], r: [f64; 3]) -> (Volume<f64>, Volume<f64>) {
    let geometry = Geometry {
        size,
        spacing: [0.7, 0.7, 2.5],
        origin: [-179.0, -179.0, -120.0],
        direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    };
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut noise = move || {
        // xorshift64*: a uniform number in [0, 1)
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    };
    let n = size[0] * size[1] * size[2];
    let (mut image, mut mask) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let c = [size[0] as f64 / 2.0, size[1] as f64 / 2.0, size[2] as f64 / 2.0];
    for k in 0..size[2] {
        for j in 0..size[1] {
            for i in 0..size[0] {
                let d = [
                    (i as f64 - c[0]) / r[0],
                    (j as f64 - c[1]) / r[1],
                    (k as f64 - c[2]) / r[2],
                ];
                let inside = d[0] * d[0] + d[1] * d[1] + d[2] * d[2] <= 1.0;
                let texture = 60.0 * ((i as f64) * 0.21).sin() * ((j as f64) * 0.17).cos();
                let base = if inside { 40.0 + texture } else { -800.0 + 0.3 * texture };
                image.push((base + 120.0 * (noise() - 0.5)).round());
                mask.push(if inside { 1.0 } else { 0.0 });
            }
        }
    }
    (
        Volume {
            geometry: geometry.clone(),
            data: image,
            pixel_type: PixelType::I16,
        },
        Volume {
            geometry,
            data: mask,
            pixel_type: PixelType::U8,
        },
    )
}

fn write_pair(dir: &Path, name: &str, image: &Volume<f64>, mask: &Volume<f64>) -> (PathBuf, PathBuf) {
    let (i, m) = (
        dir.join(format!("{name}_image.nrrd")),
        dir.join(format!("{name}_label.nrrd")),
    );
    alnrisk::io::nrrd::write(&i, image).expect("write image");
    alnrisk::io::nrrd::write(&m, mask).expect("write mask");
    (i, m)
}

/// A copy of a gzip NRRD with its payload stored raw (`encoding: raw`), beside it.
fn raw_copy(gzip_nrrd: &Path) -> PathBuf {
    use std::io::Read;
    let bytes = std::fs::read(gzip_nrrd).expect("the NRRD just written");
    let end = bytes.windows(2).position(|w| w == b"\n\n").expect("an NRRD header") + 2;
    let header = String::from_utf8_lossy(&bytes[..end]).replace("encoding: gzip", "encoding: raw");
    let mut out = header.into_bytes();
    flate2::read::GzDecoder::new(&bytes[end..])
        .read_to_end(&mut out)
        .expect("the payload inflates");
    let name = gzip_nrrd
        .file_name()
        .expect("a file")
        .to_string_lossy()
        .replace(".nrrd", "-raw.nrrd");
    let raw = gzip_nrrd.with_file_name(name);
    std::fs::write(&raw, out).expect("write the raw copy");
    raw
}

fn nrrd_case(name: &str, image: PathBuf, mask: PathBuf) -> Case {
    let read = |p: &Path| alnrisk::io::read_volume(p).expect("readable case");
    let (img, msk) = (read(&image), read(&mask));
    Case {
        name: name.into(),
        ours: vec![
            "--image".into(),
            image.display().to_string(),
            "--mask".into(),
            mask.display().to_string(),
        ],
        voxels: img.data.len(),
        roi_voxels: msk.data.iter().filter(|&&v| v == 1.0).count(),
        peer: Some((image, mask)),
    }
}

/// Run the comparison and print the table.
pub fn run(venv: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = root.join("tests/data");
    let work = root.join("target/bench-vs-pyradiomics");
    std::fs::create_dir_all(&work).expect("work folder");
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_alnrisk"));
    let mut cases = Vec::new();
    for case in ["brain1", "breast1"] {
        let d = data.join("pyradiomics");
        cases.push(nrrd_case(
            case,
            d.join(format!("{case}_image.nrrd")),
            d.join(format!("{case}_label.nrrd")),
        ));
    }
    // UCSF-BR-06 phase 2 and its SEG (fractional, > 0), as NRRD for both tools and as DICOM for alnrisk
    let exam = data.join("tcia-breast-mri-nact-pilot/UCSF-BR-06");
    let (dicom, seg) = (exam.join("image_dce_3dfgre_orig"), exam.join("mask/1-1.dcm"));
    let scan = alnrisk::ingest::scan_dir(&dicom).expect("scan");
    let series = alnrisk::ingest::single_series(&dicom, &scan).expect("series");
    let phase2 = alnrisk::ingest::PhaseSelector::Index(2).load(&series).expect("phase 2");
    let roi = alnrisk::roi::load(&seg, &series, &alnrisk::roi::RoiOptions::default()).expect("seg");
    let mut mask = roi.volume;
    mask.pixel_type = PixelType::U8;
    let (i, m) = write_pair(&work, "ucsf-br-06-phase2", &phase2, &mask);
    cases.push(nrrd_case("UCSF-BR-06 phase 2 (NRRD)", i, m));
    let ucsf_voxels = (cases[2].voxels, cases[2].roi_voxels);
    cases.push(Case {
        name: "UCSF-BR-06 phase 2 (DICOM + SEG; alnrisk only)".into(),
        ours: vec![
            "--image".into(),
            dicom.display().to_string(),
            "--mask".into(),
            seg.display().to_string(),
            "--phase".into(),
            "2".into(),
        ],
        peer: None,
        voxels: ucsf_voxels.0,
        roi_voxels: ucsf_voxels.1,
    });
    for (name, size, radii) in [
        ("CT 512×512×60, medium ROI", [512, 512, 60], [30.0, 26.0, 9.0]),
        ("CT 512×512×100, large ROI", [512, 512, 100], [44.0, 38.0, 14.0]),
    ] {
        let (image, mask) = ct_like(size, radii);
        let file = format!("ct-{}x{}x{}", size[0], size[1], size[2]);
        let (i, m) = write_pair(&work, &file, &image, &mask);
        let (raw_i, raw_m) = (raw_copy(&i), raw_copy(&m));
        cases.push(nrrd_case(name, i, m));
        // the same volumes stored uncompressed: what the pipeline costs without inflating the file
        cases.push(nrrd_case(&format!("{name} (raw NRRD)"), raw_i, raw_m));
    }

    let peer = time_pyradiomics(venv, &cases);
    let baselines: Vec<PathBuf> = std::env::var_os("ALNRISK_BASELINE_BIN")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    println!(
        "alnrisk extract (whole process) vs PyRadiomics 3.1.0 execute(), 1 thread, CPU s, min of {REPS} after a warm-up"
    );
    let mut head = String::new();
    for b in &baselines {
        head.push_str(&format!(" {} CPU s | PyRadiomics / it |", b.display()));
    }
    println!(
        "| case | voxels | ROI voxels | PyRadiomics CPU s |{head} alnrisk CPU s | PyRadiomics / alnrisk | target |"
    );
    println!("|---|---|---|---|{}---|---|---|", "---|---|".repeat(baselines.len()));
    let out = work.join("features.csv");
    let ratio = |peer_s: &Option<f64>, ours: f64| match peer_s {
        Some(p) => format!("{:.1}×", p / ours),
        None => "—".into(),
    };
    for (case, peer_s) in cases.iter().zip(&peer) {
        let mut extra = String::new();
        for b in &baselines {
            let before = time_ours(b, case, &out);
            extra.push_str(&format!(" {before:.3} | {} |", ratio(peer_s, before)));
        }
        let ours = time_ours(&exe, case, &out);
        let target = if case.roi_voxels > 50_000 {
            "≥ 50×"
        } else {
            "≥ 20×"
        };
        let p = peer_s.map_or_else(|| "—".to_string(), |p| format!("{p:.3}"));
        println!(
            "| {} | {} | {} | {p} |{extra} {ours:.3} | {} | {target} |",
            case.name,
            case.voxels,
            case.roi_voxels,
            ratio(peer_s, ours)
        );
    }
}
