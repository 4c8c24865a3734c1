// CUDA kernels of the NHWC f16 VGG trunk (`src/deep/cuda_trunk/`).
//
// Activations are NHWC, f16. A 3×3 convolution (padding 1) is `im2col` into a `(N·H·W) × Kp` matrix whose
// column `k = (ky·3 + kx)·C + c` holds input channel `c` at offset `(ky − 1, kx − 1)` (the order of the CPU
// path's packed kernels, `src/deep/conv.rs`), zero beyond `9·C` up to `Kp` (a multiple of 8 for the tensor
// cores) and outside the image, then one cuBLAS product with the packed `Kp × C_out` kernel. The bias and ReLU
// of a convolution are not a kernel of their own: its consumer — the next `im2col` or the max-pool — applies
// `max(v + b[c], 0)` as it reads (`act = 1`). Padding stays 0 because it is the padding of the activated map.
// For max-pooling that is exact: `max_i relu(v_i + b) = relu(max_i v_i + b)`. When cuDNN computes the
// convolutions (`cudnn` feature), a convolution cannot apply its input's pending bias, so `bias_relu` does it as
// a pass of its own — only between two convolutions; before a pool the pool still applies it.
//
// The kernels are grid-stride loops with 32-bit indices (the host checks the sizes), so they also run, one
// "thread", when compiled as C++ with `tests/cuda_host/shim.h` (`tests/cuda_kernels_host.rs`).

#ifndef ALNRISK_HOST_EMULATION
#include <cuda_fp16.h>
#endif

__device__ __forceinline__ float alnrisk_act(__half v, const __half* bias, int c, int act) {
    float f = __half2float(v);
    if (act) {
        f = fmaxf(f + __half2float(bias[c]), 0.0f);
    }
    return f;
}

// x: N×H×W×C; bias: C (read only when act); col: (N·H·W)×Kp.
extern "C" __global__ void alnrisk_im2col3x3_nhwc(const __half* x, const __half* bias, __half* col, int n, int h,
                                                  int w, int c, int kp, int act) {
    const unsigned total = (unsigned)n * (unsigned)h * (unsigned)w * (unsigned)kp;
    const unsigned k9 = 9u * (unsigned)c;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += blockDim.x * gridDim.x) {
        const unsigned k = i % (unsigned)kp;
        const unsigned p = i / (unsigned)kp;  // output pixel: (b·H + y)·W + x
        float v = 0.0f;
        if (k < k9) {
            const unsigned t = k / (unsigned)c;
            const unsigned ch = k - t * (unsigned)c;
            const int xx = (int)(p % (unsigned)w);
            const unsigned by = p / (unsigned)w;  // b·H + y
            const int y = (int)(by % (unsigned)h);
            const int sy = y + (int)(t / 3u) - 1;
            const int sx = xx + (int)(t % 3u) - 1;
            if (sy >= 0 && sy < h && sx >= 0 && sx < w) {
                // (b·H + sy)·W + sx = (by + sy − y)·W + sx
                const unsigned src = ((by + (unsigned)(sy - y)) * (unsigned)w + (unsigned)sx) * (unsigned)c + ch;
                v = alnrisk_act(x[src], bias, (int)ch, act);
            }
        }
        col[i] = __float2half(v);
    }
}

// 2×2 max-pooling, stride 2. x: N×H×W×C (H, W even); y: N×(H/2)×(W/2)×C.
extern "C" __global__ void alnrisk_maxpool2_nhwc(const __half* x, const __half* bias, __half* y, int n, int h, int w,
                                                 int c, int act) {
    const unsigned ho = (unsigned)h / 2u, wo = (unsigned)w / 2u;
    const unsigned total = (unsigned)n * ho * wo * (unsigned)c;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += blockDim.x * gridDim.x) {
        const unsigned ch = i % (unsigned)c;
        const unsigned p = i / (unsigned)c;  // (b·Ho + yo)·Wo + xo
        const unsigned xo = p % wo;
        const unsigned byo = p / wo;  // b·Ho + yo
        // input row 2·yo of image b: (b·H + 2·yo) = 2·(b·Ho + yo) since H = 2·Ho
        const unsigned base = ((2u * byo) * (unsigned)w + 2u * xo) * (unsigned)c + ch;
        const unsigned row = (unsigned)w * (unsigned)c;
        float m = fmaxf(fmaxf(__half2float(x[base]), __half2float(x[base + (unsigned)c])),
                        fmaxf(__half2float(x[base + row]), __half2float(x[base + row + (unsigned)c])));
        if (act) {
            m = fmaxf(m + __half2float(bias[ch]), 0.0f);
        }
        y[i] = __float2half(m);
    }
}

// y = max(x + b[c], 0) over an NHWC map (any N·H·W, C channels); a copy when act = 0.
extern "C" __global__ void alnrisk_bias_relu_nhwc(const __half* x, const __half* bias, __half* y, int n, int h, int w,
                                                  int c, int act) {
    const unsigned total = (unsigned)n * (unsigned)h * (unsigned)w * (unsigned)c;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += blockDim.x * gridDim.x) {
        y[i] = __float2half(alnrisk_act(x[i], bias, (int)(i % (unsigned)c), act));
    }
}
