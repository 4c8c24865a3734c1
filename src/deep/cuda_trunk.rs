//! The NHWC f16 VGG trunk on CUDA (`cuda` feature): our kernels (`trunk.cu`, compiled to PTX by `build.rs`) and
//! cuBLAS, in place of candle's convolution.
//!
//! candle's CUDA `conv2d` runs an NCHW im2col, the product, and a strided copy back to NCHW; the bias and the
//! ReLU are two more kernels — five launches and two full passes over each activation per layer, which is where
//! the batch-1 time goes (issue 4: 2.0 ms of convolutions against PyTorch's 1.05–1.15 ms whole fc7 path). Here
//! activations stay NHWC, so the product's output *is* the next layer's input; the kernels are packed once at load
//! (`Kp × C_out`, f16, rows in the CPU path's `(ky, kx, c)` order, `Kp` = 9·C_in rounded up to 8 for the tensor
//! cores); bias and ReLU are applied by the consumer (next im2col or the max-pool). Per convolution: one im2col
//! launch and one GEMM; per pool: one launch.
//!
//! Chosen with [`CudaTrunkKind`] (`ALNRISK_CUDA_TRUNK=nhwc`). The default stays candle's convolution until this
//! path has been measured and checked against it on a GPU (`tests/deep_cuda.rs`, `cargo bench --bench vgg --
//! --cuda`); the kernels' index arithmetic is tested on the CPU by `tests/cuda_kernels_host.rs`.

use std::str::FromStr;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaDevice, CudaStorage, WrapErr};
use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Shape, Tensor};
use half::f16;

use super::conv::{PackedConv, padded_k};
use super::vgg::ce;
use crate::error::{Error, Result};

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/trunk.ptx"));
const MODULE: &str = "alnrisk_trunk";
const THREADS: u32 = 256;

/// Which convolution path the CUDA trunk uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CudaTrunkKind {
    /// candle's `conv2d` (NCHW im2col + GEMM + copy), then bias and ReLU.
    #[default]
    Candle,
    /// Our NHWC path (this module).
    Nhwc,
}

impl FromStr for CudaTrunkKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "candle" => Ok(CudaTrunkKind::Candle),
            "nhwc" => Ok(CudaTrunkKind::Nhwc),
            _ => Err(format!("'{s}' is not a CUDA trunk: candle or nhwc")),
        }
    }
}

impl CudaTrunkKind {
    /// From `ALNRISK_CUDA_TRUNK` (`candle`, the default, or `nhwc`).
    pub fn from_env() -> Result<Self> {
        match std::env::var("ALNRISK_CUDA_TRUNK") {
            Ok(v) => v
                .parse()
                .map_err(|e: String| Error::Compute(format!("ALNRISK_CUDA_TRUNK: {e}"))),
            Err(_) => Ok(CudaTrunkKind::Candle),
        }
    }
}

enum Step {
    Conv {
        /// `Kp × C_out`, f16.
        weight: Tensor,
        /// `C_out`, f16.
        bias: Tensor,
        kp: usize,
    },
    Pool,
}

/// The packed trunk.
pub struct CudaTrunk {
    steps: Vec<Step>,
    /// A one-element f16 tensor passed where no bias is pending (never read: `act = 0`).
    no_bias: Tensor,
}

