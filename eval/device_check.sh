#!/usr/bin/env bash
# device_check.sh - THE one script for a lent GPU machine (the `device` tool's H100 80 GB or H200 141 GB; see
# eval/README.md): from a clean tree, in about 400 s, a PASS/FAIL verdict for every CUDA path and the benchmark.
#
#   bash eval/device_check.sh          (device tool: `run`, carry [".devdeps"], timeout_s 450)
#
# Stages, in order of importance, each under its own `timeout` and each printing its part of the verdict
# ("--- <stage>: PASS|FAIL|SKIPPED (...)") whatever happens to the others:
#   machine     nvidia-smi, compilers, torch; which device kind runs (H100 80 GB / H200 141 GB / other)
#   deps        pkg-config finds the build dependencies, or the .debs of .devdeps/ are unpacked into a private
#               sysroot (tools/devroot_env.sh; only the libraries the system lacks go on the loader's path)
#   build       CUDA build for sm_90 WITHOUT -Werror (a newer compiler's new warning must not fail the check; the
#               warnings stay in build.log) of promptad, parity_main and the benchmarks, which need no Criterion;
#               if configuring with Criterion fails, again with -DPROMPTAD_CRITERION_TESTS=OFF
#   parity      tests/parity_main --quick --paths safe: every default CUDA path against the CPU at the small sizes
#               (PROMPTAD_REQUIRE_CUDA=1), with the robustness checks (batch vs one by one bit for bit, ...)
#   e2e         `promptad run` of a tiny generated problem on the GPU (2 classes x 2 shots x 2 seeds x cls/seg) once,
#               and as 3 `--shard` runs (not aligned with the classes): the shards' units must be the units of
#               the single run with the same bytes (scores.csv, train.csv, metrics.json without timings): catches
#               results that depend on the batch; plus a run with CUDA graphs on (reported, not required)
#   parity_full the same at full size too (ViT-B-16-plus-240); a time-out without a failed check is reported only
#   build_tests the Criterion CUDA test programs (extra: skipped when Criterion is missing)
#   ctest_cuda  those tests (ctest -L cuda) with PROMPTAD_REQUIRE_CUDA=1 (a skip is a failure)
#   parity_fast tests/parity_main --paths fast: the opt-in speed paths (reported beside the verdict)
#   bench       eval/bench_gpu.sh --quick (short mode), then the long mode only when enough time is left
# The CPU-only test stages are not run here (CI covers them).
#
# VERDICT: PASS needs a GPU, the build, parity with more than zero passed checks and none failed, e2e identical,
# no failed full-size parity check and no failed CUDA test; FAIL otherwise; NO-GPU on a machine without a GPU (nothing is built: it ends in a
# second). DEVICE_CHECK_SELFTEST=1 on a machine without a GPU exercises the script's own logic with an existing
# CPU build (DEVICE_CHECK_BUILD_DIR, default build/): parity_main --cpu-twin, the e2e shard comparison on the CPU
# backend; the verdict stays NO-GPU.
# Files, flat, under $OUT (./device_out when OUT is unset): device_check.log (everything), build.log, parity.txt,
# parity_full.txt, parity_fast.txt, e2e.txt, ctest.txt, bench_gpu.txt, bench_gpu.json, summary.json.
set -uo pipefail
T_START=$(date +%s)
BUDGET=${DEVICE_CHECK_BUDGET:-400}
SELFTEST=${DEVICE_CHECK_SELFTEST:-0}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
export OUT=${OUT:-$root/device_out}
mkdir -p "$OUT"
LOG=$OUT/device_check.log
: > "$LOG"
for f in build.log parity.txt parity_full.txt parity_fast.txt e2e.txt ctest.txt bench_gpu.txt; do : > "$OUT/$f"; done
BUILD=$root/build-device
NPROC=$(nproc 2>/dev/null || echo 4)
declare -A PART
ORDER=(machine deps build parity e2e parity_full build_tests ctest_cuda parity_fast bench)

