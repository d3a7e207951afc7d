#!/bin/sh
# bench_winclip.sh - images/s of WinCLIP+ (k reference shots, 2 x 2 and 3 x 3 windows, random ViT-B-16-plus-240
# weights) on the CPU: promptad (build/bench_winclip, host/model/winclip.c) against PyTorch running anomalib's
# WinClipModel semantics (eval/bench/bench_winclip_torch.py on tests/ref/ref_winclip.py), same thread count, same
# machine, interleaved rounds (both see the same background load); reports the best and the median round of each
# and the ratio promptad / torch (> 1: promptad is faster). docs/winclip.md describes both computations.
#
#   eval/bench_winclip.sh [--threads N] [--images N] [--shots K] [--rounds R] [--iters I] [--preset P] [--build DIR]
#
# OPENBLAS_CORETYPE: as eval/bench_vit.sh (eval/bench_lib.sh: set for both programs when OpenBLAS falls back to
# generic kernels).
set -eu
threads=$(nproc)
images=1
shots=1
rounds=2
iters=1
preset=vit-b-16-plus-240
build=build
while [ $# -gt 0 ]; do
    case "$1" in
    --threads) threads=$2; shift 2 ;;
    --images) images=$2; shift 2 ;;
    --shots) shots=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --iters) iters=$2; shift 2 ;;
    --preset) preset=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    *) echo "usage: $0 [--threads N] [--images N] [--shots K] [--rounds R] [--iters I] [--preset P] [--build DIR]" >&2
       exit 2 ;;
    esac
done
here=$(cd "$(dirname "$0")/.." && pwd)
cmake --build "$here/$build" --target bench_winclip --target bench_vit -j"$threads" >/dev/null
. "$here/eval/bench_lib.sh"
bench_openblas_core "$here/$build/bench_vit"
log=$(mktemp)
bench_remove_on_exit "$log"
bench_machine_line "threads $threads, preset $preset, $images test image(s), $shots shot(s)"
args="--threads $threads --images $images --shots $shots --iters $iters --preset $preset"
r=1
while [ "$r" -le "$rounds" ]; do
    { env OMP_WAIT_POLICY=passive "$here/$build/bench_winclip" --device cpu $args --tag promptad
      env OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" OMP_WAIT_POLICY=passive /usr/bin/python3 \
          "$here/eval/bench/bench_winclip_torch.py" $args --tag torch; } | tee -a "$log"
    r=$((r + 1))
done
/usr/bin/python3 - "$log" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    m = re.match(r"(\w+) .*images_per_s=([\d.]+) best_images_per_s=([\d.]+)", line)
    if m:
        runs.setdefault(m.group(1), []).append(float(m.group(2)))
p, t = runs.get("promptad", []), runs.get("torch", [])
if p and t:
    pb, pm, tb, tm = max(p), statistics.median(p), max(t), statistics.median(t)
    print(f"WinCLIP+ img/s: promptad best {pb:.4f} median {pm:.4f} | torch (anomalib semantics) best {tb:.4f} "
          f"median {tm:.4f} | ratio promptad/torch best {pb / tb:.2f} median {pm / tm:.2f} (> 1: promptad faster)")
PY
