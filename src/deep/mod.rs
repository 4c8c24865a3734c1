//! Deep features: VGG-16 on the largest tumour cross-section, as the study does, on candle.
//!
//! - [`preprocess`]: ROI → crop → 3×224×224 tensor (PyTorch-exact conventions);
//! - [`vgg`]: the network with torchvision parameter names, f32 or Q8_0 fully connected layers, and the seeded
//!   He initialisation used when no pretrained weights are given; [`q8`]: its Q8_0 layers' CPU product, the same
//!   bits on every CPU;
//! - [`conv`]: the CPU trunk (packed 3×3 convolutions on NHWC maps) and the kernel packings the CUDA trunk
//!   shares; [`trunk_launch`]: which CUDA kernel runs with which arguments; `cuda_trunk` (`cuda` feature): the
//!   NHWC f16 trunk on the GPU; [`device`]: `cpu|cuda[:N]|auto` and the CUDA trunk's kind;
//! - [`finetune`] / [`head_train`]: the study's fine-tuning recipe (full network, or the head on cached pool5
//!   features); [`npy`]: the `--dump-input` writer; [`onnx_import`]: trained VGG-16 weights from ONNX
//!   (torchvision's or Keras' export).
//!
//! The feature vector is fc7 after ReLU (4096 values for VGG-16) by default: the study takes "the last fully
//! connected layer" of its fine-tuned network; fc6 and the logits are available too.

pub mod conv;
pub mod conv_i8;
#[cfg(feature = "cuda")]
pub mod cuda_trunk;
pub mod device;
pub mod finetune;
pub mod head_train;
pub mod npy;
pub mod onnx_import;
pub mod preprocess;
pub mod q8;
pub mod trunk_launch;
pub mod vgg;

pub use device::{CudaTrunkKind, DeviceChoice};
pub use preprocess::{Crop, crop_largest_slice, to_input};
pub use vgg::{FeatureLayer, Vgg16, VggConfig, VggOutputs};

use candle_core::{Device, Tensor};

use crate::error::Result;

/// Cosine similarity `a·b / (|a| |b|)`, accumulated in f64: how feature agreement is measured (Q8_0 vs f32,
/// GPU vs CPU, ours vs PyTorch).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Stack crops into an NCHW batch.
pub fn batch(crops: &[Crop], device: &Device) -> Result<Tensor> {
    let mut data = Vec::with_capacity(crops.len() * 3 * preprocess::INPUT_SIZE * preprocess::INPUT_SIZE);
    for c in crops {
        data.extend(to_input(c));
    }
    Tensor::from_vec(
        data,
        (crops.len(), 3, preprocess::INPUT_SIZE, preprocess::INPUT_SIZE),
        device,
    )
    .map_err(crate::error::Error::from)
}
