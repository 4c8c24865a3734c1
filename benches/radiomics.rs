//! Radiomics and DICOM benchmark. Prints two tables:
//! 1. extraction: single-thread time per feature class and in total, with peak RSS, for the PyRadiomics test
//!    cases and the real UCSF-BR-06 ROI (phase 2 with its SEG, 82,527 voxels);
//! 2. DICOM assembly of UCSF-BR-06 (180 files, 3 phases): scan + split + decode of one phase.
//!
//! Run: `cargo bench --bench radiomics` (add `-- NAME IMAGE MASK ...` for more NRRD/NIfTI cases).
//!
//! `cargo bench --bench radiomics -- --vs-pyradiomics VENV` instead times alnrisk's whole `extract` process against
//! PyRadiomics 3.1.0 on the same files in the same run ([`vs_pyradiomics`]).

mod common;
#[path = "side_by_side/pyradiomics.rs"]
mod vs_pyradiomics;
use common::peak_rss_mb;
use std::path::{Path, PathBuf};
use std::time::Instant;

use alnrisk::image::Volume;
use alnrisk::ingest::{PhaseSelector, scan_dir, single_series};
use alnrisk::radiomics::{Settings, extract};
use alnrisk::roi::{self, RoiOptions};

fn cpu_seconds() -> f64 {
    // user + system time of this process, from /proc/self/stat (clock ticks)
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

struct Case {
    name: String,
    image: Volume<f64>,
    mask: Volume<f64>,
}

fn time_class(case: &Case, class: Option<&str>, reps: usize) -> (f64, usize) {
    let mut s = Settings::default();
    if let Some(c) = class {
        s.enabled.clear();
        s.enabled.insert(c.to_string(), None);
    }
    let p = Path::new(&case.name);
    let mut n = 0;
    let t = Instant::now();
    for _ in 0..reps {
        n = extract(p, &case.image, p, &case.mask, &s)
            .expect("extraction")
            .features
            .len();
    }
    (t.elapsed().as_secs_f64() / reps as f64, n)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if let Some(at) = args.iter().position(|a| a == "--vs-pyradiomics") {
        let venv = args
            .get(at + 1)
            .expect("--vs-pyradiomics VENV (made by shared/peer/setup_pyradiomics.sh)");
        vs_pyradiomics::run(Path::new(venv));
        return;
    }
    // single-threaded: the targets are per core
    rayon::ThreadPoolBuilder::new().num_threads(1).build_global().ok();
    // (the DICOM scan below then also runs on one thread)
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let root = data.join("pyradiomics");
    let read = |p: PathBuf| alnrisk::io::read_volume(&p).expect("readable test volume");
    let mut cases = vec![
        Case {
            name: "brain1".into(),
            image: read(root.join("brain1_image.nrrd")),
            mask: read(root.join("brain1_label.nrrd")),
        },
        Case {
            name: "breast1".into(),
            image: read(root.join("breast1_image.nrrd")),
            mask: read(root.join("breast1_label.nrrd")),
        },
    ];

    // UCSF-BR-06 from DICOM, timed separately as table 2
    let dir = data.join("tcia-breast-mri-nact-pilot/UCSF-BR-06/image_dce_3dfgre_orig");
    let seg = data.join("tcia-breast-mri-nact-pilot/UCSF-BR-06/mask/1-1.dcm");
    let mut assembly = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let scan = scan_dir(&dir).expect("scan");
        let t_scan = t.elapsed().as_secs_f64();
        let series = single_series(&dir, &scan).expect("series");
        let image = PhaseSelector::Index(2).load(&series).expect("phase 2");
        let t_total = t.elapsed().as_secs_f64();
        let t2 = Instant::now();
        let mask = roi::load(
            &seg,
            &series,
            &RoiOptions {
                fractional_threshold: 0.0,
                ..RoiOptions::default()
            },
        )
        .expect("seg");
        let t_seg = t2.elapsed().as_secs_f64();
        assembly.push((t_scan, t_total, t_seg));
        if cases.len() == 2 {
            cases.push(Case {
                name: "UCSF-BR-06 phase 2 (DICOM + SEG)".into(),
                image,
                mask: mask.volume,
            });
        }
    }

    for c in args.chunks(3) {
        if c.len() == 3 {
            cases.push(Case {
                name: c[0].clone(),
                image: read(PathBuf::from(&c[1])),
                mask: read(PathBuf::from(&c[2])),
            });
        }
    }
    let classes = alnrisk::radiomics::settings::CLASSES;
    println!("Table 1 — extraction, 1 thread, mean milliseconds per run (I/O excluded)");
    print!("| case | ROI voxels |");
    for c in classes {
        print!(" {c} |");
    }
    println!(" total | total CPU | features | peak RSS MB |");
    print!("|---|---|");
    for _ in 0..classes.len() + 4 {
        print!("---|");
    }
    println!();
    for case in &cases {
        let voxels = case.mask.data.iter().filter(|&&v| v == 1.0).count();
        let reps = if voxels > 20000 { 5 } else { 20 };
        print!("| {} | {voxels} |", case.name);
        for c in classes {
            let (t, _) = time_class(case, Some(c), reps);
            print!(" {:.1} |", t * 1e3);
        }
        let c0 = cpu_seconds();
        let (t, n) = time_class(case, None, reps);
        let cpu = (cpu_seconds() - c0) / reps as f64;
        println!(" {:.1} | {:.1} | {n} | {:.0} |", t * 1e3, cpu * 1e3, peak_rss_mb());
    }
    println!("\nPer-class columns include the shared preparation (checks, crop, discretisation) of each run.");

    assembly.sort_by(|a, b| a.1.total_cmp(&b.1));
    let (s, t, g) = assembly[assembly.len() / 2];
    println!("\nTable 2 — DICOM assembly of UCSF-BR-06 (180 files, 24 MB), median of 5, 1 thread");
    println!("| step | ms |\n|---|---|");
    println!("| scan headers + split phases + grid | {:.1} |", s * 1e3);
    println!("| + decode phase 2 (60 files) | {:.1} |", t * 1e3);
    println!("| SEG onto the grid | {:.1} |", g * 1e3);
}
