//! The CUDA trunk's kernels (`src/deep/cuda_trunk/kernels.cu`), compiled as C++ with `tests/cuda_host/shim.h`
//! and run on the CPU (one emulated thread, f16 as f32). A reduced-width VGG-16 trunk assembled from them with
//! each engine's schedule (`src/deep/cuda_trunk/mod.rs`) must equal the CPU trunk (itself checked against
//! PyTorch by `tests/deep_parity.rs`):
//! - im2col: im2col applying the pending bias + ReLU, product with the padded packed kernel, max-pool applying
//!   the pending bias + ReLU;
//! - cuDNN: input zero-padded to 8 channels, the convolution over our KRSC packing (here a direct reference
//!   loop standing in for cuDNN), `bias_relu` between two convolutions, the pool applying the last bias; and the
//!   fused variant, where the convolution applies its own bias + ReLU.
//!
//! Every kernel call here is a launch planned by the library (`alnrisk::deep::trunk_launch`: kernel name, integer
//! arguments, variant, extent), the same plan the GPU build carries out; a non-square map checks im2col and the
//! pool against their definitions with both variants. This checks the kernels' index arithmetic, padding, batch
//! boundaries, the fused activation, the launch arguments and the cuDNN packing without a GPU; the f16
//! arithmetic, cuDNN itself and candle's launch glue are checked on a GPU by `tests/deep_cuda.rs`. Needs a C++
//! compiler (`c++`), as the rest of the build does.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use alnrisk::deep::conv::{Nhwc, PackedConv, eight_channel_kernels, padded_channels, padded_k};
use alnrisk::deep::trunk_launch::{KernelLaunch, TrunkKernel};
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
            .arg(root.join("src/deep/cuda_trunk/kernels.cu"))
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

/// Carry out a launch the library planned, on the harness: the kernel by its name, with the planned integer
/// arguments; `bias` is the pending bias the launch applies (required exactly when it applies one).
fn run(l: &KernelLaunch, x: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    assert_eq!(l.applies_bias(), bias.is_some(), "{l:?}");
    // one folder per call: the tests run in parallel threads of one process
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("alnrisk-trunk-{}-{}-{call}", std::process::id(), l.kernel));
    std::fs::create_dir_all(&d).unwrap();
    let (xi, bi, out) = (d.join("x.f32"), d.join("b.f32"), d.join("out.f32"));
    write(&xi, x);
    write(&bi, bias.unwrap_or(&[0.0]));
    let mut cmd = Command::new(harness());
    cmd.arg(l.kernel);
    for i in &l.ints {
        cmd.arg(i.to_string());
    }
    let st = cmd.arg(&xi).arg(&bi).arg(&out).status().unwrap();
    assert!(st.success(), "harness {l:?}");
    let y = read(&out);
    let _ = std::fs::remove_dir_all(&d);
    assert_eq!(y.len(), l.rows * l.cols, "{l:?}: output extent");
    assert!(!y.contains(&-1.0), "{l:?}: every output element written");
    y
}

/// `kernel` on the NHWC map `n × h × w × c` (`x`), as the CUDA trunk launches it on an aligned map, applying
/// `bias` when given.
fn kernel(kernel: TrunkKernel, map: (usize, usize, usize, usize), x: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    run(&launch(kernel, map, bias.is_some(), 0), x, bias)
}

fn launch(kernel: TrunkKernel, map: (usize, usize, usize, usize), act: bool, x_offset: usize) -> KernelLaunch {
    kernel.launch(map, act, x_offset).unwrap()
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

/// A reduced-width VGG-16 with non-zero biases, a batch of two 224² inputs, and the CPU trunk's pool5 for them.
struct Fixture {
    cfg: VggConfig,
    net: Vgg16,
    n: usize,
    s: usize,
    input: Vec<f32>,
    expected: Vec<f32>,
}

fn fixture() -> Fixture {
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
    Fixture {
        cfg,
        net,
        n,
        s,
        input,
        expected,
    }
}

impl Fixture {
    /// The batch as NHWC rows, channels zero-padded to `c`.
    fn nhwc_input(&self, c: usize) -> Vec<f32> {
        let (n, s) = (self.n, self.s);
        (0..n)
            .flat_map(|i| Nhwc::from_chw(3, s, s, &self.input[i * 3 * s * s..(i + 1) * 3 * s * s]).data)
            .collect::<Vec<f32>>()
            .chunks(3)
            .flat_map(|px| px.iter().copied().chain(std::iter::repeat_n(0.0, c - 3)))
            .collect()
    }

    /// The trunk's NHWC pool5 (7×7×c) against the CPU trunk.
    fn check(&self, a: &[f32], (h, w, c): (usize, usize, usize)) {
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
        let expected = &self.expected;
        assert_eq!(got.len(), expected.len());
        let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = got.iter().zip(expected).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            scale > 0.0 && expected.contains(&0.0),
            "a trunk with active and inactive units"
        );
        assert!(worst <= 1e-4 * scale, "max |Δ| {worst} against max |pool5| {scale}");
    }
}

