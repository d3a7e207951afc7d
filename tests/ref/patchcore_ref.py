#!/usr/bin/python3
"""patchcore_ref.py - our own PyTorch reference of PatchCore with anomalib's semantics (read from
anomalib/models/image/patchcore/{torch_model,anomaly_map}.py and components/filters/blur.py; no anomalib import):

  embedding  layer2 and layer3 of the backbone, each through AvgPool2d(3, 1, 1) (count_include_pad, torch's
             default), layer3 resized to layer2's grid by F.interpolate(mode="bilinear") (align_corners False),
             concatenated on the channels, one row per patch (permute(0, 2, 3, 1)).
  distances  euclidean_dist: sqrt(clamp_min(x_norm + y_norm - 2 x @ y^T, 0)) in float32.
  patch      min over the memory bank (distance and index).
  image      num_neighbors == 1: max; otherwise the reweighting of compute_anomaly_score: the max patch m_test, its
             nearest bank row m*, the support = topk(num_neighbors) nearest bank rows of m*, weight =
             1 - softmax(euclidean_dist(m_test, support))[0], score = weight * s*.
  map        F.interpolate(patch grid, image size) (mode 'nearest', the default), then GaussianBlur2d: kornia's
             kernel (exp(-x^2 / 2 sigma^2) on integer offsets, normalised; 2-D = outer product, normalised by its
             absolute sum), F.pad(mode="reflect") by the half kernel, conv2d.
  coreset    k-center greedy on the full embedding (no random projection; start index given), float64.
Used by make_patchcore_fixtures.py and eval/bench/bench_patchcore.py.
"""
import numpy as np
import torch
import torch.nn.functional as F


def embed(backbone_stages, x, layers=(2, 3)):
    """backbone_stages(x) -> list of stage outputs (layer1, layer2, ...). Returns (rows (N, D), (B, D, h, w))."""
    outs = backbone_stages(x)
    pool = torch.nn.AvgPool2d(3, 1, 1)
    feats = [pool(outs[i - 1]) for i in layers]
    e = feats[0]
    for f in feats[1:]:
        e = torch.cat((e, F.interpolate(f, size=e.shape[-2:], mode="bilinear")), 1)
    return e.permute(0, 2, 3, 1).reshape(-1, e.shape[1]), tuple(e.shape)


def euclidean_dist(x, y):
    x_norm = x.pow(2).sum(dim=-1, keepdim=True)
    y_norm = y.pow(2).sum(dim=-1, keepdim=True)
    res = torch.matmul(x, y.transpose(-2, -1))
    res.mul_(-2)
    res.add_(x_norm)
    res.add_(y_norm.transpose(-2, -1))
    return res.clamp_min_(0).sqrt_()


def gaussian_kernel2d(sigma):
    ks = 2 * int(4.0 * sigma + 0.5) + 1
    x = torch.arange(ks, dtype=torch.float32) - ks // 2
    g = torch.exp(-x.pow(2.0) / (2 * sigma ** 2))
    g = g / g.sum()
    k2 = torch.outer(g, g)
    return k2 / k2.abs().sum()


def blur(maps, sigma=4.0):
    k = gaussian_kernel2d(sigma)
    p = k.shape[-1] // 2
    x = F.pad(maps, (p, p, p, p), mode="reflect")
    return F.conv2d(x, k[None, None])


def predict(rows, shape, bank, image_size, num_neighbors=9, sigma=4.0):
    B, _, h, w = shape
    d = euclidean_dist(rows, bank)
    patch, loc = d.min(1)
    patch, loc = patch.reshape(B, -1), loc.reshape(B, -1)
    if num_neighbors == 1:
        score = patch.amax(1)
    else:
        emb = rows.reshape(B, h * w, -1)
        mp = torch.argmax(patch, dim=1)
        feat = emb[torch.arange(B), mp]
        s = patch[torch.arange(B), mp]
        nn_idx = loc[torch.arange(B), mp]
        k = min(num_neighbors, bank.shape[0])
        _, support = euclidean_dist(bank[nn_idx], bank).topk(k=k, largest=False, dim=1)
        dist = euclidean_dist(feat.unsqueeze(1), bank[support])
        weights = (1 - F.softmax(dist.squeeze(1), 1))[..., 0]
        score = weights * s
    grid = patch.reshape(B, 1, h, w)
    maps = blur(F.interpolate(grid, size=image_size), sigma)
    return score, maps[:, 0], patch.reshape(B, h, w), loc


