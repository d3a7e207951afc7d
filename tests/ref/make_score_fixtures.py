"""make_score_fixtures.py - independent references for the anomaly-scoring ops (host/score.h, tests/test_score.c):
numpy for the k-NN, the text score and the fusion, torch F.interpolate for the bilinear upsampling,
scipy.ndimage.gaussian_filter for the smoothing, numpy float16 for the fp16 rounding.

Run from the repository root with Debian's python (torch 1.13, scipy 1.10, numpy 1.24):
    /usr/bin/python3 tests/ref/make_score_fixtures.py
Writes tests/fixtures/score_*.safetensors (each well under 1 MB: large maps are stored as row samples).
"""
import os
import sys

import numpy as np
import scipy.ndimage as ndi
import scipy.ndimage._filters as ndi_filters
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
f32 = np.float32


def normalize(x):
    """F.normalize semantics (eps 1e-12) on float32 rows."""
    return F.normalize(torch.from_numpy(np.ascontiguousarray(x, dtype=f32)), dim=-1, eps=1e-12).numpy()


def knn_ref(q, g):
    """d[i] = min_j (1 - q_i.g_j) / 2 in float64, index of the first minimum."""
    s = q.astype(np.float64) @ g.astype(np.float64).T
    d = (1.0 - s) / 2.0
    return d.min(axis=1), d.argmin(axis=1).astype(np.int32)


def make_knn(rng):
    t = {}
    # case a: 3 problems, single tiles; case b: 2 problems crossing the CPU tile sizes (128 queries, 1024 bank rows)
    for name, nb, nq, nbank, d in (("a", 3, 37, 50, 16), ("b", 2, 300, 1100, 24)):
        g = normalize(rng.standard_normal((nb, nbank, d)))
        q = np.zeros((nb, nq, d), f32)
        dist = np.zeros((nb, nq), f32)
        idx = np.zeros((nb, nq), np.int32)
        for b in range(nb):
            for i in range(nq):
                # redraw queries whose two nearest neighbours are closer than float32 dot products can separate
                while True:
                    qi = normalize(rng.standard_normal(d))
                    s = np.sort((1.0 - g[b].astype(np.float64) @ qi.astype(np.float64)) / 2.0)
                    if s[1] - s[0] > 1e-5:
                        break
                q[b, i] = qi
            dist[b], idx[b] = knn_ref(q[b], g[b])
        t[f"{name}_query"], t[f"{name}_bank"], t[f"{name}_dist"], t[f"{name}_idx"] = q, g, dist, idx
    st_io.save(os.path.join(OUT, "score_knn.safetensors"), t)


def text_ref(feat, t_n, t_a, tau):
    """softmax(tau [f.t_n, f.t_a])[1] in float64 with f = F.normalize(feat)."""
    f = torch.from_numpy(feat.astype(np.float64))
    f = f / f.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    tf = torch.from_numpy(np.stack([t_n, t_a]).astype(np.float64))
    return (tau * f @ tf.T).softmax(dim=-1)[:, 1].numpy().astype(f32)


def make_text(rng):
    E = 32
    feat = (rng.standard_normal((60, E)) * 3.0).astype(f32)
    feat[5] = 0.0  # zero feature: the eps clamp gives f = 0, score 1/2
    t_n = normalize(rng.standard_normal(E))
    t_a = normalize(t_n + 0.3 * rng.standard_normal(E))
    # a row nearly along t_a - t_n saturates the sigmoid at tau = 100
    feat[7] = (t_a - t_n) * 10.0
    feat[8] = (t_n - t_a) * 10.0
    t = {"feat": feat, "t_n": t_n, "t_a": t_a}
    for name, tau in (("raw", 4.605170249938965), ("exp", 100.0)):
        t[f"score_{name}"] = text_ref(feat, t_n, t_a, tau)
    t["tau"] = np.array([4.605170249938965, 100.0], f32)
    st_io.save(os.path.join(OUT, "score_text.safetensors"), t)


