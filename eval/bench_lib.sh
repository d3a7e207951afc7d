# shellcheck shell=sh
# bench_lib.sh - shell functions shared by the benchmark scripts of eval/ (sourced: `. "$here/eval/bench_lib.sh"`;
# POSIX sh). What every CPU benchmark does the same way: the OpenBLAS kernel choice, the machine line that heads its
# output, and removing a scratch file or folder on exit.

# OpenBLAS 0.3.21 (Debian 12) does not recognise CPUs newer than it (e.g. Emerald Rapids, family 6 model 207) and
# falls back to its generic SSE3 kernels ("Prescott"), 3-4x slower; the promptad binary then re-executes itself
# with OPENBLAS_CORETYPE set (host/cli/main.c). A benchmark does the same for every program it runs, promptad's and
# PyTorch's: unless OPENBLAS_CORETYPE is already set, it exports SkylakeX (AVX-512) or Haswell (AVX2) when
# `$1 --blas-core` (a bench_vit program) reports a generic kernel set or cannot tell.
bench_openblas_core() {
    [ -z "${OPENBLAS_CORETYPE:-}" ] || return 0
    _core=
    [ -x "$1" ] && _core=$("$1" --blas-core 2>/dev/null || true)
    case "$_core" in
    Prescott | Core2 | generic | "")
        if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
        elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi ;;
    esac
}

# The line that heads a benchmark's output: "# <UTC time> <CPU model>, <cores> cores, <the arguments>,
# OPENBLAS_CORETYPE=<value>".
bench_machine_line() {
    echo "# $(date -u +%FT%TZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores," \
         "$*, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
}

# bench_remove_on_exit PATH: removes the scratch file or folder PATH when the script exits (one per script: it sets
# the EXIT trap).
bench_remove_on_exit() {
    _bench_scratch=$1
    trap 'rm -rf "$_bench_scratch"' EXIT
}
