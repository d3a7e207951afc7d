#!/usr/bin/python3
"""bench_patchcore_torch.py - the PyTorch twin of eval/bench/bench_patchcore.c, and its checker.

  make-inputs IN.safetensors --shots K --test N --size S [--seed 0]   writes seeded random shots and test images
  run W.safetensors IN.safetensors [--c-out OUT.safetensors] [--threads T] [--reps R] [--neighbors 9]
      loads the checkpoint into torchvision's wide_resnet50_2 (or, for the resnet-tiny shapes, the tiny network of
      tests/ref/make_resnet_fixtures.py), times the forward over the test images (torch.no_grad, median of R) and
      PatchCore (our torch reference of anomalib's semantics, tests/ref/patchcore_ref.py) over them, prints
      "torch threads=.. forward_images_per_s=.. fit_s=.. patchcore_images_per_s=..", and with --c-out compares
      promptad's outputs (layer2, layer3, scores, maps) with its own: "check <name> max_abs=.. max_rel=.."
      (max_rel = max |a - b| / max |b|).
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "ref"))
import patchcore_ref as ref  # noqa: E402
import st_io  # noqa: E402


def make_inputs(a):
    g = torch.Generator().manual_seed(a.seed)
    t = {"shots": torch.randn(a.shots, 3, a.size, a.size, generator=g).numpy(),
         "test": torch.randn(a.test, 3, a.size, a.size, generator=g).numpy()}
    st_io.save(a.path, t)


def load_model(path):
    import torchvision
    sd = {k: torch.from_numpy(v) for k, v in st_io.load(path).items()}
    if sd["conv1.weight"].shape[0] == 64 and sd["layer1.0.conv1.weight"].shape[0] == 128:
        m = torchvision.models.wide_resnet50_2()
    else:
        from make_resnet_fixtures import TinyWideResNet
        m = TinyWideResNet()
    missing, unexpected = m.load_state_dict(sd, strict=False)
    bad = [k for k in missing if not k.startswith("fc.") and not k.endswith("num_batches_tracked")]
    assert not bad and not unexpected, (bad, unexpected)
    m.eval()

    def stages(x):
        if hasattr(m, "fc"):
            x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
            outs = []
            for name in ("layer1", "layer2", "layer3"):
                x = getattr(m, name)(x)
                outs.append(x)
            return outs
        return m(x)
    return stages


def median_time(fn, reps):
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[reps // 2]


def run(a):
    torch.set_num_threads(a.threads)
    stages = load_model(a.weights)
    d = st_io.load(a.inputs)
    shots, test = torch.from_numpy(d["shots"]), torch.from_numpy(d["test"])
    n, S = test.shape[0], test.shape[-1]
    with torch.no_grad():
        stages(test)  # warm-up
        t_fwd = median_time(lambda: stages(test), a.reps)
        t0 = time.perf_counter()
        bank, _ = ref.embed(stages, shots)
        fit = time.perf_counter() - t0

        def predict():
            rows, shape = ref.embed(stages, test)
            return ref.predict(rows, shape, bank, (S, S), num_neighbors=a.neighbors)
        t_pc = median_time(predict, a.reps)
        scores, maps, _, _ = predict()
        outs = stages(test)
    print(f"torch threads={a.threads} k={shots.shape[0]} n={n} size={S} bank={bank.shape[0]} "
          f"forward_images_per_s={n / t_fwd:.3f} fit_s={fit:.3f} patchcore_images_per_s={n / t_pc:.3f}")
    if a.c_out:
        c = st_io.load(a.c_out)
        for name, want in (("layer2", outs[1]), ("layer3", outs[2]), ("scores", scores), ("maps", maps)):
            got, want = c[name].astype(np.float64), want.numpy().astype(np.float64)
            diff = np.abs(got - want).max()
            print(f"check {name} max_abs={diff:.3e} max_rel={diff / np.abs(want).max():.3e}")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-inputs")
    m.add_argument("path")
    m.add_argument("--shots", type=int, default=4)
    m.add_argument("--test", type=int, default=4)
    m.add_argument("--size", type=int, default=224)
    m.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("run")
    r.add_argument("weights")
    r.add_argument("inputs")
    r.add_argument("--c-out")
    r.add_argument("--threads", type=int, default=os.cpu_count())
    r.add_argument("--reps", type=int, default=3)
    r.add_argument("--neighbors", type=int, default=9)
    a = p.parse_args()
    make_inputs(a) if a.cmd == "make-inputs" else run(a)


if __name__ == "__main__":
    main()
