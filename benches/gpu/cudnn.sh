#!/usr/bin/env bash
# On the build machine: add cuDNN 9 (PyPI wheel nvidia-cudnn-cu13) to the CUDA toolchain of
# ../shared/gpu/cuda-toolchain.sh, so that `--features cudnn` links (-lcudnn). Idempotent; needs that toolchain.
# At run time the GPU machine's own libcudnn.so.9 is used (run-on-gpu.sh finds it; JetPack ships one).
#   bash benches/gpu/cudnn.sh
set -euo pipefail
CUDA_VENV=${CUDA_VENV:-$HOME/.cache/cuda13-pip}
[[ -x $CUDA_VENV/bin/python ]] || { echo "cudnn.sh: run ../shared/gpu/cuda-toolchain.sh first" >&2; exit 1; }
site=$("$CUDA_VENV/bin/python" -c 'import sysconfig;print(sysconfig.get_paths()["purelib"])')
lib=$site/nvidia/cudnn/lib/libcudnn.so.9
[[ -e $lib ]] || "$CUDA_VENV/bin/pip" install -q --disable-pip-version-check 'nvidia-cudnn-cu13==9.28.1.4'
mkdir -p "$site/nvidia/cu13/lib/stubs"
ln -sf "$lib" "$site/nvidia/cu13/lib/stubs/libcudnn.so"   # the link-time name; cudarc's build adds lib/stubs
echo "cuDNN ready: $lib"
