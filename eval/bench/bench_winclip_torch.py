#!/usr/bin/python3
"""bench_winclip_torch.py - the PyTorch twin of eval/bench/bench_winclip.c: images/s of WinCLIP+ with anomalib's
WinClipModel semantics (tests/ref/ref_winclip.py: the stock forward, every 2 x 2 and 3 x 3 window as its own masked
token set through the whole transformer, batched as anomalib batches them, the few-shot association), float32,
torch.no_grad, random weights of ViT-B-16-plus-240 (or the tiny preset), on the CPU with the given thread count.

  /usr/bin/python3 eval/bench/bench_winclip_torch.py --threads 2 --images 1 --shots 1 --iters 2

The K reference images are encoded once (not timed); each iteration scores the N test images. Prints one line:
"torch threads=2 images=1 shots=1 iters=2 images_per_s=<median iteration> best_images_per_s=<best iteration>"."""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "ref"))
import ref_winclip  # noqa: E402

PRESETS = {"vit-b-16-plus-240": (896, 12, 16, 240, 3584, 640), "tiny": (128, 12, 16, 64, 512, 64)}


def random_visual(preset, g):
    D, L, P, S, H, E = PRESETS[preset]
    T = (S // P) ** 2 + 1

    def r(*shape, s=0.02):
        return torch.randn(*shape, generator=g) * s

    sd = {"visual.conv1.weight": r(D, 3, P, P), "visual.class_embedding": r(D), "visual.positional_embedding": r(T, D),
          "visual.ln_pre.weight": 1 + r(D), "visual.ln_pre.bias": r(D), "visual.ln_post.weight": 1 + r(D),
          "visual.ln_post.bias": r(D), "visual.proj": r(D, E)}
    for l in range(L):
        b = f"visual.transformer.resblocks.{l}."
        sd.update({b + "ln_1.weight": 1 + r(D), b + "ln_1.bias": r(D), b + "ln_2.weight": 1 + r(D),
                   b + "ln_2.bias": r(D), b + "attn.in_proj_weight": r(3 * D, D), b + "attn.in_proj_bias": r(3 * D),
                   b + "attn.out_proj.weight": r(D, D), b + "attn.out_proj.bias": r(D),
                   b + "mlp.c_fc.weight": r(H, D), b + "mlp.c_fc.bias": r(H), b + "mlp.c_proj.weight": r(D, H),
                   b + "mlp.c_proj.bias": r(D)})
    return sd, S, E


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--images", type=int, default=1)
    ap.add_argument("--shots", type=int, default=1)
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--preset", default="vit-b-16-plus-240", choices=sorted(PRESETS))
    ap.add_argument("--tag", default="torch")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_grad_enabled(False)
    g = torch.Generator().manual_seed(0)
    sd, S, E = random_visual(a.preset, g)
    clip = ref_winclip.Clip(sd)
    masks = [ref_winclip.make_masks(clip.G, k) for k in ref_winclip.SCALES]
    text = torch.randn(2, E, generator=g)
    refs = torch.rand(a.shots, 3, S, S, generator=g) * 3 - 1.5 if a.shots else None
    model = ref_winclip.WinClip(clip, text, masks, ref_pixels=refs)
    test = torch.rand(a.images, 3, S, S, generator=g) * 3 - 1.5
    times = []
    for _ in range(a.iters):
        t0 = time.perf_counter()
        model.forward(test)
        times.append(time.perf_counter() - t0)
    times.sort()
    print(f"{a.tag} threads={a.threads} images={a.images} shots={a.shots} iters={a.iters} "
          f"images_per_s={a.images / times[len(times) // 2]:.4f} best_images_per_s={a.images / times[0]:.4f}")


if __name__ == "__main__":
    main()
