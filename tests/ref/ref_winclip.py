#!/usr/bin/python3
"""ref_winclip.py - independent PyTorch reference for WinCLIP / WinCLIP+ and for the zero-shot CPE method (docs/winclip.md),
written from the semantics of anomalib's WinClipModel (anomalib/models/image/winclip: torch_model.py, utils.py,
prompting.py) operation for operation, not from the C code. The model maths runs in float64 for the fixture (float32
for the benchmark twin, eval/bench/bench_winclip_torch.py).

What it computes, for a batch of preprocessed images (B,3,S,S) and a grid of G x G patches:
  - masks of the sliding windows of size k (anomalib's make_masks: unfold of arange(G*G), stride 1): (k*k, n_k)
    with n_k = (G-k+1)^2, window w covering the patches masks[:, w], windows in row-major order of their top-left;
  - the stock CLIP forward: image embedding ln_post(x[CLS]) @ proj (E) and the patch embeddings ln_post(x[1:]) (D,
    NOT projected: open_clip returns the tokens before the projection);
  - window embeddings: for every window, the token set CLS + the window's patches taken from the embeddings AFTER
    the class/positional embedding and BEFORE ln_pre (the input of patch_dropout), then ln_pre, all transformer
    blocks (standard q-k attention), ln_post, CLS row, @ proj;
  - the compositional prompt ensemble: 7 normal states x 21 templates and 4 anomalous states x 21 templates, each
    set's RAW text features averaged (not normalised first);
  - class_scores: softmax(cos(x, [t_n, t_a]) / 0.07)[1];
  - zero-shot: image score from the CLS embedding; map = harmonic mean over {image score everywhere, harmonic
    aggregation of each scale's window scores} ((S+1) / sum of reciprocals);
  - few-shot (WinCLIP+): visual association (min over the references of (1 - cos) / 2) of the patch embeddings
    against all reference patch embeddings and of each scale's window embeddings against all reference windows of
    that scale, window scores harmonically aggregated; the mean of the 1 + S maps; final map = (zero + few) / 2,
    image score = (zero image score + max of the few-shot map) / 2;
  - pixel map: bilinear (align_corners False) upsample of the G x G map to R x R, no Gaussian;
  - CPE (CPE + V-V CLIP): class_scores of the dual-path V-V patch tokens (ln_post, proj) for the map and of the CLS
    embedding for the image score, with the same averaged CPE text features; pixel map = bilinear upsample, and the
    smoothed map after scipy's gaussian_filter (sigma 4, truncate 4, mode reflect) as PromptAD's evaluation does.

Writes tests/fixtures/winclip_tiny.safetensors from the tiny random model
    build/promptad make-model --preset tiny --vocab-size 514 --seed 0 --out /tmp/tiny514.safetensors
    /usr/bin/python3 tests/ref/ref_winclip.py --weights /tmp/tiny514.safetensors --fixtures tests/fixtures
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
TEMPERATURE = 0.07
SCALES = (2, 3)
SOT, EOT, CTX = 512, 513, 77  # the tiny model's byte-level vocabulary (no merges)

NORMAL_STATES = ["{}", "flawless {}", "perfect {}", "unblemished {}", "{} without flaw", "{} without defect",
                 "{} without damage"]
ANOMALOUS_STATES = ["damaged {}", "{} with flaw", "{} with defect", "{} with damage"]
TEMPLATES = [
    "a cropped photo of the {}.", "a close-up photo of a {}.", "a close-up photo of the {}.",
    "a bright photo of a {}.", "a bright photo of the {}.", "a dark photo of the {}.", "a dark photo of a {}.",
    "a jpeg corrupted photo of the {}.", "a jpeg corrupted photo of the {}.", "a blurry photo of the {}.",
    "a blurry photo of a {}.", "a photo of a {}.", "a photo of the {}.", "a photo of a small {}.",
    "a photo of the small {}.", "a photo of a large {}.", "a photo of the large {}.",
    "a photo of the {} for visual inspection.", "a photo of a {} for visual inspection.",
    "a photo of the {} for anomaly detection.", "a photo of a {} for anomaly detection.",
]


def prompt_ensemble(name):
    """(normal prompts, anomalous prompts): for each state, every template (state-major order)."""
    normal = [t.format(s.format(name)) for s in NORMAL_STATES for t in TEMPLATES]
    anomalous = [t.format(s.format(name)) for s in ANOMALOUS_STATES for t in TEMPLATES]
    return normal, anomalous


# ----------------------------------------------------------------------------------------------------------------
# the CLIP towers from a state dict (any float dtype)


class Clip:
    def __init__(self, sd):
        self.sd = sd
        self.D = sd["visual.class_embedding"].shape[0]
        self.P = sd["visual.conv1.weight"].shape[-1]
        self.G = int(round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5))
        self.S = self.G * self.P
        self.L = len({k.split(".")[3] for k in sd if k.startswith("visual.transformer.resblocks.")})
        self.NH = self.D // 64

    def v(self, name):
        return self.sd["visual." + name]

    def b(self, l, name):
        return self.sd[f"visual.transformer.resblocks.{l}.{name}"]

    def ln(self, x, w, b):
        return F.layer_norm(x, (x.shape[-1],), w, b, EPS)

    def embeddings(self, pixels):
        """cat(class_embedding, conv1 patches) + positional_embedding: (B, 1+G*G, D), before ln_pre."""
        x = F.conv2d(pixels, self.v("conv1.weight"), stride=self.P).flatten(2).transpose(1, 2)
        cls = self.v("class_embedding").reshape(1, 1, -1).expand(x.shape[0], 1, self.D)
        return torch.cat([cls, x], dim=1) + self.v("positional_embedding")

    def _split(self, t):
        N, T, _ = t.shape
        return t.reshape(N, T, self.NH, -1).transpose(1, 2)

    def attn_qk(self, l, h):
        qkv = h @ self.b(l, "attn.in_proj_weight").T + self.b(l, "attn.in_proj_bias")
        q, k, v = (self._split(t) for t in qkv.split(self.D, dim=-1))
        a = torch.softmax(q @ k.transpose(-1, -2) * (q.shape[-1] ** -0.5), dim=-1) @ v
        a = a.transpose(1, 2).reshape(h.shape)
        return a @ self.b(l, "attn.out_proj.weight").T + self.b(l, "attn.out_proj.bias"), v

    def mlp(self, l, x):
        h = self.ln(x, self.b(l, "ln_2.weight"), self.b(l, "ln_2.bias"))
        h = F.gelu(h @ self.b(l, "mlp.c_fc.weight").T + self.b(l, "mlp.c_fc.bias"))
        return h @ self.b(l, "mlp.c_proj.weight").T + self.b(l, "mlp.c_proj.bias")

    def blocks(self, x):
        """The stock transformer on token sets x (N, T, D) after ln_pre."""
        for l in range(self.L):
            x = x + self.attn_qk(l, self.ln(x, self.b(l, "ln_1.weight"), self.b(l, "ln_1.bias")))[0]
            x = x + self.mlp(l, x)
        return self.ln(x, self.v("ln_post.weight"), self.v("ln_post.bias"))

    def ln_pre(self, x):
        return self.ln(x, self.v("ln_pre.weight"), self.v("ln_pre.bias"))

    def encode_image(self, pixels, masks):
        """anomalib's WinClipModel.encode_image: (image (B,E), [windows (B,n_k,E) per scale], patches (B,G*G,D))."""
        fmap = self.embeddings(pixels)
        x = self.blocks(self.ln_pre(fmap))
        image, patches = x[:, 0] @ self.v("proj"), x[:, 1:]
        wins = [self.window_embeddings(fmap, m) for m in masks]
        return image, wins, patches

    def window_embeddings(self, fmap, masks):
        """fmap (B, 1+G*G, D) before ln_pre, masks (k*k, n) -> (B, n, E)."""
        B, n = fmap.shape[0], masks.shape[1]
        idx = torch.cat([torch.zeros(1, n, dtype=torch.long), masks.long() + 1]).T  # (n, 1+k*k)
        masked = torch.cat([torch.index_select(fmap, 1, m) for m in idx])  # (n*B, 1+k*k, D), mask-major
        pooled = self.blocks(self.ln_pre(masked))[:, 0] @ self.v("proj")
        return pooled.reshape(n, B, -1).permute(1, 0, 2)

    def vv_forward(self, pixels):
        """PromptAD's dual path (docs of host/model/vit.h): CLS embedding (B,E) and V-V patch tokens (B,G*G,E)."""
        x0 = self.ln_pre(self.embeddings(pixels))
        x_ori, x_vv = x0, x0
        for l in range(self.L):
            h = self.ln(x_ori, self.b(l, "ln_1.weight"), self.b(l, "ln_1.bias"))
            o_ori, v = self.attn_qk(l, h)
            a = torch.softmax(v @ v.transpose(-1, -2) * (v.shape[-1] ** -0.5), dim=-1) @ v
            o_vv = a.transpose(1, 2).reshape(h.shape) @ self.b(l, "attn.out_proj.weight").T + \
                self.b(l, "attn.out_proj.bias")
            x_ori = x_ori + o_ori
            x_ori = x_ori + self.mlp(l, x_ori)
            x_vv = x_vv + o_vv
        cls = self.ln(x_ori[:, 0], self.v("ln_post.weight"), self.v("ln_post.bias")) @ self.v("proj")
        tok = self.ln(x_vv[:, 1:], self.v("ln_post.weight"), self.v("ln_post.bias")) @ self.v("proj")
        return cls, tok

    def encode_text(self, ids):
        """ids (n, 77) -> raw text features (n, E): ln_final(x)[eot] @ text_projection, causal mask."""
        sd = self.sd
        ids = torch.as_tensor(ids, dtype=torch.long)
        n, L = ids.shape
        W = sd["ln_final.weight"].shape[0]
        H = W // 64
        x = sd["token_embedding.weight"][ids] + sd["positional_embedding"][:L]
        mask = torch.full((L, L), float("-inf"), dtype=x.dtype).triu(1)
        nl = sum(1 for k in sd if k.startswith("transformer.resblocks.") and k.endswith(".ln_1.weight"))
        for i in range(nl):
            p = f"transformer.resblocks.{i}."
            h = self.ln(x, sd[p + "ln_1.weight"], sd[p + "ln_1.bias"])
            qkv = h @ sd[p + "attn.in_proj_weight"].T + sd[p + "attn.in_proj_bias"]
            q, k, v = [t.reshape(n, L, H, -1).transpose(1, 2) for t in qkv.split(W, dim=-1)]
            a = torch.softmax(q @ k.transpose(-1, -2) * (q.shape[-1] ** -0.5) + mask, dim=-1) @ v
            x = x + a.transpose(1, 2).reshape(n, L, W) @ sd[p + "attn.out_proj.weight"].T + sd[p + "attn.out_proj.bias"]
            h = self.ln(x, sd[p + "ln_2.weight"], sd[p + "ln_2.bias"])
            h = F.gelu(h @ sd[p + "mlp.c_fc.weight"].T + sd[p + "mlp.c_fc.bias"])
            x = x + h @ sd[p + "mlp.c_proj.weight"].T + sd[p + "mlp.c_proj.bias"]
        x = self.ln(x, sd["ln_final.weight"], sd["ln_final.bias"])
        return x[torch.arange(n), ids.argmax(dim=-1)] @ sd["text_projection"]


