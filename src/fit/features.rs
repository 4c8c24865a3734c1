//! Per-case inputs of `fit`: radiomics features and the VGG crop of every case (in parallel, cached by content
//! hash), then the deep features: VGG-16 fine-tuned on the training cases only, and its chosen layer for every case.
//!
//! Cache: `CACHE/<sha256>.json` per case, keyed by the bytes of every file of the series and of the ROI plus
//! everything that changes the result (alnrisk version, radiomics settings, phase, ROI rules). Pool5 activations
//! of the frozen trunk (head mode) are cached beside it, keyed also by the starting weights. A rerun on the same
//! inputs reads files only to hash them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cohort::CohortRow;
use crate::case::{CaseInputs, load_case};
use crate::deep::finetune::{FinetuneConfig, FinetuneMode, FinetuneReport, finetune_with_pool5};
use crate::deep::{self, Crop, Vgg16};
use crate::error::{Error, Result};
use crate::model::acquisition;
use crate::progress::Reporter;
use crate::radiomics::{self, Settings};

/// What one case gives.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseExtract {
    /// Cache key.
    pub key: String,
    /// Radiomics features in extractor order.
    pub radiomics: Vec<(String, f64)>,
    /// Crop rows.
    pub crop_rows: usize,
    /// Crop columns.
    pub crop_cols: usize,
    /// Crop slice.
    pub crop_slice: usize,
    /// Crop values (row-major).
    pub crop: Vec<f32>,
    /// Acquisition descriptors (voxel size, intensity scale: [`crate::model::acquisition`]).
    pub acquisition: BTreeMap<String, f64>,
    /// Whether it came from the cache.
    #[serde(skip)]
    pub cached: bool,
}

impl CaseExtract {
    /// The VGG crop.
    pub fn crop(&self) -> Crop {
        Crop {
            rows: self.crop_rows,
            cols: self.crop_cols,
            values: self.crop.clone(),
            slice: self.crop_slice,
        }
    }
}

fn hash_path(h: &mut Sha256, path: &Path) -> Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Error::io(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            h.update(e.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
            hash_path(h, &e)?;
        }
    } else {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    Ok(())
}

/// What a cache entry holds; changing [`CaseExtract`] changes it, so that older entries are computed again.
const CACHE_FORMAT: &str = "case-extract-2 (acquisition descriptors)";

/// The cache key of a case.
pub fn case_key(
    row: &CohortRow,
    settings: &Settings,
    inputs: &CaseInputs,
    margin: usize,
    label: i64,
) -> Result<String> {
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION"));
    h.update(CACHE_FORMAT);
    h.update(serde_json::to_vec(settings).unwrap_or_default());
    h.update(format!(
        "{}|{:?}|{:?}|{margin}|{label}",
        inputs.phase, inputs.roi.choice, inputs.roi.fractional_threshold
    ));
    hash_path(&mut h, &row.series_dir)?;
    h.update(b"|roi|");
    hash_path(&mut h, &row.roi)?;
    Ok(hex::encode(h.finalize()))
}