fn launch_config(total: usize) -> LaunchConfig {
    let blocks = total.div_ceil(THREADS as usize).clamp(1, 1 << 20) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn i32_of(v: usize, what: &str) -> candle_core::Result<i32> {
    i32::try_from(v).map_err(|_| candle_core::Error::Msg(format!("{what} = {v} does not fit the kernel's int")))
}

/// Launch one of `trunk.cu`'s kernels, whose signature is `(const half* x, const half* bias, half* out,
/// int…)`, over `total` output elements; returns the output.
fn launch(
    dev: &CudaDevice,
    kernel: &str,
    x: &CudaView<'_, f16>,
    bias: &CudaView<'_, f16>,
    ints: &[i32],
    total: usize,
) -> candle_core::Result<CudaSlice<f16>> {
    // SAFETY: every element is written by the kernel (one grid-stride pass over `total`).
    let mut out = unsafe { dev.alloc::<f16>(total)? };
    let func = dev.get_or_load_custom_func(kernel, MODULE, PTX)?;
    let mut builder = func.builder();
    builder.arg(x);
    builder.arg(bias);
    builder.arg(&mut out);
    for i in ints {
        builder.arg(i);
    }
    // SAFETY: the callers pass the argument list of `kernel`'s signature; they checked that the views hold the
    // extents the kernel reads, and `out` holds `total` elements.
    unsafe { builder.launch(launch_config(total)) }.w()?;
    Ok(out)
}

/// The first `len` elements of a contiguous f16 operand.
fn contiguous_f16<'a>(
    s: &'a CudaStorage,
    l: &Layout,
    len: usize,
    what: &str,
) -> candle_core::Result<CudaView<'a, f16>> {
    if !l.is_contiguous() || l.shape().elem_count() < len {
        candle_core::bail!("{what}: a contiguous f16 tensor of at least {len} elements is required");
    }
    Ok(s.as_cuda_slice::<f16>()?
        .slice(l.start_offset()..l.start_offset() + len))
}

/// One of `trunk.cu`'s kernels as a candle op on an NHWC f16 map `n × h × w × c` (first operand), applying the
/// pending bias (second operand) and ReLU as it reads when `act`.
struct TrunkOp {
    kind: TrunkKernel,
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    act: bool,
}

#[derive(Clone, Copy)]
enum TrunkKernel {
    /// 3×3 im2col, padding 1, rows of `kp` values → `(n·h·w) × kp`.
    Im2Col { kp: usize },
    /// 2×2 max-pooling, stride 2 → `(n·h/2·w/2) × c`.
    MaxPool,
}

impl CustomOp2 for TrunkOp {
    fn name(&self) -> &'static str {
        match self.kind {
            TrunkKernel::Im2Col { .. } => "alnrisk-im2col3x3-nhwc",
            TrunkKernel::MaxPool => "alnrisk-maxpool2-nhwc",
        }
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("{} runs on CUDA only (the CPU path is deep::conv)", self.name())
    }

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        b: &CudaStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let input = self.n * self.h * self.w * self.c;
        i32_of(input, "input elements")?;
        let mut ints = vec![
            i32_of(self.n, "n")?,
            i32_of(self.h, "h")?,
            i32_of(self.w, "w")?,
            i32_of(self.c, "c")?,
        ];
        let (kernel, rows, cols) = match self.kind {
            TrunkKernel::Im2Col { kp } => {
                ints.push(i32_of(kp, "kp")?);
                ("alnrisk_im2col3x3_nhwc", self.n * self.h * self.w, kp)
            }
            TrunkKernel::MaxPool => {
                if !self.h.is_multiple_of(2) || !self.w.is_multiple_of(2) {
                    candle_core::bail!("max-pooling needs even sizes, got {}×{}", self.h, self.w);
                }
                ("alnrisk_maxpool2_nhwc", self.n * (self.h / 2) * (self.w / 2), self.c)
            }
        };
        ints.push(i32::from(self.act));
        i32_of(rows * cols, "output elements")?;
        let xs = contiguous_f16(x, xl, input, self.name())?;
        let bs = contiguous_f16(b, bl, if self.act { self.c } else { 1 }, "bias")?;
        let dev = x.device().clone();
        let out = launch(&dev, kernel, &xs, &bs, &ints, rows * cols)?;
        Ok((CudaStorage::wrap_cuda_slice(out, dev), Shape::from((rows, cols))))
    }
}

