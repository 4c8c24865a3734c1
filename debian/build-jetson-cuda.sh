#!/usr/bin/env bash
# The Jetson package with CUDA, cross-built on an x86-64 Debian 12 machine without a GPU:
#   bash debian/build-jetson-cuda.sh            # -> target/debian/alnrisk-jetson-cuda.deb
# .ci/run runs it, then tests/serve/package.rs (the package) and tests/serve/aarch64.rs (the binary under qemu).
# Needs root for apt-get, as .ci/run. README "Jetson" says where this stands; nothing here has run on an Orin.
#
# What the build needs, and where each part comes from (Debian's and PyPI's registries only):
# - nvcc, to compile candle's and our kernels: Debian's nvidia-cuda-toolkit 11.8 (non-free). Its PTX for
#   compute_87 has PTX ISA 7.8, which JetPack 6's CUDA 12.x driver compiles at load. The CUDA 13 toolchain of the
#   H100 runs (../shared/gpu) writes PTX ISA 9.0, which that driver refuses, and PyPI's CUDA 12 nvcc wheel
#   carries ptxas but no nvcc.
# - nvcc's host compiler for the aarch64 side of candle's statically linked kernels (libmoe.a):
#   g++-aarch64-linux-gnu, passed as NVCC_CCBIN (nvcc 11.8 does not know gcc 12; cudaforge adds
#   -allow-unsupported-compiler with it).
# - aarch64 CUDA 12.6 libraries to link against (cudarc links them dynamically): cuBLAS, cuBLASLt, cuRAND, NVRTC
#   and the runtime from PyPI's manylinux2014_aarch64 wheels, and libcuda from Debian's libcuda1:arm64 (a driver
#   library, used only for the link). On the Jetson the binary loads JetPack's own (the package depends on them).
# - CUDARC_CUDA_VERSION=12060: cudarc's bindings for CUDA 12.6, JetPack 6.1/6.2's.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
apt_install() { apt-get install -y "$@" || { apt-get update && apt-get install -y "$@"; }; }

# Debian's contrib and non-free components (nvidia-cuda-toolkit, libcuda1), on the sources already configured.
if ! apt-cache policy nvidia-cuda-toolkit 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  sed 's/^Components: main$/Components: contrib non-free/' /etc/apt/sources.list.d/debian.sources \
    > /etc/apt/sources.list.d/debian-nonfree.sources
  apt-get update -qq
fi
command -v nvcc >/dev/null 2>&1 || apt_install --no-install-recommends nvidia-cuda-toolkit
command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 || apt_install g++-aarch64-linux-gnu
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || apt_install gcc-aarch64-linux-gnu libc6-dev-arm64-cross
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked --version 3.8.0

# The link-time libraries, under CUDA_PATH/lib (cudarc's build script adds CUDA_PATH/lib to the link search).
cuda_aarch64=${ALNRISK_CUDA_AARCH64:-$PWD/target/cuda-aarch64}
if [[ ! -e $cuda_aarch64/lib/libcuda.so ]]; then
  work=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux2014_aarch64 \
    --python-version 3.11 --dest "$work/wheels" 'nvidia-cublas-cu12==12.6.3.3' 'nvidia-curand-cu12==10.3.7.77' \
    'nvidia-cuda-nvrtc-cu12==12.6.85' 'nvidia-cuda-runtime-cu12==12.6.77'
  for w in "$work"/wheels/*.whl; do python3 -m zipfile -e "$w" "$work/x"; done
  dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64 && apt-get update -qq; }
  (cd "$work" && chmod 777 . && apt-get download -q libcuda1:arm64)
  dpkg-deb -x "$work"/libcuda1_*_arm64.deb "$work/x"
  mkdir -p "$cuda_aarch64/lib"
  for f in "$work"/x/nvidia/cublas/lib/libcublas.so.12 "$work"/x/nvidia/cublas/lib/libcublasLt.so.12 \
    "$work"/x/nvidia/curand/lib/libcurand.so.10 "$work"/x/nvidia/cuda_nvrtc/lib/libnvrtc.so.12 \
    "$work"/x/nvidia/cuda_runtime/lib/libcudart.so.12; do
    cp "$f" "$cuda_aarch64/lib/"
    b=$(basename "$f")
    ln -sf "$b" "$cuda_aarch64/lib/${b%%.so*}.so"
  done
  real=$(find "$work/x/usr/lib/aarch64-linux-gnu" -type f -name 'libcuda.so.*' | head -n1)
  cp "$real" "$cuda_aarch64/lib/"
  ln -sf "$(basename "$real")" "$cuda_aarch64/lib/libcuda.so.1"
  ln -sf libcuda.so.1 "$cuda_aarch64/lib/libcuda.so"
  rm -rf "$work"
fi

export CUDA_HOME=/usr NVCC=/usr/bin/nvcc CUDA_PATH=$cuda_aarch64 CUDA_COMPUTE_CAP=87 CUDARC_CUDA_VERSION=12060
export NVCC_CCBIN=aarch64-linux-gnu-g++ CUDAFORGE_THREADS=$(nproc)
start=$(date +%s)
cargo build --release --no-default-features --features cuda --target aarch64-unknown-linux-gnu
echo "aarch64 CUDA build: $(( $(date +%s) - start )) s, $(stat -c %s target/aarch64-unknown-linux-gnu/release/alnrisk) bytes"
# keep the CUDA binary beside the CPU one (the same path is the CPU appliance's)
mkdir -p target/jetson-cuda
cp target/aarch64-unknown-linux-gnu/release/alnrisk target/jetson-cuda/alnrisk
cargo deb --target aarch64-unknown-linux-gnu --variant jetson-cuda --no-build -o target/debian/alnrisk-jetson-cuda.deb
echo "Jetson CUDA package: $(stat -c %s target/debian/alnrisk-jetson-cuda.deb) bytes"