/// Extract one case (or read it from the cache).
fn extract_case(
    row: &CohortRow,
    settings: &Settings,
    inputs: &CaseInputs,
    margin: usize,
    cache: Option<&Path>,
) -> Result<CaseExtract> {
    let key = case_key(row, settings, inputs, margin, settings.label)?;
    let cached_path = cache.map(|c| c.join(format!("{key}.json")));
    if let Some(p) = &cached_path
        && let Ok(bytes) = std::fs::read(p)
        && let Ok(mut ex) = serde_json::from_slice::<CaseExtract>(&bytes)
    {
        ex.cached = true;
        return Ok(ex);
    }
    let case = load_case(&row.series_dir, &row.roi, inputs)?;
    let ex = radiomics::extract(&row.series_dir, &case.image, &row.roi, &case.mask, settings)?;
    let crop = deep::crop_largest_slice(&case.image, &case.mask, settings.label as f64, margin)?;
    let out = CaseExtract {
        key,
        radiomics: ex.features.entries.clone(),
        crop_rows: crop.rows,
        crop_cols: crop.cols,
        crop_slice: crop.slice,
        crop: crop.values,
        acquisition: acquisition::describe(&case.image, &case.mask, settings.label as f64, settings),
        cached: false,
    };
    if let Some(p) = &cached_path {
        write_atomic(p, &serde_json::to_vec(&out).unwrap_or_default())?;
    }
    Ok(out)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Extract every case in parallel; a failure is kept with its reason, never dropped.
pub fn extract_all(
    rows: &[CohortRow],
    settings: &Settings,
    inputs: &CaseInputs,
    margin: usize,
    cache: Option<&Path>,
    progress: &Reporter,
) -> Vec<std::result::Result<CaseExtract, String>> {
    if let Some(c) = cache {
        let _ = std::fs::create_dir_all(c);
    }
    const TASK: &str = "radiomics + crops";
    progress.begin(TASK, rows.len());
    let out = rows
        .par_iter()
        .map(|r| {
            let res = extract_case(r, settings, inputs, margin, cache).map_err(|e| e.to_string());
            progress.step(TASK);
            res
        })
        .collect();
    progress.end(TASK);
    out
}

/// Deep-feature settings.
#[derive(Debug, Clone)]
pub struct DeepSettings {
    /// Starting weights (torchvision-named safetensors); `None`: seeded He initialisation.
    pub init: Option<PathBuf>,
    /// Fine-tuning recipe.
    pub finetune: FinetuneConfig,
    /// Which activations are the features.
    pub layer: deep::FeatureLayer,
    /// Network shape: VGG-16, or a reduced-width VGG for tests (`VggConfig::scaled`).
    pub config: deep::VggConfig,
    /// Compute device.
    pub device: Device,
}

/// The fine-tuned network and the deep features of every case.
pub struct DeepOutcome {
    /// Fine-tuned network with fc6–fc8 quantized to Q8_0, as `predict` and the daemon serve it: the features
    /// below come from it, so the signatures and the nomogram are fitted on exactly what is served.
    pub net: Vgg16,
    /// The fine-tuned network's f32 parameters (torchvision names), for the bundle's `vgg16.safetensors`.
    pub f32_weights: std::collections::HashMap<String, Tensor>,
    /// Features per case (same order as the input), the chosen layer.
    pub features: Vec<Vec<f64>>,
    /// Training history.
    pub report: FinetuneReport,
    /// Where the starting weights came from.
    pub init: String,
    /// Pool5 of every plain crop from the served (quantized) trunk (head mode: the trunk is frozen, so these hold
    /// after fine-tuning too).
    pub pool5: Option<Vec<Vec<f32>>>,
}

/// Load the starting network: the given safetensors (its last layer re-initialised when it does not have 2
/// classes) or the seeded He initialisation.
pub fn initial_network(s: &DeepSettings, seed: u64) -> Result<(Vgg16, String)> {
    match &s.init {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            let mut tensors =
                candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| Error::Weights {
                    path: path.clone(),
                    reason: format!("not a readable safetensors file: {e}"),
                })?;
            let cfg = deep::VggConfig::vgg16_like(&tensors);
            let classes = tensors
                .get("classifier.6.weight")
                .map(|t| t.dims().first().copied().unwrap_or(0))
                .unwrap_or(0);
            let mut cfg2 = cfg.clone();
            // a trunk alone (`alnrisk import-weights` of a model whose classifier is not VGG's): the classifier
            // starts from the seeded initialisation, as without --cnn-init
            let trunk_only = !tensors.contains_key("classifier.0.weight");
            if classes != 2 || trunk_only {
                cfg2.classes = 2;
                let fresh = deep::vgg::he_init(&cfg2, seed)?;
                for (k, t) in fresh {
                    // fc8 is always new (2 classes); fc6 and fc7 only where the file has none
                    let missing_dense = trunk_only && k.starts_with("classifier.") && !tensors.contains_key(&k);
                    if k.starts_with("classifier.6.") || missing_dense {
                        tensors.insert(k, t);
                    }
                }
            }
            let net = Vgg16::from_tensors(cfg2, &tensors, path, &s.device)?;
            Ok((
                net,
                format!(
                    "{} (sha256 {})",
                    path.display(),
                    crate::model::bundle::sha256_file(path)?
                ),
            ))
        }
        None => {
            let t = deep::vgg::he_init(&s.config, seed)?;
            let net = Vgg16::from_tensors(s.config.clone(), &t, Path::new("he-init"), &s.device)?;
            Ok((
                net,
                format!("seeded He initialisation (seed {seed}), NOT ImageNet-pretrained"),
            ))
        }
    }
}

fn tensor_rows(t: &Tensor) -> Result<Vec<Vec<f64>>> {
    let v: Vec<Vec<f32>> = t.to_vec2()?;
    Ok(v.into_iter().map(|r| r.into_iter().map(f64::from).collect()).collect())
}

