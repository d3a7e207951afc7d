#!/usr/bin/env python3
"""convert_torchvision.py - convert a torchvision ResNet checkpoint (.pth state_dict, e.g. wide_resnet50_2-95faca4d.pth)
into a safetensors file with torchvision's names (F32) for promptad's ResNet loader (host/model/resnet.h).
The classifier (fc.*) and the batch-norm counters (num_batches_tracked) are dropped; the stem and every layer<L>
block must be there. Usage: python3 convert_torchvision.py IN.pth OUT.safetensors   (needs torch only)"""
import json
import os
import struct
import sys

import torch


def main(src, dst):
    obj = torch.load(src, map_location="cpu")
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        obj = obj.state_dict()  # a pickled nn.Module
    sd = {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}
    sd = {k: v for k, v in sd.items() if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
    for need in ("conv1.weight", "bn1.running_var", "layer1.0.conv1.weight"):
        if need not in sd:
            sys.exit(f"{src}: missing tensor '{need}' (not a torchvision ResNet checkpoint?)")
    header, blobs, off = {"__metadata__": {"format": "torchvision-resnet", "source": os.path.basename(src)}}, [], 0
    for name, t in sd.items():
        raw = t.detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(dst + ".part", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for raw in blobs:
            f.write(raw)
    os.replace(dst + ".part", dst)
    print(f"wrote {dst}: {len(sd)} tensors")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
