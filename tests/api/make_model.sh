#!/usr/bin/env bash
# make_model.sh PROMPTAD SOURCE_DIR WORK_DIR - the ctest fixture of the public-API tests (examples/, python/): a tiny
# `promptad run` (random demo-shaped model, one synthetic class of 128 px, 1 shot, seed 0, both tasks, 2 epochs) whose
# saved model is WORK_DIR/results/synth/weave/k1/seed0/model and whose test images are under WORK_DIR/data.
set -euo pipefail
bin=$1 src=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
cd "$work"
"$bin" run --config "$src/configs/demo.yaml" --quiet \
    --set model.weights="$work/model/tiny-random.safetensors" --set model.vocab="$work/model/byte-vocab.txt.gz" \
    --set data.root="$work/data" --set data.synth.classes=1 --set data.synth.size=128 --set data.synth.train=2 \
    --set data.synth.test_good=3 --set data.synth.test_bad=3 --set run.resolution=128 --set run.shots=1 \
    --set run.seeds=0 --set run.epochs=2 --set output.heatmaps=0 --set output.dir="$work/results" >/dev/null
test -f "$work/results/synth/weave/k1/seed0/model/model.json"
echo "model: $work/results/synth/weave/k1/seed0/model"