# ----------------------------------------------------------------------------------------------------------------
# anomalib's utils.py


def make_masks(G, k):
    grid = torch.arange(G * G).reshape(1, G, G)
    return F.unfold(grid.double(), kernel_size=k, stride=1).round().int()  # (k*k, n)


def cosine_similarity(a, b):
    """a (B,N,D) or (N,D), b (M,D) -> (B,N,M) or (N,M)."""
    return F.normalize(a, p=2, dim=-1) @ F.normalize(b, p=2, dim=-1).T


def class_scores(emb, text, temperature=TEMPERATURE):
    return (cosine_similarity(emb, text) / temperature).softmax(dim=-1)[..., 1]


def harmonic_aggregation(window_scores, G, masks):
    """window_scores (B, n), masks (k*k, n) -> (B, G, G): count / sum of reciprocals over the covering windows."""
    out = []
    for idx in range(G * G):
        cover = torch.any(masks == idx, dim=0)
        out.append(cover.sum() / (1 / window_scores.T[cover]).sum(dim=0))
    return torch.stack(out).T.reshape(-1, G, G).nan_to_num(posinf=0.0)


def visual_association(emb, ref):
    """emb (B,N,D), ref (K,N',D) -> (B,N): min over all reference rows of (1 - cos) / 2."""
    return (1 - cosine_similarity(emb, ref.reshape(-1, emb.shape[-1]))).min(dim=-1)[0] / 2


