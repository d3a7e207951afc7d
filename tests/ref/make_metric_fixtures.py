"""make_metric_fixtures.py - golden values for eval/metrics.c (tests/test_metrics.c) from independent references.

Run with /usr/bin/python3 (numpy, scipy, sklearn, skimage):
    /usr/bin/python3 tests/ref/make_metric_fixtures.py            # writes tests/fixtures/metrics_*.safetensors
    /usr/bin/python3 tests/ref/make_metric_fixtures.py --big F.safetensors [--check]
        writes a 312 x 400 x 400 (50 M pixel) input for `promptad metrics` (timing) and, with --check, prints the
        reference metrics for it (takes minutes).

References (written from the descriptions in docs/metrics.md, not copied):
- image / pixel AUROC: sklearn.metrics.roc_auc_score; AUPR: sklearn.metrics.average_precision_score.
- pixel PRO: the official MVTec AD protocol (compute_pro + trapezoid): 8-connected GT components
  (scipy.ndimage.label with np.ones((3, 3))), all pixel scores sorted descending, cumulative FPR and per-region
  overlap, last point of each tie run, clip to 1, prepend (0,0) / append (1,1), trapezoid up to the FPR limit with
  linear interpolation at the limit, divided by the limit. `pro_exact` keeps the FPR in float64 (what promptad
  computes); `pro_f32` rounds the FPR to float32 as the official script does (cumsum -> float32 -> / num_ok).
- pixel_pro_200: PromptAD's cal_pro_metric (utils/metrics.py): 200 thresholds max - step * (max - min) / 200 with
  NumPy 1.x scalar semantics (delta in float64 from the float32 range, each threshold rounded to float32 by the
  comparison with the float32 maps), prediction = score > threshold, skimage.measure.label(connectivity=2) regions,
  overlap = |pred & filled_image| / area over the region's bounding box, mean over all regions, FPR over all
  non-mask pixels, keep FPR <= limit, min-max rescale the kept FPRs, sklearn.metrics.auc.
"""
import argparse
import os
import sys

import numpy as np
from scipy import ndimage
from skimage import measure
from sklearn.metrics import auc, average_precision_score, roc_auc_score

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")


# ----------------------------------------------------------------------------------------------------------------
# References


def trapezoid_official(x, y, x_max):
    """Trapezoid rule up to x_max with linear interpolation at x_max when it is not a sample (official script)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    correction = 0.0
    if x_max not in x:
        ins = int(np.searchsorted(x, x_max, side="right"))  # bisect_right
        assert 0 < ins < len(x)
        y_interp = y[ins - 1] + ((y[ins] - y[ins - 1]) * (x_max - x[ins - 1]) / (x[ins] - x[ins - 1]))
        correction = 0.5 * (y_interp + y[ins - 1]) * (x_max - x[ins - 1])
    keep = x <= x_max
    x = x[keep]
    y = y[keep]
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction)


def pro_curve(maps, masks, fpr_f32):
    """The official sort-all-pixels PRO curve. Returns (fprs, pros) with (0,0) prepended and (1,1) appended."""
    structure = np.ones((3, 3), dtype=int)
    n = len(masks)
    fp_change = np.zeros(masks.shape, dtype=np.uint64)
    pro_change = np.zeros(masks.shape, dtype=np.float64)
    num_ok, num_regions = 0, 0
    for i in range(n):
        lab, k = ndimage.label(masks[i] > 0, structure)
        num_regions += k
        ok = lab == 0
        num_ok += int(ok.sum())
        fp_change[i][ok] = 1
        for r in range(1, k + 1):
            reg = lab == r
            pro_change[i][reg] = 1.0 / reg.sum()
    scores = maps.ravel().astype(np.float32)
    order = np.argsort(scores, kind="stable")[::-1]
    scores = scores[order]
    fps = np.cumsum(fp_change.ravel()[order])
    pros = np.cumsum(pro_change.ravel()[order]) / num_regions
    if fpr_f32:
        fprs = fps.astype(np.float32) / np.float32(num_ok)
    else:
        fprs = fps.astype(np.float64) / num_ok
    keep = np.append(np.diff(scores) != 0, True)
    fprs = np.clip(fprs[keep].astype(np.float64), None, 1.0)
    pros = np.clip(pros[keep], None, 1.0)
    return np.concatenate(([0.0], fprs, [1.0])), np.concatenate(([0.0], pros, [1.0]))


def pro_official(maps, masks, limit, fpr_f32=False):
    fprs, pros = pro_curve(maps, masks, fpr_f32)
    return trapezoid_official(fprs, pros, limit) / limit


def pro_200(maps, masks, limit, max_steps=200):
    """PromptAD's cal_pro_metric, written from the spec (NumPy 1.x dtype semantics made explicit)."""
    gt = masks > 0.45
    maps = maps.astype(np.float32)
    max_th = np.float32(maps.max())
    min_th = np.float32(maps.min())
    delta = np.float64(np.float32(max_th - min_th)) / max_steps  # float32 range, float64 division (NumPy 1.x)
    labels = [measure.label(gt[i], connectivity=2) for i in range(len(gt))]
    props = [measure.regionprops(lab) for lab in labels]
    neg = ~gt
    pros, fprs = [], []
    for step in range(max_steps):
        thr = np.float32(np.float64(max_th) - step * delta)  # the comparison rounds the threshold to float32
        pred = maps > thr
        pro = []
        for i in range(len(gt)):
            for p in props[i]:
                r0, c0, r1, c1 = p.bbox
                inter = np.logical_and(pred[i][r0:r1, c0:c1], p.image_filled).sum()
                pro.append(inter / p.area)
        pros.append(np.mean(pro) if pro else np.nan)
        fprs.append(np.logical_and(neg, pred).sum() / neg.sum())
    fprs = np.array(fprs)
    pros = np.array(pros)
    idx = fprs <= limit
    sel = fprs[idx]
    if len(sel) < 2 or sel.max() == sel.min() or np.isnan(pros).any():
        return float("nan")
    sel = (sel - sel.min()) / (sel.max() - sel.min())
    return float(auc(sel, pros[idx]))


