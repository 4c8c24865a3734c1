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
//
// Every kernel has a `_c8` variant for C % 8 == 0 (every VGG-16 layer but the first): one thread moves 8
// consecutive channels with one 16-byte load and store, so a layer needs 8× fewer threads and index divisions.
// For im2col, C % 8 == 0 makes 9·C a multiple of 8, so Kp = 9·C and a row has no padding columns.

#ifndef ALNRISK_HOST_EMULATION
#include <cuda_fp16.h>
#endif

// 8 consecutive f16 values: one 16-byte access on the GPU, a plain copy when emulated on the host (where __half
// is a float). Callers guarantee 16-byte alignment: the pointers are allocations' starts plus multiples of 8.
#ifndef ALNRISK_HOST_EMULATION
struct alnrisk_h8 {
    uint4 u;
    __device__ __forceinline__ __half* lanes() { return reinterpret_cast<__half*>(&u); }
};
__device__ __forceinline__ alnrisk_h8 alnrisk_load8(const __half* p) {
    alnrisk_h8 r;
    r.u = *reinterpret_cast<const uint4*>(p);
    return r;
}
__device__ __forceinline__ void alnrisk_store8(__half* p, alnrisk_h8 r) { *reinterpret_cast<uint4*>(p) = r.u; }
#else
struct alnrisk_h8 {
    __half v[8];
    __half* lanes() { return v; }
};
static inline alnrisk_h8 alnrisk_load8(const __half* p) {
    alnrisk_h8 r;
    for (int j = 0; j < 8; ++j) r.v[j] = p[j];
    return r;
}
static inline void alnrisk_store8(__half* p, alnrisk_h8 r) {
    for (int j = 0; j < 8; ++j) p[j] = r.v[j];
}
#endif

// Apply the pending bias of channels c0…c0+7 and ReLU to 8 lanes (when act).
__device__ __forceinline__ void alnrisk_act8(alnrisk_h8& r, const __half* bias, unsigned c0, int act) {
    if (act) {
        __half* l = r.lanes();
        for (int j = 0; j < 8; ++j) {
            l[j] = __float2half(fmaxf(__half2float(l[j]) + __half2float(bias[c0 + j]), 0.0f));
        }
    }
}

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

// alnrisk_im2col3x3_nhwc for C % 8 == 0 (Kp = 9·C): one thread per 8 columns of a row.
extern "C" __global__ void alnrisk_im2col3x3_nhwc_c8(const __half* x, const __half* bias, __half* col, int n, int h,
                                                     int w, int c, int kp, int act) {
    const unsigned k8s = (unsigned)kp / 8u;  // 8-column groups per row
    const unsigned total = (unsigned)n * (unsigned)h * (unsigned)w * k8s;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += blockDim.x * gridDim.x) {
        const unsigned k = (i % k8s) * 8u;
        const unsigned p = i / k8s;  // output pixel: (b·H + y)·W + x
        const unsigned t = k / (unsigned)c;
        const unsigned ch = k - t * (unsigned)c;  // a multiple of 8
        const int xx = (int)(p % (unsigned)w);
        const unsigned by = p / (unsigned)w;  // b·H + y
        const int y = (int)(by % (unsigned)h);
        const int sy = y + (int)(t / 3u) - 1;
        const int sx = xx + (int)(t % 3u) - 1;
        alnrisk_h8 v;
        if (sy >= 0 && sy < h && sx >= 0 && sx < w) {
            v = alnrisk_load8(x + ((by + (unsigned)(sy - y)) * (unsigned)w + (unsigned)sx) * (unsigned)c + ch);
            alnrisk_act8(v, bias, ch, act);
        } else {
            __half* l = v.lanes();
            for (int j = 0; j < 8; ++j) l[j] = __float2half(0.0f);
        }
        alnrisk_store8(col + p * (unsigned)kp + k, v);
    }
}

// alnrisk_maxpool2_nhwc for C % 8 == 0: one thread per 8 channels of an output pixel.
extern "C" __global__ void alnrisk_maxpool2_nhwc_c8(const __half* x, const __half* bias, __half* y, int n, int h,
                                                    int w, int c, int act) {
    const unsigned ho = (unsigned)h / 2u, wo = (unsigned)w / 2u, c8s = (unsigned)c / 8u;
    const unsigned total = (unsigned)n * ho * wo * c8s;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += blockDim.x * gridDim.x) {
        const unsigned ch = (i % c8s) * 8u;
        const unsigned p = i / c8s;  // (b·Ho + yo)·Wo + xo
        const unsigned xo = p % wo;
        const unsigned byo = p / wo;  // b·Ho + yo
        const unsigned base = ((2u * byo) * (unsigned)w + 2u * xo) * (unsigned)c + ch;
        const unsigned row = (unsigned)w * (unsigned)c;
        alnrisk_h8 a = alnrisk_load8(x + base), b = alnrisk_load8(x + base + (unsigned)c),
                   d = alnrisk_load8(x + base + row), e = alnrisk_load8(x + base + row + (unsigned)c);
        __half *la = a.lanes(), *lb = b.lanes(), *ld = d.lanes(), *le = e.lanes();
        for (int j = 0; j < 8; ++j) {
            la[j] = __float2half(fmaxf(fmaxf(__half2float(la[j]), __half2float(lb[j])),
                                       fmaxf(__half2float(ld[j]), __half2float(le[j]))));
        }
        alnrisk_act8(a, bias, ch, act);
        alnrisk_store8(y + p * (unsigned)c + ch, a);
    }
}

// alnrisk_bias_relu_nhwc for C % 8 == 0.
extern "C" __global__ void alnrisk_bias_relu_nhwc_c8(const __half* x, const __half* bias, __half* y, int n, int h,
                                                     int w, int c, int act) {
    const unsigned total = (unsigned)n * (unsigned)h * (unsigned)w * (unsigned)c / 8u;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += blockDim.x * gridDim.x) {
        alnrisk_h8 v = alnrisk_load8(x + 8u * i);
        alnrisk_act8(v, bias, (8u * i) % (unsigned)c, act);
        alnrisk_store8(y + 8u * i, v);
    }
}
