#!/usr/bin/env bash
# bench_gpu.sh - the GPU benchmark (issue 7), on one CUDA GPU, each figure next to its target:
#  (a) ViT-B-16-plus-240 images/s at batch 1, 64 and 256: promptad (build/bench_vit) in float32 with the default
#      kernels, then the fast paths (fast kernels + CUDA graphs; fp32, tf32, bf16 GEMMs), against PyTorch running
#      the same dual-path architecture on the same GPU in this script (eval/bench/bench_vit_torch.py: fp32, tf32,
#      bf16 autocast, fused SDPA attention);
#  (b) one class of the official protocol (bench_classrun: n_test test images at R x R, k shots, 100 epochs of
#      prompt training with the per-epoch evaluation, cls and seg), stage by stage, with the default settings and
#      with the fast ones, also as two processes sharing the GPU; and the PyTorch twin of a unit
#      (bench_classrun_torch.py: the official code's per-epoch test loop, and a cached all-GPU port);
#  (c) the projected full sweep, MVTec AD (15 classes, 1725 test images) + VisA (12 classes, 2162) x shots
#      {1, 2, 4} x 5 seeds x {cls, seg} = 810 units, from the measured per-class and per-unit costs.
#
#   eval/bench_gpu.sh [--build DIR] [--quick] [--json FILE] [--budget SECONDS]
#
# Needs a CUDA build (cmake -DPROMPTAD_CUDA=ON) and a GPU; prints "no CUDA device" and exits 0 otherwise.
# PYTHON (default python3) must have torch with CUDA for the PyTorch side; without it that side is skipped.
# PROMPTAD_VOCAB: the CLIP BPE vocabulary for realistic prompt lengths (else bytes, marked vocab=bytes).
# Every step runs under `timeout`, so one hang costs its own time only; with --budget no step starts when less than
# its minimum is left, and each is cut to what is left, so the summary is always printed. --quick: fewer sizes,
# 20 epochs.
# Self-test on a machine without a GPU (tiny sizes, the CPU backend, no PyTorch side):
#   BENCH_GPU_DEVICE=cpu BENCH_GPU_PRESET=tiny BENCH_GPU_BATCHES=1,4 \
#   BENCH_GPU_CLASSRUN="--n-test 6 --res 64 --shots 2 --batch 4" eval/bench_gpu.sh --quick
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=build
quick=0
json=
budget=100000
while [ $# -gt 0 ]; do
    case "$1" in
    --build) build=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --json) json=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--quick] [--json FILE] [--budget SECONDS]" >&2; exit 2 ;;
    esac
done
t_begin=$(date +%s)
left() { echo $((budget - ($(date +%s) - t_begin) - 8)); } # 8 s kept for the summary
case "$build" in /*) ;; *) build="$here/$build" ;; esac
py=${PYTHON:-python3}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

dev=${BENCH_GPU_DEVICE:-cuda}
preset=${BENCH_GPU_PRESET:-vit-b-16-plus-240}
ndev=$("$build/promptad" version 2>/dev/null | sed -n 's/.*CUDA devices: \([0-9]*\).*/\1/p')
if [ "$dev" = cuda ] && { [ -z "$ndev" ] || [ "$ndev" -lt 1 ]; }; then
    echo "bench_gpu: no CUDA device (promptad version: $("$build/promptad" version 2>&1 | head -1)): nothing measured"
    [ -n "$json" ] && echo '{"bench_gpu": "no CUDA device"}' > "$json"
    exit 0
fi
echo "# bench_gpu $(date -u +%FT%TZ): $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
torch_ok=0
if [ "$dev" = cuda ] && "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    torch_ok=1
    echo "# PyTorch $("$py" -c 'import torch; print(torch.__version__)') on $("$py" -c 'import torch; print(torch.cuda.get_device_name(0))')"
else
    echo "# no PyTorch with CUDA in $py: the PyTorch side is skipped"
fi

step() { # seconds, command...: runs with a time limit (cut to the budget left), output into the log and stdout
    local t=$1 l
    shift
    l=$(left)
    [ "$l" -lt "$t" ] && t=$l
    if [ "$t" -lt 10 ]; then
        echo "# step skipped (budget spent): $*" | tee -a "$log"
        return 0
    fi
    timeout -k 5 "$t" "$@" 2>&1 | tee -a "$log"
    local rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] || echo "# step failed or timed out (status $rc): $*" | tee -a "$log"
}

