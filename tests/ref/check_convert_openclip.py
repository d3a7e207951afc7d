#!/usr/bin/python3
"""check_convert_openclip.py - weights/convert_openclip.py on synthetic checkpoints, no download (ctest
test_convert_openclip): a TorchScript archive shaped like OpenAI's RN101.pt (a small ModifiedResNet vision tower from
make_clip_resnet_fixtures.py, a text-tower stand-in, fp16 tensors, the input_resolution / context_length /
vocab_size entries and batch-norm counters) and a pickled training checkpoint with DDP "module." prefixes. Checks
that every tensor comes out F32 under its OpenCLIP name with the same values, and that the bookkeeping entries are
dropped. Exits 77 (skipped) without torch.
Usage: /usr/bin/python3 tests/ref/check_convert_openclip.py [WORK_DIR]"""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    from torch import nn
except ImportError:  # no torch here: skipped (ctest's SKIP_RETURN_CODE)
    print("skipped: needs python3 with torch and numpy")
    sys.exit(77)

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import make_clip_resnet_fixtures as ref  # noqa: E402
import st_io  # noqa: E402

CONVERT = os.path.join(here, "..", "..", "weights", "convert_openclip.py")


class FakeClip(nn.Module):
    """The state-dict layout of an OpenAI CLIP: visual.*, a text tower stand-in, logit_scale, bookkeeping buffers."""

    def __init__(self):
        super().__init__()
        self.visual = ref.ModifiedResNet().half()  # OpenAI's releases store most tensors in fp16
        self.token_embedding = nn.Embedding(10, 64)
        self.positional_embedding = nn.Parameter(torch.randn(77, 64))
        self.text_projection = nn.Parameter(torch.randn(64, 32))
        self.logit_scale = nn.Parameter(torch.tensor(4.6052))
        self.register_buffer("input_resolution", torch.tensor(96))
        self.register_buffer("context_length", torch.tensor(77))
        self.register_buffer("vocab_size", torch.tensor(10))

    def forward(self, x):
        return self.token_embedding(x).sum() * self.logit_scale


def convert(src, dst):
    subprocess.run([sys.executable, CONVERT, src, dst], check=True, stdout=subprocess.DEVNULL)
    return st_io.load(dst)


def compare(got, want, what):
    names = sorted(k for k in want if not k.endswith("num_batches_tracked") and k not in ref_drop)
    assert sorted(got) == names, f"{what}: names differ: {sorted(set(got) ^ set(names))[:5]}"
    for k in names:
        w = want[k].detach().float().numpy()
        assert got[k].dtype == np.float32 and got[k].shape == w.shape, f"{what}: {k}: {got[k].dtype} {got[k].shape}"
        assert np.array_equal(got[k], w), f"{what}: {k}: values differ"
    return len(names)


ref_drop = ("input_resolution", "context_length", "vocab_size")


def main(work):
    torch.manual_seed(0)
    model = FakeClip().eval()
    sd = model.state_dict()
    assert any(k.endswith("num_batches_tracked") for k in sd) and "input_resolution" in sd
    assert "visual.attnpool.positional_embedding" in sd and "visual.layer2.1.bn2.running_var" in sd
    jit = os.path.join(work, "RN-fake.pt")
    torch.jit.save(torch.jit.trace(model, torch.zeros(1, 3, dtype=torch.long)), jit)
    n = compare(convert(jit, os.path.join(work, "a.safetensors")), sd, "TorchScript archive")
    pickled = os.path.join(work, "train.pt")
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in sd.items()}}, pickled)
    compare(convert(pickled, os.path.join(work, "b.safetensors")), sd, "training checkpoint")
    print(f"ok: {n} tensors converted from a TorchScript archive and a DDP training checkpoint")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        os.makedirs(sys.argv[1], exist_ok=True)
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as d:
            main(d)
