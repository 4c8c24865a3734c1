//! The cuDNN convolution engine of the CUDA trunk (`cudnn` feature).
//!
//! candle's own cuDNN path (its `cudnn` feature) builds the descriptors, asks cuDNN's heuristics for an algorithm
//! and allocates a zeroed workspace on *every* call, in NCHW: 34.8 ms for VGG-16 at batch 1 on an H100 (README
//! "GPU"). Here, as PyTorch does with `torch.backends.cudnn.benchmark`, the descriptors of each convolution and
//! input shape are built once, the algorithm is *measured* once (`cudnnFindConvolutionForwardAlgorithm`: the
//! fastest that succeeds within a 256 MiB workspace), and one workspace is kept and grown. Tensors are NHWC f16
//! (filters KRSC, [`crate::deep::conv::PackedConv::krsc_weight`]), accumulation in f32
//! (`CUDNN_DATA_FLOAT` compute type: cuDNN's "pseudo-half" configuration, as PyTorch's fp16), tensor-core math.
//! With `fused`, `cudnnConvolutionBiasActivationForward` also applies the bias and ReLU; it runs the implicit
//! precomputed GEMM algorithm (the one cuDNN's documentation names for this call), which is not measured.
//!
//! cuDNN handles are not to be used by two threads at once, so the handle, descriptors and workspace live behind
//! one mutex; the handle runs on candle's stream for the device, so ordering with candle's own kernels is the
//! stream's.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Mutex;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::cudnn::result::CudnnError;
use candle_core::cuda_backend::cudarc::cudnn::{result, sys};
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView, DevicePtr, DevicePtrMut};
use candle_core::cuda_backend::{CudaDevice, CudaStorage};
use candle_core::{CpuStorage, CustomOp3, Device, Layout, Shape, Tensor};
use half::f16;

use super::kernels::{contiguous_f16, cuda_only};
use crate::error::{Error, Result};

/// The largest workspace an algorithm may ask for.
const WORKSPACE_LIMIT: usize = 256 << 20;

/// `v` as the C `int` cuDNN takes, or an error naming `what`.
fn i32_of(v: usize, what: &str) -> candle_core::Result<i32> {
    i32::try_from(v).map_err(|_| candle_core::Error::Msg(format!("{what} = {v} does not fit cuDNN's int")))
}

fn msg(what: &str, e: CudnnError) -> candle_core::Error {
    candle_core::Error::Msg(format!("cuDNN {what}: {e:?}"))
}