say() { echo "$*" | tee -a "$LOG"; }
left() { echo $((BUDGET - ($(date +%s) - T_START))); }
# part STAGE RESULT: this stage's part of the verdict (PASS|FAIL|SKIPPED|INFO ...), printed at once
part() {
    PART[$1]=$2
    say "--- $1: $2"
}
# run_stage NAME CAP RESERVE CMD...: CMD under `timeout` for min(CAP, time left - RESERVE) s, output to the log;
# returns CMD's status, 124 on a time-out, 99 when skipped for lack of time
run_stage() {
    local name=$1 cap=$2 reserve=$3
    shift 3
    local avail=$(($(left) - reserve))
    [ "$avail" -lt "$cap" ] && cap=$avail
    if [ "$cap" -lt 5 ]; then
        say "=== stage $name: no time left in the budget"
        return 99
    fi
    say "=== stage $name (limit ${cap}s, $(left)s left in the budget)"
    local t0 rc
    t0=$(date +%s)
    timeout -k 5 "$cap" "$@" >> "$LOG" 2>&1
    rc=$?
    say "=== stage $name: status $rc after $(($(date +%s) - t0))s"
    return $rc
}
why() { # status -> words
    case $1 in 0) echo ok ;; 99) echo "no time left" ;; 124 | 137) echo "timed out" ;; *) echo "status $1" ;; esac
}

# ---- machine ---------------------------------------------------------------------------------------------------
[ -d /usr/local/cuda/bin ] && export PATH="/usr/local/cuda/bin:$PATH"
GPU_LINE=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1)
if [ -z "$GPU_LINE" ] && ls /proc/driver/nvidia/gpus/*/information > /dev/null 2>&1; then # no nvidia-smi on PATH
    GPU_LINE=$(sed -n 's/^Model:[[:space:]]*//p' /proc/driver/nvidia/gpus/*/information | head -1)
fi
GPU_NAME=${GPU_LINE%%,*}
case "$GPU_NAME" in
*H200*) KIND="H200 141 GB" ;;
*H100*) KIND="H100 80 GB" ;;
"") KIND=none ;;
*) KIND="other ($GPU_LINE)" ;;
esac
machine() {
    echo "date: $(date -u +%FT%TZ)"
    echo "git: $(git -C "$root" log --oneline -1 2>/dev/null || echo '(no git)')"
    uname -a
    grep -m1 'model name' /proc/cpuinfo
    echo "cores: $NPROC; memory: $(grep MemTotal /proc/meminfo)"
    nvidia-smi 2>&1 | head -20 || true
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv 2>&1 || true
    for t in nvcc cmake ninja gcc pkg-config python3; do
        printf '%-10s ' "$t"
        if command -v "$t" > /dev/null 2>&1; then "$t" --version 2>&1 | grep -m1 -iE 'version|release|[0-9]+\.[0-9]+'; else
            echo "not found"
        fi
    done
    timeout 20 python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
        torch.cuda.is_available())' 2>&1 | tail -1
    return 0
}
export root NPROC
export -f machine
run_stage machine 30 0 bash -c machine
part machine "INFO (device kind: $KIND)"

if [ -z "$GPU_LINE" ] && [ "$SELFTEST" != 1 ]; then
    for s in "${ORDER[@]:1}"; do part "$s" "SKIPPED (no GPU)"; done
    echo '{"gpu": "none", "verdict": "NO-GPU"}' > "$OUT/summary.json"
    say "VERDICT: NO-GPU (device kind: none; nothing built or run: this machine has no GPU; $(($(date +%s) - T_START))s; files in $OUT)"
    exit 0
fi

# ---- deps ------------------------------------------------------------------------------------------------------
PKGS="libcjson stb libjpeg zlib openblas libcyaml libutf8proc"
have_pkgs() { command -v pkg-config > /dev/null 2>&1 && pkg-config --exists $PKGS 2> /dev/null; }
if [ "$SELFTEST" = 1 ] && [ -z "$GPU_LINE" ]; then
    part deps "SKIPPED (self-test: the existing build is used)"
elif have_pkgs; then
    part deps "PASS (the system's pkg-config finds every dependency)"
