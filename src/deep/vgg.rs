//! VGG-16 (Simonyan & Zisserman, ICLR 2015, configuration D), as torchvision defines it, on candle.
//!
//! Parameter names are torchvision's `state_dict` names: `features.{0,2,5,7,10,12,14,17,19,21,24,26,28}.weight/bias`
//! (3×3 convolutions, padding 1, each followed by ReLU; max-pooling 2×2 after blocks 1–5) and
//! `classifier.{0,3,6}.weight/bias` (fc6, fc7, fc8). Inputs are NCHW batches of 224×224 images; the features
//! end at 7×7, so torchvision's adaptive average pooling is the identity and is checked rather than computed.
//! Outputs: pool5 (flattened), fc6 and fc7 after ReLU, and the logits (no ReLU — candle-transformers' `vgg.rs`
//! applies one, and is batch-1 with timm names, so only the layer plan was reused). Dropout is inactive
//! (inference).
//!
//! The network runs in f32, or quantized for serving ([`Vgg16::quantize`]): the fully connected layers with Q8_0
//! weights (GGUF block format), on the CPU through [`super::q8`] (f32 activations, the same result on every CPU),
//! on CUDA through candle's `QMatMul`; and on the CPU the twelve convolutions after the first with 8-bit weights
//! and activations ([`super::conv_i8`], exact integer sums) after a first convolution summed in one fixed order,
//! so that the quantized CPU network gives the same bits on every CPU. Otherwise the
//! convolutions run in f32 on the CPU ([`super::conv`]) and in f16 on CUDA (the activations return to f32
//! before the dense layers).

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use serde::{Deserialize, Serialize};

use super::q8::Q8Matrix;
use crate::error::{Error, Result};

/// Layer plan: `Some(c)` is a 3×3 convolution to `c` channels, `None` a 2×2 max-pool.
#[derive(Debug, Clone, PartialEq)]
pub struct VggConfig {
    /// Convolution / pooling plan.
    pub plan: Vec<Option<usize>>,
    /// Width of fc6 and fc7.
    pub hidden: usize,
    /// Number of outputs of fc8.
    pub classes: usize,
}

impl VggConfig {
    /// torchvision's VGG-16 with `classes` outputs.
    pub fn vgg16(classes: usize) -> Self {
        Self::scaled(1, 4096, classes)
    }

    /// VGG-16 with every channel count divided by `div` (the PyTorch golden fixture uses 16 and 256 hidden).
    pub fn scaled(div: usize, hidden: usize, classes: usize) -> Self {
        let d = [
            64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0,
        ];
        VggConfig {
            plan: d.iter().map(|&c| (c > 0).then_some(c / div)).collect(),
            hidden,
            classes,
        }
    }

    /// VGG-16's plan with the widths and classes read from a weights file (`classifier.0` / `classifier.6`), so
    /// ImageNet (1000 classes) and fine-tuned (2 classes) files both load.
    pub fn vgg16_like(tensors: &HashMap<String, Tensor>) -> Self {
        let rows = |k: &str| tensors.get(k).and_then(|t| t.dims().first().copied());
        Self::scaled(
            1,
            rows("classifier.0.weight").unwrap_or(4096),
            rows("classifier.6.weight").unwrap_or(2),
        )
    }

    /// torchvision indices and output channels of the convolutions.
    fn convs(&self) -> Vec<(usize, usize, usize)> {
        // (features index, in channels, out channels); indices advance by 2 per conv (conv, relu), 1 per pool
        let (mut idx, mut cin, mut out) = (0, 3, Vec::new());
        for step in &self.plan {
            match step {
                Some(c) => {
                    out.push((idx, cin, *c));
                    cin = *c;
                    idx += 2;
                }
                None => idx += 1,
            }
        }
        out
    }

    fn last_channels(&self) -> usize {
        self.plan.iter().rev().find_map(|s| *s).unwrap_or(3)
    }
}

