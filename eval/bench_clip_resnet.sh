#!/bin/sh
# bench_clip_resnet.sh - the CLIP ModifiedResNet tower with the V-V attention pool on the CPU: promptad
# (build/bench_clip_resnet) against PyTorch (eval/bench/bench_clip_resnet_torch.py: our torch ModifiedResNet of
# tests/ref/make_clip_resnet_fixtures.py), same checkpoint, same seeded images, same thread count, same machine, one
# after the other. Prints both lines, the output checks (promptad's cls, V-V tokens and taps against torch's) and the
# ratio promptad / torch (> 1: promptad is faster).
#
#   eval/bench_clip_resnet.sh [--weights W.safetensors] [--preset rn101|clip-resnet-tiny] [--test N] [--threads T]
#                             [--reps R] [--build DIR]
#
# Without --weights a random checkpoint of the preset is written (promptad make-model, seed 0). As in
# eval/bench_vit.sh, a generic OpenBLAS kernel set is overridden (OPENBLAS_CORETYPE) for both programs.
set -eu
weights= preset=rn101 test=4 threads=$(nproc) reps=3 build=build
while [ $# -gt 0 ]; do
    case "$1" in
    --weights) weights=$2; shift 2 ;;
    --preset) preset=$2; shift 2 ;;
    --test) test=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    *) echo "usage: $0 [--weights W] [--preset P] [--test N] [--threads T] [--reps R] [--build DIR]" >&2; exit 2 ;;
    esac
done
here=$(cd "$(dirname "$0")" && pwd)
. "$here/bench_lib.sh"
tmp=$(mktemp -d)
bench_remove_on_exit "$tmp"
[ -x "$build/bench_vit" ] && bench_openblas_core "$build/bench_vit"
if [ -z "$weights" ]; then
    weights=$tmp/model.safetensors
    "$build/promptad" make-model --preset "$preset" --seed 0 --vocab-size 1000 --out "$weights" 2>/dev/null
fi
size=$(/usr/bin/python3 -c "
import sys; sys.path.insert(0, '$here/../tests/ref'); import json, struct
f = open('$weights', 'rb'); h = json.loads(f.read(struct.unpack('<Q', f.read(8))[0]))
print(32 * int(round((h['visual.attnpool.positional_embedding']['shape'][0] - 1) ** 0.5)))")
/usr/bin/python3 "$here/bench/bench_clip_resnet_torch.py" make-inputs "$tmp/in.safetensors" --test "$test" --size "$size"
c=$("$build/bench_clip_resnet" --weights "$weights" --inputs "$tmp/in.safetensors" --out "$tmp/out.safetensors" \
    --threads "$threads" --reps "$reps")
echo "$c"
t=$(/usr/bin/python3 "$here/bench/bench_clip_resnet_torch.py" run "$weights" "$tmp/in.safetensors" \
    --c-out "$tmp/out.safetensors" --threads "$threads" --reps "$reps")
echo "$t"
field() { echo "$1" | head -1 | tr ' ' '\n' | sed -n "s/^$2=//p"; }
awk -v a="$(field "$c" forward_images_per_s)" -v b="$(field "$t" forward_images_per_s)" \
    'BEGIN { printf "ratio forward_images_per_s promptad/torch = %.2f\n", a / b }'
