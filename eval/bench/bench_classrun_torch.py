#!/usr/bin/env python3
"""bench_classrun_torch.py - the PyTorch side of eval/bench/bench_classrun.c: what one class unit of PromptAD's
official protocol (100 epochs of prompt training, each followed by an evaluation on the test set) costs when run
the way the published code runs it, and the way a careful PyTorch port would, on the same GPU and the same
class-sized synthetic problem (ViT-B-16-plus-240 and its text tower with random weights, n_test test images at
R x R, k shots, P prompts of L tokens).

Two variants, each timed per stage over a few epochs and projected to --epochs:
  official  every epoch re-encodes the test images with the vision tower (the official test loop has no feature
            cache), scores them on the GPU, then smooths each map with scipy.ndimage.gaussian_filter and computes
            the AUROC with sklearn on the CPU (utils/metrics.py);
  cached    test features encoded once, the whole evaluation on the GPU (separable Gaussian as conv1d, the pixel
            AUROC by a sort), i.e. the same algorithm as promptad.
The training step (text tower forward + backward to the learned context vectors, SGD) is the same in both.

  python3 eval/bench/bench_classrun_torch.py --task seg --prompts 16 --len 12 [--n-test 200] [--res 400] [--shots 4]
          [--epochs 100] [--measure 3] [--precision fp32|tf32] [--variants official,cached]
Prints "stage ..." lines and one line per variant:
  "torch_classrun variant=official task=seg ... train_epoch_ms=.. eval_epoch_ms=.. unit_s=<projected>"."""
