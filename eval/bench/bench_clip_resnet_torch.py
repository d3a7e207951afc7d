#!/usr/bin/python3
"""bench_clip_resnet_torch.py - the PyTorch twin of eval/bench/bench_clip_resnet.c, and its checker.

  make-inputs IN.safetensors --test N --size S [--seed 0]     writes seeded random (normalised) test images
  run W.safetensors IN.safetensors [--c-out OUT.safetensors] [--threads T] [--reps R]
      loads the checkpoint's vision tower into our torch ModifiedResNet with the V-V attention pool
      (tests/ref/make_clip_resnet_fixtures.py; stem width, blocks, output width and grid read from the shapes),
      times its forward over the test images (torch.no_grad, median of R), prints
      "torch threads=.. forward_images_per_s=..", and with --c-out compares promptad's outputs (cls, tokens, mid1,
      mid2 for taps layer2 and layer3) with its own: "check <name> max_abs=.. max_rel=.." (max |a - b| / max |b|).
"""
import argparse
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "ref"))
sys.path.insert(0, HERE)
import make_clip_resnet_fixtures as ref  # noqa: E402
import st_io  # noqa: E402
from bench_patchcore_torch import median_time  # noqa: E402


def make_inputs(a):
    g = torch.Generator().manual_seed(a.seed)
    st_io.save(a.path, {"test": torch.randn(a.test, 3, a.size, a.size, generator=g).numpy()})


def load_model(path):
    sd = {k[7:]: torch.from_numpy(v) for k, v in st_io.load(path).items() if k.startswith("visual.")}
    blocks = tuple(len({k.split(".")[1] for k in sd if k.startswith(f"layer{s}.")}) for s in range(1, 5))
    width = sd["conv3.weight"].shape[0]
    grid = int(round((sd["attnpool.positional_embedding"].shape[0] - 1) ** 0.5))
    m = ref.ModifiedResNet(width=width, blocks=blocks, out_dim=sd["attnpool.c_proj.weight"].shape[0], grid=grid)
    missing, unexpected = m.load_state_dict(sd, strict=False)
    bad = [k for k in missing if not k.endswith("num_batches_tracked")]
    assert not bad and not unexpected, (bad, unexpected)
    return m.eval(), grid


def run(a):
    torch.set_num_threads(a.threads)
    m, grid = load_model(a.weights)
    x = torch.from_numpy(st_io.load(a.inputs)["test"])
    with torch.no_grad():
        m(x)  # warm-up
        t = median_time(lambda: m(x), a.reps)
        cls, tokens, stages = m(x)
    print(f"torch threads={a.threads} n={x.shape[0]} size={x.shape[2]} forward_images_per_s={x.shape[0] / t:.3f}")
    if a.c_out:
        D = max(stages[1].shape[1], stages[2].shape[1])
        want = {"cls": cls, "tokens": tokens, "mid1": ref.tap_rows(stages[1], grid, D),
                "mid2": ref.tap_rows(stages[2], grid, D)}
        got = st_io.load(a.c_out)
        for k, w in want.items():
            w = w.numpy()
            d = np.abs(got[k].astype(np.float64) - w)
            print(f"check {k} max_abs={d.max():.3e} max_rel={d.max() / np.abs(w).max():.3e}")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    mi = sub.add_parser("make-inputs")
    mi.add_argument("path")
    mi.add_argument("--test", type=int, default=4)
    mi.add_argument("--size", type=int, default=224)
    mi.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("run")
    r.add_argument("weights")
    r.add_argument("inputs")
    r.add_argument("--c-out")
    r.add_argument("--threads", type=int, default=os.cpu_count())
    r.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    make_inputs(a) if a.cmd == "make-inputs" else run(a)


if __name__ == "__main__":
    main()
