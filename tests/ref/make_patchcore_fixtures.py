#!/usr/bin/python3
"""make_patchcore_fixtures.py - goldens of PatchCore (host/model/patchcore.h, tests/test_patchcore.c) from our own
reference of anomalib's semantics (patchcore_ref.py) on the torchvision tiny wide ResNet of
make_resnet_fixtures.py (its weights: tests/fixtures/resnet_tiny.safetensors).

Three normal images build the memory bank (every patch); two test images get their patch scores, nearest bank
rows, image scores (num_neighbors 9 and 1) and 64x64 maps; a k-center-greedy coreset of a quarter of the bank is
given for the start index the C code draws from its seed (splitmix64, shots_ref.py).

Run from the repository root with Debian's python (torch 1.13, torchvision 0.14):
    /usr/bin/python3 tests/ref/make_patchcore_fixtures.py
Also PaDiM's and SPADE's goldens on the same images (spade_tiny.safetensors: top_k 2) (patchcore_ref.padim_*: 40 of the 112 channels, seed 3; 3 shots and 1;
and a given subset `idx` (I64, 30 channels in random.sample's order, as anomalib's PadimModel.idx) with 3 shots).
Writes tests/fixtures/patchcore_tiny.safetensors (~400 KB) and padim_tiny.safetensors (~70 KB).
"""
import os
import random
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import patchcore_ref as ref  # noqa: E402
import st_io  # noqa: E402
from make_resnet_fixtures import TinyWideResNet  # noqa: E402
from shots_ref import SplitMix64, mix  # noqa: E402

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
CORESET_SEED = 5


def main():
    model = TinyWideResNet()
    sd = {k: torch.from_numpy(v) for k, v in st_io.load(os.path.join(FIX, "resnet_tiny.safetensors")).items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    model.eval()
    gen = torch.Generator().manual_seed(1313)
    train = torch.randn(3, 3, 64, 64, generator=gen)
    test = torch.randn(2, 3, 64, 64, generator=gen) * 1.5
    with torch.no_grad():
        bank, _ = ref.embed(model, train)
        rows, shape = ref.embed(model, test)
        s9, maps, patch, loc = ref.predict(rows, shape, bank, (64, 64), num_neighbors=9)
        s1, _, _, _ = ref.predict(rows, shape, bank, (64, 64), num_neighbors=1)
    # coreset: the C code's first centre is SplitMix64(mix(seed ^ "CORESET1")).below(n)
    n = bank.shape[0]
    start = SplitMix64(mix(CORESET_SEED ^ 0x434F524553455431)).below(n)
    sel = ref.kcenter_greedy(bank.numpy(), n // 4, start)
    t = {"train": train.numpy(), "test": test.numpy(), "bank": bank.numpy(), "test_rows": rows.numpy(),
         "patch": patch.numpy(), "loc": loc.numpy().astype(np.int32), "score9": s9.numpy(), "score1": s1.numpy(),
         "maps": maps.numpy(), "coreset_sel": sel, "coreset_seed": np.array([CORESET_SEED], np.int32)}
    st_io.save(os.path.join(FIX, "patchcore_tiny.safetensors"), t, {"generator": "tests/ref/make_patchcore_fixtures.py"})
    print("bank", tuple(bank.shape), "scores9", s9.numpy(), "scores1", s1.numpy())
    # PaDiM on the same images: 40 of the 112 channels (seed 3), 3 shots and 1 shot
    idx = ref.padim_channels(16 + 32 + 64, 40, 3)
    p = {"channels": np.array(idx, np.int32)}
    with torch.no_grad():
        et = ref.padim_embed(model, test, idx)
        for tag, shots in (("3", train), ("1", train[:1])):
            mean, inv = ref.padim_fit(ref.padim_embed(model, shots, idx))
            sc, mp, dist = ref.padim_predict(et, mean, inv, (64, 64))
            p[f"score{tag}"], p[f"maps{tag}"], p[f"dist{tag}"] = sc.numpy(), mp.numpy(), dist.numpy()
        # a given subset in anomalib's form: random.sample's order (unsorted), used as index_select uses it
        given = random.Random(7).sample(range(16 + 32 + 64), 30)
        mean, inv = ref.padim_fit(ref.padim_embed(model, train, given))
        sc, mp, dist = ref.padim_predict(ref.padim_embed(model, test, given), mean, inv, (64, 64))
        p["idx"], p["score_idx"], p["maps_idx"], p["dist_idx"] = np.array(given, np.int64), sc.numpy(), mp.numpy(), dist.numpy()
    st_io.save(os.path.join(FIX, "padim_tiny.safetensors"), p, {"generator": "tests/ref/make_patchcore_fixtures.py"})
    # SPADE: top_k 2 of the 3 normal images; the tiny network's deepest stage (layer3) gives the global feature
    with torch.no_grad():
        ssc, smaps, sidx = ref.spade_predict(model(train), model(test), 2, (64, 64))
    st_io.save(os.path.join(FIX, "spade_tiny.safetensors"),
               {"score": ssc.numpy(), "maps": smaps.astype(np.float32), "nearest": sidx.numpy().astype(np.int32)},
               {"generator": "tests/ref/make_patchcore_fixtures.py"})
    print("spade scores", ssc.numpy(), "nearest", sidx.numpy().tolist())
    print("padim scores3", p["score3"], "scores1", p["score1"])


if __name__ == "__main__":
    main()