import argparse
import importlib.util
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def load_tower():
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("bench_vit_torch", os.path.join(here, "bench_vit_torch.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class TextBlock(nn.Module):
    def __init__(self, W, NH):
        super().__init__()
        self.NH = NH
        self.ln_1, self.ln_2 = nn.LayerNorm(W), nn.LayerNorm(W)
        self.in_proj, self.out_proj = nn.Linear(W, 3 * W), nn.Linear(W, W)
        self.c_fc, self.c_proj = nn.Linear(W, 4 * W), nn.Linear(4 * W, W)

    def forward(self, x, mask):
        P, L, W = x.shape
        qkv = self.in_proj(self.ln_1(x)).reshape(P, L, 3, self.NH, W // self.NH).permute(2, 0, 3, 1, 4)
        a = torch.softmax(qkv[0] @ qkv[1].transpose(-1, -2) * (W // self.NH) ** -0.5 + mask, dim=-1) @ qkv[2]
        x = x + self.out_proj(a.transpose(1, 2).reshape(P, L, W))
        return x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x))))


class TextTower(nn.Module):
    def __init__(self, W=640, layers=12, E=640, ctx=77):
        super().__init__()
        self.pos = nn.Parameter(torch.randn(ctx, W) * 0.01)
        self.blocks = nn.ModuleList([TextBlock(W, W // 64) for _ in range(layers)])
        self.ln_final = nn.LayerNorm(W)
        self.proj = nn.Parameter(torch.randn(W, E) * W ** -0.5)

    def forward(self, emb, eot):
        P, L, _ = emb.shape
        mask = torch.full((L, L), float("-inf"), device=emb.device).triu(1)
        x = emb + self.pos[:L]
        for b in self.blocks:
            x = b(x, mask)
        return self.ln_final(x[torch.arange(P, device=emb.device), eot]) @ self.proj


def gaussian_kernel(sigma=4.0, truncate=4.0):
    r = int(truncate * sigma + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float64)
    w = np.exp(-0.5 * x * x / (sigma * sigma))
    return w / w.sum(), r


def auroc_gpu(scores, labels):
    """Mann-Whitney AUROC by one sort (ties ignored: a timing twin, not a reference)."""
    order = torch.argsort(scores)
    ranks = torch.empty_like(order, dtype=torch.float64)
    ranks[order] = torch.arange(1, scores.numel() + 1, device=scores.device, dtype=torch.float64)
    pos = labels.bool()
    n_pos = pos.sum().double()
    n_neg = labels.numel() - n_pos
    return ((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)).item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="seg", choices=["cls", "seg"])
    ap.add_argument("--prompts", type=int, default=16, help="P: prompts of the task (promptad's count)")
    ap.add_argument("--len", type=int, default=12, help="L: tokens per prompt after the EOT cut")
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--res", type=int, default=400)
    ap.add_argument("--shots", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--measure", type=int, default=3, help="epochs actually run per variant (projected to --epochs)")
    ap.add_argument("--measure-official", type=int, default=0, help="epochs run by the official variant (0: --measure)")
    ap.add_argument("--batch", type=int, default=64, help="vision tower batch (official variant)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "tf32"])
    ap.add_argument("--variants", default="official,cached")
    a = ap.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuda = dev.type == "cuda"
    torch.backends.cuda.matmul.allow_tf32 = a.precision == "tf32"
    torch.manual_seed(0)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    n, R, k, P, L, E, D, G = a.n_test, a.res, a.shots, a.prompts, a.len, 640, 896, 15
    tower = load_tower().Tower().eval().to(dev)
    text = TextTower().to(dev)
    for p in list(tower.parameters()) + list(text.parameters()):
        p.requires_grad_(False)
    emb0 = torch.randn(P, L, 640, device=dev) * 0.02
    eot = torch.full((P,), L - 1, device=dev, dtype=torch.long)
    ctx = (torch.randn(P, 4, 640, device=dev) * 0.02).requires_grad_(True)  # the learned rows (1..4 of each prompt)
    opt = torch.optim.SGD([ctx], lr=0.002, momentum=0.9, weight_decay=5e-4)
    pix = torch.randn(n, 3, 240, 240, device=dev)
    labels = torch.arange(n, device=dev) % 2
    masks = torch.zeros(n, R, R, dtype=torch.uint8, device=dev)
    masks[1::2, R // 3: R // 2, R // 4: R // 2] = 1
    with torch.no_grad():
        shot = [t.float() for t in tower(pix[:k])]
        img = F.normalize(shot[0] if a.task == "cls" else shot[1].reshape(-1, E), dim=-1)
    w, r = gaussian_kernel()
    wt = torch.tensor(w, dtype=torch.float32, device=dev)

    def train_step():
        emb = torch.cat([emb0[:, :1], ctx, emb0[:, 5:]], dim=1)
        f = text(emb, eot)
        t = F.normalize(f, dim=-1)
        wn = F.normalize(t[:3].mean(0), dim=-1)
        za = t[3:]
        logits = 4.6052 * img @ torch.cat([wn[None], za]).T
        wa = F.normalize(za.mean(0), dim=-1)
        loss = F.cross_entropy(logits, torch.zeros(img.shape[0], dtype=torch.long, device=dev))
        loss = loss + F.relu(((img - wn) ** 2).sum(-1) - ((img - wa) ** 2).sum(-1)).mean()
        loss = loss + 0.001 * ((za[: P // 2].mean(0) - za[P // 2:].mean(0)) ** 2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    def text_vectors():
        with torch.no_grad():
            emb = torch.cat([emb0[:, :1], ctx, emb0[:, 5:]], dim=1)
            t = F.normalize(text(emb, eot), dim=-1)
            return F.normalize(t[:3].mean(0), dim=-1), F.normalize(t[3:].mean(0), dim=-1)

    def scores_of(cls_f, tok_f, V, tn, ta):
        if a.task == "cls":
            z = 4.6052 * F.normalize(cls_f, dim=-1) @ torch.stack([tn, ta]).T
            return torch.softmax(z, -1)[:, 1], None
        z = 4.6052 * F.normalize(tok_f, dim=-1) @ torch.stack([tn, ta]).T
        T = torch.softmax(z, -1)[..., 1].reshape(n, 1, G, G)
        fused = 1.0 / (1.0 / T + 1.0 / V)
        return None, F.interpolate(fused, size=(R, R), mode="bilinear", align_corners=False)[:, 0]

    V = torch.rand(n, 1, G, G, device=dev) * 0.5 + 0.1
    lines = []
    for variant in a.variants.split(","):
        t_train = t_enc = t_score = t_post = 0.0
        cached = None
        if variant == "cached":
            sync()
            t0 = time.perf_counter()
            with torch.no_grad():
                outs = [tower(pix[i:i + a.batch]) for i in range(0, n, a.batch)]
                cached = (torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs]))
            sync()
            t_cache = time.perf_counter() - t0
        else:
            t_cache = 0.0
        train_step()  # warm-up
        sync()
        m = a.measure_official if variant == "official" and a.measure_official > 0 else a.measure
        for _ in range(m):
            t0 = time.perf_counter()
            train_step()
            sync()
            t1 = time.perf_counter()
            tn, ta = text_vectors()
            with torch.no_grad():
                if cached is None:  # the official test loop: every test image through the vision tower again
                    outs = [tower(pix[i:i + a.batch]) for i in range(0, n, a.batch)]
                    cls_f, tok_f = torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])
                else:
                    cls_f, tok_f = cached
                sync()
                t2 = time.perf_counter()
                s, maps = scores_of(cls_f, tok_f, V, tn, ta)
                sync()
                t3 = time.perf_counter()
                if variant == "official":  # numpy / scipy / sklearn on the CPU, as utils/metrics.py
                    from scipy.ndimage import gaussian_filter
                    from sklearn.metrics import roc_auc_score
                    if a.task == "cls":
                        roc_auc_score(labels.cpu().numpy(), s.cpu().numpy())
                    else:
                        mp = maps.cpu().numpy()
                        mp = np.stack([gaussian_filter(x, sigma=4) for x in mp])
                        roc_auc_score(masks.cpu().numpy().ravel(), mp.ravel())
                else:
                    if a.task == "cls":
                        auroc_gpu(s, labels)
                    else:  # separable Gaussian (reflect padding) and the AUROC by sort, on the GPU
                        x = F.pad(maps[:, None], (r, r, r, r), mode="reflect")
                        x = F.conv2d(x, wt.view(1, 1, 1, -1))
                        x = F.conv2d(x, wt.view(1, 1, -1, 1))
                        auroc_gpu(x.flatten(), masks.flatten())
                sync()
                t4 = time.perf_counter()
            t_train += t1 - t0
            t_enc += t2 - t1
            t_score += t3 - t2
            t_post += t4 - t3
        train_ms, enc_ms, score_ms, post_ms = (1e3 * x / m for x in (t_train, t_enc, t_score, t_post))
        unit = t_cache + a.epochs * (train_ms + enc_ms + score_ms + post_ms) / 1e3
        for name, v in (("train step", train_ms), ("text vectors + test encoding", enc_ms), ("scoring", score_ms),
                        ("smoothing + AUROC", post_ms)):
            print(f"stage torch {variant} {a.task}: {name:30s} {v:10.3f} ms/epoch", flush=True)
        lines.append(f"torch_classrun variant={variant} task={a.task} device={dev.type} precision={a.precision} "
                     f"n_test={n} res={R} shots={k} prompts={P} len={L} epochs={a.epochs} measured={m} "
                     f"cache_s={t_cache:.4f} train_epoch_ms={train_ms:.3f} encode_epoch_ms={enc_ms:.3f} "
                     f"score_epoch_ms={score_ms:.3f} post_epoch_ms={post_ms:.3f} unit_s={unit:.4f}")
    for ln in lines:
        print(ln, flush=True)


if __name__ == "__main__":
    main()
