"""ref_text.py - independent PyTorch reference for the CLIP text tower, its backward pass and PromptAD's prompt
learning (docs/method.md, docs/clip.md#text-tower), written from the docs (not from the C code).

Writes the fixtures read by tests/test_text.c, tests/test_prompt.c and tests/test_ops_text.c:
  text_features.safetensors    ids (n,77) I32 of byte-level tokenised prompts, their raw features (n,E)
  text_backward.safetensors    emb (P,L,W), eot (P), dfeat (P,E) -> feat (P,E), demb (P,L,W)
  ops_text_grad.safetensors    attention forward/backward, l2norm, cross-entropy, EAM per-op cases
  prompt_cls.safetensors       class bottle, task cls: loss terms and gradients at the init, 3 epochs of training
  prompt_seg.safetensors       class metal_nut, task seg (official token-axis EAM), same contents
All model maths runs in float64. The model is the tiny random checkpoint of
  promptad make-model --preset tiny --vocab-size 514 --seed 0
whose text vocabulary is the 0-merge byte-level one (SOT 512, EOT 513), tokenised here by our own code.

Run with /usr/bin/python3 (torch 1.13):  /usr/bin/python3 tests/ref/ref_text.py --promptad build/promptad
"""
import argparse
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

torch.set_default_dtype(torch.float64)
CTX = 77
SOT, EOT = 512, 513
CHECKSUM_TENSORS = ["token_embedding.weight", "positional_embedding", "transformer.resblocks.0.attn.in_proj_weight",
                    "transformer.resblocks.11.mlp.c_proj.weight", "ln_final.weight", "text_projection"]

# ----------------------------------------------------------------------------------------------------------------
# byte-level tokenizer with zero merges (docs/clip.md#tokenizer with an empty merge list)


def bytes_to_unicode_order():
    """The byte order of ids 0..255: bytes 33..126, 161..172, 174..255, then the others increasing."""
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    rest = [b for b in range(256) if b not in bs]
    return bs + rest


BYTE_ID = {b: i for i, b in enumerate(bytes_to_unicode_order())}


def pretokenize(text):
    """Pieces of lower-cased ASCII text: contraction | letter run | one digit | run of other non-space chars."""
    text = " ".join(text.split()).lower()
    pieces, i = [], 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
            continue
        m = next((s for s in ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d") if text.startswith(s, i)), None)
        if m:
            pieces.append(m)
            i += len(m)
        elif c.isalpha():
            j = i
            while j < len(text) and text[j].isalpha():
                j += 1
            pieces.append(text[i:j])
            i = j
        elif c.isdigit():
            pieces.append(c)
            i += 1
        else:
            j = i
            while j < len(text) and not (text[j].isspace() or text[j].isalpha() or text[j].isdigit()):
                j += 1
            pieces.append(text[i:j])
            i = j
    return pieces


def byte_tokenize(text):
    ids = [SOT]
    for piece in pretokenize(text):
        bs = piece.encode("utf-8")
        ids += [BYTE_ID[b] for b in bs[:-1]] + [BYTE_ID[bs[-1]] + 256]
    ids.append(EOT)
    assert len(ids) <= CTX, text
    return ids + [0] * (CTX - len(ids))


# ----------------------------------------------------------------------------------------------------------------
# text tower (docs/clip.md#building-blocks, #text-tower)


def load_model(path):
    sd = st_io.load(path)
    m = {k: torch.from_numpy(v.astype(np.float64)) for k, v in sd.items()}
    m["layers"] = sum(1 for k in sd if k.startswith("transformer.resblocks.") and k.endswith(".ln_1.weight"))
    m["width"] = sd["ln_final.weight"].shape[0]
    m["heads"] = m["width"] // 64
    m["checksum"] = np.array([float(np.sum(sd[k].astype(np.float64))) for k in CHECKSUM_TENSORS])
    return m


def text_tower(m, emb, eot):
    """emb (P,L,W) token embeddings without positions, eot (P) -> raw features (P,E)."""
    P, L, W = emb.shape
    H = m["heads"]
    hs = W // H
    x = emb + m["positional_embedding"][:L]
    mask = torch.full((L, L), float("-inf")).triu(1)
    for i in range(m["layers"]):
        p = f"transformer.resblocks.{i}."
        h = F.layer_norm(x, (W,), m[p + "ln_1.weight"], m[p + "ln_1.bias"], 1e-5)
        qkv = h @ m[p + "attn.in_proj_weight"].T + m[p + "attn.in_proj_bias"]
        q, k, v = [t.reshape(P, L, H, hs).transpose(1, 2) for t in qkv.split(W, dim=-1)]
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hs) + mask, dim=-1) @ v
        a = a.transpose(1, 2).reshape(P, L, W)
        x = x + a @ m[p + "attn.out_proj.weight"].T + m[p + "attn.out_proj.bias"]
        h = F.layer_norm(x, (W,), m[p + "ln_2.weight"], m[p + "ln_2.bias"], 1e-5)
        h = F.gelu(h @ m[p + "mlp.c_fc.weight"].T + m[p + "mlp.c_fc.bias"])
        x = x + h @ m[p + "mlp.c_proj.weight"].T + m[p + "mlp.c_proj.bias"]
    x = F.layer_norm(x, (W,), m["ln_final.weight"], m["ln_final.bias"], 1e-5)
    return x[torch.arange(P), torch.as_tensor(eot)] @ m["text_projection"]


