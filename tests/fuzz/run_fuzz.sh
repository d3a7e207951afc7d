#!/usr/bin/env bash
# run_fuzz.sh - builds the libFuzzer targets of tests/fuzz with clang (a separate, instrumented build folder) and
# runs each for a fixed time, starting from its seed corpus (tests/fuzz/corpus/<name>) plus the reproducers of the
# defects fuzzing found before (tests/fuzz/crashes/<name>, each must now pass). Fails on any crash, sanitizer report,
# leak, timeout (one input running longer than FUZZ_TIMEOUT s) or out-of-memory (FUZZ_RSS_MB). Prints one line per
# target with its executions. The corpus in the repository is never modified; what the run finds goes to $FUZZ_OUT.
#
#   tests/fuzz/run_fuzz.sh [TOTAL_SECONDS (default 90)] [TARGET...]
# Environment: BUILD (build folder, default build-fuzz), FUZZ_OUT (default: a temporary folder, kept on failure),
# FUZZ_TIMEOUT (default 10), FUZZ_RSS_MB (default 2048), JOBS (default nproc).
set -euo pipefail
cd "$(dirname "$0")/../.."
TOTAL=${1:-90}
shift || true
BUILD=${BUILD:-build-fuzz}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
FUZZ_RSS_MB=${FUZZ_RSS_MB:-2048}
JOBS=${JOBS:-$(nproc)}

cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPROMPTAD_FUZZ=ON \
    -DPROMPTAD_CUDA=OFF -DPROMPTAD_TESTS=OFF -DPROMPTAD_BENCH=OFF >/dev/null
cmake --build "$BUILD" --target fuzz -j"$JOBS"

if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for src in tests/fuzz/fuzz_*.c; do
        name=$(basename "$src" .c)
        [ "$name" = fuzz_stb_image ] || targets+=("${name#fuzz_}")
    done
fi
per=$((TOTAL / ${#targets[@]}))
[ "$per" -ge 1 ] || per=1
OUT=${FUZZ_OUT:-$(mktemp -d /tmp/promptad-fuzz.XXXXXX)}
mkdir -p "$OUT"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
failed=()
for t in "${targets[@]}"; do
    bin="$BUILD/tests/fuzz/fuzz_$t"
    work="$OUT/corpus_$t"
    mkdir -p "$work" "$OUT/artifacts"
    opts=(-timeout="$FUZZ_TIMEOUT" -rss_limit_mb="$FUZZ_RSS_MB" -artifact_prefix="$OUT/artifacts/$t-")
    # the reproducers of earlier findings first: each input once
    if [ -d "tests/fuzz/crashes/$t" ] && [ -n "$(ls -A "tests/fuzz/crashes/$t")" ]; then
        if ! "$bin" "${opts[@]}" tests/fuzz/crashes/"$t"/* >"$OUT/$t.regress.log" 2>&1; then
            echo "fuzz $t: a reproducer of tests/fuzz/crashes/$t fails again (log: $OUT/$t.regress.log)"
            tail -n 30 "$OUT/$t.regress.log"
            failed+=("$t")
            continue
        fi
    fi
    rc=0
    "$bin" "${opts[@]}" -max_total_time="$per" -print_final_stats=1 "$work" "tests/fuzz/corpus/$t" \
        >"$OUT/$t.log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/$t.log" | tail -n 1)
    echo "fuzz $t: ${execs:-?} executions in ${per} s, exit $rc"
    if [ "$rc" -ne 0 ]; then
        grep -E "ERROR|SUMMARY|runtime error|Test unit written" "$OUT/$t.log" | head -n 8 || true
        echo "  log: $OUT/$t.log"
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing FAILED: ${failed[*]} (artifacts in $OUT/artifacts; minimise with <target> -minimize_crash=1)"
    exit 1
fi
[ -n "${FUZZ_OUT:-}" ] || rm -rf "$OUT"
echo "fuzzing passed: ${#targets[@]} targets"
