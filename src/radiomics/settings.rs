//! Extraction settings, named and defaulted exactly as PyRadiomics' customisation settings, plus the
//! parameter-file reader (YAML with `setting`, `imageType` and `featureClass` sections).
//!
//! A lab that already runs PyRadiomics can pass its parameter file unchanged. Keys we do not implement are
//! refused with an error naming them, rather than silently ignored, so nobody believes a filter ran that
//! did not.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

use crate::error::{Error, Result};

/// Interpolators for resampling (`interpolator`), as SimpleITK names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Interpolator {
    /// `sitkNearestNeighbor`
    NearestNeighbor,
    /// `sitkLinear`
    Linear,
    /// `sitkBSpline` (cubic)
    BSpline,
}

/// How `resegmentRange` is interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResegmentMode {
    /// Absolute intensities.
    Absolute,
    /// Fractions of the ROI maximum.
    Relative,
    /// Multiples of the ROI standard deviation around its mean.
    Sigma,
}

/// The feature classes, in output order.
pub const CLASSES: &[&str] = &[
    "shape",
    "shape2D",
    "firstorder",
    "glcm",
    "glrlm",
    "glszm",
    "gldm",
    "ngtdm",
];

/// All extraction settings. Field docs give the PyRadiomics key and default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// `binWidth` (25).
    pub bin_width: f64,
    /// `binCount` (none); overrides `binWidth` when set.
    pub bin_count: Option<usize>,
    /// `voxelArrayShift` (0): added to intensities in Energy, TotalEnergy and RootMeanSquared.
    pub voxel_array_shift: f64,
    /// `label` (1).
    pub label: i64,
    /// `force2D` (false).
    pub force2d: bool,
    /// `force2Ddimension` (0), a numpy axis: 0 = slices (k), 1 = rows (j), 2 = columns (i).
    pub force2d_dimension: usize,
    /// `normalize` (false).
    pub normalize: bool,
    /// `normalizeScale` (1).
    pub normalize_scale: f64,
    /// `removeOutliers` (none), in standard deviations, applied after normalisation.
    pub remove_outliers: Option<f64>,
    /// `resegmentRange` (none): one or two thresholds.
    pub resegment_range: Option<Vec<f64>>,
    /// `resegmentMode` (absolute).
    pub resegment_mode: ResegmentMode,
    /// `resegmentShape` (false): also use the resegmented mask for shape.
    pub resegment_shape: bool,
    /// `minimumROIDimensions` (2).
    pub minimum_roi_dimensions: usize,
    /// `minimumROISize` (none).
    pub minimum_roi_size: Option<usize>,
    /// `preCrop` (false).
    pub pre_crop: bool,
    /// `padDistance` (5).
    pub pad_distance: usize,
    /// `distances` (`[1]`).
    pub distances: Vec<usize>,
    /// `weightingNorm` (none): `manhattan`, `euclidean`, `infinity` or `no_weighting`.
    pub weighting_norm: Option<String>,
    /// `gldm_a` (0).
    pub gldm_a: f64,
    /// `symmetricalGLCM` (true).
    pub symmetrical_glcm: bool,
    /// `resampledPixelSpacing` (none), ITK order `(x, y, z)`; 0 keeps the original spacing on that axis.
    pub resampled_pixel_spacing: Option<[f64; 3]>,
    /// `interpolator` (sitkBSpline).
    pub interpolator: Interpolator,
    /// `geometryTolerance` (ITK's default, 1e-6).
    pub geometry_tolerance: f64,
    /// `correctMask` (false): resample a mask whose grid differs onto the image grid.
    pub correct_mask: bool,
    /// Enabled classes → enabled features (`None` = all non-deprecated features of the class).
    pub enabled: BTreeMap<String, Option<Vec<String>>>,
}

