//! The synthetic cohort: patients with latent tumour traits that drive ALN status through a documented
//! logistic model, clinical variables, dates and cohort split, and their examinations written as DICOM (or a
//! NIfTI label map) exactly as a console would export them. Every output says it is synthetic.
//!
//! **Planted model** (the ground truth the pipeline should recover):
//! `logit P(ALN+) = β₀ + 1.6·size + 1.4·irregularity + 1.1·heterogeneity + 1.2·rim + 0.9·[washout] − 0.9·[persistent]`
//! with `β₀ = [`INTERCEPT`]`; size, irregularity and heterogeneity are standard normal, rim enhancement is present
//! with probability 0.4, kinetic types I/II/III with probabilities 0.3/0.4/0.3. This gives a prevalence near
//! 48 % (73/151 in the study) and an AUC of the true linear predictor near 0.90 (the study's nomogram AUC);
//! `tests/synth.rs` checks both.
//!
//! **MRI-reported LN status**: positive with probability 0.65 when ALN+ and 0.25 when ALN− (sensitivity 0.65,
//! specificity 0.75, as in the study's Table 1).
//!
//! **Clinical variables**, independent of the label. The study's Table 1 was not available here; these are
//! plausible marginals for such a cohort and are stated as such: age N(50, 10) clamped to 25–85; ER+ 0.70; PR+
//! 0.62; HER-2+ 0.28; Ki-67 high (≥ 14 %) 0.65; histology invasive ductal 0.88, invasive lobular 0.07, other 0.05.
//!
//! **Dates and split**: 70 % of examinations fall uniformly in 2014-01-01…2018-06-30 and 30 % in
//! 2018-07-01…2018-12-31; training = before 2018-07-01 (≈106 of 151), test = after (≈45).

use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::dicom::{self as w, ClassicOptions, PatientInfo, SegOptions, SegReference, SeriesIds};
use super::phantom::{Kinetic, PhantomSpec, Traits, jitter, render};
use crate::error::{Error, Result};
use crate::image::{PixelType, Volume};
use crate::rng::Rng;

/// Intercept of the planted logistic model.
pub const INTERCEPT: f64 = -0.62;

/// How the examination is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Vendor {
    /// One series holding all phases, repeated slice positions.
    Ge,
    /// One series per phase.
    Siemens,
    /// One Enhanced MR multi-frame file.
    Enhanced,
}

/// How the ROI is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum RoiFormat {
    /// DICOM SEG (binary).
    Seg,
    /// DICOM RTSTRUCT.
    Rtstruct,
    /// ITK-SNAP-style `.nii.gz` label map.
    Nifti,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct CohortSpec {
    /// Number of patients.
    pub patients: usize,
    /// Seed.
    pub seed: u64,
    /// Export style.
    pub vendor: Vendor,
    /// ROI format.
    pub roi: RoiFormat,
    /// Image size and noise.
    pub image: PhantomSpec,
    /// Reader ROI jitter (±1 voxel erosion/dilation) enabled.
    pub roi_jitter: bool,
}

impl Default for CohortSpec {
    /// The study-sized cohort: 151 patients (the study's 106 + 45), seed 7, GE-style export, SEG ROIs, the default
    /// examination, reader jitter on. `alnrisk synth`'s defaults.
    fn default() -> Self {
        CohortSpec {
            patients: 151,
            seed: 7,
            vendor: Vendor::Ge,
            roi: RoiFormat::Seg,
            image: PhantomSpec::default(),
            roi_jitter: true,
        }
    }
}

/// One synthetic patient.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Patient {
    /// `SYN0001`…
    pub id: String,
    /// Latent traits.
    pub traits: Traits,
    /// Planted linear predictor.
    pub linear_predictor: f64,
    /// ALN metastasis.
    pub aln: bool,
    /// MRI-reported LN status.
    pub mri_ln: bool,
    /// Age in years.
    pub age: u32,
    /// Histology.
    pub histology: &'static str,
    /// ER positive.
    pub er: bool,
    /// PR positive.
    pub pr: bool,
    /// HER-2 positive.
    pub her2: bool,
    /// Ki-67 (%).
    pub ki67: u32,
    /// Exam date `YYYY-MM-DD`.
    pub exam_date: String,
    /// `train` or `test`.
    pub cohort: &'static str,
    /// ROI jitter applied (−1, 0, +1).
    pub roi_jitter: i32,
}

