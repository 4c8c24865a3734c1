#!/usr/bin/env bash
# On the build machine (no GPU needed): build the CUDA binaries that issue 4's GPU checks run and pack them, stripped
# and xz-compressed, into .gpu/ (git-ignored) with run.sh and ../shared/gpu/run-on-gpu.sh, for the device tool
# (carry [".gpu"], command "bash .gpu/run.sh"). Needs the CUDA toolchain of README "GPU"; adds cuDNN's wheel to it
# (benches/gpu/cudnn.sh). Two builds are packed:
#   alnrisk, deep_cuda, vgg                       --features cudnn: every trunk (links libcudnn.so.9)
#   alnrisk-nocudnn, deep_cuda-nocudnn, vgg-nocudnn  --features cuda: candle and nhwc, for a GPU machine without cuDNN
#   bash benches/gpu/prepare.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source <(bash ../shared/gpu/cuda-toolchain.sh --env)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target-cuda}
exe() {  # exe NAME FEATURES CARGO-ARGS…: the executable cargo reports for the target NAME
  local name=$1 features=$2; shift 2
  cargo "$@" --features "$features" --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$name" | tail -n1
}
pack() {  # pack FEATURES SUFFIX: build and pack the three binaries as NAME+SUFFIX
  local features=$1 sfx=$2 test_bin bench_bin
  cargo build --release --features "$features" --bin alnrisk
  strip -o ".gpu/alnrisk$sfx" "$CARGO_TARGET_DIR/release/alnrisk"
  test_bin=$(exe deep_cuda "$features" test --release --test deep_cuda)
  bench_bin=$(exe vgg "$features" bench --bench vgg)
  [[ -n $test_bin && -n $bench_bin ]] || { echo "prepare: a $features test or bench binary did not build" >&2; exit 1; }
  strip -o ".gpu/deep_cuda$sfx" "$test_bin"
  strip -o ".gpu/vgg$sfx" "$bench_bin"
  for name in alnrisk deep_cuda vgg; do xz -T0 -6 ".gpu/$name$sfx"; done
}
bash benches/gpu/cudnn.sh
rm -rf .gpu && mkdir -p .gpu
pack cudnn ""
pack cuda "-nocudnn"
cp ../shared/gpu/run-on-gpu.sh benches/gpu/run.sh .gpu/
# which commit the binaries are, so the numbers measured with them can be put against it (run.sh prints it)
echo "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src benches tests Cargo.toml Cargo.lock build.rs || echo '+uncommitted changes')" > .gpu/COMMIT
du -sh .gpu && ls -la .gpu