if [ "$quick" = 1 ]; then batches=1,64; mt=0.3; epochs=20; else batches=1,64,256; mt=1.0; epochs=100; fi
batches=${BENCH_GPU_BATCHES:-$batches}
vit=("$build/bench_vit" --device "$dev" --preset "$preset" --batches "$batches" --iters 3 --min-time "$mt")

echo "## (a) ViT-B-16-plus-240 images/s"
step 60 "${vit[@]}" --tag ours-fp32
# the GEMMs as one strided-batched cuBLAS call (batch-dependent, the old way) and as pinned cuBLASLt algorithms with
# the v2 attention kernel (both on trial): what the default one call per image costs and what the trial paths gain
step 45 env PROMPTAD_CUDA_GEMM=batched "${vit[@]}" --tag ours-batchedgemm-fp32
step 45 env PROMPTAD_CUDA_GEMM=pinned PROMPTAD_CUDA_ATTENTION=v2 "${vit[@]}" --graphs --tag ours-pinned-v2-fp32
step 60 "${vit[@]}" --kernels fast --graphs --tag ours-fast-fp32
step 60 "${vit[@]}" --kernels fast --graphs --math tf32 --tag ours-fast-tf32
step 60 "${vit[@]}" --kernels fast --graphs --math bf16 --tag ours-fast-bf16
if [ "$torch_ok" = 1 ]; then
    step 120 "$py" "$here/eval/bench/bench_vit_torch.py" --device cuda --batches "$batches" --iters 3 \
        --min-time "$mt" --precision fp32,tf32,bf16 --sdpa --tag torch-sdpa
    step 60 "$py" "$here/eval/bench/bench_vit_torch.py" --device cuda --batches "$batches" --iters 3 \
        --min-time "$mt" --precision fp32 --tag torch-plain
fi

echo "## (b) one class of the official protocol (200 test images at 400x400, 4 shots, $epochs epochs, cls + seg)"
# shellcheck disable=SC2206
cr=("$build/bench_classrun" --device "$dev" --epochs "$epochs" ${BENCH_GPU_CLASSRUN:---n-test 200 --res 400 --shots 4 --batch 64})
step 150 "${cr[@]}" --tag classrun-default
step 150 "${cr[@]}" --graphs --kernels fast --math tf32 --tag classrun-fast
# two processes sharing the GPU (promptad run --gpus 0,0): aggregate throughput
tp=$(left)
[ "$tp" -gt 150 ] && tp=150
t0=$(date +%s.%N)
if [ "$tp" -ge 20 ]; then
    { timeout -k 5 "$tp" "${cr[@]}" --graphs --kernels fast --math tf32 --tag classrun-pairA > "$log.a" 2>&1 &
      timeout -k 5 "$tp" "${cr[@]}" --graphs --kernels fast --math tf32 --tag classrun-pairB > "$log.b" 2>&1 &
      wait; }
fi
t1=$(date +%s.%N)
grep -h '^classrun-pair' "$log.a" "$log.b" 2>/dev/null | tee -a "$log"
echo "classrun-pair-wall seconds=$(echo "$t1 - $t0" | bc -l 2>/dev/null || "$py" -c "print($t1 - $t0)")" | tee -a "$log"
rm -f "$log.a" "$log.b"
if [ "$torch_ok" = 1 ]; then
    P_cls=$(sed -n 's/^classrun-default .* cls_prompts=\([0-9]*\) cls_len=\([0-9]*\).*/\1 \2/p' "$log" | head -1)
    P_seg=$(sed -n 's/^classrun-default .* seg_prompts=\([0-9]*\) seg_len=\([0-9]*\).*/\1 \2/p' "$log" | head -1)
    set -- ${P_cls:-48 12}
    step 150 "$py" "$here/eval/bench/bench_classrun_torch.py" --task cls --prompts "$1" --len "$2" --epochs "$epochs" \
        --measure 2 --measure-official 1
    set -- ${P_seg:-16 12}
    step 150 "$py" "$here/eval/bench/bench_classrun_torch.py" --task seg --prompts "$1" --len "$2" --epochs "$epochs" \
        --measure 2 --measure-official 1
fi