def make_elem(rng):
    n = 500
    T = rng.uniform(0, 1, n).astype(f32)
    V = rng.uniform(0.02, 0.4, n).astype(f32)
    T[:3] = 0.0  # 1/0 = inf -> fused 0
    V[3:5] = 0.0
    with np.errstate(divide="ignore"):
        fused = (f32(1.0) / (f32(1.0) / T + f32(1.0) / V)).astype(f32)
    # fp16 rounding: normal, subnormal, overflow, exact ties, negative values
    h = np.concatenate([
        rng.uniform(-2, 2, 300), rng.uniform(0, 1e-4, 50), rng.uniform(6e4, 7e4, 20),
        [65504.0, 65519.99, 65520.0, 1e-8, 2.0 ** -25, 2.0 ** -24 * 1.5, 1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11, -0.0],
    ]).astype(f32)
    with np.errstate(over="ignore"):
        half = h.astype(np.float16).astype(f32)
    rows = rng.uniform(-1, 1, (7, 333)).astype(f32)
    st_io.save(os.path.join(OUT, "score_elem.safetensors"), {
        "T": T, "V": V, "fused": fused, "h_in": h, "h_out": half, "rows": rows, "row_max": rows.max(axis=1),
    })


def upsample(x, size):
    return F.interpolate(torch.from_numpy(x)[:, None], size=size, mode="bilinear", align_corners=False)[:, 0].numpy()


def make_upsample(rng):
    t = {}
    # (name, B, Hi, Wi, Ho, Wo, stored row step): 15 -> 400 is the real case (row sample to keep the file small)
    cases = (("g15", 1, 15, 15, 400, 400, 3), ("g4", 2, 4, 4, 64, 64, 1), ("g7", 2, 7, 7, 10, 10, 1),
             ("rect", 1, 5, 9, 13, 20, 1), ("same", 1, 6, 6, 6, 11, 1))
    for name, B, Hi, Wi, Ho, Wo, step in cases:
        x = rng.uniform(0, 1, (B, Hi, Wi)).astype(f32)
        y = upsample(x, (Ho, Wo))
        rows = np.arange(0, Ho, step, dtype=np.int32)
        t[f"{name}_in"], t[f"{name}_rows"], t[f"{name}_out"] = x, rows, y[:, rows, :]
    st_io.save(os.path.join(OUT, "score_upsample.safetensors"), t)


def make_gauss(rng):
    t = {}
    for name, sigma in (("s4", 4), ("s1_5", 1.5), ("s16", 16)):
        radius = int(4.0 * float(sigma) + 0.5)
        t[f"kernel_{name}"] = ndi_filters._gaussian_kernel1d(sigma, 0, radius)[::-1].astype(np.float64)
    # images of several sizes, down to lines far shorter than the radius (reflect wraps several times)
    for name, H, W in (("a", 48, 64), ("b", 5, 5), ("c", 3, 7), ("d", 1, 4), ("e", 17, 1), ("f", 20, 33)):
        x = rng.uniform(0, 1, (2, H, W)).astype(f32)
        x[1] = np.cumsum(np.cumsum(x[1], axis=0), axis=1) / (H * W)  # a smooth ramp as second image
        y = np.stack([ndi.gaussian_filter(x[i], sigma=4) for i in range(2)])
        assert y.dtype == np.float32
        t[f"{name}_in"], t[f"{name}_out"] = x, y
    # sigma 1.5 on one image (radius 6)
    x = rng.uniform(0, 1, (1, 12, 9)).astype(f32)
    t["s1_5_in"], t["s1_5_out"] = x, ndi.gaussian_filter(x[0], sigma=1.5)[None]
    st_io.save(os.path.join(OUT, "score_gauss.safetensors"), t)


