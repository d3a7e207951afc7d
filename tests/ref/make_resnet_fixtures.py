#!/usr/bin/python3
"""make_resnet_fixtures.py - torchvision reference for the bottleneck ResNet (host/model/resnet.h,
tests/test_resnet.c).

The network is assembled from torchvision.models.resnet.Bottleneck exactly as torchvision's ResNet._make_layer does
(stem conv 7x7/2 + BN + ReLU + max pool 3/2, stages with the stride on the 3x3 convolution, a 1x1 strided
downsample + BN where the shape changes), at the tiny widths of the `resnet-tiny` preset: stem 8, widths 8/16/32
(planes 4/8/16 with base_width 128, the "wide" factor 2 of wide_resnet50_2), outputs 16/32/64, blocks 1/2/2. Weights
are torch's default initialisation with random batch-norm statistics, in eval mode. Stored: the checkpoint
(torchvision names), an input batch and the three stage outputs.

Run from the repository root with Debian's python (torch 1.13, torchvision 0.14):
    /usr/bin/python3 tests/ref/make_resnet_fixtures.py
Writes tests/fixtures/resnet_tiny.safetensors (weights, ~300 KB) and resnet_tiny_io.safetensors (input, outputs).
"""
import os
import sys

import numpy as np
import torch
from torch import nn
from torchvision.models.resnet import Bottleneck

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")


class TinyWideResNet(nn.Module):
    """torchvision's ResNet structure with a configurable stem width and stages (ResNet hard-codes the stem at 64)."""

    def __init__(self, stem=8, planes=(4, 8, 16), blocks=(1, 2, 2), base_width=128):
        super().__init__()
        self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = stem
        for i, (p, n) in enumerate(zip(planes, blocks)):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or inplanes != p * Bottleneck.expansion:
                down = nn.Sequential(nn.Conv2d(inplanes, p * Bottleneck.expansion, 1, stride=stride, bias=False),
                                     nn.BatchNorm2d(p * Bottleneck.expansion))
            layers = [Bottleneck(inplanes, p, stride, down, base_width=base_width)]
            inplanes = p * Bottleneck.expansion
            layers += [Bottleneck(inplanes, p, base_width=base_width) for _ in range(1, n)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
        self.n = len(planes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for i in range(self.n):
            x = getattr(self, f"layer{i + 1}")(x)
            outs.append(x)
        return outs


def randomise_bn(model, gen):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = torch.rand(n, generator=gen) + 0.5
            m.bias.data = (torch.rand(n, generator=gen) - 0.5) * 0.2
            m.running_mean.data = (torch.rand(n, generator=gen) - 0.5) * 0.2
            m.running_var.data = torch.rand(n, generator=gen) + 0.5


def main():
    torch.manual_seed(13)
    gen = torch.Generator().manual_seed(13)
    model = TinyWideResNet()
    randomise_bn(model, gen)
    model.eval()
    sd = {k: v.numpy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    st_io.save(os.path.join(OUT, "resnet_tiny.safetensors"), sd, {"format": "torchvision-resnet"})
    x = torch.randn(2, 3, 64, 48, generator=gen)
    with torch.no_grad():
        outs = model(x)
    t = {"x": x.numpy()}
    for i, o in enumerate(outs):
        t[f"layer{i + 1}"] = o.numpy()
    st_io.save(os.path.join(OUT, "resnet_tiny_io.safetensors"), t)


if __name__ == "__main__":
    main()
