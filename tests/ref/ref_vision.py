#!/usr/bin/python3
"""ref_vision.py - independent PyTorch reference for the dual-path (q-k / v-v) CLIP vision tower of PromptAD and for
the attention ops, written from the equations of docs/method.md#vision-tower and docs/clip.md (not from the
C code). Computes in float64, stores float32.

Writes two fixtures:
  tests/fixtures/vision_tiny.safetensors   weights checksum, pixels (3,3,64,64), and for taps (3,8): cls (3,E),
                                           tokens (3,16,E), mid1/mid2 (3,16,D); mid1/mid2 for taps (6,9) and (0,11)
  tests/fixtures/attention_ops.safetensors per case i: dims (B,T,NH,HS), qkv, standard out/att, causal out/att,
                                           dual q-k and v-v outputs

Usage (from the repository root, after building):
  build/promptad make-model --preset tiny --seed 0 --out /tmp/tiny.safetensors
  /usr/bin/python3 tests/ref/ref_vision.py --weights /tmp/tiny.safetensors --fixtures tests/fixtures
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

EPS = 1e-5
# Tensors whose (sum, sum of squares) identify the random weights of `make-model --preset tiny --seed 0`.
CHECKSUM_TENSORS = [
    "visual.conv1.weight",
    "visual.class_embedding",
    "visual.positional_embedding",
    "visual.transformer.resblocks.0.attn.in_proj_weight",
    "visual.transformer.resblocks.5.attn.out_proj.bias",
    "visual.transformer.resblocks.11.mlp.c_fc.weight",
    "visual.transformer.resblocks.11.ln_2.weight",
    "visual.ln_post.bias",
    "visual.proj",
]


def attn_probs(x, y, scale, causal=False):
    """softmax(scale * x y^T) over the last axis; x, y (..., T, HS)."""
    s = scale * (x @ y.transpose(-1, -2))
    if causal:
        T = s.shape[-1]
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        s = s.masked_fill(mask, float("-inf"))
    return torch.softmax(s, dim=-1)


def split_heads(qkv, NH):
    """qkv (B,T,3C) -> q, k, v each (B,NH,T,HS)."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    HS = C // NH
    q, k, v = qkv.split(C, dim=-1)
    return [t.reshape(B, T, NH, HS).permute(0, 2, 1, 3) for t in (q, k, v)]


def merge_heads(o):
    """(B,NH,T,HS) -> (B,T,NH*HS), head 0 first."""
    B, NH, T, HS = o.shape
    return o.permute(0, 2, 1, 3).reshape(B, T, NH * HS)