#[test]
fn the_im2col_schedule_on_the_kernels_equals_the_cpu_trunk() {
    let fx = fixture();
    let (n, s) = (fx.n, fx.s);
    // NHWC batch, bias + ReLU pending until consumed
    let mut a = fx.nhwc_input(3);
    let (mut h, mut w, mut c) = (s, s, 3usize);
    let mut pending: Option<Vec<f32>> = None;
    let mut conv = fx.net.conv_tensors().iter();
    let mut variants = std::collections::BTreeSet::new();
    for step in &fx.cfg.plan {
        match step {
            Some(_) => {
                let (wt, b) = conv.next().unwrap();
                let packed = PackedConv::new(wt, b).unwrap();
                let kp = padded_k(c);
                let l = launch(TrunkKernel::Im2Col { kp }, (n, h, w, c), pending.is_some(), 0);
                variants.insert(l.kernel);
                let col = run(&l, &a, pending.as_deref());
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
                a = kernel(TrunkKernel::MaxPool, (n, h, w, c), &a, pending.as_deref());
                h /= 2;
                w /= 2;
                pending = None;
            }
        }
    }
    // the reduced VGG has 3- and 4-channel maps (one channel per thread) and 8- to 32-channel ones (eight)
    assert_eq!(variants.len(), 2, "{variants:?}");
    fx.check(&a, (h, w, c));
}

/// What cuDNN computes for a 3×3, padding-1 convolution of the NHWC batch `x` (`n × h × w × cin`) with a KRSC
/// filter (`cout × 3 × 3 × cin`), optionally followed by bias + ReLU (the fused variant).
fn reference_conv_krsc(
    x: &[f32],
    krsc: &[f32],
    (n, h, w, cin, cout): (usize, usize, usize, usize, usize),
    bias_relu: Option<&[f32]>,
) -> Vec<f32> {
    let mut y = vec![0f32; n * h * w * cout];
    for b in 0..n {
        for yy in 0..h {
            for xx in 0..w {
                let out = &mut y[((b * h + yy) * w + xx) * cout..][..cout];
                for t in 0..9 {
                    let (sy, sx) = (yy as isize + (t / 3) as isize - 1, xx as isize + (t % 3) as isize - 1);
                    if sy < 0 || sx < 0 || sy >= h as isize || sx >= w as isize {
                        continue;
                    }
                    let px = &x[((b * h + sy as usize) * w + sx as usize) * cin..][..cin];
                    for (o, acc) in out.iter_mut().enumerate() {
                        let f = &krsc[(o * 9 + t) * cin..][..cin];
                        *acc += px.iter().zip(f).map(|(a, b)| a * b).sum::<f32>();
                    }
                }
                if let Some(bias) = bias_relu {
                    for (v, bv) in out.iter_mut().zip(bias) {
                        *v = (*v + bv).max(0.0);
                    }
                }
            }
        }
    }
    y
}

#[test]
fn the_cudnn_schedules_on_the_kernels_and_the_krsc_packing_equal_the_cpu_trunk() {
    let fx = fixture();
    let (n, s) = (fx.n, fx.s);
    for fused in [false, true] {
        let c0 = padded_channels(3);
        assert_eq!(c0, 8);
        let mut a = fx.nhwc_input(c0);
        let (mut h, mut w, mut c) = (s, s, c0);
        let mut pending: Option<Vec<f32>> = None;
        let mut conv = fx.net.conv_tensors().iter();
        let mut bias_relu_passes = 0;
        let mut first = true;
        for step in &fx.cfg.plan {
            match step {
                Some(_) => {
                    let (wt, b) = conv.next().unwrap();
                    let packed = PackedConv::new(wt, b).unwrap();
                    // only the input is padded (the trunk's `input_channels`)
                    let cin = if first {
                        padded_channels(packed.cin())
                    } else {
                        packed.cin()
                    };
                    first = false;
                    assert_eq!(cin, c, "the engine's channels");
                    if let Some(bias) = pending.take() {
                        a = kernel(TrunkKernel::BiasRelu, (n, h, w, c), &a, Some(&bias));
                        bias_relu_passes += 1;
                    }
                    let krsc = packed.krsc_weight(cin);
                    let cout = packed.cout();
                    let bias = packed.bias().to_vec();
                    a = reference_conv_krsc(&a, &krsc, (n, h, w, cin, cout), fused.then_some(&bias[..]));
                    c = cout;
                    pending = (!fused).then_some(bias);
                }
                None => {
                    a = kernel(TrunkKernel::MaxPool, (n, h, w, c), &a, pending.as_deref());
                    h /= 2;
                    w /= 2;
                    pending = None;
                }
            }
        }
        // VGG-16: 13 convolutions, 5 of them before a pool
        assert_eq!(bias_relu_passes, if fused { 0 } else { 8 });
        fx.check(&a, (h, w, c));
    }
}

