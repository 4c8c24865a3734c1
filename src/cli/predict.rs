//! `alnrisk predict`: one examination through a bundle; prints the JSON result the daemon would publish.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;

#[derive(clap::Args)]
pub(super) struct PredictArgs {
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

pub(super) fn predict(a: PredictArgs) -> anyhow::Result<ExitCode> {
    use alnrisk::model::{Bundle, Predictor, Trust};
    if a.trusted_key.is_none() && !a.allow_unsigned {
        bail!("give --trusted-key KEY.pub (or --allow-unsigned for development)");
    }
    let trust = Trust::from_public_key(a.trusted_key.as_deref())?;
    let bundle = Bundle::load(&a.bundle, &trust)?;
    let m = &bundle.manifest;
    let inputs = m.case_inputs();
    let (device, note) = a.device.open()?;
    if let Some(n) = note {
        eprintln!("note: {n}");
    }
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
