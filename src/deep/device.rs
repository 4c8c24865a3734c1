//! Choosing where VGG-16 runs: `cpu`, `cuda`, `cuda:N`, or `auto` (CUDA when the binary was built with the
//! `cuda` feature and a GPU answers, otherwise the CPU). An explicit `cuda` fails loudly when no GPU is
//! available; only `auto` falls back.

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

#[cfg(feature = "cuda")]
fn cuda(n: usize) -> Result<Device> {
    Device::new_cuda(n).map_err(|e| Error::Compute(format!("CUDA device {n} requested but not available: {e}")))
}

#[cfg(not(feature = "cuda"))]
fn cuda(n: usize) -> Result<Device> {
    Err(Error::Compute(format!(
        "CUDA device {n} requested, but this binary was built without the `cuda` feature (cargo build --features cuda)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

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