/// A fully connected layer, f32 or Q8_0.
pub enum Dense {
    /// `y = x Wᵀ + b`.
    F32 {
        /// `(out, in)`.
        weight: Tensor,
        /// `(out)`.
        bias: Tensor,
    },
    /// Quantized weight.
    Q8 {
        /// Q8_0 weight, `(out, in)`.
        weight: Q8Weight,
        /// `(out)`.
        bias: Tensor,
    },
}

/// Where a Q8_0 weight lives, which decides how its product is computed.
pub enum Q8Weight {
    /// On the CPU: [`super::q8`]'s product, the same bits on every CPU.
    Cpu(Q8Matrix),
    /// On a GPU: candle's CUDA kernels.
    Gpu(QMatMul),
}

impl Dense {
    /// A Q8_0 layer from its quantized weight.
    fn q8(weight: QTensor, bias: Tensor) -> candle_core::Result<Dense> {
        let weight = if weight.device().is_cpu() {
            Q8Weight::Cpu(
                Q8Matrix::from_qtensor(&weight)
                    .ok_or_else(|| candle_core::Error::Msg("a dense weight must be a 2-D Q8_0 tensor".into()))?,
            )
        } else {
            Q8Weight::Gpu(QMatMul::from_qtensor(weight)?)
        };
        Ok(Dense::Q8 { weight, bias })
    }
}

impl Dense {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Dense::F32 { weight, bias } => x.matmul(&weight.t()?)?.broadcast_add(bias),
            Dense::Q8 {
                weight: Q8Weight::Cpu(w),
                bias,
            } => {
                let (m, k) = x.dims2()?;
                let (rows, cols) = w.dims();
                if k != cols {
                    return Err(candle_core::Error::Msg(format!(
                        "dense input has {k} values, weight {cols}"
                    )));
                }
                let x = x.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?;
                Tensor::from_vec(w.matmul_t(&x, m), (m, rows), &Device::Cpu)?.broadcast_add(bias)
            }
            Dense::Q8 {
                weight: Q8Weight::Gpu(w),
                bias,
            } => w.forward(x)?.broadcast_add(bias),
        }
    }

    fn quantize(&self) -> candle_core::Result<Dense> {
        match self {
            Dense::F32 { weight, bias } if weight.device().is_cpu() => Ok(Dense::Q8 {
                weight: Q8Weight::Cpu(Q8Matrix::quantize(weight)?),
                bias: bias.clone(),
            }),
            Dense::F32 { weight, bias } => Dense::q8(QTensor::quantize(weight, GgmlDType::Q8_0)?, bias.clone()),
            Dense::Q8 { .. } => Err(candle_core::Error::Msg("already quantized".into())),
        }
    }
}

/// Activations of one batch.
pub struct VggOutputs {
    /// Flattened pool5, `(N, C·7·7)`.
    pub pool5: Tensor,
    /// fc6 after ReLU.
    pub fc6: Tensor,
    /// fc7 after ReLU.
    pub fc7: Tensor,
    /// fc8 (logits).
    pub logits: Tensor,
}

impl VggOutputs {
    /// The activations of `layer`.
    pub fn layer(self, layer: FeatureLayer) -> Tensor {
        layer.pick(self.fc6, self.fc7, self.logits)
    }
}

/// Which activations are the deep features. The study takes "the last fully connected layer" of its fine-tuned
/// network; ours is fc7 after ReLU (4096-d) unless configured. Written in a bundle as `fc6`, `fc7` or `logits`,
/// and a bundle naming anything else is refused when it is read (never served as another layer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FeatureLayer {
    /// fc6 after ReLU (4096-d).
    Fc6,
    /// fc7 after ReLU (4096-d).
    #[default]
    Fc7,
    /// fc8, the logits (one per class).
    Logits,
}

impl FeatureLayer {
    /// Every layer, in network order.
    pub const ALL: [FeatureLayer; 3] = [FeatureLayer::Fc6, FeatureLayer::Fc7, FeatureLayer::Logits];

