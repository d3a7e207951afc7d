#!/bin/sh
# bench_cohort.sh - cohort training and the feature cache (`promptad run`, run.cohort and cache.dir; issue 11) on the
# CPU, every figure a ratio against a baseline measured in the same run on the same machine:
#  (a) units/s for a whole class (shots 1, 2, 4 x seeds 0-4 x cls, seg = 30 units of one synthetic class) with the
#      demo model (model.generate tiny): run.cohort 1 against run.cohort auto with the feature cache warm (a
#      1-epoch pass fills it first), so both time the training and the evaluation; the marginal cost of one epoch of
#      a (k, seed) group (runs of EPOCHS and of 1 epoch); a 1-epoch run with a cold cache against the same warm;
#  (b) the same with the full-size random ViT-B-16-plus-240 (`promptad make-model --preset vit-b-16-plus-240`, the
#      CLIP BPE vocabulary of configs/vocab, so the prompts have their real lengths) and seed 0 only: its vision tower
#      is paid once per image in the filling pass, the timed runs train the full-size text tower;
#  (c) a repeat run of the demo config (configs/demo.yaml, fewer epochs) with another train.lr: cold cache against
#      warm cache, wall time of the run;
#  (d) what docs/performance.md projects the GPU sweep from: the backend ops of one epoch (counted with
#      PROMPTAD_DEBUG_OPS=1), the prompt rows and their cut length and the text tower's epoch at full size
#      (build/bench_text, class carpet).
# Every cohort-auto unit is compared byte for byte with its cohort-1 twin (scores.csv, train.csv): "differ" in the
# output.
#
#   bash eval/bench_cohort.sh [OUTDIR]        (default build/bench_cohort)
#
# Writes OUTDIR/bench_cohort.{log,json,md} and prints the table; the work folder OUTDIR/work is rebuilt each time.
# Environment: BENCH_COHORT_BUILD (build folder, build), BENCH_COHORT_EPOCHS (demo-model epochs, 3),
# BENCH_COHORT_FULL_EPOCHS (full size, 2), BENCH_COHORT_FULL_SEEDS (full size, "0"), BENCH_COHORT_DEMO_EPOCHS ((c), 2),
# BENCH_COHORT_ROUNDS (timed rounds of (a) and (b), 1; the best round counts), BENCH_COHORT_FULL=0 (leave (b) out),
# BENCH_COHORT_THREADS (run.threads, 1: on a machine shared with other jobs, OpenMP threads that spin-wait for each
# other run several times slower than one thread; both settings run with the same count).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/build/bench_cohort}
build=$here/${BENCH_COHORT_BUILD:-build}
epochs=${BENCH_COHORT_EPOCHS:-3}
full_epochs=${BENCH_COHORT_FULL_EPOCHS:-2}
full_seeds=${BENCH_COHORT_FULL_SEEDS:-0}
rounds=${BENCH_COHORT_ROUNDS:-1}
full=${BENCH_COHORT_FULL:-1}
demo_epochs=${BENCH_COHORT_DEMO_EPOCHS:-2}
threads=${BENCH_COHORT_THREADS:-1}
bin=$build/promptad
[ -x "$bin" ] || { echo "bench_cohort: $bin not built (cmake --build $build)" >&2; exit 1; }
. "$here/eval/bench_lib.sh"
bench_openblas_core "$build/bench_vit"
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$out/work
rm -rf "$work"
mkdir -p "$work"
log=$out/bench_cohort.log
bench_machine_line "$("$bin" version 2>/dev/null | head -1), run.threads $threads, epochs $epochs (full size" \
    "$full_epochs, demo $demo_epochs), rounds $rounds" | tee "$log"