class WinClip:
    def __init__(self, clip, text, masks, ref_pixels=None):
        self.clip, self.text, self.masks = clip, text, masks
        self.k_shot = 0
        if ref_pixels is not None:
            self.k_shot = ref_pixels.shape[0]
            _, self.ref_wins, self.ref_patches = clip.encode_image(ref_pixels, masks)

    def zero_shot(self, image_scores, wins):
        G = self.clip.G
        ms = [image_scores.view(-1, 1, 1).repeat(1, G, G)]
        for w, m in zip(wins, self.masks):
            ms.append(harmonic_aggregation(class_scores(w, self.text), G, m))
        return (len(self.masks) + 1) / (1 / torch.stack(ms)).sum(dim=0)

    def few_shot(self, patches, wins):
        G = self.clip.G
        ms = [visual_association(patches, self.ref_patches).reshape(-1, G, G)]
        for w, r, m in zip(wins, self.ref_wins, self.masks):
            ms.append(harmonic_aggregation(visual_association(w, r), G, m))
        return torch.stack(ms).mean(dim=0), ms

    def forward(self, pixels):
        image, wins, patches = self.clip.encode_image(pixels, self.masks)
        img = class_scores(image, self.text)
        grid = self.zero_shot(img, wins)
        out = {"image_embed": image, "patch_embed": patches, "zs_image_score": img, "zs_grid": grid}
        for s, w in zip(SCALES, wins):
            out[f"win{s}_embed"] = w
        if self.k_shot:
            fs, parts = self.few_shot(patches, wins)
            out["fs_grid"] = fs
            out["fs_patch_score"] = parts[0]
            grid = (grid + fs) / 2
            img = (img + fs.amax(dim=(-2, -1))) / 2
        out["image_score"], out["grid"] = img, grid
        return out


