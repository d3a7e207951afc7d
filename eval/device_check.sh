#!/usr/bin/env bash
# device_check.sh - THE one script for a lent GPU machine (the `device` tool's H200; see eval/README.md): from a
# clean tree it records the machine, builds promptad with CUDA for sm_90 with warnings as errors, runs the CUDA
# Criterion tests, the whole test suite, the CUDA-vs-CPU parity runner (tests/parity_main.c; the default paths and
# the opt-in speed paths as two processes), an end-to-end
# `promptad run` on the GPU (CUDA graphs on == off, --gpus 0,0 == one process), and the GPU benchmark
# (eval/bench_gpu.sh), and ends with one verdict line.
#
#   bash eval/device_check.sh            (device tool: carry [".devdeps"], timeout_s 590)
#
# Every stage runs under `timeout` inside one overall budget (DEVICE_CHECK_BUDGET seconds, default 550), with time
# reserved for the later stages, so one hang cannot eat the whole lease and the later stages still run. Order:
# machine, deps, build, CUDA tests, parity, end to end, benchmark, then the rest of the test suite (CPU paths,
# already covered by CI) in whatever time is left.
# Files (flat, <= 8, under $OUT, or ./device_out when OUT is unset): device_check.log (everything), build.log,
# ctest.txt, parity.txt, e2e.txt, bench_gpu.txt, bench_gpu.json, summary.json.
# Build dependencies: when pkg-config cannot find them, the .debs in .devdeps/ (bash tools/fetch_device_deps.sh,
# run beforehand on a machine with Debian's registry) are unpacked into a private sysroot (tools/devroot_env.sh).
# .devdeps/bpe_simple_vocab_16e6.txt.gz, when present, gives the tokenizer tests and the benchmark the real CLIP
# vocabulary. Without a GPU it still builds (CPU + CUDA when nvcc exists), the CUDA tests skip, parity_main and the
# benchmark say "no CUDA device", and the verdict says NO-GPU: that is how the script itself is tested.
set -uo pipefail
T_START=$(date +%s)
BUDGET=${DEVICE_CHECK_BUDGET:-550}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
OUT=${OUT:-$root/device_out}
mkdir -p "$OUT"
LOG=$OUT/device_check.log
: > "$LOG"
BUILD=$root/build-device
NPROC=$(nproc 2>/dev/null || echo 4)
declare -A ST_STATUS ST_SECS
STAGES=()

say() { echo "$*" | tee -a "$LOG"; }
left() { echo $((BUDGET - ($(date +%s) - T_START))); }
# stage NAME CAP RESERVE CMD...: runs CMD with a limit of min(CAP, time left - RESERVE) seconds; output to the log
stage() {
    local name=$1 cap=$2 reserve=$3
    shift 3
    local avail=$(($(left) - reserve))
    [ "$avail" -lt "$cap" ] && cap=$avail
    STAGES+=("$name")
    if [ "$cap" -lt 5 ]; then
        say "=== stage $name: SKIPPED (no time left in the budget)"
        ST_STATUS[$name]=skipped
        ST_SECS[$name]=0
        return 99
    fi
    say "=== stage $name (limit ${cap}s, $(left)s left in the budget)"
    local t0=$(date +%s)
    timeout -k 10 "$cap" "$@" >> "$LOG" 2>&1
    local rc=$?
    ST_SECS[$name]=$(($(date +%s) - t0))
    case $rc in
    0) ST_STATUS[$name]=ok ;;
    124 | 137) ST_STATUS[$name]=timeout ;;
    *) ST_STATUS[$name]="failed($rc)" ;;
    esac
    say "=== stage $name: ${ST_STATUS[$name]} in ${ST_SECS[$name]}s"
    return $rc
}