elif ls "$root"/.devdeps/*.deb > /dev/null 2>&1; then
    # shellcheck disable=SC1091
    source "$root/tools/devroot_env.sh" "$root/.devdeps" /tmp/promptad-devroot >> "$LOG" 2>&1
    if have_pkgs; then part deps "PASS (sysroot from .devdeps)"; else
        part deps "FAIL (sysroot from .devdeps; pkg-config still misses: $(for p in $PKGS; do pkg-config --exists $p 2> /dev/null || echo -n "$p "; done))"
    fi
else
    part deps "FAIL (missing build dependencies and no .devdeps/*.deb: run bash tools/fetch_device_deps.sh first)"
fi
CRITERION=0
command -v pkg-config > /dev/null 2>&1 && pkg-config --exists criterion 2> /dev/null && CRITERION=1
# OpenBLAS 0.3.21 may not know this CPU and fall back to its slowest kernels: the CPU references need the fast ones
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX; elif grep -qw avx2 /proc/cpuinfo; then
        export OPENBLAS_CORETYPE=Haswell
    fi
fi
VOCAB_DIR=
[ -f "$root/.devdeps/bpe_simple_vocab_16e6.txt.gz" ] && VOCAB_DIR=$root/.devdeps
[ -n "$VOCAB_DIR" ] && export PROMPTAD_VOCAB=$VOCAB_DIR/bpe_simple_vocab_16e6.txt.gz
say "criterion: $CRITERION; OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; PROMPTAD_VOCAB=${PROMPTAD_VOCAB:-unset}"

# ---- build -----------------------------------------------------------------------------------------------------
GEN=
command -v ninja > /dev/null 2>&1 && GEN=Ninja
export BUILD root VOCAB_DIR NPROC GEN
configure() { # extra cmake arguments...
    rm -rf "$BUILD"
    cmake -S "$root" -B "$BUILD" ${GEN:+-G "$GEN"} -DCMAKE_BUILD_TYPE=Release -DPROMPTAD_CUDA=ON \
        -DCMAKE_CUDA_ARCHITECTURES=90 -DPROMPTAD_WERROR=OFF ${VOCAB_DIR:+-DPROMPTAD_SHARED_DATA="$VOCAB_DIR"} "$@"
}
build_core() {
    if ! configure; then
        echo "device_check: configuring with the Criterion tests failed: again with -DPROMPTAD_CRITERION_TESTS=OFF"
        configure -DPROMPTAD_CRITERION_TESTS=OFF || return 1
    fi
    cmake --build "$BUILD" -j "$NPROC" --target promptad parity_main || return 1
    # the benchmark programs the bench stage runs (a failure here only costs the benchmark)
    cmake --build "$BUILD" -j "$NPROC" --target bench_vit bench_classrun ||
        echo "device_check: the benchmark programs did not build (the bench stage will say so)"
}
build_tests() {
    local targets
    targets=$(cmake --build "$BUILD" --target help 2> /dev/null | grep -oE '\btest_[a-z0-9_]*cuda[a-z0-9_]*\b' | sort -u)
    [ -n "$targets" ] || { echo "no Criterion CUDA test targets (Criterion missing?)"; return 3; }
    # shellcheck disable=SC2086
    cmake --build "$BUILD" -j "$NPROC" --target $targets
}
export -f configure build_core build_tests
PARITY=$BUILD/parity_main
if [ "$SELFTEST" = 1 ] && [ -z "$GPU_LINE" ]; then
    BUILD=${DEVICE_CHECK_BUILD_DIR:-$root/build}
    case "$BUILD" in /*) ;; *) BUILD=$root/$BUILD ;; esac
    part build "SKIPPED (self-test: using $BUILD)"
else
    # reserved for the later stages: parity 60, e2e 60, parity_full and the rest 80
    run_stage build 170 200 bash -c build_core
    rc=$?
    sed -n '/=== stage build (/,/=== stage build:/p' "$LOG" > "$OUT/build.log"
    nwarn=$(grep -c 'warning' "$OUT/build.log")
    if [ -x "$BUILD/promptad" ]; then part build "PASS ($nwarn warning lines in build.log)"; else
        part build "FAIL ($(why $rc); $(grep -m1 -iE 'error' "$OUT/build.log" | cut -c1-160))"
    fi
fi
for p in "$BUILD/parity_main" "$BUILD/tests/parity_main"; do [ -x "$p" ] && PARITY=$p; done
NDEV=0
[ -x "$BUILD/promptad" ] && NDEV=$("$BUILD/promptad" version 2> /dev/null | sed -n 's/.*CUDA devices: \([0-9]*\).*/\1/p')
NDEV=${NDEV:-0}
say "parity_main: $PARITY; CUDA devices seen by promptad: $NDEV"