def pixel_metrics(maps, masks, limits=(0.3, 0.05, 1.0)):
    y = (masks > 0).ravel().astype(np.uint8)
    s = maps.ravel().astype(np.float64)
    out = [roc_auc_score(y, s), average_precision_score(y, s)]
    out += [pro_official(maps, masks, lim) for lim in limits]
    out += [pro_official(maps, masks, 0.3, fpr_f32=True)]
    out += [pro_200(maps, masks, lim) for lim in (0.3, 0.05)]
    return np.array(out, dtype=np.float64)


# ----------------------------------------------------------------------------------------------------------------
# Inputs


def blobs(rng, h, w, n_blobs, rmax):
    m = np.zeros((h, w), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(n_blobs):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(1, rmax), rng.uniform(1, rmax)
        m[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = 1
    return m


def handmade_masks():
    """7 images 37 x 53 covering the connectivity and hole cases."""
    h, w = 37, 53
    m = np.zeros((7, h, w), dtype=np.uint8)
    # 0: anomaly-free
    # 1: two squares touching only at a corner (one 8-connected region), a separate blob, a 4-adjacent pair
    m[1, 3:8, 3:8] = 1
    m[1, 8:12, 8:12] = 1
    m[1, 20:30, 30:45] = 1
    m[1, 2, 40] = 1
    m[1, 3, 41] = 1  # diagonal neighbour of (2,40)
    m[1, 30:33, 5] = 1
    # 2: square ring (a hole under 8-connected background flood) with a small region inside the hole, a diamond
    #    ring (its centre is 8-connected to the outside: no hole), a thick ring with a 3x3 hole
    m[2, 5:20, 5:20] = 1
    m[2, 7:18, 7:18] = 0
    m[2, 11:14, 11:14] = 1
    for dy, dx in [(-1, 0), (1, 0), (0, -1), (0, 1)]:
        m[2, 10 + dy, 35 + dx] = 1
    m[2, 24:33, 28:40] = 1
    m[2, 27:30, 32:35] = 0
    # 3: random blobs
    rng = np.random.default_rng(3)
    m[3] = blobs(rng, h, w, 6, 7)
    # 4: regions on the borders, single pixels, a diagonal line, a 1-pixel-wide line
    m[4, 0, :] = 1
    m[4, :, w - 1] = 1
    m[4, h - 1, 0] = 1
    m[4, 10, 10] = 1
    m[4, 12, 12] = 1
    for t in range(12):
        m[4, 15 + t, 20 + t] = 1
    m[4, 5:30, 40] = 1
    # 5: anomaly-free
    # 6: a large region with a notch
    m[6, 4:34, 6:50] = 1
    m[6, 4:15, 25:28] = 0
    return m


def maps_for(rng, masks, kind):
    n, h, w = masks.shape
    noise = rng.standard_normal((n, h, w))
    signal = np.stack([ndimage.gaussian_filter(masks[i].astype(np.float64), 1.5) for i in range(n)])
    smooth = np.stack([ndimage.gaussian_filter(noise[i], 1.0) for i in range(n)])
    x = 1.5 * signal + 0.6 * smooth
    if kind == "uniform":  # uninformative, almost no ties
        return rng.uniform(0, 1, (n, h, w)).astype(np.float32)
    if kind == "signal":  # informative float32
        return x.astype(np.float32)
    if kind == "quant":  # heavy ties: 17 distinct values
        return (np.round(np.clip(x, -0.5, 1.5) * 8) / 8).astype(np.float32)
    if kind == "fp16":  # fp16-rounded as in the official protocol, with -0 and +0
        y = x.astype(np.float16).astype(np.float32)
        y[0, 0, :5] = -0.0
        y[0, 1, :5] = 0.0
        return y
    if kind == "thr":  # many pixels exactly on PRO-200 thresholds, where float32 arithmetic would differ
        y = rng.uniform(-0.3, 1.7, (n, h, w)).astype(np.float32)
        y[0, 0, 0], y[0, 0, 1] = 1.7, -0.3
        d64 = np.float64(np.float32(np.float32(1.7) - np.float32(-0.3))) / 200
        thr = [np.float32(np.float64(np.float32(1.7)) - s * d64) for s in range(200)]
        on = rng.uniform(0, 1, (n, h, w)) < 0.5
        on[0, 0, :2] = False
        pick = rng.integers(0, 200, (n, h, w))
        y[on] = np.array(thr, dtype=np.float32)[pick[on]] + (masks[on] > 0) * np.float32(0.25)
        y[on] = np.minimum(y[on], np.float32(1.7))
        return y
    if kind == "narrow":  # 1 + k * 2^-23: every score in one bucket of the CPU walk (its slot-table path)
        k = np.clip(np.round(x * 120 + 60), 0, 400)
        return (1.0 + k * 2.0**-23).astype(np.float32)
    raise ValueError(kind)


def pro_200_literal(maps, masks, limit):
    """The thresholds and predictions written as cal_pro_metric writes them (NumPy decides the dtypes); must
    equal pro_200's explicit float32/float64 steps on this NumPy (1.x)."""
    max_th, min_th = maps.max(), maps.min()
    delta = (max_th - min_th) / 200
    preds = [maps > (max_th - step * delta) for step in range(200)]
    max_th32 = np.float32(max_th)
    d64 = np.float64(np.float32(max_th - min_th)) / 200
    mine = [maps > np.float32(np.float64(max_th32) - step * d64) for step in range(200)]
    assert all((a == b).all() for a, b in zip(preds, mine)), "NumPy threshold semantics differ from the spec"


def image_case(rng, kind):
    if kind == "random":
        n = 60
        s = rng.uniform(0, 1, n).astype(np.float32)
        lab = (rng.uniform(0, 1, n) < 0.4).astype(np.uint8)
        s += 0.2 * lab
    elif kind == "quant":
        n = 80
        lab = (rng.uniform(0, 1, n) < 0.5).astype(np.uint8)
        s = (np.round((rng.uniform(0, 1, n) + 0.3 * lab) * 6) / 6).astype(np.float32)
    elif kind == "fp16":
        n = 101
        lab = (rng.uniform(0, 1, n) < 0.3).astype(np.uint8)
        s = (rng.standard_normal(n) * 0.01 + 0.02 * lab).astype(np.float16).astype(np.float32)
    elif kind == "zeros":  # almost all tied, with -0 and +0 in one tie group
        n = 20
        lab = np.array([i % 3 == 0 for i in range(n)], dtype=np.uint8)
        s = np.zeros(n, dtype=np.float32)
        s[::2] = -0.0
        s[5] = 1.0
        s[7] = -1.0
    elif kind == "tiny":
        lab = np.array([0, 1], dtype=np.uint8)
        s = np.array([0.5, 0.5], dtype=np.float32)
    else:
        raise ValueError(kind)
    want = np.array([roc_auc_score(lab, s.astype(np.float64)), average_precision_score(lab, s.astype(np.float64))])
    return s, lab, want


def write_fixtures():
    os.makedirs(FIX, exist_ok=True)
    rng = np.random.default_rng(20240517)
    t = {}
    for kind in ["random", "quant", "fp16", "zeros", "tiny"]:
        s, lab, want = image_case(rng, kind)
        t[f"img_{kind}_scores"] = s
        t[f"img_{kind}_labels"] = lab
        t[f"img_{kind}_want"] = want
    st_io.save(os.path.join(FIX, "metrics_image.safetensors"), t)

    sets = {"hand": handmade_masks()}
    r2 = np.random.default_rng(11)
    m = np.zeros((10, 48, 40), dtype=np.uint8)
    for i in range(10):
        if i % 4 != 1:  # some anomaly-free images
            m[i] = blobs(r2, 48, 40, int(r2.integers(1, 5)), 9)
    m[m > 0] = 255  # masks stored as 0/255 (>0 = anomalous)
    sets["blobs"] = m
    for name, masks in sets.items():
        t = {"masks": masks}
        # scipy's 8-connected labels, numbered over all images in raster order (1..K; 0 = background)
        glab = np.zeros(masks.shape, dtype=np.int32)
        off = 0
        for i in range(len(masks)):
            lab, k = ndimage.label(masks[i] > 0, np.ones((3, 3), dtype=int))
            glab[i] = np.where(lab > 0, lab + off, 0)
            off += k
        t["labels"] = glab
        for kind in ["uniform", "signal", "quant", "fp16", "thr", "narrow"]:
            maps = maps_for(rng, masks, kind)
            pro_200_literal(maps, masks, 0.3)
            t[f"maps_{kind}"] = maps
            # auroc, aupr, pro@0.3, pro@0.05, pro@1.0, pro_f32official@0.3, pro200@0.3, pro200@0.05
            t[f"want_{kind}"] = pixel_metrics(maps, masks)
            print(name, kind, t[f"want_{kind}"], file=sys.stderr)
        st_io.save(os.path.join(FIX, f"metrics_pixel_{name}.safetensors"), t)


def write_big(path, check):
    """312 images 400 x 400 with random blobs (50 M pixels) and fp16-rounded informative maps."""
    rng = np.random.default_rng(7)
    n, h, w = 312, 400, 400
    masks = np.zeros((n, h, w), dtype=np.uint8)
    maps = np.zeros((n, h, w), dtype=np.float32)
    labels = np.zeros(n, dtype=np.uint8)
    for i in range(n):
        if i % 3:
            masks[i] = blobs(rng, h, w, int(rng.integers(1, 6)), 40)
        labels[i] = masks[i].any()
        sig = ndimage.gaussian_filter(masks[i].astype(np.float32), 4)
        noise = ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), 4) * 4
        maps[i] = (1.2 * sig + 0.5 * noise).astype(np.float16).astype(np.float32)
    scores = maps.reshape(n, -1).max(axis=1) + rng.uniform(0, 0.1, n).astype(np.float32)
    st_io.save(path, {"labels": labels, "image_scores": scores, "masks": masks, "maps": maps})
    print(f"wrote {path}", file=sys.stderr)
    if check:
        y = (masks > 0).ravel()
        print("image_auroc", roc_auc_score(labels, scores))
        print("image_aupr", average_precision_score(labels, scores))
        print("pixel_auroc", roc_auc_score(y, maps.ravel()))
        print("pixel_aupr", average_precision_score(y, maps.ravel()))
        print("pixel_pro", pro_official(maps, masks, 0.3))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--big", metavar="FILE")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    if a.big:
        write_big(a.big, a.check)
    else:
        write_fixtures()
