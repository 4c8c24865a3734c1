//! One examination → the nomogram's answer, from a verified [`Bundle`]: radiomics features with the bundle's
//! settings, VGG-16 (Q8_0) fc7 of the largest cross-section, both signatures, the clinical factors, and
//! out-of-distribution flags against the training ranges (of the selected features, the nomogram's predictors and
//! the acquisition descriptors).
//!
//! The MRI-reported LN status is a radiologist's read that is usually not known when the series arrives: when the
//! nomogram uses it and no value is given, the prediction carries both scenarios (`if_ln_negative`,
//! `if_ln_positive`) and no single probability. Any other reported factor ([`super::reported`]) the same: one
//! binary factor unknown gives its scenarios; a number or several factors unknown give [`Prediction::missing`].

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::acquisition;
use super::bundle::Bundle;
use super::ln_read::LnRead;
use super::nomogram::NomogramResult;
use super::ood::{OodFlag, OodKind};
use crate::case::LoadedCase;
use crate::deep::{self, Vgg16};
use crate::error::{Error, Result};
use crate::radiomics;

/// Name of the nomogram predictor for the MRI-reported LN status.
pub const MRI_LN: &str = "mri_ln_status";

/// The prediction for one examination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Bundle id.
    pub bundle_id: String,
    /// Bundle version.
    pub bundle_version: String,
    /// sha256 of the bundle manifest.
    pub bundle_sha256: String,
    /// Signature values (`radiomics_signature`, `deep_signature`).
    pub signatures: BTreeMap<String, f64>,
    /// The nomogram's answer, when every predictor is known.
    pub result: Option<NomogramResult>,
    /// When one binary reported factor is missing, usually the MRI LN read: the answer under each of its values
    /// (`if_ln_negative`, `if_ln_positive`; `if_{column}_{level}` for another factor).
    pub scenarios: BTreeMap<String, NomogramResult>,
    /// The reported factors (cohort columns) still missing when there is neither an answer nor scenarios: a
    /// number (the MRI-reported tumour size), or more than one factor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// Probability cutoff of the class.
    pub cutoff: f64,
    /// Inputs outside the training range: features and predictors, and acquisition descriptors.
    pub out_of_distribution: Vec<OodFlag>,
}

/// A bundle with its network loaded, ready to predict.
pub struct Predictor {
    /// The verified bundle.
    pub bundle: Bundle,
    net: Vgg16,
}

/// Features of one case as the bundle computes them.
#[derive(Debug, Clone)]
pub struct CaseFeatures {
    /// Radiomics, PyRadiomics names.
    pub radiomics: BTreeMap<String, f64>,
    /// Deep features (`deep_fc7_0000`, …).
    pub deep: Vec<f64>,
    /// Acquisition descriptors ([`acquisition::describe`]).
    pub acquisition: BTreeMap<String, f64>,
}

impl Predictor {
    /// Load the bundle's Q8_0 network on `device`.
    pub fn new(bundle: Bundle, device: &Device) -> Result<Predictor> {
        let path = bundle.dir.join(&bundle.manifest.vgg.quantized);
        let net = Vgg16::load_gguf(&path, device)?;
        Ok(Predictor { bundle, net })
    }

    /// Radiomics, deep features and acquisition descriptors of a loaded case (side by side on the thread pool).
    pub fn features(&self, case: &LoadedCase, image: &Path, mask: &Path) -> Result<CaseFeatures> {
        let m = &self.bundle.manifest;
        let label = m.radiomics_settings.label as f64;
        let ((ex, acquisition), deep) = rayon::join(
            || {
                rayon::join(
                    || radiomics::extract(image, &case.image, mask, &case.mask, &m.radiomics_settings),
                    || acquisition::describe(&case.image, &case.mask, label, &m.radiomics_settings),
                )
            },
            || self.deep_features(case),
        );
        let radiomics = ex?.features.entries.iter().cloned().collect();
        Ok(CaseFeatures {
            radiomics,
            deep: deep?,
            acquisition,
        })
    }

    /// Choose the CUDA trunk's convolution path (`model.cuda_trunk`; ignored on the CPU).
    pub fn set_cuda_trunk(&mut self, kind: crate::deep::CudaTrunkKind) -> Result<()> {
        self.net.set_cuda_trunk(kind)
    }

    /// Whether the network runs on the CPU.
    pub fn on_cpu(&self) -> bool {
        self.net.device.is_cpu()
    }