echo "## (c) summary, projection of the full sweep, targets"
"$py" - "$log" "$json" <<'PY'
import json, re, sys
lines = open(sys.argv[1]).read().splitlines()
def kv(line):
    return {k: v for k, v in re.findall(r"(\w+)=([^\s]+)", line)}
vit = {}  # (tag, batch) -> images/s
for ln in lines:
    m = re.match(r"([\w-]+) .*batch=(\d+) .* images_per_s=([\d.]+)", ln)
    if m and (m.group(1).startswith("ours") or m.group(1).startswith("torch")):
        d = kv(ln)
        tag = m.group(1) + ("-" + d["precision"] if "precision" in d else "")
        vit[(tag, int(m.group(2)))] = float(m.group(3))
runs = {ln.split()[0]: kv(ln) for ln in lines if ln.startswith("classrun")}
torch_runs = {}
for ln in lines:
    if ln.startswith("torch_classrun"):
        d = kv(ln)
        torch_runs[(d["variant"], d["task"])] = d
out = {"vit_images_per_s": {f"{t}@{b}": v for (t, b), v in vit.items()}}
rows = []
def row(what, value, target, ok):
    rows.append((what, value, target, "yes" if ok is True else "NO" if ok is False else "-"))
# (a)
batches = sorted({b for (_, b) in vit})
ours_tags = sorted({t for (t, _) in vit if t.startswith("ours")})
torch_tags = sorted({t for (t, _) in vit if t.startswith("torch")})
print("\n(a) images/s, ViT-B-16-plus-240 dual path (median iteration)")
print("config".ljust(28) + "".join(f"batch {b:>4}".rjust(14) for b in batches))
for t in ours_tags + torch_tags:
    print(t.ljust(28) + "".join((f"{vit[(t, b)]:.1f}" if (t, b) in vit else "-").rjust(14) for b in batches))
best_ours = {b: max([vit[(t, b)] for t in ours_tags if (t, b) in vit] or [0]) for b in batches}
best_torch = {b: max([vit[(t, b)] for t in torch_tags if (t, b) in vit] or [0]) for b in batches}
for b in batches:
    if b >= 64:
        row(f"ViT images/s at batch {b} (best config)", f"{best_ours[b]:.0f}", ">= 5000", best_ours[b] >= 5000)
    if best_torch[b] > 0:
        row(f"ViT vs best PyTorch at batch {b}", f"{best_ours[b] / best_torch[b]:.2f}x", "-", None)
def same(pt, po, b):
    if (pt, b) in vit and (po, b) in vit:
        return f"{vit[(po, b)] / vit[(pt, b)]:.2f}x"
    return "-"
for b in batches:
    print(f"ratio at batch {b}: fp32 {same('torch-sdpa-fp32', 'ours-fast-fp32', b)}, "
          f"tf32 {same('torch-sdpa-tf32', 'ours-fast-tf32', b)}, bf16 {same('torch-sdpa-bf16', 'ours-fast-bf16', b)}"
          f" (promptad fast / PyTorch SDPA, same precision)")
out["classrun"] = runs
# (b) + (c)
def f(d, k):
    try:
        return float(d[k])
    except (KeyError, ValueError):
        return float("nan")
