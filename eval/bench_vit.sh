#!/bin/sh
# bench_vit.sh - images/s of the dual-path ViT-B-16-plus-240 vision tower (random weights) on the CPU: promptad
# (build/bench_vit) against Debian's PyTorch running the same forward (eval/bench/bench_vit_torch.py), same thread
# count, same machine, in interleaved rounds (so both see the same background load); reports the best and the
# median round of each and the ratio promptad / torch (> 1: promptad is faster).
#
#   eval/bench_vit.sh [--threads N] [--batches 1,8] [--rounds R] [--iters K] [--build DIR]
#
# Both use the same OpenBLAS, with the same kernel set: a generic one that OpenBLAS falls back to on a CPU newer than
# it is overridden for both programs (OPENBLAS_CORETYPE, eval/bench_lib.sh).
#
# PyTorch runs twice per round: as is (its OpenMP threads spin-wait next to OpenBLAS's own threads) and with
# OMP_WAIT_POLICY=passive (often faster on few cores); the ratio uses the faster of the two.
set -eu
threads=$(nproc)
batches=1,8
rounds=3
iters=3
build=build
while [ $# -gt 0 ]; do
    case "$1" in
    --threads) threads=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --iters) iters=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    *) echo "usage: $0 [--threads N] [--batches 1,8] [--rounds R] [--iters K] [--build DIR]" >&2; exit 2 ;;
    esac
done
here=$(cd "$(dirname "$0")/.." && pwd)
cmake --build "$here/$build" --target bench_vit -j"$threads" >/dev/null
. "$here/eval/bench_lib.sh"
bench_openblas_core "$here/$build/bench_vit"
log=$(mktemp)
bench_remove_on_exit "$log"
bench_machine_line "threads $threads"
run_torch() { # tag, extra environment...
    tag=$1
    shift
    env OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" "$@" /usr/bin/python3 \
        "$here/eval/bench/bench_vit_torch.py" --threads "$threads" --batches "$batches" --iters "$iters" --tag "$tag"
}
run_ours() { # tag, extra environment...
    tag=$1
    shift
    env "$@" "$here/$build/bench_vit" --device cpu --threads "$threads" --batches "$batches" --iters "$iters" \
        --tag "$tag"
}
r=1
while [ "$r" -le "$rounds" ]; do
    { run_ours promptad; run_ours promptad-passive OMP_WAIT_POLICY=passive; run_torch torch
      run_torch torch-passive OMP_WAIT_POLICY=passive; } | tee -a "$log"
    r=$((r + 1))
done
# Summary per batch size. Wall clock: images/s of each program (best round / median round; a round's figure is the
# median of its iterations), each program in its faster thread-wait setting. CPU: process CPU seconds per image
# (median round) with OMP_WAIT_POLICY=passive, i.e. the work done without spin-waiting, which background load on
# the machine disturbs much less than the wall clock.
/usr/bin/python3 - "$log" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    m = re.match(r"([\w-]+) .*batch=(\d+) .*images_per_s=([\d.]+) .*cpu_s_per_image=([\d.]+)", line)
    if m:
        runs.setdefault((m.group(1), int(m.group(2))), []).append((float(m.group(3)), float(m.group(4))))
def wall(tool, b):
    best, med = 0.0, 0.0
    for variant in (tool, tool + "-passive"):
        v = [r[0] for r in runs.get((variant, b), [])]
        if v:
            best, med = max(best, max(v)), max(med, statistics.median(v))
    return best, med
def cpu(tool, b):
    v = [r[1] for r in runs.get((tool + "-passive", b), [])]
    return statistics.median(v) if v else float("nan")
print("batch | img/s promptad best/median | img/s torch best/median | ratio best/median | CPU s/img promptad | "
      "CPU s/img torch | ratio")
for b in sorted({k[1] for k in runs}):
    pb, pm = wall("promptad", b)
    tb, tm = wall("torch", b)
    pc, tc = cpu("promptad", b), cpu("torch", b)
    print(f"{b:5d} | {pb:11.3f} / {pm:6.3f}      | {tb:8.3f} / {tm:6.3f}      | {pb / tb:5.2f} / {pm / tm:5.2f}"
          f"       | {pc:18.3f} | {tc:15.3f} | {tc / pc:5.2f}")
print("ratios > 1: promptad is faster (images/s promptad / torch; CPU s/img torch / promptad)")
PY