class Tower:
    """The vision tower from a state dict (float64 tensors)."""

    def __init__(self, sd):
        self.sd = sd
        self.D = sd["visual.class_embedding"].shape[0]
        self.P = sd["visual.conv1.weight"].shape[-1]
        self.L = len({k.split(".")[3] for k in sd if k.startswith("visual.transformer.resblocks.")})
        self.NH = self.D // 64

    def p(self, name):
        return self.sd[name]

    def blk(self, l, name):
        return self.sd[f"visual.transformer.resblocks.{l}.{name}"]

    def embed(self, pixels):
        """x_0 = ln_pre(cat(class_embedding, conv1(pixels) patches) + positional_embedding)."""
        x = F.conv2d(pixels, self.p("visual.conv1.weight"), stride=self.P)  # (B,D,G,G)
        x = x.flatten(2).transpose(1, 2)  # (B,G*G,D), row-major patch order
        B = x.shape[0]
        cls = self.p("visual.class_embedding").reshape(1, 1, -1).expand(B, 1, self.D)
        x = torch.cat([cls, x], dim=1) + self.p("visual.positional_embedding")
        return F.layer_norm(x, (self.D,), self.p("visual.ln_pre.weight"), self.p("visual.ln_pre.bias"), EPS)

    def attn(self, l, h):
        """Dual attention of block l on h = ln_1(x_ori): returns (o_ori, o_vv), both after out_proj."""
        qkv = h @ self.blk(l, "attn.in_proj_weight").T + self.blk(l, "attn.in_proj_bias")
        q, k, v = split_heads(qkv, self.NH)
        s = (self.D // self.NH) ** -0.5
        o_ori = merge_heads(attn_probs(q, k, s) @ v)
        o_vv = merge_heads(attn_probs(v, v, s) @ v)
        W, b = self.blk(l, "attn.out_proj.weight"), self.blk(l, "attn.out_proj.bias")
        return o_ori @ W.T + b, o_vv @ W.T + b

    def mlp(self, l, x):
        h = F.layer_norm(x, (self.D,), self.blk(l, "ln_2.weight"), self.blk(l, "ln_2.bias"), EPS)
        h = F.gelu(h @ self.blk(l, "mlp.c_fc.weight").T + self.blk(l, "mlp.c_fc.bias"))  # exact erf GELU
        return h @ self.blk(l, "mlp.c_proj.weight").T + self.blk(l, "mlp.c_proj.bias")

    def ln1(self, l, x):
        return F.layer_norm(x, (self.D,), self.blk(l, "ln_1.weight"), self.blk(l, "ln_1.bias"), EPS)

    def head(self, x):
        x = F.layer_norm(x, (self.D,), self.p("visual.ln_post.weight"), self.p("visual.ln_post.bias"), EPS)
        return x @ self.p("visual.proj")

    def forward(self, pixels, taps):
        """Equations of docs/method.md#memory-bank-taps: tap k = x_ori after block k's attention residual, before its
        MLP. Returns cls (B,E), tokens (B,G*G,E), [mid_k (B,G*G,D) for k in taps]."""
        x0 = self.embed(pixels)
        x_ori, x_vv = x0, x0
        mids = {}
        for l in range(self.L):
            o_ori, o_vv = self.attn(l, self.ln1(l, x_ori))
            x_ori = x_ori + o_ori
            if l in taps:
                mids[l] = x_ori[:, 1:].clone()
            x_ori = x_ori + self.mlp(l, x_ori)
            x_vv = x_vv + o_vv
        x_vv = x_vv.clone()
        x_vv[:, 0] = x_ori[:, 0]
        out = self.head(x_vv)
        return out[:, 0], out[:, 1:], [mids[k] for k in taps]

    def forward_official_mechanism(self, pixels, hook_blocks):
        """A literal mirror of the official control flow (PromptAD/CLIPAD/transformer.py:215-262, 603-613): block 0
        takes a tensor, later blocks take [x_vv, x_ori] and update both IN PLACE; forward hooks on
        resblocks[hook_blocks[i]] keep a view (no clone) of output[1] (x_ori) patch rows. Used only to check that
        the hooked values equal the "tap = hook block + 1" states of `forward`."""
        x = self.embed(pixels)
        hooked, plain = {}, {}
        state = x
        for l in range(self.L):
            if l == 0:
                o_ori, o_vv = self.attn(l, self.ln1(l, state))
                x_ori = state + o_ori
                x_ori = x_ori + self.mlp(l, x_ori)
                x_vv = state + o_vv
            else:
                x_vv, x_ori = state
                o_ori, o_vv = self.attn(l, self.ln1(l, x_ori))
                x_ori += o_ori  # in place: changes the tensor a hook may hold
                x_ori = x_ori + self.mlp(l, x_ori)
                x_vv += o_vv
            state = [x_vv, x_ori]
            if l in hook_blocks:
                hooked[l] = x_ori[:, 1:]  # a view, as output[1].permute(1,0,2)[:,1:,:] in the hook
                plain[l] = x_ori[:, 1:].clone()  # what a clone (AnomalyCLIP style) would have kept
        return [hooked[k].clone() for k in hook_blocks], [plain[k] for k in hook_blocks]


def checksum(sd32):
    return np.array([[np.sum(sd32[n].astype(np.float64)), np.sum(np.square(sd32[n].astype(np.float64)))]
                     for n in CHECKSUM_TENSORS], dtype=np.float64)


def vision_fixture(weights, path):
    sd32 = {k: v for k, v in st_io.load(weights).items() if k.startswith("visual.")}
    sd = {k: torch.from_numpy(v.astype(np.float64)) for k, v in sd32.items()}
    tower = Tower(sd)
    S = tower.P * int(round((sd32["visual.positional_embedding"].shape[0] - 1) ** 0.5))
    g = torch.Generator().manual_seed(1234)
    pixels32 = torch.randn(3, 3, S, S, generator=g, dtype=torch.float32)
    pixels = pixels32.double()
    out = {"weights_checksum": checksum(sd32), "pixels": pixels32.numpy()}
    cls, tokens, (m1, m2) = tower.forward(pixels, [3, 8])
    # the official hook mechanism (hooks on resblocks[2] and [7] + in-place updates) gives the same values
    (h1, h2), (p1, p2) = tower.forward_official_mechanism(pixels, [2, 7])
    assert torch.equal(h1, m1) and torch.equal(h2, m2), "hook aliasing does not reproduce taps 3 and 8"
    # ... and differs clearly from the plain block-2 / block-7 outputs
    assert (p1 - m1).abs().max() > 1e-2 and (p2 - m2).abs().max() > 1e-2
    out.update(cls=cls, tokens=tokens, mid1=m1, mid2=m2)
    for t1, t2 in [(6, 9), (0, 11)]:
        c2, tk2, (a, b) = tower.forward(pixels, [t1, t2])
        assert torch.equal(c2, cls) and torch.equal(tk2, tokens)
        out[f"mid1_taps{t1}_{t2}"] = a
        out[f"mid2_taps{t1}_{t2}"] = b
    tensors = {k: (v.float().numpy() if torch.is_tensor(v) else v) for k, v in out.items()}
    st_io.save(path, tensors, metadata={
        "generator": "tests/ref/ref_vision.py",
        "weights": "promptad make-model --preset tiny --seed 0",
        "checksum_tensors": ",".join(CHECKSUM_TENSORS),
    })
    print(f"wrote {path}: cls {tuple(cls.shape)}, tokens {tuple(tokens.shape)}, mid {tuple(m1.shape)}")


def attention_fixture(path):
    cases = [(2, 1, 1, 8), (1, 17, 2, 16), (2, 33, 3, 8), (1, 17, 3, 64), (1, 33, 1, 4)]
    g = torch.Generator().manual_seed(99)
    out = {}
    for i, (B, T, NH, HS) in enumerate(cases):
        qkv32 = (1.5 * torch.randn(B, T, 3 * NH * HS, generator=g)).float()
        qkv = qkv32.double()
        q, k, v = split_heads(qkv, NH)
        s = HS ** -0.5
        p_std = attn_probs(q, k, s)
        p_cau = attn_probs(q, k, s, causal=True)
        p_vv = attn_probs(v, v, s)
        out[f"c{i}_dims"] = np.array([B, T, NH, HS], dtype=np.int32)
        out[f"c{i}_qkv"] = qkv32.numpy()
        out[f"c{i}_out"] = merge_heads(p_std @ v).float().numpy()
        out[f"c{i}_att"] = p_std.float().numpy()
        out[f"c{i}_causal_out"] = merge_heads(p_cau @ v).float().numpy()
        out[f"c{i}_causal_att"] = p_cau.float().numpy()
        out[f"c{i}_dual_qk"] = merge_heads(p_std @ v).float().numpy()
        out[f"c{i}_dual_vv"] = merge_heads(p_vv @ v).float().numpy()
    st_io.save(path, out, metadata={"generator": "tests/ref/ref_vision.py", "cases": str(len(cases))})
    print(f"wrote {path}: {len(cases)} cases")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="checkpoint from `promptad make-model --preset tiny --seed 0`")
    ap.add_argument("--fixtures", default="tests/fixtures", help="output folder")
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    os.makedirs(a.fixtures, exist_ok=True)
    vision_fixture(a.weights, os.path.join(a.fixtures, "vision_tiny.safetensors"))
    attention_fixture(os.path.join(a.fixtures, "attention_ops.safetensors"))


if __name__ == "__main__":
    main()