    /// Where the network runs, for the log: `cpu`, or `cuda` with the trunk's convolution path.
    pub fn compute_path(&self) -> String {
        if self.net.device.is_cpu() {
            "cpu".into()
        } else {
            format!("cuda ({:?} trunk)", self.net.cuda_trunk_kind())
        }
    }

    /// Run the network once on a blank crop, so that a GPU's kernels are loaded (and JIT-compiled) at start-up
    /// rather than inside the first examination's latency.
    pub fn warm_up(&self) -> Result<()> {
        let blank = deep::Crop {
            rows: 32,
            cols: 32,
            values: vec![0.0; 32 * 32],
            slice: 0,
        };
        self.net
            .forward(&deep::batch(std::slice::from_ref(&blank), &Device::Cpu)?)?;
        Ok(())
    }

    /// The VGG-16 activations the deep signature reads, for the largest ROI cross-section.
    fn deep_features(&self, case: &LoadedCase) -> Result<Vec<f64>> {
        let m = &self.bundle.manifest;
        let crop = deep::crop_largest_slice(&case.image, &case.mask, m.roi.label as f64, m.roi.crop_margin)?;
        let out = self
            .net
            .forward(&deep::batch(std::slice::from_ref(&crop), &Device::Cpu)?)?;
        Ok(out
            .layer(m.vgg.layer)
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())?
            .into_iter()
            .map(f64::from)
            .collect())
    }

    /// Predict from features and clinical values (by predictor name; `mri_ln_status` 0/1 may be absent).
    pub fn predict_features(&self, f: &CaseFeatures, clinical: &BTreeMap<String, f64>) -> Result<Prediction> {
        let m = &self.bundle.manifest;
        let mut signatures = BTreeMap::new();
        let mut ood = Vec::new();
        let layer = m.vgg.layer;
        let lookup = |name: &str| -> Option<f64> {
            if let Some(v) = f.radiomics.get(name) {
                return Some(*v);
            }
            f.deep.get(layer.unit_of(name)?).copied()
        };
        for sig in [&m.signatures.radiomics, &m.signatures.deep].into_iter().flatten() {
            let key = format!("{}_signature", sig.name);
            let s = sig
                .score(lookup)
                .map_err(|missing| Error::Model(format!("feature {missing} not computed")))?;
            for name in &sig.features {
                if let (Some(r), Some(v)) = (m.feature_ranges.get(name), lookup(name))
                    && r.outside(v)
                {
                    ood.push(OodFlag::feature(name, v, r.min, r.max));
                }
            }
            signatures.insert(key, s);
        }
        ood.extend(acquisition::flags(&m.acquisition_ranges, &f.acquisition));
        self.from_signatures(&signatures, ood, clinical)
    }

    /// The nomogram's answer from signature values already computed (e.g. kept by the daemon until the MRI LN
    /// read arrives), the images' out-of-distribution flags, and clinical values.
    pub fn from_signatures(
        &self,
        signatures: &BTreeMap<String, f64>,
        mut ood: Vec<OodFlag>,
        clinical: &BTreeMap<String, f64>,
    ) -> Result<Prediction> {
        let m = &self.bundle.manifest;
        let mut values = clinical.clone();
        values.extend(signatures.iter().map(|(k, v)| (k.clone(), *v)));
        for (name, v) in &values {
            if let Some(r) = m.feature_ranges.get(name)
                && r.outside(*v)
                && !ood.iter().any(|o| o.kind == OodKind::Feature && &o.name == name)
            {
                ood.push(OodFlag::feature(name, *v, r.min, r.max));
            }
        }
        // The reported factors not known yet, by cohort column (a categorical column may be several predictors).
        let mut unknown: Vec<super::reported::FactorNeed> = super::reported::needs(m);
        unknown.retain(|need| {
            m.nomogram.predictors.iter().any(|p| {
                !values.contains_key(&p.name)
                    && super::reported::coding_of(m, &p.name).is_some_and(|c| c.column == need.column)
            })
        });
        let strays: Vec<&str> = m
            .nomogram
            .predictors
            .iter()
            .map(|p| p.name.as_str())
            .filter(|n| !values.contains_key(*n) && super::reported::coding_of(m, n).is_none())
            .collect();
        if !strays.is_empty() {
            return Err(Error::Model(format!("needs predictor(s) {}", strays.join(", "))));
        }
        let mut scenarios = BTreeMap::new();
        let mut missing = Vec::new();
        let evaluate = |with: &BTreeMap<String, f64>| {
            m.nomogram
                .evaluate(with)
                .map_err(|n| Error::Model(format!("needs predictor {n}")))
        };
        let result = match unknown.as_slice() {
            [] => Some(evaluate(&values)?),
            // one binary factor unknown: the answer under each of its values, side by side
            [need] if need.is_binary() => {
                for (label, reported) in scenarios_of(need) {
                    let mut with = values.clone();
                    with.extend(reported.coded(m));
                    scenarios.insert(label, evaluate(&with)?);
                }
                None
            }
            // a number, or several factors: no answer until they are reported
            _ => {
                missing = unknown.iter().map(|n| n.column.clone()).collect();
                None
            }
        };
        Ok(Prediction {
            bundle_id: m.bundle_id.clone(),
            bundle_version: m.version.clone(),
            bundle_sha256: self.bundle.sha256.clone(),
            signatures: signatures.clone(),
            result,
            scenarios,
            missing,
            cutoff: m.nomogram.cutoff,
            out_of_distribution: ood,
        })
    }
}

