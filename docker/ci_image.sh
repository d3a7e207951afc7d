#!/usr/bin/env bash
# ci_image.sh - CI stage (.ci/run): builds the CPU image of docker/Dockerfile and runs the demo in it, with no
# registry and no Docker daemon. As root on Debian 12:
#   1. installs debootstrap and buildah (apt);
#   2. debootstraps a minimal Debian 12 root filesystem from the Debian mirror apt already uses
#      (/etc/apt/sources.list*), cached as a tarball under build/ci-cache/ for the later stages of the same CI run;
#   3. turns it into the local image localhost/promptad-ci-base:bookworm (buildah from scratch + commit);
#   4. builds docker/Dockerfile with both bases set to that image (buildah bud, vfs storage, chroot isolation,
#      no pulls) into localhost/promptad:cpu;
#   5. checks the image: entry point `promptad --help`, no compiler in its root filesystem, and
#      `promptad run --config configs/demo.yaml` run inside it writes its results into a host folder mounted at
#      /results (summary.csv, every unit's metrics.json).
# The image store lives in build/ci-cache/containers (vfs: plain directories); build/ci-image/results holds the
# demo's results. PROMPTAD_CI_MIRROR overrides the mirror.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
cache=build/ci-cache
base_tar=$cache/debian12-rootfs.tar
base_image=localhost/promptad-ci-base:bookworm
image=localhost/promptad:cpu
results=$PWD/build/ci-image/results
export DEBIAN_FRONTEND=noninteractive

step() { echo "-- ci_image [$((SECONDS - start)) s] $*"; }
fail() {
    echo "ci_image: FAILED: $*" >&2
    exit 1
}

# The first enabled "deb" source of suite bookworm, component main, over http(s), in either sources format.
sources_mirror() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -r $f ]] || continue
        awk '$1 == "deb" {
                i = 2
                if ($2 ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
                main = 0
                for (j = i + 2; j <= NF; j++) if ($j == "main") main = 1
                if ($(i + 1) == "bookworm" && main && $i ~ /^https?:\/\//) print $i
            }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -r $f ]] || continue
        awk 'BEGIN { RS = "" }
            {
                types = uris = suites = comps = ""; enabled = "yes"
                n = split($0, line, "\n")
                for (j = 1; j <= n; j++) {
                    if (line[j] ~ /^[ \t]*#/ || index(line[j], ":") == 0) continue
                    k = index(line[j], ":"); key = tolower(substr(line[j], 1, k - 1)); val = " " substr(line[j], k + 1) " "
                    gsub(/[ \t]+/, " ", val)
                    if (key == "types") types = val; else if (key == "uris") uris = val
                    else if (key == "suites") suites = val; else if (key == "components") comps = val
                    else if (key == "enabled") enabled = val
                }
                if (types ~ / deb / && suites ~ / bookworm / && comps ~ / main / && enabled !~ /no/) {
                    split(uris, u, " ")
                    if (u[1] ~ /^https?:\/\//) print u[1]
                }
            }' "$f"
    done
}

mirror=${PROMPTAD_CI_MIRROR:-$(sources_mirror | head -n 1)}
[[ -n $mirror ]] || fail "no Debian 12 (bookworm, main) mirror in /etc/apt/sources.list*; set PROMPTAD_CI_MIRROR"
mirror=${mirror%/}
offline="this stage needs the Debian mirror $mirror over the network"

step "installing debootstrap and buildah"
apt-get update -q || fail "apt-get update: $offline"
apt-get install -y -q --no-install-recommends debootstrap debian-archive-keyring buildah wget ||
    fail "apt-get install debootstrap buildah: $offline"
wget -q -T 20 -t 2 -O /dev/null "$mirror/dists/bookworm/InRelease" ||
    fail "$mirror/dists/bookworm/InRelease does not answer: $offline"

bh() { buildah --storage-driver vfs --root "$PWD/$cache/containers" --runroot "$PWD/$cache/run" "$@"; }
mkdir -p "$cache"
trap 'bh rm --all >/dev/null 2>&1 || true' EXIT

if [[ ! -s $base_tar ]]; then
    step "debootstrap bookworm (minbase) from $mirror"
    root=$cache/debian12-root
    rm -rf "$root" "$base_tar.tmp"
    debootstrap --variant=minbase bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
        { tail -n 20 "$cache/debootstrap.log" >&2; fail "debootstrap from $mirror: $offline"; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar --numeric-owner -C "$root" -cf "$base_tar.tmp" .
    mv "$base_tar.tmp" "$base_tar"
    rm -rf "$root"
else
    step "reusing the cached root filesystem $base_tar"
fi

if ! bh inspect --type image "$base_image" >/dev/null 2>&1; then
    step "importing it as $base_image"
    ctr=$(bh from scratch)
    mnt=$(bh mount "$ctr")
    tar --numeric-owner -C "$mnt" -xpf "$base_tar"
    bh umount "$ctr" >/dev/null
    bh config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash "$ctr"
    bh commit -q "$ctr" "$base_image" >/dev/null
    bh rm "$ctr" >/dev/null
fi

step "buildah bud docker/Dockerfile with BUILD_BASE = RUNTIME_BASE = $base_image"
bh bud --isolation chroot --pull-never --layers=false -f docker/Dockerfile \
    --build-arg BUILD_BASE="$base_image" --build-arg RUNTIME_BASE="$base_image" -t "$image" . \
    >"$cache/bud.log" 2>&1 || { tail -n 40 "$cache/bud.log" >&2; fail "buildah bud (log: $cache/bud.log)"; }

step "checking the image"
entry=$(bh inspect --type image --format '{{.OCIv1.Config.Entrypoint}} {{.OCIv1.Config.Cmd}}' "$image")
[[ $entry == '[promptad] [--help]' ]] || fail "entry point and command are $entry, not [promptad] [--help]"
ctr=$(bh from --pull-never "$image")
mnt=$(bh mount "$ctr")
compilers=$(find "$mnt" \( -type f -o -type l \) \( -name cc1 -o -path '*/bin/*' \( -name cc -o -name gcc \
    -o -name 'gcc-[0-9]*' -o -name '*-linux-gnu-gcc*' -o -name c++ -o -name 'g++*' -o -name 'clang*' -o -name nvcc \) \) \
    -printf '/%P\n')
[[ -z $compilers ]] || fail "the runtime image holds a compiler: $compilers"
[[ ! -e $mnt/src ]] || fail "the runtime image holds the build tree /src"
echo "no compiler in the runtime image ($(du -sh "$mnt" | cut -f1) root filesystem)"
bh umount "$ctr" >/dev/null
bh run --isolation chroot "$ctr" -- promptad --help >"$cache/help.txt" 2>&1 ||
    { cat "$cache/help.txt" >&2; fail "promptad --help in the image"; }
grep -q '^usage: promptad <command>' "$cache/help.txt" || fail "promptad --help printed no command list"

step "promptad run --config configs/demo.yaml in the image, results mounted from $results"
rm -rf "$results"
mkdir -p "$results"
bh run --isolation chroot --volume "$results:/results" "$ctr" -- \
    promptad run --config configs/demo.yaml --set output.dir=/results || fail "the demo run in the image"
[[ -s $results/synth/summary.csv ]] || fail "no $results/synth/summary.csv on the host"
units=$(find "$results/synth" -name metrics.json | wc -l)
[[ $units -eq 16 ]] || fail "$units metrics.json in $results/synth, expected 16 (2 classes x 2 shots x 2 seeds x 2 tasks)"
echo "results on the host: $results/synth/summary.csv and $units metrics.json"
step "done"