sweep = {}
for tag in ("classrun-default", "classrun-fast"):
    d = runs.get(tag)
    if not d:
        continue
    n = f(d, "n_test"); ep = f(d, "epochs"); scale_ep = 100.0 / ep
    print(f"\n(b) {tag}: n_test {d['n_test']}, R {d['res']}, k {d['shots']}, {d['epochs']} epochs, vocab {d['vocab']},"
          f" graphs {d['graphs']}, kernels {d['kernels']}, encode math {d['math']}")
    for k in ("encode_test_s", "shots_s", "visual_s", "cls_vmaps_s", "cls_train_s", "cls_tvec_s", "cls_eval_s",
              "cls_final_s", "cls_unit_s", "seg_train_s", "seg_tvec_s", "seg_eval_s", "seg_final_s", "seg_unit_s"):
        print(f"  {k:16s} {f(d, k):9.3f} s")
    print(f"  per epoch: cls {d['cls_epoch_ms']} ms, seg {d['seg_epoch_ms']} ms; encoding {d['encode_img_per_s']} img/s")
    cls_u = (f(d, "cls_train_s") + f(d, "cls_tvec_s") + f(d, "cls_eval_s")) * scale_ep + f(d, "cls_final_s")
    seg_u = (f(d, "seg_train_s") + f(d, "seg_tvec_s") + f(d, "seg_eval_s")) * scale_ep + f(d, "seg_final_s")
    row(f"one class unit, cls, 100 epochs ({tag})", f"{cls_u:.2f} s", "<= 1 s", cls_u <= 1)
    row(f"one class unit, seg, 100 epochs ({tag})", f"{seg_u:.2f} s", "<= 1 s", seg_u <= 1)
    # the cost model: per class the test set is encoded once; per (k, seed) the shots, V and the cls pixel maps;
    # per unit the training (independent of n_test) and the evaluation (proportional to n_test)
    per_img = f(d, "encode_test_s") / n
    per_kseed_fixed = f(d, "shots_s")
    per_kseed_img = (f(d, "visual_s") + f(d, "cls_vmaps_s")) / n
    unit_fixed = (f(d, "cls_train_s") + f(d, "cls_tvec_s") + f(d, "seg_train_s") + f(d, "seg_tvec_s")) * scale_ep
    unit_img = ((f(d, "cls_eval_s") + f(d, "seg_eval_s")) * scale_ep + f(d, "cls_final_s") + f(d, "seg_final_s")) / n
    total = 0.0
    for name, classes, n_test in (("MVTec AD", 15, 1725), ("VisA", 12, 2162)):
        groups = classes * 3 * 5  # (class, k, seed)
        t = n_test * per_img + groups * (per_kseed_fixed + unit_fixed) + 15 * n_test * (per_kseed_img + unit_img)
        total += t
        print(f"  projected {name}: {t / 60:.2f} min (1 process)")
    sweep[tag] = total
    row(f"full sweep, 810 units, 1 process ({tag})", f"{total / 60:.1f} min", "<= 10 min", total <= 600)
# two processes on one GPU: aggregate speed-up over one
pa, pb = runs.get("classrun-pairA"), runs.get("classrun-pairB")
wall = next((float(kv(l)["seconds"]) for l in lines if l.startswith("classrun-pair-wall")), float("nan"))
fast = runs.get("classrun-fast")
if pa and pb and fast and wall == wall:
    one = f(fast, "total_s") - f(fast, "setup_s")
    both = wall - max(f(pa, "setup_s"), f(pb, "setup_s"))
    speedup = 2 * one / both if both > 0 else float("nan")
    print(f"\n two processes on one GPU: {both:.2f} s for two class runs vs {one:.2f} s for one: "
          f"{speedup:.2f}x the throughput of one process")
    if "classrun-fast" in sweep and speedup == speedup:
        t2 = sweep["classrun-fast"] / max(speedup, 1.0)
        sweep["classrun-fast x2"] = t2
        row("full sweep, 2 processes on the GPU (--gpus 0,0)", f"{t2 / 60:.1f} min", "<= 10 min", t2 <= 600)
# PyTorch end to end
ours = runs.get("classrun-fast") or runs.get("classrun-default")
if ours and torch_runs:
    scale_ep = 100.0 / f(ours, "epochs")
    for task in ("cls", "seg"):
        ou = (f(ours, f"{task}_train_s") + f(ours, f"{task}_tvec_s") + f(ours, f"{task}_eval_s")) * scale_ep \
             + f(ours, f"{task}_final_s")
        for variant in ("official", "cached"):
            d = torch_runs.get((variant, task))
            if not d:
                continue
            tu = f(d, "unit_s") * 100.0 / f(d, "epochs")
            r = tu / ou if ou > 0 else float("nan")
            print(f" {task} unit: promptad {ou:.2f} s, PyTorch {variant} {tu:.2f} s -> {r:.1f}x")
            row(f"end to end vs PyTorch {variant}, {task} unit", f"{r:.1f}x", ">= 10x", r >= 10)
print("\n| target | measured | goal | met |\n|---|---|---|---|")
for what, value, target, ok in rows:
    print(f"| {what} | {value} | {target} | {ok} |")
out["targets"] = [{"what": w, "measured": v, "goal": t, "met": o} for (w, v, t, o) in rows]
out["sweep_s"] = sweep
if len(sys.argv) > 2 and sys.argv[2]:
    with open(sys.argv[2], "w") as fp:
        json.dump(out, fp, indent=1)
PY