impl Default for Settings {
    fn default() -> Self {
        let mut enabled = BTreeMap::new();
        for c in CLASSES {
            enabled.insert((*c).to_string(), None);
        }
        Settings {
            bin_width: 25.0,
            bin_count: None,
            voxel_array_shift: 0.0,
            label: 1,
            force2d: false,
            force2d_dimension: 0,
            normalize: false,
            normalize_scale: 1.0,
            remove_outliers: None,
            resegment_range: None,
            resegment_mode: ResegmentMode::Absolute,
            resegment_shape: false,
            minimum_roi_dimensions: 2,
            minimum_roi_size: None,
            pre_crop: false,
            pad_distance: 5,
            distances: vec![1],
            weighting_norm: None,
            gldm_a: 0.0,
            symmetrical_glcm: true,
            resampled_pixel_spacing: None,
            interpolator: Interpolator::BSpline,
            geometry_tolerance: 1e-6,
            correct_mask: false,
            enabled,
        }
    }
}

fn err(origin: &str, reason: impl Into<String>) -> Error {
    Error::Settings {
        origin: origin.to_string(),
        reason: reason.into(),
    }
}

fn as_f64(origin: &str, key: &str, v: &Value) -> Result<f64> {
    v.as_f64()
        .or_else(|| v.as_i64().map(|i| i as f64))
        .ok_or_else(|| err(origin, format!("'{key}' must be a number, got {v:?}")))
}

fn as_usize(origin: &str, key: &str, v: &Value) -> Result<usize> {
    v.as_u64()
        .map(|u| u as usize)
        .ok_or_else(|| err(origin, format!("'{key}' must be a non-negative integer, got {v:?}")))
}

fn as_bool(origin: &str, key: &str, v: &Value) -> Result<bool> {
    v.as_bool()
        .ok_or_else(|| err(origin, format!("'{key}' must be true or false, got {v:?}")))
}

fn as_list_f64(origin: &str, key: &str, v: &Value) -> Result<Vec<f64>> {
    match v {
        Value::Sequence(s) => s.iter().map(|x| as_f64(origin, key, x)).collect(),
        other => Ok(vec![as_f64(origin, key, other)?]),
    }
}