# ---- parity (default paths) ------------------------------------------------------------------------------------
export PROMPTAD_REQUIRE_CUDA=1
[ -z "$GPU_LINE" ] && unset PROMPTAD_REQUIRE_CUDA # the self-test compares two CPU backends
PARITY_ARGS=(--quick --paths safe)
[ -z "$GPU_LINE" ] && PARITY_ARGS=(--cpu-twin --quick --paths safe --filter op/)
# parity_result FILE STATUS: "PASS (n passed ...)" when the summary line says > 0 passed and 0 failed
parity_result() {
    local sum
    sum=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -1)
    local np nf
    np=$(echo "$sum" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
    nf=$(echo "$sum" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
    if [ -z "$sum" ]; then echo "FAIL (no summary line: $(why "$2"))"; elif [ "${np:-0}" -gt 0 ] && [ "${nf:-1}" = 0 ] &&
        [ "$2" = 0 ]; then echo "PASS ($sum)"; else echo "FAIL ($sum; $(why "$2"))"; fi
}
# partial_result FILE STATUS: like parity_result, but a time-out with no failed check so far is INFO, not FAIL
partial_result() {
    local np nf
    np=$(grep -c '^PASS' "$1")
    nf=$(grep -c '^FAIL' "$1")
    case $2 in
    124 | 137 | 99) if [ "$nf" = 0 ]; then echo "INFO ($(why "$2") after $np passed, 0 failed: give it more time)"; else
        echo "FAIL ($np passed, $nf failed; $(why "$2"))"; fi ;;
    *) parity_result "$1" "$2" ;;
    esac
}
# to_file FILE CMD...: CMD's output into FILE and then onto stdout (the log); CMD's status
to_file() {
    local f=$1 rc
    shift
    "$@" > "$f" 2>&1
    rc=$?
    cat "$f"
    return $rc
}
export -f to_file
export PARITY
if [ -x "$PARITY" ]; then
    run_stage parity 60 140 bash -c 'to_file "$OUT/parity.txt" "$PARITY" "$@"' _ "${PARITY_ARGS[@]}"
    part parity "$(parity_result "$OUT/parity.txt" $?)"
else
    part parity "FAIL (no parity_main)"
fi