def upsample(grid, R):
    return F.interpolate(grid.unsqueeze(1), size=(R, R), mode="bilinear", align_corners=False).squeeze(1)


def gaussian(maps, sigma=4.0):
    from scipy.ndimage import gaussian_filter
    return torch.from_numpy(np.stack([gaussian_filter(m, sigma=sigma, truncate=4.0) for m in maps.numpy()]))


# ----------------------------------------------------------------------------------------------------------------
# byte-level tokenizer of the tiny model (tests/ref/ref_text.py)


def byte_tokenize_all(texts):
    import ref_text
    return np.array([ref_text.byte_tokenize(t) for t in texts], dtype=np.int64)


def cpe_text(clip, name, tokenize):
    normal, anomalous = prompt_ensemble(name)
    tn = clip.encode_text(tokenize(normal)).mean(dim=0)
    ta = clip.encode_text(tokenize(anomalous)).mean(dim=0)
    return torch.stack([tn, ta])


def load_clip(path, dtype=torch.float64):
    sd32 = st_io.load(path)
    return Clip({k: torch.from_numpy(v.astype(np.float64)).to(dtype) for k, v in sd32.items()}), sd32


# the float64 sums that tests/support/tiny_model.c checks (ref_text.py's list)
CHECKSUM_TENSORS = ["token_embedding.weight", "positional_embedding", "transformer.resblocks.0.attn.in_proj_weight",
                    "transformer.resblocks.11.mlp.c_proj.weight", "ln_final.weight", "text_projection"]