def make_pipeline(rng):
    """The full map chain of the official code on 15x15 grids: fusion, bilinear 400, Gaussian sigma 4; the CLS image
    score 1/(1/max(bilinear(V)) + 1/s_T); and the fp16 protocol (T, V, s_T rounded to half, 1/s_T in float16)."""
    n, G, R = 2, 15, 400
    V = rng.uniform(0.05, 0.3, (n, G, G)).astype(f32)
    V[0, 7, 7] = 0.45  # interior peak: the max of the upsample is below the grid max
    T = rng.uniform(0.01, 0.99, (n, G, G)).astype(f32)
    sT = np.array([0.3172, 0.8125377], f32)
    t = {"V": V, "T": T, "sT": sT}
    rows = np.concatenate([np.arange(0, R, 13), [R - 1]]).astype(np.int32)  # a row sample keeps the file small
    t["rows"] = rows
    for tag, fp16 in (("", False), ("_fp16", True)):
        Vq = V.astype(np.float16).astype(f32) if fp16 else V
        Tq = T.astype(np.float16).astype(f32) if fp16 else T
        fused = f32(1.0) / (f32(1.0) / Tq + f32(1.0) / Vq)
        up = upsample(fused, (R, R))
        smooth = np.stack([ndi.gaussian_filter(up[i], sigma=4) for i in range(n)])
        vup = upsample(Vq, (R, R))
        vmax = vup.reshape(n, -1).max(axis=1)
        if fp16:
            s16 = sT.astype(np.float16)
            img = 1.0 / (1.0 / vmax + 1.0 / s16)  # numpy: float32 + float16 array -> float32
        else:
            img = f32(1.0) / (f32(1.0) / vmax + f32(1.0) / sT)
        assert img.dtype == np.float32
        t[f"fused{tag}"] = fused
        t[f"pixel{tag}"] = smooth[:, rows, :]
        t[f"vmax{tag}"] = vmax
        t[f"image{tag}"] = img
        if not fp16:
            t["visual_up"] = vup[:, rows, :]
    assert t["vmax"][0] < V[0].max()
    st_io.save(os.path.join(OUT, "score_pipeline.safetensors"), t)


def make_all(rng):
    """End to end as the official PromptAD.forward computes it (float32 torch, no fp16): memory bank from raw shot
    taps, raw test features; k = 2 shots, n = 3 test images, G = 4, D = 12, E = 10, R = 20."""
    k, n, G, D, E, R = 2, 3, 4, 12, 10, 20
    P = G * G
    shot1 = rng.standard_normal((k, P, D)).astype(f32)
    shot2 = rng.standard_normal((k, P, D)).astype(f32)
    mid1 = rng.standard_normal((n, P, D)).astype(f32)
    mid2 = rng.standard_normal((n, P, D)).astype(f32)
    cls = rng.standard_normal((n, E)).astype(f32)
    tokens = rng.standard_normal((n, P, E)).astype(f32)
    text = normalize(rng.standard_normal((2, E)))
    tau = f32(4.605170249938965)
    T_ = torch.from_numpy
    g1 = F.normalize(T_(shot1).reshape(-1, D), dim=-1)
    g2 = F.normalize(T_(shot2).reshape(-1, D), dim=-1)
    q1 = F.normalize(T_(mid1), dim=-1)
    q2 = F.normalize(T_(mid2), dim=-1)
    s1 = (1.0 - q1 @ g1.t()).min(dim=-1)[0] / 2.0
    s2 = (1.0 - q2 @ g2.t()).min(dim=-1)[0] / 2.0
    V = (0.5 * (s1 + s2)).reshape(n, G, G)
    tf = T_(text)
    tok = F.normalize(T_(tokens), dim=-1)
    Tm = (tau * tok @ tf.T).softmax(dim=-1)[:, :, 1].reshape(n, G, G)
    sT = (tau * F.normalize(T_(cls), dim=-1) @ tf.T).softmax(dim=-1)[:, 1]
    fused = 1.0 / (1.0 / Tm + 1.0 / V)
    up = F.interpolate(fused[:, None], size=(R, R), mode="bilinear", align_corners=False)[:, 0].numpy()
    pixel = np.stack([ndi.gaussian_filter(up[i], sigma=4) for i in range(n)])
    vup = F.interpolate(V[:, None], size=(R, R), mode="bilinear", align_corners=False)[:, 0].numpy()
    m = vup.reshape(n, -1).max(axis=1)
    img = f32(1.0) / (f32(1.0) / m + f32(1.0) / sT.numpy())
    st_io.save(os.path.join(OUT, "score_all.safetensors"), {
        "shot_mid1": shot1, "shot_mid2": shot2, "mid1": mid1, "mid2": mid2, "cls": cls, "tokens": tokens,
        "t_n": text[0], "t_a": text[1], "tau": np.array([tau], f32),
        "image_score": img.astype(f32), "text_image_score": sT.numpy(), "visual_map": V.numpy(),
        "text_map": Tm.numpy(), "pixel_map": pixel,
    })


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240515)
    make_knn(rng)
    make_text(rng)
    make_elem(rng)
    make_upsample(rng)
    make_gauss(rng)
    make_pipeline(rng)
    make_all(rng)
    for f in sorted(os.listdir(OUT)):
        if f.startswith("score_"):
            print(f, os.path.getsize(os.path.join(OUT, f)))


if __name__ == "__main__":
    main()
