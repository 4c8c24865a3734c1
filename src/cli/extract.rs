//! `alnrisk extract`: PyRadiomics-compatible radiomics features of one case, or of a cohort CSV in parallel.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use rayon::prelude::*;

use super::{Format, Inputs, csv_field, load_inputs, write_out};
use alnrisk::ingest::PhaseSelector;
use alnrisk::radiomics::{self, Extraction, Settings};
use alnrisk::roi::{RoiChoice, RoiOptions};

#[derive(clap::Args)]
pub(super) struct ExtractArgs {
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
}

pub(super) fn extract(
    ExtractArgs {
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
    }: ExtractArgs,
) -> anyhow::Result<ExitCode> {
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

/// Read an image (file or DICOM folder) and a mask and extract.
pub(super) fn extract_files(
    image: &Path,
    mask: &Path,
    settings: &Settings,
    input: &Inputs,
) -> anyhow::Result<Extraction> {
    if !image.is_dir() {
        // two files: read as stored, so only the ROI's box is decoded to f64 (the same features, to the bit)
        let stored_image = alnrisk::io::read_stored(image)?;
        let stored_mask = alnrisk::io::read_stored(mask)?;
        return Ok(radiomics::extract_stored(
            image,
            &stored_image,
            mask,
            &stored_mask,
            settings,
        )?);
    }
    let loaded = load_inputs(image, mask, input)?;
    let mut ex = radiomics::extract(image, &loaded.image, mask, &loaded.mask, settings)?;
    ex.diagnostics.extend(loaded.notes);
    Ok(ex)
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
