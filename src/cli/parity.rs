//! `alnrisk parity`: radiomics against PyRadiomics on its own test images, then the chain on synthetic DICOM.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use super::extract::extract_files;
use super::{Inputs, load_inputs};
use alnrisk::radiomics::{self, Settings};

pub(super) fn parity(data: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let root = data.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data"));
    println!("alnrisk parity — radiomics engine (PyRadiomics-compatible), on PyRadiomics' own test images.");
    println!("These are public research images, not patient data of this site.\n");
    println!("| case | ROI voxels | features | worst rel. error vs PyRadiomics 3.1.0 | time (ms) |");
    println!("|---|---|---|---|---|");
    let mut worst_all = 0.0f64;
    for case in ["brain1", "breast1"] {
        let image = root.join(format!("pyradiomics/{case}_image.nrrd"));
        let mask = root.join(format!("pyradiomics/{case}_label.nrrd"));
        let t = std::time::Instant::now();
        let ex = extract_files(&image, &mask, &Settings::default(), &Inputs::default())?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let mut worst = (0.0f64, String::new());
        for file in [format!("{case}.csv"), format!("{case}_shape2D.csv")] {
            let path = root.join("pyradiomics-3.1.0-reference").join(file);
            let mut rdr = csv::Reader::from_path(&path).with_context(|| format!("reading {}", path.display()))?;
            for rec in rdr.records() {
                let rec = rec?;
                let reference: f64 = rec[1].parse()?;
                let ours = ex.features.get(&rec[0]).unwrap_or(f64::NAN);
                let rel = if ours == reference {
                    0.0
                } else {
                    (ours - reference).abs() / reference.abs().max(1e-12)
                };
                if rel.is_nan() || rel >= worst.0 {
                    worst = (if rel.is_nan() { f64::INFINITY } else { rel }, rec[0].to_string());
                }
            }
        }
        worst_all = worst_all.max(worst.0);
        let voxels = ex
            .diagnostics
            .iter()
            .find(|(k, _)| k == "diagnostics_Mask-original_VoxelNum")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        println!(
            "| {case} | {voxels} | {} | {:.1e} ({}) | {ms:.1} |",
            ex.features.len(),
            worst.0,
            worst.1
        );
    }
    demo_chain()?;
    println!("\nFeature values: `alnrisk extract --image IMG --mask MASK` (see README).");
    Ok(if worst_all <= 1e-6 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The chain so far on three SYNTHETIC patients: DICOM export → ingest → radiomics → VGG-16 fc7.
fn demo_chain() -> anyhow::Result<()> {
    use alnrisk::synth::{cohort, phantom::PhantomSpec};
    let dir = std::env::temp_dir().join(format!("alnrisk-demo-{}", std::process::id()));
    let spec = cohort::CohortSpec {
        patients: 3,
        image: PhantomSpec {
            matrix: 128,
            slices: 32,
            ..PhantomSpec::default()
        },
        ..cohort::CohortSpec::default()
    };
    println!(
        "\nSYNTHETIC DATA: three generated patients (not patient data), written as a GE console would export them,"
    );
    println!("then read back: DICOM series + SEG → phase 2 → radiomics (116 features) and VGG-16 fc7 (Q8_0).");
    println!("The VGG weights are seeded and UNTRAINED here (fine-tuning on a cohort comes with `fit`).\n");
    let t = std::time::Instant::now();
    let summary = cohort::write_cohort(&spec, &dir)?;
    println!(
        "generated {} examinations in {:.1} s under {}",
        summary.patients.len(),
        t.elapsed().as_secs_f64(),
        dir.display()
    );
    let cfg = alnrisk::deep::VggConfig::vgg16(2);
    let weights = alnrisk::deep::vgg::he_init(&cfg, 0)?;
    let mut net = alnrisk::deep::Vgg16::from_tensors(cfg, &weights, Path::new("he-init"), &candle_core::Device::Cpu)?;
    net.quantize()?;
    println!(
        "\n| patient | ALN (planted) | ROI voxels | shape MeshVolume mm³ | firstorder Mean | glcm Contrast | ‖fc7‖ | ms |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for p in &summary.patients {
        let t = std::time::Instant::now();
        let dce = dir.join(&p.id).join("dce");
        let seg = dir.join(&p.id).join("roi").join("seg.dcm");
        let loaded = load_inputs(&dce, &seg, &Inputs::default())?;
        let ex = radiomics::extract(&dce, &loaded.image, &seg, &loaded.mask, &Settings::default())?;
        let crop = alnrisk::deep::crop_largest_slice(&loaded.image, &loaded.mask, 1.0, 0)?;
        let out = net.forward(&alnrisk::deep::batch(
            std::slice::from_ref(&crop),
            &candle_core::Device::Cpu,
        )?)?;
        let fc7: Vec<f32> = out
            .fc7
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let norm = fc7.iter().map(|v| v * v).sum::<f32>().sqrt();
        let voxels = loaded.mask.data.iter().filter(|&&v| v == 1.0).count();
        let f = |n: &str| ex.features.get(n).unwrap_or(f64::NAN);
        println!(
            "| {} | {} | {voxels} | {:.0} | {:.1} | {:.2} | {norm:.1} | {:.0} |",
            p.id,
            u8::from(p.aln),
            f("original_shape_MeshVolume"),
            f("original_firstorder_Mean"),
            f("original_glcm_Contrast"),
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
