#!/usr/bin/env bash
# fetch_device_deps.sh - download, here, the Debian packages promptad builds against, into .devdeps/ (git-ignored),
# so that a GPU machine without package registries (the `device` tool's H100 / H200) can build from a clean tree:
# eval/device_check.sh unpacks them into a private sysroot when the system lacks them. Run once before the device
# call, and name .devdeps in the call's `carry`. About 22 MB (with the CLIP vocabulary, when found beside the
# checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .devdeps
cd .devdeps
pkgs=(
    libopenblas-dev libopenblas-pthread-dev libopenblas0-pthread libopenblas0 libgfortran5
    libcjson-dev libcjson1 libstb-dev libstb0 libjpeg-dev libjpeg62-turbo-dev libjpeg62-turbo
    libcyaml-dev libcyaml1 libyaml-dev libyaml-0-2 libutf8proc-dev libutf8proc2 zlib1g-dev
    libcriterion-dev libcriterion3 libgit2-1.5 libnanomsg5 libffi8 libhttp-parser2.9 libssh2-1
    libmbedtls14 libmbedx509-1 libmbedcrypto7 pkgconf pkgconf-bin libpkgconf3
    # runtime libraries of the above that a bare machine may lack (libgit2's krb5 / pcre2 / ssl chain, OpenBLAS's
    # gfortran -> quadmath, zlib): tools/devroot_env.sh puts on the loader's path only those the system has not
    zlib1g libssl3 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1 libpcre2-8-0
    libquadmath0
)
apt-get download "${pkgs[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true
ls ./*.deb | wc -l | xargs echo "debs in .devdeps:"
# The CLIP BPE vocabulary, when this machine has it beside the checkout (never committed: .devdeps is ignored): the
# device check's tokenizer tests and the benchmark's prompt lengths need the real one.
for d in ../../shared/data /work/shared/data; do
    if [ -f "$d/bpe_simple_vocab_16e6.txt.gz" ]; then
        cp "$d/bpe_simple_vocab_16e6.txt.gz" .
        echo "CLIP vocabulary copied from $d"
        break
    fi
done
