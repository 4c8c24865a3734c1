#!/usr/bin/env bash
# On the GPU machine (device tool, repository root, .gpu/ carried): issue 4's GPU checks in one run.
#   1. tests/deep_cuda.rs — the NHWC trunk against PyTorch's fixture, candle's convolution and the CPU;
#   2. the VGG bench with both CUDA trunks (batch 1 and 16, f32 and Q8_0 dense layers) and fc7 agreement;
#   3. the daemon end to end on the GPU with the NHWC trunk (bench-e2e, short).
# Prints everything; the numbers go into the issue note with the card's name (printed by run-on-gpu.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
for f in .gpu/*.xz; do xz -dkf "$f"; done
chmod +x .gpu/alnrisk .gpu/deep_cuda .gpu/vgg
echo "== deep_cuda"
bash .gpu/run-on-gpu.sh .gpu/deep_cuda --nocapture --test-threads=1
echo "== bench vgg --cuda"
bash .gpu/run-on-gpu.sh .gpu/vgg --cuda
echo "== bench-e2e, NHWC trunk"
ALNRISK_CUDA_TRUNK=nhwc bash .gpu/run-on-gpu.sh .gpu/alnrisk bench-e2e --device cuda --replays 10 --queue 10 --quiet-period 0.2 || true
