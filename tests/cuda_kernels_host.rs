//! The CUDA trunk's kernels (`src/deep/trunk.cu`), compiled as C++ with `tests/cuda_host/shim.h` and run on the
//! CPU (one emulated thread, f16 as f32). A reduced-width VGG-16 trunk assembled from them the way
//! `src/deep/cuda_trunk.rs` does — im2col applying the pending bias + ReLU, product with the padded packed
//! kernel, max-pool applying the pending bias + ReLU — must equal the CPU trunk (itself checked against
//! PyTorch by `tests/deep_parity.rs`). This checks the kernels' index arithmetic, padding, batch boundaries and
//! the fused activation without a GPU; the f16 arithmetic and the launch glue are checked on a GPU by
//! `tests/deep_cuda.rs`. Needs a C++ compiler (`c++`), as the rest of the build does.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use alnrisk::deep::conv::{Nhwc, PackedConv, padded_k};
use alnrisk::deep::{Vgg16, VggConfig, vgg::he_init};
use candle_core::{Device, Tensor};

fn harness() -> &'static Path {
    static H: OnceLock<PathBuf> = OnceLock::new();
    H.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = std::env::temp_dir().join(format!("alnrisk-trunk-harness-{}", std::process::id()));
        let status = Command::new("c++")
            .args(["-O2", "-std=c++17", "-include"])
            .arg(root.join("tests/cuda_host/shim.h"))
            .args(["-x", "c++"])
            .arg(root.join("src/deep/trunk.cu"))
            .arg(root.join("tests/cuda_host/harness.cpp"))
            .arg("-o")
            .arg(&out)
            .status()
            .expect("a C++ compiler (c++) is needed to test the CUDA kernels on the CPU");
        assert!(status.success(), "the kernels do not compile as C++");
        out
    })
}

fn write(path: &Path, v: &[f32]) {
    std::fs::write(path, v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
}

fn read(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Run one kernel: `args` are the integer arguments, then input / bias / output files.
fn kernel(name: &str, ints: &[usize], x: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let d = std::env::temp_dir().join(format!("alnrisk-trunk-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let (xi, bi, out) = (d.join("x.f32"), d.join("b.f32"), d.join("out.f32"));
    write(&xi, x);
    write(&bi, bias.unwrap_or(&[0.0]));
    let mut cmd = Command::new(harness());
    cmd.arg(name);
    for i in ints {
        cmd.arg(i.to_string());
    }
    cmd.arg(u8::from(bias.is_some()).to_string());
    let st = cmd.arg(&xi).arg(&bi).arg(&out).status().unwrap();
    assert!(st.success(), "harness {name} {ints:?}");
    read(&out)
}

/// Deterministic values in [-1, 1).
fn pseudo(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

#[test]
fn the_kernels_assemble_a_trunk_equal_to_the_cpu_trunk() {
    let cfg = VggConfig::scaled(16, 64, 2);
    let mut tensors = he_init(&cfg, 3).unwrap();
    // non-zero biases, so the fused bias + ReLU is exercised
    let names: Vec<String> = tensors
        .keys()
        .filter(|k| k.starts_with("features.") && k.ends_with(".bias"))
        .cloned()
        .collect();
    for (i, k) in names.iter().enumerate() {
        let n = tensors[k].dims()[0];
        let v: Vec<f32> = pseudo(n, 100 + i as u64).iter().map(|x| 0.2 * x).collect();
        tensors.insert(k.clone(), Tensor::from_vec(v, n, &Device::Cpu).unwrap());
    }
    let net = Vgg16::from_tensors(cfg.clone(), &tensors, Path::new("test"), &Device::Cpu).unwrap();
    let (n, s) = (2usize, 224usize);
    let input = pseudo(n * 3 * s * s, 7);
    let expected = net
        .trunk(&Tensor::from_vec(input.clone(), (n, 3, s, s), &Device::Cpu).unwrap())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();

    // The CUDA trunk's schedule, on the emulated kernels: NHWC batch, bias + ReLU pending until consumed.
    let mut a: Vec<f32> = (0..n)
        .flat_map(|i| Nhwc::from_chw(3, s, s, &input[i * 3 * s * s..(i + 1) * 3 * s * s]).data)
        .collect();
    let (mut h, mut w, mut c) = (s, s, 3usize);
    let mut pending: Option<Vec<f32>> = None;
    let mut conv = net.conv_tensors().iter();
    for step in &cfg.plan {
        match step {
            Some(_) => {
                let (wt, b) = conv.next().unwrap();
                let packed = PackedConv::new(wt, b).unwrap();
                let kp = padded_k(c);
                let col = kernel("im2col", &[n, h, w, c, kp], &a, pending.as_deref());
                assert_eq!(col.len(), n * h * w * kp);
                // the padding columns are written, and zero
                assert!(col.chunks(kp).all(|r| r[9 * c..].iter().all(|&v| v == 0.0)));
                let wp = packed.padded_weight(kp);
                let cout = packed.cout();
                let mut y = vec![0f32; n * h * w * cout];
                for (row, out) in col.chunks(kp).zip(y.chunks_mut(cout)) {
                    for (k, &v) in row.iter().enumerate() {
                        if v != 0.0 {
                            for (o, wv) in out.iter_mut().zip(&wp[k * cout..(k + 1) * cout]) {
                                *o += v * wv;
                            }
                        }
                    }
                }
                a = y;
                c = cout;
                pending = Some(packed.bias().to_vec());
            }
            None => {
                a = kernel("maxpool", &[n, h, w, c], &a, pending.as_deref());
                h /= 2;
                w /= 2;
                pending = None;
            }
        }
    }
    assert_eq!((h, w), (7, 7));
    let got: Vec<f32> = a
        .chunks(h * w * c)
        .flat_map(|img| {
            Nhwc {
                h,
                w,
                c,
                data: img.to_vec(),
            }
            .to_chw()
        })
        .collect();
    assert_eq!(got.len(), expected.len());
    let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = got.iter().zip(&expected).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        scale > 0.0 && expected.contains(&0.0),
        "a trunk with active and inactive units"
    );
    assert!(worst <= 1e-4 * scale, "max |Δ| {worst} against max |pool5| {scale}");
}