/// Fine-tune on the training crops, then compute the chosen layer for every crop. In head mode the trunk is frozen
/// as it is served (quantized, [`Vgg16::quantize_trunk`]): the head is trained on the pool5 the bundle will see,
/// and the pool5 of every plain crop is computed once (and cached under `cache` by case key, starting weights and
/// trunk precision).
pub fn deep_features(
    crops: &[(String, Crop)],
    train: &[usize],
    labels: &[bool],
    s: &DeepSettings,
    cache: Option<&Path>,
    progress: &Reporter,
) -> Result<DeepOutcome> {
    let (mut net, init) = initial_network(s, s.finetune.seed)?;
    if s.finetune.mode == FinetuneMode::Head {
        net.quantize_trunk()?;
    }
    let trunk = if net.is_trunk_quantized() && net.device.is_cpu() {
        "8-bit"
    } else {
        "f32"
    };
    let init_id = hex::encode(&Sha256::digest(format!("{init}|{:?}|{trunk}", net.config).as_bytes())[..8]);
    let train_crops: Vec<Crop> = train.iter().map(|&i| crops[i].1.clone()).collect();
    let train_labels: Vec<u32> = train.iter().map(|&i| u32::from(labels[i])).collect();
    let pool5_all = if s.finetune.mode == FinetuneMode::Head {
        const TASK: &str = "VGG trunk (pool5)";
        progress.begin(TASK, crops.len());
        let mut rows = Vec::with_capacity(crops.len());
        for (key, crop) in crops {
            let path = cache.map(|c| c.join(format!("{key}-{init_id}.pool5")));
            let cached = path.as_ref().and_then(|p| std::fs::read(p).ok()).map(|b| {
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect::<Vec<f32>>()
            });
            let v = match cached {
                Some(v) if !v.is_empty() => v,
                _ => {
                    let t = net.trunk(&deep::batch(std::slice::from_ref(crop), &Device::Cpu)?)?;
                    let v: Vec<f32> = t.flatten_all().and_then(|t| t.to_vec1())?;
                    if let Some(p) = &path {
                        let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                        write_atomic(p, &bytes)?;
                    }
                    v
                }
            };
            rows.push(v);
            progress.step(TASK);
        }
        progress.end(TASK);
        Some(rows)
    } else {
        None
    };
    progress.note(&format!(
        "fine-tuning VGG ({:?}, up to {} epochs, batch {}, {} views) on {} training crops",
        s.finetune.mode,
        s.finetune.epochs,
        s.finetune.batch,
        s.finetune.views,
        train_crops.len()
    ));
    // the training crops' plain pool5, computed above, serve the validation split
    let train_pool5: Option<Vec<&[f32]>> = pool5_all
        .as_ref()
        .map(|rows| train.iter().map(|&i| rows[i].as_slice()).collect());
    let report = finetune_with_pool5(
        &mut net,
        &train_crops,
        &train_labels,
        train_pool5.as_deref(),
        &s.finetune,
    )?;
    // The bundle serves the quantized network (fc6–fc8 as Q8_0, on the CPU 8-bit convolutions after the first):
    // compute the cohort's features with it, so the fitted model and the served model see the same numbers (the
    // f32 weights are kept for the bundle and the f32 comparison). Head mode's pool5 came from the served trunk.
    let f32_weights = net.named_tensors()?;
    net.quantize()?;
    let pick = |fc6, fc7, logits| s.layer.pick(fc6, fc7, logits);
    let mut features = Vec::with_capacity(crops.len());
    match &pool5_all {
        Some(rows) => {
            for chunk in rows.chunks(32) {
                let len = chunk[0].len();
                let t = Tensor::from_vec(chunk.concat(), (chunk.len(), len), &Device::Cpu)
                    .and_then(|t| t.to_device(&net.device))?;
                let (fc6, fc7, logits) = net.head(&t)?;
                features.extend(tensor_rows(&pick(fc6, fc7, logits))?);
            }
        }
        None => {
            const TASK: &str = "VGG features";
            progress.begin(TASK, crops.len());
            for (_, crop) in crops {
                let o = net.forward(&deep::batch(std::slice::from_ref(crop), &Device::Cpu)?)?;
                features.extend(tensor_rows(&pick(o.fc6, o.fc7, o.logits))?);
                progress.step(TASK);
            }
            progress.end(TASK);
        }
    }
    Ok(DeepOutcome {
        net,
        f32_weights,
        features,
        report,
        init,
        pool5: pool5_all,
    })
}
