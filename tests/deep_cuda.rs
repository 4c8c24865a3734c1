//! VGG-16 on a GPU (built only with `--features cuda`; run on a machine with a GPU — CI has none, and the default
//! build compiles this file to nothing). Each NHWC f16 trunk of this build (`src/deep/cuda_trunk/`: im2col, and
//! with `--features cudnn` cuDNN plain and fused) against PyTorch's fixture, against candle's convolution on the
//! same GPU, and against the CPU f32 trunk, on full-size VGG-16 with non-zero biases.
//! Run: `cargo test --release --features cuda --test deep_cuda` (or `--features cudnn`).
#![cfg(feature = "cuda")]

use std::path::Path;

use alnrisk::deep::cuda_trunk::CudaTrunkKind;
use alnrisk::deep::{Vgg16, VggConfig, cosine, vgg::he_init};
use candle_core::{DType, Device, Tensor};

fn gpu() -> Device {
    Device::new_cuda(0).expect("this test needs a CUDA GPU (build with --features cuda and run on the GPU machine)")
}

/// The NHWC trunks this build has.
fn kinds() -> Vec<CudaTrunkKind> {
    let mut v = vec![CudaTrunkKind::Nhwc];
    if cfg!(feature = "cudnn") {
        v.extend([CudaTrunkKind::Cudnn, CudaTrunkKind::CudnnFused]);
    }
    v
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .and_then(|t| t.to_device(&Device::Cpu))
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .unwrap()
}

#[test]
fn nhwc_trunks_match_pytorch_on_the_fixture() {
    // the repository root, also when the test binary was built elsewhere and carried to the GPU machine
    let rel = Path::new("tests/data/golden/vgg16_small.safetensors");
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let path = if built.exists() { built } else { rel.to_path_buf() };
    let f = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    for kind in kinds() {
        let mut net = Vgg16::from_tensors(VggConfig::scaled(16, 256, 2), &f, &path, &gpu()).unwrap();
        net.set_cuda_trunk(kind).unwrap();
        let out = net.forward(&f["fixture.input"]).unwrap();
        for name in ["pool5", "fc7", "logits"] {
            let ours = flat(match name {
                "pool5" => &out.pool5,
                "fc7" => &out.fc7,
                _ => &out.logits,
            });
            let theirs = flat(&f[&format!("fixture.{name}")]);
            let n = ours.len() / 2;
            for i in 0..2 {
                let c = cosine(&ours[i * n..(i + 1) * n], &theirs[i * n..(i + 1) * n]);
                println!("{kind:?} {name} image {i}: cosine f16 vs PyTorch f32 = {c:.7}");
                assert!(c >= 0.9999, "{kind:?} {name} image {i}: {c}");
            }
        }
    }
}

#[test]
fn nhwc_trunks_agree_with_candle_and_the_cpu_on_full_vgg16() {
    let cfg = VggConfig::vgg16(2);
    let mut w = he_init(&cfg, 5).unwrap();
    let biases: Vec<String> = w.keys().filter(|k| k.ends_with(".bias")).cloned().collect();
    for k in &biases {
        let n = w[k].dims()[0];
        w.insert(k.clone(), Tensor::randn(0f32, 0.05, n, &Device::Cpu).unwrap());
    }
    let x = Tensor::randn(0f32, 1.0, (2, 3, 224, 224), &Device::Cpu).unwrap();
    let cpu = Vgg16::from_tensors(cfg.clone(), &w, Path::new("he"), &Device::Cpu).unwrap();
    let mut candle = Vgg16::from_tensors(cfg.clone(), &w, Path::new("he"), &gpu()).unwrap();
    candle.set_cuda_trunk(CudaTrunkKind::Candle).unwrap();
    let (a, b) = (cpu.forward(&x).unwrap(), candle.forward(&x).unwrap());
    for kind in kinds() {
        let mut nhwc = Vgg16::from_tensors(cfg.clone(), &w, Path::new("he"), &gpu()).unwrap();
        nhwc.set_cuda_trunk(kind).unwrap();
        let c = nhwc.forward(&x).unwrap();
        for (name, ta, tb, tc) in [("pool5", &a.pool5, &b.pool5, &c.pool5), ("fc7", &a.fc7, &b.fc7, &c.fc7)] {
            let (va, vb, vc) = (flat(ta), flat(tb), flat(tc));
            let n = va.len() / 2;
            for i in 0..2 {
                let r = i * n..(i + 1) * n;
                let (vs_cpu, vs_candle) = (
                    cosine(&vc[r.clone()], &va[r.clone()]),
                    cosine(&vc[r.clone()], &vb[r.clone()]),
                );
                println!("{kind:?} {name} image {i}: vs CPU f32 {vs_cpu:.7}, vs candle f16 {vs_candle:.7}");
                assert!(vs_cpu >= 0.999 && vs_candle >= 0.999, "{kind:?} {name} image {i}");
            }
        }
        // batch independence: image 2 alone gives what it gave in the batch
        let alone = nhwc.forward(&x.narrow(0, 1, 1).unwrap()).unwrap();
        let (one, both) = (flat(&alone.fc7), flat(&c.fc7));
        let cos = cosine(&one, &both[one.len()..]);
        println!("{kind:?} fc7 of image 2 alone vs in the batch: {cos:.7}");
        assert!(cos >= 0.99999, "{kind:?}: {cos}");
        // cuDNN plans once per convolution and input shape: 13 for batch 2, 13 more for batch 1, none on reuse
        if kind != CudaTrunkKind::Nhwc {
            let trunk = nhwc.cuda_trunk().expect("the NHWC trunk is in use");
            nhwc.forward(&x).unwrap();
            let plans = trunk.describe();
            for l in &plans {
                println!("{kind:?} {l}");
            }
            assert_eq!(plans.len(), 26, "{kind:?}");
        }
    }
}
