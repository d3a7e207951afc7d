#!/usr/bin/python3
"""make_conv_fixtures.py - PyTorch references for the convolutional-network ops (backend.h conv2d, pool2d,
adaptive_avgpool2d, residual_add; tests/test_conv.c).

torch.nn.functional computes every expected output: conv2d (+ bias, + residual, ReLU), max_pool2d, avg_pool2d
(count_include_pad=True, torch's default), adaptive_avg_pool2d. Small random shapes cover strides 1 and 2, padding
0..3, 1x1 (the direct GEMM path), 3x3 and 7x7 kernels, odd and non-square sizes.

Run from the repository root with Debian's python (torch 1.13):
    /usr/bin/python3 tests/ref/make_conv_fixtures.py
Writes tests/fixtures/conv_ops.safetensors (about 100 KB).
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")

# name, B, C, H, W, K, k, stride, pad, bias, residual, relu
CONV_CASES = [
    ("a", 2, 3, 11, 11, 5, 3, 1, 1, True, False, True),
    ("b", 1, 3, 17, 13, 4, 7, 2, 3, False, False, False),
    ("c", 2, 6, 5, 5, 8, 1, 1, 0, True, True, True),
    ("d", 2, 4, 9, 9, 6, 1, 2, 0, True, False, False),
    ("e", 1, 5, 10, 7, 3, 3, 2, 1, True, True, True),
    ("f", 3, 2, 6, 6, 4, 3, 1, 0, True, False, True),
]


def conv_case(rng, t, name, B, C, H, W, K, k, stride, pad, bias, res, relu):
    x = torch.from_numpy(rng.standard_normal((B, C, H, W)).astype(np.float32))
    w = torch.from_numpy((rng.standard_normal((K, C, k, k)) / np.sqrt(C * k * k)).astype(np.float32))
    b = torch.from_numpy(rng.standard_normal(K).astype(np.float32)) if bias else None
    y = F.conv2d(x, w, b, stride=stride, padding=pad)
    r = torch.from_numpy(rng.standard_normal(y.shape).astype(np.float32)) if res else None
    if r is not None:
        y = y + r
    if relu:
        y = F.relu(y)
    p = f"conv_{name}_"
    t[p + "x"], t[p + "w"], t[p + "y"] = x.numpy(), w.numpy(), y.numpy()
    if b is not None:
        t[p + "b"] = b.numpy()
    if r is not None:
        t[p + "res"] = r.numpy()
    # shape: B, C, H, W, K, k, stride, pad, relu
    t[p + "shape"] = np.array([B, C, H, W, K, k, stride, pad, int(relu)], np.int32)


def main():
    rng = np.random.default_rng(13)
    t = {}
    for case in CONV_CASES:
        conv_case(rng, t, *case)
    x = torch.from_numpy(rng.standard_normal((2, 3, 9, 8)).astype(np.float32))
    t["maxpool_x"], t["maxpool_y"] = x.numpy(), F.max_pool2d(x, 3, 2, 1).numpy()  # the ResNet stem's pool
    x = torch.from_numpy(rng.standard_normal((2, 3, 6, 7)).astype(np.float32))
    t["avgpool_x"], t["avgpool_y"] = x.numpy(), F.avg_pool2d(x, 3, 1, 1).numpy()  # PatchCore's aggregation
    x = torch.from_numpy(rng.standard_normal((2, 3, 7, 9)).astype(np.float32))
    t["avgpool2_x"], t["avgpool2_y"] = x.numpy(), F.avg_pool2d(x, 2, 2, 0).numpy()
    x = torch.from_numpy(rng.standard_normal((2, 3, 7, 9)).astype(np.float32))
    t["adapt_x"] = x.numpy()
    t["adapt_y34"] = F.adaptive_avg_pool2d(x, (3, 4)).numpy()
    t["adapt_y11"] = F.adaptive_avg_pool2d(x, (1, 1)).numpy()
    a = torch.from_numpy(rng.standard_normal(50).astype(np.float32))
    b = torch.from_numpy(rng.standard_normal(50).astype(np.float32))
    t["res_a"], t["res_b"], t["res_y"] = a.numpy(), b.numpy(), F.relu(a + b).numpy()
    st_io.save(os.path.join(OUT, "conv_ops.safetensors"), t, {"generator": "tests/ref/make_conv_fixtures.py",
                                                               "torch": torch.__version__})


if __name__ == "__main__":
    main()
