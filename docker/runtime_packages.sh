#!/usr/bin/env bash
# runtime_packages.sh BINARY [LEAVE_REGEX] - prints, one per line and sorted, the Debian/Ubuntu packages that own
# the shared libraries BINARY loads (ldd): what a runtime image must install to run it, and nothing else (no
# compiler, no -dev package). Libraries whose path, real path or owning package matches the extended regex
# LEAVE_REGEX are left out: the runtime base already provides them (the CUDA libraries of the CUDA runtime image).
# Used by docker/Dockerfile in its build stage. Fails if a library is missing or has no owning package.
set -euo pipefail
bin=$1
leave=${2:-'^$'}

# dpkg records each file at the path its package shipped it, which on a merged-/usr system is not always the path
# ldd prints (/lib/x86_64-linux-gnu/libcjson.so.1 is shipped as /usr/lib/...; libc's libm.so.6 is shipped under
# /lib), and libraries chosen by update-alternatives (OpenBLAS) are symlinks no package owns. So try the path as
# printed and its real path, each with and without the /usr prefix.
owner() {
    local p c
    for p in "$1" "$(readlink -f "$1")"; do
        for c in "$p" "/usr$p" "${p#/usr}"; do
            if dpkg -S "$c" >/dev/null 2>&1; then
                dpkg -S "$c" | head -n 1 | cut -d: -f1
                return 0
            fi
        done
    done
    return 1
}

out=$(ldd "$bin")
if grep -q 'not found' <<<"$out"; then
    echo "runtime_packages: $bin has unresolved libraries:" >&2
    grep 'not found' <<<"$out" >&2
    exit 1
fi
libs=$(awk '$2 == "=>" && $3 ~ /^\// {print $3}' <<<"$out")
for lib in $libs; do
    grep -Eq -- "$leave" <<<"$lib" && continue
    grep -Eq -- "$leave" <<<"$(readlink -f "$lib")" && continue
    if ! pkg=$(owner "$lib"); then
        echo "runtime_packages: no package owns $lib ($(readlink -f "$lib"))" >&2
        exit 1
    fi
    grep -Eq -- "$leave" <<<"$pkg" || echo "$pkg"
done | sort -u