    /// `fc6`, `fc7` or `logits`.
    pub fn name(self) -> &'static str {
        match self {
            FeatureLayer::Fc6 => "fc6",
            FeatureLayer::Fc7 => "fc7",
            FeatureLayer::Logits => "logits",
        }
    }

    /// This layer's tensor among the head's three outputs.
    pub fn pick(self, fc6: Tensor, fc7: Tensor, logits: Tensor) -> Tensor {
        match self {
            FeatureLayer::Fc6 => fc6,
            FeatureLayer::Fc7 => fc7,
            FeatureLayer::Logits => logits,
        }
    }

    /// The feature name of unit `k`: `deep_fc7_0000`, … (the column names of feature tables and signatures).
    pub fn feature_name(self, k: usize) -> String {
        format!("deep_{}_{k:04}", self.name())
    }

    /// The unit a feature name of this layer refers to (`deep_fc7_0042` → 42); `None` for any other name.
    pub fn unit_of(self, feature: &str) -> Option<usize> {
        feature
            .strip_prefix("deep_")?
            .strip_prefix(self.name())?
            .strip_prefix('_')?
            .parse()
            .ok()
    }
}

impl std::fmt::Display for FeatureLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for FeatureLayer {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        FeatureLayer::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| format!("unknown feature layer {s:?} (fc6, fc7 or logits)"))
    }
}

/// The network.
pub struct Vgg16 {
    /// Its configuration.
    pub config: VggConfig,
    convs: Vec<(Tensor, Tensor)>,
    /// fc6, fc7, fc8.
    pub dense: [Dense; 3],
    /// Where it runs.
    pub device: Device,
    /// Convolution precision (f32 on the CPU, f16 on CUDA).
    pub conv_dtype: DType,
    /// Kernels packed for the CPU path; `None` on CUDA.
    packed: Option<Vec<CpuConv>>,
    /// Whether the CPU trunk runs quantized ([`Vgg16::quantize_trunk`]).
    trunk_quantized: bool,
    /// The NHWC trunk on CUDA ([`super::cuda_trunk`]), when chosen.
    #[cfg(feature = "cuda")]
    cuda_trunk: Option<super::cuda_trunk::CudaTrunk>,
}

/// A convolution of the CPU trunk, packed for the precision it runs in.
#[derive(Debug, Clone)]
enum CpuConv {
    /// f32 ([`super::conv`]).
    F32(super::conv::PackedConv),
    /// f32 summed in one fixed order ([`super::conv::conv3x3_relu_fixed_order`]): the quantized trunk's first.
    F32FixedOrder(super::conv::PackedConv),
    /// 8-bit weights and activations ([`super::conv_i8`]).
    I8(super::conv_i8::PackedConvI8),
}

