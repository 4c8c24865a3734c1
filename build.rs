//! Build script: with the `cuda` feature, compile the NHWC trunk kernels (`src/deep/cuda_trunk/kernels.cu`) to PTX with nvcc
//! for `CUDA_COMPUTE_CAP` (90 for H100/H200, 87 for the Jetson Orin; see README "GPU" and cross.toml). The
//! default (CPU) build does nothing here.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/deep/cuda_trunk/kernels.cu");
    println!("cargo:rerun-if-env-changed=NVCC");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let nvcc = std::env::var_os("NVCC")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("CUDA_HOME").map(|h| PathBuf::from(h).join("bin").join("nvcc")))
        .unwrap_or_else(|| PathBuf::from("nvcc"));
    let cap = std::env::var("CUDA_COMPUTE_CAP")
        .unwrap_or_else(|_| panic!("the `cuda` feature needs CUDA_COMPUTE_CAP (90 for H100/H200, 87 for Jetson Orin)"));
    let cap: String = cap.chars().filter(|c| c.is_ascii_digit()).collect();
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("trunk.ptx");
    let status = Command::new(&nvcc)
        .args(["--ptx", "-O3", "-std=c++17", &format!("-arch=sm_{cap}"), "-o"])
        .arg(&out)
        .arg("src/deep/cuda_trunk/kernels.cu")
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", nvcc.display()));
    assert!(status.success(), "nvcc failed on src/deep/cuda_trunk/kernels.cu");
}