# run TAG CONFIG [--set ...]: one `promptad run`; its wall time, its CPU time (user + system, which the load of a
# shared machine disturbs much less than the wall time) and its counts as a line of the log
run() {
    tag=$1 cfg=$2
    shift 2
    t=$(/usr/bin/python3 -c 'import resource, subprocess, sys, time
t0 = time.time()
with open(sys.argv[1], "w") as out, open(sys.argv[2], "w") as err:
    rc = subprocess.call(sys.argv[3:], stdout=out, stderr=err)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{time.time() - t0:.3f} {r.ru_utime + r.ru_stime:.3f} {rc}")' "$work/$tag.out" "$work/$tag.err" \
        "$bin" run --config "$cfg" --set run.threads="$threads" "$@")
    # shellcheck disable=SC2086 # the three numbers as $1 $2 $3
    set -- $t
    if [ "$3" != 0 ]; then
        echo "bench_cohort: run $tag failed:" >&2
        tail -n 20 "$work/$tag.err" >&2
        exit 1
    fi
    units=$(sed -n 's/^promptad run: \([0-9]*\) units computed.*/\1/p' "$work/$tag.err" | tail -n 1)
    cached=$(sed -n 's/.*: \([0-9]*\) of \([0-9]*\) images from the feature cache.*/\1 \2/p' "$work/$tag.err" |
        awk '{ h += $1; n += $2 } END { printf "%d/%d", h, n }')
    cohorts=$(grep -c 'training a cohort of' "$work/$tag.err" || true)
    echo "run tag=$tag wall_s=$1 cpu_s=$2 units=${units:-0} cache=$cached cohorts=$cohorts" | tee -a "$log"
}
# same A B: whether every unit of results A has the bytes of B's in scores.csv and train.csv
same() {
    n=0 bad=0
    for f in $(cd "$1" && find . -name scores.csv -o -name train.csv | sort); do
        n=$((n + 1))
        cmp -s "$1/$f" "$2/$f" || bad=$((bad + 1))
    done
    echo "same a=$(basename "$1") b=$(basename "$2") files=$n differ=$bad" | tee -a "$log"
}

# class_runs PART CONFIG EPOCHS: a 1-epoch pass that fills the feature cache, ROUNDS rounds of run.cohort 1 and auto,
# 1-epoch runs with a cold and the warm cache, and whether the cohort's units equal the serial ones
class_runs() {
    part=$1 cfg=$2 ep=$3
    echo "settings ${part}_epochs=$ep" >>"$log"
    run "$part-fill" "$cfg" --set run.epochs=1 --set output.dir="$work/$part-fill"
    r=1
    while [ "$r" -le "$rounds" ]; do
        for c in c1 auto; do
            run "$part-$c-r$r" "$cfg" --set run.cohort="${c#c}" --set output.dir="$work/$part-$c-r$r"
        done
        r=$((r + 1))
    done
    # 1 epoch with a new (cold) cache, then the same warm, back to back (the load of a shared machine drifts)
    run "$part-c1-e1-cold" "$cfg" --set run.cohort=1 --set run.epochs=1 --set cache.dir="$work/cache-$part-cold" \
        --set output.dir="$work/$part-c1-e1-cold"
    for c in c1 auto; do
        run "$part-$c-e1" "$cfg" --set run.cohort="${c#c}" --set run.epochs=1 --set output.dir="$work/$part-$c-e1"
    done
    same "$work/$part-c1-r1" "$work/$part-auto-r1"
}

# class_config FILE WEIGHTS VOCAB GENERATE SEEDS EPOCHS CACHE: one synthetic class (8 train, 8 + 8 test images of
# 128 x 128), shots 1, 2, 4, both tasks, the clean protocol (evaluation after the last epoch), grid maps, no heatmaps
# or models
class_config() {
    cat >"$1" <<EOF
model: {weights: $2, vocab: $3, generate: $4}
data:
  format: synth
  root: $work/data
  synth: {classes: 1, size: 128, train: 8, test_good: 8, test_bad: 8}
run: {protocol: clean, shots: [1, 2, 4], seeds: [$5], tasks: [cls, seg], epochs: $6, device: cpu, resolution: 64,
      batch: 8}
output: {maps: grid, heatmaps: 0, models: false}
cache: {dir: $7}
EOF
}

# ---------------------------------------------------------------------------------------------------------------
# (a) the demo model, one class, 30 units
echo "## (a) demo model: one class, 30 units, $epochs epochs" | tee -a "$log"
tiny=$work/tiny.yaml
class_config "$tiny" "$work/model/tiny.safetensors" "$work/model/bytes.txt.gz" tiny "0, 1, 2, 3, 4" "$epochs" \
    "$work/cache_tiny"
class_runs tiny "$tiny" "$epochs"

# ops of one epoch: a 1-epoch and a 2-epoch run of one (k, seed) group with PROMPTAD_DEBUG_OPS=1 (each checked op
# logs a line); the difference is one training epoch of the group's two units, alone or as a cohort
for c in 1 auto; do
    for e in 1 2; do
        PROMPTAD_DEBUG_OPS=1 PROMPTAD_LOG=debug "$bin" run --config "$tiny" --set run.threads=1 \
            --set run.cohort=$c --set run.epochs=$e \
            --set run.shots=1 --set run.seeds=0 --set output.dir="$work/ops-$c-$e" >/dev/null 2>"$work/ops-$c-$e.err"
        echo "ops cohort=$c epochs=$e lines=$(grep -c 'debug ops:' "$work/ops-$c-$e.err")" | tee -a "$log"
    done
done

# ---------------------------------------------------------------------------------------------------------------
# (b) the full-size ViT-B-16-plus-240 text tower
if [ "$full" = 1 ]; then
    echo "## (b) ViT-B-16-plus-240 (random weights): one class, shots 1, 2, 4, seeds $full_seeds," \
        "$full_epochs epochs" | tee -a "$log"
    "$bin" make-model --preset vit-b-16-plus-240 --seed 0 --out "$work/model/b16plus.safetensors" >/dev/null 2>&1
    fullc=$work/full.yaml
    class_config "$fullc" "$work/model/b16plus.safetensors" "$here/configs/vocab/bpe_simple_vocab_16e6.txt.gz" \
        none "$full_seeds" "$full_epochs" "$work/cache_full"
    class_runs full "$fullc" "$full_epochs"
    # the prompt rows and their cut length at full size for a real class (bench_text: the text tower alone)
    if [ -x "$build/bench_text" ]; then
        for t in cls seg; do
            OMP_NUM_THREADS=$threads "$build/bench_text" --device cpu --class carpet --task $t --shots 1 --reps 1 \
                --vocab "$here/configs/vocab/bpe_simple_vocab_16e6.txt.gz" 2>&1 | sed "s/^/text task=$t /" >>"$log"
        done
    fi
fi

# ---------------------------------------------------------------------------------------------------------------
# (c) the demo config repeated with another learning rate: cold cache, then warm
echo "## (c) configs/demo.yaml ($demo_epochs epochs), train.lr 0.002 (cold cache) then 0.001 (warm cache)" |
    tee -a "$log"
demo="--set model.weights=$work/model/demo.safetensors --set model.vocab=$work/model/demo-bytes.txt.gz
      --set data.root=$work/demo-data --set cache.dir=$work/cache_demo --set run.device=cpu
      --set run.epochs=$demo_epochs"
# shellcheck disable=SC2086 # $demo is a list of options
"$bin" run --config "$here/configs/demo.yaml" $demo --set output.dir="$work/demo-prep" --dry-run >/dev/null 2>&1 ||
    { echo "bench_cohort: cannot prepare the demo data and model" >&2; exit 1; }
# shellcheck disable=SC2086
run demo-cold "$here/configs/demo.yaml" $demo --set train.lr=0.002 --set output.dir="$work/demo-cold"
# shellcheck disable=SC2086
run demo-warm "$here/configs/demo.yaml" $demo --set train.lr=0.001 --set output.dir="$work/demo-warm"

# ---------------------------------------------------------------------------------------------------------------
/usr/bin/python3 "$here/eval/bench/bench_cohort_report.py" "$log" "$out/bench_cohort.json" "$out/bench_cohort.md"
