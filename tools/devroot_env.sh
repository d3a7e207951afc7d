# devroot_env.sh - source with a folder of .deb files: unpacks them into a private sysroot and points pkg-config,
# the compiler and the loader at it. Used by eval/device_check.sh on machines without our build dependencies.
#   source tools/devroot_env.sh .devdeps /tmp/promptad-devroot
# The linker sees the whole sysroot (LIBRARY_PATH); the loader (LD_LIBRARY_PATH) only a folder of links to the
# sysroot's shared libraries whose names the system's loader cache does not know, so that nothing the system has
# (libssl, zlib, ... used by Python and PyTorch too) is shadowed by Debian's copy.
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
_run="$_root/runlib"
rm -rf "$_run"
mkdir -p "$_run"
_cache=$( (/sbin/ldconfig -p || /usr/sbin/ldconfig -p || ldconfig -p) 2> /dev/null)
for _f in "$_root"/lib/x86_64-linux-gnu/*.so.* "$_root/$_ml"/*.so.* "$_root/$_ml"/openblas-pthread/*.so.*; do
    [ -f "$_f" ] || continue
    # the name the loader looks for: the library's SONAME
    _b=$(readelf -d "$_f" 2> /dev/null | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
    [ -n "$_b" ] || continue
    if ! printf '%s\n' "$_cache" | grep -q "^[[:space:]]*$_b "; then ln -sf "$_f" "$_run/$_b"; fi
done
echo "devroot: $(ls "$_run" | wc -l) libraries of the sysroot on the loader's path: $(ls "$_run" | tr '\n' ' ')"
export LD_LIBRARY_PATH="$_run${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LIBRARY_PATH="$_root/$_ml/openblas-pthread:$_root/$_ml:$_root/lib/x86_64-linux-gnu${LIBRARY_PATH:+:$LIBRARY_PATH}"
export CPATH="$_root/usr/include:$_root/usr/include/x86_64-linux-gnu${CPATH:+:$CPATH}"
# pkgconf from the sysroot needs its own library
command -v pkg-config > /dev/null 2>&1 || ln -sf "$_root/usr/bin/pkgconf" "$_root/usr/bin/pkg-config"
unset _d _debs _ml _run _cache _f _b