impl Vgg16 {
    /// Build from named tensors (torchvision names), checking every name, shape and dtype; `origin` names the
    /// weights file in errors.
    pub fn from_tensors(
        config: VggConfig,
        tensors: &HashMap<String, Tensor>,
        origin: &Path,
        device: &Device,
    ) -> Result<Self> {
        let get = |name: &str, shape: &[usize]| -> Result<Tensor> {
            let t = tensors.get(name).ok_or_else(|| Error::Weights {
                path: origin.to_path_buf(),
                reason: format!("tensor '{name}' is missing"),
            })?;
            if t.dims() != shape {
                return Err(Error::Weights {
                    path: origin.to_path_buf(),
                    reason: format!("tensor '{name}' has shape {:?}, expected {shape:?}", t.dims()),
                });
            }
            if !matches!(t.dtype(), DType::F32 | DType::F16 | DType::BF16 | DType::F64) {
                return Err(Error::Weights {
                    path: origin.to_path_buf(),
                    reason: format!(
                        "tensor '{name}' has dtype {:?}; a floating-point type is required",
                        t.dtype()
                    ),
                });
            }
            t.to_dtype(DType::F32)
                .and_then(|t| t.to_device(device))
                .map_err(Error::from)
        };
        let conv_dtype = if device.is_cpu() { DType::F32 } else { DType::F16 };
        let mut convs = Vec::new();
        for (idx, cin, cout) in config.convs() {
            let w = get(&format!("features.{idx}.weight"), &[cout, cin, 3, 3])?;
            let b = get(&format!("features.{idx}.bias"), &[cout])?;
            convs.push((w.to_dtype(conv_dtype)?, b.to_dtype(conv_dtype)?));
        }
        let flat = config.last_channels() * 49;
        let dense = |i: usize, n_in: usize, n_out: usize| -> Result<Dense> {
            Ok(Dense::F32 {
                weight: get(&format!("classifier.{i}.weight"), &[n_out, n_in])?,
                bias: get(&format!("classifier.{i}.bias"), &[n_out])?,
            })
        };
        let dense = [
            dense(0, flat, config.hidden)?,
            dense(3, config.hidden, config.hidden)?,
            dense(6, config.hidden, config.classes)?,
        ];
        let mut net = Vgg16 {
            config,
            convs,
            dense,
            device: device.clone(),
            conv_dtype,
            packed: None,
            trunk_quantized: false,
            #[cfg(feature = "cuda")]
            cuda_trunk: None,
        };
        net.pack()?;
        #[cfg(feature = "cuda")]
        if device.is_cuda() {
            net.set_cuda_trunk(super::cuda_trunk::CudaTrunkKind::from_env()?)?;
        }
        Ok(net)
    }