/// The planted linear predictor of ALN+.
pub fn linear_predictor(t: &Traits) -> f64 {
    let kinetic = match t.kinetic {
        Kinetic::Washout => 0.9,
        Kinetic::Plateau => 0.0,
        Kinetic::Persistent => -0.9,
    };
    INTERCEPT + 1.6 * t.size + 1.4 * t.irregularity + 1.1 * t.heterogeneity + if t.rim { 1.2 } else { 0.0 } + kinetic
}

/// Draw patient `index` (0-based) of a cohort; depends only on `(seed, index)`.
pub fn draw_patient(seed: u64, index: usize, roi_jitter: bool) -> (Patient, Rng) {
    let mut rng = Rng::stream(seed, index as u64);
    let traits = Traits {
        size: rng.normal(),
        irregularity: rng.normal(),
        heterogeneity: rng.normal(),
        rim: rng.bernoulli(0.4),
        kinetic: [Kinetic::Persistent, Kinetic::Plateau, Kinetic::Washout][rng.categorical(&[0.3, 0.4, 0.3])],
    };
    let lp = linear_predictor(&traits);
    let aln = rng.bernoulli(1.0 / (1.0 + (-lp).exp()));
    let mri_ln = rng.bernoulli(if aln { 0.65 } else { 0.25 });
    let age = (50.0 + 10.0 * rng.normal()).clamp(25.0, 85.0).round() as u32;
    let histology = ["invasive ductal", "invasive lobular", "other"][rng.categorical(&[0.88, 0.07, 0.05])];
    let (er, pr, her2) = (rng.bernoulli(0.70), rng.bernoulli(0.62), rng.bernoulli(0.28));
    let ki67 = if rng.bernoulli(0.65) {
        rng.range(14.0, 60.0)
    } else {
        rng.range(2.0, 14.0)
    } as u32;
    // days since 2014-01-01: 2014-01-01..2018-06-30 is 1641 days, then 184 days to 2018-12-31
    let day = if rng.bernoulli(0.7) {
        rng.range(0.0, 1641.0)
    } else {
        rng.range(1642.0, 1826.0)
    } as i64;
    let exam_date = crate::time::civil_date(16071 + day);
    let cohort = if day < 1642 { "train" } else { "test" };
    let j = if roi_jitter {
        rng.categorical(&[0.25, 0.5, 0.25]) as i32 - 1
    } else {
        0
    };
    let patient = Patient {
        id: format!("SYN{:04}", index + 1),
        traits,
        linear_predictor: lp,
        aln,
        mri_ln,
        age,
        histology,
        er,
        pr,
        her2,
        ki67,
        exam_date,
        cohort,
        roi_jitter: j,
    };
    (patient, rng)
}