def encode_ids(m, ids):
    ids = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    eot = ids.argmax(dim=-1)
    return text_tower(m, m["token_embedding.weight"][ids], eot)


# ----------------------------------------------------------------------------------------------------------------
# PromptAD prompt learner and losses (docs/method.md#prompts, #losses, #text-vectors)

GENERIC = ["damaged {}", "flawed {}", "abnormal {}", "imperfect {}", "blemished {}", "{} with flaw",
           "{} with defect", "{} with damage"]
CLASSES = {  # key: (text name, per-class states) from docs/method.md#prompt-sets
    "bottle": ("bottle", ["{} with large breakage", "{} with small breakage", "{} with contamination"]),
    "metal_nut": ("metal nut", ["{} with a bent shape ", "{} with color stain", "{} with a flipped orientation",
                                "{} with scratch"]),
}


class Learner:
    def __init__(self, m, key, n_pro, n_pro_ab, n_ctx=4, n_ctx_ab=1, no_map=False, no_lap=False):
        """no_map / no_lap: the ablations of the paper's Table 2 (no manual / no learned anomaly prompts; the
        alignment loss, which needs both, is then 0)."""
        name, extra = CLASSES[key]
        states = [] if no_map else GENERIC + extra
        self.m, self.n_pro, self.n_pro_ab, self.n_ctx, self.n_ctx_ab = m, n_pro, n_pro_ab, n_ctx, n_ctx_ab
        pre = " ".join(["N"] * n_ctx)
        pre_ab = " ".join(["A"] * n_ctx_ab)
        np_txt = [pre + " " + name + "." for _ in range(n_pro)]
        map_txt = [pre + " " + s.format(name) + "." for s in states for _ in range(n_pro)]
        lap_txt = [pre + " " + pre_ab + " " + name + "." for _ in range(0 if no_lap else n_pro_ab) for _ in range(n_pro)]
        self.ids = [torch.tensor([byte_tokenize(t) for t in txt], dtype=torch.long).reshape(len(txt), CTX)
                    for txt in (np_txt, map_txt, lap_txt)]
        self.n_lap_sets = 0 if no_lap else n_pro_ab
        self.emb = [m["token_embedding.weight"][i] for i in self.ids]
        self.n_map = len(states)

    def features(self, normal_ctx, abnormal_ctx):
        """Raw features of NP (n_pro), MAP (n_MAP*n_pro, row s*n_pro+p), LAP (n_pro*n_pro_ab, row i)."""
        nc = self.n_ctx
        e_np, e_map, e_lap = self.emb
        np_emb = torch.cat([e_np[:, :1], normal_ctx, e_np[:, 1 + nc:]], dim=1)
        rep = normal_ctx.unsqueeze(0).expand(self.n_map, -1, -1, -1).reshape(-1, nc, normal_ctx.shape[-1])
        map_emb = torch.cat([e_map[:, :1], rep, e_map[:, 1 + nc:]], dim=1)
        n_lap = self.n_pro * self.n_lap_sets
        if n_lap:
            nrep = torch.stack([normal_ctx[i % self.n_pro] for i in range(n_lap)])
            arep = torch.stack([abnormal_ctx[i % self.n_pro_ab] for i in range(n_lap)])
            lap_emb = torch.cat([e_lap[:, :1], nrep, arep, e_lap[:, 1 + nc + self.n_ctx_ab:]], dim=1)
        else:
            lap_emb = e_lap
        out = []
        for emb, ids in zip((np_emb, map_emb, lap_emb), self.ids):  # full 77-token sequences, no cut
            if ids.shape[0] == 0:
                out.append(torch.zeros(0, self.m["text_projection"].shape[1]))
                continue
            out.append(text_tower(self.m, emb, ids.argmax(dim=-1)))
        return out

    def loss(self, normal_ctx, abnormal_ctx, f, task, tau, margin=0.0, lam=0.001, eam_token_axis=True):
        n, h, l = self.features(normal_ctx, abnormal_ctx)
        a = torch.cat([h, l], dim=0)
        wn = F.normalize(n.mean(dim=0), dim=-1)
        wa = F.normalize(a.mean(dim=0), dim=-1)
        ahat = F.normalize(a, dim=-1)
        if task == "cls":  # f (B,E)
            logits = tau * torch.cat([(f @ wn)[:, None], f @ ahat.T], dim=1)
            ce = F.cross_entropy(logits, torch.zeros(f.shape[0], dtype=torch.long))
            hinge = ((f - wn) ** 2).sum(dim=1) - ((f - wa) ** 2).sum(dim=1) + margin
        else:  # f (B,T,E)
            logits = tau * torch.cat([(f @ wn)[..., None], f @ ahat.T], dim=-1)  # (B,T,1+Pa)
            ce = F.cross_entropy(logits.transpose(1, 2), torch.zeros(f.shape[:2], dtype=torch.long))
            if eam_token_axis:
                hinge = ((f - wn) ** 2).sum(dim=1) - ((f - wa) ** 2).sum(dim=1) + margin  # dim 1 = tokens
            else:
                hinge = ((f - wn) ** 2).sum(dim=-1) - ((f - wa) ** 2).sum(dim=-1) + margin
        eam = torch.relu(hinge).mean()
        if h.shape[0] and l.shape[0]:
            align = (F.normalize(h, dim=-1).mean(dim=0) - F.normalize(l, dim=-1).mean(dim=0)).norm() ** 2
        else:
            align = torch.zeros(())
        total = ce + eam + lam * align
        return total, ce, eam, align, hinge

    def text_vectors(self, normal_ctx, abnormal_ctx):
        n, h, l = self.features(normal_ctx, abnormal_ctx)
        a = torch.cat([h, l], dim=0)
        return torch.stack([F.normalize(n.mean(dim=0), dim=-1), F.normalize(a.mean(dim=0), dim=-1)])


