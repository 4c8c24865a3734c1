//! VGG-16 (224×224, seeded He weights) speed and memory: batch 1 and 16, f32 and quantized (Q8_0 fully connected
//! layers; on the CPU 8-bit convolutions after the first) on the CPU, and with f16 convolutions on CUDA when built
//! with `--features cuda` and a GPU is present.
//! Each configuration runs in its own process so that peak RSS is its own.
//!
//! `cargo bench --bench vgg -- --vs-onnxruntime VENV` instead times the same network with the same weights in
//! onnxruntime (an ONNX export written by `benches/peer/ort_vgg16_safetensors.py`) in the same run, batch 1 and
//! 16, and prints alnrisk / onnxruntime per row ([`vs_onnxruntime`]).
//!
//! Run: `cargo bench --bench vgg` (`-- --cuda` adds the CUDA rows: candle's convolution and our NHWC trunks,
//! `src/deep/cuda_trunk/` — im2col, and with the `cudnn` feature cuDNN's two — chosen per process with
//! `ALNRISK_CUDA_TRUNK`, and a per-layer profile of all of them at batch 1, synchronised after every step).

mod common;
use common::peak_rss_mb;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use alnrisk::deep::{DeviceChoice, Vgg16, VggConfig, vgg::he_init};
use candle_core::{DType, Tensor};

fn one(device: &str, q8: bool, batch: usize) {
    let choice: DeviceChoice = device.parse().expect("device");
    let (dev, _) = choice.open().expect("device available");
    let cfg = VggConfig::vgg16(2);
    let weights = he_init(&cfg, 1).expect("weights");
    let mut net = Vgg16::from_tensors(cfg, &weights, std::path::Path::new("he-init"), &dev).expect("model");
    drop(weights);
    if q8 {
        net.quantize().expect("q8");
    }
    let x = Tensor::randn(0f32, 1f32, (batch, 3, 224, 224), &dev).expect("input");
    let sync = |t: &Tensor| {
        let _ = t
            .to_dtype(DType::F32)
            .and_then(|t| t.sum_all())
            .and_then(|s| s.to_scalar::<f32>());
    };
    sync(&net.forward(&x).expect("warm-up").fc7);
    let reps = if dev.is_cpu() {
        if batch == 1 { 7 } else { 2 }
    } else {
        50
    };
    let mut times = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let out = net.forward(&x).expect("forward");
        sync(&out.fc7);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let med = times[times.len() / 2];
    println!("RESULT {:.2} {:.1} {:.0}", med * 1e3, batch as f64 / med, peak_rss_mb());
}

/// On the PyTorch fixture: fc7 cosine and max relative difference of each device/precision vs CPU f32 and
/// vs PyTorch.
fn agreement(device: &str, trunk: &str) {
    use alnrisk::deep::VggConfig as C;
    let rel = "tests/data/golden/vgg16_small.safetensors";
    let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let path = if built.exists() {
        built
    } else {
        std::path::PathBuf::from(rel)
    };
    let Ok(f) = candle_core::safetensors::load(&path, &candle_core::Device::Cpu) else {
        println!("(fixture not found: {})", path.display());
        return;
    };
    let flat = |t: &Tensor| {
        t.to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let torch = flat(&f["fixture.fc7"]);
    let (dev, _) = device.parse::<DeviceChoice>().unwrap().open().expect("device");
    for q8 in [false, true] {
        let mut net = Vgg16::from_tensors(C::scaled(16, 256, 2), &f, &path, &dev).unwrap();
        #[cfg(feature = "cuda")]
        if let Ok(kind) = trunk.parse::<alnrisk::deep::cuda_trunk::CudaTrunkKind>()
            && let Err(e) = net.set_cuda_trunk(kind)
        {
            println!("| {device} {trunk} | failed: {e} |");
            return;
        }
        if q8 {
            net.quantize().unwrap();
        }
        let ours = match net.forward(&f["fixture.input"]) {
            Ok(out) => flat(&out.fc7),
            Err(e) => {
                println!("| {device} {trunk} | failed: {e} |");
                return;
            }
        };
        let n = ours.len() / 2;
        let scale = torch.iter().fold(0f32, |m, v| m.max(v.abs()));
        let rel = ours.iter().zip(&torch).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale;
        println!(
            "| {device} {trunk} | {} | {:.6} | {:.6} | {rel:.2e} |",
            if q8 { "Q8_0" } else { "f32" },
            alnrisk::deep::cosine(&ours[..n], &torch[..n]),
            alnrisk::deep::cosine(&ours[n..], &torch[n..])
        );
    }
}

/// The NHWC CUDA trunks this build has (`cudnn` adds cuDNN's two).
#[cfg(feature = "cuda")]
fn nhwc_trunks() -> Vec<&'static str> {
    let mut v = vec!["nhwc"];
    if cfg!(feature = "cudnn") {
        v.extend(["cudnn", "cudnn-fused"]);
    }
    v
}