/// Write one patient's examination under `out/<id>/`; returns `(series_dir, roi_path, tumour diameter cm)`.
pub fn write_patient(spec: &CohortSpec, p: &Patient, rng: &mut Rng, out: &Path) -> Result<(PathBuf, PathBuf, f64)> {
    let ph = render(&spec.image, &p.traits, rng);
    let dir = out.join(&p.id);
    let dce = dir.join("dce");
    let roi_dir = dir.join("roi");
    std::fs::create_dir_all(&roi_dir).map_err(|e| Error::io(&roi_dir, e))?;
    let seed = format!("alnrisk-synth/{}/{}", spec.seed, p.id);
    let mut ids = SeriesIds::from_seed(&seed, 1);
    ids.patient = PatientInfo {
        name: format!("SYNTHETIC^{}", p.id),
        id: p.id.clone(),
        birth_date: format!("{}0101", p.exam_date[..4].parse::<i32>().unwrap_or(2017) - p.age as i32),
        study_date: p.exam_date.replace('-', ""),
        accession: format!("SYNACC{}", &p.id[3..]),
    };
    ids.description = "SYNTHETIC DCE 3D T1 FS".into();
    let [nx, ny, _] = ph.grid.size;
    let value = |q: usize, i: usize, j: usize, k: usize| ph.phases[q][i + nx * (j + ny * k)];
    let opts = ClassicOptions {
        temporal_ids: false,
        phase_times: true,
    };
    let reference_ids;
    let reference = match spec.vendor {
        Vendor::Ge => {
            w::write_classic_series(&dce, &ids, &ph.grid, spec.image.phases, opts, value, |q, k| {
                format!("IM{:05}.dcm", q * 1000 + k)
            })?;
            reference_ids = ids.clone();
            SegReference::Classic {
                phase: 1.min(spec.image.phases - 1),
            }
        }
        Vendor::Siemens => {
            let mut first = None;
            for q in 0..spec.image.phases {
                let mut sids = SeriesIds::from_seed(&seed, 10 + q as i64);
                sids.patient = ids.patient.clone();
                sids.study = ids.study.clone();
                sids.frame_of_reference = ids.frame_of_reference.clone();
                sids.description = format!("SYNTHETIC DCE 3D T1 FS dyn{}", q + 1);
                let only = |_: usize, i: usize, j: usize, k: usize| value(q, i, j, k);
                let phase_opts = ClassicOptions {
                    temporal_ids: false,
                    phase_times: false,
                };
                w::write_classic_series(
                    &dce.join(format!("s{:02}", q + 1)),
                    &sids,
                    &ph.grid,
                    1,
                    phase_opts,
                    only,
                    |_, k| format!("IM{:04}.dcm", k),
                )?;
                if q == 1 || first.is_none() {
                    first = Some(sids);
                }
            }
            reference_ids = first.unwrap_or(ids.clone());
            SegReference::Classic { phase: 0 }
        }
        Vendor::Enhanced => {
            std::fs::create_dir_all(&dce).map_err(|e| Error::io(&dce, e))?;
            w::write_enhanced(&dce.join("enhanced.dcm"), &ids, &ph.grid, spec.image.phases, value)?;
            reference_ids = ids.clone();
            SegReference::Enhanced {
                phase: 1.min(spec.image.phases - 1),
            }
        }
    };
    let mut roi = jitter(&ph.tumour, ph.grid.size, p.roi_jitter);
    if !roi.iter().any(|&b| b) {
        roi = ph.tumour.clone();
    }
    let inside = |i: usize, j: usize, k: usize| roi[i + nx * (j + ny * k)];
    let roi_path = match spec.roi {
        RoiFormat::Seg => {
            let path = roi_dir.join("seg.dcm");
            w::write_seg(
                &path,
                &reference_ids,
                &ph.grid,
                SegOptions {
                    reference,
                    ..SegOptions::default()
                },
                inside,
            )?;
            path
        }
        RoiFormat::Rtstruct => {
            let path = roi_dir.join("rtstruct.dcm");
            let mut contours = Vec::new();
            for k in 0..ph.grid.size[2] {
                for poly in super::contour::outlines(nx, ny, |i, j| inside(i, j, k)) {
                    contours.push(
                        poly.iter()
                            .map(|q| ph.grid.continuous_index_to_physical([q[0], q[1], k as f64]))
                            .collect(),
                    );
                }
            }
            w::write_rtstruct(&path, &reference_ids, "Tumour", &contours)?;
            path
        }
        RoiFormat::Nifti => {
            let path = roi_dir.join("tumour.nii.gz");
            let vol = Volume {
                geometry: ph.grid.clone(),
                data: roi.iter().map(|&b| if b { 1.0 } else { 0.0 }).collect(),
                pixel_type: PixelType::U8,
            };
            crate::io::nifti::write(&path, &vol)?;
            path
        }
    };
    // long-axis size: largest extent of the true tumour along a grid axis
    let mut lo = [usize::MAX; 3];
    let mut hi = [0usize; 3];
    for (o, &b) in ph.tumour.iter().enumerate() {
        if b {
            let pnt = [o % nx, (o / nx) % ny, o / (nx * ny)];
            for d in 0..3 {
                lo[d] = lo[d].min(pnt[d]);
                hi[d] = hi[d].max(pnt[d]);
            }
        }
    }
    let size_cm = (0..3)
        .map(|d| (hi[d].saturating_sub(lo[d]) + 1) as f64 * ph.grid.spacing[d])
        .fold(0.0, f64::max)
        / 10.0;
    Ok((dce, roi_path, size_cm))
}

/// What [`write_cohort`] produced.
#[derive(Debug)]
pub struct CohortSummary {
    /// The patients, in order.
    pub patients: Vec<Patient>,
    /// `cohort.csv`.
    pub cohort_csv: PathBuf,
    /// `truth.csv`.
    pub truth_csv: PathBuf,
}