# ---- e2e: one run against 3 shards -----------------------------------------------------------------------------
# the GPU run: 2 classes x 2 shots x 2 seeds (8 groups: 3 shards of 3, 3, 2 groups cut through a class); the
# self-test on a CPU: one seed and one epoch (4 groups), to stay within minutes on a small machine
E2E_DEVICE=cuda E2E_SEEDS="0, 1" E2E_EPOCHS=3 E2E_THREADS=0
[ -z "$GPU_LINE" ] && E2E_DEVICE=cpu E2E_SEEDS=0 E2E_EPOCHS=1 E2E_THREADS=2
export E2E_DEVICE E2E_SEEDS E2E_EPOCHS E2E_THREADS OUT
e2e() {
    local d=/tmp/promptad-e2e bin=$BUILD/promptad ok=0
    rm -rf "$d"
    mkdir -p "$d"
    cat > "$d/cfg.yaml" << EOF
model: {weights: $d/model/tiny.safetensors, vocab: $d/model/vocab.txt.gz, generate: tiny}
data: {format: synth, root: $d/data, synth: {classes: 2, size: 64, train: 4, test_good: 6, test_bad: 6}}
run: {shots: [1, 2], seeds: [$E2E_SEEDS], tasks: [cls, seg], epochs: $E2E_EPOCHS, select: best, resolution: 64, batch: 5, device: $E2E_DEVICE, threads: $E2E_THREADS}
output: {maps: grid, heatmaps: 0, models: false}
EOF
    "$bin" run --config "$d/cfg.yaml" --quiet --set output.dir="$d/one" > /dev/null || ok=1
    for i in 0 1 2; do
        "$bin" run --config "$d/cfg.yaml" --quiet --shard $i/3 --set output.dir="$d/shard$i" > /dev/null || ok=1
    done
    if [ "$E2E_DEVICE" = cuda ]; then
        "$bin" run --config "$d/cfg.yaml" --quiet --set output.dir="$d/graphs" --set run.cuda_graphs=on > /dev/null || ok=1
    fi
    python3 - "$d" "$(echo "$E2E_SEEDS" | tr ',' '\n' | wc -l)" << 'PY' || ok=1
import json, os, sys
d = sys.argv[1]
def units(run):
    out = {}
    top = os.path.join(d, run)
    for r, _, files in os.walk(top):
        if "metrics.json" not in files:
            continue
        j = json.load(open(os.path.join(r, "metrics.json")))
        j.pop("timing_s", None)
        blobs = {f: open(os.path.join(r, f), "rb").read() for f in ("scores.csv", "train.csv") if f in files}
        out[os.path.relpath(r, top)] = (json.dumps(j, sort_keys=True), blobs)
    return out
one = units("one")
bad, want = 0, 2 * 2 * int(sys.argv[2]) * 2  # classes x shots x seeds x tasks
if len(one) != want:
    print(f"FAIL one run: {len(one)} units, expected {want}")
    sys.exit(1)
shards = [units(f"shard{i}") for i in range(3)]
merged, dup = {}, 0
for s in shards:
    for k, v in s.items():
        dup += k in merged
        merged[k] = v
same = sum(1 for k in one if k in merged and merged[k] == one[k])
ok = dup == 0 and set(merged) == set(one) and same == len(one)
print(f"{'PASS' if ok else 'FAIL'} shards: {[len(s) for s in shards]} units in 3 shards, {dup} computed twice, "
      f"{same}/{len(one)} identical to the single run (scores.csv, train.csv, metrics.json without timings)")
for k in sorted(one):
    if k not in merged or merged[k] != one[k]:
        print(f"   differs: {k}" + ("" if k in merged else " (missing)"))
bad += not ok
if os.path.isdir(os.path.join(d, "graphs")):
    g = units("graphs")
    same = sum(1 for k in one if k in g and g[k] == one[k])
    print(f"{'PASS' if same == len(one) else 'FAIL'} graphs: {same}/{len(one)} units identical with CUDA graphs on "
          "(reported, not required)")
sys.exit(1 if bad else 0)
PY
    return $ok
}
export -f e2e
if [ -x "$BUILD/promptad" ] && { [ "$NDEV" -ge 1 ] || [ -z "$GPU_LINE" ]; }; then
    e2e_cap=75
    [ -z "$GPU_LINE" ] && e2e_cap=${DEVICE_CHECK_E2E_LIMIT:-900} # the self-test's CPU runs are slower
    run_stage e2e $e2e_cap 80 bash -c 'to_file "$OUT/e2e.txt" e2e'
    rc=$?
    line=$(grep -E '^(PASS|FAIL) shards' "$OUT/e2e.txt")
    if [ $rc = 0 ] && [ "${line%% *}" = PASS ]; then part e2e "PASS (${line#PASS })"; else
        part e2e "FAIL (${line:-no comparison}; $(why $rc))"
    fi
    gl=$(grep -E '^(PASS|FAIL) graphs' "$OUT/e2e.txt")
    [ -n "$gl" ] && say "e2e graphs (info): $gl"
else
    part e2e "FAIL (no promptad or no CUDA device seen by it: $NDEV)"
fi

# ---- parity at full size (the ViT-B-16-plus-240 towers, full-size prompt steps; repeats the quick checks) --------
# A failed check fails the verdict; a time-out with no failure so far is reported, not failed (the quick run above
# has covered every path; the CPU references of the full-size checks are what takes the time).
if [ -x "$PARITY" ] && [ -n "$GPU_LINE" ]; then
    run_stage parity_full 120 60 bash -c 'to_file "$OUT/parity_full.txt" "$PARITY" --paths safe'
    part parity_full "$(partial_result "$OUT/parity_full.txt" $?)"
else
    part parity_full "SKIPPED (no GPU or no parity_main)"
fi

# ---- Criterion CUDA tests (extra) ------------------------------------------------------------------------------
if [ -z "$GPU_LINE" ]; then
    part build_tests "SKIPPED (self-test)"
    part ctest_cuda "SKIPPED (self-test)"
elif [ "$CRITERION" = 1 ] && [ -x "$BUILD/promptad" ]; then
    run_stage build_tests 45 60 bash -c build_tests
    rc=$?
    if [ $rc = 0 ]; then part build_tests "PASS"; else part build_tests "INFO (not built: $(why $rc))"; fi
    if [ $rc = 0 ]; then
        run_stage ctest_cuda 45 40 bash -c 'to_file "$OUT/ctest.txt" ctest --test-dir "$BUILD" -L cuda --no-tests=error \
            --output-on-failure --timeout 55'
        rc=$?
        sum=$(grep -E 'tests passed' "$OUT/ctest.txt" | tail -1)
        if [ $rc = 0 ] && [ -n "$sum" ]; then part ctest_cuda "PASS ($sum)"; elif grep -qE '[1-9][0-9]* tests failed' \
            "$OUT/ctest.txt"; then part ctest_cuda "FAIL ($sum)"; else part ctest_cuda "INFO (${sum:-no summary}; $(why $rc))"; fi
    else
        part ctest_cuda "SKIPPED (test programs not built)"
    fi
