#!/usr/bin/python3
"""bench_vit_torch.py - the PyTorch twin of eval/bench/bench_vit.c: images/s of the same dual-path (q-k / v-v)
vision tower of ViT-B-16-plus-240 (random weights, torch.no_grad) on the CPU with the same thread count, or on a
CUDA GPU. Our own module (Debian has no open_clip): pre-LN blocks, nn.Linear layers, erf GELU, both attention
paths from ln_1 of the original stream, the taps copied after blocks 3 and 8's attention, the final MLP run on all
tokens (as the official code does).

  /usr/bin/python3 eval/bench/bench_vit_torch.py --threads 2 --batches 1,8 --iters 3
  python3 eval/bench/bench_vit_torch.py --device cuda --precision fp32|tf32|bf16 [--sdpa] --batches 1,64,256
On CUDA: fp32 = full float32 (TF32 off), tf32 = TF32 matmuls (torch.backends.cuda.matmul.allow_tf32), bf16 =
torch.autocast(bfloat16); --sdpa computes both attention paths with F.scaled_dot_product_attention (fused
kernels) instead of explicit softmax(q k^T) v. Times are wall clock around synchronised forwards.
Prints one line per batch size: "torch threads=2 batch=8 iters=3 images_per_s=<median iteration>
best_images_per_s=<best iteration> cpu_s_per_image=<process CPU seconds per image, median iteration>"."""
import argparse
import contextlib
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    sdpa = False

    def __init__(self, D, NH, H):
        super().__init__()
        self.NH = NH
        self.ln_1, self.ln_2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.in_proj = nn.Linear(D, 3 * D)
        self.out_proj = nn.Linear(D, D)
        self.c_fc, self.c_proj = nn.Linear(D, H), nn.Linear(H, D)

    def forward(self, x_ori, x_vv):
        B, T, D = x_ori.shape
        HS = D // self.NH
        qkv = self.in_proj(self.ln_1(x_ori)).reshape(B, T, 3, self.NH, HS).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if Block.sdpa:
            o_ori = F.scaled_dot_product_attention(q, k, v)
            o_vv = F.scaled_dot_product_attention(v, v, v)
        else:
            s = HS ** -0.5
            o_ori = torch.softmax((q @ k.transpose(-1, -2)) * s, dim=-1) @ v
            o_vv = torch.softmax((v @ v.transpose(-1, -2)) * s, dim=-1) @ v
        o_ori = self.out_proj(o_ori.transpose(1, 2).reshape(B, T, D))
        o_vv = self.out_proj(o_vv.transpose(1, 2).reshape(B, T, D))
        x_ori = x_ori + o_ori
        mid = x_ori[:, 1:].clone()
        x_ori = x_ori + self.c_proj(F.gelu(self.c_fc(self.ln_2(x_ori))))
        return x_ori, x_vv + o_vv, mid


class Tower(nn.Module):
    def __init__(self, S=240, P=16, D=896, L=12, E=640):
        super().__init__()
        G = S // P
        self.conv1 = nn.Conv2d(3, D, P, stride=P, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(D) * 0.05)
        self.pos = nn.Parameter(torch.randn(1 + G * G, D) * 0.05)
        self.ln_pre, self.ln_post = nn.LayerNorm(D), nn.LayerNorm(D)
        self.blocks = nn.ModuleList([Block(D, D // 64, 4 * D) for _ in range(L)])
        self.proj = nn.Parameter(torch.randn(D, E) * D ** -0.5)

    def forward(self, pixels, taps=(3, 8)):
        x = self.conv1(pixels).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = self.ln_pre(torch.cat([cls, x], dim=1) + self.pos)
        x_ori, x_vv, mids = x, x, []
        for l, blk in enumerate(self.blocks):
            x_ori, x_vv, mid = blk(x_ori, x_vv)
            if l in taps:
                mids.append(mid)
        x_vv = torch.cat([x_ori[:, :1], x_vv[:, 1:]], dim=1)
        out = self.ln_post(x_vv) @ self.proj
        return out[:, 0], out[:, 1:], mids[0], mids[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.0, help="run each batch size at least this many seconds")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--precision", default="fp32", help="fp32, tf32 or bf16; a comma-separated list runs each")
    ap.add_argument("--sdpa", action="store_true", help="fused scaled_dot_product_attention for both paths")
    ap.add_argument("--tag", default="torch", help="first word of the output lines")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    cuda = a.device == "cuda"
    if a.sdpa and not hasattr(F, "scaled_dot_product_attention"):
        print(f"# torch {torch.__version__} has no scaled_dot_product_attention: --sdpa ignored", flush=True)
        a.sdpa = False
    Block.sdpa = a.sdpa
    torch.manual_seed(0)
    dev = torch.device(a.device)
    model = Tower().eval().to(dev)
    batches = [int(b) for b in a.batches.split(",")]
    x = torch.randn(max(batches), 3, 240, 240, device=dev)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    for precision in a.precision.split(","):
        if precision not in ("fp32", "tf32", "bf16"):
            raise SystemExit(f"unknown precision {precision}")
        if cuda:
            torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
            torch.backends.cudnn.allow_tf32 = precision == "tf32"
        bf16 = cuda and precision == "bf16"
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with torch.no_grad(), ctx:
            for B in batches:
                model(x[:B])  # warm-up
                sync()
                times, cpu = [], []
                start = time.perf_counter()
                while len(times) < a.iters or time.perf_counter() - start < a.min_time:
                    t0, c0 = time.perf_counter(), time.process_time()
                    model(x[:B])
                    sync()
                    times.append(time.perf_counter() - t0)
                    cpu.append(time.process_time() - c0)
                times.sort()
                cpu.sort()
                extra = f" device={a.device} precision={precision} sdpa={int(a.sdpa)}" if cuda else ""
                print(f"{a.tag} threads={torch.get_num_threads()}{extra} batch={B} iters={len(times)} "
                      f"images_per_s={B / times[len(times) // 2]:.3f} best_images_per_s={B / times[0]:.3f} "
                      f"cpu_s_per_image={cpu[len(cpu) // 2] / B:.3f}", flush=True)


if __name__ == "__main__":
    main()
