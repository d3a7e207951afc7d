#!/bin/sh
# bench_vit.sh - images/s of the dual-path ViT-B-16-plus-240 vision tower (random weights) on the CPU: promptad
# (build/bench_vit) against Debian's PyTorch running the same forward (eval/bench/bench_vit_torch.py), same thread
# count, same machine, in interleaved rounds (so both see the same background load); reports the best and the
# median round of each and the ratio promptad / torch (> 1: promptad is faster).
#
#   eval/bench_vit.sh [--threads N] [--batches 1,8] [--rounds R] [--iters K] [--build DIR]
#
# Both use the same OpenBLAS. OpenBLAS 0.3.21 (Debian 12) does not recognise CPUs newer than it (e.g. Emerald
# Rapids, family 6 model 207) and falls back to its generic SSE3 kernels ("Prescott"), 3-4x slower; the promptad
# binary then re-executes itself with OPENBLAS_CORETYPE set (host/main.c), so this script does the same for both
# programs: unless OPENBLAS_CORETYPE is already set, it sets SkylakeX (AVX-512) or Haswell (AVX2) when
# `bench_vit --blas-core` reports a generic kernel set.
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
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    case "$("$here/$build/bench_vit" --blas-core)" in
    Prescott | Core2 | generic)
        if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
        elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi ;;
    esac
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "# $(date -u +%FT%TZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores," \
     "threads $threads, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
r=1
while [ "$r" -le "$rounds" ]; do
    "$here/$build/bench_vit" --device cpu --threads "$threads" --batches "$batches" --iters "$iters" | tee -a "$log"
    OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads /usr/bin/python3 "$here/eval/bench/bench_vit_torch.py" \
        --threads "$threads" --batches "$batches" --iters "$iters" | tee -a "$log"
    OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads OMP_WAIT_POLICY=passive /usr/bin/python3 \
        "$here/eval/bench/bench_vit_torch.py" --threads "$threads" --batches "$batches" --iters "$iters" \
        --tag torch-passive | tee -a "$log"
    r=$((r + 1))
done
# summary per batch size: images/s of each program (best round / median round; a round's figure is the median of
# its iterations), torch = the faster of its two settings, and the ratios promptad / torch
/usr/bin/python3 - "$log" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    m = re.match(r"([\w-]+) .*batch=(\d+) .*images_per_s=([\d.]+) ", line)
    if m:
        runs.setdefault((m.group(1), int(m.group(2))), []).append(float(m.group(3)))
print("batch  promptad img/s best/median   torch best/median   torch-passive best/median   ratio best  ratio median")
for b in sorted({k[1] for k in runs}):
    p = runs.get(("promptad", b), [0.0])
    t1, t2 = runs.get(("torch", b), [0.0]), runs.get(("torch-passive", b), [0.0])
    tb = max(max(t1), max(t2))
    tm = max(statistics.median(t1), statistics.median(t2))
    print(f"{b:5d}  {max(p):8.3f} / {statistics.median(p):6.3f}        {max(t1):6.3f} / {statistics.median(t1):6.3f}"
          f"     {max(t2):6.3f} / {statistics.median(t2):6.3f}            {max(p) / tb:6.2f}  {statistics.median(p) / tm:11.2f}")
PY
