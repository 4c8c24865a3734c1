//! Command-line interface (clap). Errors from the library are reported through `anyhow` with their context
//! and a non-zero exit status.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use rayon::prelude::*;

use alnrisk::ingest::PhaseSelector;
use alnrisk::radiomics::{self, Extraction, Settings};
use alnrisk::roi::{RoiChoice, RoiOptions};

#[derive(Parser)]
#[command(
    name = "alnrisk",
    version,
    about = "Axillary lymph node metastasis risk from breast DCE-MRI (Wang et al. 2022)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Csv,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Compute PyRadiomics-compatible radiomics features of an image inside a label-map ROI.
    Extract {
        /// Image: NRRD or NIfTI file, or a folder holding one DICOM MR examination.
        #[arg(long, required_unless_present = "batch")]
        image: Option<PathBuf>,
        /// ROI: label map (NRRD/NIfTI) on the image grid, or (with a DICOM image) a SEG or RTSTRUCT file.
        #[arg(long, required_unless_present = "batch")]
        mask: Option<PathBuf>,
        /// DICOM phase: N (1-based), first-post-contrast (default), or a subtraction A-B.
        #[arg(long, default_value = "first-post-contrast")]
        phase: PhaseSelector,
        /// SEG segment / RTSTRUCT structure: number or label (default: the first).
        #[arg(long, default_value = "")]
        segment: String,
        /// FRACTIONAL SEG threshold, as a fraction of MaximumFractionalValue (0 keeps every non-zero voxel).
        #[arg(long, default_value_t = 0.5)]
        seg_threshold: f64,
        /// Label value of the ROI (overrides the parameter file).
        #[arg(long)]
        label: Option<i64>,
        /// PyRadiomics parameter file (YAML: setting / imageType / featureClass).
        #[arg(long)]
        params: Option<PathBuf>,
        /// Output format for a single case.
        #[arg(long, value_enum, default_value = "csv")]
        format: Format,
        /// Cohort CSV with columns id,image,mask; cases run in parallel.
        #[arg(long, conflicts_with_all = ["image", "mask"])]
        batch: Option<PathBuf>,
        /// Output file (default: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// VGG-16 deep features of the largest ROI cross-section.
    Deep(DeepArgs),
    /// Generate the SYNTHETIC DCE-MRI cohort (DICOM series + ROI + cohort.csv), or replay one examination.
    Synth(SynthArgs),
    /// Fit the study's model on a cohort: features, selection, classifiers, nomogram; write a signed bundle and a report.
    Fit(Box<FitArgs>),
    /// Predict one examination with a bundle; prints the JSON result the daemon publishes.
    Predict(PredictArgs),
    /// Run the scanner-side daemon: watch the export folder, compute, publish over MQTT (see firmware-config/).
    Serve {
        /// Configuration file (firmware-config/alnrisk.toml or dev.toml).
        #[arg(long)]
        config: PathBuf,
        /// Validate the configuration and the bundle, then exit.
        #[arg(long)]
        check: bool,
    },
    /// Make an ed25519 key pair for signing bundles: PREFIX.key (secret) and PREFIX.pub.
    Keygen {
        /// Path prefix of the two files.
        #[arg(long, default_value = "alnrisk-signing")]
        out: PathBuf,
    },
    /// List the studies, series, phases, geometry, ROI objects and problems found in a DICOM folder.
    Inspect {
        /// Folder to scan (recursively).
        dir: PathBuf,
    },
    /// The product end to end on a SYNTHETIC cohort: synth → fit + sign → serve → replay three exams → MQTT → LN read → metrics.
    Demo(crate::demo::DemoArgs),
    /// Benchmark the daemon: last file → result latency (p50/p95) and 20 queued examinations (time, peak RSS).
    #[command(name = "bench-e2e")]
    BenchE2e(crate::bench_e2e::BenchArgs),
    /// Radiomics parity with PyRadiomics on its own test images, then synthetic DICOM → radiomics → VGG-16.
    Parity {
        /// Folder holding `pyradiomics/` and `pyradiomics-3.1.0-reference/` (default: the repository's tests/data).
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct SynthArgs {
    #[command(subcommand)]
    command: Option<SynthCommand>,
    /// Number of patients.
    #[arg(long, default_value_t = alnrisk::synth::cohort::CohortSpec::default().patients)]
    patients: usize,
    /// Seed (same seed, same bytes).
    #[arg(long, default_value_t = alnrisk::synth::cohort::CohortSpec::default().seed)]
    seed: u64,
    /// Output folder.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Export style of the examinations.
    #[arg(long, value_enum, default_value = "ge")]
    vendor: alnrisk::synth::cohort::Vendor,
    /// ROI format.
    #[arg(long, value_enum, default_value = "seg")]
    roi: alnrisk::synth::cohort::RoiFormat,
    /// In-plane matrix.
    #[arg(long, default_value_t = alnrisk::synth::phantom::PhantomSpec::default().matrix)]
    matrix: usize,
    /// Slices.
    #[arg(long, default_value_t = alnrisk::synth::phantom::PhantomSpec::default().slices)]
    slices: usize,
    /// Dynamic phases (the first is pre-contrast).
    #[arg(long, default_value_t = alnrisk::synth::phantom::PhantomSpec::default().phases)]
    phases: usize,
    /// Signal-to-noise ratio of fibroglandular tissue before contrast.
    #[arg(long, default_value_t = alnrisk::synth::phantom::PhantomSpec::default().snr)]
    snr: f64,
    /// Do not jitter the reader's ROI by ±1 voxel.
    #[arg(long)]
    no_roi_jitter: bool,
}

#[derive(Subcommand)]
enum SynthCommand {
    /// Copy one examination into a (watched) export folder the way a console writes it.
    Replay {
        /// The examination folder (e.g. DIR/SYN0001).
        #[arg(long)]
        from: PathBuf,
        /// The export folder.
        #[arg(long)]
        to: PathBuf,
        /// Pause between files, e.g. 20ms, 1s.
        #[arg(long, default_value = "20ms", value_parser = parse_duration)]
        pace: std::time::Duration,
        /// How files appear.
        #[arg(long, value_enum, default_value = "atomic")]
        style: alnrisk::synth::replay::ReplayStyle,
    },
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "ms"));
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (e.g. 20ms, 1s)"))?;
    let secs = match unit {
        "ms" => v / 1e3,
        "s" => v,
        "us" => v / 1e6,
        _ => return Err(format!("unknown unit in '{s}' (ms, s, us)")),
    };
    if !(secs >= 0.0 && secs.is_finite()) {
        return Err(format!("'{s}' is not a non-negative duration"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

fn synth(args: SynthArgs) -> anyhow::Result<ExitCode> {
    use alnrisk::synth::{cohort, phantom::PhantomSpec};
    if let Some(SynthCommand::Replay { from, to, pace, style }) = args.command {
        let files = alnrisk::synth::replay::replay(&from, &to, pace, style)?;
        eprintln!(
            "replayed {} files of a SYNTHETIC examination into {}",
            files.len(),
            to.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let out = args.out.context("synth needs --out DIR")?;
    if args.matrix < 32 || args.slices < 8 || args.phases < 2 || args.patients == 0 {
        bail!("synth needs --matrix ≥ 32, --slices ≥ 8, --phases ≥ 2 and at least one patient");
    }
    let spec = cohort::CohortSpec {
        patients: args.patients,
        seed: args.seed,
        vendor: args.vendor,
        roi: args.roi,
        image: PhantomSpec {
            matrix: args.matrix,
            slices: args.slices,
            phases: args.phases,
            snr: args.snr,
        },
        roi_jitter: !args.no_roi_jitter,
    };
    let t = std::time::Instant::now();
    let summary = cohort::write_cohort(&spec, &out)?;
    let pos = summary.patients.iter().filter(|p| p.aln).count();
    let train = summary.patients.iter().filter(|p| p.cohort == "train").count();
    eprintln!(
        "SYNTHETIC cohort: {} patients ({pos} ALN+, {train} train / {} test) written to {} in {:.1} s",
        summary.patients.len(),
        summary.patients.len() - train,
        out.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// Entry point.
pub fn run() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(args) => crate::demo::run(args),
        Command::Parity { data } => parity(data),
        Command::BenchE2e(args) => crate::bench_e2e::run(args),
        Command::Inspect { dir } => inspect(&dir),
        Command::Synth(args) => synth(args),
        Command::Deep(args) => deep(args),
        Command::Fit(args) => fit(*args),
        Command::Predict(args) => predict(args),
        Command::Serve { config, check } => {
            let cfg = alnrisk::daemon::config::DaemonConfig::load(&config)?;
            if check {
                let b = alnrisk::daemon::load_bundle(&cfg)?;
                println!(
                    "{}: configuration valid; bundle {} ({}, {})",
                    config.display(),
                    b.manifest.bundle_id,
                    b.manifest.version,
                    if b.signed { "signed" } else { "UNSIGNED" }
                );
                return Ok(ExitCode::SUCCESS);
            }
            alnrisk::daemon::serve(cfg)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Keygen { out } => {
            let (secret, public) = alnrisk::model::bundle::keygen(&out)?;
            println!(
                "secret key: {} (keep it off the appliance)\npublic key: {} (install on the appliance)",
                secret.display(),
                public.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Extract {
            image,
            mask,
            label,
            params,
            format,
            batch,
            output,
            phase,
            segment,
            seg_threshold,
        } => {
            let roi = RoiOptions {
                choice: if segment.is_empty() {
                    RoiChoice::First
                } else {
                    segment.parse().unwrap_or_default()
                },
                fractional_threshold: seg_threshold,
            };
            let input = Inputs { phase, roi };
            let mut settings = match &params {
                Some(p) => Settings::from_yaml_file(p)?,
                None => Settings::default(),
            };
            if let Some(l) = label {
                settings.label = l;
            }
            if let Some(b) = batch {
                let out = output.context("--batch needs -o/--output for the feature table")?;
                return run_batch(&b, &out, &settings, &input);
            }
            let (image, mask) = (
                image.context("--image is required")?,
                mask.context("--mask is required")?,
            );
            let ex = extract_files(&image, &mask, &settings, &input)?;
            let text = match format {
                Format::Csv => {
                    let mut s = String::from("feature,value\n");
                    for (k, v) in &ex.diagnostics {
                        s.push_str(&format!("{},{}\n", k, csv_field(v)));
                    }
                    for (k, v) in &ex.features.entries {
                        s.push_str(&format!("{k},{v:?}\n"));
                    }
                    s
                }
                Format::Json => {
                    let mut m = serde_json::Map::new();
                    for (k, v) in &ex.diagnostics {
                        m.insert(k.clone(), serde_json::Value::String(v.clone()));
                    }
                    for (k, v) in &ex.features.entries {
                        m.insert(k.clone(), serde_json::json!(v));
                    }
                    serde_json::to_string_pretty(&m)? + "\n"
                }
            };
            write_out(output.as_deref(), &text)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Logs: journald when the process runs under systemd (`JOURNAL_STREAM` set and the socket answers), else stderr.
/// `RUST_LOG` sets the level (default `warn`; `alnrisk serve` logs at `info` unless told otherwise).
fn init_logging() {
    use tracing_subscriber::prelude::*;
    let serving = std::env::args().nth(1).as_deref() == Some("serve");
    let default = if serving { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let journald = std::env::var_os("JOURNAL_STREAM")
        .is_some()
        .then(|| tracing_journald::layer().ok())
        .flatten();
    match journald {
        Some(layer) => tracing_subscriber::registry().with(filter).with(layer).init(),
        None => tracing_subscriber::registry()
            .with(filter)
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .init(),
    }
}

fn parity(data: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let root = data.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data"));
    println!("alnrisk parity — radiomics engine (PyRadiomics-compatible), on PyRadiomics' own test images.");
    println!("These are public research images, not patient data of this site.\n");
    println!("| case | ROI voxels | features | worst rel. error vs PyRadiomics 3.1.0 | time (ms) |");
    println!("|---|---|---|---|---|");
    let mut worst_all = 0.0f64;
    for case in ["brain1", "breast1"] {
        let image = root.join(format!("pyradiomics/{case}_image.nrrd"));
        let mask = root.join(format!("pyradiomics/{case}_label.nrrd"));
        let t = std::time::Instant::now();
        let ex = extract_files(&image, &mask, &Settings::default(), &Inputs::default())?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let mut worst = (0.0f64, String::new());
        for file in [format!("{case}.csv"), format!("{case}_shape2D.csv")] {
            let path = root.join("pyradiomics-3.1.0-reference").join(file);
            let mut rdr = csv::Reader::from_path(&path).with_context(|| format!("reading {}", path.display()))?;
            for rec in rdr.records() {
                let rec = rec?;
                let reference: f64 = rec[1].parse()?;
                let ours = ex.features.get(&rec[0]).unwrap_or(f64::NAN);
                let rel = if ours == reference {
                    0.0
                } else {
                    (ours - reference).abs() / reference.abs().max(1e-12)
                };
                if rel.is_nan() || rel >= worst.0 {
                    worst = (if rel.is_nan() { f64::INFINITY } else { rel }, rec[0].to_string());
                }
            }
        }
        worst_all = worst_all.max(worst.0);
        let voxels = ex
            .diagnostics
            .iter()
            .find(|(k, _)| k == "diagnostics_Mask-original_VoxelNum")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        println!(
            "| {case} | {voxels} | {} | {:.1e} ({}) | {ms:.1} |",
            ex.features.len(),
            worst.0,
            worst.1
        );
    }
    demo_chain()?;
    println!("\nFeature values: `alnrisk extract --image IMG --mask MASK` (see README).");
    Ok(if worst_all <= 1e-6 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The chain so far on three SYNTHETIC patients: DICOM export → ingest → radiomics → VGG-16 fc7.
fn demo_chain() -> anyhow::Result<()> {
    use alnrisk::synth::{cohort, phantom::PhantomSpec};
    let dir = std::env::temp_dir().join(format!("alnrisk-demo-{}", std::process::id()));
    let spec = cohort::CohortSpec {
        patients: 3,
        image: PhantomSpec {
            matrix: 128,
            slices: 32,
            ..PhantomSpec::default()
        },
        ..cohort::CohortSpec::default()
    };
    println!(
        "\nSYNTHETIC DATA: three generated patients (not patient data), written as a GE console would export them,"
    );
    println!("then read back: DICOM series + SEG → phase 2 → radiomics (116 features) and VGG-16 fc7 (Q8_0).");
    println!("The VGG weights are seeded and UNTRAINED here (fine-tuning on a cohort comes with `fit`).\n");
    let t = std::time::Instant::now();
    let summary = cohort::write_cohort(&spec, &dir)?;
    println!(
        "generated {} examinations in {:.1} s under {}",
        summary.patients.len(),
        t.elapsed().as_secs_f64(),
        dir.display()
    );
    let cfg = alnrisk::deep::VggConfig::vgg16(2);
    let weights = alnrisk::deep::vgg::he_init(&cfg, 0)?;
    let mut net = alnrisk::deep::Vgg16::from_tensors(cfg, &weights, Path::new("he-init"), &candle_core::Device::Cpu)?;
    net.quantize_dense()?;
    println!(
        "\n| patient | ALN (planted) | ROI voxels | shape MeshVolume mm³ | firstorder Mean | glcm Contrast | ‖fc7‖ | ms |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for p in &summary.patients {
        let t = std::time::Instant::now();
        let dce = dir.join(&p.id).join("dce");
        let seg = dir.join(&p.id).join("roi").join("seg.dcm");
        let loaded = load_inputs(&dce, &seg, &Inputs::default())?;
        let ex = radiomics::extract(&dce, &loaded.image, &seg, &loaded.mask, &Settings::default())?;
        let crop = alnrisk::deep::crop_largest_slice(&loaded.image, &loaded.mask, 1.0, 0)?;
        let out = net.forward(&alnrisk::deep::batch(
            std::slice::from_ref(&crop),
            &candle_core::Device::Cpu,
        )?)?;
        let fc7: Vec<f32> = out
            .fc7
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let norm = fc7.iter().map(|v| v * v).sum::<f32>().sqrt();
        let voxels = loaded.mask.data.iter().filter(|&&v| v == 1.0).count();
        let f = |n: &str| ex.features.get(n).unwrap_or(f64::NAN);
        println!(
            "| {} | {} | {voxels} | {:.0} | {:.1} | {:.2} | {norm:.1} | {:.0} |",
            p.id,
            u8::from(p.aln),
            f("original_shape_MeshVolume"),
            f("original_firstorder_Mean"),
            f("original_glcm_Contrast"),
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn inspect(dir: &Path) -> anyhow::Result<ExitCode> {
    let scan = alnrisk::ingest::scan_dir(dir)?;
    println!("{}", dir.display());
    for study in &scan.studies {
        println!("study {}", study.uid);
        for s in &study.series {
            let g = &s.geometry;
            println!(
                "  series {} #{} '{}' {} — {} phase(s) × {} slices (split by {:?})",
                s.series_uid,
                s.series_number.map(|n| n.to_string()).unwrap_or_default(),
                s.description,
                s.modality,
                s.phases.len(),
                g.size[2],
                s.rule
            );
            println!(
                "    grid {}×{}×{}, spacing ({:.4}, {:.4}, {:.4}) mm, origin ({:.3}, {:.3}, {:.3})",
                g.size[0],
                g.size[1],
                g.size[2],
                g.spacing[0],
                g.spacing[1],
                g.spacing[2],
                g.origin[0],
                g.origin[1],
                g.origin[2]
            );
            let o = g.orientation_cosines();
            let n = [g.direction[0][2], g.direction[1][2], g.direction[2][2]];
            println!("    row {:.4?} col {:.4?} normal {n:.4?}", &o[..3], &o[3..]);
            for w in &s.warnings {
                println!("    warning: {w}");
            }
        }
        if study.series.iter().all(|s| s.phases.len() == 1)
            && let Some(l) = alnrisk::ingest::series::link_dce(study)
        {
            println!("  → {}", l.description);
        }
    }
    for (path, class) in &scan.roi_objects {
        let kind = if class == alnrisk::ingest::header::SEGMENTATION {
            "SEG"
        } else {
            "RTSTRUCT"
        };
        println!("ROI object {kind}: {}", path.display());
    }
    for p in &scan.problems {
        println!("problem: {p}");
    }
    println!(
        "{} study(ies), {} series, {} ROI object(s), {} problem(s)",
        scan.studies.len(),
        scan.studies.iter().map(|s| s.series.len()).sum::<usize>(),
        scan.roi_objects.len(),
        scan.problems.len()
    );
    Ok(ExitCode::SUCCESS)
}

use alnrisk::fit::report::csv_cell as csv_field;

fn write_out(path: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match path {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?,
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(())
}

/// How DICOM inputs are turned into an image and a mask.
type Inputs = alnrisk::case::CaseInputs;

fn load_inputs(image: &Path, mask: &Path, input: &Inputs) -> anyhow::Result<alnrisk::case::LoadedCase> {
    Ok(alnrisk::case::load_case(image, mask, input)?)
}

/// Read an image (file or DICOM folder) and a mask and extract.
pub fn extract_files(image: &Path, mask: &Path, settings: &Settings, input: &Inputs) -> anyhow::Result<Extraction> {
    let loaded = load_inputs(image, mask, input)?;
    let mut ex = radiomics::extract(image, &loaded.image, mask, &loaded.mask, settings)?;
    ex.diagnostics.extend(loaded.notes);
    Ok(ex)
}

#[derive(clap::Args)]
struct DeepArgs {
    /// Image: NRRD or NIfTI file, or a folder holding one DICOM MR examination.
    #[arg(long)]
    image: PathBuf,
    /// ROI: label map, or (with a DICOM image) a SEG or RTSTRUCT file.
    #[arg(long)]
    mask: PathBuf,
    /// DICOM phase: N, first-post-contrast (default) or A-B.
    #[arg(long, default_value = "first-post-contrast")]
    phase: PhaseSelector,
    /// Label of the ROI in a label map.
    #[arg(long, default_value_t = 1)]
    label: i64,
    /// Weights (safetensors, torchvision names). Without it: seeded He-initialised weights (UNTRAINED).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Fully connected layers in f32 (`none`) or Q8_0 (`q8`).
    #[arg(long, default_value = "none")]
    quant: String,
    /// Which activations: fc6, fc7 (default) or logits.
    #[arg(long, default_value = "fc7")]
    layer: String,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    device: alnrisk::deep::DeviceChoice,
    /// Voxels added around the ROI's bounding box.
    #[arg(long, default_value_t = 0)]
    margin: usize,
    /// Write the exact network input (1×3×224×224, f32) as a NumPy .npy file.
    #[arg(long)]
    dump_input: Option<PathBuf>,
    /// Output CSV (default: standard output).
    #[arg(short, long)]
    output: Option<PathBuf>,
}

fn deep(a: DeepArgs) -> anyhow::Result<ExitCode> {
    use alnrisk::deep::{self, Vgg16, VggConfig};
    if !["fc6", "fc7", "logits"].contains(&a.layer.as_str()) {
        bail!("--layer must be fc6, fc7 or logits");
    }
    if !["none", "q8"].contains(&a.quant.as_str()) {
        bail!("--quant must be none or q8");
    }
    let loaded = load_inputs(
        &a.image,
        &a.mask,
        &Inputs {
            phase: a.phase,
            roi: RoiOptions::default(),
        },
    )?;
    let crop = deep::crop_largest_slice(&loaded.image, &loaded.mask, a.label as f64, a.margin)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.mask.display()))?;
    let (device, note) = a.device.open()?;
    if let Some(n) = note {
        eprintln!("note: {n}");
    }
    let mut net = match &a.weights {
        Some(w) => {
            let bytes = std::fs::read(w).with_context(|| format!("reading {}", w.display()))?;
            let tensors = candle_core::safetensors::load_buffer(&bytes, &candle_core::Device::Cpu)
                .map_err(|e| anyhow::anyhow!("{}: not a readable safetensors file: {e}", w.display()))?;
            Vgg16::from_tensors(VggConfig::vgg16_like(&tensors), &tensors, w, &device)?
        }
        None => {
            eprintln!(
                "WARNING: no --weights: seeded He-initialised VGG-16 (UNTRAINED); the features are not meaningful for prediction"
            );
            let cfg = VggConfig::vgg16(2);
            let t = deep::vgg::he_init(&cfg, 0)?;
            Vgg16::from_tensors(cfg, &t, Path::new("he-init(seed 0)"), &device)?
        }
    };
    if a.quant == "q8" {
        net.quantize_dense()?;
    }
    let input = deep::batch(std::slice::from_ref(&crop), &candle_core::Device::Cpu)?;
    if let Some(p) = &a.dump_input {
        let data: Vec<f32> = input
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        deep::npy::write_f32(p, &[1, 3, 224, 224], &data)?;
    }
    let out = net.forward(&input)?;
    let t = match a.layer.as_str() {
        "fc6" => out.fc6,
        "logits" => out.logits,
        _ => out.fc7,
    };
    let values: Vec<f32> = t
        .flatten_all()
        .and_then(|t| t.to_vec1())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut text = String::from("feature,value\n");
    text.push_str(&format!("diagnostics_deep_Slice,{}\n", crop.slice));
    text.push_str(&format!("diagnostics_deep_Crop,{}x{}\n", crop.rows, crop.cols));
    let source = a
        .weights
        .as_ref()
        .map(|w| w.display().to_string())
        .unwrap_or_else(|| "UNTRAINED he-init seed 0".into());
    text.push_str(&format!("diagnostics_deep_Weights,{}\n", csv_field(&source)));
    for (k, v) in loaded.notes {
        text.push_str(&format!("{k},{}\n", csv_field(&v)));
    }
    for (n, v) in values.iter().enumerate() {
        text.push_str(&format!("deep_{}_{n:04},{v:?}\n", a.layer));
    }
    write_out(a.output.as_deref(), &text)?;
    Ok(ExitCode::SUCCESS)
}

fn run_batch(cohort: &Path, out: &Path, settings: &Settings, input: &Inputs) -> anyhow::Result<ExitCode> {
    let base = cohort.parent().unwrap_or(Path::new("."));
    let mut rdr = csv::Reader::from_path(cohort).with_context(|| format!("reading {}", cohort.display()))?;
    let headers = rdr.headers()?.clone();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let (Some(ci), Some(cimg), Some(cmask)) = (col("id"), col("image"), col("mask")) else {
        bail!("{}: the cohort CSV needs the columns id,image,mask", cohort.display());
    };
    let mut cases = Vec::new();
    for (row, rec) in rdr.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: row {}", cohort.display(), row + 2))?;
        let resolve = |s: &str| {
            let p = PathBuf::from(s.trim());
            if p.is_absolute() { p } else { base.join(p) }
        };
        cases.push((rec[ci].trim().to_string(), resolve(&rec[cimg]), resolve(&rec[cmask])));
    }
    let results: Vec<(String, anyhow::Result<Extraction>)> = cases
        .par_iter()
        .map(|(id, img, msk)| (id.clone(), extract_files(img, msk, settings, input)))
        .collect();
    let mut names: Vec<String> = Vec::new();
    for (_, r) in &results {
        if let Ok(ex) = r {
            names = ex.features.entries.iter().map(|(k, _)| k.clone()).collect();
            break;
        }
    }
    let mut text = String::from("id,status,error");
    for n in &names {
        text.push(',');
        text.push_str(n);
    }
    text.push('\n');
    let mut failed = 0;
    for (id, r) in &results {
        match r {
            Ok(ex) => {
                text.push_str(&format!("{},ok,", csv_field(id)));
                for n in &names {
                    text.push_str(&format!(",{:?}", ex.features.get(n).unwrap_or(f64::NAN)));
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("case {id}: {e:#}");
                text.push_str(&format!("{},failed,{}", csv_field(id), csv_field(&format!("{e:#}"))));
                for _ in &names {
                    text.push(',');
                }
            }
        }
        text.push('\n');
    }
    write_out(Some(out), &text)?;
    eprintln!("{} case(s) extracted, {failed} failed", results.len() - failed);
    Ok(if failed > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(clap::Args)]
struct FitArgs {
    /// Cohort CSV (columns: id, series_dir, roi, aln_status, [cohort], [exam_date], clinical factors).
    #[arg(long)]
    cohort: PathBuf,
    /// Bundle folder to write.
    #[arg(long)]
    out: PathBuf,
    /// Report folder (report.html, report.md, CSV tables, figures, data/).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Feature cache folder (default: OUT/../.alnrisk-cache).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Starting VGG-16 weights (torchvision-named safetensors, e.g. ImageNet via models/convert_torchvision_vgg16.py).
    /// Without it: seeded He initialisation.
    #[arg(long)]
    cnn_init: Option<PathBuf>,
    /// Fine-tuning mode.
    #[arg(long, value_enum, default_value = "head")]
    finetune: alnrisk::deep::finetune::FinetuneMode,
    /// Augmented views per training crop (head mode; 2 keeps the 151-patient fit under 5 minutes on 2 cores).
    #[arg(long, default_value_t = 2)]
    views: usize,
    /// Maximum fine-tuning epochs (the study's 100).
    #[arg(long, default_value_t = 100)]
    epochs: usize,
    /// Early stopping: epochs without a better validation loss before stopping.
    #[arg(long, default_value_t = 5)]
    patience: usize,
    /// Deep feature layer: fc6, fc7 or logits.
    #[arg(long, default_value = "fc7")]
    layer: String,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    device: alnrisk::deep::DeviceChoice,
    /// DICOM phase.
    #[arg(long, default_value = "first-post-contrast")]
    phase: PhaseSelector,
    /// PyRadiomics parameter file (default: the study's settings, binWidth 25, original image).
    #[arg(long)]
    params: Option<PathBuf>,
    /// Split by exam date (YYYY-MM-DD) when the cohort has no `cohort` column.
    #[arg(long)]
    split_date: Option<String>,
    /// Welch's t-test instead of Student's.
    #[arg(long)]
    welch: bool,
    /// λ.1se instead of λ.min.
    #[arg(long)]
    lambda_1se: bool,
    /// Fit the nomogram on in-sample signature values instead of their out-of-fold (pre-validated) values.
    #[arg(long)]
    in_sample_signatures: bool,
    /// Clinical columns allowed into the nomogram (comma-separated; default: all).
    #[arg(long, value_delimiter = ',')]
    clinical_candidates: Option<Vec<String>>,
    /// Signing key (from `alnrisk keygen`).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Reduced-width VGG (channels / N, 256 hidden) — for tests and quick looks only, not the study's network.
    #[arg(long, hide = true)]
    vgg_scale: Option<usize>,
}

fn fit(a: FitArgs) -> anyhow::Result<ExitCode> {
    use alnrisk::deep::finetune::FinetuneConfig;
    use alnrisk::fit::{self, DeepSettings, FitConfig, SelectOptions};
    let started = std::time::Instant::now();
    let settings = match &a.params {
        Some(p) => Settings::from_yaml_file(p)?,
        None => Settings::default(),
    };
    let (device, note) = a.device.open()?;
    if let Some(n) = note {
        eprintln!("note: {n}");
    }
    let config = match a.vgg_scale {
        Some(div) => alnrisk::deep::VggConfig::scaled(div.max(1), 256, 2),
        None => alnrisk::deep::VggConfig::vgg16(2),
    };
    let key = a
        .key
        .as_deref()
        .map(alnrisk::model::bundle::read_signing_key)
        .transpose()?;
    let cache = a
        .cache
        .clone()
        .or_else(|| a.out.parent().map(|p| p.join(".alnrisk-cache")));
    let cfg = FitConfig {
        cohort: a.cohort.clone(),
        out: a.out.clone(),
        report: a.report.clone(),
        cache,
        settings,
        inputs: Inputs {
            phase: a.phase,
            roi: RoiOptions::default(),
        },
        crop_margin: 0,
        deep: DeepSettings {
            init: a.cnn_init.clone(),
            finetune: FinetuneConfig {
                mode: a.finetune,
                epochs: a.epochs,
                views: a.views,
                patience: a.patience,
                seed: a.seed,
                ..FinetuneConfig::default()
            },
            layer: a.layer.clone(),
            config,
            device,
        },
        split_date: a.split_date.clone(),
        seed: a.seed,
        select: SelectOptions {
            welch: a.welch,
            one_se: a.lambda_1se,
            folds: 10,
            seed: a.seed,
        },
        clinical_candidates: a.clinical_candidates.clone(),
        key,
        bootstrap: 200,
        in_sample_signatures: a.in_sample_signatures,
    };
    let o = fit::run(&cfg)?;
    print_fit_summary(&o);
    println!(
        "\ntotal {:.1} s; bundle {} (sha256 {}) in {}",
        started.elapsed().as_secs_f64(),
        o.manifest.bundle_id,
        o.bundle_sha256,
        a.out.display()
    );
    if let Some(r) = &a.report {
        println!("report: {}", r.join("report.html").display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The paper-style tables on stdout.
fn print_fit_summary(o: &alnrisk::fit::FitOutcome) {
    for n in &o.notes {
        println!("note: {n}");
    }
    println!("\nTable 2/3 — seven classifiers per signature: training 5-fold CV AUC (95% CI) | test AUC");
    for r in &o.classifiers {
        println!(
            "  {:9} {:30} {:.3} ({:.3}-{:.3}) | {:.3}",
            r.modality, r.model, r.cv.auc.mean, r.cv.auc.lo, r.cv.auc.hi, r.test.auc
        );
    }
    println!("\nNomogram coefficients (training):");
    for c in &o.coefficients {
        println!(
            "  {:22} β {:8.4}  SE {:7.4}  p {:.2e}  OR {:.3} ({:.3}-{:.3})",
            c.term, c.coefficient, c.se, c.p, c.odds_ratio, c.or_ci.0, c.or_ci.1
        );
    }
    println!("\nAUC (95% DeLong CI):");
    for e in &o.evaluations {
        for (k, v) in &e.auc {
            println!(
                "  {:8} {:20} {:.3} ({:.3}-{:.3})",
                e.cohort, k, v.auc, v.ci95.0, v.ci95.1
            );
        }
        println!(
            "  {:8} Hosmer-Lemeshow chi2 {:.2} (df {:.0}) p {:.3}; at cutoff {:.3}: sensitivity {:.3} specificity {:.3}",
            e.cohort,
            e.hosmer_lemeshow.0,
            e.hosmer_lemeshow.1,
            e.hosmer_lemeshow.2,
            o.manifest.nomogram.cutoff,
            e.at_cutoff.recall,
            e.at_cutoff.specificity
        );
    }
    if let Some((w, m)) = o.q8_probability_change {
        println!(
            "\nFitted on the Q8_0 deep features it serves; with f32 dense layers the nomogram probability would move by max {w:.2e}, mean {m:.2e}"
        );
    }
    println!("\nTime per stage:");
    for (s, t) in &o.timings {
        println!("  {s:16} {t:7.1} s");
    }
}

#[derive(clap::Args)]
struct PredictArgs {
    /// Bundle folder.
    #[arg(long)]
    bundle: PathBuf,
    /// Image: DICOM series folder, or NRRD/NIfTI file.
    #[arg(long)]
    image: PathBuf,
    /// ROI: SEG / RTSTRUCT / label map.
    #[arg(long)]
    mask: PathBuf,
    /// MRI-reported LN status; without it both scenarios are given.
    #[arg(long, value_parser = ["pos", "neg"])]
    mri_ln: Option<String>,
    /// Other clinical predictors the bundle's nomogram uses, NAME=VALUE (coded as in bundle.json).
    #[arg(long = "clinical", value_parser = parse_kv)]
    clinical: Vec<(String, f64)>,
    /// Trusted public key (from `alnrisk keygen`).
    #[arg(long)]
    trusted_key: Option<PathBuf>,
    /// Accept an unsigned bundle (development only).
    #[arg(long)]
    allow_unsigned: bool,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    device: alnrisk::deep::DeviceChoice,
}

fn parse_kv(s: &str) -> Result<(String, f64), String> {
    let (k, v) = s.split_once('=').ok_or("expected NAME=VALUE")?;
    Ok((k.to_string(), v.parse().map_err(|_| format!("{v:?} is not a number"))?))
}

fn predict(a: PredictArgs) -> anyhow::Result<ExitCode> {
    use alnrisk::model::{Bundle, Predictor, Trust};
    if a.trusted_key.is_none() && !a.allow_unsigned {
        bail!("give --trusted-key KEY.pub (or --allow-unsigned for development)");
    }
    let trust = Trust::from_public_key(a.trusted_key.as_deref())?;
    let bundle = Bundle::load(&a.bundle, &trust)?;
    let m = &bundle.manifest;
    let inputs = Inputs {
        phase: m.phase,
        roi: m.roi.options(),
    };
    let (device, _) = a.device.open()?;
    let predictor = Predictor::new(bundle, &device)?;
    let case = alnrisk::case::load_case(&a.image, &a.mask, &inputs)?;
    let features = predictor.features(&case, &a.image, &a.mask)?;
    let mut clinical: std::collections::BTreeMap<String, f64> = a.clinical.into_iter().collect();
    if let Some(ln) = &a.mri_ln {
        clinical.insert(
            alnrisk::model::predict::MRI_LN.into(),
            if ln == "pos" { 1.0 } else { 0.0 },
        );
    }
    let p = predictor.predict_features(&features, &clinical)?;
    println!("{}", serde_json::to_string_pretty(&p)?);
    Ok(ExitCode::SUCCESS)
}
