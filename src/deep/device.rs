//! Choosing where VGG-16 runs: `cpu`, `cuda`, `cuda:N`, or `auto` (CUDA when the binary was built with the
//! `cuda` feature and a GPU answers, otherwise the CPU). An explicit `cuda` fails loudly when no GPU is
//! available; only `auto` falls back. And, on CUDA, which convolution path the trunk takes ([`CudaTrunkKind`],
//! `ALNRISK_CUDA_TRUNK`; the paths themselves are in `deep::cuda_trunk`, built with the `cuda` feature).

use std::str::FromStr;

use candle_core::Device;

use crate::error::{Error, Result};

/// A device request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// The CPU.
    #[default]
    Cpu,
    /// CUDA device `N`.
    Cuda(usize),
    /// CUDA if available, else the CPU.
    Auto,
}

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "cpu" => Ok(DeviceChoice::Cpu),
            "auto" => Ok(DeviceChoice::Auto),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| format!("'{s}' is not a device: cpu, cuda, cuda:N or auto")),
        }
    }
}

impl DeviceChoice {
    /// Open the device. Returns the device and a note for the output when `auto` fell back.
    pub fn open(self) -> Result<(Device, Option<String>)> {
        match self {
            DeviceChoice::Cpu => Ok((Device::Cpu, None)),
            DeviceChoice::Cuda(n) => cuda(n).map(|d| (d, None)),
            DeviceChoice::Auto => match cuda(0) {
                Ok(d) => Ok((d, None)),
                Err(e) => Ok((Device::Cpu, Some(format!("no CUDA device ({e}); running on the CPU")))),
            },
        }
    }
}

/// Which convolution path the CUDA trunk uses (`ALNRISK_CUDA_TRUNK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CudaTrunkKind {
    /// candle's `conv2d` (NCHW im2col + GEMM + copy), then bias and ReLU.
    #[default]
    Candle,
    /// NHWC, our im2col + cuBLAS.
    Nhwc,
    /// NHWC, cuDNN convolutions (the `cudnn` feature).
    Cudnn,
    /// NHWC, cuDNN convolutions with cuDNN's fused bias + ReLU (the `cudnn` feature).
    CudnnFused,
}

impl FromStr for CudaTrunkKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "candle" => Ok(CudaTrunkKind::Candle),
            "nhwc" => Ok(CudaTrunkKind::Nhwc),
            "cudnn" => Ok(CudaTrunkKind::Cudnn),
            "cudnn-fused" => Ok(CudaTrunkKind::CudnnFused),
            _ => Err(format!("'{s}' is not a CUDA trunk: candle, nhwc, cudnn or cudnn-fused")),
        }
    }
}

impl CudaTrunkKind {
    /// From `ALNRISK_CUDA_TRUNK` (`candle`, the default, `nhwc`, `cudnn` or `cudnn-fused`).
    pub fn from_env() -> Result<Self> {
        match std::env::var("ALNRISK_CUDA_TRUNK") {
            Ok(v) => v
                .parse()
                .map_err(|e: String| Error::Device(format!("ALNRISK_CUDA_TRUNK: {e}"))),
            Err(_) => Ok(CudaTrunkKind::Candle),
        }
    }
}

#[cfg(feature = "cuda")]
fn cuda(n: usize) -> Result<Device> {
    Device::new_cuda(n).map_err(|e| Error::Device(format!("CUDA device {n} requested but not available: {e}")))
}

#[cfg(not(feature = "cuda"))]
fn cuda(n: usize) -> Result<Device> {
    Err(Error::Device(format!(
        "CUDA device {n} requested, but this binary was built without the `cuda` feature (cargo build --features cuda)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_trunk_kinds_parse_and_unknown_ones_are_named() {
        assert_eq!("cudnn-fused".parse::<CudaTrunkKind>(), Ok(CudaTrunkKind::CudnnFused));
        assert_eq!("nhwc".parse::<CudaTrunkKind>(), Ok(CudaTrunkKind::Nhwc));
        assert_eq!(CudaTrunkKind::default(), CudaTrunkKind::Candle);
        let e = "cuDNN".parse::<CudaTrunkKind>().unwrap_err();
        assert!(e.contains("'cuDNN'") && e.contains("cudnn-fused"), "{e}");
    }

    #[test]
    fn parses_and_falls_back_only_on_auto() {
        assert_eq!("cuda:1".parse::<DeviceChoice>(), Ok(DeviceChoice::Cuda(1)));
        assert!("gpu".parse::<DeviceChoice>().is_err());
        if !cfg!(feature = "cuda") {
            assert!(DeviceChoice::Cuda(0).open().is_err());
            let (d, note) = DeviceChoice::Auto.open().unwrap();
            assert!(d.is_cpu() && note.is_some());
        }
    }
}