def prompt_fixture(m, key, task, n_pro, B, T, seed, epochs, path, no_map=False, no_lap=False):
    g = torch.Generator().manual_seed(seed)
    W = m["width"]
    E = m["text_projection"].shape[1]
    tau = float(m["logit_scale"])
    lr = Learner(m, key, n_pro, 4, no_map=no_map, no_lap=no_lap)
    shape = (B, E) if task == "cls" else (B, T, E)
    feats_raw = torch.randn(shape, generator=g) * 0.7 + 0.3
    f = F.normalize(feats_raw, dim=-1)
    nctx0 = torch.randn((n_pro, 4, W), generator=g) * 0.02
    actx0 = torch.randn((4, 1, W), generator=g) * 0.02
    # loss and gradients at the init
    nctx = nctx0.clone().requires_grad_(True)
    actx = actx0.clone().requires_grad_(True)
    total, ce, eam, align, hinge = lr.loss(nctx, actx, f, task, tau)
    assert hinge.abs().min() > 1e-4, f"a hinge argument is too close to 0 ({hinge.abs().min():.2e}): change the seed"
    total.backward()
    out = {
        "image_features": feats_raw.numpy().astype(np.float32),
        "normal_ctx_init": nctx0.numpy().astype(np.float32),
        "abnormal_ctx_init": actx0.numpy().astype(np.float32),
        "loss_terms": np.array([total.item(), ce.item(), eam.item(), align.item()], dtype=np.float64),
        "grad_normal_ctx": nctx.grad.numpy().astype(np.float32),
        "grad_abnormal_ctx": (actx.grad if actx.grad is not None else torch.zeros_like(actx)).numpy().astype(
            np.float32),
        "text_vectors_init": lr.text_vectors(nctx0, actx0).numpy().astype(np.float32),
    }
    # training: one SGD step per epoch, cosine-annealed lr (torch.optim semantics)
    nctx = torch.nn.Parameter(nctx0.clone())
    actx = torch.nn.Parameter(actx0.clone())
    opt = torch.optim.SGD([nctx, actx], lr=0.002, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=1e-5)
    losses = []
    for _ in range(epochs):
        opt.zero_grad()
        total, _, _, _, hinge = lr.loss(nctx, actx, f, task, tau)
        assert hinge.abs().min() > 1e-4, "a hinge argument is too close to 0 during training: change the seed"
        losses.append(total.item())
        total.backward()
        if actx.grad is None:  # no LAPs: a zero gradient (weight decay and momentum still apply, as in our SGD)
            actx.grad = torch.zeros_like(actx)
        opt.step()
        sched.step()
    out["train_loss"] = np.array(losses, dtype=np.float64)
    out["normal_ctx_trained"] = nctx.detach().numpy().astype(np.float32)
    out["abnormal_ctx_trained"] = actx.detach().numpy().astype(np.float32)
    out["text_vectors_trained"] = lr.text_vectors(nctx.detach(), actx.detach()).numpy().astype(np.float32)
    out["weights_checksum"] = m["checksum"]
    meta = {"class": key, "task": task, "n_pro": n_pro, "n_pro_ab": 4, "n_ctx": 4, "n_ctx_ab": 1, "epochs": epochs,
            "prompt_counts": f"{n_pro} {lr.n_map * n_pro} {n_pro * lr.n_lap_sets}",
            "eam": "token-axis" if task == "seg" else "", "no_map": no_map, "no_lap": no_lap,
            "generator": "tests/ref/ref_text.py"}
    st_io.save(path, out, meta)
    print(f"{path}: loss {out['loss_terms']}, train {out['train_loss']}")