impl Settings {
    /// Apply one PyRadiomics setting (`key` as PyRadiomics spells it). `Null` means "not set".
    pub fn apply(&mut self, origin: &str, key: &str, v: &Value) -> Result<()> {
        let null = v.is_null();
        match key {
            "binWidth" => self.bin_width = as_f64(origin, key, v)?,
            "binCount" => self.bin_count = if null { None } else { Some(as_usize(origin, key, v)?) },
            "voxelArrayShift" => self.voxel_array_shift = as_f64(origin, key, v)?,
            "label" => {
                self.label = v
                    .as_i64()
                    .ok_or_else(|| err(origin, format!("'label' must be an integer, got {v:?}")))?
            }
            "force2D" => self.force2d = as_bool(origin, key, v)?,
            "force2Ddimension" => {
                let d = as_usize(origin, key, v)?;
                if d > 2 {
                    return Err(err(origin, "'force2Ddimension' must be 0, 1 or 2"));
                }
                self.force2d_dimension = d
            }
            "normalize" => self.normalize = as_bool(origin, key, v)?,
            "normalizeScale" => self.normalize_scale = as_f64(origin, key, v)?,
            "removeOutliers" => self.remove_outliers = if null { None } else { Some(as_f64(origin, key, v)?) },
            "resegmentRange" => {
                self.resegment_range = if null {
                    None
                } else {
                    let r = as_list_f64(origin, key, v)?;
                    if r.is_empty() || r.len() > 2 {
                        return Err(err(origin, "'resegmentRange' takes one or two values"));
                    }
                    Some(r)
                }
            }
            "resegmentMode" => {
                self.resegment_mode = match v.as_str() {
                    Some("absolute") => ResegmentMode::Absolute,
                    Some("relative") => ResegmentMode::Relative,
                    Some("sigma") => ResegmentMode::Sigma,
                    _ => {
                        return Err(err(origin, "'resegmentMode' must be absolute, relative or sigma"));
                    }
                }
            }
            "resegmentShape" => self.resegment_shape = as_bool(origin, key, v)?,
            "minimumROIDimensions" => {
                let d = as_usize(origin, key, v)?;
                if !(1..=3).contains(&d) {
                    return Err(err(origin, "'minimumROIDimensions' must be 1, 2 or 3"));
                }
                self.minimum_roi_dimensions = d
            }
            "minimumROISize" => self.minimum_roi_size = if null { None } else { Some(as_usize(origin, key, v)?) },
            "preCrop" => self.pre_crop = as_bool(origin, key, v)?,
            "padDistance" => self.pad_distance = as_usize(origin, key, v)?,
            "distances" => {
                let d: Vec<usize> = match v {
                    Value::Sequence(s) => s.iter().map(|x| as_usize(origin, key, x)).collect::<Result<_>>()?,
                    other => vec![as_usize(origin, key, other)?],
                };
                if d.is_empty() || d.contains(&0) {
                    return Err(err(origin, "'distances' must be positive integers"));
                }
                self.distances = d
            }
            "weightingNorm" => {
                self.weighting_norm = if null {
                    None
                } else {
                    let s = v
                        .as_str()
                        .ok_or_else(|| err(origin, "'weightingNorm' must be a string"))?;
                    if !["manhattan", "euclidean", "infinity", "no_weighting"].contains(&s) {
                        return Err(err(origin, format!("unknown weightingNorm '{s}'")));
                    }
                    Some(s.to_string())
                }
            }
            "gldm_a" => self.gldm_a = as_f64(origin, key, v)?,
            "symmetricalGLCM" => self.symmetrical_glcm = as_bool(origin, key, v)?,
            "resampledPixelSpacing" => {
                self.resampled_pixel_spacing = if null {
                    None
                } else {
                    let s = as_list_f64(origin, key, v)?;
                    if s.len() != 3 || s.iter().any(|x| *x < 0.0 || !x.is_finite()) {
                        return Err(err(
                            origin,
                            "'resampledPixelSpacing' must be three non-negative numbers",
                        ));
                    }
                    Some([s[0], s[1], s[2]])
                }
            }
            "interpolator" => {
                if !null {
                    self.interpolator = match v {
                        Value::String(s) => match s.as_str() {
                            "sitkNearestNeighbor" => Interpolator::NearestNeighbor,
                            "sitkLinear" => Interpolator::Linear,
                            "sitkBSpline" => Interpolator::BSpline,
                            other => {
                                return Err(err(origin, format!("interpolator '{other}' is not supported")));
                            }
                        },
                        Value::Number(n) => match n.as_i64() {
                            Some(1) => Interpolator::NearestNeighbor,
                            Some(2) => Interpolator::Linear,
                            Some(3) => Interpolator::BSpline,
                            _ => {
                                return Err(err(origin, format!("interpolator {n} is not supported")));
                            }
                        },
                        other => return Err(err(origin, format!("bad interpolator {other:?}"))),
                    }
                }
            }
            "geometryTolerance" => {
                if !null {
                    self.geometry_tolerance = as_f64(origin, key, v)?
                }
            }
            "correctMask" => self.correct_mask = as_bool(origin, key, v)?,
            // Settings that only affect logging, output or filters we do not offer, accepted and ignored.
            "additionalInfo" | "enableCExtensions" | "verbose" | "label_channel" => {}
            other => return Err(err(origin, format!("setting '{other}' is not supported"))),
        }
        Ok(())
    }