def kcenter_greedy(x, k, start):
    x = np.asarray(x, np.float64)
    mind = np.full(x.shape[0], np.inf)
    sel, c = [], start
    for _ in range(k):
        sel.append(c)
        mind = np.minimum(mind, np.sqrt(((x - x[c]) ** 2).sum(1)))
        mind[c] = 0.0
        c = int(np.argmax(mind))
    return np.array(sel, np.int32)


def padim_channels(total, d, seed):
    """The C code's channel subset: the first d entries of a splitmix64 Fisher-Yates permutation, sorted."""
    from shots_ref import SplitMix64, mix
    rng = SplitMix64(mix(seed ^ 0x504144494D434831))
    perm = list(range(total))
    for i in range(d):
        j = i + rng.below(total - i)
        perm[i], perm[j] = perm[j], perm[i]
    return sorted(perm[:d])


def padim_embed(backbone_stages, x, idx):
    """anomalib PadimModel.generate_embedding: layer1 + nearest-resized layer2, layer3, then index_select."""
    outs = backbone_stages(x)
    e = outs[0]
    for f in outs[1:3]:
        e = torch.cat((e, F.interpolate(f, size=e.shape[-2:], mode="nearest")), 1)
    return torch.index_select(e, 1, torch.tensor(idx))


def padim_fit(emb):
    """anomalib MultiVariateGaussian in float64: mean over the images, covariance ddof 1 (divisor max(N-1, 1)) +
    0.01 I, + 1e-5 I, inverse per position."""
    B, C, H, W = emb.shape
    v = emb.double().reshape(B, C, H * W)
    mean = v.mean(0)
    eye = torch.eye(C, dtype=torch.float64)
    cov = torch.zeros(H * W, C, C, dtype=torch.float64)
    for i in range(H * W):
        xm = v[:, :, i] - mean[:, i]
        cov[i] = xm.t() @ xm / max(B - 1, 1) + 0.01 * eye
    return mean, torch.linalg.inv(cov + 1e-5 * eye)


def padim_predict(emb, mean, inv_cov, image_size, sigma=4.0):
    B, C, H, W = emb.shape
    e = emb.double().reshape(B, C, H * W)
    delta = (e - mean).permute(2, 0, 1)
    dist = (torch.matmul(delta, inv_cov) * delta).sum(2).permute(1, 0).reshape(B, 1, H, W).clamp(0).sqrt().float()
    maps = blur(F.interpolate(dist, size=image_size, mode="bilinear", align_corners=False), sigma)
    return maps.amax(dim=(-2, -1))[:, 0], maps[:, 0], dist[:, 0]


def spade_predict(train_outs, test_outs, top_k, image_size, sigma=4.0):
    """SPADE-pytorch's evaluation: outs are lists of stage outputs (layer1, layer2, layer3, ..., the last one's
    global average pool is the image feature). Image score: mean of the top_k smallest Euclidean distances of the
    global features; map: per stage the nearest gallery pixel (all pixels of the top_k images; SPADE-pytorch drops the
    last len % 100 gallery pixels, we keep them) by pairwise_distance over the channels, bilinear to the image, mean over the 3
    stages, scipy gaussian_filter(sigma)."""
    from scipy.ndimage import gaussian_filter
    gtr = torch.flatten(F.adaptive_avg_pool2d(train_outs[-1], 1), 1)
    gte = torch.flatten(F.adaptive_avg_pool2d(test_outs[-1], 1), 1)
    d = torch.sqrt(torch.pow(gte.unsqueeze(1) - gtr.unsqueeze(0), 2).sum(2))
    k = min(top_k, gtr.shape[0])
    vals, idx = torch.topk(d, k=k, dim=1, largest=False)
    scores = vals.mean(1)
    maps = []
    for t in range(gte.shape[0]):
        sm = []
        for layer in range(3):
            gallery = train_outs[layer][idx[t]].transpose(3, 1).flatten(0, 2).unsqueeze(-1).unsqueeze(-1)
            # torch.pairwise_distance over the channels (dim 1), as in the PyTorch of SPADE-pytorch's time; recent
            # versions reduce over the last dimension, so it is spelled out here
            dist = torch.sqrt(torch.pow(gallery - test_outs[layer][t:t + 1] + 1e-6, 2).sum(1))
            m = torch.min(dist, dim=0)[0]
            sm.append(F.interpolate(m[None, None], size=image_size, mode="bilinear", align_corners=False))
        m = torch.mean(torch.cat(sm, 0), dim=0)
        maps.append(gaussian_filter(m.squeeze().numpy(), sigma=sigma))
    return scores, np.stack(maps), idx