# ---- 1. the machine --------------------------------------------------------------------------------------------
machine() {
    echo "date: $(date -u +%FT%TZ)"
    echo "git: $(git -C "$root" log --oneline -1 2>/dev/null || echo '(no git)')"
    uname -a
    grep -m1 'model name' /proc/cpuinfo
    echo "cores: $NPROC; memory: $(grep MemTotal /proc/meminfo)"
    nvidia-smi 2>&1 || echo "nvidia-smi: not available"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv 2>&1
    for t in nvcc cmake ninja gcc g++ pkg-config python3; do
        printf '%-10s ' "$t"
        command -v "$t" >/dev/null 2>&1 && { "$t" --version 2>&1 | grep -m1 -iE 'version|release|[0-9]+\.[0-9]+' ; } ||
            echo "not found"
    done
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())' \
        2>&1 | tail -1
    return 0
}
[ -d /usr/local/cuda/bin ] && export PATH="/usr/local/cuda/bin:$PATH"
export root NPROC
export -f machine
stage machine 30 0 bash -c machine
grep -E 'NVIDIA H|nvcc|release|torch|model name' "$LOG" | head -8

# ---- 2. build dependencies -------------------------------------------------------------------------------------
PKGS="libcjson stb libjpeg zlib openblas libcyaml libutf8proc criterion"
deps() {
    if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists $PKGS 2>/dev/null; then
        echo "system pkg-config finds every dependency"
        return 0
    fi
    if ! ls "$root"/.devdeps/*.deb >/dev/null 2>&1; then
        echo "missing build dependencies and no .devdeps/*.deb (run bash tools/fetch_device_deps.sh beforehand)"
        return 1
    fi
    echo "unpacking .devdeps into a private sysroot"
    return 0
}
export PKGS
export -f deps
stage deps 60 400 bash -c deps
if ! { command -v pkg-config >/dev/null 2>&1 && pkg-config --exists $PKGS 2>/dev/null; } &&
    ls "$root"/.devdeps/*.deb >/dev/null 2>&1; then
    # shellcheck disable=SC1091
    source "$root/tools/devroot_env.sh" "$root/.devdeps" /tmp/promptad-devroot >> "$LOG" 2>&1
    pkg-config --exists $PKGS && say "sysroot: pkg-config finds every dependency" ||
        say "sysroot: pkg-config still misses: $(for p in $PKGS; do pkg-config --exists $p || echo -n "$p "; done)"
fi
# OpenBLAS 0.3.21 may not know this CPU and fall back to its slowest kernels (host/main.c re-executes promptad with
# this set; the test and benchmark programs do not): the CPU references of the checks need the fast ones
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
    elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
fi
VOCAB_DIR=
[ -f "$root/.devdeps/bpe_simple_vocab_16e6.txt.gz" ] && VOCAB_DIR=$root/.devdeps
[ -n "$VOCAB_DIR" ] && export PROMPTAD_VOCAB=$VOCAB_DIR/bpe_simple_vocab_16e6.txt.gz
say "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} PROMPTAD_VOCAB=${PROMPTAD_VOCAB:-unset}"

# ---- 3. clean configure + build --------------------------------------------------------------------------------
CUDA_OPT=AUTO
command -v nvcc >/dev/null 2>&1 && CUDA_OPT=ON
GEN=
command -v ninja >/dev/null 2>&1 && GEN=Ninja
export BUILD root CUDA_OPT VOCAB_DIR NPROC GEN OUT
build() {
    rm -rf "$BUILD"
    cmake -S "$root" -B "$BUILD" ${GEN:+-G "$GEN"} -DCMAKE_BUILD_TYPE=Release -DPROMPTAD_CUDA="$CUDA_OPT" \
        -DCMAKE_CUDA_ARCHITECTURES=90 -DPROMPTAD_WERROR=ON ${VOCAB_DIR:+-DPROMPTAD_SHARED_DATA="$VOCAB_DIR"} &&
        cmake --build "$BUILD" -j "$NPROC"
}
export -f build
# reserve for the later stages: ctest_cuda 30 + parity 40 + 30 + e2e 30 + bench 150
stage build 300 280 bash -c build
BUILD_OK=0
[ -x "$BUILD/promptad" ] && [ -x "$BUILD/tests/parity_main" ] && BUILD_OK=1
sed -n '/=== stage build (/,/=== stage build:/p' "$LOG" > "$OUT/build.log"
grep -E 'CUDA backend|error|warning' "$OUT/build.log" | head -20
NDEV=0
[ "$BUILD_OK" = 1 ] && NDEV=$("$BUILD/promptad" version | sed -n 's/.*CUDA devices: \([0-9]*\).*/\1/p')
say "build: $([ $BUILD_OK = 1 ] && echo ok || echo FAILED); CUDA devices seen by promptad: ${NDEV:-0}"

# ---- 4. CUDA tests, 5. parity -----------------------------------------------------------------------------------
: > "$OUT/ctest.txt"
# with a device, a CUDA test that skips is a failure (PROMPTAD_REQUIRE_CUDA=1, tests/support/check.h)
REQUIRE_CUDA=0
[ "${NDEV:-0}" -ge 1 ] && REQUIRE_CUDA=1
export REQUIRE_CUDA
ctest_cuda() {
    PROMPTAD_REQUIRE_CUDA=$REQUIRE_CUDA ctest --test-dir "$BUILD" -L cuda --output-on-failure --timeout 120 2>&1 |
        tee -a "$OUT/ctest.txt"
}
ctest_rest() {
    ctest --test-dir "$BUILD" -LE cuda -j 6 --output-on-failure --timeout 150 2>&1 | tee -a "$OUT/ctest.txt"
}
# two processes: the default paths, then the opt-in speed paths (a sticky CUDA error in an unverified fast path must
# not hide the results of the default ones)
parity_safe() { "$BUILD/tests/parity_main" --paths safe 2>&1 | tee -a "$OUT/parity.txt"; }
parity_fast() { "$BUILD/tests/parity_main" --paths fast 2>&1 | tee -a "$OUT/parity.txt"; }
export -f ctest_cuda ctest_rest parity_safe parity_fast
: > "$OUT/parity.txt"
if [ "$BUILD_OK" = 1 ]; then
    stage ctest_cuda 100 250 bash -c ctest_cuda
    grep -E 'tests passed|tests failed|Failed|\*\*\*' "$OUT/ctest.txt" | head -20
    stage parity 120 210 bash -c parity_safe
    stage parity_fast 80 180 bash -c parity_fast
    grep -E '^[0-9]+ passed, [0-9]+ failed' "$OUT/parity.txt"
fi

# ---- 6. end to end on the GPU: promptad run, graphs on == off, --gpus 0,0 == one process ----------------------
e2e() {
    set -u
    local d=/tmp/promptad-e2e bin=$BUILD/promptad
    rm -rf "$d"
    mkdir -p "$d"
    cat > "$d/cfg.yaml" <<EOF
model: {weights: $d/model/tiny.safetensors, vocab: $d/model/vocab.txt.gz, generate: tiny}
data: {format: synth, root: $d/data, synth: {classes: 2, size: 128, train: 4, test_good: 6, test_bad: 6}}
run: {shots: [1, 2], seeds: [0], tasks: [cls, seg], epochs: 8, select: best, resolution: 128, batch: 8, device: cuda}
output: {maps: grid, heatmaps: 0, models: false}
EOF
    local ok=0
    "$bin" run --config "$d/cfg.yaml" --quiet --set output.dir="$d/eager" --set run.cuda_graphs=off > /dev/null || ok=1
    "$bin" run --config "$d/cfg.yaml" --quiet --set output.dir="$d/graphs" --set run.cuda_graphs=on > /dev/null || ok=1
    "$bin" run --config "$d/cfg.yaml" --quiet --gpus 0,0 --set output.dir="$d/gpus" --set run.cuda_graphs=on \
        > /dev/null || ok=1
    PROMPTAD_CUDA_KERNELS=fast "$bin" run --config "$d/cfg.yaml" --quiet --set output.dir="$d/fast" \
        --set run.cuda_graphs=on --set run.fast_math=tf32 > /dev/null || ok=1
    "$bin" run --config "$d/cfg.yaml" --quiet --set output.dir="$d/cpu" --set run.device=cpu > /dev/null || ok=1
    python3 - "$d" <<'PY' || ok=1
import json, os, sys
d = sys.argv[1]
def units(run):
    out = {}
    for root, _, files in os.walk(os.path.join(d, run)):
        if "metrics.json" in files:
            j = json.load(open(os.path.join(root, "metrics.json")))
            j.pop("timing_s", None)
            sc = open(os.path.join(root, "scores.csv"), "rb").read()
            out[os.path.relpath(root, os.path.join(d, run))] = (j, sc)
    return out
eager, bad = units("eager"), 0
if len(eager) != 8:  # 2 classes x 2 shots x 1 seed x 2 tasks
    print(f"FAIL eager (cuda, no graphs): {len(eager)} units, expected 8")
    sys.exit(1)
print(f"PASS eager (cuda, no graphs): {len(eager)} units")
for run, exact in (("graphs", True), ("gpus", True), ("fast", False), ("cpu", False)):
    u = units(run)
    same = sum(1 for k in eager if k in u and u[k][1] == eager[k][1] and
               {a: b for a, b in u[k][0].items() if a not in ("device", "fast_math")} ==
               {a: b for a, b in eager[k][0].items() if a not in ("device", "fast_math")})
    diffs = []
    for k in sorted(eager):
        if k in u:
            for m in ("image_auroc", "pixel_auroc", "pixel_pro"):
                a, b = eager[k][0].get(m), u[k][0].get(m)
                if a is not None and b is not None:
                    diffs.append(abs(a - b))
    worst = max(diffs) if diffs else float("nan")
    verdict = "PASS" if (len(u) == len(eager) and (same == len(eager) if exact else True)) else "FAIL"
    if verdict == "FAIL":
        bad += 1
    print(f"{verdict} {run}: {len(u)} units, {same} identical to eager (bytes of scores.csv, metrics.json without "
          f"timings){' [required]' if exact else ''}; largest metric difference {worst:.2e}")
sys.exit(1 if bad else 0)
PY
    return $ok
}
: > "$OUT/e2e.txt"
if [ "$BUILD_OK" = 1 ] && [ "${NDEV:-0}" -ge 1 ]; then
    export -f e2e
    stage e2e 70 150 bash -c 'e2e 2>&1 | tee "$OUT/e2e.txt"'
    grep -E '^(PASS|FAIL) ' "$OUT/e2e.txt"
else
    echo "e2e: skipped (no CUDA device)" > "$OUT/e2e.txt"
fi

# ---- 7. benchmark, 8. the rest of the test suite (whatever time is left) ---------------------------------------
: > "$OUT/bench_gpu.txt"
bench() {
    bash "$root/eval/bench_gpu.sh" --build "$BUILD" --json "$OUT/bench_gpu.json" --budget "$BENCH_BUDGET" 2>&1 |
        tee "$OUT/bench_gpu.txt"
}
export -f bench
if [ "$BUILD_OK" = 1 ]; then
    # the benchmark cuts its own steps to fit and always prints its summary
    BENCH_BUDGET=$(left)
    [ "$BENCH_BUDGET" -gt 220 ] && BENCH_BUDGET=220
    export BENCH_BUDGET=$((BENCH_BUDGET - 5))
    stage bench 220 0 bash -c bench
    stage ctest_all 150 0 bash -c ctest_rest
fi
[ -f "$OUT/bench_gpu.json" ] || echo '{}' > "$OUT/bench_gpu.json"

# ---- 9. summary and verdict ------------------------------------------------------------------------------------
# parity.txt holds the default-paths run, then the fast-paths run: one "N passed, M failed" line each
count() { # which line (1 or 2), field (passed|failed)
    grep -E '^[0-9]+ passed, [0-9]+ failed' "$OUT/parity.txt" | sed -n "${1}p" |
        sed -n "s/.*\b\([0-9][0-9]*\) $2.*/\1/p"
}
p_pass=$(count 1 passed)
p_fail=$(count 1 failed)
f_pass=$(count 2 passed)
f_fail=$(count 2 failed)
pline="default paths ${p_pass:-?} passed ${p_fail:-?} failed; fast paths ${f_pass:-?} passed ${f_fail:-?} failed"
c_lines=$(grep -E 'tests passed' "$OUT/ctest.txt" | tr '\n' ';')
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
TOTAL=$(($(date +%s) - T_START))
{
    echo "{"
    echo "  \"gpu\": \"${gpu:-none}\", \"cuda_devices\": ${NDEV:-0}, \"seconds\": $TOTAL, \"budget\": $BUDGET,"
    echo "  \"build_ok\": $([ $BUILD_OK = 1 ] && echo true || echo false),"
    echo "  \"stages\": {"
    sep=""
    for s in "${STAGES[@]}"; do
        printf '%s    "%s": {"status": "%s", "seconds": %s}' "$sep" "$s" "${ST_STATUS[$s]}" "${ST_SECS[$s]}"
        sep=$',\n'
    done
    echo ""
    echo "  },"
    echo "  \"ctest\": \"${c_lines//\"/}\","
    echo "  \"parity\": {\"passed\": ${p_pass:-0}, \"failed\": ${p_fail:-0}, \"fast_passed\": ${f_pass:-0}, \"fast_failed\": ${f_fail:-0}},"
    echo "  \"bench\": $(cat "$OUT/bench_gpu.json")"
    echo "}"
} > "$OUT/summary.json"

echo
echo "================ digest ================"
echo "ctest: ${c_lines:-none}"
grep -E '^FAIL' "$OUT/parity.txt" | head -30
echo "parity: ${pline:-not run}"
grep -E '^(PASS|FAIL) ' "$OUT/e2e.txt" 2>/dev/null
sed -n '/^(a) images/,$p' "$OUT/bench_gpu.txt" | head -60
for s in "${STAGES[@]}"; do printf '%s=%s(%ss) ' "$s" "${ST_STATUS[$s]}" "${ST_SECS[$s]}"; done
echo
# the verdict is about the default paths (what promptad does unless told otherwise); the opt-in speed paths are
# reported beside it, so that they can be switched on once they pass
verdict=PASS
[ "$BUILD_OK" = 1 ] || verdict=FAIL
for s in ctest_cuda parity; do
    case "${ST_STATUS[$s]:-}" in ok | "" | skipped) ;; *) verdict=FAIL ;; esac
done
# the last stage gets the time that is left: a time-out there is not a failure, failed tests are
grep -qE '^[0-9]+% tests passed, [1-9][0-9]* tests failed' "$OUT/ctest.txt" && verdict=FAIL
[ "${p_fail:-0}" = 0 ] || verdict=FAIL
grep -qE '^FAIL (gpus|eager)' "$OUT/e2e.txt" && verdict=FAIL
fast=PASS
[ "${f_fail:-1}" = 0 ] || fast=FAIL
grep -qE '^FAIL (graphs|fast)' "$OUT/e2e.txt" && fast=FAIL
grep -qE '^PASS graphs' "$OUT/e2e.txt" || fast="$fast (no e2e)"
if [ "$verdict" = PASS ] && [ "${NDEV:-0}" -lt 1 ]; then verdict=NO-GPU; fast=-; fi
echo "VERDICT: $verdict (gpu: ${gpu:-none}; build $([ $BUILD_OK = 1 ] && echo ok || echo FAILED); parity: $pline; fast paths: $fast; ${TOTAL}s of ${BUDGET}s; files in $OUT)" |
    tee -a "$LOG"
[ "$verdict" = FAIL ] && exit 1
exit 0
