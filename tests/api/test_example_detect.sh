#!/usr/bin/env bash
# test_example_detect.sh DETECT PROMPTAD WORK_DIR - examples/detect (the public detector API through libpromptad.so)
# gives the scores and decisions of `promptad predict` on the fixture model (tests/api/make_model.sh), bit for bit
# (both print %.9g of the same float), and the library's message for a missing model.
set -euo pipefail
# The same OpenBLAS kernels in both programs (promptad picks them itself on CPUs OpenBLAS does not recognise, see
# host/cli/main.c; a program linking libpromptad.so gets what OpenBLAS detects): GEMM bits depend on the kernel.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
    elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell
    fi
fi
detect=$1 bin=$2 work=$3
model="$work/results/synth/weave/k1/seed0/model"
mapfile -t imgs < <(find "$work/data/weave/test" -name '*.png' | sort)
[ "${#imgs[@]}" -ge 6 ] || { echo "FAILED: fixture images missing"; exit 1; }
"$detect" "$model" "${imgs[@]}" >"$work/detect.csv"
args=()
for i in "${imgs[@]}"; do args+=(--input "$i"); done
"$bin" predict --model "$model" "${args[@]}" --out "$work/predict" --device cpu --no-heatmaps 2>/dev/null
# path,score,decision of both
got=$(grep -v '^#' "$work/detect.csv" | tail -n +2 | cut -d, -f1-3)
want=$(tail -n +2 "$work/predict/predictions.csv" | awk -F, '{print $1 "," $2 "," $4}')
if [ "$got" != "$want" ]; then
    echo "FAILED: examples/detect and promptad predict differ"
    diff <(echo "$want") <(echo "$got") || true
    exit 1
fi
if msg=$("$detect" "$work/no-such-model" "${imgs[0]}" 2>&1); then
    echo "FAILED: a missing model was accepted"
    exit 1
fi
case "$msg" in
*"no-such-model"*"not a promptad model folder"*) ;;
*) echo "FAILED: unexpected error message: $msg"; exit 1 ;;
esac
echo "examples/detect matches promptad predict on ${#imgs[@]} images"
