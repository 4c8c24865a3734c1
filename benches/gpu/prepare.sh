#!/usr/bin/env bash
# On the build machine (no GPU needed): build the CUDA binaries that issue 4's GPU checks run and pack them, stripped
# and xz-compressed, into .gpu/ (git-ignored) with run.sh and ../shared/gpu/run-on-gpu.sh, for the device tool
# (carry [".gpu"], command "bash .gpu/run.sh"). Needs the CUDA toolchain of README "GPU" and, for the `cudnn`
# feature (all three NHWC trunks), cuDNN's wheel in that toolchain (README "GPU").
#   bash benches/gpu/prepare.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source <(bash ../shared/gpu/cuda-toolchain.sh --env)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target-cuda}
FEATURES=${FEATURES:-cudnn}   # cudnn = cuda + the cuDNN engine; FEATURES=cuda for a build without cuDNN
[[ $FEATURES != *cudnn* ]] || bash benches/gpu/cudnn.sh
exe() {  # exe NAME CARGO-ARGS…: the executable cargo reports for the target NAME
  local name=$1; shift
  cargo "$@" --features "$FEATURES" --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$name" | tail -n1
}
cargo build --release --features "$FEATURES" --bin alnrisk
test_bin=$(exe deep_cuda test --release --test deep_cuda)
bench_bin=$(exe vgg bench --bench vgg)
[[ -n $test_bin && -n $bench_bin ]] || { echo "prepare: a CUDA test or bench binary did not build" >&2; exit 1; }
rm -rf .gpu && mkdir -p .gpu
for pair in "$CARGO_TARGET_DIR/release/alnrisk:alnrisk" "$test_bin:deep_cuda" "$bench_bin:vgg"; do
  src=${pair%%:*} name=${pair##*:}
  strip -o ".gpu/$name" "$src"
  xz -T0 -6 ".gpu/$name"
done
cp ../shared/gpu/run-on-gpu.sh benches/gpu/run.sh .gpu/
ls -la .gpu
