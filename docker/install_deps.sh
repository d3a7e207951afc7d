#!/usr/bin/env bash
# install_deps.sh [--build-only] - every system package promptad needs to build and test, on Debian 12 / Ubuntu
# 22.04+. Shared by .ci/run and docker/Dockerfile so that the three never drift apart. Idempotent; runs as root.
# --build-only (the Dockerfile): only what building the promptad binary needs, without the test framework, the
# formatter and git.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
extra=(libcriterion-dev clang-format git)
if [[ ${1-} == --build-only ]]; then
    extra=()
elif [[ $# -gt 0 ]]; then
    echo "usage: install_deps.sh [--build-only]" >&2
    exit 2
fi
apt-get update
apt-get install -y --no-install-recommends \
    build-essential cmake pkg-config ca-certificates \
    libopenblas-dev libcjson-dev libstb-dev libjpeg-dev zlib1g-dev libcyaml-dev libyaml-dev libutf8proc-dev \
    "${extra[@]}"