# ----------------------------------------------------------------------------------------------------------------
# per-op cases


def attention_case(g, B, T, NH, HS, causal):
    C = NH * HS
    qkv = (torch.randn((B, T, 3 * C), generator=g)).requires_grad_(True)
    q, k, v = [t.reshape(B, T, NH, HS).transpose(1, 2) for t in qkv.split(C, dim=-1)]
    s = q @ k.transpose(-1, -2) / math.sqrt(HS)
    if causal:
        s = s + torch.full((T, T), float("-inf")).triu(1)
    att = torch.softmax(s, dim=-1)
    out = (att @ v).transpose(1, 2).reshape(B, T, C)
    dout = torch.randn((B, T, C), generator=g)
    (out * dout).sum().backward()
    return qkv.detach(), att.detach(), out.detach(), dout, qkv.grad


def ops_fixture(path):
    g = torch.Generator().manual_seed(1234)
    out = {}
    for name, causal in (("causal", True), ("full", False)):
        qkv, att, o, dout, dqkv = attention_case(g, 2, 7, 3, 16, causal)
        for k, v in (("qkv", qkv), ("att", att), ("out", o), ("dout", dout), ("dqkv", dqkv)):
            out[f"attn_{name}_{k}"] = v.numpy().astype(np.float32)
    # l2norm rows and backward
    x = (torch.randn((5, 33), generator=g) * 2).requires_grad_(True)
    y = F.normalize(x, dim=-1)
    dy = torch.randn((5, 33), generator=g)
    (y * dy).sum().backward()
    out.update(l2n_x=x.detach(), l2n_y=y.detach(), l2n_norm=x.detach().norm(dim=-1), l2n_dy=dy, l2n_dx=x.grad)
    # cross-entropy with target 0
    z = (torch.randn((7, 5), generator=g) * 3).requires_grad_(True)
    loss = F.cross_entropy(z, torch.zeros(7, dtype=torch.long))
    loss.backward()
    out.update(xent_z=z.detach(), xent_loss=loss.detach().reshape(1), xent_dz=z.grad)
    # EAM: f (B,T,D) unit rows, anchors unit; per-sample and token-axis variants, margins 0 and 0.3
    f = F.normalize(torch.randn((3, 4, 24), generator=g) + 0.2, dim=-1)
    wn0 = F.normalize(torch.randn(24, generator=g) + 0.2, dim=-1)
    wa0 = F.normalize(torch.randn(24, generator=g) + 0.2, dim=-1)
    out.update(eam_f=f, eam_wn=wn0, eam_wa=wa0)
    for axis, dim in (("rows", -1), ("tokens", 1)):
        for mi, margin in enumerate((0.0, 0.3)):
            wn = wn0.clone().requires_grad_(True)
            wa = wa0.clone().requires_grad_(True)
            hinge = ((f - wn) ** 2).sum(dim=dim) - ((f - wa) ** 2).sum(dim=dim) + margin
            assert hinge.abs().min() > 1e-4, (axis, margin, hinge.abs().min())
            loss = torch.relu(hinge).mean()
            loss.backward()
            out[f"eam_{axis}{mi}_loss"] = loss.detach().reshape(1)
            out[f"eam_{axis}{mi}_dwn"] = wn.grad
            out[f"eam_{axis}{mi}_dwa"] = wa.grad
    out = {k: (v.numpy() if torch.is_tensor(v) else v).astype(np.float32) for k, v in out.items()}
    st_io.save(path, out, {"generator": "tests/ref/ref_text.py"})
    print(f"{path}: {len(out)} tensors")