    /// Pack the convolutions for the path that runs them: the CPU path's kernels (8-bit after the first in a
    /// quantized network, one layer's f32 packing at a time), or the NHWC CUDA trunk when it is in use.
    fn pack(&mut self) -> Result<()> {
        if self.device.is_cpu() {
            let quantized = self.trunk_quantized;
            let f32 = |t: &Tensor| t.to_dtype(DType::F32).and_then(|t| t.to_device(&Device::Cpu));
            self.packed = None;
            self.packed = Some(
                self.convs
                    .iter()
                    .enumerate()
                    .map(|(i, (w, b))| {
                        let p = super::conv::PackedConv::new(&f32(w)?, &f32(b)?)?;
                        Ok(match (quantized, i) {
                            (false, _) => CpuConv::F32(p),
                            (true, 0) => CpuConv::F32FixedOrder(p),
                            (true, _) => CpuConv::I8(super::conv_i8::PackedConvI8::quantize(&p)),
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
            );
        }
        #[cfg(feature = "cuda")]
        if let Some(kind) = self.cuda_trunk.as_ref().map(|t| t.kind()) {
            self.set_cuda_trunk(kind)?;
        }
        Ok(())
    }

    /// Choose the CUDA convolution path (candle's `conv2d`, or one of the NHWC trunk's engines); ignored on the
    /// CPU, and in a build without the `cuda` feature (whose networks are all on the CPU). The default comes from
    /// `ALNRISK_CUDA_TRUNK`.
    pub fn set_cuda_trunk(&mut self, kind: super::device::CudaTrunkKind) -> Result<()> {
        #[cfg(feature = "cuda")]
        {
            use super::cuda_trunk::CudaTrunk;
            use super::device::CudaTrunkKind;
            self.cuda_trunk = match kind {
                CudaTrunkKind::Candle => None,
                _ if !self.device.is_cuda() => None,
                _ => Some(CudaTrunk::new(kind, &self.config.plan, &self.convs, &self.device)?),
            };
        }
        #[cfg(not(feature = "cuda"))]
        let _ = kind;
        Ok(())
    }

    /// The NHWC CUDA trunk in use, if any (for its [`super::cuda_trunk::CudaTrunk::describe`]).
    #[cfg(feature = "cuda")]
    pub fn cuda_trunk(&self) -> Option<&super::cuda_trunk::CudaTrunk> {
        self.cuda_trunk.as_ref()
    }

    /// Which convolution path runs the trunk on CUDA (`Candle` on the CPU, where [`super::conv`] runs it).
    pub fn cuda_trunk_kind(&self) -> super::device::CudaTrunkKind {
        #[cfg(feature = "cuda")]
        if let Some(t) = &self.cuda_trunk {
            return t.kind();
        }
        super::device::CudaTrunkKind::Candle
    }

    /// Load a safetensors file with torchvision names.
    pub fn load(config: VggConfig, path: &Path, device: &Device) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| Error::Weights {
            path: path.to_path_buf(),
            reason: format!("not a readable safetensors file: {e}"),
        })?;
        Self::from_tensors(config, &tensors, path, device)
    }

    /// Quantize the network for serving: fc6, fc7 and fc8 to Q8_0, and the trunk ([`Vgg16::quantize_trunk`]).
    pub fn quantize(&mut self) -> Result<()> {
        for d in self.dense.iter_mut() {
            *d = d.quantize()?;
        }
        self.quantize_trunk()
    }

    /// Quantize the trunk as it is served: on the CPU the convolutions after the first to 8 bits
    /// ([`super::conv_i8`]) and the first summed in a fixed order; on CUDA nothing changes (f16). The f32
    /// convolution weights are kept (for saving and for CUDA). For a head trained on the served trunk's pool5.
    pub fn quantize_trunk(&mut self) -> Result<()> {
        self.trunk_quantized = true;
        self.pack()
    }

    /// The convolution weights and biases, in layer order.
    pub fn conv_tensors(&self) -> &[(Tensor, Tensor)] {
        &self.convs
    }

    /// Replace the convolution weights (same shapes), converting to the convolution precision; the kernels packed
    /// for the CPU path are packed again.
    pub fn set_conv_tensors(&mut self, convs: Vec<(Tensor, Tensor)>) -> Result<()> {
        if convs.len() != self.convs.len() {
            return Err(Error::Model("wrong number of convolution layers".into()));
        }
        for ((w, _), (old, _)) in convs.iter().zip(&self.convs) {
            if w.dims() != old.dims() {
                return Err(Error::Model(format!(
                    "convolution weight of shape {:?}, expected {:?}",
                    w.dims(),
                    old.dims()
                )));
            }
        }
        self.convs = convs
            .into_iter()
            .map(|(w, b)| Ok((w.to_dtype(self.conv_dtype)?, b.to_dtype(self.conv_dtype)?)))
            .collect::<Result<_>>()?;
        self.pack()
    }

    /// All parameters with torchvision names (f32, on the CPU), for saving.
    pub fn named_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        let cpu = |t: &Tensor| {
            t.to_dtype(DType::F32)
                .and_then(|t| t.to_device(&Device::Cpu))
                .map_err(Error::from)
        };
        for ((idx, _, _), (w, b)) in self.config.convs().iter().zip(&self.convs) {
            out.insert(format!("features.{idx}.weight"), cpu(w)?);
            out.insert(format!("features.{idx}.bias"), cpu(b)?);
        }
        for (i, d) in [0, 3, 6].iter().zip(&self.dense) {
            match d {
                Dense::F32 { weight, bias } => {
                    out.insert(format!("classifier.{i}.weight"), cpu(weight)?);
                    out.insert(format!("classifier.{i}.bias"), cpu(bias)?);
                }
                Dense::Q8 { .. } => return Err(Error::Model("save the f32 network; quantize at load time".into())),
            }
        }
        Ok(out)
    }

    /// Save as safetensors with torchvision names (the same names it was loaded from).
    pub fn save(&self, path: &Path) -> Result<()> {
        candle_core::safetensors::save(&self.named_tensors()?, path)
            .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))
    }

    /// Save the quantized network as GGUF: convolutions and biases as F32 tensors, fc6–fc8 as Q8_0, under the
    /// torchvision names. Requires [`Vgg16::quantize`] first.
    pub fn save_gguf(&self, path: &Path) -> Result<()> {
        use candle_core::quantized::gguf_file;
        let io = |e: candle_core::Error| Error::io(path, std::io::Error::other(e.to_string()));
        let f32q = |t: &Tensor| {
            t.to_dtype(DType::F32)
                .and_then(|t| t.to_device(&Device::Cpu))
                .and_then(|t| QTensor::quantize(&t, GgmlDType::F32))
        };
        let mut owned: Vec<(String, std::sync::Arc<QTensor>)> = Vec::new();
        for ((idx, _, _), (w, b)) in self.config.convs().iter().zip(&self.convs) {
            owned.push((
                format!("features.{idx}.weight"),
                std::sync::Arc::new(f32q(w).map_err(io)?),
            ));
            owned.push((
                format!("features.{idx}.bias"),
                std::sync::Arc::new(f32q(b).map_err(io)?),
            ));
        }
        for (i, d) in [0, 3, 6].iter().zip(&self.dense) {
            let (q, bias) = match d {
                Dense::Q8 {
                    weight: Q8Weight::Cpu(w),
                    bias,
                } => (std::sync::Arc::new(w.to_qtensor().map_err(io)?), bias),
                Dense::Q8 {
                    weight: Q8Weight::Gpu(QMatMul::QTensor(q)),
                    bias,
                } => (q.clone(), bias),
                _ => return Err(Error::Model("GGUF export needs the quantized (Q8_0) network".into())),
            };
            owned.push((format!("classifier.{i}.weight"), q));
            owned.push((
                format!("classifier.{i}.bias"),
                std::sync::Arc::new(f32q(bias).map_err(io)?),
            ));
        }
        let meta_name = gguf_file::Value::String("vgg16".into());
        let meta_version = gguf_file::Value::String(env!("CARGO_PKG_VERSION").into());
        let metadata = [("general.architecture", &meta_name), ("alnrisk.version", &meta_version)];
        let tensors: Vec<(&str, &QTensor)> = owned.iter().map(|(n, t)| (n.as_str(), t.as_ref())).collect();
        let mut f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        gguf_file::write(&mut f, &metadata, &tensors).map_err(io)
    }

    /// Load a GGUF file written by [`Vgg16::save_gguf`]: the quantized network of [`Vgg16::quantize`] (fc6–fc8
    /// stay Q8_0; on the CPU the convolutions after the first are quantized to 8 bits as they load).
    pub fn load_gguf(path: &Path, device: &Device) -> Result<Self> {
        use candle_core::quantized::gguf_file;
        let werr = |reason: String| Error::Weights {
            path: path.to_path_buf(),
            reason,
        };
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let content = gguf_file::Content::read(&mut f).map_err(|e| werr(format!("not a readable GGUF file: {e}")))?;
        let mut plain = HashMap::new();
        let mut dense_q = Vec::new();
        for name in content.tensor_infos.keys().cloned().collect::<Vec<_>>() {
            if name.starts_with("classifier.") && name.ends_with(".weight") {
                // read after the network is built, straight into its final form
                dense_q.push((name.clone(), content.tensor_infos[&name].shape.dims().to_vec()));
            } else {
                let t = content
                    .tensor(&mut f, &name, &Device::Cpu)
                    .map_err(|e| werr(format!("tensor '{name}': {e}")))?;
                plain.insert(name, t.dequantize(&Device::Cpu)?);
            }
        }
        // shapes decide the configuration; load f32 placeholders for the dense weights, then swap in Q8_0
        for (name, dims) in &dense_q {
            plain.insert(name.clone(), Tensor::zeros(dims.as_slice(), DType::F32, &Device::Cpu)?);
        }
        let first = plain
            .get("features.0.weight")
            .map(|t| t.dims()[0])
            .ok_or_else(|| werr("tensor 'features.0.weight' is missing".into()))?;
        let rows = |k: &str| plain.get(k).map(|t| t.dims()[0]).unwrap_or(0);
        let config = VggConfig::scaled(
            64 / first.max(1),
            rows("classifier.0.weight"),
            rows("classifier.6.weight"),
        );
        let mut net = Self::from_tensors(config, &plain, path, device)?;
        for (name, _) in dense_q {
            let i = match name.as_str() {
                "classifier.0.weight" => 0,
                "classifier.3.weight" => 1,
                _ => 2,
            };
            let bias = match &net.dense[i] {
                Dense::F32 { bias, .. } | Dense::Q8 { bias, .. } => bias.clone(),
            };
            net.dense[i] = if device.is_cpu() {
                let weight = Q8Matrix::read_gguf(&content, &mut f, &name).map_err(werr)?;
                Dense::Q8 {
                    weight: Q8Weight::Cpu(weight),
                    bias,
                }
            } else {
                let t = content
                    .tensor(&mut f, &name, &Device::Cpu)
                    .map_err(|e| werr(format!("tensor '{name}': {e}")))?;
                Dense::q8(
                    QTensor::quantize(&t.dequantize(&Device::Cpu)?.to_device(device)?, GgmlDType::Q8_0)?,
                    bias,
                )?
            };
        }
        net.quantize_trunk()?;
        Ok(net)
    }

    /// Whether the network is quantized for serving ([`Vgg16::quantize`]).
    pub fn is_quantized(&self) -> bool {
        matches!(self.dense[0], Dense::Q8 { .. })
    }

    /// Whether the trunk is quantized as served ([`Vgg16::quantize_trunk`]).
    pub fn is_trunk_quantized(&self) -> bool {
        self.trunk_quantized
    }

    /// Convolutional trunk: NCHW input `(N, 3, 224, 224)` → flattened pool5.
    pub fn trunk(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(packed) = &self.packed {
            return self.trunk_cpu(x, packed);
        }
        #[cfg(feature = "cuda")]
        if let Some(trunk) = &self.cuda_trunk {
            let x = x.to_device(&self.device)?;
            return trunk.forward(&x);
        }
        let mut h = x.to_device(&self.device).and_then(|t| t.to_dtype(self.conv_dtype))?;
        let mut c = 0;
        for step in &self.config.plan {
            h = match step {
                Some(_) => {
                    let (w, b) = &self.convs[c];
                    c += 1;
                    h.conv2d(w, 1, 1, 1, 1)
                        .and_then(|y| y.broadcast_add(&b.reshape((1, b.dims()[0], 1, 1))?))
                        .and_then(|y| y.relu())?
                }
                None => h.max_pool2d(2)?,
            };
        }
        let dims = h.dims().to_vec();
        if dims.len() != 4 || dims[2] != 7 || dims[3] != 7 {
            return Err(Error::Model(format!("trunk output {dims:?}; inputs must be 224×224")));
        }
        h.flatten_from(1)
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(Error::from)
    }

    /// The CPU trunk on packed kernels and NHWC activations, one image at a time.
    fn trunk_cpu(&self, x: &Tensor, packed: &[CpuConv]) -> Result<Tensor> {
        use super::conv::{Nhwc, conv3x3_relu, conv3x3_relu_fixed_order, maxpool2};
        use super::conv_i8::{conv3x3_relu_i8, conv3x3_relu_maxpool_i8};
        let x = x.to_device(&Device::Cpu).and_then(|t| t.to_dtype(DType::F32))?;
        let (n, c, h, w) = x.dims4()?;
        let mut rows = Vec::with_capacity(n);
        for i in 0..n {
            let img: Vec<f32> = x.get(i).and_then(|t| t.flatten_all()).and_then(|t| t.to_vec1())?;
            let mut a = Nhwc::from_chw(c, h, w, &img);
            let mut conv = packed.iter();
            let mut steps = self.config.plan.iter().peekable();
            while let Some(step) = steps.next() {
                a = match step {
                    Some(_) => {
                        let layer = conv.next().ok_or_else(|| Error::Model("layer plan mismatch".into()))?;
                        let pool_next = matches!(steps.peek(), Some(None));
                        match layer {
                            CpuConv::F32(p) => conv3x3_relu(&a, p),
                            CpuConv::F32FixedOrder(p) => conv3x3_relu_fixed_order(&a, p),
                            // an 8-bit convolution followed by a pool takes both at once (the same values)
                            CpuConv::I8(p) if pool_next => {
                                steps.next();
                                conv3x3_relu_maxpool_i8(&a, p)
                            }
                            CpuConv::I8(p) => conv3x3_relu_i8(&a, p),
                        }
                    }
                    None => maxpool2(&a),
                };
            }
            if a.h != 7 || a.w != 7 {
                return Err(Error::Model(format!(
                    "trunk output {}×{}; inputs must be 224×224",
                    a.h, a.w
                )));
            }
            rows.push(a.to_chw());
        }
        let len = rows.first().map(|r| r.len()).unwrap_or(0);
        Tensor::from_vec(rows.concat(), (n, len), &Device::Cpu).map_err(Error::from)
    }

    /// Classifier head on flattened pool5.
    pub fn head(&self, pool5: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let fc6 = self.dense[0].forward(pool5).and_then(|t| t.relu())?;
        let fc7 = self.dense[1].forward(&fc6).and_then(|t| t.relu())?;
        let logits = self.dense[2].forward(&fc7)?;
        Ok((fc6, fc7, logits))
    }

    /// Full forward pass.
    pub fn forward(&self, x: &Tensor) -> Result<VggOutputs> {
        let pool5 = self.trunk(x)?;
        let (fc6, fc7, logits) = self.head(&pool5)?;
        Ok(VggOutputs {
            pool5,
            fc6,
            fc7,
            logits,
        })
    }
}

