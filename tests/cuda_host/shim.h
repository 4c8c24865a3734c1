// Host emulation of the few CUDA names `src/deep/cuda_trunk/kernels.cu` uses, so its kernels compile as C++ and run on the CPU
// as one thread (grid-stride loops with gridDim = blockDim = 1). `__half` is a float here: the test checks the
// index arithmetic, the padding and the fused bias + ReLU, not f16 rounding (the GPU parity test does that).
#pragma once
#include <cmath>

#define ALNRISK_HOST_EMULATION 1
#define __global__
#define __device__
#define __forceinline__ inline

typedef float __half;
static inline float __half2float(__half h) { return h; }
static inline __half __float2half(float f) { return f; }

struct alnrisk_dim3 {
    unsigned x, y, z;
};
static const alnrisk_dim3 blockIdx = {0, 0, 0};
static const alnrisk_dim3 threadIdx = {0, 0, 0};
static const alnrisk_dim3 blockDim = {1, 1, 1};
static const alnrisk_dim3 gridDim = {1, 1, 1};