# ----------------------------------------------------------------------------------------------------------------


TEXTS = ["N N N N bottle.", "a photo of a damaged metal nut.", "x", "N N N N A printed circuit board.",
         "it's 2024, isn't it?"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--promptad", default="build/promptad", help="the promptad binary (for make-model)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
    ap.add_argument("--only-ablations", action="store_true", help="write only prompt_cls_no{map,lap}.safetensors")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "tiny514.safetensors")
        subprocess.run([args.promptad, "make-model", "--preset", "tiny", "--vocab-size", "514", "--seed", "0",
                        "--out", ckpt], check=True)
        m = load_model(ckpt)
    meta = {"generator": "tests/ref/ref_text.py", "model": "make-model --preset tiny --vocab-size 514 --seed 0"}
    # the ablations of the paper's Table 2 (cls task, bottle, the same init as prompt_cls)
    prompt_fixture(m, "bottle", "cls", 3, 3, 1, 11, 3, os.path.join(args.out, "prompt_cls_nomap.safetensors"),
                   no_map=True)
    prompt_fixture(m, "bottle", "cls", 3, 3, 1, 11, 3, os.path.join(args.out, "prompt_cls_nolap.safetensors"),
                   no_lap=True)
    if args.only_ablations:
        return

    # text features of token ids
    ids = np.array([byte_tokenize(t) for t in TEXTS], dtype=np.int32)
    with torch.no_grad():
        feats = encode_ids(m, ids)
    st_io.save(os.path.join(args.out, "text_features.safetensors"),
               {"ids": ids, "features": feats.numpy().astype(np.float32), "weights_checksum": m["checksum"]},
               dict(meta, texts=" | ".join(TEXTS)))

    # backward of the text tower to its input embeddings
    g = torch.Generator().manual_seed(7)
    P, L, W = 3, 6, m["width"]
    eot = torch.tensor([5, 2, 4])
    emb = (torch.randn((P, L, W), generator=g) * 0.1).requires_grad_(True)
    feat = text_tower(m, emb, eot)
    dfeat = torch.randn(feat.shape, generator=g)
    (feat * dfeat).sum().backward()
    st_io.save(os.path.join(args.out, "text_backward.safetensors"),
               {"emb": emb.detach().numpy().astype(np.float32), "eot": eot.numpy().astype(np.int32),
                "dfeat": dfeat.numpy().astype(np.float32), "feat": feat.detach().numpy().astype(np.float32),
                "demb": emb.grad.numpy().astype(np.float32), "weights_checksum": m["checksum"]}, meta)

    ops_fixture(os.path.join(args.out, "ops_text_grad.safetensors"))
    prompt_fixture(m, "bottle", "cls", 3, 3, 1, 11, 3, os.path.join(args.out, "prompt_cls.safetensors"))
    prompt_fixture(m, "metal_nut", "seg", 1, 2, 16, 15, 3, os.path.join(args.out, "prompt_seg.safetensors"))


if __name__ == "__main__":
    main()