/// The scenarios of one unknown binary factor: (label, what it would be). The LN read's are `if_ln_negative`
/// and `if_ln_positive`; another factor's `if_{column}_{level}` per training level, or for a bundle that lists
/// only the level coded 1, `if_{column}_{level}` and `if_{column}_not_{level}`.
fn scenarios_of(need: &super::reported::FactorNeed) -> Vec<(String, super::reported::Reported)> {
    use super::reported::{FactorKind, Reported};
    if need.is_ln() {
        return [
            ("if_ln_negative", LnRead::Negative),
            ("if_ln_positive", LnRead::Positive),
        ]
        .into_iter()
        .map(|(label, v)| {
            let r = Reported {
                ln: Some(v),
                ..Reported::default()
            };
            (label.to_string(), r)
        })
        .collect();
    }
    let FactorKind::Level { levels } = &need.kind else {
        return Vec::new();
    };
    let one = |label: String, text: String| {
        let r = Reported {
            ln: None,
            factors: BTreeMap::from([(need.column.clone(), text)]),
        };
        (label, r)
    };
    match levels.as_slice() {
        [level] => vec![
            one(format!("if_{}_not_{level}", need.column), String::new()),
            one(format!("if_{}_{level}", need.column), level.clone()),
        ],
        _ => levels
            .iter()
            .map(|l| one(format!("if_{}_{l}", need.column), l.clone()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::reported::{FactorKind, FactorNeed};
    use super::*;

    fn levels(column: &str, levels: &[&str]) -> FactorNeed {
        FactorNeed {
            column: column.into(),
            kind: FactorKind::Level {
                levels: levels.iter().map(|l| l.to_string()).collect(),
            },
        }
    }

    #[test]
    fn an_unknown_binary_factor_has_one_scenario_per_value_coded_by_the_bundle() {
        // the LN read keeps the names results have always had
        let ln = scenarios_of(&levels(MRI_LN, &["negative", "positive"]));
        let names: Vec<&str> = ln.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(names, ["if_ln_negative", "if_ln_positive"]);
        assert_eq!(ln[1].1.ln, Some(LnRead::Positive));
        // another factor: one per training level, each reported as that level
        let er = scenarios_of(&levels("er", &["negative", "positive"]));
        assert_eq!(er[0].0, "if_er_negative");
        assert_eq!(er[1].0, "if_er_positive");
        assert_eq!(er[1].1.factors["er"], "positive");
        let coding = super::super::bundle::ClinicalCoding {
            name: "er".into(),
            column: "er".into(),
            level: Some("positive".into()),
            levels: vec!["negative".into(), "positive".into()],
        };
        assert_eq!(coding.code(&er[0].1.factors["er"]), 0.0);
        assert_eq!(coding.code(&er[1].1.factors["er"]), 1.0);
        // a bundle that listed only the level coded 1: that level, and not it
        let old = scenarios_of(&levels("er", &["positive"]));
        assert_eq!(old[0].0, "if_er_not_positive");
        assert_eq!(coding.code(&old[0].1.factors["er"]), 0.0);
        assert_eq!(old[1].0, "if_er_positive");
        // a number has none
        let size = FactorNeed {
            column: "tumor_size_cm".into(),
            kind: FactorKind::Number,
        };
        assert!(!size.is_binary() && scenarios_of(&size).is_empty());
    }
}