else
    part build_tests "SKIPPED (no Criterion: the plain-C parity runner covers the CUDA paths)"
    part ctest_cuda "SKIPPED (no Criterion)"
fi

# ---- parity of the opt-in speed paths --------------------------------------------------------------------------
if [ -x "$PARITY" ] && [ -n "$GPU_LINE" ]; then
    # the speed paths on trial (fast kernels, pinned cuBLASLt GEMMs, attention v2, graphs, TF32/BF16): each check
    # of parity_main switches on what it tests
    run_stage parity_fast 45 20 bash -c 'to_file "$OUT/parity_fast.txt" "$PARITY" --paths fast'
    r=$(partial_result "$OUT/parity_fast.txt" $?)
    part parity_fast "INFO ${r#INFO }"
else
    part parity_fast "SKIPPED (no GPU or no parity_main)"
fi

# ---- benchmark: short mode, then the long one with time to spare -----------------------------------------------
echo '{}' > "$OUT/bench_gpu.json"
if [ -x "$BUILD/promptad" ] && [ "$NDEV" -ge 1 ]; then
    bb=$(($(left) - 10))
    [ $bb -gt 120 ] && bb=120
    run_stage bench $((bb + 5)) 5 bash "$root/eval/bench_gpu.sh" --build "$BUILD" --quick --json "$OUT/bench_gpu.json" \
        --budget "$bb"
    rc=$?
    sed -n '/=== stage bench (/,/=== stage bench:/p' "$LOG" | grep -vE '^=== ' > "$OUT/bench_gpu.txt"
    mode=quick
    if [ "$(left)" -gt 200 ]; then
        run_stage bench_long $(($(left) - 10)) 5 bash "$root/eval/bench_gpu.sh" --build "$BUILD" \
            --json "$OUT/bench_gpu.json" --budget $(($(left) - 20))
        sed -n '/=== stage bench_long (/,/=== stage bench_long:/p' "$LOG" | grep -vE '^=== ' >> "$OUT/bench_gpu.txt"
        mode="quick + long"
    fi
    part bench "INFO ($mode; $(why $rc); table in bench_gpu.txt)"
else
    part bench "SKIPPED (no CUDA device)"
fi

# ---- verdict ---------------------------------------------------------------------------------------------------
TOTAL=$(($(date +%s) - T_START))
verdict=PASS
for s in deps build parity e2e parity_full ctest_cuda; do
    case "${PART[$s]:-}" in FAIL*) verdict=FAIL ;; esac
done
[ "$NDEV" -ge 1 ] || verdict=FAIL
[ -z "$GPU_LINE" ] && verdict=NO-GPU
{
    echo "{"
    echo "  \"gpu\": \"${GPU_LINE:-none}\", \"kind\": \"$KIND\", \"cuda_devices\": $NDEV, \"seconds\": $TOTAL,"
    echo "  \"budget\": $BUDGET, \"verdict\": \"$verdict\","
    echo "  \"parts\": {"
    sep=
    for s in "${ORDER[@]}"; do
        printf '%s    "%s": "%s"' "$sep" "$s" "$(echo "${PART[$s]:-}" | tr -d '"\\')"
        sep=$',\n'
    done
    echo
    echo "  },"
    echo "  \"bench\": $(cat "$OUT/bench_gpu.json")"
    echo "}"
} > "$OUT/summary.json"
echo
echo "================ digest ================"
grep -E '^FAIL' "$OUT/parity.txt" "$OUT/parity_full.txt" "$OUT/parity_fast.txt" 2> /dev/null | head -30
sed -n '/^(a) images/,$p' "$OUT/bench_gpu.txt" | head -50
for s in "${ORDER[@]}"; do echo "$s: ${PART[$s]:-}"; done
say "VERDICT: $verdict (device kind: $KIND; parity: ${PART[parity]:-}; e2e: ${PART[e2e]%% *}; fast paths: ${PART[parity_fast]:-}; ${TOTAL}s of ${BUDGET}s; files in $OUT)"
[ "$verdict" = FAIL ] && exit 1
exit 0
