#!/usr/bin/env bash
# On the GPU machine (device tool, repository root, .gpu/ carried): issue 4's GPU checks in one run.
#   1. tests/deep_cuda.rs — each NHWC trunk (im2col, cuDNN, cuDNN fused) against PyTorch's fixture, candle's
#      convolution and the CPU;
#   2. the VGG bench with every CUDA trunk (batch 1 and 16, f32 and Q8_0 dense layers), fc7 agreement, the
#      per-step profile at batch 1 and cuDNN's algorithm choices;
#   3. the daemon end to end on the GPU (bench-e2e, short) with the trunk E2E_TRUNK (default cudnn).
# When the cuDNN build cannot start there (no libcudnn.so.9), the build without cuDNN runs instead (candle and
# nhwc trunks; E2E_TRUNK default nhwc). Each step has a timeout (550 s in all, under the device tool's 600 s per
# call). Prints everything; the numbers go into the issue note with the card's name (printed by run-on-gpu.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
echo "== binaries built from commit $(cat .gpu/COMMIT 2>/dev/null || echo unknown)"
for f in .gpu/*.xz; do xz -dkf "$f"; done
chmod +x .gpu/alnrisk* .gpu/deep_cuda* .gpu/vgg*
sfx="" e2e=${E2E_TRUNK:-cudnn}
if ! bash .gpu/run-on-gpu.sh .gpu/deep_cuda --list >/dev/null 2>&1; then
  echo "== the cuDNN build does not start here (libcudnn.so.9 missing?): running the build without cuDNN"
  sfx="-nocudnn" e2e=${E2E_TRUNK:-nhwc}
fi
echo "== deep_cuda$sfx"
timeout 150 bash .gpu/run-on-gpu.sh ".gpu/deep_cuda$sfx" --nocapture --test-threads=1
echo "== bench vgg$sfx --cuda"
timeout 280 bash .gpu/run-on-gpu.sh ".gpu/vgg$sfx" --cuda
echo "== bench-e2e, $e2e trunk"
ALNRISK_CUDA_TRUNK=$e2e timeout 120 bash .gpu/run-on-gpu.sh ".gpu/alnrisk$sfx" bench-e2e --device cuda \
  --replays 10 --queue 10 --quiet-period 0.2 || true
