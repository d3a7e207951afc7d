#!/bin/sh
# bench_patchcore.sh - PatchCore and its wide_resnet50_2 backbone on the CPU: promptad (build/bench_patchcore) against
# PyTorch (eval/bench/bench_patchcore_torch.py: torchvision's wide_resnet50_2 and our torch reference of anomalib's
# PatchCore), same checkpoint, same seeded images, same thread count, same machine, one after the other. Prints both
# lines, the output checks (promptad's layer2/layer3 features, image scores and maps against torch's) and the ratios
# promptad / torch (> 1: promptad is faster).
#
#   eval/bench_patchcore.sh [--weights W.safetensors] [--preset wide-resnet50-2|resnet-tiny] [--shots K] [--test N]
#                           [--size S] [--threads T] [--reps R] [--build DIR]
#
# Without --weights a random checkpoint of the preset is written (promptad make-model, seed 0). As in
# eval/bench_vit.sh, a generic OpenBLAS kernel set is overridden (OPENBLAS_CORETYPE) for both programs.
set -eu
weights= preset=wide-resnet50-2 shots=4 test=4 size=224 threads=$(nproc) reps=3 build=build
while [ $# -gt 0 ]; do
    case "$1" in
    --weights) weights=$2; shift 2 ;;
    --preset) preset=$2; shift 2 ;;
    --shots) shots=$2; shift 2 ;;
    --test) test=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    *) echo "usage: $0 [--weights W] [--preset P] [--shots K] [--test N] [--size S] [--threads T] [--reps R] [--build DIR]" >&2; exit 2 ;;
    esac
done
here=$(cd "$(dirname "$0")" && pwd)
. "$here/bench_lib.sh"
tmp=$(mktemp -d)
bench_remove_on_exit "$tmp"
[ -x "$build/bench_vit" ] && bench_openblas_core "$build/bench_vit"
if [ -z "$weights" ]; then
    weights=$tmp/model.safetensors
    "$build/promptad" make-model --preset "$preset" --seed 0 --out "$weights" 2>/dev/null
fi
/usr/bin/python3 "$here/bench/bench_patchcore_torch.py" make-inputs "$tmp/in.safetensors" --shots "$shots" \
    --test "$test" --size "$size"
c=$("$build/bench_patchcore" --weights "$weights" --inputs "$tmp/in.safetensors" --out "$tmp/out.safetensors" \
    --threads "$threads" --reps "$reps")
echo "$c"
t=$(/usr/bin/python3 "$here/bench/bench_patchcore_torch.py" run "$weights" "$tmp/in.safetensors" \
    --c-out "$tmp/out.safetensors" --threads "$threads" --reps "$reps")
echo "$t"
field() { echo "$1" | head -1 | tr ' ' '\n' | sed -n "s/^$2=//p"; }
for key in forward_images_per_s patchcore_images_per_s; do
    awk -v a="$(field "$c" $key)" -v b="$(field "$t" $key)" -v k=$key 'BEGIN { printf "ratio %s promptad/torch = %.2f\n", k, a / b }'
done
