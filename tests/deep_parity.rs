//! VGG-16 against PyTorch: the golden fixture `tests/data/golden/vgg16_small.safetensors` was written by
//! `tests/golden/make_vgg_fixture.py` with PyTorch 2.11 / torchvision 0.26 (reduced-width VGG-16, torchvision
//! names). Preprocessing, pool5, fc6, fc7 and logits must agree within 1e-4 relative; Q8_0 fc layers must keep
//! fc7 at cosine ≥ 0.999.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use alnrisk::Error;
use alnrisk::deep::{Crop, Vgg16, VggConfig, batch, cosine, preprocess::to_input, vgg::he_init};
use candle_core::{DType, Device, Tensor};

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden/vgg16_small.safetensors")
}

fn fixture() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture_path(), &Device::Cpu).unwrap()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn crop(t: &Tensor) -> Crop {
    let (rows, cols) = t.dims2().unwrap();
    Crop {
        rows,
        cols,
        values: flat(t),
        slice: 0,
    }
}

/// max |a − b| / max |b|
fn rel(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn small() -> VggConfig {
    VggConfig::scaled(16, 256, 2)
}

#[test]
fn preprocessing_matches_pytorch() {
    let f = fixture();
    let ours: Vec<f32> = [
        to_input(&crop(&f["fixture.crop_a"])),
        to_input(&crop(&f["fixture.crop_b"])),
    ]
    .concat();
    let theirs = flat(&f["fixture.input"]);
    let max_abs = ours.iter().zip(&theirs).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    println!("preprocessing: max |ours − torch| = {max_abs:e}");
    assert!(max_abs <= 1e-5, "{max_abs}");
}

#[test]
fn forward_matches_pytorch() {
    let f = fixture();
    let net = Vgg16::from_tensors(small(), &f, &fixture_path(), &Device::Cpu).unwrap();
    let x = batch(&[crop(&f["fixture.crop_a"]), crop(&f["fixture.crop_b"])], &Device::Cpu).unwrap();
    let out = net.forward(&x).unwrap();
    for (name, ours) in [
        ("pool5", &out.pool5),
        ("fc6", &out.fc6),
        ("fc7", &out.fc7),
        ("logits", &out.logits),
    ] {
        let r = rel(&flat(ours), &flat(&f[&format!("fixture.{name}")]));
        println!("{name}: max relative difference {r:e}");
        assert!(r <= 1e-4, "{name}: {r}");
    }
}

#[test]
fn q8_fc7_keeps_cosine_above_0_999() {
    let f = fixture();
    let x = f["fixture.input"].clone();
    let full = Vgg16::from_tensors(small(), &f, &fixture_path(), &Device::Cpu).unwrap();
    let mut q8 = Vgg16::from_tensors(small(), &f, &fixture_path(), &Device::Cpu).unwrap();
    q8.quantize().unwrap();
    assert!(q8.is_quantized());
    let (a, b) = (full.forward(&x).unwrap().fc7, q8.forward(&x).unwrap().fc7);
    for n in 0..2 {
        let c = cosine(&flat(&a.get(n).unwrap()), &flat(&b.get(n).unwrap()));
        println!("image {n}: fc7 cosine Q8_0 vs f32 = {c:.6}");
        assert!(c >= 0.999, "{c}");
    }
}

#[test]
fn weights_errors_name_the_tensor() {
    let mut f = fixture();
    let p = fixture_path();
    f.remove("classifier.3.weight");
    let e = Vgg16::from_tensors(small(), &f, &p, &Device::Cpu).err().unwrap();
    assert!(
        matches!(e, Error::Weights { .. }) && e.to_string().contains("'classifier.3.weight' is missing"),
        "{e}"
    );
    let mut f = fixture();
    f.insert(
        "features.0.weight".into(),
        Tensor::zeros((4, 3, 5, 5), DType::F32, &Device::Cpu).unwrap(),
    );
    let e = Vgg16::from_tensors(small(), &f, &p, &Device::Cpu).err().unwrap();
    assert!(
        e.to_string().contains("'features.0.weight' has shape [4, 3, 5, 5]"),
        "{e}"
    );
    let mut f = fixture();
    f.insert(
        "features.0.bias".into(),
        Tensor::zeros(4, DType::U32, &Device::Cpu).unwrap(),
    );
    let e = Vgg16::from_tensors(small(), &f, &p, &Device::Cpu).err().unwrap();
    assert!(e.to_string().contains("'features.0.bias' has dtype U32"), "{e}");
    let bad = std::env::temp_dir().join("alnrisk-not-safetensors.bin");
    std::fs::write(&bad, b"nope").unwrap();
    assert!(matches!(
        Vgg16::load(small(), &bad, &Device::Cpu),
        Err(Error::Weights { .. })
    ));
}

#[test]
fn seeded_he_initialisation_is_deterministic_and_loads() {
    let (a, b) = (he_init(&small(), 3).unwrap(), he_init(&small(), 3).unwrap());
    for (k, v) in &a {
        assert_eq!(flat(v), flat(&b[k]), "{k}");
    }
    assert_ne!(
        flat(&a["features.0.weight"]),
        flat(&he_init(&small(), 4).unwrap()["features.0.weight"])
    );
    let net = Vgg16::from_tensors(small(), &a, Path::new("he-init"), &Device::Cpu).unwrap();
    let f = fixture();
    let out = net.forward(&f["fixture.input"]).unwrap();
    assert_eq!(out.fc7.dims(), &[2, 256]);
}

#[test]
fn gguf_export_round_trips_the_q8_network() {
    let f = fixture();
    let mut q8 = Vgg16::from_tensors(small(), &f, &fixture_path(), &Device::Cpu).unwrap();
    q8.quantize().unwrap();
    let p = std::env::temp_dir().join(format!("alnrisk-vgg-{}.gguf", std::process::id()));
    q8.save_gguf(&p).unwrap();
    let back = Vgg16::load_gguf(&p, &Device::Cpu).unwrap();
    assert!(back.is_quantized());
    let x = f["fixture.input"].clone();
    assert_eq!(
        flat(&q8.forward(&x).unwrap().logits),
        flat(&back.forward(&x).unwrap().logits)
    );
    let full = std::fs::metadata(fixture_path()).unwrap().len();
    let gguf = std::fs::metadata(&p).unwrap().len();
    println!("fixture safetensors {full} bytes (incl. test tensors), GGUF with Q8_0 dense {gguf} bytes");
}

#[test]
fn a_roi_smaller_than_2x2_on_its_largest_slice_is_refused() {
    use alnrisk::image::{Geometry, PixelType, Volume};
    let g = Geometry::new([8, 8, 3], [1.0; 3], [0.0; 3]);
    let image = Volume {
        geometry: g.clone(),
        data: (0..g.len()).map(|v| v as f64).collect(),
        pixel_type: PixelType::F64,
    };
    let mut mask = Volume {
        geometry: g.clone(),
        data: vec![0.0; g.len()],
        pixel_type: PixelType::U8,
    };
    for i in 2..6 {
        let o = g.offset(i, 4, 1); // a 1-row line: 4×1
        mask.data[o] = 1.0;
    }
    let e = alnrisk::deep::crop_largest_slice(&image, &mask, 1.0, 0).unwrap_err();
    assert!(e.to_string().contains("at least 2×2"), "{e}");
    let o = g.offset(2, 5, 1);
    mask.data[o] = 1.0;
    let c = alnrisk::deep::crop_largest_slice(&image, &mask, 1.0, 1).unwrap();
    assert_eq!((c.rows, c.cols, c.slice), (4, 6, 1)); // 2×4 grown by a margin of 1
}
