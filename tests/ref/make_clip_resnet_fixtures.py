#!/usr/bin/python3
"""make_clip_resnet_fixtures.py - PyTorch reference for CLIP's ModifiedResNet with the V-V attention pool
(host/model/clip_resnet.h, tests/test_clip_resnet.c).

Our own torch code written from the semantics of OpenCLIP's ModifiedResNet (no open_clip import): the 3-convolution
stem (3x3 stride 2, 3x3, 3x3, each BN + ReLU) and a 2x2 average pool; bottlenecks whose stride is an average pool
after the 3x3 convolution, the downsample branch AvgPool(stride) + 1x1 conv + BN; the attention pool over the
flattened stage-4 grid with the mean token prepended and a positional embedding added, run through
F.multi_head_attention_forward with separate q/k/v projections (as OpenCLIP's AttentionPool2d does); its mean-token
output is the image embedding. The V-V path is written out per head: v = x Wv^T + bv for every token (the mean
token included), softmax(v v^T / sqrt(head_dim)) v, heads concatenated, c_proj; the grid rows are the tokens.
Taps: a stage's output adaptive-average-pooled onto the attention pool's grid, channels-last, zero-padded to the
wider tapped stage.

Small widths (stem 4, blocks 1/2/1/1, attention pool 128 with 2 heads, output 32, 96 px -> grid 3), torch's default
initialisation with random batch-norm statistics, eval mode.

Run from the repository root with Debian's python (torch 1.13):
    /usr/bin/python3 tests/ref/make_clip_resnet_fixtures.py
Writes tests/fixtures/clip_resnet_small.safetensors (vision weights, OpenCLIP names) and
clip_resnet_small_io.safetensors (input, cls, tokens, mid1, mid2 for taps layer2 and layer3).
"""
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402
from make_resnet_fixtures import randomise_bn  # noqa: E402  (random batch-norm statistics)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")


class Bottleneck(nn.Module):
    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, 4 * planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * planes)
        self.stride = stride
        self.downsample = None
        if stride > 1 or inplanes != 4 * planes:
            self.downsample = nn.Sequential()
            self.downsample.add_module("0", nn.Conv2d(inplanes, 4 * planes, 1, bias=False))
            self.downsample.add_module("1", nn.BatchNorm2d(4 * planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        if self.stride > 1:
            out = F.avg_pool2d(out, self.stride)
        out = self.bn3(self.conv3(out))
        identity = x
        if self.downsample is not None:
            identity = F.avg_pool2d(x, self.stride) if self.stride > 1 else x
            identity = self.downsample(identity)
        return F.relu(out + identity)


class AttnPool(nn.Module):
    def __init__(self, grid, embed, heads, out_dim):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(grid * grid + 1, embed) / embed**0.5)
        self.q_proj = nn.Linear(embed, embed)
        self.k_proj = nn.Linear(embed, embed)
        self.v_proj = nn.Linear(embed, embed)
        self.c_proj = nn.Linear(embed, out_dim)
        self.heads = heads

    def tokens(self, x):
        x = x.flatten(2).permute(2, 0, 1)  # (HW, N, C)
        x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)
        return x + self.positional_embedding[:, None, :]

    def forward(self, x):
        t = self.tokens(x)
        y, _ = F.multi_head_attention_forward(
            query=t, key=t, value=t, embed_dim_to_check=t.shape[-1], num_heads=self.heads,
            q_proj_weight=self.q_proj.weight, k_proj_weight=self.k_proj.weight, v_proj_weight=self.v_proj.weight,
            in_proj_weight=None, in_proj_bias=torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]),
            bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0, out_proj_weight=self.c_proj.weight,
            out_proj_bias=self.c_proj.bias, use_separate_proj_weight=True, training=False, need_weights=False)
        return y[0]

    def vv(self, x):
        t = self.tokens(x).permute(1, 0, 2)  # (N, T, C)
        n, T, C = t.shape
        hs = C // self.heads
        v = F.linear(t, self.v_proj.weight, self.v_proj.bias).reshape(n, T, self.heads, hs).transpose(1, 2)
        a = torch.softmax(v @ v.transpose(-1, -2) / hs**0.5, dim=-1)
        o = (a @ v).transpose(1, 2).reshape(n, T, C)
        return F.linear(o, self.c_proj.weight, self.c_proj.bias)[:, 1:, :]


class ModifiedResNet(nn.Module):
    def __init__(self, width=4, blocks=(1, 2, 1, 1), out_dim=32, grid=3):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.conv2 = nn.Conv2d(width // 2, width // 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.conv3 = nn.Conv2d(width // 2, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        inplanes = width
        for s, n in enumerate(blocks):
            planes = width << s
            layers = [Bottleneck(inplanes, planes, 1 if s == 0 else 2)]
            inplanes = 4 * planes
            layers += [Bottleneck(inplanes, planes, 1) for _ in range(1, n)]
            setattr(self, f"layer{s + 1}", nn.Sequential(*layers))
        embed = width * 32
        self.attnpool = AttnPool(grid, embed, embed // 64, out_dim)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        x = F.avg_pool2d(x, 2)
        stages = []
        for s in range(4):
            x = getattr(self, f"layer{s + 1}")(x)
            stages.append(x)
        return self.attnpool(x), self.attnpool.vv(x), stages


def tap_rows(stage, grid, width):
    p = F.adaptive_avg_pool2d(stage, grid).flatten(2).transpose(1, 2)  # (N, G*G, C)
    return F.pad(p, (0, width - p.shape[-1]))


def main():
    torch.manual_seed(13)
    gen = torch.Generator().manual_seed(13)
    model = ModifiedResNet()
    randomise_bn(model, gen)
    model.eval()
    sd = {"visual." + k: v.numpy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    st_io.save(os.path.join(OUT, "clip_resnet_small.safetensors"), sd, {"format": "pt"})
    x = torch.randn(2, 3, 96, 96, generator=gen)
    with torch.no_grad():
        cls, tokens, stages = model(x)
        D = max(stages[1].shape[1], stages[2].shape[1])
        t = {"x": x.numpy(), "cls": cls.numpy(), "tokens": tokens.numpy(),
             "mid1": tap_rows(stages[1], 3, D).numpy(), "mid2": tap_rows(stages[2], 3, D).numpy()}
    st_io.save(os.path.join(OUT, "clip_resnet_small_io.safetensors"), t)


if __name__ == "__main__":
    main()