#[test]
fn bias_relu_applies_the_bias_of_each_channel_or_copies() {
    let (n, h, w, c) = (2, 3, 5, 7);
    let x = pseudo(n * h * w * c, 11);
    let b = pseudo(c, 12);
    let y = kernel(TrunkKernel::BiasRelu, (n, h, w, c), &x, Some(&b));
    let want: Vec<f32> = x.iter().enumerate().map(|(i, v)| (v + b[i % c]).max(0.0)).collect();
    assert_eq!(y, want);
    assert_eq!(kernel(TrunkKernel::BiasRelu, (n, h, w, c), &x, None), x);
}

#[test]
fn the_eight_channel_kernels_equal_the_one_channel_kernels() {
    let (n, h, w, c) = (2, 6, 10, 24);
    assert!(eight_channel_kernels(c) && !eight_channel_kernels(12));
    let x = pseudo(n * h * w * c, 21);
    let b = pseudo(c, 22);
    let kp = padded_k(c);
    assert_eq!(kp, 9 * c);
    for bias in [None, Some(&b[..])] {
        for k in [TrunkKernel::Im2Col { kp }, TrunkKernel::MaxPool, TrunkKernel::BiasRelu] {
            // an aligned map takes the 8-channel variant, a view 4 elements in (not 16-byte aligned) does not
            let eight = launch(k, (n, h, w, c), bias.is_some(), 0);
            let one = launch(k, (n, h, w, c), bias.is_some(), 4);
            assert!(
                eight.kernel.ends_with("_c8") && !one.kernel.ends_with("_c8"),
                "{eight:?} / {one:?}"
            );
            assert_eq!(eight.threads * 8, one.threads);
            assert_eq!(
                run(&one, &x, bias),
                run(&eight, &x, bias),
                "{k:?}, bias {}",
                bias.is_some()
            );
        }
    }
}

/// im2col and max-pooling by their definitions, on a non-square map (so swapped sizes or arguments show), for
/// both variants of each kernel: the launch arguments the library plans mean what the kernels read.
#[test]
fn the_planned_launches_compute_the_definitions_on_a_non_square_map() {
    let (n, h, w, c) = (2, 6, 10, 16);
    let x = pseudo(n * h * w * c, 31);
    let b = pseudo(c, 32);
    let at = |i: usize, y: isize, xx: isize, ch: usize, bias: Option<&[f32]>| -> f32 {
        if y < 0 || xx < 0 || y >= h as isize || xx >= w as isize {
            return 0.0;
        }
        let v = x[((i * h + y as usize) * w + xx as usize) * c + ch];
        bias.map_or(v, |b| (v + b[ch]).max(0.0))
    };
    for bias in [None, Some(&b[..])] {
        let kp = padded_k(c);
        let mut col = Vec::with_capacity(n * h * w * kp);
        for i in 0..n {
            for y in 0..h {
                for xx in 0..w {
                    for t in 0..9 {
                        for ch in 0..c {
                            col.push(at(i, (y + t / 3) as isize - 1, (xx + t % 3) as isize - 1, ch, bias));
                        }
                    }
                    col.resize(col.len() + kp - 9 * c, 0.0);
                }
            }
        }
        let mut pool = Vec::with_capacity(n * h * w * c / 4);
        for i in 0..n {
            for y in 0..h / 2 {
                for xx in 0..w / 2 {
                    for ch in 0..c {
                        let v = |dy: usize, dx: usize| at(i, (2 * y + dy) as isize, (2 * xx + dx) as isize, ch, bias);
                        pool.push(v(0, 0).max(v(0, 1)).max(v(1, 0)).max(v(1, 1)));
                    }
                }
            }
        }
        for offset in [0, 4] {
            let l = launch(TrunkKernel::Im2Col { kp }, (n, h, w, c), bias.is_some(), offset);
            assert_eq!(run(&l, &x, bias), col, "{l:?}");
            let l = launch(TrunkKernel::MaxPool, (n, h, w, c), bias.is_some(), offset);
            assert_eq!(run(&l, &x, bias), pool, "{l:?}");
        }
    }
}
