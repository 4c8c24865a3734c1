//! The model bundle: what `fit` validated and the appliance serves, as one folder.
//!
//! ```text
//! BUNDLE_DIR/
//!   bundle.json          manifest, schema `alnrisk-bundle/1` (this module's `Manifest`)
//!   bundle.sig           ed25519 signature (hex) of the exact bytes of bundle.json
//!   vgg16.safetensors    fine-tuned VGG-16, f32, torchvision names
//!   vgg16-q8.gguf        the same with fc6–fc8 in Q8_0 (what the daemon runs)
//! ```
//!
//! `bundle.json` lists the sha256 of every other file, so the one signature covers the whole folder. Loading
//! ([`Bundle::load`]) checks the signature against a key the device trusts (never one shipped inside the bundle),
//! then every hash, then the schema; any failure refuses the bundle with the file and the reason. An unsigned
//! bundle loads only with [`Trust::AllowUnsigned`] (the CLI's `--allow-unsigned`), and says so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature as EdSignature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::nomogram::Nomogram;
use super::signature::Signature;
use crate::error::{Error, Result};
use crate::ingest::PhaseSelector;
use crate::radiomics::Settings;

/// Schema tag of `bundle.json`.
pub const SCHEMA: &str = "alnrisk-bundle/1";
/// Manifest file name.
pub const MANIFEST: &str = "bundle.json";
/// Signature file name.
pub const SIGNATURE: &str = "bundle.sig";

/// How the ROI object is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoiRules {
    /// SEG segment / RTSTRUCT structure (number or label; empty: the first).
    pub segment: String,
    /// FRACTIONAL SEG threshold (fraction of the maximum).
    pub fractional_threshold: f64,
    /// Label of the ROI in a label map.
    pub label: i64,
    /// Voxels added around the ROI's bounding box for the VGG crop.
    pub crop_margin: usize,
}

impl Manifest {
    /// How this bundle turns a DICOM series and its ROI file into a case: its phase and ROI rules (what `predict`
    /// and the daemon both load with).
    pub fn case_inputs(&self) -> crate::case::CaseInputs {
        crate::case::CaseInputs {
            phase: self.phase,
            roi: self.roi.options(),
        }
    }
}

impl RoiRules {
    /// The ROI reading options these rules stand for.
    pub fn options(&self) -> crate::roi::RoiOptions {
        crate::roi::RoiOptions {
            choice: crate::roi::RoiChoice::from_rule(&self.segment),
            fractional_threshold: self.fractional_threshold,
        }
    }
}

/// The VGG-16 files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VggEntry {
    /// f32 weights file (safetensors).
    pub weights: String,
    /// Q8_0 file (GGUF), served by the daemon.
    pub quantized: String,
    /// `Q8_0`.
    pub quantization: String,
    /// Activations the deep signature reads: `fc6`, `fc7` or `logits` (anything else is refused on load).
    pub layer: crate::deep::FeatureLayer,
    /// Where the starting weights came from.
    pub init: String,
    /// Fine-tuning mode and outcome.
    pub finetune: String,
}

/// A clinical factor of the nomogram and how it is coded from the cohort table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClinicalCoding {
    /// Predictor name (`mri_ln_status`).
    pub name: String,
    /// Cohort column.
    pub column: String,
    /// For a categorical factor, the level coded 1 (others 0); `None` for a numeric one.
    pub level: Option<String>,
    /// For a categorical factor, the column's levels in the training cohort (what the daemon accepts when the
    /// factor is reported); empty for a numeric one, and in bundles written before they were listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<String>,
}

impl ClinicalCoding {
    /// The predictor value of a column's text: the number (NaN when it is none), or 1 for [`Self::level`] and
    /// 0 for any other text. `fit` codes the cohort with it and the daemon a reported factor.
    pub fn code(&self, text: &str) -> f64 {
        match &self.level {
            Some(l) => f64::from(u8::from(text == l)),
            None => text.trim().parse().unwrap_or(f64::NAN),
        }
    }
}

/// Training distribution of one input, for out-of-distribution flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureRange {
    /// Minimum.
    pub min: f64,
    /// 1st percentile.
    pub p01: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

impl FeatureRange {
    /// From training values (linear-interpolated percentiles, as numpy's default).
    pub fn of(values: &[f64]) -> FeatureRange {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let q = |p: f64| crate::radiomics::firstorder::percentile_sorted(&v, p);
        FeatureRange {
            min: q(0.0),
            p01: q(1.0),
            p50: q(50.0),
            p99: q(99.0),
            max: q(100.0),
        }
    }