def fixture(weights, path):
    clip, sd32 = load_clip(weights)
    G, S = clip.G, clip.S
    g = torch.Generator().manual_seed(4321)
    test32 = torch.randn(3, 3, S, S, generator=g, dtype=torch.float32)
    shots32 = torch.randn(2, 3, S, S, generator=g, dtype=torch.float32)
    # a test image close to a shot: small few-shot scores (an exact copy would give scores of rounding size, whose
    # harmonic aggregation is ill-conditioned)
    test32[2] = shots32[1] + 0.05 * torch.randn(3, S, S, generator=g, dtype=torch.float32)
    masks = [make_masks(G, k) for k in SCALES]
    text = cpe_text(clip, "bottle", byte_tokenize_all)
    R = 30
    out = {
        "weights_checksum": np.array([np.sum(sd32[n].astype(np.float64)) for n in CHECKSUM_TENSORS]),
        "test_pixels": test32.numpy(), "shot_pixels": shots32.numpy(),
        "text_raw": text,
    }
    for s, m in zip(SCALES, masks):
        out[f"masks{s}"] = m.T.contiguous().numpy().astype(np.int32)  # (n, k*k): one row per window
    zs = WinClip(clip, text, masks).forward(test32.double())
    for k in ("image_embed", "patch_embed", "win2_embed", "win3_embed", "image_score", "grid"):
        out["zs_" + k] = zs[k]
    out["zs_pixel_map"] = upsample(zs["grid"], R)
    fs = WinClip(clip, text, masks, ref_pixels=shots32.double()).forward(test32.double())
    out["fs_visual_grid"], out["fs_patch_score"] = fs["fs_grid"], fs["fs_patch_score"]
    out["fs_image_score"], out["fs_grid"] = fs["image_score"], fs["grid"]
    out["fs_pixel_map"] = upsample(fs["grid"], R)
    # CPE + V-V CLIP
    cls, tok = clip.vv_forward(test32.double())
    out["cpe_image_score"] = class_scores(cls, text)
    cg = class_scores(tok, text).reshape(-1, G, G)
    out["cpe_grid"] = cg
    out["cpe_pixel_map"] = upsample(cg, R)
    out["cpe_pixel_map_smoothed"] = gaussian(out["cpe_pixel_map"])
    tensors = {k: (v.float().numpy() if torch.is_tensor(v) else v) for k, v in out.items()}
    tensors["weights_checksum"] = out["weights_checksum"].astype(np.float64)
    st_io.save(path, tensors, metadata={
        "generator": "tests/ref/ref_winclip.py", "weights": "promptad make-model --preset tiny --vocab-size 514 --seed 0",
        "class_name": "bottle", "resolution": str(R), "checksum_tensors": ",".join(CHECKSUM_TENSORS)})
    print(f"wrote {path}: zs image {zs['image_score'].numpy()}, fs image {fs['image_score'].numpy()}, "
          f"cpe image {out['cpe_image_score'].numpy()}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="`promptad make-model --preset tiny --vocab-size 514 --seed 0`")
    ap.add_argument("--fixtures", default="tests/fixtures", help="output folder")
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    fixture(a.weights, os.path.join(a.fixtures, "winclip_tiny.safetensors"))


if __name__ == "__main__":
    main()
