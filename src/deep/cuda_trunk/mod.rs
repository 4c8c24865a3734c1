//! The VGG trunk on CUDA with NHWC f16 activations (`cuda` feature), in place of candle's convolution.
//!
//! candle's CUDA `conv2d` runs an NCHW im2col, the product, and a strided copy back to NCHW; the bias and the
//! ReLU are two more kernels — five launches and two full passes over each activation per layer, which is where
//! the batch-1 time goes (issue 4: 2.0 ms of convolutions against PyTorch's 1.05–1.15 ms whole fc7 path). Here
//! activations stay NHWC in f16 from the input to pool5, the kernels are packed once at load, and a
//! convolution's bias + ReLU is applied by whoever reads its output next. One schedule ([`CudaTrunk::run`]),
//! two convolution engines:
//!
//! - **im2col** ([`CudaTrunkKind::Nhwc`]): our im2col kernel ([`kernels`], which applies the pending bias +
//!   ReLU as it reads) and one cuBLAS product with the kernel packed as `Kp × C_out` (rows in the CPU path's
//!   `(ky, kx, c)` order, `Kp` = 9·C_in rounded up to 8 for the tensor cores). The product's output *is* the
//!   next layer's input: two launches per convolution. On maps whose channels are a multiple of 8 (all but the
//!   input), every kernel moves 8 channels per thread with 16-byte accesses (`_c8` variants).
//! - **cuDNN** ([`CudaTrunkKind::Cudnn`], `cudnn` feature; [`cudnn`]): `cudnnConvolutionForward` on NHWC f16
//!   with f32 accumulation and tensor-core math, descriptors built once per input shape and the algorithm
//!   measured once by `cudnnFindConvolutionForwardAlgorithm` (PyTorch's `cudnn.benchmark`); the pending bias +
//!   ReLU goes into the max-pool, or into one `bias_relu` pass between two convolutions.
//!   [`CudaTrunkKind::CudnnFused`] instead lets cuDNN apply bias + ReLU itself
//!   (`cudnnConvolutionBiasActivationForward`, with the implicit precomputed GEMM algorithm).
//!
//! Per pool: one launch. The default stays candle's convolution until a GPU run has shown which path is correct
//! and fastest (`tests/deep_cuda.rs`, `cargo bench --bench vgg -- --cuda`); the kernels' index arithmetic and
//! both schedules are tested on the CPU by `tests/cuda_kernels_host.rs`.

#[cfg(feature = "cudnn")]
mod cudnn;
mod kernels;

use candle_core::{DType, Device, Tensor};

#[cfg(feature = "cudnn")]
use super::conv::padded_channels;
use super::conv::{PackedConv, padded_k};
use crate::error::{Error, Result};
use kernels::{TrunkKernel, TrunkOp};

pub use super::device::CudaTrunkKind;

/// What computes the convolutions.
enum ConvEngine {
    /// Our im2col + cuBLAS.
    Im2col,
    /// cuDNN.
    #[cfg(feature = "cudnn")]
    Cudnn(Box<cudnn::CudnnConvs>),
}

enum Step {
    Conv {
        /// im2col: `Kp × C_out`; cuDNN: `C_out × 3 × 3 × C_in'` (KRSC). f16.
        weight: Tensor,
        /// `C_out`, f16.
        bias: Tensor,
        /// Input channels as the engine sees them (the first layer's padded to 8 for cuDNN).
        cin: usize,
        cout: usize,
    },
    Pool,
}

/// The packed trunk.
pub struct CudaTrunk {
    kind: CudaTrunkKind,
    steps: Vec<Step>,
    engine: ConvEngine,
    /// Channels of the NHWC input the first convolution reads (3, or 8 for cuDNN: zero-padded).
    input_channels: usize,
    /// A one-element f16 tensor passed where no bias is pending (never read: `act = 0`).
    no_bias: Tensor,
}

