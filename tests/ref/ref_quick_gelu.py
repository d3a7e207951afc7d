"""ref_quick_gelu.py - independent PyTorch reference for QuickGELU, the MLP activation of OpenAI's CLIP weights
(x * sigmoid(1.702 x), docs/clip.md#activation), written from the docs (not from the C code).

Writes tests/fixtures/quick_gelu.safetensors, read by tests/test_quick_gelu.c:
  op_x (M,N), op_bias (N), op_dout (M,N)   inputs of the op cases (float32)
  op_y_bias = act(x + bias) (x + bias rounded to float32 first, as the op does), op_y = act(x),
  op_dx = dout * act'(x) (torch autograd)
  pixels (1,3,S,S) -> cls (1,E) (stock CLIP image embedding) and mid2 (1,G*G,D) (tap 1: the original stream after
                      block 1's attention residual, which has gone through block 0's QuickGELU MLP)
  emb (P,L,W), eot (P), dfeat (P,E) -> feat (P,E), demb (P,L,W) (the text tower and its input gradient)
The model is a random checkpoint written by
  promptad make-model --preset tiny --layers 2 --text-layers 2 --vocab-size 64 --activation quick_gelu --seed 11
whose metadata must say activation quick_gelu (checked here). All model maths runs in float64.

Run with /usr/bin/python3:  /usr/bin/python3 tests/ref/ref_quick_gelu.py --promptad build/promptad
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

torch.set_default_dtype(torch.float64)
MODEL_ARGS = ["--preset", "tiny", "--layers", "2", "--text-layers", "2", "--vocab-size", "64", "--activation",
              "quick_gelu", "--seed", "11"]


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


def layer_norm(x, w, b):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-5) * w + b


def attention(x, sd, p, causal):
    """Multi-head self-attention of x (B,T,C) with the packed in_proj of block prefix p, heads of width 64."""
    B, T, C = x.shape
    qkv = x @ sd[p + "attn.in_proj_weight"].T + sd[p + "attn.in_proj_bias"]
    q, k, v = qkv.split(C, dim=-1)
    H = C // 64
    q, k, v = (t.reshape(B, T, H, 64).transpose(1, 2) for t in (q, k, v))
    s = q @ k.transpose(-1, -2) / 8.0
    if causal:
        s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
    o = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, T, C)
    return o @ sd[p + "attn.out_proj.weight"].T + sd[p + "attn.out_proj.bias"]


def mlp(x, sd, p):
    h = quick_gelu(x @ sd[p + "mlp.c_fc.weight"].T + sd[p + "mlp.c_fc.bias"])
    return h @ sd[p + "mlp.c_proj.weight"].T + sd[p + "mlp.c_proj.bias"]


def vision(sd, pixels):
    """Stock CLIP ViT: returns the image embedding (B,E) and the patch rows of tap 1 (B,G*G,D)."""
    conv = sd["visual.conv1.weight"]
    D, P = conv.shape[0], conv.shape[2]
    B, S = pixels.shape[0], pixels.shape[2]
    G = S // P
    patches = pixels.reshape(B, 3, G, P, G, P).permute(0, 2, 4, 1, 3, 5).reshape(B, G * G, 3 * P * P)
    x = patches @ conv.reshape(D, -1).T
    x = torch.cat([sd["visual.class_embedding"].expand(B, 1, D), x], 1) + sd["visual.positional_embedding"]
    x = layer_norm(x, sd["visual.ln_pre.weight"], sd["visual.ln_pre.bias"])
    mid = None
    for i in range(2):
        p = f"visual.transformer.resblocks.{i}."
        x = x + attention(layer_norm(x, sd[p + "ln_1.weight"], sd[p + "ln_1.bias"]), sd, p, False)
        if i == 1:
            mid = x[:, 1:, :].clone()
        x = x + mlp(layer_norm(x, sd[p + "ln_2.weight"], sd[p + "ln_2.bias"]), sd, p)
    cls = layer_norm(x[:, 0, :], sd["visual.ln_post.weight"], sd["visual.ln_post.bias"]) @ sd["visual.proj"]
    return cls, mid


def text(sd, emb, eot):
    x = emb + sd["positional_embedding"][: emb.shape[1]]
    for i in range(2):
        p = f"transformer.resblocks.{i}."
        x = x + attention(layer_norm(x, sd[p + "ln_1.weight"], sd[p + "ln_1.bias"]), sd, p, True)
        x = x + mlp(layer_norm(x, sd[p + "ln_2.weight"], sd[p + "ln_2.bias"]), sd, p)
    x = x[torch.arange(x.shape[0]), eot]
    return layer_norm(x, sd["ln_final.weight"], sd["ln_final.bias"]) @ sd["text_projection"]


def f32(t):
    return t.detach().numpy().astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--promptad", default="build/promptad", help="the promptad binary (for make-model)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "qg.safetensors")
        subprocess.run([args.promptad, "make-model", *MODEL_ARGS, "--out", ckpt], check=True)
        with open(ckpt, "rb") as f:
            meta = json.loads(f.read(struct.unpack("<Q", f.read(8))[0])).get("__metadata__", {})
        assert meta.get("activation") == "quick_gelu", meta
        sd = {k: torch.from_numpy(v.astype(np.float64)) for k, v in st_io.load(ckpt).items()}
    g = torch.Generator().manual_seed(3)
    out = {}
    # op cases: a spread of magnitudes (the sigmoid saturates on both sides) plus exact points
    M, N = 8, 125
    x = (torch.randn((M, N), generator=g) * 4.0).float()
    x.view(-1)[:6] = torch.tensor([0.0, -0.0, 1.0, -1.0, 30.0, -30.0])
    bias = (torch.randn(N, generator=g) * 0.5).float()
    dout = torch.randn((M, N), generator=g).float()
    xd = x.double().requires_grad_(True)
    y = quick_gelu(xd)
    (y * dout.double()).sum().backward()
    out.update(op_x=x.numpy(), op_bias=bias.numpy(), op_dout=dout.numpy(), op_y=f32(y),
               op_y_bias=f32(quick_gelu((x + bias).double())), op_dx=f32(xd.grad))
    # the vision tower
    pixels = torch.randn((1, 3, 64, 64), generator=g).float()
    with torch.no_grad():
        cls, mid = vision(sd, pixels.double())
    out.update(pixels=pixels.numpy(), cls=f32(cls), mid2=f32(mid))
    # the text tower and its backward
    P, L, W = 2, 6, sd["token_embedding.weight"].shape[1]
    eot = torch.tensor([5, 3])
    emb = (torch.randn((P, L, W), generator=g) * 0.1).float().double().requires_grad_(True)
    feat = text(sd, emb, eot)
    dfeat = torch.randn(feat.shape, generator=g).float().double()
    (feat * dfeat).sum().backward()
    out.update(emb=f32(emb), eot=eot.numpy().astype(np.int32), dfeat=f32(dfeat), feat=f32(feat), demb=f32(emb.grad))
    out["weights_checksum"] = np.array([float(sd[k].sum()) for k in ("visual.conv1.weight", "token_embedding.weight",
                                                                     "transformer.resblocks.1.mlp.c_fc.weight")])
    path = os.path.join(args.out, "quick_gelu.safetensors")
    st_io.save(path, out, {"generator": "tests/ref/ref_quick_gelu.py", "model": "make-model " + " ".join(MODEL_ARGS)})
    print("wrote", path)


if __name__ == "__main__":
    main()