    /// Whether `x` lies outside the training range.
    pub fn outside(&self, x: f64) -> bool {
        !(self.min..=self.max).contains(&x)
    }
}

/// Both signatures (either may be absent when no feature passed selection).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signatures {
    /// Radiomics signature.
    pub radiomics: Option<Signature>,
    /// Deep signature.
    pub deep: Option<Signature>,
}

/// `bundle.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`SCHEMA`].
    pub schema: String,
    /// Content-derived id (first 16 hex digits of the sha256 of the weights and the model terms).
    pub bundle_id: String,
    /// Bundle version string: `alnrisk version + bundle id`.
    pub version: String,
    /// alnrisk version that made it.
    pub alnrisk_version: String,
    /// UTC creation time, RFC 3339.
    pub created: String,
    /// Radiomics settings (PyRadiomics names in the parameter-file form).
    pub radiomics_settings: Settings,
    /// Which phase of the DCE series.
    pub phase: PhaseSelector,
    /// ROI reading rules.
    pub roi: RoiRules,
    /// The signatures.
    pub signatures: Signatures,
    /// VGG-16 files.
    pub vgg: VggEntry,
    /// Clinical factors in the nomogram.
    pub clinical: Vec<ClinicalCoding>,
    /// The nomogram.
    pub nomogram: Nomogram,
    /// Training ranges of every selected feature and of each nomogram predictor.
    pub feature_ranges: BTreeMap<String, FeatureRange>,
    /// Training ranges of the acquisition descriptors (voxel size, intensity scale; [`super::acquisition`]);
    /// empty in bundles fitted before they were recorded, which then judge no acquisition.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub acquisition_ranges: BTreeMap<String, FeatureRange>,
    /// Performance summary (AUCs with CIs, per cohort).
    pub performance: serde_json::Value,
    /// sha256 (hex) of every other file in the folder.
    pub files: BTreeMap<String, String>,
    /// Which data and options made the bundle (absent in bundles fitted before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

/// Where a bundle came from, for a site's quality records: the cohort file, the cases that were used and the
/// options of the fit. Deterministic: the same cohort, files and options give the same provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// sha256 of the cohort CSV (its labels, clinical columns, split column and file names).
    pub cohort_sha256: String,
    /// sha256 over one line per used case, in cohort order: `id`, `training`/`test`, and the case's input key
    /// (the sha256 of every byte of its series and ROI files and of the settings, as the feature cache keys it).
    /// How many cases each cohort had, and which failed, is in `performance` and the report.
    pub inputs_sha256: String,
    /// The fit's options: seed, split, selection, fine-tuning, nomogram and bootstrap settings, device.
    pub options: BTreeMap<String, String>,
}

/// Which bundles are accepted.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Only bundles signed by this key.
    Key(VerifyingKey),
    /// Also unsigned (or unverifiable) bundles — development only; every load says so.
    AllowUnsigned,
}

impl Trust {
    /// Bundles signed by the key in `public_key` (`alnrisk keygen`'s `.pub`), or, without a key, unsigned ones too.
    pub fn from_public_key(public_key: Option<&Path>) -> Result<Trust> {
        Ok(match public_key {
            Some(k) => Trust::Key(read_verifying_key(k)?),
            None => Trust::AllowUnsigned,
        })
    }
}

/// A loaded, verified bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Its folder.
    pub dir: PathBuf,
    /// The manifest.
    pub manifest: Manifest,
    /// sha256 of `bundle.json` (hex): identifies exactly what is served.
    pub sha256: String,
    /// Whether the signature was verified.
    pub signed: bool,
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

