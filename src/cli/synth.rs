//! `alnrisk synth`: write the SYNTHETIC cohort, or replay one examination into an export folder.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(super) struct SynthArgs {
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

pub(super) fn synth(args: SynthArgs) -> anyhow::Result<ExitCode> {
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
