//! Our CUDA kernels (`kernels.cu`, compiled to PTX by `build.rs`) as candle ops on NHWC f16 maps: the 3×3 im2col,
//! the 2×2 max-pool and the bias + ReLU pass, each applying a pending bias + ReLU as it reads. Which kernel and
//! which arguments is decided by [`crate::deep::trunk_launch`] (built and tested without a GPU); this file
//! carries the launches out.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaDevice, CudaStorage, WrapErr};
use candle_core::{CpuStorage, CustomOp2, Layout, Shape};
use half::f16;

use crate::deep::trunk_launch::KernelLaunch;
pub(super) use crate::deep::trunk_launch::TrunkKernel;

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

/// Carry out `plan` (`kernels.cu`'s signature `(const half* x, const half* bias, half* out, int…)`); returns
/// the output.
fn launch(
    dev: &CudaDevice,
    plan: &KernelLaunch,
    x: &CudaView<'_, f16>,
    bias: &CudaView<'_, f16>,
) -> candle_core::Result<CudaSlice<f16>> {
    // SAFETY: every element is written by the kernel (one grid-stride pass over its work items).
    let mut out = unsafe { dev.alloc::<f16>(plan.rows * plan.cols)? };
    let func = dev.get_or_load_custom_func(plan.kernel, MODULE, PTX)?;
    let mut builder = func.builder();
    builder.arg(x);
    builder.arg(bias);
    builder.arg(&mut out);
    for i in &plan.ints {
        builder.arg(i);
    }
    // SAFETY: `plan` carries the argument list of its kernel's signature (checked on the kernels' C++ build by
    // tests/cuda_kernels_host.rs); the caller checked that the views hold the extents the kernel reads, and
    // `out` holds `rows · cols` elements.
    unsafe { builder.launch(launch_config(plan.threads)) }.w()?;
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
/// pending bias (second operand) and ReLU as it reads when `act`; which variant and which arguments is
/// [`TrunkKernel::launch`]'s choice.
pub(super) struct TrunkOp {
    pub kind: TrunkKernel,
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub act: bool,
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
        let map = (self.n, self.h, self.w, self.c);
        let plan = self
            .kind
            .launch(map, self.act, xl.start_offset())
            .map_err(candle_core::Error::Msg)?;
        let xs = contiguous_f16(x, xl, self.n * self.h * self.w * self.c, self.name())?;
        let bs = contiguous_f16(b, bl, if plan.applies_bias() { self.c } else { 1 }, "bias")?;
        let dev = x.device().clone();
        let out = launch(&dev, &plan, &xs, &bs)?;
        Ok((
            CudaStorage::wrap_cuda_slice(out, dev),
            Shape::from((plan.rows, plan.cols)),
        ))
    }
}
