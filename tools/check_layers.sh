#!/usr/bin/env bash
# check_layers.sh [SRC_DIR] - checks that every source file of a layer includes only headers of its own layer or of
# the layers below it (the order is docs/architecture.md's: base io backend model eval run cli; model and eval are
# side by side, neither sees the other). cuda/*.cu belong to the backend layer, cuda/metrics.cu to eval.
# Prints each offending line and exits 1; exits 0 when the layering holds.
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"

declare -A sees=(
    [base]="base"
    [io]="base io"
    [backend]="base io backend cuda"
    [model]="base io backend model"
    [eval]="base io backend eval cuda"
    [run]="base io backend model eval run"
    [cli]="base io backend model eval run cli"
)
declare -A owner=()
for layer in "${!sees[@]}"; do
    for h in host/"$layer"/*.h; do
        [ -e "$h" ] && owner[$(basename "$h")]=$layer
    done
done
for h in cuda/*.h cuda/*.cuh; do
    [ -e "$h" ] && owner[$(basename "$h")]=cuda
done

bad=0
check() { # file layer
    local f=$1 layer=$2 line inc o
    while IFS= read -r line; do
        inc=${line#*\"}
        inc=${inc%%\"*}
        o=${owner[$(basename "$inc")]:-}
        [ -z "$o" ] && continue # a system header or one of the file's own folder that is not a layer header
        if [[ " ${sees[$layer]} " != *" $o "* ]]; then
            echo "$f: layer '$layer' includes $inc of layer '$o'"
            bad=1
        fi
    done < <(grep -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" || true)
}
for layer in "${!sees[@]}"; do
    for f in host/"$layer"/*.c host/"$layer"/*.h; do
        [ -e "$f" ] && check "$f" "$layer"
    done
done
for f in cuda/*.cu cuda/*.cuh cuda/*.h; do
    [ -e "$f" ] || continue
    if [ "$(basename "$f")" = metrics.cu ]; then check "$f" eval; else check "$f" backend; fi
done
if [ "$bad" = 0 ]; then echo "check_layers: every include respects the layers"; fi
exit "$bad"
