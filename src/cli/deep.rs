//! `alnrisk deep`: VGG-16 deep features of the largest ROI cross-section, as a CSV.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;

use super::{Inputs, csv_field, load_inputs, write_out};
use alnrisk::ingest::PhaseSelector;
use alnrisk::roi::RoiOptions;

/// How `deep` runs the fully connected layers.
#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Quant {
    /// f32.
    None,
    /// Q8_0, as the daemon serves them.
    Q8,
}

#[derive(clap::Args)]
pub(super) struct DeepArgs {
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
    #[arg(long, value_enum, default_value = "none")]
    quant: Quant,
    /// Which activations.
    #[arg(long, value_enum, default_value_t)]
    layer: alnrisk::deep::FeatureLayer,
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

pub(super) fn deep(a: DeepArgs) -> anyhow::Result<ExitCode> {
    use alnrisk::deep::{self, Vgg16, VggConfig};
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
    if a.quant == Quant::Q8 {
        net.quantize()?;
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
    let values: Vec<f32> = out
        .layer(a.layer)
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
        text.push_str(&format!("{},{v:?}\n", a.layer.feature_name(n)));
    }
    write_out(a.output.as_deref(), &text)?;
    Ok(ExitCode::SUCCESS)
}
