#!/usr/bin/env bash
# install_deps.sh - every system package promptad needs to build and test, on Debian 12 / Ubuntu 22.04+.
# Shared by .ci/run and docker/Dockerfile so that the three never drift apart. Idempotent; runs as root.
#   --fuzz   also the fuzzing tools of tests/fuzz/run_fuzz.sh (clang with libFuzzer and the sanitizer runtimes, LLVM's
#            symbolizer, the LLVM OpenMP runtime that clang links); .ci/run uses it, the Docker image does not.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
extra=()
if [ "${1:-}" = "--fuzz" ]; then
    extra=(clang libclang-rt-dev llvm libomp-dev)
fi
apt-get update
apt-get install -y --no-install-recommends \
    build-essential cmake pkg-config git ca-certificates \
    libopenblas-dev libcjson-dev libstb-dev libjpeg-dev zlib1g-dev libcyaml-dev libutf8proc-dev \
    libcriterion-dev clang-format "${extra[@]}"