/// An owned cuDNN object: a newtype over its raw handle, destroyed once, when dropped, by `$destroy`.
macro_rules! owned {
    ($(#[$doc:meta])* $name:ident($raw:ty), $destroy:expr) => {
        $(#[$doc])*
        struct $name($raw);

        impl Drop for $name {
            fn drop(&mut self) {
                // SAFETY: `self.0` was created by the matching cuDNN create call and is destroyed only here.
                let _ = unsafe { $destroy(self.0) };
            }
        }
    };
}

owned!(
    /// A cuDNN handle.
    Handle(sys::cudnnHandle_t),
    result::destroy_handle
);
owned!(
    /// An NHWC f16 tensor descriptor.
    TensorDesc(sys::cudnnTensorDescriptor_t),
    result::destroy_tensor_descriptor
);
owned!(
    /// A KRSC (cuDNN "NHWC") f16 filter descriptor.
    FilterDesc(sys::cudnnFilterDescriptor_t),
    result::destroy_filter_descriptor
);
owned!(
    /// The 3×3, padding 1, stride 1 convolution: f32 accumulation, and a math type (tensor cores or not).
    ConvDesc(sys::cudnnConvolutionDescriptor_t),
    result::destroy_convolution_descriptor
);
owned!(
    /// ReLU, for the fused variant.
    ReluDesc(sys::cudnnActivationDescriptor_t),
    |d| sys::cudnnDestroyActivationDescriptor(d).result()
);

impl TensorDesc {
    /// `n × c × h × w` in cuDNN's dimension order, stored NHWC.
    fn nhwc_f16(n: i32, c: i32, h: i32, w: i32) -> std::result::Result<Self, CudnnError> {
        let d = TensorDesc(result::create_tensor_descriptor()?);
        // SAFETY: a descriptor just created.
        unsafe {
            result::set_tensor4d_descriptor(
                d.0,
                sys::cudnnTensorFormat_t::CUDNN_TENSOR_NHWC,
                sys::cudnnDataType_t::CUDNN_DATA_HALF,
                [n, c, h, w],
            )
        }?;
        Ok(d)
    }
}

impl FilterDesc {
    fn krsc_f16(k: i32, c: i32, r: i32, s: i32) -> std::result::Result<Self, CudnnError> {
        let d = FilterDesc(result::create_filter_descriptor()?);
        // SAFETY: a descriptor just created.
        unsafe {
            result::set_filter4d_descriptor(
                d.0,
                sys::cudnnDataType_t::CUDNN_DATA_HALF,
                sys::cudnnTensorFormat_t::CUDNN_TENSOR_NHWC,
                [k, c, r, s],
            )
        }?;
        Ok(d)
    }
}

impl ConvDesc {
    fn vgg3x3(math: sys::cudnnMathType_t) -> std::result::Result<Self, CudnnError> {
        let d = ConvDesc(result::create_convolution_descriptor()?);
        // SAFETY: a descriptor just created.
        unsafe {
            result::set_convolution2d_descriptor(
                d.0,
                1,
                1,
                1,
                1,
                1,
                1,
                sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
            )?;
            result::set_convolution_math_type(d.0, math)?;
        }
        Ok(d)
    }
}

impl ReluDesc {
    fn new() -> std::result::Result<Self, CudnnError> {
        let d = ReluDesc(result::create_activation_descriptor()?);
        // SAFETY: a descriptor just created.
        unsafe {
            result::set_activation_descriptor(
                d.0,
                sys::cudnnActivationMode_t::CUDNN_ACTIVATION_RELU,
                sys::cudnnNanPropagation_t::CUDNN_PROPAGATE_NAN,
                0.0,
            )
        }?;
        Ok(d)
    }
}

/// Which convolution of the trunk (0 = the first), on which input shape.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, PartialOrd, Ord)]
struct PlanKey {
    layer: usize,
    n: usize,
    h: usize,
    w: usize,
}

/// One convolution on one input shape: descriptors and the chosen algorithm.
struct LayerPlan {
    /// The convolution with the math type the algorithm was found with (as PyTorch does: `cudnnFind…` may
    /// answer with another math type than the one asked for, and the algorithm must run with its own).
    conv: ConvDesc,
    x: TensorDesc,
    y: TensorDesc,
    filter: FilterDesc,
    bias: TensorDesc,
    algo: sys::cudnnConvolutionFwdAlgo_t,
    math: sys::cudnnMathType_t,
    workspace: usize,
    /// What `cudnnFind…` measured for `algo` (NaN when not measured).
    found_ms: f32,
    cin: usize,
    cout: usize,
}

struct State {
    handle: Handle,
    /// The convolution as asked of `cudnnFind…`: tensor-core math.
    conv: ConvDesc,
    relu: ReluDesc,
    plans: HashMap<PlanKey, LayerPlan>,
    workspace: Option<CudaSlice<u8>>,
}

// SAFETY: cuDNN objects may be used from any thread as long as no two threads use a handle at the same time;
// `State` is only reached through `CudnnConvs::state`'s mutex, and the device's context is bound to the calling
// thread before every use.
unsafe impl Send for State {}

impl State {
    fn plan(&self, key: PlanKey, cin: usize, cout: usize, fused: bool) -> candle_core::Result<LayerPlan> {
        let e = |what: &'static str| move |err| msg(what, err);
        let (n, h, w) = (i32_of(key.n, "n")?, i32_of(key.h, "h")?, i32_of(key.w, "w")?);
        let (ci, co) = (i32_of(cin, "C_in")?, i32_of(cout, "C_out")?);
        let x = TensorDesc::nhwc_f16(n, ci, h, w).map_err(e("input descriptor"))?;
        let y = TensorDesc::nhwc_f16(n, co, h, w).map_err(e("output descriptor"))?;
        let filter = FilterDesc::krsc_f16(co, ci, 3, 3).map_err(e("filter descriptor"))?;
        let bias = TensorDesc::nhwc_f16(1, co, 1, 1).map_err(e("bias descriptor"))?;
        let tensor_ops = sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH;
        let (algo, math, found_ms) = if fused {
            (
                sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
                tensor_ops,
                f32::NAN,
            )
        } else {
            const ALGOS: usize = 8;
            let mut count: std::ffi::c_int = 0;
            // SAFETY: an all-zero perf struct is valid (algorithm 0, status SUCCESS); cuDNN overwrites `count`.
            let mut perf: [sys::cudnnConvolutionFwdAlgoPerf_t; ALGOS] = unsafe { std::mem::zeroed() };
            // SAFETY: live handle and descriptors; `perf` holds `ALGOS` entries.
            unsafe {
                sys::cudnnFindConvolutionForwardAlgorithm(
                    self.handle.0,
                    x.0,
                    filter.0,
                    self.conv.0,
                    y.0,
                    ALGOS as std::ffi::c_int,
                    &mut count,
                    perf.as_mut_ptr(),
                )
            }
            .result()
            .map_err(e("find algorithm"))?;
            let found = perf[..(count.max(0) as usize).min(ALGOS)]
                .iter()
                .find(|p| p.status == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS && p.memory <= WORKSPACE_LIMIT)
                .ok_or_else(|| {
                    candle_core::Error::Msg(format!(
                        "cuDNN: no algorithm for layer {} ({cin}→{cout}, {}×{}×{})",
                        key.layer, key.n, key.h, key.w
                    ))
                })?;
            (found.algo, found.mathType, found.time)
        };
        let conv = ConvDesc::vgg3x3(math).map_err(e("convolution descriptor"))?;
        // SAFETY: live handle and descriptors.
        let workspace =
            unsafe { result::get_convolution_forward_workspace_size(self.handle.0, x.0, filter.0, conv.0, y.0, algo) }
                .map_err(e("workspace size"))?;
        Ok(LayerPlan {
            conv,
            math,
            x,
            y,
            filter,
            bias,
            algo,
            workspace,
            found_ms,
            cin,
            cout,
        })
    }
}

/// The cuDNN engine: one handle, the plans per convolution and input shape, one workspace.
pub(super) struct CudnnConvs {
    fused: bool,
    dev: CudaDevice,
    state: Mutex<State>,
}

impl CudnnConvs {
    /// A handle on `device`'s stream (cuDNN must be loadable: it is linked with the `cudnn` feature).
    pub fn new(device: &Device, fused: bool) -> Result<Self> {
        let dev = device.as_cuda_device()?.clone();
        let stream = dev.cuda_stream();
        let err = |what: &str, e: CudnnError| Error::Device(format!("cuDNN {what}: {e:?}"));
        stream
            .context()
            .bind_to_thread()
            .map_err(|e| Error::Device(format!("CUDA context: {e:?}")))?;
        let handle = Handle(result::create_handle().map_err(|e| err("create handle", e))?);
        // SAFETY: a live handle and candle's live stream for this device.
        unsafe { result::set_stream(handle.0, stream.cu_stream() as *mut _) }.map_err(|e| err("set stream", e))?;
        let state = State {
            handle,
            conv: ConvDesc::vgg3x3(sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH)
                .map_err(|e| err("convolution descriptor", e))?,
            relu: ReluDesc::new().map_err(|e| err("activation descriptor", e))?,
            plans: HashMap::new(),
            workspace: None,
        };
        Ok(CudnnConvs {
            fused,
            dev,
            state: Mutex::new(state),
        })
    }

    /// Whether cuDNN applies the bias and ReLU itself.
    pub fn fused(&self) -> bool {
        self.fused
    }

    /// Convolution `layer` of the NHWC f16 map `a` (`n × h × w × cin` elements) with the KRSC `weight` →
    /// `(n·h·w) × cout`; with `fused`, bias and ReLU applied.
    pub fn forward(
        &self,
        layer: usize,
        a: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        (n, h, w, cin, cout): (usize, usize, usize, usize, usize),
    ) -> Result<Tensor> {
        let op = CudnnConvOp {
            convs: self,
            key: PlanKey { layer, n, h, w },
            cin,
            cout,
        };
        a.apply_op3_no_bwd(weight, bias, &op).map_err(Error::from)
    }

    /// One line per plan made so far: layer, shape, algorithm, measured time, workspace.
    pub fn describe(&self) -> Vec<String> {
        let Ok(state) = self.state.lock() else {
            return vec!["cuDNN state unavailable (a convolution panicked)".into()];
        };
        let mut keys: Vec<&PlanKey> = state.plans.keys().collect();
        keys.sort();
        keys.into_iter()
            .map(|k| {
                let p = &state.plans[k];
                format!(
                    "conv {} ({}→{}, {}×{}×{}): {:?} {:?}{}, workspace {} KiB",
                    k.layer,
                    p.cin,
                    p.cout,
                    k.n,
                    k.h,
                    k.w,
                    p.algo,
                    p.math,
                    if p.found_ms.is_nan() {
                        " (fused bias + ReLU)".to_string()
                    } else {
                        format!(" {:.3} ms when found", p.found_ms)
                    },
                    p.workspace / 1024
                )
            })
            .collect()
    }

    fn launch(
        &self,
        op: &CudnnConvOp<'_>,
        x: &CudaView<'_, f16>,
        w: &CudaView<'_, f16>,
        b: &CudaView<'_, f16>,
        y: &mut CudaSlice<f16>,
    ) -> candle_core::Result<()> {
        let stream = self.dev.cuda_stream();
        stream
            .context()
            .bind_to_thread()
            .map_err(|e| candle_core::Error::Msg(format!("CUDA context: {e:?}")))?;
        let mut guard = self
            .state
            .lock()
            .map_err(|_| candle_core::Error::Msg("cuDNN state poisoned by an earlier panic".into()))?;
        if !guard.plans.contains_key(&op.key) {
            let plan = guard.plan(op.key, op.cin, op.cout, self.fused)?;
            tracing::debug!(layer = op.key.layer, algo = ?plan.algo, ms = plan.found_ms, "cuDNN plan");
            guard.plans.insert(op.key, plan);
        }
        let State {
            handle,
            relu,
            plans,
            workspace,
            ..
        } = &mut *guard;
        let plan = plans
            .get(&op.key)
            .ok_or_else(|| candle_core::Error::Msg("cuDNN plan missing".into()))?;
        let need = plan.workspace.max(16);
        let ws = match workspace {
            Some(ws) if ws.len() >= need => ws,
            _ => workspace.insert(
                stream
                    .alloc_zeros::<u8>(need)
                    .map_err(|e| candle_core::Error::Msg(format!("{e:?}")))?,
            ),
        };
        let (xp, _rx) = x.device_ptr(&stream);
        let (wp, _rw) = w.device_ptr(&stream);
        let (bp, _rb) = b.device_ptr(&stream);
        let (yp, _ry) = y.device_ptr_mut(&stream);
        let (wsp, _rws) = ws.device_ptr_mut(&stream);
        let (one, zero) = (1f32, 0f32);
        let (one, zero) = (
            &one as *const f32 as *const c_void,
            &zero as *const f32 as *const c_void,
        );
        // SAFETY: the descriptors describe exactly these buffers (the op checked their extents: x n·h·w·cin,
        // w cout·9·cin, b cout, y n·h·w·cout, all f16 NHWC/KRSC); the workspace holds at least `plan.workspace`
        // bytes; everything is ordered on the handle's stream, which is candle's.
        unsafe {
            if self.fused {
                result::convolution_bias_activation_forward(
                    handle.0,
                    one,
                    plan.x.0,
                    xp as *const c_void,
                    plan.filter.0,
                    wp as *const c_void,
                    plan.conv.0,
                    plan.algo,
                    wsp as *mut c_void,
                    plan.workspace,
                    zero,
                    plan.y.0,
                    yp as *const c_void,
                    plan.bias.0,
                    bp as *const c_void,
                    relu.0,
                    plan.y.0,
                    yp as *mut c_void,
                )
            } else {
                result::convolution_forward(
                    handle.0,
                    one,
                    plan.x.0,
                    xp as *const c_void,
                    plan.filter.0,
                    wp as *const c_void,
                    plan.conv.0,
                    plan.algo,
                    wsp as *mut c_void,
                    plan.workspace,
                    zero,
                    plan.y.0,
                    yp as *mut c_void,
                )
            }
        }
        .map_err(|e| msg(&format!("convolution {} ({:?})", op.key.layer, plan.algo), e))
    }
}

/// One cuDNN convolution as a candle op: (NHWC input, KRSC kernel, bias) → `(n·h·w) × cout`.
struct CudnnConvOp<'a> {
    convs: &'a CudnnConvs,
    key: PlanKey,
    cin: usize,
    cout: usize,
}

impl CustomOp3 for CudnnConvOp<'_> {
    fn name(&self) -> &'static str {
        "alnrisk-cudnn-conv3x3-nhwc"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
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
        w: &CudaStorage,
        wl: &Layout,
        b: &CudaStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let PlanKey { n, h, w: width, .. } = self.key;
        let (pixels, cin, cout) = (n * h * width, self.cin, self.cout);
        i32_of(pixels * cin.max(cout), "elements")?;
        let xs = contiguous_f16(x, xl, pixels * cin, "convolution input")?;
        let ws = contiguous_f16(w, wl, cout * 9 * cin, "kernel")?;
        let bs = contiguous_f16(b, bl, cout, "bias")?;
        let dev = x.device().clone();
        let mut y = if self.convs.fused {
            // The fused call's `z` input is `y` itself, scaled by alpha2 = 0. cuDNN promises not to read an output
            // whose beta is 0, but says nothing of the kind for `z`, and 0 × a stale NaN is NaN: start from zeros.
            dev.alloc_zeros::<f16>(pixels * cout)?
        } else {
            // SAFETY: cuDNN writes every output element and, with beta = 0, does not read it first.
            unsafe { dev.alloc::<f16>(pixels * cout)? }
        };
        self.convs.launch(self, &xs, &ws, &bs, &mut y)?;
        Ok((CudaStorage::wrap_cuda_slice(y, dev), Shape::from((pixels, cout))))
    }
}