fn yn(b: bool) -> &'static str {
    if b { "positive" } else { "negative" }
}

/// Generate the cohort under `out` (patients in parallel; output independent of the thread count).
pub fn write_cohort(spec: &CohortSpec, out: &Path) -> Result<CohortSummary> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let rows: Vec<Result<(Patient, PathBuf, PathBuf, f64)>> = (0..spec.patients)
        .into_par_iter()
        .map(|i| {
            let (p, mut rng) = draw_patient(spec.seed, i, spec.roi_jitter);
            let (dce, roi, size) = write_patient(spec, &p, &mut rng, out)?;
            Ok((p, dce, roi, size))
        })
        .collect();
    let rel = |p: &Path| p.strip_prefix(out).unwrap_or(p).display().to_string();
    let mut cohort = String::from(
        "id,series_dir,roi,aln_status,mri_ln_status,age,tumor_size_cm,histology,er,pr,her2,ki67,exam_date,cohort\n",
    );
    let mut truth =
        String::from("id,size,irregularity,heterogeneity,rim,kinetic,linear_predictor,probability,roi_jitter\n");
    let mut patients = Vec::new();
    for r in rows {
        let (p, dce, roi, size) = r?;
        cohort.push_str(&format!(
            "{},{},{},{},{},{},{:.2},{},{},{},{},{},{},{}\n",
            p.id,
            rel(&dce),
            rel(&roi),
            u8::from(p.aln),
            yn(p.mri_ln),
            p.age,
            size,
            p.histology,
            yn(p.er),
            yn(p.pr),
            yn(p.her2),
            p.ki67,
            p.exam_date,
            p.cohort
        ));
        let t = &p.traits;
        truth.push_str(&format!(
            "{},{:.6},{:.6},{:.6},{},{:?},{:.6},{:.6},{}\n",
            p.id,
            t.size,
            t.irregularity,
            t.heterogeneity,
            u8::from(t.rim),
            t.kinetic,
            p.linear_predictor,
            1.0 / (1.0 + (-p.linear_predictor).exp()),
            p.roi_jitter
        ));
        patients.push(p);
    }
    let cohort_csv = out.join("cohort.csv");
    let truth_csv = out.join("truth.csv");
    let write = |path: &Path, text: &str| -> Result<()> {
        let mut f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        f.write_all(text.as_bytes()).map_err(|e| Error::io(path, e))
    };
    write(&cohort_csv, &cohort)?;
    write(&truth_csv, &truth)?;
    write(
        &out.join("README.txt"),
        "SYNTHETIC DATA. Every examination here was generated by `alnrisk synth`; no patient data.\nSee cohort.csv (the site cohort schema) and truth.csv (the planted latent traits; for tests only).\n",
    )?;
    Ok(CohortSummary {
        patients,
        cohort_csv,
        truth_csv,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(crate::time::civil_date(16071), "2014-01-01");
        assert_eq!(crate::time::civil_date(16071 + 1642), "2018-07-01");
        assert_eq!(crate::time::civil_date(16071 + 1825), "2018-12-31");
    }

    #[test]
    fn planted_model_has_the_documented_prevalence_and_auc() {
        let n = 40_000;
        let pats: Vec<Patient> = (0..n).map(|i| draw_patient(99, i, false).0).collect();
        let prev = pats.iter().filter(|p| p.aln).count() as f64 / n as f64;
        let lp: Vec<f64> = pats.iter().map(|p| p.linear_predictor).collect();
        let y: Vec<bool> = pats.iter().map(|p| p.aln).collect();
        let auc = crate::stats::auc(&lp, &y);
        let mri_sens =
            pats.iter().filter(|p| p.aln && p.mri_ln).count() as f64 / pats.iter().filter(|p| p.aln).count() as f64;
        let train = pats.iter().filter(|p| p.cohort == "train").count() as f64 / n as f64;
        println!("prevalence {prev:.3}, AUC {auc:.3}, MRI sensitivity {mri_sens:.3}, train fraction {train:.3}");
        assert!((prev - 0.48).abs() < 0.02, "{prev}");
        assert!((auc - 0.90).abs() < 0.015, "{auc}");
        assert!((mri_sens - 0.65).abs() < 0.02);
        assert!((train - 106.0 / 151.0).abs() < 0.02, "{train}");
    }
}