#[cfg(not(feature = "cuda"))]
fn nhwc_trunks() -> Vec<&'static str> {
    Vec::new()
}

/// Median time of each trunk step at batch 1, candle's convolution against each NHWC trunk, synchronising after
/// every step (so the sum exceeds the end-to-end latency by the synchronisations; the split is what matters).
/// For the cuDNN trunks, the algorithm cuDNN chose per convolution is printed too.
#[cfg(feature = "cuda")]
fn layers() {
    use alnrisk::deep::cuda_trunk::{CudaTrunk, CudaTrunkKind};
    use std::collections::BTreeMap;
    let (dev, _) = DeviceChoice::Cuda(0).open().expect("a GPU");
    let cfg = VggConfig::vgg16(2);
    let w = he_init(&cfg, 1).expect("weights");
    let net = Vgg16::from_tensors(cfg.clone(), &w, std::path::Path::new("he-init"), &dev).expect("model");
    let x = Tensor::randn(0f32, 1f32, (1, 3, 224, 224), &dev).expect("input");
    let (warm, reps) = (3, 30);
    let kinds = nhwc_trunks();
    let sync = || dev.synchronize().map_err(|e| alnrisk::Error::Compute(e.to_string()));
    let mut table: BTreeMap<(usize, String), Vec<Vec<f64>>> = BTreeMap::new();
    let columns = kinds.len() + 1;
    let mut record = |r: usize, step: usize, label: String, ms: f64, which: usize| {
        if r >= warm {
            table.entry((step, label)).or_insert_with(|| vec![Vec::new(); columns])[which].push(ms);
        }
    };
    // candle: conv2d + bias + ReLU, max-pool (what Vgg16::trunk runs on CUDA by default)
    for r in 0..warm + reps {
        sync().expect("sync");
        let mut last = std::time::Instant::now();
        let mut lap = |step: usize, label: String, record: &mut dyn FnMut(usize, usize, String, f64, usize)| {
            sync().expect("sync");
            let now = std::time::Instant::now();
            record(r, step, label, (now - last).as_secs_f64() * 1e3, 0);
            last = now;
        };
        let mut h = x.to_dtype(DType::F16).expect("f16");
        lap(0, "input".into(), &mut record);
        let (mut conv, mut size) = (net.conv_tensors().iter(), 224);
        for (i, step) in cfg.plan.iter().enumerate() {
            let label = match step {
                Some(_) => {
                    let (wt, b) = conv.next().expect("conv");
                    let (cout, cin) = (wt.dims()[0], wt.dims()[1]);
                    h = h
                        .conv2d(wt, 1, 1, 1, 1)
                        .and_then(|y| y.broadcast_add(&b.reshape((1, cout, 1, 1))?))
                        .and_then(|y| y.relu())
                        .expect("conv");
                    format!("conv {cin}→{cout} {size}×{size}")
                }
                None => {
                    h = h.max_pool2d(2).expect("pool");
                    size /= 2;
                    format!("pool {}×{}", size * 2, size * 2)
                }
            };
            lap(i + 1, label, &mut record);
        }
        let _ = h.flatten_from(1).and_then(|t| t.to_dtype(DType::F32)).expect("output");
        lap(cfg.plan.len() + 1, "output".into(), &mut record);
    }
    // each NHWC trunk, through the same step numbers (labels show the engine's channel counts)
    let mut chosen = Vec::new();
    for (k, name) in kinds.iter().enumerate() {
        let kind: CudaTrunkKind = name.parse().expect("trunk kind");
        let trunk = match CudaTrunk::new(kind, &cfg.plan, net.conv_tensors(), &dev) {
            Ok(t) => t,
            Err(e) => {
                println!("({name} trunk: {e})");
                continue;
            }
        };
        for r in 0..warm + reps {
            sync().expect("sync");
            let mut last = std::time::Instant::now();
            let mut step = 0;
            let run = trunk.run(&x, &mut |label| {
                sync()?;
                let now = std::time::Instant::now();
                record(r, step, label, (now - last).as_secs_f64() * 1e3, k + 1);
                last = now;
                step += 1;
                Ok(())
            });
            if let Err(e) = run {
                println!("({name} trunk failed: {e})");
                break;
            }
        }
        chosen.extend(trunk.describe().into_iter().map(|l| format!("{name}: {l}")));
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    println!("\nPer-step time at batch 1, synchronised after each step (median of {reps}, ms)");
    println!(
        "| step | candle conv2d + bias + ReLU | {} |\n|---|---|{}",
        kinds.join(" | "),
        "---|".repeat(kinds.len())
    );
    let mut sums = vec![0.0; columns];
    let mut by_step: BTreeMap<usize, (String, Vec<f64>)> = BTreeMap::new();
    for ((step, label), cols) in &table {
        let entry = by_step
            .entry(*step)
            .or_insert_with(|| (label.clone(), vec![f64::NAN; columns]));
        for (i, col) in cols.iter().enumerate() {
            if !col.is_empty() {
                entry.1[i] = median(col);
            }
        }
    }
    for (label, cols) in by_step.values() {
        for (s, v) in sums.iter_mut().zip(cols) {
            *s += if v.is_nan() { 0.0 } else { *v };
        }
        let cells: Vec<String> = cols.iter().map(|v| format!("{v:.3}")).collect();
        println!("| {label} | {} |", cells.join(" | "));
    }
    let cells: Vec<String> = sums.iter().map(|v| format!("{v:.3}")).collect();
    println!("| sum | {} |", cells.join(" | "));
    if !chosen.is_empty() {
        println!("\ncuDNN's choices:");
        for l in chosen {
            println!("  {l}");
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn layers() {
    println!("(per-layer CUDA profile: build with --features cuda)");
}

/// One configuration in a process of its own: its `RESULT` fields (latency ms, images/s, peak RSS MB) and stderr.
fn run_one(exe: &Path, device: &str, q8: bool, batch: usize, trunk: &str) -> (Vec<String>, String) {
    let mut cmd = Command::new(exe);
    if !trunk.is_empty() {
        cmd.env("ALNRISK_CUDA_TRUNK", trunk);
    }
    let out = cmd
        .args(["--one", device, if q8 { "q8" } else { "f32" }, &batch.to_string()])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    let fields = text
        .lines()
        .find(|l| l.starts_with("RESULT"))
        .map(|l| l.split_whitespace().skip(1).map(str::to_string).collect())
        .unwrap_or_default();
    (fields, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// alnrisk against onnxruntime on the same VGG-16 (seeded He weights, written to safetensors and exported to ONNX
/// by the peer script), same machine, same run; both with all of this machine's cores.
fn vs_onnxruntime(venv: &Path) {
    let work = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-vs-onnxruntime");
    std::fs::create_dir_all(&work).expect("work folder");
    let (weights_path, input_path) = (work.join("vgg16.safetensors"), work.join("input.safetensors"));
    {
        let cfg = VggConfig::vgg16(2);
        let weights = he_init(&cfg, 1).expect("weights");
        candle_core::safetensors::save(&weights, &weights_path).expect("save weights");
        let dev = candle_core::Device::Cpu;
        let net = Vgg16::from_tensors(cfg, &weights, &weights_path, &dev).expect("model");
        let x = Tensor::randn(0f32, 1f32, (16, 3, 224, 224), &dev).expect("input");
        let first = x.narrow(0, 0, 1).expect("first");
        let fc7 = net.forward(&first).expect("forward").fc7;
        let mut q8 = net;
        q8.quantize().expect("quantize");
        let fc7_q8 = q8.forward(&first).expect("forward").fc7;
        let flat = |t: &Tensor| t.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("fc7");
        println!(
            "alnrisk Q8 (8-bit convolutions 2–13, Q8_0 fc) fc7 against alnrisk f32 (image 1): cosine {:.6}",
            alnrisk::deep::cosine(&flat(&fc7_q8), &flat(&fc7))
        );
        let given = std::collections::HashMap::from([("input".to_string(), x), ("fc7".to_string(), fc7)]);
        candle_core::safetensors::save(&given, &input_path).expect("save input");
    }
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peer/ort_vgg16_safetensors.py");
    let out = Command::new(venv.join("bin/python"))
        .arg(&script)
        .arg(&weights_path)
        .arg(&input_path)
        .arg(&work)
        .arg(threads.to_string())
        .output()
        .expect("the venv's python runs");
    assert!(
        out.status.success(),
        "onnxruntime failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let peer: serde_json::Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("the peer's JSON line");
    let peer_ms = |precision: &str, batch: usize| {
        peer["rows"].as_array().and_then(|rows| {
            rows.iter()
                .find(|r| r["precision"].as_str().is_some_and(|p| p.starts_with(precision)) && r["batch"] == batch)
                .and_then(|r| Some((r["ms"].as_f64()?, r["cosine_vs_alnrisk"].as_f64()?)))
        })
    };
    println!(
        "VGG-16 224×224 to fc7, seeded He weights, {threads} threads: alnrisk (CPU; f32, or Q8: 8-bit convolutions \
         after the first and Q8_0 fc) vs onnxruntime {} on the same weights, same run",
        peer["onnxruntime"].as_str().unwrap_or("?")
    );
    println!(
        "| batch | alnrisk | alnrisk ms | onnxruntime f32 ms | alnrisk / onnxruntime f32 | onnxruntime int8 fc ms | alnrisk / onnxruntime int8 fc | onnxruntime int8 conv+fc ms | alnrisk / onnxruntime int8 conv+fc | alnrisk peak RSS MB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let exe = std::env::current_exe().expect("self");
    for q8 in [false, true] {
        for batch in [1, 16] {
            let (r, stderr) = run_one(&exe, "cpu", q8, batch, "");
            let Some(ours) = r.first().and_then(|v| v.parse::<f64>().ok()) else {
                println!("| {batch} | failed: {} |", stderr.lines().last().unwrap_or(""));
                continue;
            };
            let cell = |p: Option<(f64, f64)>| match p {
                Some((ms, _)) => (format!("{ms:.1}"), format!("{:.2}", ours / ms)),
                None => ("—".into(), "—".into()),
            };
            let (f32_ms, f32_ratio) = cell(peer_ms("f32", batch));
            let (i8_ms, i8_ratio) = cell(peer_ms("int8 fc", batch));
            let (all_ms, all_ratio) = cell(peer_ms("int8 conv", batch));
            println!(
                "| {batch} | {} | {ours:.1} | {f32_ms} | {f32_ratio} | {i8_ms} | {i8_ratio} | {all_ms} | {all_ratio} | {} |",
                if q8 { "Q8" } else { "f32" },
                r.get(2).map_or("?", String::as_str)
            );
        }
    }
    for precision in ["f32", "int8 fc", "int8 conv"] {
        if let Some((_, cos)) = peer_ms(precision, 1) {
            println!("onnxruntime {precision} fc7 against alnrisk f32 (image 1): cosine {cos:.6}");
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.first().map(String::as_str) == Some("--one") {
        one(&args[1], args[2] == "q8", args[3].parse().expect("batch"));
        return;
    }
    if let Some(at) = args.iter().position(|a| a == "--vs-onnxruntime") {
        let venv = args
            .get(at + 1)
            .expect("--vs-onnxruntime VENV (pip install onnxruntime onnx numpy)");
        vs_onnxruntime(Path::new(venv));
        return;
    }
    let mut rows = vec![("cpu", false, ""), ("cpu", true, "")];
    if args.iter().any(|a| a == "--cuda") {
        for trunk in std::iter::once("candle").chain(nhwc_trunks()) {
            rows.extend([("cuda", false, trunk), ("cuda", true, trunk)]);
        }
    }
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("VGG-16 224×224 up to the logits (fc7 included), seeded He weights, {threads} CPU threads");
    println!(
        "| device | conv | fc | batch | latency ms (median) | images/s | peak RSS MB |\n|---|---|---|---|---|---|---|"
    );
    let exe = std::env::current_exe().expect("self");
    for (device, q8, trunk) in rows {
        for batch in [1, 16] {
            let (r, stderr) = run_one(&exe, device, q8, batch, trunk);
            let conv = if device == "cpu" {
                if q8 { "8-bit after the first" } else { "f32" }.to_string()
            } else {
                format!("f16 {trunk}")
            };
            if r.len() == 3 {
                println!(
                    "| {device} | {conv} | {} | {batch} | {} | {} | {} |",
                    if q8 { "Q8_0" } else { "f32" },
                    r[0],
                    r[1],
                    r[2]
                );
            } else {
                println!(
                    "| {device} | {conv} | {} | {batch} | failed: {} |",
                    if q8 { "Q8_0" } else { "f32" },
                    stderr.lines().last().unwrap_or("")
                );
            }
        }
    }
    println!("\nfc7 against PyTorch on the reduced-width fixture (conv f32 on CPU, f16 on CUDA)");
    println!("| device | fc | cosine image 1 | cosine image 2 | max rel. diff |\n|---|---|---|---|---|");
    agreement("cpu", "");
    if args.iter().any(|a| a == "--cuda") {
        for trunk in std::iter::once("candle").chain(nhwc_trunks()) {
            agreement("cuda", trunk);
        }
        layers();
    }
    // weights in memory
    let cfg = VggConfig::vgg16(2);
    let w = he_init(&cfg, 1).expect("weights");
    let total: usize = w.values().map(|t| t.elem_count()).sum();
    let dense: usize = ["classifier.0.weight", "classifier.3.weight", "classifier.6.weight"]
        .iter()
        .map(|k| w[*k].elem_count())
        .sum();
    let f32_bytes = total * 4;
    let q8_bytes = (total - dense) * 4 + dense / 32 * 34;
    // files on disk: f32 and f16 safetensors, GGUF with Q8_0 dense layers
    let dir = std::env::temp_dir();
    let f32_path = dir.join("alnrisk-bench-vgg16-f32.safetensors");
    let f16_path = dir.join("alnrisk-bench-vgg16-f16.safetensors");
    let gguf_path = dir.join("alnrisk-bench-vgg16-q8.gguf");
    candle_core::safetensors::save(&w, &f32_path).expect("save f32");
    let half: std::collections::HashMap<String, Tensor> = w
        .iter()
        .map(|(k, v)| (k.clone(), v.to_dtype(DType::F16).expect("f16")))
        .collect();
    candle_core::safetensors::save(&half, &f16_path).expect("save f16");
    let mut q8 =
        Vgg16::from_tensors(cfg.clone(), &w, std::path::Path::new("he"), &candle_core::Device::Cpu).expect("model");
    q8.quantize().expect("q8");
    q8.save_gguf(&gguf_path).expect("gguf");
    let mb = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len() as f64 / 1e6).unwrap_or(f64::NAN);
    println!(
        "Files: f32 safetensors {:.0} MB, f16 safetensors {:.0} MB, GGUF (f32 conv + Q8_0 fc) {:.0} MB ({:.1} % of f32)",
        mb(&f32_path),
        mb(&f16_path),
        mb(&gguf_path),
        100.0 * mb(&gguf_path) / mb(&f32_path)
    );
    for p in [&f32_path, &f16_path, &gguf_path] {
        let _ = std::fs::remove_file(p);
    }
    println!(
        "\nWeights: {} parameters; f32 {:.0} MB, f16 {:.0} MB, f32 conv + Q8_0 fc {:.0} MB ({:.1} % of f32)",
        total,
        f32_bytes as f64 / 1e6,
        total as f64 * 2.0 / 1e6,
        q8_bytes as f64 / 1e6,
        100.0 * q8_bytes as f64 / f32_bytes as f64
    );
}