    /// Read a PyRadiomics parameter file.
    pub fn from_yaml_file(path: &Path) -> Result<Settings> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Settings::from_yaml_str(&path.display().to_string(), &text)
    }

    /// Parse PyRadiomics parameter-file text.
    pub fn from_yaml_str(origin: &str, text: &str) -> Result<Settings> {
        let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| err(origin, format!("not valid YAML: {e}")))?;
        let mut s = Settings::default();
        let Value::Mapping(top) = doc else {
            if doc.is_null() {
                return Ok(s);
            }
            return Err(err(origin, "the parameter file must be a mapping"));
        };
        for (k, v) in &top {
            let key = k.as_str().unwrap_or_default();
            match key {
                "setting" => {
                    if let Value::Mapping(m) = v {
                        for (sk, sv) in m {
                            let sk = sk
                                .as_str()
                                .ok_or_else(|| err(origin, "setting names must be strings"))?;
                            s.apply(origin, sk, sv)?;
                        }
                    } else if !v.is_null() {
                        return Err(err(origin, "'setting' must be a mapping"));
                    }
                }
                "imageType" => {
                    if let Value::Mapping(m) = v {
                        for (ik, iv) in m {
                            let name = ik.as_str().unwrap_or_default();
                            if name != "Original" {
                                return Err(err(
                                    origin,
                                    format!("imageType '{name}' is not supported (only Original, as in the study)"),
                                ));
                            }
                            if let Value::Mapping(custom) = iv {
                                for (ck, cv) in custom {
                                    s.apply(origin, ck.as_str().unwrap_or_default(), cv)?;
                                }
                            }
                        }
                    }
                }
                "featureClass" => {
                    s.enabled.clear();
                    if let Value::Mapping(m) = v {
                        for (ck, cv) in m {
                            let class = ck.as_str().unwrap_or_default();
                            if !CLASSES.contains(&class) {
                                return Err(err(origin, format!("feature class '{class}' is not supported")));
                            }
                            let list = match cv {
                                Value::Null => None,
                                Value::Sequence(seq) if seq.is_empty() => None,
                                Value::Sequence(seq) => Some(
                                    seq.iter()
                                        .map(|x| {
                                            x.as_str().map(str::to_string).ok_or_else(|| {
                                                err(origin, format!("feature names in '{class}' must be strings"))
                                            })
                                        })
                                        .collect::<Result<Vec<_>>>()?,
                                ),
                                _ => {
                                    return Err(err(origin, format!("'{class}' must list feature names or be empty")));
                                }
                            };
                            s.enabled.insert(class.to_string(), list);
                        }
                    }
                }
                "voxelSetting" => {}
                other => return Err(err(origin, format!("unknown section '{other}'"))),
            }
        }
        Ok(s)
    }

    /// The binning in force.
    pub fn binning(&self) -> super::discretize::Binning {
        match self.bin_count {
            Some(n) => super::discretize::Binning::Count(n),
            None => super::discretize::Binning::Width(self.bin_width),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_pyradiomics_parameter_file() {
        let s = Settings::from_yaml_str(
            "t",
            "setting:\n  binWidth: 5\n  interpolator: 'sitkBSpline'\n  resampledPixelSpacing: [2, 2, 2]\n  resegmentRange: [-3, 3]\n  resegmentMode: sigma\nimageType:\n  Original: {}\nfeatureClass:\n  glcm: [Contrast]\n  firstorder:\n",
        )
        .unwrap();
        assert_eq!(s.bin_width, 5.0);
        assert_eq!(s.resampled_pixel_spacing, Some([2.0, 2.0, 2.0]));
        assert_eq!(s.resegment_mode, ResegmentMode::Sigma);
        assert_eq!(s.enabled.len(), 2);
        assert_eq!(s.enabled["glcm"], Some(vec!["Contrast".to_string()]));
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = Settings::from_yaml_str("p.yaml", "setting:\n  binWidht: 5\n").unwrap_err();
        assert!(e.to_string().contains("binWidht"), "{e}");
        let e = Settings::from_yaml_str("p.yaml", "imageType:\n  Wavelet: {}\n").unwrap_err();
        assert!(e.to_string().contains("Wavelet"), "{e}");
    }
}
