#!/usr/bin/env bash
# On the GPU machine (device tool, repository root, .gpu/ carried): issue 4's GPU checks in one run.
#   1. tests/deep_cuda.rs — each NHWC trunk (im2col, cuDNN, cuDNN fused) against PyTorch's fixture, candle's
#      convolution and the CPU;
#   2. the VGG bench with every CUDA trunk (batch 1 and 16, f32 and Q8_0 dense layers), fc7 agreement, the
#      per-step profile at batch 1 and cuDNN's algorithm choices;
#   3. the daemon end to end on the GPU (bench-e2e, short) with the trunk E2E_TRUNK (default cudnn).
# Each step has a timeout (550 s in all, under the device tool's 600 s per call). Prints everything; the numbers
# go into the issue note with the card's name (printed by run-on-gpu.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
for f in .gpu/*.xz; do xz -dkf "$f"; done
chmod +x .gpu/alnrisk .gpu/deep_cuda .gpu/vgg
echo "== deep_cuda"
timeout 150 bash .gpu/run-on-gpu.sh .gpu/deep_cuda --nocapture --test-threads=1
echo "== bench vgg --cuda"
timeout 280 bash .gpu/run-on-gpu.sh .gpu/vgg --cuda
echo "== bench-e2e, ${E2E_TRUNK:-cudnn} trunk"
ALNRISK_CUDA_TRUNK=${E2E_TRUNK:-cudnn} timeout 120 bash .gpu/run-on-gpu.sh .gpu/alnrisk bench-e2e --device cuda \
  --replays 10 --queue 10 --quiet-period 0.2 || true