impl CudaTrunk {
    /// Pack the convolutions (`(C_out, C_in, 3, 3)` weights and biases, in layer order) for `plan`
    /// (`Some(c)`: a convolution, `None`: a pool) onto `device`, for the engine of `kind` (not `Candle`).
    pub fn new(
        kind: CudaTrunkKind,
        plan: &[Option<usize>],
        convs: &[(Tensor, Tensor)],
        device: &Device,
    ) -> Result<Self> {
        if !device.is_cuda() {
            return Err(Error::Device("the NHWC trunk runs on CUDA only".into()));
        }
        if plan.last() != Some(&None) {
            return Err(Error::Model("the NHWC trunk needs a plan that ends with a pool".into()));
        }
        let engine = match kind {
            CudaTrunkKind::Nhwc => ConvEngine::Im2col,
            #[cfg(feature = "cudnn")]
            CudaTrunkKind::Cudnn | CudaTrunkKind::CudnnFused => ConvEngine::Cudnn(Box::new(cudnn::CudnnConvs::new(
                device,
                kind == CudaTrunkKind::CudnnFused,
            )?)),
            #[cfg(not(feature = "cudnn"))]
            CudaTrunkKind::Cudnn | CudaTrunkKind::CudnnFused => {
                return Err(Error::Device(
                    "the cuDNN trunk needs a build with the `cudnn` feature".into(),
                ));
            }
            CudaTrunkKind::Candle => {
                return Err(Error::Model(
                    "candle's convolution is not an NHWC trunk (Vgg16 runs it itself)".into(),
                ));
            }
        };
        let f16_on = |v: Vec<f32>, shape: (usize, usize)| {
            Tensor::from_vec(v, shape, &Device::Cpu)
                .and_then(|t| t.to_dtype(DType::F16))
                .and_then(|t| t.to_device(device))
                .map_err(Error::from)
        };
        let cpu = |t: &Tensor| t.to_dtype(DType::F32).and_then(|t| t.to_device(&Device::Cpu));
        let mut convs = convs.iter();
        let mut steps = Vec::with_capacity(plan.len());
        let mut input_channels = None;
        for step in plan {
            steps.push(match step {
                Some(_) => {
                    let (w, b) = convs.next().ok_or_else(|| Error::Model("layer plan mismatch".into()))?;
                    let packed = PackedConv::new(&cpu(w)?, &cpu(b)?)?;
                    let cout = packed.cout();
                    let (cin, weight) = match engine {
                        ConvEngine::Im2col => {
                            let (cin, kp) = (packed.cin(), padded_k(packed.cin()));
                            (cin, f16_on(packed.padded_weight(kp), (kp, cout))?)
                        }
                        #[cfg(feature = "cudnn")]
                        ConvEngine::Cudnn(_) => {
                            // the first layer reads the input, zero-padded to 8 channels at no cost; the others
                            // read the previous layer's output as it is
                            let cin = match input_channels {
                                None => padded_channels(packed.cin()),
                                Some(_) => packed.cin(),
                            };
                            (cin, f16_on(packed.krsc_weight(cin), (cout, 9 * cin))?)
                        }
                    };
                    input_channels.get_or_insert(cin);
                    Step::Conv {
                        weight,
                        bias: f16_on(packed.bias().to_vec(), (1, cout))?.flatten_all()?,
                        cin,
                        cout,
                    }
                }
                None => Step::Pool,
            });
        }
        let no_bias = Tensor::zeros(1, DType::F16, device)?;
        Ok(CudaTrunk {
            kind,
            steps,
            engine,
            input_channels: input_channels.unwrap_or(3),
            no_bias,
        })
    }

    /// Which engine computes the convolutions.
    pub fn kind(&self) -> CudaTrunkKind {
        self.kind
    }

    /// NCHW input `(N, 3, H, W)` → flattened pool5 `(N, C·h·w)` in PyTorch's (C, h, w) order, f32.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.run(x, &mut |_| Ok(()))
    }

    /// What the engine chose per convolution and input shape so far (cuDNN: algorithm, measured time,
    /// workspace), for the bench and the log; empty for im2col.
    pub fn describe(&self) -> Vec<String> {
        match &self.engine {
            ConvEngine::Im2col => Vec::new(),
            #[cfg(feature = "cudnn")]
            ConvEngine::Cudnn(c) => c.describe(),
        }
    }

    /// [`CudaTrunk::forward`], calling `after` with a label after each step (`input`, `conv 64→128 112×112`,
    /// `pool 112×112`, `output`) — for the per-layer profile of `benches/vgg.rs`, which synchronises there.
    pub fn run(&self, x: &Tensor, after: &mut dyn FnMut(String) -> Result<()>) -> Result<Tensor> {
        let (n, c0, h0, w0) = x.dims4()?;
        // NHWC f16, channels zero-padded to what the first convolution reads
        let mut a = x
            .to_dtype(DType::F16)
            .and_then(|t| t.permute((0, 2, 3, 1)))
            .and_then(|t| t.contiguous())?;
        if self.input_channels > c0 {
            a = a.pad_with_zeros(3, 0, self.input_channels - c0)?;
        }
        after("input".into())?;
        let (mut h, mut w, mut c) = (h0, w0, self.input_channels);
        let mut pending: Option<&Tensor> = None;
        let op = |kind, h, w, c, act| TrunkOp { kind, n, h, w, c, act };
        let mut conv_index = 0;
        for step in &self.steps {
            match step {
                Step::Conv {
                    weight,
                    bias,
                    cin,
                    cout,
                } => {
                    if *cin != c {
                        return Err(Error::Model(format!(
                            "convolution {conv_index}: {c} channels in, {cin} expected"
                        )));
                    }
                    match &self.engine {
                        ConvEngine::Im2col => {
                            let im2col = op(TrunkKernel::Im2Col { kp: weight.dims()[0] }, h, w, c, pending.is_some());
                            let col = a.apply_op2_no_bwd(pending.unwrap_or(&self.no_bias), &im2col)?;
                            a = col.matmul(weight)?;
                            pending = Some(bias);
                        }
                        #[cfg(feature = "cudnn")]
                        ConvEngine::Cudnn(convs) => {
                            if let Some(b) = pending.take() {
                                a = a.apply_op2_no_bwd(b, &op(TrunkKernel::BiasRelu, h, w, c, true))?;
                            }
                            a = convs.forward(conv_index, &a, weight, bias, (n, h, w, c, *cout))?;
                            pending = (!convs.fused()).then_some(bias);
                        }
                    }
                    after(format!("conv {c}→{cout} {h}×{w}"))?;
                    c = *cout;
                    conv_index += 1;
                }
                Step::Pool => {
                    let pool = op(TrunkKernel::MaxPool, h, w, c, pending.is_some());
                    a = a.apply_op2_no_bwd(pending.unwrap_or(&self.no_bias), &pool)?;
                    after(format!("pool {h}×{w}"))?;
                    h /= 2;
                    w /= 2;
                    pending = None;
                }
            }
        }
        let out = a
            .reshape((n, h, w, c))
            .and_then(|t| t.permute((0, 3, 1, 2)))
            .and_then(|t| t.contiguous())
            .and_then(|t| t.reshape((n, c * h * w)))
            .and_then(|t| t.to_dtype(DType::F32))?;
        after("output".into())?;
        Ok(out)
    }
}