impl CudaTrunk {
    /// Pack the convolutions (`(C_out, C_in, 3, 3)` weights and biases, in layer order) for `plan`
    /// (`Some(c)`: a convolution, `None`: a pool) onto `device`.
    pub fn new(plan: &[Option<usize>], convs: &[(Tensor, Tensor)], device: &Device) -> Result<Self> {
        if !device.is_cuda() {
            return Err(Error::Compute("the NHWC trunk runs on CUDA only".into()));
        }
        if plan.last() != Some(&None) {
            return Err(Error::Compute(
                "the NHWC trunk needs a plan that ends with a pool".into(),
            ));
        }
        let mut convs = convs.iter();
        let mut steps = Vec::with_capacity(plan.len());
        for step in plan {
            steps.push(match step {
                Some(_) => {
                    let (w, b) = convs
                        .next()
                        .ok_or_else(|| Error::Compute("layer plan mismatch".into()))?;
                    let cpu = |t: &Tensor| t.to_dtype(DType::F32).and_then(|t| t.to_device(&Device::Cpu));
                    let packed = PackedConv::new(&cpu(w).map_err(ce)?, &cpu(b).map_err(ce)?)?;
                    let kp = padded_k(packed.cin());
                    let f16_on = |v: Vec<f32>, shape: (usize, usize)| {
                        Tensor::from_vec(v, shape, &Device::Cpu)
                            .and_then(|t| t.to_dtype(DType::F16))
                            .and_then(|t| t.to_device(device))
                    };
                    Step::Conv {
                        weight: f16_on(packed.padded_weight(kp), (kp, packed.cout())).map_err(ce)?,
                        bias: f16_on(packed.bias().to_vec(), (1, packed.cout()))
                            .and_then(|t| t.flatten_all())
                            .map_err(ce)?,
                        kp,
                    }
                }
                None => Step::Pool,
            });
        }
        let no_bias = Tensor::zeros(1, DType::F16, device).map_err(ce)?;
        Ok(CudaTrunk { steps, no_bias })
    }

    /// NCHW input `(N, 3, H, W)` → flattened pool5 `(N, C·h·w)` in PyTorch's (C, h, w) order, f32.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.run(x, &mut |_| Ok(()))
    }

    /// [`CudaTrunk::forward`], calling `after` with a label after each step (`input`, `conv 64→128 112×112`,
    /// `pool 112×112`, `output`) — for the per-layer profile of `benches/vgg.rs`, which synchronises there.
    pub fn run(&self, x: &Tensor, after: &mut dyn FnMut(String) -> Result<()>) -> Result<Tensor> {
        let (n, c0, h0, w0) = x.dims4().map_err(ce)?;
        // NHWC f16
        let mut a = x
            .to_dtype(DType::F16)
            .and_then(|t| t.permute((0, 2, 3, 1)))
            .and_then(|t| t.contiguous())
            .map_err(ce)?;
        after("input".into())?;
        let (mut h, mut w, mut c) = (h0, w0, c0);
        let mut pending: Option<&Tensor> = None;
        for step in &self.steps {
            match step {
                Step::Conv { weight, bias, kp } => {
                    let op = TrunkOp {
                        kind: TrunkKernel::Im2Col { kp: *kp },
                        n,
                        h,
                        w,
                        c,
                        act: pending.is_some(),
                    };
                    let col = a.apply_op2_no_bwd(pending.unwrap_or(&self.no_bias), &op).map_err(ce)?;
                    a = col.matmul(weight).map_err(ce)?;
                    after(format!("conv {c}→{} {h}×{w}", weight.dims()[1]))?;
                    c = weight.dims()[1];
                    pending = Some(bias);
                }
                Step::Pool => {
                    let op = TrunkOp {
                        kind: TrunkKernel::MaxPool,
                        n,
                        h,
                        w,
                        c,
                        act: pending.is_some(),
                    };
                    a = a.apply_op2_no_bwd(pending.unwrap_or(&self.no_bias), &op).map_err(ce)?;
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
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(ce)?;
        after("output".into())?;
        Ok(out)
    }
}
