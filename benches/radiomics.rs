//! Radiomics extraction benchmark: a table of single-thread CPU seconds per feature class and in total,
//! with peak RSS, for the PyRadiomics test cases (and any extra `case image mask` triples given as
//! arguments, e.g. the UCSF-BR-06 ROI once it is exported).
//!
//! Run: `cargo bench --bench radiomics` (add `-- NAME IMAGE MASK` for more cases).

use std::path::{Path, PathBuf};
use std::time::Instant;

use alnrisk::radiomics::{Settings, extract};

fn cpu_seconds() -> f64 {
    // user + system time of this process, from /proc/self/stat (clock ticks)
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn time_class(
    image_path: &Path,
    image: &alnrisk::image::Volume<f64>,
    mask_path: &Path,
    mask: &alnrisk::image::Volume<f64>,
    class: Option<&str>,
    reps: usize,
) -> (f64, usize) {
    let mut s = Settings::default();
    if let Some(c) = class {
        s.enabled.clear();
        s.enabled.insert(c.to_string(), None);
    }
    let mut n = 0;
    let t = Instant::now();
    for _ in 0..reps {
        n = extract(image_path, image, mask_path, mask, &s)
            .expect("extraction")
            .features
            .len();
    }
    (t.elapsed().as_secs_f64() / reps as f64, n)
}

fn main() {
    // single-threaded: the targets are per core
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build_global()
        .ok();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pyradiomics");
    let mut cases: Vec<(String, PathBuf, PathBuf)> = vec![
        (
            "brain1".into(),
            root.join("brain1_image.nrrd"),
            root.join("brain1_label.nrrd"),
        ),
        (
            "breast1".into(),
            root.join("breast1_image.nrrd"),
            root.join("breast1_label.nrrd"),
        ),
    ];
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    for c in args.chunks(3) {
        if c.len() == 3 {
            cases.push((c[0].clone(), PathBuf::from(&c[1]), PathBuf::from(&c[2])));
        }
    }
    // A large, irregular, many-component ROI (a stand-in until the UCSF-BR-06 SEG can be read): brain1 voxels
    // above 350 inside a central box, written to a temporary label map.
    let brain = alnrisk::io::read_volume(&root.join("brain1_image.nrrd")).expect("brain1");
    let mut big = brain.clone();
    let [sx, sy, _] = brain.geometry.size;
    for (o, v) in big.data.iter_mut().enumerate() {
        let (x, y, z) = (o % sx, (o / sx) % sy, o / (sx * sy));
        let inside = (50..210).contains(&x)
            && (40..220).contains(&y)
            && (2..23).contains(&z)
            && brain.data[o] > 350.0;
        *v = if inside { 1.0 } else { 0.0 };
    }
    big.pixel_type = alnrisk::image::PixelType::U8;
    let big_path = std::env::temp_dir().join("alnrisk-bench-large-roi.nrrd");
    alnrisk::io::nrrd::write(&big_path, &big).expect("write large ROI");
    cases.push((
        "brain1-large-roi (synthetic)".into(),
        root.join("brain1_image.nrrd"),
        big_path,
    ));
    let classes = alnrisk::radiomics::settings::CLASSES;
    println!(
        "single thread; median-free mean of repeated runs; times in milliseconds of wall time (CPU-bound, 1 thread)"
    );
    print!("| case | ROI voxels |");
    for c in classes {
        print!(" {c} |");
    }
    println!(" total (all classes) | features | peak RSS MB |");
    print!("|---|---|");
    for _ in 0..classes.len() + 3 {
        print!("---|");
    }
    println!();
    for (name, img, msk) in &cases {
        let image = alnrisk::io::read_volume(img).expect("image");
        let mask = alnrisk::io::read_volume(msk).expect("mask");
        let voxels = mask.data.iter().filter(|&&v| v == 1.0).count();
        let reps = if voxels > 20000 { 3 } else { 20 };
        print!("| {name} | {voxels} |");
        for c in classes {
            let (t, _) = time_class(img, &image, msk, &mask, Some(c), reps);
            print!(" {:.1} |", t * 1e3);
        }
        let c0 = cpu_seconds();
        let (t, n) = time_class(img, &image, msk, &mask, None, reps);
        let cpu = (cpu_seconds() - c0) / reps as f64;
        println!(
            " {:.1} (CPU {:.1}) | {n} | {:.0} |",
            t * 1e3,
            cpu * 1e3,
            peak_rss_mb()
        );
    }
    println!(
        "\nPer-class columns include the shared preparation (checks, crop, discretisation) of each run."
    );
}
