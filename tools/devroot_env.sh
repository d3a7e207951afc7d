# devroot_env.sh - source with a folder of .deb files: unpacks them into a private sysroot and points pkg-config,
# the compiler and the loader at it. Used by eval/device_check.sh on machines without our build dependencies.
#   source tools/devroot_env.sh .devdeps /tmp/promptad-devroot
_debs="$1"
_root="$2"
mkdir -p "$_root"
for _d in "$_debs"/*.deb; do dpkg-deb -x "$_d" "$_root"; done
_ml=usr/lib/x86_64-linux-gnu
# we link Criterion dynamically: its private requirements' .pc files are not needed
[ -f "$_root/$_ml/pkgconfig/criterion.pc" ] && sed -i '/^Requires.private:/d' "$_root/$_ml/pkgconfig/criterion.pc"
export PKG_CONFIG_SYSROOT_DIR="$_root"
export PKG_CONFIG_LIBDIR="$_root/$_ml/openblas-pthread/pkgconfig:$_root/$_ml/pkgconfig:$_root/usr/share/pkgconfig"
export PATH="$_root/usr/bin:$PATH"
export LD_LIBRARY_PATH="$_root/$_ml/openblas-pthread:$_root/$_ml${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LIBRARY_PATH="$_root/$_ml/openblas-pthread:$_root/$_ml${LIBRARY_PATH:+:$LIBRARY_PATH}"
export CPATH="$_root/usr/include:$_root/usr/include/x86_64-linux-gnu${CPATH:+:$CPATH}"
# pkgconf from the sysroot needs its own library
command -v pkg-config >/dev/null 2>&1 || ln -sf "$_root/usr/bin/pkgconf" "$_root/usr/bin/pkg-config"
unset _d _debs _ml