/// Deterministic He-initialised VGG weights (torchvision names) from a seed, for demos and tests when no
/// pretrained file is given: convolutions N(0, 2/fan_out), linear layers N(0, 2/fan_in), biases 0.
pub fn he_init(config: &VggConfig, seed: u64) -> Result<HashMap<String, Tensor>> {
    let mut rng = crate::rng::Rng::new(seed);
    let mut out = HashMap::new();
    let mut normal = |shape: &[usize], std: f64| -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| (rng.normal() * std) as f32).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).map_err(Error::from)
    };
    for (idx, cin, cout) in config.convs() {
        out.insert(
            format!("features.{idx}.weight"),
            normal(&[cout, cin, 3, 3], (2.0 / (cout * 9) as f64).sqrt())?,
        );
        out.insert(
            format!("features.{idx}.bias"),
            Tensor::zeros(cout, DType::F32, &Device::Cpu)?,
        );
    }
    let flat = config.last_channels() * 49;
    for (i, n_in, n_out) in [
        (0, flat, config.hidden),
        (3, config.hidden, config.hidden),
        (6, config.hidden, config.classes),
    ] {
        out.insert(
            format!("classifier.{i}.weight"),
            normal(&[n_out, n_in], (2.0 / n_in as f64).sqrt())?,
        );
        out.insert(
            format!("classifier.{i}.bias"),
            Tensor::zeros(n_out, DType::F32, &Device::Cpu)?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::FeatureLayer;

    #[test]
    fn feature_layer_names_round_trip_and_units_parse_only_their_own_layer() {
        for l in FeatureLayer::ALL {
            assert_eq!(l.name().parse::<FeatureLayer>(), Ok(l));
            assert_eq!(serde_json::to_string(&l).unwrap(), format!("\"{}\"", l.name()));
            assert_eq!(l.unit_of(&l.feature_name(42)), Some(42));
        }
        assert_eq!(FeatureLayer::default(), FeatureLayer::Fc7);
        assert_eq!(FeatureLayer::Fc7.feature_name(7), "deep_fc7_0007");
        assert_eq!(FeatureLayer::Fc7.unit_of("deep_fc6_0007"), None);
        assert_eq!(FeatureLayer::Fc7.unit_of("deep_fc70_0007"), None);
        assert_eq!(FeatureLayer::Fc7.unit_of("original_glcm_Contrast"), None);
        // a bundle naming another layer is refused, never served as fc7
        assert!(serde_json::from_str::<FeatureLayer>("\"fc8\"").is_err());
        assert!("fc8".parse::<FeatureLayer>().is_err());
    }
}
