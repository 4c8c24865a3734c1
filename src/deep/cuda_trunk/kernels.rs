//! Our CUDA kernels (`kernels.cu`, compiled to PTX by `build.rs`) as candle ops on NHWC f16 maps: the 3×3 im2col,
//! the 2×2 max-pool and the bias + ReLU pass, each applying a pending bias + ReLU as it reads.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaDevice, CudaStorage, WrapErr};
use candle_core::{CpuStorage, CustomOp2, Layout, Shape};
use half::f16;

use crate::deep::conv::eight_channel_kernels;

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/trunk.ptx"));
const MODULE: &str = "alnrisk_trunk";
const THREADS: u32 = 256;

fn launch_config(total: usize) -> LaunchConfig {
    let blocks = total.div_ceil(THREADS as usize).clamp(1, 1 << 20) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// `v` as the C `int` a kernel or cuDNN takes, or an error naming `what`.
pub(super) fn i32_of(v: usize, what: &str) -> candle_core::Result<i32> {
    i32::try_from(v).map_err(|_| candle_core::Error::Msg(format!("{what} = {v} does not fit the kernel's int")))
}

/// Launch one of `kernels.cu`'s kernels, whose signature is `(const half* x, const half* bias, half* out,
/// int…)`, writing `total` output elements with `threads` work items (`total`, or `total / 8` for the `_c8`
/// variants); returns the output.
fn launch(
    dev: &CudaDevice,
    kernel: &str,
    x: &CudaView<'_, f16>,
    bias: &CudaView<'_, f16>,
    ints: &[i32],
    (total, threads): (usize, usize),
) -> candle_core::Result<CudaSlice<f16>> {
    // SAFETY: every element is written by the kernel (one grid-stride pass over its work items).
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
    unsafe { builder.launch(launch_config(threads)) }.w()?;
    Ok(out)
}

/// The error of a trunk op asked to run on the CPU.
pub(super) fn cuda_only(op: &str) -> candle_core::Result<(CpuStorage, Shape)> {
    candle_core::bail!("{op} runs on CUDA only (the CPU path is deep::conv)")
}

/// The first `len` elements of a contiguous f16 operand.
pub(super) fn contiguous_f16<'a>(
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

/// One of `kernels.cu`'s kernels as a candle op on an NHWC f16 map `n × h × w × c` (first operand), applying the
/// pending bias (second operand) and ReLU as it reads when `act`.
pub(super) struct TrunkOp {
    pub kind: TrunkKernel,
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub act: bool,
}

#[derive(Clone, Copy)]
pub(super) enum TrunkKernel {
    /// 3×3 im2col, padding 1, rows of `kp` values → `(n·h·w) × kp`.
    Im2Col { kp: usize },
    /// 2×2 max-pooling, stride 2 → `(n·h/2·w/2) × c`.
    MaxPool,
    /// `max(x + b, 0)` → `(n·h·w) × c` (the cuDNN engine's pass between two convolutions).
    #[cfg_attr(not(feature = "cudnn"), allow(dead_code))]
    BiasRelu,
}

impl CustomOp2 for TrunkOp {
    fn name(&self) -> &'static str {
        match self.kind {
            TrunkKernel::Im2Col { .. } => "alnrisk-im2col3x3-nhwc",
            TrunkKernel::MaxPool => "alnrisk-maxpool2-nhwc",
            TrunkKernel::BiasRelu => "alnrisk-bias-relu-nhwc",
        }
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        cuda_only(self.name())
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
        // 8 channels per thread when the map allows it and the input view starts 16-byte aligned (the output is
        // a fresh allocation)
        let c8 = eight_channel_kernels(self.c) && xl.start_offset().is_multiple_of(8);
        let (kernel, rows, cols) = match (self.kind, c8) {
            (TrunkKernel::Im2Col { kp }, _) => {
                ints.push(i32_of(kp, "kp")?);
                let name = if c8 && kp == 9 * self.c {
                    "alnrisk_im2col3x3_nhwc_c8"
                } else {
                    "alnrisk_im2col3x3_nhwc"
                };
                (name, self.n * self.h * self.w, kp)
            }
            (TrunkKernel::MaxPool, _) if !self.h.is_multiple_of(2) || !self.w.is_multiple_of(2) => {
                candle_core::bail!("max-pooling needs even sizes, got {}×{}", self.h, self.w);
            }
            (TrunkKernel::MaxPool, true) => ("alnrisk_maxpool2_nhwc_c8", self.n * (self.h / 2) * (self.w / 2), self.c),
            (TrunkKernel::MaxPool, false) => ("alnrisk_maxpool2_nhwc", self.n * (self.h / 2) * (self.w / 2), self.c),
            (TrunkKernel::BiasRelu, true) => ("alnrisk_bias_relu_nhwc_c8", self.n * self.h * self.w, self.c),
            (TrunkKernel::BiasRelu, false) => ("alnrisk_bias_relu_nhwc", self.n * self.h * self.w, self.c),
        };
        let threads = if kernel.ends_with("_c8") {
            rows * cols / 8
        } else {
            rows * cols
        };
        ints.push(i32::from(self.act));
        i32_of(rows * cols, "output elements")?;
        let xs = contiguous_f16(x, xl, input, self.name())?;
        let bs = contiguous_f16(b, bl, if self.act { self.c } else { 1 }, "bias")?;
        let dev = x.device().clone();
        let out = launch(&dev, kernel, &xs, &bs, &ints, (rows * cols, threads))?;
        Ok((CudaStorage::wrap_cuda_slice(out, dev), Shape::from((rows, cols))))
    }
}
