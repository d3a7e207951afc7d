#!/usr/bin/env python3
"""convert_torchvision.py - convert a torchvision ResNet checkpoint (.pth state_dict, e.g. wide_resnet50_2-95faca4d.pth)
into a safetensors file with torchvision's names (F32) for promptad's ResNet loader (host/model/resnet.h).
The classifier (fc.*) and the batch-norm counters (num_batches_tracked) are dropped; the stem and every layer<L>
block must be there. Usage: python3 convert_torchvision.py IN.pth OUT.safetensors   (needs torch only)"""
import os
import sys

from checkpoint_io import load_state_dict, run_cli, write_f32_safetensors


def main(src, dst):
    sd = load_state_dict(src)
    sd = {k: v for k, v in sd.items() if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
    for need in ("conv1.weight", "bn1.running_var", "layer1.0.conv1.weight"):
        if need not in sd:
            sys.exit(f"{src}: missing tensor '{need}' (not a torchvision ResNet checkpoint?)")
    write_f32_safetensors(dst, sd, {"format": "torchvision-resnet", "source": os.path.basename(src)})
    print(f"wrote {dst}: {len(sd)} tensors")


if __name__ == "__main__":
    run_cli(main, __doc__)