fn refuse(path: &Path, reason: impl Into<String>) -> Error {
    Error::Bundle {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Read a hex key file of `N` bytes.
fn read_hex<const N: usize>(path: &Path) -> Result<[u8; N]> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let bytes = hex::decode(text.trim()).map_err(|e| refuse(path, format!("not hex: {e}")))?;
    bytes
        .try_into()
        .map_err(|_| refuse(path, format!("expected {N} bytes of hex")))
}

/// Load an ed25519 signing key (`alnrisk keygen`'s `.key` file).
pub fn read_signing_key(path: &Path) -> Result<SigningKey> {
    Ok(SigningKey::from_bytes(&read_hex::<32>(path)?))
}

/// Load an ed25519 public key (`.pub` file).
pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey> {
    VerifyingKey::from_bytes(&read_hex::<32>(path)?)
        .map_err(|e| refuse(path, format!("not an ed25519 public key: {e}")))
}

/// Write a new key pair `PREFIX.key` (secret, mode 0600) and `PREFIX.pub`, from the operating system's generator.
pub fn keygen(prefix: &Path) -> Result<(PathBuf, PathBuf)> {
    let seed = crate::rng::os_random::<32>()?;
    let key = SigningKey::from_bytes(&seed);
    let (secret, public) = (prefix.with_extension("key"), prefix.with_extension("pub"));
    write_private(&secret, &(hex::encode(seed) + "\n"))?;
    std::fs::write(&public, hex::encode(key.verifying_key().to_bytes()) + "\n").map_err(|e| Error::io(&public, e))?;
    Ok((secret, public))
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| Error::io(path, e))?;
    f.write_all(text.as_bytes()).map_err(|e| Error::io(path, e))
}

/// Finish a bundle folder: hash the files already in it into `manifest.files`, write `bundle.json`, and sign it
/// with `key` when given. Returns the sha256 of `bundle.json`.
pub fn write_bundle(dir: &Path, manifest: &mut Manifest, key: Option<&SigningKey>) -> Result<String> {
    manifest.files.clear();
    for name in [&manifest.vgg.weights, &manifest.vgg.quantized] {
        manifest.files.insert(name.clone(), sha256_file(&dir.join(name))?);
    }
    let text = serde_json::to_string_pretty(manifest)? + "\n";
    let path = dir.join(MANIFEST);
    std::fs::write(&path, &text).map_err(|e| Error::io(&path, e))?;
    let sig_path = dir.join(SIGNATURE);
    if let Some(k) = key {
        let sig = k.sign(text.as_bytes());
        std::fs::write(&sig_path, hex::encode(sig.to_bytes()) + "\n").map_err(|e| Error::io(&sig_path, e))?;
    } else if sig_path.exists() {
        std::fs::remove_file(&sig_path).map_err(|e| Error::io(&sig_path, e))?;
    }
    Ok(hex::encode(Sha256::digest(text.as_bytes())))
}

impl Bundle {
    /// Load and verify a bundle folder.
    pub fn load(dir: &Path, trust: &Trust) -> Result<Bundle> {
        let path = dir.join(MANIFEST);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let sig_path = dir.join(SIGNATURE);
        let signed = match (trust, sig_path.exists()) {
            (Trust::Key(key), true) => {
                let sig = read_hex::<64>(&sig_path)?;
                key.verify(&bytes, &EdSignature::from_bytes(&sig))
                    .map_err(|_| refuse(&path, "signature does not verify with the trusted key (bundle.json was changed, or signed by another key)"))?;
                true
            }
            (Trust::Key(_), false) => {
                return Err(refuse(
                    &sig_path,
                    "unsigned bundle (no bundle.sig); sign it with `alnrisk fit --key` or start with --allow-unsigned",
                ));
            }
            (Trust::AllowUnsigned, _) => {
                tracing::warn!(bundle = %dir.display(), "loading a bundle WITHOUT signature verification (--allow-unsigned)");
                false
            }
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| refuse(&path, format!("not a valid bundle manifest: {e}")))?;
        if manifest.schema != SCHEMA {
            return Err(refuse(
                &path,
                format!("schema {:?}, this build reads {SCHEMA:?}", manifest.schema),
            ));
        }
        for sig in [&manifest.signatures.radiomics, &manifest.signatures.deep]
            .into_iter()
            .flatten()
        {
            sig.check().map_err(|reason| refuse(&path, reason))?;
        }
        for (name, want) in &manifest.files {
            if name.contains('/') || name.contains("..") {
                return Err(refuse(&path, format!("file name {name:?} leaves the bundle folder")));
            }
            let file = dir.join(name);
            let got = sha256_file(&file)?;
            if &got != want {
                return Err(refuse(
                    &file,
                    format!("sha256 {got} does not match the manifest's {want}"),
                ));
            }
        }
        Ok(Bundle {
            dir: dir.to_path_buf(),
            manifest,
            sha256: hex::encode(Sha256::digest(&bytes)),
            signed,
        })
    }
}
