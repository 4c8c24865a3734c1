//! Command-line interface (clap): one module per subcommand, each with its arguments and its handler. Errors
//! from the library are reported through `anyhow` with their context and a non-zero exit status.
//!
//! - [`extract`], [`deep`]: radiomics and VGG-16 features of one case (or a cohort CSV);
//! - [`synth`]: the SYNTHETIC cohort and console replay; [`inspect`]: what a DICOM folder holds;
//! - [`fit`], [`predict`]: the study's pipeline → a signed bundle, and one case through a bundle;
//! - [`quarantine`]: what the daemon set aside, with the real names, on the box;
//! - `serve` / `keygen` (here: they only call the library), [`demo`] (the product end to end), [`bench_e2e`]
//!   (the daemon's latency benchmark), [`bench_soak`] (months of running, compressed), [`parity`] (radiomics against PyRadiomics, then the chain).

#[cfg(feature = "tools")]
mod bench_e2e;
#[cfg(feature = "tools")]
mod bench_soak;
mod deep;
#[cfg(feature = "tools")]
mod demo;
mod extract;
#[cfg(feature = "tools")]
mod fit;
mod inspect;
#[cfg(feature = "tools")]
mod parity;
mod predict;
mod quarantine;
#[cfg(feature = "tools")]
mod synth;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use alnrisk::io::csv_cell as csv_field;

/// What `alnrisk --version` prints: the crate's version, or `ALNRISK_BUILD_ID` when the build set it (a fleet's
/// build number such as `0.1.0+b42`; the package upgrade test tells its two builds apart by it).
const VERSION: &str = match option_env!("ALNRISK_BUILD_ID") {
    Some(build) => build,
    None => env!("CARGO_PKG_VERSION"),
};

#[derive(Parser)]
#[command(
    name = "alnrisk",
    version = VERSION,
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
    Extract(extract::ExtractArgs),
    /// VGG-16 deep features of the largest ROI cross-section.
    Deep(deep::DeepArgs),
    #[cfg(feature = "tools")]
    /// Generate the SYNTHETIC DCE-MRI cohort (DICOM series + ROI + cohort.csv), or replay one examination.
    Synth(synth::SynthArgs),
    #[cfg(feature = "tools")]
    /// Fit the study's model on a cohort: features, selection, classifiers, nomogram; write a signed bundle and a report.
    Fit(Box<fit::FitArgs>),
    /// Predict one examination with a bundle; prints the JSON result the daemon publishes.
    Predict(predict::PredictArgs),
    /// Run the scanner-side daemon: watch the export folder, compute, publish over MQTT (see firmware-config/).
    Serve {
        /// Configuration file (firmware-config/alnrisk.toml or dev.toml).
        #[arg(long)]
        config: PathBuf,
        /// Validate the configuration and the bundle, then exit.
        #[arg(long)]
        check: bool,
    },
    /// What the daemon quarantined, with the real file names (on the box only): `list`, `show REF`.
    Quarantine(quarantine::QuarantineArgs),
    /// The department board: every box of a site, from MQTT alone (runs on any department PC or VM).
    Board {
        /// Configuration file (firmware-config/board.toml).
        #[arg(long)]
        config: PathBuf,
    },
    /// Add a user to the console page's (or the board's) password file, or change their password (read from standard input,
    /// one line; stored as an argon2id hash).
    ConsoleUser {
        /// The password file (`console.password_file`); created when missing.
        #[arg(long)]
        file: PathBuf,
        /// The user name (A-Z a-z 0-9 . _ -).
        #[arg(long)]
        user: String,
    },
    #[cfg(feature = "tools")]
    /// Import a VGG-16 from ONNX (torchvision's or Keras' export) as torchvision-named safetensors for
    /// `fit --cnn-init`; a classifier that is not VGG's is left out and said so.
    #[command(name = "import-weights")]
    ImportWeights {
        /// The ONNX model.
        #[arg(long)]
        onnx: PathBuf,
        /// The safetensors file to write.
        #[arg(short, long)]
        out: PathBuf,
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
    #[cfg(feature = "tools")]
    /// The product end to end on a SYNTHETIC cohort: synth → fit + sign → serve → replay three exams → MQTT → LN read → metrics.
    Demo(demo::DemoArgs),
    #[cfg(feature = "tools")]
    /// Benchmark the daemon: last file → result latency (p50/p95) and 20 queued examinations (time, peak RSS).
    #[command(name = "bench-e2e")]
    BenchE2e(bench_e2e::BenchArgs),
    #[cfg(feature = "tools")]
    /// Soak the daemon: thousands of small examinations, the broker restarted every few hundred results; RSS,
    /// descriptors, ledger, and every result once.
    #[command(name = "bench-soak")]
    BenchSoak(bench_soak::SoakArgs),
    #[cfg(feature = "tools")]
    /// Radiomics parity with PyRadiomics on its own test images, then synthetic DICOM → radiomics → VGG-16.
    Parity {
        /// Folder holding `pyradiomics/` and `pyradiomics-3.1.0-reference/` (default: the repository's tests/data).
        #[arg(long)]
        data: Option<PathBuf>,
    },
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
        Command::Extract(args) => extract::extract(args),
        #[cfg(feature = "tools")]
        Command::Demo(args) => demo::run(args),
        #[cfg(feature = "tools")]
        Command::Parity { data } => parity::parity(data),
        #[cfg(feature = "tools")]
        Command::BenchE2e(args) => bench_e2e::run(args),
        #[cfg(feature = "tools")]
        Command::BenchSoak(args) => bench_soak::run(args),
        Command::Inspect { dir } => inspect::inspect(&dir),
        #[cfg(feature = "tools")]
        Command::Synth(args) => synth::synth(args),
        Command::Deep(args) => deep::deep(args),
        #[cfg(feature = "tools")]
        Command::Fit(args) => fit::fit(*args),
        Command::Predict(args) => predict::predict(args),
        Command::Quarantine(args) => quarantine::run(args),
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
                // what someone must report for an answer: the LN read, and whatever else the nomogram names
                let needs = alnrisk::model::reported::needs(&b.manifest);
                if needs.is_empty() {
                    println!("reported factors: none (the answer needs the images only)");
                } else {
                    println!("reported factors (cmd/ln-status, a *.ln.json sidecar, or the console page):");
                    for n in &needs {
                        let what = match &n.kind {
                            alnrisk::model::reported::FactorKind::Number => "a number".to_string(),
                            alnrisk::model::reported::FactorKind::Level { levels } => levels.join(" / "),
                        };
                        let meanwhile = if n.is_binary() {
                            "both scenarios shown until it is reported"
                        } else {
                            "no answer until it is reported"
                        };
                        println!("  {:<20} {what:<24} {meanwhile}", n.column);
                    }
                }
                // what the model was fitted on, to hold against the scanner's protocol when a box is commissioned
                let acq = &b.manifest.acquisition_ranges;
                if acq.is_empty() {
                    println!("the bundle records no training acquisitions (fitted before they were recorded)");
                } else {
                    println!("training acquisitions (a series outside them is flagged):");
                    for (name, r) in acq {
                        println!("  {name:<20} {} … {} (median {})", r.min, r.max, r.p50);
                    }
                }
                if let Some(c) = &cfg.console {
                    let users = alnrisk::web::login::PasswordFile::load(&c.password_file)?;
                    if let Some(tls) = &c.tls {
                        alnrisk::web::server_tls(tls, "console.tls")?;
                    }
                    println!(
                        "console page: {}://{}/ ({} user(s), identifiers {})",
                        if c.tls.is_some() { "https" } else { "http" },
                        c.listen,
                        users.len(),
                        if c.show_identifiers { "shown" } else { "not shown" }
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            alnrisk::daemon::serve(cfg)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Board { config } => {
            let cfg = alnrisk::board::BoardConfig::load(&config)?;
            alnrisk::board::run(cfg)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ConsoleUser { file, user } => {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("reading the password")?;
            let password = password.trim_end_matches(['\r', '\n']);
            let added = alnrisk::web::login::set_user(&file, &user, password)?;
            println!(
                "{}: {} {user}",
                file.display(),
                if added { "added" } else { "changed the password of" }
            );
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "tools")]
        Command::ImportWeights { onnx, out } => {
            let imported = alnrisk::deep::onnx_import::import(&onnx)?;
            candle_core::safetensors::save(&imported.tensors, &out)
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "{}: VGG-16 trunk ({} convolutions, widths {:?}){} → {}",
                onnx.display(),
                imported.widths.len(),
                imported.widths,
                if imported.classifier { " and classifier" } else { "" },
                out.display()
            );
            for note in &imported.notes {
                println!("note: {note}");
            }
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
